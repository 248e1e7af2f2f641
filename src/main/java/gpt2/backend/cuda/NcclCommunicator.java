package gpt2.backend.cuda;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.Faults;
import gpt2.parallel.Communicator;
import gpt2.parallel.Rendezvous;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.Pointer;

import java.time.Duration;

import static gpt2.backend.RawPointer.at;
import static gpt2.backend.cuda.CudaBackend.addr;

/**
 * NCCL collectives on the device buffers of a {@link CudaBackend}, one process per GPU; the
 * ncclUniqueId travels by {@link Rendezvous}. Gradient buckets are reduced on their own non-blocking
 * stream, each after an event that marks its gradients final, overlapping the rest of backward. Reduce-scatter and all-gather are written with
 * all-reduce and per-rank broadcasts, because our shards may differ in size by one element and
 * NCCL's versions need equal ones: correct, but without their bandwidth savings.
 */
public final class NcclCommunicator implements Communicator {

    private final int rank, world;
    private final ncclComm comm = new ncclComm();
    private final CudaBuffer scalar;
    private final CudaBackend backend;

    /** Joins the run: rank 0 makes the unique id and serves it; the CUDA backend picks the GPU. */
    public NcclCommunicator(CudaBackend backend, int rank, int world, String masterAddr, int masterPort, Duration timeout) {
        this.rank = rank;
        this.world = world;
        this.backend = backend;
        ncclUniqueId id = new ncclUniqueId();
        byte[] bytes = new byte[128];
        if (rank == 0) {
            check(nccl.ncclGetUniqueId(id), "ncclGetUniqueId");
            id.internal().get(bytes);
            if (world > 1) {
                Thread server = new Thread(() -> Rendezvous.serve("0.0.0.0", masterPort, world, bytes, timeout), "rendezvous");
                server.setDaemon(true);
                server.start();
            }
        } else {
            byte[] got = Rendezvous.fetch(masterAddr, masterPort, rank, timeout);
            System.arraycopy(got, 0, bytes, 0, Math.min(128, got.length));
            id.internal().put(bytes);
        }
        check(nccl.ncclCommInitRank(comm, world, id, rank), "ncclCommInitRank(rank " + rank + " of " + world + ")");
        this.scalar = (CudaBuffer) backend.allocate(gpt2.backend.DType.F32, 2, "NCCL scalar");
        Cuda.check(cudart.cudaStreamCreateWithFlags(commStream, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    }

    /** Buckets run here, beside the backward pass on the backend's stream. */
    private final CUstream_st commStream = new CUstream_st();
    private final java.util.List<CUevent_st> pending = new java.util.ArrayList<>();

    private CUevent_st record(CUstream_st stream) {
        CUevent_st ev = new CUevent_st();
        Cuda.check(cudart.cudaEventCreateWithFlags(ev, cudart.cudaEventDisableTiming), "cudaEventCreateWithFlags");
        Cuda.check(cudart.cudaEventRecord(ev, stream), "cudaEventRecord");
        pending.add(ev);
        return ev;
    }

    /** The bucket's gradients are final on the backend's stream: the comm stream waits for them, then reduces. */
    @Override
    public void allReduceAverageAsync(Backend be, Buffer bucket) {
        CUevent_st ready = record(backend.stream());
        if (!Faults.on("no-comm-wait")) Cuda.check(cudart.cudaStreamWaitEvent(commStream, ready, 0), "cudaStreamWaitEvent");
        check(nccl.ncclAllReduce(at(addr(bucket)), at(addr(bucket)), bucket.length(), nccl.ncclFloat32, nccl.ncclAvg, comm,
                commStream), "ncclAllReduce(bucket)");
    }

    /**
     * The backend's stream (the optimizer) waits for every bucket; the host does not (an event
     * destroyed before the device reaches it is released when it does, as CUDA documents).
     */
    @Override
    public void finishPending() {
        if (pending.isEmpty()) return;
        CUevent_st reduced = record(commStream);
        if (!Faults.on("no-pending-wait")) Cuda.check(cudart.cudaStreamWaitEvent(backend.stream(), reduced, 0), "cudaStreamWaitEvent");
        for (CUevent_st ev : pending) Cuda.check(cudart.cudaEventDestroy(ev), "cudaEventDestroy");
        pending.clear();
    }

    private static void check(int status, String call) {
        if (status != nccl.ncclSuccess) {
            throw new Cuda.CudaException(call + " failed: " + nccl.ncclGetErrorString(status).getString()
                    + " (NCCL_DEBUG=INFO shows why)");
        }
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return world;
    }

    @Override
    public void allReduceAverage(Backend be, Buffer buffer) {
        check(nccl.ncclAllReduce(at(addr(buffer)), at(addr(buffer)), buffer.length(), nccl.ncclFloat32, nccl.ncclAvg, comm,
                backend.stream()), "ncclAllReduce");
    }

    @Override
    public void reduceScatterAverage(Backend be, Buffer buffer) {
        allReduceAverage(be, buffer);
    }

    @Override
    public void allGather(Backend be, Buffer buffer) {
        check(nccl.ncclGroupStart(), "ncclGroupStart");
        for (int k = 0; k < world; k++) {
            long[] sh = Communicator.shard(buffer.length(), k, world);
            Pointer p = at(addr(buffer) + sh[0] * 4);
            check(nccl.ncclBroadcast(p, p, sh[1] - sh[0], nccl.ncclFloat32, k, comm, backend.stream()), "ncclBroadcast");
        }
        check(nccl.ncclGroupEnd(), "ncclGroupEnd");
    }

    @Override
    public double allReduceSum(double value) {
        DoublePointer host = new DoublePointer(1).put(value);
        Cuda.check(cudart.cudaMemcpy(at(scalar.address()), host, 8, cudart.cudaMemcpyHostToDevice), "cudaMemcpy");
        check(nccl.ncclAllReduce(at(scalar.address()), at(scalar.address()), 1, nccl.ncclFloat64, nccl.ncclSum, comm,
                (CUstream_st) null), "ncclAllReduce(scalar)");
        Cuda.check(cudart.cudaMemcpy(host, at(scalar.address()), 8, cudart.cudaMemcpyDeviceToHost), "cudaMemcpy");
        double out = host.get();
        host.close();
        return out;
    }

    @Override
    public void broadcast(Backend be, Buffer buffer) {
        check(nccl.ncclBroadcast(at(addr(buffer)), at(addr(buffer)), buffer.length(), nccl.ncclFloat32, 0, comm,
                backend.stream()), "ncclBroadcast");
    }

    @Override
    public void barrier() {
        allReduceSum(0);
    }

    @Override
    public void close() {
        finishPending();
        cudart.cudaStreamDestroy(commStream);
        backend.free(scalar);
        nccl.ncclCommDestroy(comm);
    }
}
