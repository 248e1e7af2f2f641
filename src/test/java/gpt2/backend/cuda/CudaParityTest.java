package gpt2.backend.cuda;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Dropout;
import gpt2.backend.cpu.CpuBackend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.BiConsumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CUDA backend against the CPU backend (the reference), op by op on random inputs, then a
 * whole training step and an overfitting run. fp32 GEMMs run in cuBLAS's pedantic FP32 mode;
 * tolerances: 1e-5 relative to the largest reference magnitude of each output (sums in another
 * order differ by a few float ulps of the largest terms).
 */
@Tag("gpu")
class CudaParityTest {

    static CpuBackend cpu;
    static CudaBackend gpu;

    @BeforeAll
    static void setUp() {
        String reason = CudaBackend.unavailableReason();
        if (reason != null) System.out.println("SKIPPED (gpu): " + reason);
        Assumptions.assumeTrue(reason == null, "no usable GPU: " + reason);
        cpu = new CpuBackend(2);
        gpu = new CudaBackend(0, false);
        System.out.println("GPU: " + gpu.name());
    }

    @AfterAll
    static void tearDown() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    /** A buffer pair with the same random contents on both backends. */
    record Pair(Buffer c, Buffer g, int n) {
    }

    static Pair rand(Random r, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian() * scale;
        return pair(v);
    }

    static Pair pair(float[] v) {
        Buffer c = cpu.allocate(DType.F32, v.length, "cpu"), g = gpu.allocate(DType.F32, v.length, "gpu");
        cpu.write(c, v);
        gpu.write(g, v);
        return new Pair(c, g, v.length);
    }

    static Pair ints(int[] v) {
        Buffer c = cpu.allocate(DType.I32, v.length, "cpu"), g = gpu.allocate(DType.I32, v.length, "gpu");
        cpu.write(c, v);
        gpu.write(g, v);
        return new Pair(c, g, v.length);
    }

    static void assertClose(Pair p, double rel, String what) {
        float[] a = new float[p.n], b = new float[p.n];
        cpu.read(p.c, a);
        gpu.read(p.g, b);
        double max = 1e-30;
        for (float x : a) max = Math.max(max, Math.abs(x));
        double worst = 0;
        int at = -1;
        for (int i = 0; i < p.n; i++) {
            double d = Math.abs(a[i] - b[i]);
            if (Float.isNaN(b[i])) d = Double.POSITIVE_INFINITY;
            if (d > worst) { worst = d; at = i; }
        }
        System.out.printf("  %-28s max |cpu-gpu| %.3e (%.2e of max %.3e)%n", what, worst, worst / max, max);
        assertTrue(worst <= rel * max, what + ": element " + at + " cpu " + (at >= 0 ? a[at] : 0) + " gpu "
                + (at >= 0 ? b[at] : 0) + ", |diff| " + worst + " > " + rel + " x " + max);
    }

    static void both(BiConsumer<Backend, Boolean> op) {
        op.accept(cpu, true);
        op.accept(gpu, false);
    }

    static Buffer s(Pair p, boolean c) {
        return p == null ? null : c ? p.c : p.g;
    }

    @Test
    void encoder() {
        Random r = new Random(1);
        int B = 3, T = 17, C = 40, V = 90;
        int[] tok = new int[B * T];
        for (int i = 0; i < tok.length; i++) tok[i] = r.nextInt(V);
        tok[5] = tok[6] = 7; // repeated tokens
        Pair t = ints(tok), wte = rand(r, V * C, 1), wpe = rand(r, T * C, 1), out = rand(r, B * T * C, 1);
        both((be, c) -> be.encoderForward(s(out, c), s(t, c), s(wte, c), s(wpe, c), B, T, C));
        assertClose(out, 1e-6, "encoder out");
        Pair dwte = rand(r, V * C, 1), dwpe = rand(r, T * C, 1);
        both((be, c) -> be.encoderBackward(s(dwte, c), s(dwpe, c), s(out, c), s(t, c), B, T, C));
        assertClose(dwte, 1e-6, "encoder dwte");
        assertClose(dwpe, 1e-6, "encoder dwpe");
    }

    @Test
    void norms() {
        Random r = new Random(2);
        int N = 37, C = 72;
        Pair x = rand(r, N * C, 2), w = rand(r, C, 1), b = rand(r, C, 1), out = rand(r, N * C, 1);
        Pair mean = rand(r, N, 1), rstd = rand(r, N, 1), dout = rand(r, N * C, 1);
        both((be, c) -> be.layerNormForward(s(out, c), s(mean, c), s(rstd, c), s(x, c), s(w, c), s(b, c), N, C, 1e-5f));
        assertClose(out, 1e-5, "layernorm out");
        assertClose(rstd, 1e-5, "layernorm rstd");
        Pair dinp = rand(r, N * C, 1), dw = rand(r, C, 1), db = rand(r, C, 1);
        both((be, c) -> be.layerNormBackward(s(dinp, c), s(dw, c), s(db, c), s(dout, c), s(x, c), s(w, c), s(mean, c),
                s(rstd, c), N, C));
        assertClose(dinp, 1e-5, "layernorm dinp (+=)");
        assertClose(dw, 1e-5, "layernorm dweight");
        assertClose(db, 1e-5, "layernorm dbias");
        both((be, c) -> be.rmsNormForward(s(out, c), s(rstd, c), s(x, c), s(w, c), N, C, 1e-6f));
        assertClose(out, 1e-5, "rmsnorm out");
        both((be, c) -> be.rmsNormBackward(s(dinp, c), s(dw, c), s(dout, c), s(x, c), s(w, c), s(rstd, c), N, C));
        assertClose(dinp, 1e-5, "rmsnorm dinp (+=)");
        assertClose(dw, 1e-5, "rmsnorm dweight");
    }

    @Test
    void matmul() {
        Random r = new Random(3);
        int N = 64, C = 96, OC = 200;
        Pair x = rand(r, N * C, 1), w = rand(r, OC * C, 0.1f), b = rand(r, OC, 0.1f), out = rand(r, N * OC, 1);
        both((be, c) -> be.matmulForward(s(out, c), s(x, c), s(w, c), s(b, c), N, C, OC));
        assertClose(out, 1e-5, "matmul out");
        Pair dout = rand(r, N * OC, 1), dinp = rand(r, N * C, 1), dw = rand(r, OC * C, 1), db = rand(r, OC, 1);
        both((be, c) -> be.matmulBackward(s(dinp, c), s(dw, c), s(db, c), s(dout, c), s(x, c), s(w, c), N, C, OC));
        assertClose(dinp, 1e-5, "matmul dinp");
        assertClose(dw, 1e-5, "matmul dweight (+=)");
        assertClose(db, 1e-5, "matmul dbias (+=)");
    }

    @Test
    void attention() {
        for (float p : new float[]{0f, 0.2f}) {
            Random r = new Random(4);
            int B = 2, T = 33, C = 48, NH = 3;
            Dropout d = p == 0 ? null : new Dropout(p, 99);
            Pair qkv = rand(r, B * T * 3 * C, 1), out = rand(r, B * T * C, 1), att = rand(r, B * NH * T * T, 1);
            both((be, c) -> be.attentionForward(s(out, c), s(att, c), s(qkv, c), B, T, C, NH, d));
            assertClose(att, 1e-5, "attention att, dropout " + p);
            assertClose(out, 1e-5, "attention out, dropout " + p);
            Pair dout = rand(r, B * T * C, 1), dqkv = rand(r, B * T * 3 * C, 1);
            both((be, c) -> be.attentionBackward(s(dqkv, c), s(dout, c), s(qkv, c), s(att, c), B, T, C, NH, d));
            assertClose(dqkv, 1e-5, "attention dqkv, dropout " + p);
        }
    }

    @Test
    void pointwiseAndLoss() {
        Random r = new Random(5);
        int n = 5000;
        Pair x = rand(r, n, 2), y = rand(r, n, 1), out = rand(r, n, 1);
        both((be, c) -> be.geluForward(s(out, c), s(x, c), n));
        assertClose(out, 1e-6, "gelu");
        both((be, c) -> be.geluBackward(s(out, c), s(x, c), s(y, c), n));
        assertClose(out, 1e-6, "gelu backward");
        both((be, c) -> be.residualForward(s(out, c), s(x, c), s(y, c), n));
        assertClose(out, 0, "residual");
        both((be, c) -> be.dropout(s(out, c), n, new Dropout(0.3f, 12345)));
        assertClose(out, 0, "dropout (same mask bit for bit)");
        int N = 12, V = 1000, Vp = 1024;
        Pair logits = rand(r, N * Vp, 3), losses = rand(r, N, 1);
        int[] tg = new int[N];
        for (int i = 0; i < N; i++) tg[i] = r.nextInt(V);
        tg[3] = -1;
        Pair targets = ints(tg);
        both((be, c) -> be.crossEntropyForward(s(losses, c), s(logits, c), s(targets, c), N, V, Vp));
        assertClose(losses, 1e-5, "cross-entropy losses");
        both((be, c) -> be.crossEntropyBackward(s(logits, c), s(targets, c), 0.25f, N, V, Vp));
        assertClose(logits, 1e-5, "cross-entropy dlogits");
        double sc = cpu.sumOfSquares(x.c), sg = gpu.sumOfSquares(x.g);
        assertEquals(sc, sg, 1e-9 * sc, "sum of squares");
        Pair m = rand(r, n, 0.01f), v = pair(new float[n]);
        both((be, c) -> be.adamw(s(x, c), s(y, c), s(m, c), s(v, c), 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3));
        assertClose(x, 1e-6, "adamw params");
        assertClose(m, 1e-6, "adamw m");
    }

    /** A training step of a small model of each architecture: loss within 1e-4, gradients close. */
    @Test
    void wholeTrainingStepMatchesCpu() {
        for (GptConfig cfg : new GptConfig[]{
                GptConfig.preset("d2").with(b -> b.vocabSize(500).channels(64).numHeads(4).maxSeqLen(64)),
                GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(64).numHeads(4).maxSeqLen(64))}) {
            Random r = new Random(6);
            int B = 4, T = 64;
            int[] in = new int[B * T], tg = new int[B * T];
            for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
            try (Gpt2 mc = new Gpt2(cfg, cpu); Gpt2 mg = new Gpt2(cfg, gpu)) {
                mc.initialize(3);
                mg.initialize(3);
                mc.zeroGrad();
                mg.zeroGrad();
                float lc = mc.forward(in, tg, B, T, 11), lg = mg.forward(in, tg, B, T, 11);
                System.out.printf("  %s: loss cpu %.7f gpu %.7f%n", cfg.name(), lc, lg);
                assertEquals(lc, lg, 1e-4, cfg.name() + " loss");
                mc.backward(1f);
                mg.backward(1f);
                int n = (int) mc.layout().totalSize();
                assertClose(new Pair(mc.grads(), mg.grads(), n), 2e-4, cfg.name() + " gradients");
            }
        }
    }

    /**
     * bf16 GEMM inputs: each input is rounded to 8 significant bits (relative error up to 2^-9),
     * so a dot product of K terms carries an error around 2^-9 x sqrt(K) x the typical term; measured
     * against the largest output that is well under 1%. The test allows 2e-2 of the largest
     * reference magnitude, and the loss of a training step within 2e-2 of float32's.
     */
    @Test
    void bf16GemmsStayCloseToFloat32() {
        try (CudaBackend bf = new CudaBackend(0, false, true)) {
            Random r = new Random(8);
            int N = 64, C = 256, OC = 192;
            Pair x = rand(r, N * C, 1), w = rand(r, OC * C, 0.1f), b = rand(r, OC, 0.1f), out = rand(r, N * OC, 1);
            Buffer xg = copyTo(bf, x), wg = copyTo(bf, w), bg = copyTo(bf, b), og = copyTo(bf, out);
            cpu.matmulForward(out.c, x.c, w.c, b.c, N, C, OC);
            bf.matmulForward(og, xg, wg, bg, N, C, OC);
            assertCloseTo(bf, out, og, 2e-2, "bf16 matmul out");
            Pair dout = rand(r, N * OC, 1), dinp = rand(r, N * C, 1), dw = rand(r, OC * C, 1);
            Buffer doutg = copyTo(bf, dout), dinpg = copyTo(bf, dinp), dwg = copyTo(bf, dw);
            cpu.matmulBackward(dinp.c, dw.c, null, dout.c, x.c, w.c, N, C, OC);
            bf.matmulBackward(dinpg, dwg, null, doutg, xg, wg, N, C, OC);
            assertCloseTo(bf, dinp, dinpg, 2e-2, "bf16 matmul dinp");
            assertCloseTo(bf, dw, dwg, 2e-2, "bf16 matmul dweight (+=)");

            GptConfig cfg = GptConfig.preset("seed-d12").with(c -> c.numLayers(2).vocabSize(500).channels(64).numHeads(4).maxSeqLen(64));
            int B = 4, T = 64;
            int[] in = new int[B * T], tg = new int[B * T];
            for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
            try (Gpt2 m32 = new Gpt2(cfg, cpu); Gpt2 m16 = new Gpt2(cfg, bf)) {
                m32.initialize(3);
                m16.initialize(3);
                float l32 = m32.forward(in, tg, B, T, 11), l16 = m16.forward(in, tg, B, T, 11);
                System.out.printf("  bf16 step loss %.6f vs float32 %.6f%n", l16, l32);
                assertEquals(l32, l16, 2e-2, "bf16 loss");
            }
        }
    }

    private static Buffer copyTo(CudaBackend be, Pair p) {
        float[] v = new float[p.n];
        cpu.read(p.c, v);
        Buffer g = be.allocate(DType.F32, p.n, "bf16 test");
        be.write(g, v);
        return g;
    }

    private static void assertCloseTo(CudaBackend be, Pair ref, Buffer got, double rel, String what) {
        float[] a = new float[ref.n], b = new float[ref.n];
        cpu.read(ref.c, a);
        be.read(got, b);
        double max = 1e-30, worst = 0;
        for (float x : a) max = Math.max(max, Math.abs(x));
        for (int i = 0; i < a.length; i++) worst = Math.max(worst, Float.isNaN(b[i]) ? Double.POSITIVE_INFINITY : Math.abs(a[i] - b[i]));
        System.out.printf("  %-28s max |cpu-gpu| %.3e (%.2e of max %.3e)%n", what, worst, worst / max, max);
        assertTrue(worst <= rel * max, what + ": |diff| " + worst + " > " + rel + " x " + max);
    }

    /** KV-cache decoding on the GPU against the CPU's, position by position (attention_decode kernel). */
    @Test
    void kvCacheDecodingMatchesCpu() {
        GptConfig cfg = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(64).numHeads(4).maxSeqLen(40));
        Random r = new Random(9);
        try (Gpt2 mc = new Gpt2(cfg, cpu); Gpt2 mg = new Gpt2(cfg, gpu);
             Gpt2.KvCache cc = mc.newKvCache(2); Gpt2.KvCache cg = mg.newKvCache(2)) {
            mc.initialize(4);
            mg.initialize(4);
            double worst = 0;
            for (int pos = 0; pos < 40; pos++) {
                int[] tok = {r.nextInt(500), r.nextInt(500)};
                float[][] a = mc.decode(tok, pos, cc), b = mg.decode(tok, pos, cg);
                for (int s = 0; s < 2; s++) {
                    float max = 0;
                    for (float x : a[s]) max = Math.max(max, Math.abs(x));
                    for (int v = 0; v < a[s].length; v++) worst = Math.max(worst, Math.abs(a[s][v] - b[s][v]) / max);
                }
            }
            System.out.printf("  kv-cache decode logits       max |cpu-gpu| %.2e of the largest%n", worst);
            assertTrue(worst < 1e-5, "decode logits differ by " + worst);
        }
    }

    /** NCCL through the full path with world size 1 (our GPU machines have one GPU). */
    @Test
    void ncclWorldOfOne() {
        try (NcclCommunicator comm = new NcclCommunicator(gpu, 0, 1, "127.0.0.1", 29599, java.time.Duration.ofSeconds(30))) {
            Random r = new Random(10);
            Pair x = rand(r, 1000, 1);
            comm.allReduceAverage(gpu, x.g);
            comm.allGather(gpu, x.g);
            comm.broadcast(gpu, x.g);
            assertClose(x, 0, "NCCL collectives with one rank leave the data");
            assertEquals(2.5, comm.allReduceSum(2.5), 0, "NCCL scalar all-reduce");
            // gradient buckets on the communication stream, then the wait
            comm.allReduceAverageAsync(gpu, x.g.slice(0, 400));
            comm.allReduceAverageAsync(gpu, x.g.slice(400, 600));
            comm.finishPending();
            assertClose(x, 0, "NCCL bucketed all-reduce on its own stream");
            comm.barrier();
            System.out.println("  NCCL: world 1 all-reduce, all-gather, broadcast, scalar sum: ok");
        }
    }

    @Test
    void overfitsABatchOnTheGpu() {
        GptConfig cfg = GptConfig.preset("d2").with(b -> b.vocabSize(512).channels(64).numHeads(4).maxSeqLen(64));
        Random r = new Random(7);
        int B = 4, T = 64;
        int[] stream = new int[B * T + 1];
        for (int i = 0; i < stream.length; i++) stream[i] = r.nextInt(512);
        int[] in = java.util.Arrays.copyOfRange(stream, 0, B * T), tg = java.util.Arrays.copyOfRange(stream, 1, B * T + 1);
        try (Gpt2 m = new Gpt2(cfg, gpu); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0f)) {
            m.initialize(1);
            float first = 0, loss = 0;
            for (int step = 0; step < 100; step++) {
                m.zeroGrad();
                loss = m.forward(in, tg, B, T, step);
                if (step == 0) first = loss;
                m.backward(1f);
                float[] ns = AdamW.normAndClipScale(gpu, m.grads(), 1f);
                opt.step(m.params(), m.grads(), 3e-3f, ns[1]);
            }
            System.out.printf("  overfit on GPU: loss %.4f -> %.4f in 100 steps%n", first, loss);
            assertTrue(loss < 0.1f, "loss after 100 steps: " + loss);
        }
    }
}
