package gpt2.backend.cuda;

/**
 * {@link CudaParityTest} with cuBLASLt's bias and GELU epilogues (GPT2_CUBLASLT=1); tag gpu
 * (inherited), skipped with the reason where no GPU is usable.
 */
class CudaParityFusedTest extends CudaParityTest {

    @Override
    CudaBackend newBackend(boolean tf32, boolean bf16, boolean graphs) {
        return new CudaBackend(0, tf32, bf16, true, new GpuExecutor(0, tf32, bf16), graphs);
    }
}
