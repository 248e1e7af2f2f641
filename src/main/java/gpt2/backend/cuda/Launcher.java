package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Profile;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Every kernel launch and GEMM of the CUDA backend passes through here: checked (a launch against
 * the kernel's parameter list read from its source, a GEMM against its operands' types and
 * extents), counted in the {@link Profile} with the bytes it moves (and a GEMM's FLOPs), timed
 * with device events when profiling, then handed to the {@link Executor}.
 *
 * <pre>
 * CudaBackend op --kernel(name, bytes, grid, args)--> check signature --> profile --> [mark] Executor.launch [mark]
 *                --gemm(family, shape, A, B, C)----> check extents   --> profile --> [mark] Executor.gemm   [mark]
 * </pre>
 */
final class Launcher {

    private final Executor exec;
    private final DType floatX;
    private final Map<String, List<KernelCompiler.Param>> signatures = new HashMap<>();
    private final Profile profile;
    private boolean timing;
    /** A timed call waiting for its events. */
    private record Timed(String family, int from, int to) {
    }

    private final List<Timed> pending = new ArrayList<>();

    /** Calls go to {@code exec} and are counted in {@code profile}. */
    Launcher(Executor exec, DType floatX, Profile profile) {
        this.exec = exec;
        this.floatX = floatX;
        this.profile = profile;
        for (String family : KernelCompiler.FAMILIES) signatures.putAll(KernelCompiler.signatures(family));
    }

    private final Map<String, Integer> sharedBytes = new HashMap<>();

    /** {@code kernel}'s dynamic shared memory, told to the executor once (it is fixed per kernel). */
    void sharedMemory(String kernel, int bytes) {
        Integer had = sharedBytes.put(kernel, bytes);
        if (had == null || had != bytes) exec.sharedMemory(kernel, bytes);
    }

    boolean timing() {
        return timing;
    }

    /**
     * Times every call with device events from now on (a GPU only; elsewhere there is nothing to
     * time); turning it off adds the times of the timed calls to the profile (waiting for them).
     */
    void setTiming(boolean on) {
        timing = on;
        if (!on) collectTimes();
    }

    private void collectTimes() {
        for (Timed p : pending) {
            double ms = exec.elapsedMs(p.from(), p.to());
            if (!Double.isNaN(ms)) profile.time(p.family(), ms);
        }
        pending.clear();
        exec.clearMarks();
    }

    static CudaBuffer cuda(Buffer b) {
        if (!(b instanceof CudaBuffer cb)) throw new IllegalArgumentException("buffer of another backend passed to CUDA: " + b);
        return cb;
    }

    /** A buffer as a kernel's pointer argument: its address and its view's bytes. */
    private static DevicePointer pointer(CudaBuffer b) {
        return new DevicePointer(b.address(), b.bytes());
    }

    static long addr(Buffer b) {
        return cuda(b).address();
    }

    static int blocks(long n, int threads) {
        long b = (n + threads - 1) / threads;
        if (b > Integer.MAX_VALUE) throw new IllegalArgumentException("grid too large: " + n + " elements");
        return (int) Math.max(1, b);
    }

    // ------------------------------------------------------------------ kernels

    /**
     * Launches a kernel on a (grid, gridY) grid moving {@code bytes}. Arguments in the kernel's
     * order: a Buffer (or null) for each pointer, Integer for int, Long for i64, Float for float;
     * all checked against the kernel's signature.
     */
    void kernel(String kernel, long bytes, int grid, int gridY, int block, Object... args) {
        kernel(kernel, bytes, 0, grid, gridY, block, args);
    }

    /** A launch that also does {@code flops} of matrix work (counted in the profile as a GEMM's are). */
    void kernel(String kernel, long bytes, double flops, int grid, int gridY, int block, Object... args) {
        List<KernelCompiler.Param> sig = signatures.get(kernel);
        if (sig == null) throw new IllegalStateException("no kernel " + kernel);
        if (args.length != sig.size()) {
            throw new IllegalArgumentException(kernel + ": " + args.length + " arguments for " + sig.size() + " parameters");
        }
        Object[] values = new Object[args.length];
        for (int i = 0; i < args.length; i++) {
            checkArgument(kernel, i, sig.get(i), args[i]);
            values[i] = args[i] == null ? DevicePointer.NULL : args[i] instanceof Buffer b ? pointer(cuda(b)) : args[i];
        }
        profile.kernel(kernel, bytes, flops);
        timed(kernel, () -> exec.launch(kernel, sig, grid, gridY, block, values));
    }

    private void checkArgument(String kernel, int i, KernelCompiler.Param p, Object a) {
        String where = kernel + " argument " + i + " (" + p + ")";
        if (p.isPointer()) {
            if (a == null) return; // optional tensors (a bias) are null pointers
            if (!(a instanceof Buffer b)) throw new IllegalArgumentException(where + ": expected a buffer, got " + a);
            DType want = switch (p) {
                case FLOATX_PTR -> floatX;
                case F32_PTR -> DType.F32;
                case BF16_PTR -> DType.BF16;
                case F64_PTR -> DType.F64;
                case I64_PTR -> DType.I64;
                default -> DType.I32;
            };
            if (cuda(b).dtype() != want) {
                throw new IllegalArgumentException(where + ": a " + cuda(b).dtype() + " buffer where the kernel takes "
                        + want + (p == KernelCompiler.Param.FLOATX_PTR ? " (the compute type)" : ""));
            }
            return;
        }
        boolean ok = switch (p) {
            case INT -> a instanceof Integer;
            case I64 -> a instanceof Long;
            default -> a instanceof Float;
        };
        if (!ok) throw new IllegalArgumentException(where + ": got " + (a == null ? "null" : a.getClass().getSimpleName()));
    }

    /** A memset or device-to-device copy: counted and timed like a launch. */
    void memoryOp(String family, long bytes, Runnable op) {
        profile.kernel(family, bytes);
        timed(family, op);
    }

    /** Runs op between two device events when timing (the times are read at {@link #collectTimes}). */
    private void timed(String family, Runnable op) {
        int from = timing ? exec.mark() : -1;
        op.run();
        if (from >= 0) pending.add(new Timed(family, from, exec.mark()));
    }

    // ------------------------------------------------------------------ GEMMs

    /** Column-major operand shapes of one GEMM (see {@link Executor.Gemm}). */
    record Shape(boolean transA, boolean transB, int m, int n, int k) {
    }

    /**
     * Column-major C (m,n) = op(A) op(B) (+ C when accumulate), batched with element strides;
     * optionally with cuBLASLt's epilogue: + bias (per row of C), then GELU with the pre-activation
     * into {@code pre}. float32 A and B into float32 C, or bf16 A and B into bf16 or float32 C.
     */
    void gemm(String family, Shape s, Buffer A, int lda, long strideA, Buffer B, int ldb, long strideB, Buffer C, int ldc,
              long strideC, int batch, boolean accumulate, Buffer bias, boolean gelu, Buffer pre) {
        run(family, check(s, A, lda, strideA, B, ldb, strideB, C, ldc, strideC, batch, accumulate, bias, gelu, pre));
    }

    /** A checked GEMM: counted with its FLOPs and the bytes it moves at least, timed, run. */
    private void run(String family, Executor.Gemm g) {
        long in = g.in().bytes(), out = g.out().bytes(), mn = (long) g.m() * g.n();
        long bytes = g.batch() * ((long) g.m() * g.k() * in + (long) g.k() * g.n() * in + mn * out * (g.accumulate() ? 2 : 1))
                + (g.gelu() ? mn * out : 0);
        profile.gemm(family, bytes, 2.0 * mn * g.k() * g.batch());
        timed(family, () -> exec.gemm(g));
    }

    /** float32 x float32 into float32, or bf16 x bf16 into bf16 or float32: what the executors run. */
    private static void checkTypes(DType a, DType b, DType c) {
        if (b != a || !(a == DType.F32 && c == DType.F32 || a == DType.BF16 && (c == DType.BF16 || c == DType.F32))) {
            throw new IllegalArgumentException("GEMM of " + a + " x " + b + " into " + c
                    + " (float32 x float32 into float32, or bf16 x bf16 into bf16 or float32)");
        }
    }

    /**
     * One matrix of a batch given by pointer: the buffer it lies in and the element offset of its
     * first element. A batch of these becomes a device array of pointers ({@link PointerTable}).
     */
    record Operand(CudaBuffer base, long offset) {
    }

    /**
     * A batched GEMM whose matrices are anywhere (rows of the qkv activation, heads of the output):
     * as {@link #gemm} with A, B and C given by device arrays of pointers. The tables were checked
     * when they were built: every matrix fits its buffer.
     */
    void gemmPointers(String family, Shape s, PointerTable A, int lda, PointerTable B, int ldb, PointerTable C, int ldc) {
        int batch = A.size();
        if (B.size() != batch || C.size() != batch) throw new IllegalArgumentException("GEMM pointer tables of different batch sizes");
        DType in = A.dtype(), out = C.dtype();
        checkTypes(in, B.dtype(), out);
        int m = s.m(), n = s.n(), k = s.k();
        A.checkExtent("A", s.transA() ? k : m, s.transA() ? m : k, lda);
        B.checkExtent("B", s.transB() ? n : k, s.transB() ? k : n, ldb);
        C.checkExtent("C", m, n, ldc);
        run(family, new Executor.Gemm(s.transA(), s.transB(), m, n, k, A.device().address(), lda, 0, B.device().address(),
                ldb, 0, C.device().address(), ldc, 0, batch, in, out, false, 0, false, 0, true));
    }

    /** Whether the executor can run this epilogue GEMM (cuBLASLt has an algorithm for it). */
    boolean epilogueAvailable(Shape s, Buffer A, int lda, Buffer B, int ldb, Buffer C, int ldc, Buffer bias, boolean gelu, Buffer pre) {
        return exec.epilogueAvailable(check(s, A, lda, 0, B, ldb, 0, C, ldc, 0, 1, false, bias, gelu, pre));
    }

    private static Executor.Gemm check(Shape s, Buffer A, int lda, long strideA, Buffer B, int ldb, long strideB, Buffer C,
                                       int ldc, long strideC, int batch, boolean accumulate, Buffer bias, boolean gelu,
                                       Buffer pre) {
        CudaBuffer a = cuda(A), b = cuda(B), c = cuda(C);
        int m = s.m(), n = s.n(), k = s.k();
        extent("A", a, s.transA() ? k : m, s.transA() ? m : k, lda, strideA, batch);
        extent("B", b, s.transB() ? n : k, s.transB() ? k : n, ldb, strideB, batch);
        extent("C", c, m, n, ldc, strideC, batch);
        DType in = a.dtype();
        checkTypes(in, b.dtype(), c.dtype());
        if (bias != null) CudaBackend.expect(bias, c.dtype(), m, "GEMM bias");
        if (gelu) {
            if (pre == null || cuda(pre).dtype() != c.dtype()) throw new IllegalArgumentException("GEMM with GELU: the pre-activation buffer must match C");
            extent("pre-activation", cuda(pre), m, n, ldc, strideC, batch);
        }
        return new Executor.Gemm(s.transA(), s.transB(), m, n, k, a.address(), lda, strideA, b.address(), ldb, strideB,
                c.address(), ldc, strideC, batch, in, c.dtype(), accumulate, bias == null ? 0L : addr(bias), gelu,
                pre == null ? 0L : addr(pre), false);
    }

    /** A column-major (rows x cols) operand with leading dimension ld, batch matrices stride apart, fits its buffer. */
    private static void extent(String name, CudaBuffer b, int rows, int cols, int ld, long stride, int batch) {
        long need = (long) ld * (cols - 1) + rows + (batch - 1) * stride;
        if (ld < rows || need > b.length()) {
            throw new IllegalArgumentException("GEMM operand " + name + ": " + rows + " x " + cols + " (ld " + ld
                    + ", " + batch + " of stride " + stride + ") needs " + need + " elements, the buffer has " + b.length());
        }
    }
}
