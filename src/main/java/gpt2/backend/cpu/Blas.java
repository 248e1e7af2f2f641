package gpt2.backend.cpu;

import gpt2.backend.RawPointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.lang.foreign.MemorySegment;

/**
 * OpenBLAS's sgemm (through JavaCPP) directly on our off-heap buffers, no copies. Where the
 * native library cannot load (the GPU bundle leaves it out), {@link #available()} is false and
 * the CPU backend uses its pure-Java GEMM; {@code GPT2_BLAS=java} forces that path.
 */
final class Blas {
    private Blas() {
    }

    private static final String UNAVAILABLE = probe();

    private static String probe() {
        if ("java".equalsIgnoreCase(System.getenv("GPT2_BLAS"))) return "GPT2_BLAS=java";
        try {
            org.bytedeco.javacpp.Loader.load(openblas_nolapack.class);
            return null;
        } catch (Throwable t) {
            return t.getClass().getSimpleName() + ": " + t.getMessage();
        }
    }

    static boolean available() {
        return UNAVAILABLE == null;
    }

    static String unavailableReason() {
        return UNAVAILABLE;
    }

    private static FloatPointer at(MemorySegment s) {
        return RawPointer.floats(s.address());
    }

    /** Row-major C (M,N) = alpha op(A) op(B) + beta C. */
    static void sgemm(boolean transA, boolean transB, int M, int N, int K, float alpha, MemorySegment A, int lda,
                      MemorySegment B, int ldb, float beta, MemorySegment C, int ldc) {
        openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
                transA ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                transB ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                M, N, K, alpha, at(A), lda, at(B), ldb, beta, at(C), ldc);
    }
}
