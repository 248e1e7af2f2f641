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
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;
import java.util.function.BiConsumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CUDA backend against the CPU backend (the reference), op by op on random inputs, then a
 * whole training step, an overfitting run and KV-cache decoding; in float32 and in bf16 mixed
 * precision. fp32 GEMMs run in cuBLAS's pedantic FP32 mode; tolerances: 1e-5 relative to the
 * largest reference magnitude of each output (sums in another order differ by a few float ulps of
 * the largest terms); bf16's are stated where they are used.
 *
 * <p>Run twice: on a GPU ({@link CudaParityTest}, tag gpu) and, everywhere g++ exists, on the CPU
 * emulator of the same kernel sources ({@link CudaEmulatorTest}).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class CudaParityChecks {

    CpuBackend cpu;
    CudaBackend gpu;

    /** Why this executor cannot run here, or null. */
    abstract String unavailableReason();

    CudaBackend newBackend(boolean tf32, boolean bf16) {
        return newBackend(tf32, bf16, false);
    }

    /** {@code graphs}: training micro-batches captured into CUDA graphs and replayed. */
    abstract CudaBackend newBackend(boolean tf32, boolean bf16, boolean graphs);

    @BeforeAll
    void setUp() {
        String reason = unavailableReason();
        if (reason != null) System.out.println("SKIPPED (" + getClass().getSimpleName() + "): " + reason);
        Assumptions.assumeTrue(reason == null, reason);
        cpu = new CpuBackend(2);
        gpu = newBackend(false, false);
        System.out.println("GPU: " + gpu.name());
        checkDevice(gpu);
    }

    /** Fails when the backend runs on another device than this test class is for. */
    void checkDevice(CudaBackend be) {
    }

    @AfterAll
    void tearDown() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    /** A buffer pair with the same random contents on both backends. */
    record Pair(Buffer c, Buffer g, int n) {
    }

    Pair rand(Random r, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian() * scale;
        return pair(v);
    }

    Pair pair(float[] v) {
        Buffer c = cpu.allocate(DType.F32, v.length, "cpu"), g = gpu.allocate(DType.F32, v.length, "gpu");
        cpu.write(c, v);
        gpu.write(g, v);
        return new Pair(c, g, v.length);
    }

    Pair ints(int[] v) {
        Buffer c = cpu.allocate(DType.I32, v.length, "cpu"), g = gpu.allocate(DType.I32, v.length, "gpu");
        cpu.write(c, v);
        gpu.write(g, v);
        return new Pair(c, g, v.length);
    }

    void assertClose(Pair p, double rel, String what) {
        assertClose(gpu, p, rel, what);
    }

    /** p's CPU buffer against its buffer on {@code be}: the largest difference within rel x the largest reference value. */
    void assertClose(CudaBackend be, Pair p, double rel, String what) {
        float[] a = new float[p.n], b = new float[p.n];
        cpu.read(p.c, a);
        be.read(p.g, b);
        double max = 1e-30;
        for (float x : a) max = Math.max(max, Math.abs(x));
        double worst = 0;
        int at = -1;
        for (int i = 0; i < p.n; i++) {
            double d = Float.isNaN(b[i]) ? Double.POSITIVE_INFINITY : Math.abs(a[i] - b[i]);
            if (d > worst) { worst = d; at = i; }
        }
        String label = (be.computeType() == DType.BF16 ? "bf16 " : "") + what;
        System.out.printf("  %-28s max |cpu-gpu| %.3e (%.2e of max %.3e)%n", label, worst, worst / max, max);
        assertTrue(worst <= rel * max, label + ": element " + at + " cpu " + (at >= 0 ? a[at] : 0) + " gpu "
                + (at >= 0 ? b[at] : 0) + ", |diff| " + worst + " > " + rel + " x " + max);
    }

    void both(BiConsumer<Backend, Boolean> op) {
        op.accept(cpu, true);
        op.accept(gpu, false);
    }

    Buffer s(Pair p, boolean c) {
        return p == null ? null : c ? p.c : p.g;
    }

    @Test
    void encoder() {
        for (int C : new int[]{40, 18}) { // 18: not a whole number of 128-bit packs (element-wise path)
            Random r = new Random(1);
            int B = 3, T = 17, V = 90;
            int[] tok = new int[B * T];
            for (int i = 0; i < tok.length; i++) tok[i] = r.nextInt(V);
            tok[5] = tok[6] = tok[40] = 7; // repeated tokens
            Pair t = ints(tok), wte = rand(r, V * C, 1), wpe = rand(r, T * C, 1), out = rand(r, B * T * C, 1);
            both((be, c) -> be.encoderForward(s(out, c), s(t, c), s(wte, c), s(wpe, c), B, T, C));
            assertClose(out, 1e-6, "encoder out C=" + C);
            Pair dwte = rand(r, V * C, 1), dwpe = rand(r, T * C, 1);
            float[] init = new float[V * C], initPe = new float[T * C];
            gpu.read(dwte.g, init);
            gpu.read(dwpe.g, initPe);
            both((be, c) -> be.encoderBackward(s(dwte, c), s(dwpe, c), s(out, c), s(t, c), B, T, C));
            assertClose(dwte, 1e-6, "encoder dwte C=" + C);
            assertClose(dwpe, 1e-6, "encoder dwpe C=" + C);
            // deterministic: the same bits from the same start
            float[] once = new float[V * C], again = new float[V * C];
            gpu.read(dwte.g, once);
            gpu.write(dwte.g, init);
            gpu.write(dwpe.g, initPe);
            gpu.encoderBackward(dwte.g, dwpe.g, out.g, t.g, B, T, C);
            gpu.read(dwte.g, again);
            assertTrue(java.util.Arrays.equals(once, again), "encoder dwte C=" + C + ": not the same bits on a second run");
        }
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
        // the MLP's first layer: bias and GELU in cuBLASLt's epilogue, the pre-activation kept
        Pair pre = rand(r, N * OC, 1), act = rand(r, N * OC, 1);
        both((be, c) -> be.matmulGeluForward(s(act, c), s(pre, c), s(x, c), s(w, c), s(b, c), N, C, OC));
        assertClose(pre, 1e-5, "matmul+gelu pre-activation");
        assertClose(act, 1e-5, "matmul+gelu out");
        both((be, c) -> be.matmulGeluForward(s(act, c), s(pre, c), s(x, c), s(w, c), null, N, C, OC));
        assertClose(act, 1e-5, "matmul+gelu out, no bias");
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

    /**
     * Flash attention against the CPU's materialized attention (same dropout masks): head sizes
     * 16, 32, 64 and 128, sequence lengths across the 64- and 32-row tile edges.
     */
    @Test
    void flashAttentionMatchesTheMaterializedOne() {
        int[][] shapes = {{2, 33, 48, 3}, {1, 70, 64, 2}, {1, 70, 128, 2}, {2, 40, 128, 1}}; // B, T, C, NH
        for (int[] sh : shapes) {
            for (float p : new float[]{0f, 0.2f}) {
                Random r = new Random(14);
                int B = sh[0], T = sh[1], C = sh[2], NH = sh[3];
                String what = "flash hs " + C / NH + " T " + T + " p " + p;
                Dropout d = p == 0 ? null : new Dropout(p, 99);
                Pair qkv = rand(r, B * T * 3 * C, 1), out = rand(r, B * T * C, 1);
                Buffer att = cpu.allocate(DType.F32, (long) B * NH * T * T, "att");
                Buffer lse = gpu.allocate(DType.F32, (long) B * NH * T, "lse");
                cpu.attentionForward(out.c, att, qkv.c, B, T, C, NH, d);
                gpu.flashAttentionForward(out.g, lse, qkv.g, B, T, C, NH, d);
                assertClose(out, 1e-5, what + " out");
                Pair dout = rand(r, B * T * C, 1), dqkv = rand(r, B * T * 3 * C, 1);
                cpu.attentionBackward(dqkv.c, dout.c, qkv.c, att, B, T, C, NH, d);
                gpu.flashAttentionBackward(dqkv.g, dout.g, qkv.g, out.g, lse, B, T, C, NH, d);
                assertClose(dqkv, 1e-5, what + " dqkv");
            }
        }
    }

    /** Small models of both architectures: GPT-2 (LayerNorm, biases, tied head) and seed-d12 (RMSNorm, dropout 0.1). */
    static final GptConfig[] SMALL_MODELS = {
            GptConfig.preset("d2").with(b -> b.vocabSize(500).channels(64).numHeads(4).maxSeqLen(64)),
            GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(64).numHeads(4).maxSeqLen(64))};

    /** What a step comparison checks, given both models after backward and their losses. */
    interface StepCheck {
        void check(Gpt2 onCpu, Gpt2 onGpu, float cpuLoss, float gpuLoss);
    }

    /**
     * One training step of cfg (initialization seed 3, pass key 11, a random B x T batch from
     * {@code seed}) on the CPU and on {@code be}, with flash attention there when asked.
     */
    void stepBoth(GptConfig cfg, CudaBackend be, boolean flash, int B, int T, long seed, StepCheck check) {
        Random r = new Random(seed);
        int V = cfg.vocabSize();
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(V); tg[i] = r.nextInt(V); }
        try (Gpt2 mc = new Gpt2(cfg, cpu); Gpt2 mg = new Gpt2(cfg, be)) {
            mg.setFlashAttention(flash);
            mc.initialize(3);
            mg.initialize(3);
            mc.zeroGrad();
            mg.zeroGrad();
            float lc = mc.forward(in, tg, B, T, 11), lg = mg.forward(in, tg, B, T, 11);
            mc.backward(1f);
            mg.backward(1f);
            check.check(mc, mg, lc, lg);
        }
    }

    /** A training step with flash attention, dropout on, against the CPU's materialized attention. */
    @Test
    void flashTrainingStepMatchesCpu() {
        GptConfig cfg = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(128).numHeads(2).maxSeqLen(80));
        stepBoth(cfg, gpu, true, 2, 80, 15, (mc, mg, lc, lg) -> {
            System.out.printf("  flash step (dropout 0.1): loss cpu %.7f gpu %.7f%n", lc, lg);
            assertEquals(lc, lg, 1e-5, "flash loss");
            assertClose(new Pair(mc.grads(), mg.grads(), (int) mc.layout().totalSize()), 2e-4, "flash step gradients");
        });
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
        both((be, c) -> be.crossEntropyBackward(s(logits, c), s(targets, c), 0.25f, N, V, Vp, 0f));
        assertClose(logits, 1e-5, "cross-entropy dlogits");
        // the fused classifier: losses and dlogits in one kernel, as the two ops give them
        Pair logits2 = rand(r, N * Vp, 3), losses2 = rand(r, N, 1);
        both((be, c) -> be.crossEntropyFused(s(losses2, c), s(logits2, c), s(targets, c), 0.125f, N, V, Vp, 0f));
        assertClose(losses2, 1e-5, "fused classifier losses");
        assertClose(logits2, 1e-5, "fused classifier dlogits");
        Pair acc = pair(new float[]{0.5f});
        both((be, c) -> be.addSum(s(acc, c), s(losses2, c), 0.25f, N));
        assertClose(acc, 1e-6, "loss accumulation");
        // float32 partials, summed in double: float rounding of the partials, not of a double total
        double sc = cpu.sumOfSquares(x.c), sg = gpu.sumOfSquares(x.g);
        assertEquals(sc, sg, 1e-6 * sc, "sum of squares");
        Pair sq = pair(new float[1]);
        both((be, c) -> be.sumOfSquares(s(sq, c), s(x, c).slice(3, n - 3)));
        assertClose(sq, 1e-6, "sum of squares into a device scalar (unaligned slice)");
        Pair m = rand(r, n, 0.01f), v = pair(new float[n]);
        both((be, c) -> be.adamw(s(x, c), s(y, c), s(m, c), s(v, c), 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3));
        assertClose(x, 1e-6, "adamw params");
        assertClose(m, 1e-6, "adamw m");
        // one pass over runs with and without weight decay
        long[] ends = {1000, 1700, 4000, n};
        boolean[] decay = {true, false, true, false};
        both((be, c) -> be.adamw(s(x, c), s(y, c), s(m, c), s(v, c), null, ends, decay, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                0.5f, 4));
        assertClose(x, 1e-6, "adamw over runs: params");
        assertClose(v, 1e-6, "adamw over runs: v");
        // more runs than a block has threads, many shorter than a block (a d48 model has ~400 runs)
        long[] many = new long[300];
        boolean[] decays = new boolean[300];
        long end = 0;
        for (int i = 0; i < many.length; i++) {
            end += i == many.length - 1 ? n - end : 1 + r.nextInt(15);
            many[i] = end;
            decays[i] = i % 3 != 0;
        }
        both((be, c) -> be.adamw(s(x, c), s(y, c), s(m, c), s(v, c), null, many, decays, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                0.5f, 5));
        assertClose(x, 1e-6, "adamw over 300 runs: params");
    }

    /** The compute copy written by AdamW's pass equals converting the updated parameters. */
    @Test
    void adamwWritesTheComputeCopy() {
        try (CudaBackend bf = newBackend(false, true)) {
            Random r = new Random(12);
            int n = 3000;
            Buffer[] b = new Buffer[4];
            for (int i = 0; i < 4; i++) {
                float[] v = new float[n];
                for (int j = 0; j < n; j++) v[j] = i == 3 ? Math.abs((float) r.nextGaussian()) : (float) r.nextGaussian();
                b[i] = bf.allocate(DType.F32, n, "t" + i);
                bf.write(b[i], v);
            }
            Buffer copy = bf.allocate(DType.BF16, n, "copy"), converted = bf.allocate(DType.BF16, n, "converted");
            bf.adamw(b[0], b[1], b[2], b[3], copy, new long[]{700, n}, new boolean[]{true, false}, 1e-2f, 0.9f, 0.95f,
                    1e-8f, 0.1f, 1f, 1);
            bf.convert(converted, b[0]);
            float[] a = new float[n], c = new float[n];
            bf.read(copy, a);
            bf.read(converted, c);
            assertTrue(java.util.Arrays.equals(a, c), "bf16 copy from the AdamW pass differs from convert()");
        }
    }

    /**
     * The trainer's step (fused classifier, loss on the device, one read of loss and norm, AdamW
     * writing the compute copy) gives the same bits as the step through the separate ops.
     */
    @Test
    void trainerStepEqualsTheStepThroughSeparateOps() {
        for (boolean bf16 : new boolean[]{false, true}) {
            try (CudaBackend be = newBackend(false, bf16); Gpt2 a = new Gpt2(OVERFIT_MODEL, be); Gpt2 b = new Gpt2(OVERFIT_MODEL, be);
                 AdamW oa = new AdamW(a, 0.9f, 0.95f, 1e-8f, 0.1f); AdamW ob = new AdamW(b, 0.9f, 0.95f, 1e-8f, 0.1f)) {
                a.initialize(3);
                b.initialize(3);
                int[][] batch = overfitBatch();
                for (int step = 0; step < 2; step++) {
                    a.zeroGrad();
                    float la = a.forward(batch[0], batch[1], 4, 64, step);
                    a.backward(1f);
                    float[] ns = AdamW.normAndClipScale(be, a.grads(), 1f);
                    oa.step(a.params(), a.grads(), 1e-2f, ns[1]);
                    b.zeroGrad();
                    b.trainForward(batch[0], batch[1], 4, 64, step, 1f);
                    b.backward(1f);
                    float[] st = b.stepStatistics(0, b.layout().totalSize());
                    ob.step(b, 1e-2f, AdamW.clipScale((float) Math.sqrt(st[1]), 1f));
                    assertEquals(la, st[0], 1e-5 * Math.abs(la), "bf16 " + bf16 + " step " + step + ": device-accumulated loss");
                    assertEquals(ns[0], (float) Math.sqrt(st[1]), 0f, "bf16 " + bf16 + " step " + step + ": gradient norm");
                }
                int n = (int) a.layout().totalSize();
                float[] pa = new float[n], pb = new float[n];
                be.read(a.params(), pa);
                be.read(b.params(), pb);
                assertTrue(java.util.Arrays.equals(pa, pb), "bf16 " + bf16 + ": parameters after two steps differ");
                // the next forward pass reads the compute copy: the AdamW pass wrote it, convert() made the other
                float la = a.forward(batch[0], batch[1], 4, 64, -1), lb = b.forward(batch[0], batch[1], 4, 64, -1);
                assertEquals(la, lb, 0f, "bf16 " + bf16 + ": loss from the compute copies");
            }
        }
    }

    /** A training step of a small model of each architecture: loss within 1e-4, gradients close. */
    @Test
    void wholeTrainingStepMatchesCpu() {
        for (GptConfig cfg : SMALL_MODELS) {
            stepBoth(cfg, gpu, false, 4, 64, 6, (mc, mg, lc, lg) -> {
                System.out.printf("  %s: loss cpu %.7f gpu %.7f%n", cfg.name(), lc, lg);
                assertEquals(lc, lg, 1e-4, cfg.name() + " loss");
                assertClose(new Pair(mc.grads(), mg.grads(), (int) mc.layout().totalSize()), 2e-4, cfg.name() + " gradients");
            });
        }
    }

    // ------------------------------------------------------------------ bf16 mixed precision

    /**
     * A buffer on the CPU (float32) and on {@code be} (of gpuType) holding the same values: random
     * numbers, rounded to bf16 when be computes in bf16, so both sides start from identical inputs
     * and any difference is the GPU's arithmetic and the rounding of its bf16 outputs.
     */
    Pair rand(CudaBackend be, Random r, int n, float scale, DType gpuType) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian() * scale;
        return pair(be, v, gpuType);
    }

    /** v on the CPU (float32) and on {@code be} (of gpuType), rounded to bf16 first when be computes in bf16. */
    Pair pair(CudaBackend be, float[] v, DType gpuType) {
        if (be.computeType() == DType.BF16) for (int i = 0; i < v.length; i++) v[i] = gpt2.backend.BFloat16.round(v[i]);
        Buffer c = cpu.allocate(DType.F32, v.length, "cpu"), g = be.allocate(gpuType, v.length, "gpu");
        cpu.write(c, v);
        be.write(g, v);
        return new Pair(c, g, v.length);
    }

    /** op on the CPU (c = true), then on {@code be} (the bf16 GPU backend, or another). */
    void both(CudaBackend bf, BiConsumer<Backend, Boolean> op) {
        op.accept(cpu, true);
        op.accept(bf, false);
    }

    /**
     * bf16 outputs carry a relative rounding error of at most 2^-9 (0.2%) each; ops that combine
     * several bf16 intermediates (the attention's scores, softmax weights and the weighted sum are
     * each stored in bf16, as in llm.c) compound a few of those: the emulator measures at most
     * 4.7e-3 of the largest reference magnitude (the attention's input gradient 3.7e-3). The test
     * allows 1e-2 (1.5e-2 for that gradient): about twice the measured error, far below what a
     * wrong index or a dropped term produces (errors of order 1).
     */
    static final double BF16_TOL = 1e-2;

    /** Each op in bf16 mixed precision against the float32 CPU on the same (bf16-representable) inputs. */
    @Test
    void mixedPrecisionOpsStayCloseToFloat32() {
        try (CudaBackend bf = newBackend(false, true)) {
            System.out.println("GPU: " + bf.name());
            DType X = DType.BF16, F = DType.F32;
            Random r = new Random(8);
            // linear layer
            int N = 64, C = 256, OC = 192;
            Pair x = rand(bf, r, N * C, 1, X), w = rand(bf, r, OC * C, 0.1f, X), b = rand(bf, r, OC, 0.1f, X);
            Pair out = rand(bf, r, N * OC, 1, X);
            both(bf, (be, c) -> be.matmulForward(s(out, c), s(x, c), s(w, c), s(b, c), N, C, OC));
            assertClose(bf, out, BF16_TOL, "matmul out");
            Pair dout = rand(bf, r, N * OC, 1, X), dinp = rand(bf, r, N * C, 1, X);
            Pair dw = rand(bf, r, OC * C, 1, F), db = rand(bf, r, OC, 1, F);
            both(bf, (be, c) -> be.matmulBackward(s(dinp, c), s(dw, c), s(db, c), s(dout, c), s(x, c), s(w, c), N, C, OC));
            assertClose(bf, dinp, BF16_TOL, "matmul dinp");
            assertClose(bf, dw, BF16_TOL, "matmul dweight (f32 +=)");
            assertClose(bf, db, BF16_TOL, "matmul dbias (f32 +=)");
            Pair pre = rand(bf, r, N * OC, 1, X), act = rand(bf, r, N * OC, 1, X);
            both(bf, (be, c) -> be.matmulGeluForward(s(act, c), s(pre, c), s(x, c), s(w, c), s(b, c), N, C, OC));
            assertClose(bf, pre, BF16_TOL, "matmul+gelu pre");
            assertClose(bf, act, BF16_TOL, "matmul+gelu out");
            // layernorm
            int Nn = 37, Cn = 72;
            Pair xn = rand(bf, r, Nn * Cn, 2, X), wn = rand(bf, r, Cn, 1, X), bn = rand(bf, r, Cn, 1, X);
            Pair on = rand(bf, r, Nn * Cn, 1, X), mean = rand(bf, r, Nn, 1, F), rstd = rand(bf, r, Nn, 1, F);
            both(bf, (be, c) -> be.layerNormForward(s(on, c), s(mean, c), s(rstd, c), s(xn, c), s(wn, c), s(bn, c), Nn, Cn, 1e-5f));
            assertClose(bf, on, BF16_TOL, "layernorm out");
            assertClose(bf, rstd, 1e-5, "layernorm rstd (f32)");
            Pair dn = rand(bf, r, Nn * Cn, 1, X), dxn = rand(bf, r, Nn * Cn, 1, X);
            Pair dwn = rand(bf, r, Cn, 1, F), dbn = rand(bf, r, Cn, 1, F);
            both(bf, (be, c) -> be.layerNormBackward(s(dxn, c), s(dwn, c), s(dbn, c), s(dn, c), s(xn, c), s(wn, c),
                    s(mean, c), s(rstd, c), Nn, Cn));
            assertClose(bf, dxn, BF16_TOL, "layernorm dinp (+=)");
            assertClose(bf, dwn, BF16_TOL, "layernorm dweight");
            // attention, with and without dropout
            for (float p : new float[]{0f, 0.2f}) {
                int B = 2, T = 33, Ca = 48, NH = 3;
                gpt2.backend.Dropout d = p == 0 ? null : new gpt2.backend.Dropout(p, 99);
                Pair qkv = rand(bf, r, B * T * 3 * Ca, 1, X), ao = rand(bf, r, B * T * Ca, 1, X);
                Pair att = rand(bf, r, B * NH * T * T, 1, X);
                both(bf, (be, c) -> be.attentionForward(s(ao, c), s(att, c), s(qkv, c), B, T, Ca, NH, d));
                assertClose(bf, att, BF16_TOL, "attention att p=" + p);
                assertClose(bf, ao, BF16_TOL, "attention out p=" + p);
                Pair dao = rand(bf, r, B * T * Ca, 1, X), dqkv = rand(bf, r, B * T * 3 * Ca, 1, X);
                both(bf, (be, c) -> be.attentionBackward(s(dqkv, c), s(dao, c), s(qkv, c), s(att, c), B, T, Ca, NH, d));
                assertClose(bf, dqkv, 1.5 * BF16_TOL, "attention dqkv p=" + p);
            }
            // flash attention in bf16 (head size 64, two tiles)
            for (float p : new float[]{0f, 0.2f}) {
                int B = 1, T = 70, Ca = 128, NH = 2;
                gpt2.backend.Dropout d = p == 0 ? null : new gpt2.backend.Dropout(p, 99);
                Pair qkv = rand(bf, r, B * T * 3 * Ca, 1, X), ao = rand(bf, r, B * T * Ca, 1, X);
                Buffer att = cpu.allocate(F, (long) B * NH * T * T, "att"), lse = bf.allocate(F, (long) B * NH * T, "lse");
                cpu.attentionForward(ao.c, att, qkv.c, B, T, Ca, NH, d);
                bf.flashAttentionForward(ao.g, lse, qkv.g, B, T, Ca, NH, d);
                assertClose(bf, ao, BF16_TOL, "flash out p=" + p);
                Pair dao = rand(bf, r, B * T * Ca, 1, X), dqkv = rand(bf, r, B * T * 3 * Ca, 1, X);
                cpu.attentionBackward(dqkv.c, dao.c, qkv.c, att, B, T, Ca, NH, d);
                bf.flashAttentionBackward(dqkv.g, dao.g, qkv.g, ao.g, lse, B, T, Ca, NH, d);
                assertClose(bf, dqkv, 1.5 * BF16_TOL, "flash dqkv p=" + p);
            }
            // element-wise, loss
            int n = 5000;
            Pair xe = rand(bf, r, n, 2, X), ye = rand(bf, r, n, 1, X), oe = rand(bf, r, n, 1, X);
            both(bf, (be, c) -> be.geluForward(s(oe, c), s(xe, c), n));
            assertClose(bf, oe, BF16_TOL, "gelu");
            both(bf, (be, c) -> be.geluBackward(s(oe, c), s(xe, c), s(ye, c), n));
            assertClose(bf, oe, BF16_TOL, "gelu backward");
            both(bf, (be, c) -> be.residualForward(s(oe, c), s(xe, c), s(ye, c), n));
            assertClose(bf, oe, BF16_TOL, "residual");
            int Nl = 12, V = 1000, Vp = 1024;
            Pair logits = rand(bf, r, Nl * Vp, 3, X), losses = rand(bf, r, Nl, 1, F);
            int[] tg = new int[Nl];
            for (int i = 0; i < Nl; i++) tg[i] = r.nextInt(V);
            tg[3] = -1;
            Buffer tc = cpu.allocate(DType.I32, Nl, "t"), tgp = bf.allocate(DType.I32, Nl, "t");
            cpu.write(tc, tg);
            bf.write(tgp, tg);
            both(bf, (be, c) -> be.crossEntropyForward(s(losses, c), s(logits, c), c ? tc : tgp, Nl, V, Vp));
            assertClose(bf, losses, 1e-5, "cross-entropy losses (f32)");
            both(bf, (be, c) -> be.crossEntropyBackward(s(logits, c), c ? tc : tgp, 0.25f, Nl, V, Vp, 0f));
            assertClose(bf, logits, BF16_TOL, "cross-entropy dlogits");
            // the weights' compute copy: float32 -> bf16 rounds to nearest even, as BFloat16.fromFloat
            float[] master = new float[4096];
            for (int i = 0; i < master.length; i++) master[i] = (float) r.nextGaussian();
            Buffer m32 = bf.allocate(F, master.length, "master"), m16 = bf.allocate(X, master.length, "copy");
            bf.write(m32, master);
            bf.convert(m16, m32);
            float[] back = new float[master.length];
            bf.read(m16, back);
            for (int i = 0; i < master.length; i++) {
                assertEquals(gpt2.backend.BFloat16.round(master[i]), back[i], 0f, "to_bf16 of " + master[i]);
            }
        }
    }

    /**
     * A training step of both architectures in bf16 mixed precision against float32 on the CPU:
     * the loss within 2e-2 (bf16 logits alone move a loss of ~6.2 by a few 1e-3), the whole
     * gradient within 5% in L2 norm (every activation and activation gradient is rounded to 8
     * significant bits along the way; float32 gradients agree to 2e-4).
     */
    @Test
    void mixedPrecisionTrainingStepStaysCloseToFloat32() {
        try (CudaBackend bf = newBackend(false, true)) {
            for (GptConfig cfg : SMALL_MODELS) {
                stepBoth(cfg, bf, false, 4, 64, 6, (m32, m16, l32, l16) -> {
                    double rel = gradientError(m32, m16);
                    System.out.printf("  bf16 %s: loss %.6f vs float32 %.6f; gradient L2 error %.2e%n", cfg.name(), l16, l32, rel);
                    assertEquals(l32, l16, 2e-2, cfg.name() + " bf16 loss");
                    assertTrue(rel < 5e-2, cfg.name() + " bf16 gradient error " + rel);
                });
            }
        }
    }

    /**
     * The tensor-core flash kernels (bf16 mma.sync and ldmatrix; the emulator runs those warp-level
     * instructions lane by lane as the PTX ISA lays out their fragments, and cp.async as copies that
     * land at issue in some blocks and only at the wait in others) against the CPU's float32
     * attention on the same bf16 inputs: head sizes 64 and 128, T across the tiles' edges (64 and 32
     * rows), below one tile and over three, with and without dropout. The log-sum-exp against a double-precision
     * sum; the backward run twice gives the same bits (no atomics).
     */
    @Test
    void tensorCoreFlashAttentionMatchesTheCpu() {
        try (CudaBackend bf = newBackend(false, true)) {
            DType X = DType.BF16, F = DType.F32;
            // B, T, C, NH: hs 64 and 128 (tiles of 64 and 32 rows), T below one tile, across tile edges and
            // over three tiles (the pipeline refills a buffer) in blocks of both emulated cp.async modes
            int[][] shapes = {{2, 70, 128, 2}, {2, 200, 128, 2}, {1, 45, 256, 2}, {1, 100, 256, 2}, {1, 20, 128, 1}};
            for (int[] sh : shapes) {
                int B = sh[0], T = sh[1], C = sh[2], NH = sh[3], hs = C / NH;
                assertTrue(bf.attention().tensorCoreFlash(hs), "tensor-core flash for head size " + hs);
                for (float p : new float[]{0f, 0.2f}) {
                    String what = "tensor-core flash hs " + hs + " T " + T + " p " + p;
                    Random r = new Random(16);
                    gpt2.backend.Dropout d = p == 0 ? null : new gpt2.backend.Dropout(p, 99);
                    Pair qkv = rand(bf, r, B * T * 3 * C, 1, X), out = rand(bf, r, B * T * C, 1, X);
                    Buffer att = cpu.allocate(F, (long) B * NH * T * T, "att"), lse = bf.allocate(F, (long) B * NH * T, "lse");
                    cpu.attentionForward(out.c, att, qkv.c, B, T, C, NH, d);
                    bf.profile().reset();
                    bf.flashAttentionForward(out.g, lse, qkv.g, B, T, C, NH, d);
                    assertTrue(bf.profile().rows().stream().anyMatch(row -> row.family().equals("flash_tc_forward_" + hs)),
                            what + ": the tensor-core kernel ran");
                    assertClose(bf, out, BF16_TOL, what + " out");
                    float[] q = new float[B * T * 3 * C], l = new float[B * NH * T];
                    cpu.read(qkv.c, q);
                    bf.read(lse, l);
                    double worst = 0;
                    for (int b = 0; b < B; b++) {
                        for (int h = 0; h < NH; h++) {
                            for (int t = 0; t < T; t++) {
                                double[] s = new double[t + 1];
                                double max = Double.NEGATIVE_INFINITY, sum = 0;
                                for (int j = 0; j <= t; j++) {
                                    for (int e = 0; e < hs; e++) {
                                        s[j] += (double) q[(b * T + t) * 3 * C + h * hs + e] * q[(b * T + j) * 3 * C + C + h * hs + e];
                                    }
                                    s[j] /= Math.sqrt(hs);
                                    max = Math.max(max, s[j]);
                                }
                                for (double v : s) sum += Math.exp(v - max);
                                worst = Math.max(worst, Math.abs(max + Math.log(sum) - l[(b * NH + h) * T + t]));
                            }
                        }
                    }
                    assertTrue(worst < 1e-4, what + ": log-sum-exp off by " + worst);
                    Pair dout = rand(bf, r, B * T * C, 1, X), dqkv = rand(bf, r, B * T * 3 * C, 1, X);
                    cpu.attentionBackward(dqkv.c, dout.c, qkv.c, att, B, T, C, NH, d);
                    bf.flashAttentionBackward(dqkv.g, dout.g, qkv.g, out.g, lse, B, T, C, NH, d);
                    assertClose(bf, dqkv, 1.5 * BF16_TOL, what + " dqkv");
                    float[] first = new float[B * T * 3 * C], again = new float[first.length];
                    bf.read(dqkv.g, first);
                    bf.flashAttentionBackward(dqkv.g, dout.g, qkv.g, out.g, lse, B, T, C, NH, d);
                    bf.read(dqkv.g, again);
                    for (int i = 0; i < first.length; i++) {
                        assertEquals(Float.floatToRawIntBits(first[i]), Float.floatToRawIntBits(again[i]), what + ": same bits at " + i);
                    }
                }
            }
        }
    }

    /**
     * A bf16 training step (seed-d12's architecture, dropout 0.1, head size 64) with the tensor-core
     * flash attention against the same step with the materialized attention on the same backend:
     * the loss within 5e-3 and the whole gradient within 2% in L2 norm (the two paths round different
     * intermediates to bf16: the weights before p.v here, the scores and weights there).
     */
    @Test
    void tensorCoreFlashTrainingStepMatchesTheMaterializedOne() {
        GptConfig cfg = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(128).numHeads(2).maxSeqLen(80));
        try (CudaBackend bf = newBackend(false, true)) {
            Random r = new Random(17);
            int B = 2, T = 80;
            int[] in = new int[B * T], tg = new int[B * T];
            for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
            try (Gpt2 flash = new Gpt2(cfg, bf); Gpt2 mat = new Gpt2(cfg, bf)) {
                flash.setFlashAttention(true);
                float[] loss = new float[2];
                int n = (int) flash.layout().totalSize();
                float[][] grads = new float[2][n];
                Gpt2[] models = {flash, mat};
                for (int i = 0; i < 2; i++) {
                    models[i].initialize(3);
                    models[i].zeroGrad();
                    loss[i] = models[i].forward(in, tg, B, T, 11);
                    models[i].backward(1f);
                    bf.read(models[i].grads(), grads[i]);
                }
                double diff = 0, norm = 0;
                for (int i = 0; i < n; i++) {
                    diff += (grads[0][i] - (double) grads[1][i]) * (grads[0][i] - (double) grads[1][i]);
                    norm += (double) grads[1][i] * grads[1][i];
                }
                double rel = Math.sqrt(diff / norm);
                System.out.printf("  bf16 step, tensor-core flash vs materialized: loss %.6f vs %.6f; gradient L2 difference %.2e%n",
                        loss[0], loss[1], rel);
                assertEquals(loss[1], loss[0], 5e-3, "loss");
                assertTrue(rel < 2e-2, "gradient difference " + rel);
            }
        }
    }

    /**
     * CUDA graphs: four trainer steps of two micro-batches (bf16, dropout 0.1, tensor-core flash
     * attention; new dropout keys and tokens every micro-batch) give the same bits with graphs and
     * without: every step's loss and gradient norm, and the parameters after. In both runs a read
     * of the parameters between a forward and its backward (step 2) breaks that segment's replay,
     * which then finishes call by call. With graphs, the micro-batches after the first ran as graphs.
     */
    @Test
    void cudaGraphsGiveTheSameBits() {
        GptConfig cfg = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(128).numHeads(2)
                .maxSeqLen(64));
        int B = 2, T = 64, n = (int) gpt2.model.ParameterLayout.of(cfg).totalSize();
        float[][] params = new float[2][n];
        int[][] numbers = new int[2][];
        long[] graphLaunches = new long[2];
        for (int run = 0; run < 2; run++) {
            try (CudaBackend be = newBackend(false, true, run == 1); Gpt2 m = new Gpt2(cfg, be);
                 AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
                m.setFlashAttention(true);
                m.initialize(3);
                Random r = new Random(18);
                List<Integer> bits = new java.util.ArrayList<>();
                for (int step = 0; step < 4; step++) {
                    m.zeroGrad();
                    for (int micro = 0; micro < 2; micro++) {
                        int[] in = new int[B * T], tg = new int[B * T];
                        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
                        m.trainForward(in, tg, B, T, 2L * step + micro, 0.5f);
                        if (step == 2 && micro == 1) be.read(m.params().slice(0, 4), new float[4]);
                        m.backward(0.5f);
                    }
                    float[] stats = m.stepStatistics(0, m.layout().totalSize());
                    bits.add(Float.floatToRawIntBits(stats[0]));
                    bits.add(Float.floatToRawIntBits(stats[1]));
                    opt.step(m, 1e-3f, AdamW.clipScale((float) Math.sqrt(stats[1]), 1f));
                }
                be.read(m.params(), params[run]);
                numbers[run] = bits.stream().mapToInt(Integer::intValue).toArray();
                graphLaunches[run] = be.profile().graphLaunches();
                if (run == 1) {
                    System.out.printf("  CUDA graphs: %d graph launches for %d calls%n", graphLaunches[run],
                            be.profile().graphCalls());
                }
            }
        }
        assertEquals(0, graphLaunches[0]);
        // 8 micro-batches: the first runs call by call, the second is captured, one replay is broken by the read
        assertEquals(6, graphLaunches[1], "graph launches");
        assertEquals(java.util.Arrays.toString(numbers[0]), java.util.Arrays.toString(numbers[1]), "losses and norms, bits");
        for (int i = 0; i < n; i++) {
            assertEquals(Float.floatToRawIntBits(params[0][i]), Float.floatToRawIntBits(params[1][i]), "parameter " + i);
        }
    }

    /** 100 steps of overfitting one batch in bf16 mixed precision, then decoding close to the CPU's. */
    @Test
    void mixedPrecisionOverfitsAndDecodes() {
        try (CudaBackend bf = newBackend(false, true); Gpt2 m = new Gpt2(OVERFIT_MODEL, bf)) {
            float[] losses = overfit(m);
            System.out.printf("  bf16 overfit on GPU: loss %.4f -> %.4f in 100 steps%n", losses[0], losses[1]);
            assertTrue(losses[1] < 0.5f, "bf16 loss after 100 steps: " + losses[1]);
            int[] in = overfitBatch()[0];
            // decode with the trained weights against the CPU running the same float32 parameters
            try (Gpt2 mc = new Gpt2(OVERFIT_MODEL, cpu); Gpt2.KvCache cc = mc.newKvCache(1); Gpt2.KvCache cg = m.newKvCache(1)) {
                java.lang.foreign.MemorySegment host = java.lang.foreign.Arena.ofAuto().allocate(4L * m.layout().totalSize());
                bf.copyToHost(m.params(), host);
                cpu.copyFromHost(mc.params(), host);
                double worst = 0;
                for (int pos = 0; pos < 20; pos++) {
                    float[] a = mc.decode(new int[]{in[pos]}, pos, cc)[0], b = m.decode(new int[]{in[pos]}, pos, cg)[0];
                    float max = 0;
                    for (float v : a) max = Math.max(max, Math.abs(v));
                    for (int v = 0; v < a.length; v++) worst = Math.max(worst, Math.abs(a[v] - b[v]) / max);
                }
                System.out.printf("  bf16 kv-cache decode logits max |cpu-gpu| %.2e of the largest%n", worst);
                assertTrue(worst < 5e-2, "bf16 decode logits differ by " + worst);
            }
        }
    }

    /** KV-cache decoding on the GPU against the CPU's, position by position (attention_decode kernel). */
    @Test
    void kvCacheDecodingMatchesCpu() {
        GptConfig cfg = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(64).numHeads(4).maxSeqLen(40));
        double worst = decodeDifference(cfg, cpu, gpu, 40);
        System.out.printf("  kv-cache decode logits       max |cpu-gpu| %.2e of the largest%n", worst);
        assertTrue(worst < 1e-5, "decode logits differ by " + worst);
    }

    /** ||g16 - g32|| / ||g32|| over every parameter gradient of two models of the same layout. */
    static double gradientError(Gpt2 m32, Gpt2 m16) {
        int n = (int) m32.layout().totalSize();
        float[] g32 = new float[n], g16 = new float[n];
        m32.backend().read(m32.grads(), g32);
        m16.backend().read(m16.grads(), g16);
        double diff = 0, norm = 0;
        for (int i = 0; i < n; i++) {
            diff += (g16[i] - (double) g32[i]) * (g16[i] - (double) g32[i]);
            norm += (double) g32[i] * g32[i];
        }
        return Math.sqrt(diff / norm);
    }

    /**
     * Decodes {@code positions} random tokens (vocabulary 500) for 2 sequences with a KV cache on
     * both backends, from the same initialization; the largest logit difference relative to the
     * largest logit of its row.
     */
    static double decodeDifference(GptConfig cfg, Backend cpu, Backend gpu, int positions) {
        Random r = new Random(9);
        try (Gpt2 mc = new Gpt2(cfg, cpu); Gpt2 mg = new Gpt2(cfg, gpu);
             Gpt2.KvCache cc = mc.newKvCache(2); Gpt2.KvCache cg = mg.newKvCache(2)) {
            mc.initialize(4);
            mg.initialize(4);
            double worst = 0;
            for (int pos = 0; pos < positions; pos++) {
                int[] tok = {r.nextInt(500), r.nextInt(500)};
                float[][] a = mc.decode(tok, pos, cc), b = mg.decode(tok, pos, cg);
                for (int s = 0; s < 2; s++) {
                    float max = 0;
                    for (float x : a[s]) max = Math.max(max, Math.abs(x));
                    for (int v = 0; v < a[s].length; v++) worst = Math.max(worst, Math.abs(a[s][v] - b[s][v]) / max);
                }
            }
            return worst;
        }
    }

    @Test
    void overfitsABatchOnTheGpu() {
        try (Gpt2 m = new Gpt2(OVERFIT_MODEL, gpu)) {
            float[] losses = overfit(m);
            System.out.printf("  overfit on GPU: loss %.4f -> %.4f in 100 steps%n", losses[0], losses[1]);
            assertTrue(losses[1] < 0.1f, "loss after 100 steps: " + losses[1]);
        }
    }

    // ------------------------------------------------------------------ the modern recipe (see ModernParityChecks)

    @Test
    void modernOps() {
        new ModernParityChecks(this).allOps(gpu);
    }

    @Test
    void modernOpsInMixedPrecision() {
        try (CudaBackend bf = newBackend(false, true)) {
            new ModernParityChecks(this).allOps(bf);
        }
    }

    @Test
    void modernTrainingStepsMatchCpu() {
        new ModernParityChecks(this).trainingSteps(gpu);
    }

    @Test
    void modernMixedPrecisionStepStaysCloseToFloat32() {
        try (CudaBackend bf = newBackend(false, true)) {
            new ModernParityChecks(this).mixedPrecisionStep(bf);
        }
    }

    @Test
    void modernAdamwStepsMatchCpu() {
        new ModernParityChecks(this).adamwSteps(gpu);
    }

    @Test
    void modernKvCacheDecodingMatchesCpu() {
        new ModernParityChecks(this).decoding(gpu, 1e-5);
        try (CudaBackend bf = newBackend(false, true)) {
            new ModernParityChecks(this).decoding(bf, 5e-2);
        }
    }

    static final GptConfig OVERFIT_MODEL = GptConfig.preset("d2").with(b -> b.vocabSize(512).channels(64).numHeads(4).maxSeqLen(64));

    /** The batch the overfitting runs memorize: {inputs, targets}, B = 4, T = 64. */
    static int[][] overfitBatch() {
        Random r = new Random(7);
        int[] stream = new int[4 * 64 + 1];
        for (int i = 0; i < stream.length; i++) stream[i] = r.nextInt(512);
        return new int[][]{java.util.Arrays.copyOfRange(stream, 0, 4 * 64), java.util.Arrays.copyOfRange(stream, 1, 4 * 64 + 1)};
    }

    /** 100 trainer steps (lr 3e-3, clip 1) on {@link #overfitBatch()} from seed 1; returns {first loss, last loss}. */
    static float[] overfit(Gpt2 m) {
        int[][] batch = overfitBatch();
        float first = 0, loss = 0;
        try (AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0f)) {
            m.initialize(1);
            for (int step = 0; step < 100; step++) {
                // the trainer's step: the host reads the loss and the norm once
                m.zeroGrad();
                m.trainForward(batch[0], batch[1], 4, 64, step, 1f);
                m.backward(1f);
                float[] numbers = m.stepStatistics(0, m.layout().totalSize());
                loss = numbers[0];
                if (step == 0) first = loss;
                opt.step(m, 3e-3f, AdamW.clipScale((float) Math.sqrt(numbers[1]), 1f));
            }
        }
        return new float[]{first, loss};
    }
}
