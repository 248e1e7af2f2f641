package gpt2.model;

import gpt2.backend.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Initialization, dropout modes and input validation of the model. */
class Gpt2Test {

    private static float[] params(Gpt2 m) {
        float[] p = new float[(int) m.layout().totalSize()];
        m.backend().read(m.params(), p);
        return p;
    }

    @Test
    void initializationIsDeterministicAndShapedAsGpt2() {
        GptConfig c = GptConfig.preset("d2").with(b -> b.vocabSize(300));
        try (CpuBackend be = new CpuBackend(2); Gpt2 a = new Gpt2(c, be); Gpt2 b = new Gpt2(c, be);
             Gpt2 other = new Gpt2(c, be)) {
            a.initialize(7);
            b.initialize(7);
            other.initialize(8);
            float[] pa = params(a);
            assertArrayEquals(pa, params(b), "same seed, same weights");
            assertNotEquals(pa[10], params(other)[10], "another seed, other weights");
            ParameterLayout l = a.layout();
            double residStd = 0.02 / Math.sqrt(2 * c.numLayers());
            assertEquals(0.02, std(pa, l.wte().offset(), 300L * c.channels()), 0.001, "wte std");
            assertEquals(0.02, std(pa, l.layer(0).fcw().offset(), l.layer(0).fcw().size()), 0.001, "c_fc std");
            assertEquals(residStd, std(pa, l.layer(1).fcprojw().offset(), l.layer(1).fcprojw().size()), 0.0005, "c_proj std");
            for (long i = 300L * c.channels(); i < l.wte().size(); i++) {
                assertEquals(0f, pa[(int) (l.wte().offset() + i)], "padded wte row");
            }
            for (long i = 0; i < c.channels(); i++) {
                assertEquals(1f, pa[(int) (l.layer(0).ln1w().offset() + i)], "LayerNorm scale");
                assertEquals(0f, pa[(int) (l.layer(0).ln1b().offset() + i)], "LayerNorm bias");
                assertEquals(0f, pa[(int) (l.layer(0).qkvb().offset() + i)], "linear bias");
            }
        }
    }

    /**
     * A micro-batch without one valid target adds nothing to the gradients, but the backward hook
     * (data parallelism's buckets) must still see every layer: a rank that skipped its all-reduces
     * would leave the others waiting in NCCL forever.
     */
    @Test
    void backwardWithoutValidTargetsStillHandsOnEveryBucket() {
        GptConfig c = GptConfig.preset("d2").with(b -> b.vocabSize(300));
        try (CpuBackend be = new CpuBackend(1); Gpt2 m = new Gpt2(c, be)) {
            m.initialize(3);
            int[] in = new int[16], none = new int[16];
            java.util.Arrays.fill(none, -1);
            java.util.List<Integer> handed = new java.util.ArrayList<>();
            m.setBackwardHook(handed::add);
            m.zeroGrad();
            m.trainForward(in, none, 2, 8, -1, 1f);
            m.backward(1f);
            java.util.List<Integer> want = new java.util.ArrayList<>();
            for (int l = c.numLayers() - 1; l >= 0; l--) want.add(l);
            want.add(-1);
            assertEquals(want, handed, "buckets handed on");
            float[] g = new float[(int) m.layout().totalSize()];
            be.read(m.grads(), g);
            for (float x : g) assertEquals(0f, x, "no gradient from a micro-batch without targets");
        }
    }

    @Test
    void rmsNormScaleStartsAtIdentity() {
        GptConfig c = TinyConfigs.seed(0.1f);
        try (CpuBackend be = new CpuBackend(1); Gpt2 m = new Gpt2(c, be)) {
            m.initialize(1);
            float[] p = params(m);
            // RMSNorm multiplies by (1 + w): identity is w = 0
            for (long i = 0; i < c.channels(); i++) assertEquals(0f, p[(int) (m.layout().lnfw().offset() + i)]);
        }
    }

    @Test
    void dropoutIsOffAtEvaluationAndReproducibleInTraining() {
        GptConfig withDrop = TinyConfigs.seed(0.1f), noDrop = TinyConfigs.seed(0f);
        int B = 2, T = 8;
        int[][] batch = OverfitTest.randomBatch(new Random(1), B * T, 64);
        try (CpuBackend be = new CpuBackend(2); Gpt2 a = new Gpt2(withDrop, be); Gpt2 b = new Gpt2(noDrop, be)) {
            a.initialize(3);
            b.initialize(3);
            float eval = a.forward(batch[0], batch[1], B, T, -1);
            assertEquals(b.forward(batch[0], batch[1], B, T, 5), eval, 0f, "evaluation ignores dropout");
            float train1 = a.forward(batch[0], batch[1], B, T, 5);
            float train2 = a.forward(batch[0], batch[1], B, T, 5);
            float train3 = a.forward(batch[0], batch[1], B, T, 6);
            assertEquals(train1, train2, 0f, "same pass key, same mask");
            assertNotEquals(eval, train1, "dropout changes the training loss");
            assertNotEquals(train1, train3, "another pass key, another mask");
        }
    }

    @Test
    void badTokensAreRefused() {
        GptConfig c = TinyConfigs.gpt2(0f);
        try (CpuBackend be = new CpuBackend(1); Gpt2 m = new Gpt2(c, be)) {
            m.initialize(1);
            int[] in = new int[8], tg = new int[8];
            in[3] = 64;
            var e = assertThrows(IllegalArgumentException.class, () -> m.forward(in, tg, 1, 8, -1));
            assertTrue(e.getMessage().contains("input token 64 at position 3"), e.getMessage());
            in[3] = 0;
            tg[2] = 99;
            e = assertThrows(IllegalArgumentException.class, () -> m.forward(in, tg, 1, 8, -1));
            assertTrue(e.getMessage().contains("target token 99"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> m.forward(new int[32], new int[32], 1, 32, -1));
            assertTrue(e.getMessage().contains("exceeds the model's block_size 16"), e.getMessage());
        }
    }

    private static double std(float[] p, long offset, long n) {
        double s = 0, s2 = 0;
        for (long i = offset; i < offset + n; i++) {
            s += p[(int) i];
            s2 += (double) p[(int) i] * p[(int) i];
        }
        double mean = s / n;
        return Math.sqrt(s2 / n - mean * mean);
    }
}
