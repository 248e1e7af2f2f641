package gpt2.train;

import gpt2.backend.cpu.CpuBackend;
import gpt2.backend.cpu.NewtonSchulzTest;
import gpt2.data.TestShards;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --optimizer muon: the update against a double-precision reference, and resuming bit for bit. */
class MuonTest {

    /** GPT-2's architecture (LayerNorm weights and biases, q/k/v bias, wpe) with an untied head: every group present. */
    private static final GptConfig GROUPS = GptConfig.preset("gpt2").with(b -> b.numLayers(2).numHeads(2).channels(16)
            .vocabSize(64).maxSeqLen(8).tiedEmbeddings(false));
    private static final AdamW.MuonSettings SETTINGS = new AdamW.MuonSettings(0.02f, 0.9f, 5, 0.2f, 0.004f);
    private static final float LR = 0.01f, WD = 0.1f, B1 = 0.9f, B2 = 0.95f, EPS = 1e-8f, SCALE = 0.7f;

    /**
     * Two steps (the schedule's multiplier 0.5 then 1: a warmup of 2) from random weights and
     * gradients, against the update written out in double: Nesterov momentum and Newton–Schulz per
     * q, k, v block and per other hidden matrix with the sqrt(max(1, rows/cols)) scale and no decay;
     * AdamW with wte's, lm_head's and --learning_rate's peaks, decay on the 2-D ones. Afterwards m
     * holds Muon's momentum buffer on the matrices and v is zero there.
     */
    @Test
    void twoStepsMatchADoublePrecisionReference() {
        LrSchedule schedule = new LrSchedule(LrSchedule.Kind.WSD, LR, 2, 10, 0f, 0.2f);
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(GROUPS, be);
             AdamW opt = new AdamW(model, B1, B2, EPS, WD, 0, model.layout().totalSize(), LR, SETTINGS)) {
            ParameterLayout layout = model.layout();
            int n = (int) layout.totalSize();
            Random r = new Random(5);
            float[] p = new float[n];
            for (int i = 0; i < n; i++) p[i] = (float) (r.nextGaussian() * 0.1);
            be.write(model.params(), p);
            double[] ref = toDouble(p), m = new double[n], v = new double[n];
            for (int step = 0; step < 2; step++) {
                float[] g = new float[n];
                for (int i = 0; i < n; i++) g[i] = (float) (r.nextGaussian() * 0.01);
                be.write(model.grads(), g);
                opt.step(model, schedule, step, SCALE, null);
                reference(layout, ref, m, v, g, schedule.multiplier(step), step + 1);
            }
            float[] got = new float[n], gotM = new float[n], gotV = new float[n];
            be.read(model.params(), got);
            be.read(opt.m(), gotM);
            be.read(opt.v(), gotV);
            for (TensorSpec t : layout.tensors()) {
                for (long i = t.offset(); i < t.end(); i++) {
                    int k = (int) i;
                    assertEquals(ref[k], got[k], 2e-6 + 1e-5 * Math.abs(ref[k]), t.name() + "[" + (i - t.offset()) + "]");
                    assertEquals(m[k], gotM[k], 1e-8 + 1e-5 * Math.abs(m[k]), "m of " + t.name());
                    assertEquals(v[k], gotV[k], 1e-12 + 1e-5 * Math.abs(v[k]), "v of " + t.name());
                }
            }
            TensorSpec qkv = layout.layer(0).qkvw();
            assertEquals(0f, gotV[(int) qkv.offset()], "v stays zero on Muon matrices");
            assertTrue(gotM[(int) qkv.offset()] != 0f, "m holds Muon's momentum buffer");
            assertEquals(2, opt.stepCount());
            assertEquals((float) (0.02 * 0.5), opt.displayLr(schedule, 0), "the log shows Muon's lr");
        }
    }

    /** The update of one step in double, written out tensor by tensor. */
    private static void reference(ParameterLayout layout, double[] p, double[] m, double[] v, float[] g, double mult, int t) {
        java.util.Set<String> hidden = new java.util.HashSet<>();
        for (ParameterLayout.Layer l : layout.layers()) {
            for (TensorSpec w : List.of(l.qkvw(), l.attprojw(), l.fcw(), l.fcprojw())) hidden.add(w.name());
        }
        double mu = SETTINGS.momentum();
        for (TensorSpec ts : layout.tensors()) {
            int off = (int) ts.offset(), size = (int) ts.size();
            if (hidden.contains(ts.name())) {
                int rows = (int) ts.dim(0), cols = (int) ts.dim(1);
                int blocks = ts.name().endsWith("attn.c_attn.weight") ? 3 : 1;
                int br = rows / blocks;
                for (int b = 0; b < blocks; b++) {
                    int o = off + b * br * cols;
                    double[] u = new double[br * cols];
                    for (int i = 0; i < u.length; i++) {
                        double gi = (double) g[o + i] * SCALE;
                        m[o + i] = mu * m[o + i] + (1 - mu) * gi;
                        u[i] = (1 - mu) * gi + mu * m[o + i];
                    }
                    double[] o5 = NewtonSchulzTest.newtonSchulz(u, br, cols, 5);
                    double lr = SETTINGS.lr() * mult * Math.sqrt(Math.max(1.0, (double) br / cols));
                    for (int i = 0; i < u.length; i++) p[o + i] -= lr * o5[i];
                }
                continue;
            }
            double peak = ts.name().equals("wte") ? SETTINGS.embeddingLr() : ts.name().equals("lm_head.weight") ? SETTINGS.headLr() : LR;
            double lr = peak * mult, wd = ts.rank() >= 2 ? WD : 0;
            for (int i = off; i < off + size; i++) {
                double gi = (double) g[i] * SCALE;
                m[i] = B1 * m[i] + (1 - B1) * gi;
                v[i] = B2 * v[i] + (1 - B2) * gi * gi;
                double mHat = m[i] / (1 - Math.pow(B1, t)), vHat = v[i] / (1 - Math.pow(B2, t));
                p[i] -= lr * (mHat / (Math.sqrt(vHat) + EPS) + wd * p[i]);
            }
        }
    }

    // ------------------------------------------------------------------ training and resuming

    /** The modern recipe (RoPE, QK-norm, relu², parameter-free RMSNorm, untied head, soft-capping), tiny. */
    static final GptConfig MODERN = GptConfig.preset("d4-modern").with(b -> b.numLayers(2).numHeads(2).channels(32)
            .vocabSize(128).maxSeqLen(16));

    static TrainConfig config(Path shard, Path out, int steps, int saveEvery) {
        return new TrainConfig(shard.toString(), null, out, 4, 8, 32, steps, false, 3e-3f, 1, 0.1f, 0.1f, 1f,
                0.8f, 0.95f, 1e-8f, 0, 1, 0, false, saveEvery, 1, 0, 1, 0f, 0f, 10, 0, 0, LrSchedule.Kind.WSD, 0.5f);
    }

    record Run(List<Trainer.StepResult> steps, float[] params) {
    }

    static Run train(TrainConfig cfg, AdamW.MuonSettings muon, Path resumeFrom) {
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(MODERN, be);
             AdamW opt = new AdamW(model, cfg.beta1(), cfg.beta2(), cfg.adamEps(), cfg.weightDecay(), 0,
                     model.layout().totalSize(), cfg.learningRate(), muon)) {
            model.initialize(9);
            Trainer t = new Trainer(model, opt, cfg, new PrintStream(new ByteArrayOutputStream()), null);
            if (resumeFrom != null) t.resumeFrom(resumeFrom);
            List<Trainer.StepResult> r = t.run();
            float[] p = new float[(int) model.layout().totalSize()];
            be.read(model.params(), p);
            return new Run(r, p);
        }
    }

    /** A Muon run resumed from its step-3 checkpoint ends with the losses and weights of the uninterrupted run, bit for bit. */
    @Test
    void resumingAMuonRunIsBitIdentical(@TempDir Path dir) {
        Path shard = TestShards.random(dir.resolve("train.bin"), 4000, 128, 5);
        Run full = train(config(shard, dir.resolve("full"), 6, 3), SETTINGS, null);
        Run resumed = train(config(shard, dir.resolve("resumed"), 6, 0), SETTINGS, dir.resolve("full/checkpoint_00000003"));
        assertEquals(3, resumed.steps().size());
        for (int i = 0; i < 3; i++) {
            assertEquals(full.steps().get(3 + i).loss(), resumed.steps().get(i).loss(), 0f, "loss of step " + (4 + i));
            assertEquals(full.steps().get(3 + i).lr(), resumed.steps().get(i).lr(), 0f, "lr of step " + (4 + i));
        }
        assertArrayEquals(full.params(), resumed.params(), "weights after resuming");
        // an AdamW run cannot continue a Muon checkpoint (nor the other way round)
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> train(config(shard, dir.resolve("adamw"), 6, 0), null, dir.resolve("full/checkpoint_00000003")));
        assertTrue(e.getMessage().contains("was trained with --optimizer muon; it cannot continue with --optimizer adamw"), e.getMessage());
    }
}
