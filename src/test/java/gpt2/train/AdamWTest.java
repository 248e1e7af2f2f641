package gpt2.train;

import gpt2.backend.cpu.CpuBackend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;

class AdamWTest {

    private static final GptConfig TINY = GptConfig.preset("d2").with(b -> b.vocabSize(64).channels(8).numHeads(2).maxSeqLen(8));

    /**
     * Every parameter 1.0; gradient 0.5 then -0.25; lr 0.1, betas (0.9, 0.95), eps 1e-8, weight decay 0.1.
     * By hand (torch.optim.AdamW):
     * step 1: m = 0.05, v = 0.0125, m^ = 0.5, v^ = 0.25, update = 0.5 / (0.5 + 1e-8) = 0.99999998
     *         decayed:   p = 1 - 0.1 * (0.99999998 + 0.1 * 1)    = 0.890000002
     *         undecayed: p = 1 - 0.1 * 0.99999998                = 0.900000002
     * step 2: m = 0.02, v = 0.015, m^ = 0.02 / 0.19 = 0.10526316, v^ = 0.015 / 0.0975 = 0.15384615,
     *         update = 0.10526316 / 0.39223227 = 0.26836966
     *         decayed:   p = 0.890000002 - 0.1 * (0.26836966 + 0.1 * 0.890000002) = 0.85426306
     *         undecayed: p = 0.900000002 - 0.1 * 0.26836966                       = 0.87316306
     */
    @Test
    void twoStepsMatchTheHandComputedExample() {
        try (CpuBackend backend = new CpuBackend(2); Gpt2 model = new Gpt2(TINY, backend);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            ParameterLayout layout = model.layout();
            int n = (int) layout.totalSize();
            float[] ones = new float[n];
            Arrays.fill(ones, 1f);
            backend.write(model.params(), ones);
            float[] g = new float[n];
            Arrays.fill(g, 0.5f);
            backend.write(model.grads(), g);
            opt.step(model.params(), model.grads(), 0.1f, 1f);
            assertEach(model, 0.890000002, 0.900000002);
            Arrays.fill(g, -0.25f);
            backend.write(model.grads(), g);
            opt.step(model.params(), model.grads(), 0.1f, 1f);
            assertEach(model, 0.85426306, 0.87316306);
            assertEquals(2, opt.stepCount());
        }
    }

    /** The clip scale multiplies the gradient before the moments: grad 1.0 at scale 0.5 equals grad 0.5. */
    @Test
    void gradScaleActsOnTheGradient() {
        try (CpuBackend backend = new CpuBackend(1); Gpt2 model = new Gpt2(TINY, backend);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            int n = (int) model.layout().totalSize();
            float[] ones = new float[n];
            Arrays.fill(ones, 1f);
            backend.write(model.params(), ones);
            backend.write(model.grads(), ones);
            opt.step(model.params(), model.grads(), 0.1f, 0.5f);
            float[] m = new float[n];
            backend.read(opt.m(), m);
            assertEquals(0.05f, m[0], 1e-7f); // (1 - 0.9f) is 0.100000024 in float
        }
    }

    @Test
    void clipScaleFollowsTorch() {
        try (CpuBackend backend = new CpuBackend(1)) {
            var buf = backend.allocate(gpt2.backend.DType.F32, 2, "g");
            backend.write(buf, new float[]{3f, 4f});
            float[] r = AdamW.normAndClipScale(backend, buf, 1f);
            assertEquals(5f, r[0], 1e-6f);
            assertEquals(1f / (5f + 1e-6f), r[1], 1e-7f);
            assertEquals(1f, AdamW.normAndClipScale(backend, buf, 10f)[1]);
            assertEquals(1f, AdamW.normAndClipScale(backend, buf, 0f)[1]);
        }
    }

    private static void assertEach(Gpt2 model, double decayed, double undecayed) {
        float[] p = new float[(int) model.layout().totalSize()];
        model.backend().read(model.params(), p);
        for (TensorSpec t : model.layout().tensors()) {
            double expected = ParameterLayout.decays(t) ? decayed : undecayed;
            for (long i = t.offset(); i < t.end(); i += Math.max(1, t.size() / 7)) {
                assertEquals(expected, p[(int) i], 1e-6, t.name() + "[" + (i - t.offset()) + "]");
            }
        }
    }
}
