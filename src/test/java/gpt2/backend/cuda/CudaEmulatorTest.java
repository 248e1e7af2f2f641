package gpt2.backend.cuda;

/**
 * {@link CudaParityChecks} without a GPU: the CUDA backend over {@link EmulatedExecutor}, which runs
 * the same kernel sources compiled for the CPU (float32 and bf16 builds). Runs in CI wherever g++
 * exists (skipped with a message otherwise): the kernels' arithmetic, their launch geometry, the
 * backend's argument order and GEMM transpositions, and both precisions' plumbing are all checked
 * against the CPU backend before any GPU sees them.
 */
class CudaEmulatorTest extends CudaParityChecks {

    @Override
    String unavailableReason() {
        return EmulatedExecutor.unavailableReason();
    }

    @Override
    CudaBackend newBackend(boolean tf32, boolean bf16, boolean graphs) {
        return new CudaBackend(-1, tf32, bf16, true, new EmulatedExecutor(bf16), graphs);
    }
}
