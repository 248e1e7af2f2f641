package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;

import static gpt2.backend.RawPointer.at;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The stand-ins catch what only a GPU would show, each fault put in and seen caught, and the same
 * work with the missing edge put back seen clean: two streams touching the same bytes with nothing
 * ordering them (the race detector's happens-before: events, synchronizations, the legacy stream's
 * implicit rules, graph edges), pinned memory rewritten under an asynchronous copy, a kernel writing
 * past the buffer view it was given, a launch over the device's register limit, an NCCL rank left
 * waiting. Device faults are asynchronous and sticky as on a GPU: the call that queues the work
 * succeeds, the next synchronization fails, and every call after it; between tests a stand-in-only
 * call clears the fault, which no GPU can.
 */
@Tag("standin")
class CudaStandinOrderTest {

    @BeforeAll
    static void standins() {
        CudaStandins.assumeStandins("CudaStandinOrderTest");
    }

    private static void call(String library, String function, Object... args) {
        try {
            var fn = SymbolLookup.libraryLookup(library, Arena.global()).find(function).orElseThrow();
            if (args.length == 0) {
                Linker.nativeLinker().downcallHandle(fn, FunctionDescriptor.ofVoid()).invokeExact();
            } else {
                Linker.nativeLinker().downcallHandle(fn, FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT)).invokeExact((int) args[0]);
            }
        } catch (Throwable t) {
            throw new AssertionError(function, t);
        }
    }

    @AfterEach
    void clearFault() {
        call("libcuda.so.1", "gpt2_standin_clear_fault");
        cudart.cudaGetLastError();
    }

    private static String message(int status) {
        return CudaStandinChecksTest.message(status);
    }

    private static long malloc(long bytes) {
        return CudaStandinChecksTest.malloc(bytes);
    }

    private static CUstream_st stream(boolean blocking) {
        CUstream_st s = new CUstream_st();
        assertEquals(0, cudart.cudaStreamCreateWithFlags(s, blocking ? cudart.cudaStreamDefault : cudart.cudaStreamNonBlocking));
        return s;
    }

    /** The device fault the next synchronization reports (the queueing calls having succeeded), then sticky. */
    private static String fault() {
        int s = cudart.cudaDeviceSynchronize();
        assertEquals(cudart.cudaErrorIllegalAddress, s, "the fault surfaces at the synchronization");
        String m = message(s);
        Pointer p = new Pointer();
        assertEquals(s, cudart.cudaMalloc(p, 16), "sticky: every later call fails");
        return m;
    }

    private static void clean() {
        assertEquals(0, cudart.cudaDeviceSynchronize(), () -> "no fault expected: " + message(cudart.cudaGetLastError()));
    }

    @Test
    void twoStreamsWritingTheSameBytesRaceUnlessAnEventOrdersThem() {
        CUstream_st a = stream(true), b = stream(false);
        CUevent_st done = new CUevent_st();
        assertEquals(0, cudart.cudaEventCreateWithFlags(done, cudart.cudaEventDisableTiming));
        long dev = malloc(4096);
        // ordered: b waits for an event recorded after a's write
        assertEquals(0, cudart.cudaMemsetAsync(at(dev), 1, 4096, a));
        assertEquals(0, cudart.cudaEventRecord(done, a));
        assertEquals(0, cudart.cudaStreamWaitEvent(b, done, 0));
        assertEquals(0, cudart.cudaMemsetAsync(at(dev + 1024), 2, 1024, b));
        clean();
        // disjoint bytes never race
        assertEquals(0, cudart.cudaMemsetAsync(at(dev), 1, 1024, a));
        assertEquals(0, cudart.cudaMemsetAsync(at(dev + 1024), 2, 1024, b));
        clean();
        // the fault: the wait left out
        assertEquals(0, cudart.cudaMemsetAsync(at(dev), 1, 4096, a));
        assertEquals(0, cudart.cudaMemsetAsync(at(dev + 1024), 2, 1024, b), "queueing succeeds: the fault is the device's");
        String m = fault();
        assertTrue(m.contains("race: cudaMemsetAsync") && m.contains("writes bytes 1024..2048 of the 4096-byte device allocation")
                && m.contains("non-blocking") && m.contains("which cudaMemsetAsync") && m.contains("wrote at bytes 0..4096"), m);
    }

    @Test
    void readsOfTheSameBytesDoNotRaceAndAHostSynchronizationOrders() {
        CUstream_st a = stream(true), b = stream(false);
        long src = malloc(2048), d1 = malloc(2048), d2 = malloc(2048);
        assertEquals(0, cudart.cudaMemcpyAsync(at(d1), at(src), 2048, cudart.cudaMemcpyDeviceToDevice, a));
        assertEquals(0, cudart.cudaMemcpyAsync(at(d2), at(src), 2048, cudart.cudaMemcpyDeviceToDevice, b));
        clean();
        assertEquals(0, cudart.cudaMemsetAsync(at(src), 0, 2048, b));
        assertEquals(0, cudart.cudaStreamSynchronize(b)); // the host saw b's write finish before queueing on a
        assertEquals(0, cudart.cudaMemcpyAsync(at(d1), at(src), 2048, cudart.cudaMemcpyDeviceToDevice, a));
        clean();
        // a read on one stream, a write on the other, nothing between: a race
        assertEquals(0, cudart.cudaMemcpyAsync(at(d1), at(src), 2048, cudart.cudaMemcpyDeviceToDevice, a));
        assertEquals(0, cudart.cudaMemsetAsync(at(src + 100), 0, 8, b));
        String m = fault();
        assertTrue(m.contains("race: cudaMemsetAsync") && m.contains("(src, stream #") && m.contains("read at bytes 0..2048"), m);
    }

    /** The legacy stream (synchronous copies) waits for blocking streams, not for non-blocking ones. */
    @Test
    void theLegacyStreamOrdersBlockingStreamsOnly() {
        long dev = malloc(1024);
        try (BytePointer host = new BytePointer(1024)) {
            CUstream_st blocking = stream(true), nonBlocking = stream(false);
            assertEquals(0, cudart.cudaMemsetAsync(at(dev), 3, 1024, blocking));
            assertEquals(0, cudart.cudaMemcpy(host, at(dev), 1024, cudart.cudaMemcpyDeviceToHost));
            assertEquals(3, host.get(100));
            clean();
            assertEquals(0, cudart.cudaMemsetAsync(at(dev), 4, 1024, nonBlocking));
            int s = cudart.cudaMemcpy(host, at(dev), 1024, cudart.cudaMemcpyDeviceToHost); // synchronizing: the fault surfaces here
            assertEquals(cudart.cudaErrorIllegalAddress, s);
            assertTrue(message(s).contains("race: cudaMemcpy") && message(s).contains("the legacy default stream")
                    && message(s).contains("which cudaMemsetAsync"), message(s));
        }
    }

    /** Inside a launched graph only its edges order its nodes: two unjoined branches writing the same bytes race. */
    @Test
    void graphBranchesRaceUnlessAnEdgeOrdersThem() {
        CUstream_st main = stream(true), side = stream(false);
        CUevent_st fork = new CUevent_st(), join = new CUevent_st();
        assertEquals(0, cudart.cudaEventCreateWithFlags(fork, cudart.cudaEventDisableTiming));
        assertEquals(0, cudart.cudaEventCreateWithFlags(join, cudart.cudaEventDisableTiming));
        long dev = malloc(2048);
        for (boolean ordered : new boolean[]{true, false}) {
            assertEquals(0, cudart.cuStreamBeginCapture(main, cudart.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
            assertEquals(0, cudart.cudaEventRecord(fork, main));
            assertEquals(0, cudart.cudaStreamWaitEvent(side, fork, 0));
            assertEquals(0, cudart.cudaMemsetAsync(at(dev), 1, 2048, side));
            assertEquals(0, cudart.cudaEventRecord(join, side));
            if (ordered) assertEquals(0, cudart.cudaStreamWaitEvent(main, join, 0)); // main's write after side's
            assertEquals(0, cudart.cudaMemsetAsync(at(dev + 512), 2, 512, main));
            if (!ordered) assertEquals(0, cudart.cudaStreamWaitEvent(main, join, 0)); // joined only at the end
            CUgraph_st graph = new CUgraph_st();
            assertEquals(0, cudart.cuStreamEndCapture(main, graph));
            CUgraphExec_st exec = new CUgraphExec_st();
            assertEquals(0, cudart.cuGraphInstantiate(exec, graph, 0));
            assertEquals(0, cudart.cuGraphLaunch(exec, main));
            if (ordered) {
                clean();
            } else {
                String m = fault();
                assertTrue(m.contains("race: cudaMemsetAsync") && m.contains("graph node 1 of a cuGraphLaunch")
                        && m.contains("graph node 0 of a cuGraphLaunch"), m);
            }
        }
    }

    @Test
    void pinnedMemoryRewrittenWhileAnAsynchronousCopyMayReadItIsReported() {
        CUstream_st s = stream(false);
        long dev = malloc(4096);
        Pointer pinned = new Pointer();
        assertEquals(0, cudart.cudaMallocHost(pinned, 4096));
        BytePointer host = new BytePointer(pinned).capacity(4096);
        host.put(0, (byte) 1);
        assertEquals(0, cudart.cudaMemcpyAsync(at(dev), host, 4096, cudart.cudaMemcpyHostToDevice, s));
        assertEquals(0, cudart.cudaStreamSynchronize(s));
        host.put(0, (byte) 2); // after the synchronization: fine
        assertEquals(0, cudart.cudaMemcpyAsync(at(dev), host, 4096, cudart.cudaMemcpyHostToDevice, s));
        host.put(0, (byte) 3); // the copy may still be reading it
        String m = fault();
        assertTrue(m.contains("race: the host rewrote 4096 bytes of pinned memory") && m.contains("cudaMemcpyAsync"), m);
    }

    /** GELU of n elements of in into out: a kernel writing out, reading in. */
    private static void gelu(CudaBackend be, Buffer out, Buffer in, int n) {
        be.launch("gelu_forward", 8L * n, CudaBackend.blocks(n, 256 * be.pack()), 256, out, in, (long) n);
    }

    /** A float32 backend on the stand-ins. */
    private static CudaBackend backend() {
        return new CudaBackend(0, false, false, false, new GpuExecutor(0, false, false), false);
    }

    /** A kernel writing one element past the slice it was given, inside the same allocation. */
    @Test
    void aKernelWritingPastItsViewIsReportedAtTheNextSynchronization() {
        try (CudaBackend be = backend()) {
            int n = 1024;
            Buffer big = be.allocate(DType.F32, 4L * n, "big");
            Buffer in = big.slice(0, n), out = big.slice(n, n);
            gelu(be, out, in, n);
            be.synchronize(); // exactly the view: clean
            gelu(be, big.slice(n, n - 1), in, n);
            Cuda.CudaException e = assertThrows(Cuda.CudaException.class, be::synchronize);
            String m = e.getMessage();
            assertTrue(m.contains("cuLaunchKernel(gelu_forward): out-of-bounds write") && m.contains("argument 0 is a 4092-byte view at byte 4096")
                    && m.contains("ends 4 bytes past the view's end"), m);
            Pointer p = new Pointer();
            assertEquals(cudart.cudaErrorIllegalAddress, cudart.cudaMalloc(p, 16), "sticky");
            clearFault(); // so the backend can free its memory
        }
    }

    /** A kernel's reads and writes are recorded per argument: another stream writing what it wrote, or read, races. */
    @Test
    void aKernelsWritesAndReadsRaceWithAnotherStream() {
        try (CudaBackend be = backend()) {
            int n = 1024;
            Buffer big = be.allocate(DType.F32, 4L * n, "big");
            Buffer in = big.slice(0, n), out = big.slice(n, n);
            CUstream_st other = stream(false);
            gelu(be, out, in, n);
            long address = ((CudaBuffer) big).address();
            assertEquals(0, cudart.cudaMemsetAsync(at(address + 4L * n + 64), 0, 4, other)); // into out
            String m = fault();
            assertTrue(m.contains("race: cudaMemsetAsync") && m.contains("which cuLaunchKernel(gelu_forward)")
                    && m.contains("(argument 0, stream #") && m.contains("wrote at bytes 4096..8192"), m);
            clearFault();
            gelu(be, out, in, n);
            assertEquals(0, cudart.cudaMemsetAsync(at(address + 64), 0, 4, other)); // into in
            m = fault();
            assertTrue(m.contains("which cuLaunchKernel(gelu_forward)") && m.contains("(argument 1, stream #")
                    && m.contains("read at bytes 0..4096"), m);
            clearFault();
        }
    }

    /** Registers per thread from the CUBIN times threads per block against the device's 65,536. */
    @Test
    void aLaunchOverTheRegisterLimitIsRefused() {
        try (CudaBackend be = new CudaBackend(0, false, true, false, new GpuExecutor(0, false, true), false)) {
            Buffer b = be.allocate(DType.BF16, 1 << 16, "b");
            Buffer f = be.allocate(DType.F32, 1 << 12, "f");
            // a row kernel's few registers fit 1,024 threads
            be.launch("gelu_forward", 0, 1, 1024, b, b, 1024L);
            be.synchronize();
            // flash_tc_backward_dkdv_128's registers (over 128 a thread) do not
            Cuda.CudaException e = assertThrows(Cuda.CudaException.class, () -> be.launch("flash_tc_backward_dkdv_128", 0, 1, 1024,
                    b, b, b, f, f, 64, 1, 1f, 0f, 0L, 0));
            assertTrue(e.getMessage().contains("too many resources requested for launch") && e.getMessage().contains("registers (the CUBIN's count)"),
                    e.getMessage());
            cudart.cudaGetLastError();
        }
    }

    /**
     * Static + dynamic shared memory over 48 KB needs cuFuncSetAttribute first, and never more than
     * the opt-in maximum (227 KB on sm_90) less the kernel's static bytes: refused as CUDA does.
     */
    @Test
    void sharedMemoryOverTheLimitsIsRefused() {
        new GpuExecutor(0, false, true).close(); // the context, and the CUBIN in the kernel cache
        byte[] image = KernelCompiler.cubin("flash", "sm_90", true, KernelCompiler.defaultCacheDir());
        org.bytedeco.cuda.cudart.CUmod_st module = new org.bytedeco.cuda.cudart.CUmod_st();
        assertEquals(0, cudart.cuModuleLoadData(module, new BytePointer(image)));
        org.bytedeco.cuda.cudart.CUfunc_st f = new org.bytedeco.cuda.cudart.CUfunc_st();
        assertEquals(0, cudart.cuModuleGetFunction(f, module, "flash_tc_forward_64"));
        org.bytedeco.javacpp.LongPointer slots = new org.bytedeco.javacpp.LongPointer(16); // null pointers, zeros
        org.bytedeco.javacpp.PointerPointer<Pointer> params = new org.bytedeco.javacpp.PointerPointer<>(16);
        for (int i = 0; i < 16; i++) params.put(i, at(slots.address() + 8L * i));
        int s = cudart.cuLaunchKernel(f, 1, 1, 1, 128, 1, 1, 64 * 1024, (CUstream_st) null, params, null);
        assertEquals(cudart.CUDA_ERROR_INVALID_VALUE, s);
        assertTrue(message(s).contains("65536 bytes of dynamic shared memory") && message(s).contains("(raise it with cuFuncSetAttribute)"),
                message(s));
        s = cudart.cuFuncSetAttribute(f, cudart.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 228 * 1024);
        assertEquals(cudart.CUDA_ERROR_INVALID_VALUE, s);
        assertTrue(message(s).contains("the device allows"), message(s));
        assertEquals(0, cudart.cuFuncSetAttribute(f, cudart.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 * 1024));
        clean();
    }

    /** A rank that never makes the collective another rank waits in: reported after the timeout, not a hang. */
    @Test
    void anNcclRankLeftWaitingIsReportedAfterTheTimeout() throws Exception {
        ncclUniqueId id = new ncclUniqueId();
        assertEquals(0, nccl.ncclGetUniqueId(id));
        ncclComm c0 = new ncclComm(), c1 = new ncclComm();
        Thread other = new Thread(() -> assertEquals(0, nccl.ncclCommInitRank(c1, 2, id, 1)));
        other.start();
        assertEquals(0, nccl.ncclCommInitRank(c0, 2, id, 0));
        other.join();
        call("libnccl.so.2", "gpt2_standin_nccl_timeout", 2);
        try {
            long dev = malloc(64);
            assertEquals(0, nccl.ncclAllReduce(at(dev), at(dev), 16, nccl.ncclFloat32, nccl.ncclAvg, c0, (CUstream_st) null));
            String m = fault();
            assertTrue(m.contains("ncclAllReduce: rank 0 waited 2 s") && m.contains("rank 0: #1 ncclAllReduce(count 16, float32, avg)")
                    && m.contains("rank 1: none yet"), m);
        } finally {
            call("libnccl.so.2", "gpt2_standin_nccl_timeout", 0);
        }
    }
}
