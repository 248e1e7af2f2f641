package gpt2.backend.cuda;

import org.junit.jupiter.api.Tag;

/**
 * {@link CudaParityChecks} on a GPU with cuBLASLt's bias and GELU epilogues (GPT2_CUBLASLT=1);
 * tag gpu, skipped with the reason where no GPU is usable.
 */
@Tag("gpu")
class CudaParityFusedTest extends CudaParityChecks {

    @Override
    String unavailableReason() {
        String reason = CudaBackend.unavailableReason();
        return reason == null ? null : "no usable GPU: " + reason;
    }

    @Override
    CudaBackend newBackend(boolean tf32, boolean bf16) {
        return new CudaBackend(0, tf32, bf16, true, new GpuExecutor(0, tf32, bf16));
    }
}
