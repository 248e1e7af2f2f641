package gpt2.backend.cpu;

/** Every matmul test again on the pure-Java GEMM (the fallback where OpenBLAS cannot load). */
class JavaGemmMatmulTest extends MatmulTest {
    @Override
    CpuBackend backend() {
        return new CpuBackend(2, false);
    }
}
