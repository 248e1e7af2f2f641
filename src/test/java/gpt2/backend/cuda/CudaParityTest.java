package gpt2.backend.cuda;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link CudaParityChecks} on a GPU (tag gpu; skipped with the reason where none is usable), with
 * the bias and GELU as separate kernels (the default), and NCCL with one rank. {@code mvn verify}
 * also runs it on the CPU stand-ins of the CUDA libraries (see {@link CudaStandins}): the same
 * JavaCPP calls, checked argument by argument.
 */
@Tag("gpu")
class CudaParityTest extends CudaParityChecks {

    @Override
    String unavailableReason() {
        return CudaStandins.gpuUnavailableReason();
    }

    @Override
    void checkDevice(CudaBackend be) {
        CudaStandins.assertExpectedDevice(be.name());
    }

    @Override
    CudaBackend newBackend(boolean tf32, boolean bf16, boolean graphs) {
        return new CudaBackend(0, tf32, bf16, false, new GpuExecutor(0, tf32, bf16), graphs);
    }

    /** NCCL through the full path with world size 1 (our GPU machines have one GPU). */
    @Test
    void ncclWorldOfOne() {
        try (NcclCommunicator comm = new NcclCommunicator(gpu, 0, 1, "127.0.0.1", 29599, java.time.Duration.ofSeconds(30))) {
            Random r = new Random(10);
            Pair x = rand(r, 1000, 1);
            comm.allReduceAverage(gpu, x.g());
            comm.allGather(gpu, x.g());
            comm.broadcast(gpu, x.g());
            assertClose(x, 0, "NCCL collectives with one rank leave the data");
            assertEquals(2.5, comm.allReduceSum(2.5), 0, "NCCL scalar all-reduce");
            // gradient buckets on the communication stream, then the wait
            comm.allReduceAverageAsync(gpu, x.g().slice(0, 400));
            comm.allReduceAverageAsync(gpu, x.g().slice(400, 600));
            comm.finishPending();
            assertClose(x, 0, "NCCL bucketed all-reduce on its own stream");
            comm.barrier();
            System.out.println("  NCCL: world 1 all-reduce, all-gather, broadcast, scalar sum: ok");
        }
    }
}
