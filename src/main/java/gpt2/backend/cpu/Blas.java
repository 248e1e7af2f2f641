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

    /**
     * openblas_set_num_threads / openblas_get_num_threads of the library JavaCPP loaded, found by
     * its name (the presets without LAPACK do not map them); null when not found.
     */
    private static final java.lang.invoke.MethodHandle[] THREADS = threadHandles();

    private static java.lang.invoke.MethodHandle[] threadHandles() {
        if (UNAVAILABLE != null) return null;
        for (String lib : new String[]{"libopenblas_nolapack.so.0", "libopenblas.so.0"}) {
            try {
                var l = java.lang.foreign.SymbolLookup.libraryLookup(lib, java.lang.foreign.Arena.global());
                var set = l.find("openblas_set_num_threads");
                var get = l.find("openblas_get_num_threads");
                if (set.isEmpty() || get.isEmpty()) continue;
                var linker = java.lang.foreign.Linker.nativeLinker();
                return new java.lang.invoke.MethodHandle[]{
                        linker.downcallHandle(set.get(), java.lang.foreign.FunctionDescriptor.ofVoid(java.lang.foreign.ValueLayout.JAVA_INT)),
                        linker.downcallHandle(get.get(), java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT))};
            } catch (IllegalArgumentException e) {
                // not loaded under this name: try the next
            }
        }
        return null;
    }

    /**
     * Bounds OpenBLAS's own thread pool (it is process-wide), so --threads N bounds all CPU work;
     * refused when the library offers no way to (a silent fallback would break the promise).
     */
    static void setThreads(int n) {
        if (THREADS == null) throw new IllegalStateException("OpenBLAS is loaded but openblas_set_num_threads was not found");
        try {
            THREADS[0].invokeExact(n);
        } catch (Throwable t) {
            throw new IllegalStateException("openblas_set_num_threads(" + n + "): " + t, t);
        }
    }

    /** OpenBLAS's thread count now. */
    static int threads() {
        if (THREADS == null) throw new IllegalStateException("OpenBLAS is loaded but openblas_get_num_threads was not found");
        try {
            return (int) THREADS[1].invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("openblas_get_num_threads: " + t, t);
        }
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
