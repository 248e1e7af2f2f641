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

    /**
     * OPENBLAS_THREAD_TIMEOUT as OpenBLAS reads it at load (log2 of the cycles its idle workers spin
     * before they sleep): the user's value, else the one set here. OpenBLAS's default (2^28 cycles,
     * about 0.1 s) keeps its workers spinning after every GEMM, and on a machine with as many threads
     * as cores they take the cores from the element-wise ops that follow: measured on 2 cores, the
     * classifier's softmax after its GEMM ran 1.8x slower, a d4-modern step 1.2x.
     */
    static final String THREAD_TIMEOUT = System.getenv("OPENBLAS_THREAD_TIMEOUT") != null
            ? System.getenv("OPENBLAS_THREAD_TIMEOUT") : "4";

    private static final String UNAVAILABLE = probe();

    /** Sets OPENBLAS_THREAD_TIMEOUT in the C environment (the JVM's own copy cannot) before OpenBLAS loads, unless the user set it. */
    private static void setThreadTimeout() {
        if (System.getenv("OPENBLAS_THREAD_TIMEOUT") != null) return;
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            var linker = java.lang.foreign.Linker.nativeLinker();
            var setenv = linker.defaultLookup().find("setenv").orElseThrow();
            var h = linker.downcallHandle(setenv, java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT,
                    java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.JAVA_INT));
            int rc = (int) h.invokeExact(arena.allocateFrom("OPENBLAS_THREAD_TIMEOUT"), arena.allocateFrom(THREAD_TIMEOUT), 0);
            if (rc != 0) throw new IllegalStateException("setenv returned " + rc);
        } catch (Throwable t) {
            throw new IllegalStateException("cannot set OPENBLAS_THREAD_TIMEOUT before loading OpenBLAS: " + t, t);
        }
    }

    private static String probe() {
        if ("java".equalsIgnoreCase(System.getenv("GPT2_BLAS"))) return "GPT2_BLAS=java";
        setThreadTimeout();
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
     * openblas_set_num_threads / openblas_get_num_threads / openblas_get_corename of the library
     * JavaCPP loaded, found by their names (the presets without LAPACK do not map them); null when
     * not found.
     */
    private static final java.lang.invoke.MethodHandle[] THREADS = threadHandles();

    private static java.lang.invoke.MethodHandle[] threadHandles() {
        if (UNAVAILABLE != null) return null;
        for (String lib : new String[]{"libopenblas_nolapack.so.0", "libopenblas.so.0"}) {
            try {
                var l = java.lang.foreign.SymbolLookup.libraryLookup(lib, java.lang.foreign.Arena.global());
                var set = l.find("openblas_set_num_threads");
                var get = l.find("openblas_get_num_threads");
                var core = l.find("openblas_get_corename");
                if (set.isEmpty() || get.isEmpty()) continue;
                var linker = java.lang.foreign.Linker.nativeLinker();
                return new java.lang.invoke.MethodHandle[]{
                        linker.downcallHandle(set.get(), java.lang.foreign.FunctionDescriptor.ofVoid(java.lang.foreign.ValueLayout.JAVA_INT)),
                        linker.downcallHandle(get.get(), java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT)),
                        core.map(c -> linker.downcallHandle(c, java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.ADDRESS)))
                                .orElse(null)};
            } catch (IllegalArgumentException e) {
                // not loaded under this name: try the next
            }
        }
        return null;
    }

    /** The kernel set OpenBLAS runs (openblas_get_corename, e.g. "Haswell", "SkylakeX"), or null where it cannot say. */
    static String coreName() {
        if (THREADS == null || THREADS[2] == null) return null;
        try {
            java.lang.foreign.MemorySegment p = (java.lang.foreign.MemorySegment) THREADS[2].invokeExact();
            return p.equals(java.lang.foreign.MemorySegment.NULL) ? null : p.reinterpret(64).getString(0);
        } catch (Throwable t) {
            return null;
        }
    }

    /** The instruction-set level of an OpenBLAS kernel set's name (1 SSE, 2 AVX, 3 AVX2, 4 AVX-512), 0 if unknown. */
    static int kernelLevel(String core) {
        return switch (core.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "skylakex", "cooperlake", "sapphirerapids" -> 4;
            case "haswell", "zen" -> 3;
            case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator" -> 2;
            case "katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington", "nehalem",
                 "atom", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat" -> 1;
            default -> 0;
        };
    }

    /** The level this CPU supports by its /proc/cpuinfo flags (as {@link #kernelLevel}), 0 if unknown. */
    static int cpuLevel(String flags) {
        java.util.Set<String> f = java.util.Set.of(flags.trim().split("\\s+"));
        if (f.containsAll(java.util.List.of("avx512f", "avx512bw", "avx512vl", "avx512dq"))) return 4;
        if (f.contains("avx2") && f.contains("fma")) return 3;
        if (f.contains("avx")) return 2;
        return f.contains("sse2") ? 1 : 0;
    }

    private static final String[] ISA = {"?", "SSE", "AVX", "AVX2", "AVX-512"};

    /**
     * The note for OPENBLAS_CORETYPE = {@code forced} on a CPU with these flags, when it names a kernel
     * set below what the CPU runs (OpenBLAS obeys it, and every GEMM runs slower); else null.
     */
    static String heldBackNote(String forced, String cpuFlags) {
        if (forced == null || forced.isBlank() || cpuFlags == null) return null;
        int f = kernelLevel(forced), c = cpuLevel(cpuFlags);
        if (f == 0 || c <= f) return null;
        return "note: OPENBLAS_CORETYPE=" + forced.trim() + " holds OpenBLAS to its " + ISA[f] + " kernels on a CPU with "
                + ISA[c] + ": its GEMMs run slower than this CPU allows; unset it to time the CPU "
                + "(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...)";
    }

    /** This CPU's flags line from /proc/cpuinfo, or null off Linux. */
    static String cpuFlags() {
        try (var lines = java.nio.file.Files.lines(java.nio.file.Path.of("/proc/cpuinfo"))) {
            return lines.filter(l -> l.startsWith("flags")).map(l -> l.substring(l.indexOf(':') + 1)).findFirst().orElse(null);
        } catch (java.io.IOException | RuntimeException e) {
            return null;
        }
    }

    private static final java.util.concurrent.atomic.AtomicBoolean NOTED = new java.util.concurrent.atomic.AtomicBoolean();

    /** Prints {@link #heldBackNote} for this process once, on the first use of OpenBLAS. */
    static void noteIfHeldBack() {
        if (NOTED.getAndSet(true)) return;
        String note = heldBackNote(System.getenv("OPENBLAS_CORETYPE"), cpuFlags());
        if (note != null) System.err.println(note);
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
