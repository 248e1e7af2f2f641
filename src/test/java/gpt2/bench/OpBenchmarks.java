package gpt2.bench;

import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.cpu.CpuBackend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The CPU backend's ops at GPT-2 124M's shapes for B = 4, T = 64 (N = 256 rows, C = 768), one
 * op per benchmark, average time per call. benchmarks/run-jmh.sh runs them and converts the times
 * to GFLOP/s or GB/s for benchmarks/README.md.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class OpBenchmarks {

    static final int N = 256, C = 768, V = 50257, Vp = 50304, B = 4, T = 64, NH = 12;

    @Param({"blas", "java"})
    public String gemm;

    CpuBackend be;
    Buffer x, w, w4, out, out4, dx, dw, logits, targets, losses, att, qkv, params, grads, m, v, mean, rstd, lnw, lnb;

    Buffer rand(long n, Random r, float scale) {
        float[] a = new float[(int) n];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian() * scale;
        Buffer b = be.allocate(DType.F32, n, "bench");
        be.write(b, a);
        return b;
    }

    /** Real pages with real numbers (untouched zero pages would make memory-bound ops look free). */
    Buffer filled(long n, float value) {
        Buffer b = be.allocate(DType.F32, n, "bench");
        float[] chunk = new float[1 << 20];
        java.util.Arrays.fill(chunk, value);
        for (long s = 0; s < n; s += chunk.length) {
            int len = (int) Math.min(chunk.length, n - s);
            be.write(b.slice(s, len), len == chunk.length ? chunk : java.util.Arrays.copyOf(chunk, len));
        }
        return b;
    }

    @Setup(Level.Trial)
    public void setUp() {
        be = new CpuBackend(Runtime.getRuntime().availableProcessors(), gemm.equals("blas") && CpuBackend.blasAvailable());
        Random r = new Random(1);
        x = rand((long) N * C, r, 1);
        w = rand((long) 4 * C * C, r, 0.02f);
        w4 = rand((long) Vp * C, r, 0.02f);
        out = rand((long) N * 4 * C, r, 1);
        out4 = rand((long) N * Vp, r, 1);
        dx = rand((long) N * C, r, 1);
        dw = rand((long) 4 * C * C, r, 1);
        qkv = rand((long) N * 3 * C, r, 1);
        att = rand((long) B * NH * T * T, r, 1);
        mean = rand(N, r, 1);
        rstd = rand(N, r, 1);
        lnw = rand(C, r, 1);
        lnb = rand(C, r, 1);
        int[] tg = new int[N];
        for (int i = 0; i < N; i++) tg[i] = r.nextInt(V);
        targets = be.allocate(DType.I32, N, "targets");
        be.write(targets, tg);
        losses = rand(N, r, 1);
        long P = 124_475_904L;
        params = filled(P, 0.01f);
        grads = filled(P, 0.001f);
        m = filled(P, 0.0001f);
        v = filled(P, 0.00001f);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        be.close();
    }

    /** The MLP's up-projection: (256 x 768) @ (3072 x 768)^T, 1.21 GFLOP. */
    @Benchmark
    public void matmulForwardFc() {
        be.matmulForward(out, x, w, null, N, C, 4 * C);
    }

    /** Its backward: dinp and dweight, 2.42 GFLOP. */
    @Benchmark
    public void matmulBackwardFc() {
        be.matmulBackward(dx, dw, null, out, x, w, N, C, 4 * C);
    }

    /** The classifier: (256 x 768) @ (50304 x 768)^T, 19.8 GFLOP. */
    @Benchmark
    public void matmulForwardClassifier() {
        be.matmulForward(out4, x, w4, null, N, C, Vp);
    }

    @Benchmark
    public void layerNormForward() {
        be.layerNormForward(dx, mean, rstd, x, lnw, lnb, N, C, 1e-5f);
    }

    @Benchmark
    public void attentionForward() {
        be.attentionForward(dx, att, qkv, B, T, C, NH, null);
    }

    @Benchmark
    public void geluForward() {
        be.geluForward(dx, x, (long) N * C);
    }

    @Benchmark
    public void crossEntropyForward() {
        be.crossEntropyForward(losses, out4, targets, N, V, Vp);
    }

    /** AdamW over all 124M parameters (16 bytes read + 12 written per parameter). */
    @Benchmark
    public void adamw() {
        be.adamw(params, grads, m, v, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1f, 1);
    }
}
