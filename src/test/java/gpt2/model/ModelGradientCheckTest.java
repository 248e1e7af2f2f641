package gpt2.model;

import gpt2.backend.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole model's loss and gradients against {@link ReferenceGpt2}: the float32 backend's loss
 * against the double-precision reference, and its gradient against central finite differences
 * of the reference, for sampled entries of every parameter tensor.
 */
class ModelGradientCheckTest {

    /** Finite-difference step on the double-precision reference. */
    private static final double H = 1e-5;
    /** A float32 gradient entry may differ from the double finite difference by this much... */
    private static final double ABS_TOL = 2e-6;
    /** ...plus this fraction of the largest sampled gradient magnitude of its tensor. */
    private static final double REL_TOL = 2e-3;
    private static final int B = 2, T = 7;
    private static final long PASS_KEY = 12345;

    private static GptConfig config(String arch, float dropout) {
        return switch (arch) {
            case "gpt2" -> TinyConfigs.gpt2(dropout);
            case "seed" -> TinyConfigs.seed(dropout);
            case "modern" -> TinyConfigs.modern().with(b -> b.dropout(dropout));
            // each modern switch alone on GPT-2, so a wrong op cannot hide behind another
            case "rope" -> TinyConfigs.gpt2(dropout).with(b -> b.rope(true).ropeTheta(100f));
            case "qknorm" -> TinyConfigs.gpt2(dropout).with(b -> b.qkNorm(true));
            case "relu2" -> TinyConfigs.gpt2(dropout).with(b -> b.activation(GptConfig.Activation.RELU2));
            case "softcap" -> TinyConfigs.gpt2(dropout).with(b -> b.logitSoftcap(2f));
            case "plainrms" -> TinyConfigs.seed(dropout).with(b -> b.parameterFreeNorm(true));
            default -> throw new IllegalArgumentException(arch);
        };
    }

    @ParameterizedTest(name = "{0}, dropout {1}, OpenBLAS {2}")
    @CsvSource({"gpt2, 0.0, true", "gpt2, 0.1, true", "seed, 0.0, true", "seed, 0.1, true",
            "gpt2, 0.0, false", "seed, 0.1, false", "modern, 0.0, true", "modern, 0.1, false", "rope, 0.0, true",
            "qknorm, 0.0, true", "relu2, 0.0, true", "softcap, 0.0, true", "plainrms, 0.0, true"})
    void lossAndGradientsMatchDoubleReference(String arch, float dropout, boolean blas) {
        org.junit.jupiter.api.Assumptions.assumeTrue(!blas || CpuBackend.blasAvailable(), "OpenBLAS not loadable here");
        GptConfig c = config(arch, dropout);
        ParameterLayout layout = ParameterLayout.of(c);
        Random rng = new Random(99);
        int[] inputs = new int[B * T], targets = new int[B * T];
        for (int i = 0; i < B * T; i++) {
            inputs[i] = rng.nextInt(c.vocabSize());
            targets[i] = rng.nextInt(c.vocabSize());
        }
        targets[3] = -1; // an ignored position
        try (CpuBackend backend = new CpuBackend(2, blas); Gpt2 model = new Gpt2(c, backend)) {
            model.initialize(5);
            // bigger than init-scale weights so every path carries a visible gradient
            float[] p = new float[(int) layout.totalSize()];
            backend.read(model.params(), p);
            perturbNonPadding(p, layout, c, rng);
            backend.write(model.params(), p);

            model.zeroGrad();
            float loss = model.forward(inputs, targets, B, T, PASS_KEY);
            model.backward(1f);
            float[] g = new float[p.length];
            backend.read(model.grads(), g);

            ReferenceGpt2 ref = new ReferenceGpt2(c);
            double[] pd = new double[p.length];
            for (int i = 0; i < p.length; i++) pd[i] = p[i];
            double refLoss = ref.loss(pd, inputs, targets, B, T, PASS_KEY);
            assertEquals(refLoss, loss, 1e-5 * Math.max(1, Math.abs(refLoss)), "loss vs double reference");

            for (TensorSpec t : layout.tensors()) {
                List<Long> idx = sample(t, layout, c, inputs, rng);
                double[] fd = new double[idx.size()];
                double maxAbs = 0;
                for (int k = 0; k < idx.size(); k++) {
                    int i = (int) (t.offset() + idx.get(k));
                    double orig = pd[i];
                    pd[i] = orig + H;
                    double lp = ref.loss(pd, inputs, targets, B, T, PASS_KEY);
                    pd[i] = orig - H;
                    double lm = ref.loss(pd, inputs, targets, B, T, PASS_KEY);
                    pd[i] = orig;
                    fd[k] = (lp - lm) / (2 * H);
                    maxAbs = Math.max(maxAbs, Math.abs(fd[k]));
                }
                for (int k = 0; k < idx.size(); k++) {
                    long j = idx.get(k);
                    double got = g[(int) (t.offset() + j)];
                    double tol = ABS_TOL + REL_TOL * maxAbs;
                    assertEquals(fd[k], got, tol, t.name() + "[" + j + "]: backward " + got + " vs finite difference " + fd[k]);
                }
                assertTrue(maxAbs > 0 || t.name().startsWith("wpe"), t.name() + ": all sampled gradients are zero, the check is vacuous");
            }
            assertPaddingHasNoGradient(g, layout, c, T);
        }
    }

    /** Gradient accumulation: two backward passes at scale 1/2 equal one at scale 1. */
    @Test
    void backwardAccumulatesParameterGradients() {
        GptConfig c = TinyConfigs.seed(0.1f);
        Random rng = new Random(3);
        int[][] batch = OverfitTest.randomBatch(rng, B * T, c.vocabSize());
        try (CpuBackend backend = new CpuBackend(2); Gpt2 model = new Gpt2(c, backend)) {
            model.initialize(11);
            int n = (int) model.layout().totalSize();
            model.zeroGrad();
            model.forward(batch[0], batch[1], B, T, 7);
            model.backward(1f);
            float[] once = new float[n];
            backend.read(model.grads(), once);
            model.zeroGrad();
            for (int i = 0; i < 2; i++) {
                model.forward(batch[0], batch[1], B, T, 7);
                model.backward(0.5f);
            }
            float[] twice = new float[n];
            backend.read(model.grads(), twice);
            assertArrayEquals(once, twice, 1e-6f);
        }
    }

    /** Entries to check: a few random ones, plus rows that are certainly in use. */
    private static List<Long> sample(TensorSpec t, ParameterLayout layout, GptConfig c, int[] inputs, Random rng) {
        List<Long> out = new ArrayList<>();
        long rows = layout.hasVocabRows(t) ? c.vocabSize() : t.dim(0);
        long cols = t.rank() >= 2 ? t.dim(1) : 1;
        if (t == layout.wpe()) rows = T; // positions past T are unused
        for (int k = 0; k < 4; k++) out.add(rng.nextLong(rows) * cols + rng.nextLong(cols));
        if (t == layout.wte()) out.add(inputs[0] * cols + rng.nextLong(cols));
        return out;
    }

    private static void perturbNonPadding(float[] p, ParameterLayout layout, GptConfig c, Random rng) {
        for (TensorSpec t : layout.tensors()) {
            long rows = layout.hasVocabRows(t) ? c.vocabSize() : (t.rank() >= 2 ? t.dim(0) : 1);
            long used = rows * (t.rank() >= 2 ? t.dim(1) : t.dim(0));
            double std = t.rank() >= 2 ? 0.3 : 0.2;
            for (long i = 0; i < used; i++) p[(int) (t.offset() + i)] += (float) (rng.nextGaussian() * std);
        }
    }

    private static void assertPaddingHasNoGradient(float[] g, ParameterLayout layout, GptConfig c, int T) {
        long C = c.channels();
        for (TensorSpec t : new TensorSpec[]{layout.wte(), layout.lmHead()}) {
            for (long i = c.vocabSize() * C; i < t.size(); i++) {
                assertEquals(0f, g[(int) (t.offset() + i)], t.name() + " padded row element " + i);
            }
        }
        if (layout.wpe() == null) return;
        for (long i = T * C; i < layout.wpe().size(); i++) {
            assertEquals(0f, g[(int) (layout.wpe().offset() + i)], "wpe row past T, element " + i);
        }
    }
}
