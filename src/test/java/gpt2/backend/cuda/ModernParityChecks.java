package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.cuda.CudaParityChecks.Pair;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;

import java.util.Random;

import static gpt2.backend.cuda.CudaParityChecks.BF16_TOL;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The modern recipe's ops on the CUDA backend against the CPU backend (the reference), for
 * {@link CudaParityChecks} (its tests call these, so they run on the emulator and on the CUDA
 * library stand-ins or a GPU): QK-norm and RoPE (with positions from pos0 > 0, as decoding gives
 * them), ReLU², logit soft-capping and the classifier's gradient through the cap, parameter-free
 * RMSNorm (also fused with the residual add), the encoder without a position table, Muon's
 * momentum, Newton–Schulz and axpy; then training steps, a few AdamW steps and KV-cache decoding of
 * a small model with every modern switch on. float32 and bf16 mixed precision.
 */
final class ModernParityChecks {

    private final CudaParityChecks h;

    ModernParityChecks(CudaParityChecks harness) {
        this.h = harness;
    }

    /** d4-modern shrunk: 2 layers, 4 heads of 16, C 64, vocabulary 500, T up to 64 (zero-initialised projections). */
    static final GptConfig MODERN = GptConfig.preset("d4-modern").with(b -> b.numLayers(2).vocabSize(500).channels(64)
            .numHeads(4).maxSeqLen(64));
    /** The same with random projections, so the first step's gradients reach the attention (RoPE, QK-norm). */
    static final GptConfig MODERN_DENSE = MODERN.with(b -> b.zeroInitProjections(false).name("d4-modern dense"));
    /** GPT-2 (biases) with the ReLU² MLP: the fc bias gradient without GELU's fused column sums. */
    static final GptConfig RELU2_BIAS = GptConfig.preset("d4").with(b -> b.numLayers(2).vocabSize(500).channels(64)
            .numHeads(4).maxSeqLen(64).activation(GptConfig.Activation.RELU2).name("d4 relu2"));

    /** The tolerance of an output in the compute type: f32's, or bf16's rounding. */
    private static double tol(CudaBackend be, double f32) {
        return be.computeType() == DType.BF16 ? BF16_TOL : f32;
    }

    // ------------------------------------------------------------------ ops

    /**
     * QK-norm + RoPE, QK-norm alone, RoPE alone: forward (qkv in place, rstd) and backward, head
     * sizes 16 and 128 (a warp's lanes take several pairs); then positions pos0 = 29.. (beyond the
     * table the first call made: the table grows) and a single decoding position.
     */
    void qkNormRope(CudaBackend be) {
        DType X = be.computeType(), F = DType.F32;
        int[][] shapes = {{2, 17, 48, 3}, {1, 9, 256, 2}}; // B, T, C, NH
        for (int[] sh : shapes) {
            int B = sh[0], T = sh[1], C = sh[2], NH = sh[3];
            for (int mode = 0; mode < 3; mode++) {
                boolean norm = mode != 2;
                float theta = mode == 1 ? 0f : 10000f;
                String what = "hs " + C / NH + (norm ? " qk-norm" : "") + (theta > 0 ? " rope" : "");
                Random r = new Random(21 + mode);
                Pair qkv = h.rand(be, r, B * T * 3 * C, 2, X), rstd = norm ? h.rand(be, r, 2 * B * T * NH, 1, F) : null;
                h.both(be, (b, c) -> b.qkNormRopeForward(h.s(qkv, c), h.s(rstd, c), B, T, C, NH, 0, theta, 1e-6f));
                h.assertClose(be, qkv, tol(be, 1e-5), what + " qkv");
                if (norm) h.assertClose(be, rstd, 1e-5, what + " rstd");
                Pair dqkv = h.rand(be, r, B * T * 3 * C, 1, X);
                h.both(be, (b, c) -> b.qkNormRopeBackward(h.s(dqkv, c), h.s(qkv, c), h.s(rstd, c), B, T, C, NH, theta));
                h.assertClose(be, dqkv, tol(be, 1e-5), what + " dqkv");
                for (int[] pt : new int[][]{{3, 29}, {1, 40}}) { // T, pos0: later positions, then one (decoding)
                    int Td = pt[0], pos0 = pt[1];
                    Pair q2 = h.rand(be, r, B * Td * 3 * C, 2, X), r2 = norm ? h.rand(be, r, 2 * B * Td * NH, 1, F) : null;
                    h.both(be, (b, c) -> b.qkNormRopeForward(h.s(q2, c), h.s(r2, c), B, Td, C, NH, pos0, theta, 1e-6f));
                    h.assertClose(be, q2, tol(be, 1e-5), what + " qkv T " + Td + " pos0 " + pos0);
                }
            }
        }
    }

    /** ReLU² forward and backward (in place over dout, as the model calls it), with a tail that is no whole pack. */
    void reluSquared(CudaBackend be) {
        DType X = be.computeType();
        Random r = new Random(22);
        int n = 5003;
        Pair x = h.rand(be, r, n, 2, X), out = h.rand(be, r, n, 1, X), d = h.rand(be, r, n, 1, X);
        h.both(be, (b, c) -> b.reluSquaredForward(h.s(out, c), h.s(x, c), n));
        h.assertClose(be, out, tol(be, 1e-6), "relu2");
        h.both(be, (b, c) -> b.reluSquaredBackward(h.s(d, c), h.s(x, c), h.s(d, c), n));
        h.assertClose(be, d, tol(be, 1e-6), "relu2 backward");
    }

    /** Soft-capping, then the classifier's gradient through the cap: the separate op and the fused classifier. */
    void softcapAndClassifier(CudaBackend be) {
        DType X = be.computeType(), F = DType.F32;
        Random r = new Random(23);
        int N = 12, V = 1000, Vp = 1024;
        float cap = 15f;
        Pair raw = h.rand(be, r, N * Vp, 30, X); // |x / cap| up to ~8: saturated and linear parts
        h.both(be, (b, c) -> b.softcapForward(h.s(raw, c), (long) N * Vp, cap));
        h.assertClose(be, raw, tol(be, 1e-6), "softcap");
        int[] tg = new int[N];
        for (int i = 0; i < N; i++) tg[i] = r.nextInt(V);
        tg[3] = -1;
        Buffer tc = h.cpu.allocate(DType.I32, N, "t"), tgp = be.allocate(DType.I32, N, "t");
        h.cpu.write(tc, tg);
        be.write(tgp, tg);
        // capped logits as both sides hold them (bf16: the same rounded values)
        float[] capped = new float[N * Vp];
        for (int i = 0; i < capped.length; i++) capped[i] = (float) (cap * Math.tanh(r.nextGaussian() * 1.5));
        Pair logits = h.pair(be, capped.clone(), X), logits2 = h.pair(be, capped.clone(), X);
        Pair losses = h.rand(be, r, N, 1, F);
        h.both(be, (b, c) -> b.crossEntropyBackward(h.s(logits, c), c ? tc : tgp, 0.25f, N, V, Vp, cap));
        h.assertClose(be, logits, tol(be, 1e-5), "dlogits through the cap");
        h.both(be, (b, c) -> b.crossEntropyFused(h.s(losses, c), h.s(logits2, c), c ? tc : tgp, 0.125f, N, V, Vp, cap));
        h.assertClose(be, losses, 1e-5, "fused classifier losses (capped)");
        h.assertClose(be, logits2, tol(be, 1e-5), "fused dlogits through the cap");
    }

    /** RMSNorm without weights: forward, backward (dinp +=, no weight gradient), fused with the residual add. */
    void parameterFreeRmsNorm(CudaBackend be) {
        DType X = be.computeType(), F = DType.F32;
        for (int C : new int[]{72, 18}) { // 18: not a whole number of packs
            Random r = new Random(24);
            int N = 37;
            String what = "rmsnorm (no weights) C=" + C;
            Pair x = h.rand(be, r, N * C, 2, X), out = h.rand(be, r, N * C, 1, X), rstd = h.rand(be, r, N, 1, F);
            h.both(be, (b, c) -> b.rmsNormForward(h.s(out, c), h.s(rstd, c), h.s(x, c), null, N, C, 1e-6f));
            h.assertClose(be, out, tol(be, 1e-5), what + " out");
            h.assertClose(be, rstd, 1e-5, what + " rstd");
            Pair dout = h.rand(be, r, N * C, 1, X), dinp = h.rand(be, r, N * C, 1, X);
            h.both(be, (b, c) -> b.rmsNormBackward(h.s(dinp, c), null, h.s(dout, c), h.s(x, c), null, h.s(rstd, c), N, C));
            h.assertClose(be, dinp, tol(be, 1e-5), what + " dinp (+=)");
            Pair a = h.rand(be, r, N * C, 1, X), res = h.rand(be, r, N * C, 1, X);
            h.both(be, (b, c) -> b.residualRmsNormForward(h.s(res, c), h.s(out, c), h.s(rstd, c), h.s(a, c), h.s(x, c), null, N, C, 1e-6f));
            h.assertClose(be, res, tol(be, 0), what + " residual");
            h.assertClose(be, out, tol(be, 1e-5), what + " out after the residual");
            // bf16: the norm reads the residual as stored (rounded), the CPU its float32 sum
            h.assertClose(be, rstd, tol(be, 1e-5), what + " rstd after the residual");
        }
    }

    /** The token embedding without a position table (RoPE): forward, and the backward into dwte alone. */
    void encoderWithoutPositions(CudaBackend be) {
        DType X = be.computeType(), F = DType.F32;
        Random r = new Random(25);
        int B = 3, T = 17, C = 40, V = 90;
        int[] tok = new int[B * T];
        for (int i = 0; i < tok.length; i++) tok[i] = r.nextInt(V);
        tok[5] = tok[6] = 7;
        Buffer tc = h.cpu.allocate(DType.I32, tok.length, "t"), tg = be.allocate(DType.I32, tok.length, "t");
        h.cpu.write(tc, tok);
        be.write(tg, tok);
        Pair wte = h.rand(be, r, V * C, 1, X), out = h.rand(be, r, B * T * C, 1, X);
        h.both(be, (b, c) -> b.encoderForward(h.s(out, c), c ? tc : tg, h.s(wte, c), null, B, T, C));
        h.assertClose(be, out, 0, "encoder without wpe");
        Pair dwte = h.rand(be, r, V * C, 1, F);
        h.both(be, (b, c) -> b.encoderBackward(h.s(dwte, c), null, h.s(out, c), c ? tc : tg, B, T, C));
        h.assertClose(be, dwte, 1e-6, "encoder dwte without dwpe");
    }

    /** Muon's momentum and axpy (element-wise), and Newton–Schulz on wide, tall and square matrices and on a slice. */
    void muonOps(CudaBackend be) {
        DType F = DType.F32;
        Random r = new Random(26);
        int n = 5003;
        Pair g = h.rand(be, r, n, 1, F), buf = h.rand(be, r, n, 0.1f, F), y = h.rand(be, r, n, 1, F);
        h.both(be, (b, c) -> b.muonMomentum(h.s(g, c), h.s(buf, c), 0.95f, 0.5f));
        h.assertClose(be, g, 1e-6, "muon momentum: update");
        h.assertClose(be, buf, 1e-6, "muon momentum: buffer");
        h.both(be, (b, c) -> b.axpy(h.s(y, c), h.s(g, c), -0.3f, n));
        h.assertClose(be, y, 1e-6, "axpy");
        for (int[] sh : new int[][]{{64, 96}, {96, 64}, {48, 48}, {24, 200}}) {
            int rows = sh[0], cols = sh[1];
            Pair x = h.rand(be, r, rows * cols, 0.02f, F);
            h.both(be, (b, c) -> b.newtonSchulz(h.s(x, c), rows, cols, 5));
            h.assertClose(be, x, 5e-5, "newton-schulz " + rows + "x" + cols);
        }
        Pair big = h.rand(be, r, 40 * 30 + 7, 1, F); // a matrix inside a larger buffer, as Muon passes them
        h.both(be, (b, c) -> b.newtonSchulz(h.s(big, c).slice(7, 40 * 30), 40, 30, 5));
        h.assertClose(be, big, 5e-5, "newton-schulz on a slice (the rest untouched)");
    }

    /** Every op above on one backend. */
    void allOps(CudaBackend be) {
        qkNormRope(be);
        reluSquared(be);
        softcapAndClassifier(be);
        parameterFreeRmsNorm(be);
        encoderWithoutPositions(be);
        muonOps(be);
    }

    // ------------------------------------------------------------------ models

    /** float32: a step of the modern model (materialized and flash attention) and of GPT-2 with ReLU² and biases. */
    void trainingSteps(CudaBackend be) {
        for (GptConfig cfg : new GptConfig[]{MODERN_DENSE, RELU2_BIAS}) {
            for (boolean flash : new boolean[]{false, true}) {
                if (flash && cfg == RELU2_BIAS) continue;
                h.stepBoth(cfg, be, flash, 4, 64, 6, (mc, mg, lc, lg) -> {
                    String what = cfg.name() + (flash ? " (flash)" : "");
                    System.out.printf("  %s: loss cpu %.7f gpu %.7f%n", what, lc, lg);
                    assertEquals(lc, lg, 1e-4, what + " loss");
                    h.assertClose(be, new Pair(mc.grads(), mg.grads(), (int) mc.layout().totalSize()), 2e-4, what + " gradients");
                });
            }
        }
    }

    /** bf16 mixed precision: a step of the modern model against float32 on the CPU (the tolerances of the GPT-2 step). */
    void mixedPrecisionStep(CudaBackend bf) {
        h.stepBoth(MODERN_DENSE, bf, true, 4, 64, 6, (m32, m16, l32, l16) -> {
            double rel = CudaParityChecks.gradientError(m32, m16);
            System.out.printf("  bf16 %s: loss %.6f vs float32 %.6f; gradient L2 error %.2e%n", MODERN_DENSE.name(), l16, l32, rel);
            assertEquals(l32, l16, 2e-2, "bf16 modern loss");
            assertTrue(rel < 5e-2, "bf16 modern gradient error " + rel);
        });
    }

    /**
     * Three AdamW steps of the modern model as initialised (zero projections and head: the first
     * step's gradients reach only the head, later ones everything), the trainer's way (fused
     * classifier through the cap, loss and norm read once): every step's loss and norm as the CPU's.
     */
    void adamwSteps(CudaBackend be) {
        int B = 4, T = 64;
        Random r = new Random(27);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
        try (Gpt2 mc = new Gpt2(MODERN, h.cpu); Gpt2 mg = new Gpt2(MODERN, be);
             AdamW oc = new AdamW(mc, 0.9f, 0.95f, 1e-8f, 0.1f); AdamW og = new AdamW(mg, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            mc.initialize(3);
            mg.initialize(3);
            for (int step = 0; step < 3; step++) {
                float[][] st = new float[2][];
                Gpt2[] models = {mc, mg};
                AdamW[] opts = {oc, og};
                for (int i = 0; i < 2; i++) {
                    models[i].zeroGrad();
                    models[i].trainForward(in, tg, B, T, step, 1f);
                    models[i].backward(1f);
                    st[i] = models[i].stepStatistics(0, models[i].layout().totalSize());
                    opts[i].step(models[i], 1e-2f, AdamW.clipScale((float) Math.sqrt(st[i][1]), 1f));
                }
                float nc = (float) Math.sqrt(st[0][1]), ng = (float) Math.sqrt(st[1][1]);
                System.out.printf("  %s AdamW step %d: loss cpu %.7f gpu %.7f, norm cpu %.6f gpu %.6f%n", MODERN.name(), step,
                        st[0][0], st[1][0], nc, ng);
                assertEquals(st[0][0], st[1][0], 1e-4, "step " + step + " loss");
                assertEquals(nc, ng, 1e-4 * nc, "step " + step + " gradient norm");
                assertTrue(step == 0 || nc > 0, "gradients flow");
            }
            float lc = mc.forward(in, tg, B, T, -1), lg = mg.forward(in, tg, B, T, -1);
            System.out.printf("  %s after 3 AdamW steps: loss cpu %.7f gpu %.7f%n", MODERN.name(), lc, lg);
            assertEquals(lc, lg, 1e-4, "loss after three steps");
        }
    }

    /** KV-cache decoding of the modern model (RoPE from the position, QK-norm, soft cap) against the CPU's. */
    void decoding(CudaBackend be, double tolerance) {
        double worst = CudaParityChecks.decodeDifference(MODERN_DENSE, h.cpu, be, 40);
        System.out.printf("  %s%s kv-cache decode logits max |cpu-gpu| %.2e of the largest%n",
                be.computeType() == DType.BF16 ? "bf16 " : "", MODERN_DENSE.name(), worst);
        assertTrue(worst < tolerance, "modern decode logits differ by " + worst);
    }
}
