package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Dropout;
import gpt2.backend.Profile;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The reference backend: float32 in off-heap memory (so a 1.5B-parameter model fits outside the
 * Java heap), ops in pure Java with the Vector API, parallel over one fixed thread pool.
 * Each op family is one class with forward and backward side by side; this class only unwraps
 * buffers and dispatches.
 */
public final class CpuBackend implements Backend {

    private final Set<Arena> arenas = ConcurrentHashMap.newKeySet();
    private final Parallel par;
    /** The one place the GEMM path is chosen: OpenBLAS when it loads, else the pure-Java GEMM. */
    private final boolean blas;
    /** Muon's orthogonalisation, with its scratch kept between calls. */
    private final NewtonSchulz newtonSchulz;

    /** A backend with one thread per available core. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        this(threads, Blas.available());
    }

    /** @param useBlas OpenBLAS GEMMs (refused when the library cannot load) or the pure-Java GEMM */
    public CpuBackend(int threads, boolean useBlas) {
        this(threads, useBlas, ATTENTION_GEMM_MIN_T);
    }

    /** @param attentionGemmMinT the sequence length from which attention runs as GEMMs (tests pick 1 or none) */
    CpuBackend(int threads, boolean useBlas, int attentionGemmMinT) {
        this.attentionGemmMinT = attentionGemmMinT;
        if (useBlas && !Blas.available()) {
            throw new IllegalStateException("OpenBLAS cannot be used: " + Blas.unavailableReason());
        }
        this.par = new Parallel(threads);
        this.blas = useBlas;
        this.newtonSchulz = new NewtonSchulz(par, useBlas);
        if (useBlas) {
            Blas.setThreads(threads); // OpenBLAS keeps its own pool: bound it too
            Blas.noteIfHeldBack();
        }
    }

    /** Ten: the JIT compiles the vector kernels during the first steps. */
    @Override
    public int benchWarmupSteps() {
        return 10;
    }

    /** The GEMM in use: "OpenBLAS, Haswell kernels (OPENBLAS_CORETYPE=Haswell), ..." or "pure-Java GEMM". */
    @Override
    public String gemmDescription() {
        if (!blas) return "pure-Java GEMM" + (Blas.available() ? "" : " (OpenBLAS: " + Blas.unavailableReason() + ")");
        String core = Blas.coreName(), forced = System.getenv("OPENBLAS_CORETYPE");
        return "OpenBLAS, " + (core == null ? "kernel set unknown" : core + " kernels")
                + (forced == null || forced.isBlank() ? " (its choice for this CPU)" : " (OPENBLAS_CORETYPE=" + forced.trim() + ")")
                + ", idle workers sleep after 2^" + Blas.THREAD_TIMEOUT + " cycles (OPENBLAS_THREAD_TIMEOUT)";
    }

    private final java.util.concurrent.atomic.AtomicLong gemmNanos = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong gemmFlops = new java.util.concurrent.atomic.AtomicLong();

    /** Time and FLOPs spent in matmul forward/backward since the last reset (for gpt2 bench). */
    @Override
    public long[] gemmStats() {
        return new long[]{gemmNanos.get(), gemmFlops.get()};
    }

    @Override
    public void resetGemmStats() {
        gemmNanos.set(0);
        gemmFlops.set(0);
    }

    /** GFLOP/s of one square n x n sgemm on this backend's GEMM path (the reference rate). */
    @Override
    public double measureGemmPeak(int n, int repeats) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment x = a.allocate(4L * n * n, 64), y = a.allocate(4L * n * n, 64), z = a.allocate(4L * n * n, 64);
            for (long i = 0; i < (long) n * n; i++) {
                x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (i % 7) * 0.01f);
                y.setAtIndex(ValueLayout.JAVA_FLOAT, i, (i % 5) * 0.01f);
            }
            double best = 0;
            for (int r = 0; r < repeats; r++) {
                long t0 = System.nanoTime();
                if (blas) Blas.sgemm(false, true, n, n, n, 1f, x, n, y, n, 0f, z, n);
                else Matmul.forward(par, z, x, y, null, n, n, n);
                double s = (System.nanoTime() - t0) / 1e9;
                best = Math.max(best, 2.0 * n * n * n / s / 1e9);
            }
            return best;
        }
    }

    /** Whether OpenBLAS is on this machine (else the pure-Java GEMM is the only one). */
    public static boolean blasAvailable() {
        return Blas.available();
    }

    @Override
    public String name() {
        return "cpu (" + par.threads() + " threads, " + F32.S.length() + "-lane float vectors, "
                + (blas ? "OpenBLAS" : "Java") + " GEMM)";
    }

    public int threads() {
        return par.threads();
    }

    private static MemorySegment seg(Buffer b) {
        if (b == null) return null;
        if (!(b instanceof CpuBuffer cb)) {
            throw new IllegalArgumentException("buffer of another backend passed to the CPU backend: " + b);
        }
        return cb.segment();
    }

    // ------------------------------------------------------------------ memory

    @Override
    public Buffer allocate(DType dtype, long length, String what) {
        long bytes = length * dtype.bytes();
        Arena arena = Arena.ofShared();
        try {
            MemorySegment s = arena.allocate(Math.max(bytes, 1), 64);
            arenas.add(arena);
            return new CpuBuffer(s.asSlice(0, bytes), dtype, length, arena);
        } catch (OutOfMemoryError e) {
            arena.close();
            throw new OutOfMemoryError("cannot allocate " + what + ": " + length + " x " + dtype + " ("
                    + (bytes >> 20) + " MiB) of off-heap memory");
        }
    }

    @Override
    public void free(Buffer buffer) {
        if (!(buffer instanceof CpuBuffer cb) || cb.owner() == null) {
            throw new IllegalArgumentException("free: not an allocation of this backend (a slice?)");
        }
        if (arenas.remove(cb.owner())) cb.owner().close();
    }

    @Override
    public void write(Buffer dst, float[] src) {
        check(dst, DType.F32, src.length);
        MemorySegment.copy(src, 0, seg(dst), ValueLayout.JAVA_FLOAT, 0, src.length);
    }

    @Override
    public void write(Buffer dst, int[] src) {
        check(dst, DType.I32, src.length);
        MemorySegment.copy(src, 0, seg(dst), ValueLayout.JAVA_INT, 0, src.length);
    }

    @Override
    public void read(Buffer src, float[] dst) {
        check(src, DType.F32, dst.length);
        MemorySegment.copy(seg(src), ValueLayout.JAVA_FLOAT, 0, dst, 0, dst.length);
    }

    private static void check(Buffer b, DType dtype, long n) {
        if (b.dtype() != dtype || b.length() < n) {
            throw new IllegalArgumentException("buffer of " + b.length() + " x " + b.dtype() + " cannot hold "
                    + n + " x " + dtype);
        }
    }

    @Override
    public void copyToHost(Buffer src, MemorySegment dst) {
        if (dst.byteSize() != src.length() * src.dtype().bytes()) {
            throw new IllegalArgumentException("copyToHost: " + dst.byteSize() + " bytes for a buffer of " + src.length());
        }
        dst.copyFrom(seg(src));
    }

    @Override
    public void copyFromHost(Buffer dst, MemorySegment src) {
        if (src.byteSize() != dst.length() * dst.dtype().bytes()) {
            throw new IllegalArgumentException("copyFromHost: " + src.byteSize() + " bytes for a buffer of " + dst.length());
        }
        seg(dst).copyFrom(src);
    }

    @Override
    public void zero(Buffer buffer) {
        op("zero", buffer.length() * buffer.dtype().bytes(), 0, () -> seg(buffer).fill((byte) 0));
    }

    @Override
    public void copy(Buffer dst, Buffer src) {
        if (dst.length() != src.length() || dst.dtype() != src.dtype()) {
            throw new IllegalArgumentException("copy between buffers of different shape");
        }
        op("copy", 2 * dst.length() * dst.dtype().bytes(), 0, () -> seg(dst).copyFrom(seg(src)));
    }

    /** The CPU computes in float32: the only conversion is the identity (a copy). */
    @Override
    public void convert(Buffer dst, Buffer src) {
        if (dst.dtype() != DType.F32 || src.dtype() != DType.F32) {
            throw new IllegalArgumentException("convert " + src.dtype() + " to " + dst.dtype()
                    + ": the CPU backend holds float32 only");
        }
        copy(dst, src);
    }

    // ------------------------------------------------------------------ ops

    /** Float32 bytes of n elements. */
    private static long f(long n) {
        return 4 * n;
    }

    @Override
    public void encoderForward(Buffer out, Buffer tokens, Buffer wte, Buffer wpe, int B, int T, int C) {
        long N = (long) B * T;
        op("encoder forward", f((wpe == null ? 2 : 3) * N * C) + 4 * N, 0,
                () -> Encoder.forward(par, seg(out), seg(tokens), seg(wte), seg(wpe), B, T, C));
    }

    @Override
    public void encoderBackward(Buffer dwte, Buffer dwpe, Buffer dout, Buffer tokens, int B, int T, int C) {
        long N = (long) B * T;
        op("encoder backward", f((dwpe == null ? 3 : 5) * N * C) + 4 * N, 0,
                () -> Encoder.backward(par, seg(dwte), seg(dwpe), seg(dout), seg(tokens), B, T, C));
    }

    @Override
    public void layerNormForward(Buffer out, Buffer mean, Buffer rstd, Buffer inp, Buffer weight, Buffer bias,
                                 int N, int C, float eps) {
        op("layernorm forward", f(2L * N * C + 2L * N + 2L * C), 0, () ->
                LayerNorm.forward(par, seg(out), seg(mean), seg(rstd), seg(inp), seg(weight), seg(bias), N, C, eps));
    }

    @Override
    public void layerNormBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp,
                                  Buffer weight, Buffer mean, Buffer rstd, int N, int C) {
        op("layernorm backward", f(4L * N * C + 2L * N + 5L * C), 0, () ->
                LayerNorm.backward(par, seg(dinp), seg(dweight), seg(dbias), seg(dout), seg(inp), seg(weight), seg(mean),
                        seg(rstd), N, C));
    }

    @Override
    public void rmsNormForward(Buffer out, Buffer rstd, Buffer inp, Buffer weight, int N, int C, float eps) {
        op("rmsnorm forward", f(2L * N * C + N + C), 0,
                () -> LayerNorm.rmsForward(par, seg(out), seg(rstd), seg(inp), seg(weight), N, C, eps));
    }

    @Override
    public void rmsNormBackward(Buffer dinp, Buffer dweight, Buffer dout, Buffer inp, Buffer weight, Buffer rstd,
                                int N, int C) {
        op("rmsnorm backward", f(4L * N * C + N + 3L * C), 0, () ->
                LayerNorm.rmsBackward(par, seg(dinp), seg(dweight), seg(dout), seg(inp), seg(weight), seg(rstd), N, C));
    }

    @Override
    public void residualLayerNormForward(Buffer res, Buffer out, Buffer mean, Buffer rstd, Buffer a, Buffer b,
                                         Buffer weight, Buffer bias, int N, int C, float eps) {
        op("residual + layernorm forward", f(4L * N * C + 2L * N + 2L * C), 0, () -> LayerNorm.residualForward(par,
                seg(res), seg(out), seg(mean), seg(rstd), seg(a), seg(b), seg(weight), seg(bias), N, C, eps));
    }

    @Override
    public void residualRmsNormForward(Buffer res, Buffer out, Buffer rstd, Buffer a, Buffer b, Buffer weight, int N,
                                       int C, float eps) {
        op("residual + rmsnorm forward", f(4L * N * C + N + C), 0, () -> LayerNorm.residualForward(par,
                seg(res), seg(out), null, seg(rstd), seg(a), seg(b), seg(weight), null, N, C, eps));
    }

    /** What a linear layer of this shape is in a GPT: its family in the profile. */
    private static String linear(int C, int OC) {
        if (OC == 3 * C) return "qkv";
        if (OC == C) return "attention proj";
        if (OC == 4 * C) return "mlp fc";
        if (C == 4 * OC) return "mlp proj";
        return OC > 4 * C ? "classifier" : C + "x" + OC;
    }

    @Override
    public void matmulForward(Buffer out, Buffer inp, Buffer weight, Buffer bias, int N, int C, int OC) {
        long t0 = System.nanoTime();
        gemmOp("matmul forward (" + linear(C, OC) + ")", f((long) N * C + (long) OC * C + (long) N * OC), 2.0 * N * C * OC, () -> {
            if (N <= Matmul.FEW_ROWS) Matmul.forwardFew(par, seg(out), seg(inp), seg(weight), seg(bias), N, C, OC);
            else if (blas) Matmul.forwardBlas(par, seg(out), seg(inp), seg(weight), seg(bias), N, C, OC);
            else Matmul.forward(par, seg(out), seg(inp), seg(weight), seg(bias), N, C, OC);
        });
        gemmNanos.addAndGet(System.nanoTime() - t0);
        gemmFlops.addAndGet(2L * N * C * OC);
    }

    @Override
    public void matmulBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                               int N, int C, int OC) {
        long t0 = System.nanoTime();
        gemmOp("matmul backward (" + linear(C, OC) + ")", f(2L * N * OC + 2L * N * C + 3L * OC * C), 4.0 * N * C * OC, () -> {
            if (blas) Matmul.backwardBlas(par, seg(dinp), seg(dweight), seg(dbias), seg(dout), seg(inp), seg(weight), N, C, OC);
            else Matmul.backward(par, seg(dinp), seg(dweight), seg(dbias), seg(dout), seg(inp), seg(weight), N, C, OC);
        });
        gemmNanos.addAndGet(System.nanoTime() - t0);
        gemmFlops.addAndGet(4L * N * C * OC);
    }

    /** The causal attention's matrix FLOPs: {@code products} T x T x hs products over the triangle, 2 FLOPs each. */
    private static double attentionFlops(int products, int B, int T, int C) {
        return products * 2.0 * B * (T * (T + 1.0) / 2) * C;
    }

    @Override
    public void attentionForward(Buffer out, Buffer att, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        long N = (long) B * T;
        op("attention forward", f(4 * N * C + (long) B * NH * T * T), attentionFlops(2, B, T, C), () -> {
            if (attentionByGemm(T, dropout)) Attention.forwardBlas(par, seg(out), seg(att), seg(qkv), B, T, C, NH);
            else Attention.forward(par, seg(out), seg(att), seg(qkv), B, T, C, NH, dropout);
        });
    }

    @Override
    public void attentionBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer att, int B, int T, int C, int NH,
                                  Dropout dropout) {
        long N = (long) B * T;
        op("attention backward", f(7 * N * C + (long) B * NH * T * T), attentionFlops(4, B, T, C), () -> {
            if (attentionByGemm(T, dropout)) {
                Attention.backwardBlas(par, seg(dqkv), seg(dout), seg(qkv), seg(att), attentionScratch(T), B, T, C, NH);
            } else {
                Attention.backward(par, seg(dqkv), seg(dout), seg(qkv), seg(att), B, T, C, NH, dropout);
            }
        });
    }

    /**
     * Sequences from this length on run their attention as OpenBLAS GEMMs per head ({@link
     * Attention#forwardBlas}); shorter ones, and any with dropout on the weights, through the Java
     * kernels, which split the heads over threads (at short lengths the GEMM calls cost more than
     * they save).
     */
    static final int ATTENTION_GEMM_MIN_T = 256;

    private final int attentionGemmMinT;
    /** The GEMM attention backward's T x T scratch, kept between calls (the workers write it too: a shared arena). */
    private Arena attentionArena;
    private MemorySegment attentionScratch;

    private MemorySegment attentionScratch(int T) {
        long bytes = 4L * T * T;
        if (attentionScratch == null || attentionScratch.byteSize() < bytes) {
            if (attentionArena != null) attentionArena.close();
            attentionArena = Arena.ofShared();
            attentionScratch = attentionArena.allocate(bytes, 64);
        }
        return attentionScratch;
    }

    private boolean attentionByGemm(int T, Dropout dropout) {
        return blas && T >= attentionGemmMinT && (dropout == null || dropout.isOff());
    }

    @Override
    public void attentionDecode(Buffer out, Buffer qkv, Buffer kcache, Buffer vcache, int B, int pos, int maxT, int C,
                                int NH) {
        op("attention decode", f((long) B * (4L * C + 2L * (pos + 1) * C)), 4.0 * B * (pos + 1) * C,
                () -> Attention.decode(par, seg(out), seg(qkv), seg(kcache), seg(vcache), B, pos, maxT, C, NH));
    }

    @Override
    public void geluForward(Buffer out, Buffer inp, long N) {
        op("gelu forward", f(2 * N), 0, () -> Pointwise.geluForward(par, seg(out), seg(inp), N));
    }

    @Override
    public void geluBackward(Buffer dinp, Buffer inp, Buffer dout, long N) {
        op("gelu backward", f(3 * N), 0, () -> Pointwise.geluBackward(par, seg(dinp), seg(inp), seg(dout), N));
    }

    @Override
    public void residualForward(Buffer out, Buffer inp1, Buffer inp2, long N) {
        op("residual", f(3 * N), 0, () -> Pointwise.residualForward(par, seg(out), seg(inp1), seg(inp2), N));
    }

    @Override
    public void dropout(Buffer x, long N, Dropout dropout) {
        if (dropout == null || dropout.isOff()) return;
        op("dropout", f(2 * N), 0, () -> Pointwise.dropout(par, seg(x), N, dropout));
    }

    @Override
    public void crossEntropyForward(Buffer losses, Buffer logits, Buffer targets, int N, int V, int Vp) {
        op("classifier loss", f((long) N * V + 2L * N), 0,
                () -> CrossEntropy.forward(par, seg(losses), seg(logits), seg(targets), N, V, Vp));
    }

    @Override
    public void crossEntropyBackward(Buffer logits, Buffer targets, float dloss, int N, int V, int Vp, float softcap) {
        op("classifier gradient", f(2L * N * Vp + N), 0,
                () -> CrossEntropy.backward(par, seg(logits), seg(targets), dloss, N, V, Vp, softcap));
    }

    @Override
    public void crossEntropyFused(Buffer losses, Buffer logits, Buffer targets, float dloss, int N, int V, int Vp,
                                  float softcap) {
        op("classifier loss + gradient", f(2L * N * Vp + 2L * N), 0,
                () -> CrossEntropy.fused(par, seg(losses), seg(logits), seg(targets), dloss, N, V, Vp, softcap, false));
    }

    @Override
    public void softcapCrossEntropyFused(Buffer losses, Buffer logits, Buffer targets, float dloss, int N, int V, int Vp,
                                         float softcap) {
        op("classifier softcap + loss + gradient", f(2L * N * Vp + 2L * N), 0, () -> CrossEntropy.fused(par, seg(losses),
                seg(logits), seg(targets), dloss, N, V, Vp, softcap, true));
    }

    @Override
    public void softcapForward(Buffer logits, long N, float cap) {
        op("softcap forward", f(2 * N), 0, () -> Pointwise.softcapForward(par, seg(logits), N, cap));
    }

    @Override
    public void qkNormRopeForward(Buffer qkv, Buffer rstd, int B, int T, int C, int NH, int pos0, float ropeTheta,
                                  float eps) {
        float[] cs = ropeTable(C / NH, ropeTheta, pos0 + T);
        op("qk-norm/rope forward", f(4L * B * T * C), 0,
                () -> QkNormRope.forward(par, seg(qkv), seg(rstd), B, T, C, NH, pos0, cs, eps));
    }

    @Override
    public void qkNormRopeBackward(Buffer dqkv, Buffer qkv, Buffer rstd, int B, int T, int C, int NH, float ropeTheta) {
        float[] cs = ropeTable(C / NH, ropeTheta, T);
        op("qk-norm/rope backward", f(6L * B * T * C), 0,
                () -> QkNormRope.backward(par, seg(dqkv), seg(qkv), seg(rstd), B, T, C, NH, cs));
    }

    /** The rotations of RoPE (theta > 0) for at least {@code positions}, kept between calls (grown by doubling); null for theta 0. */
    private float[] ropeTable(int hs, float theta, int positions) {
        if (theta <= 0) return null;
        synchronized (this) {
            boolean fits = ropeCs != null && ropeHs == hs && ropeTheta == theta && ropePositions >= positions;
            if (!fits) {
                int p = ropeCs != null && ropeHs == hs && ropeTheta == theta ? Math.max(positions, 2 * ropePositions) : positions;
                ropeCs = Backend.ropeCosSin(p, hs, theta);
                ropeHs = hs;
                ropeTheta = theta;
                ropePositions = p;
            }
            return ropeCs;
        }
    }

    private float[] ropeCs;
    private int ropeHs, ropePositions;
    private float ropeTheta;

    @Override
    public void reluSquaredForward(Buffer out, Buffer inp, long N) {
        op("relu2 forward", f(2 * N), 0, () -> Pointwise.reluSquaredForward(par, seg(out), seg(inp), N));
    }

    @Override
    public void reluSquaredBackward(Buffer dinp, Buffer inp, Buffer dout, long N) {
        op("relu2 backward", f(3 * N), 0, () -> Pointwise.reluSquaredBackward(par, seg(dinp), seg(inp), seg(dout), N));
    }

    @Override
    public void muonMomentum(Buffer grads, Buffer buf, float momentum, float gradScale) {
        if (grads.length() != buf.length()) throw new IllegalArgumentException("muonMomentum: grads and buf differ in length");
        long n = grads.length();
        op("muon momentum", f(4 * n), 0, () -> Optimizer.muonMomentum(par, seg(grads), seg(buf), n, momentum, gradScale));
    }

    @Override
    public void newtonSchulz(Buffer x, int rows, int cols, int steps) {
        check(x, DType.F32, (long) rows * cols);
        double r = Math.min(rows, cols), c = Math.max(rows, cols);
        gemmOp("newton-schulz", f(2L * rows * cols), steps * (4 * r * r * c + 2 * r * r * r),
                () -> newtonSchulz.orthogonalize(seg(x), rows, cols, steps));
    }

    @Override
    public void axpy(Buffer y, Buffer x, float alpha, long n) {
        check(y, DType.F32, n);
        check(x, DType.F32, n);
        op("axpy", f(3 * n), 0, () -> Optimizer.axpy(par, seg(y), seg(x), alpha, n));
    }

    @Override
    public double sumOfSquares(Buffer x) {
        double[] out = new double[1];
        op("gradient norm", f(x.length()), 0, () -> out[0] = Optimizer.sumOfSquares(par, seg(x), x.length()));
        return out[0];
    }

    @Override
    public void adamw(Buffer params, Buffer grads, Buffer m, Buffer v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, float gradScale, int t) {
        long n = params.length();
        if (grads.length() != n || m.length() != n || v.length() != n) {
            throw new IllegalArgumentException("adamw: params, grads, m and v differ in length");
        }
        op("adamw", f(7 * n), 0, () -> Optimizer.adamw(par, seg(params), seg(grads), seg(m), seg(v), n, lr, beta1, beta2,
                eps, weightDecay, gradScale, t));
    }

    // ------------------------------------------------------------------ profile

    /** The ops timed while profiling: family, bytes, FLOPs, wall time (the CPU runs each op to its end). */
    private final Profile profile = Profile.host();
    private volatile boolean profiling;

    /** Every op from now on timed by the wall clock and added to {@link #profile()} (bench --profile 1). */
    @Override
    public void setProfiling(boolean on) {
        profiling = on;
    }

    /** The op families timed so far; counts nothing unless {@link #setProfiling} turned it on. */
    @Override
    public Profile profile() {
        return profile;
    }

    private void op(String family, long bytes, double flops, Runnable body) {
        run(family, false, bytes, flops, body);
    }

    private void gemmOp(String family, long bytes, double flops, Runnable body) {
        run(family, true, bytes, flops, body);
    }

    private void run(String family, boolean gemm, long bytes, double flops, Runnable body) {
        if (!profiling) {
            body.run();
            return;
        }
        long t0 = System.nanoTime();
        body.run();
        long t1 = System.nanoTime();
        synchronized (profile) {
            profile.hostOp(family, gemm, bytes, flops, (t1 - t0) / 1e6);
        }
    }

    /**
     * This machine's memory bandwidth in GB/s as a copy moves it (bytes read + written per second, all
     * threads copying their share of {@code bytes}; the best of ten): the memory-bound floor's rate.
     */
    @Override
    public double copyBandwidth(long bytes) {
        try (Arena a = Arena.ofShared()) {
            MemorySegment src = a.allocate(bytes, 64), dst = a.allocate(bytes, 64);
            src.fill((byte) 1);
            dst.fill((byte) 0);
            double best = 0;
            long lines = bytes / 64;
            for (int r = 0; r < 10; r++) {
                long t0 = System.nanoTime();
                par.forRange(lines, 1 << 14, (s, e) -> MemorySegment.copy(src, s * 64, dst, s * 64, (e - s) * 64));
                best = Math.max(best, 2.0 * bytes / ((System.nanoTime() - t0) / 1e9) / 1e9);
            }
            return best;
        }
    }

    /**
     * This machine's read bandwidth in GB/s (all threads summing their share of {@code bytes} of
     * floats; the best of twenty, the first ones warming up the JIT): the rate decoding's weight reads
     * are measured against.
     */
    @Override
    public double readBandwidth(long bytes) {
        try (Arena a = Arena.ofShared()) {
            MemorySegment src = a.allocate(bytes, 64);
            src.fill((byte) 1);
            double best = 0;
            long n = bytes / 4;
            java.util.concurrent.atomic.DoubleAdder sums = new java.util.concurrent.atomic.DoubleAdder(); // keeps the reads alive
            for (int r = 0; r < 20; r++) {
                long t0 = System.nanoTime();
                par.forRange(n / 4096, 16, (s, e) -> sums.add(F32.sum(F32.sumRange(src, s * 4096, (e - s) * 4096))));
                best = Math.max(best, bytes / ((System.nanoTime() - t0) / 1e9) / 1e9);
            }
            return sums.sum() >= 0 ? best : Double.NaN; // the sum is used, so the JIT keeps the reads
        }
    }

    @Override
    public void close() {
        newtonSchulz.close();
        if (attentionArena != null) attentionArena.close();
        par.close();
        for (Arena a : arenas) a.close();
        arenas.clear();
    }
}
