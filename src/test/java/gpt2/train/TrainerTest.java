package gpt2.train;

import gpt2.backend.cpu.CpuBackend;
import gpt2.data.TestShards;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainerTest {

    private static final GptConfig TINY = GptConfig.preset("d2").with(b -> b.vocabSize(128).channels(32).numHeads(2)
            .maxSeqLen(16));

    private static Path shard(Path dir) {
        return TestShards.random(dir.resolve("train.bin"), 4000, 128, 5);
    }

    private static TrainConfig config(Path shard, int B, long total, int steps) {
        return new TrainConfig(shard.toString(), null, null, B, 8, total, steps, false, 1e-3f, 0, 1f, 0.1f, 1f,
                0.9f, 0.95f, 1e-8f, 0, 1, 0, false, 0, 1, 0, 1);
    }

    /** Runs a fresh model (same init) with the config; returns the step results and the final weights. */
    private static Object[] train(TrainConfig cfg) {
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(TINY, be);
             AdamW opt = new AdamW(model, cfg.beta1(), cfg.beta2(), cfg.adamEps(), cfg.weightDecay())) {
            model.initialize(9);
            List<Trainer.StepResult> r = new Trainer(model, opt, cfg, new PrintStream(new ByteArrayOutputStream()), null).run();
            float[] p = new float[(int) model.layout().totalSize()];
            be.read(model.params(), p);
            return new Object[]{r, p};
        }
    }

    /** k micro-batches of B sequences with gradient accumulation = one batch of k*B sequences. */
    @Test
    @SuppressWarnings("unchecked")
    void accumulationEqualsOneLargerBatch(@TempDir Path dir) {
        Path s = shard(dir);
        Object[] accum = train(config(s, 2, 2 * 8 * 4, 3)); // B=2, 4 micro-batches
        Object[] large = train(config(s, 8, 8 * 8, 3));     // B=8, 1 micro-batch
        List<Trainer.StepResult> ra = (List<Trainer.StepResult>) accum[0], rl = (List<Trainer.StepResult>) large[0];
        for (int i = 0; i < 3; i++) {
            assertEquals(rl.get(i).loss(), ra.get(i).loss(), 2e-5f, "loss of step " + i);
            assertEquals(rl.get(i).norm(), ra.get(i).norm(), 2e-5f * rl.get(i).norm(), "gradient norm of step " + i);
        }
        float[] pa = (float[]) accum[1], pl = (float[]) large[1];
        double maxDiff = 0;
        for (int i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i] - pl[i]));
        // after 3 AdamW steps of lr 1e-3 the weights agree to float32 rounding of the gradient sums
        assertTrue(maxDiff < 5e-6, "weights differ by " + maxDiff);
    }

    @Test
    void overfitModeSeesTheSameBatchEveryStep(@TempDir Path dir) {
        Path s = shard(dir);
        TrainConfig overfit = new TrainConfig(s.toString(), null, null, 4, 8, 32, 30, false, 3e-3f, 0, 1f, 0f, 1f,
                0.9f, 0.95f, 1e-8f, 0, 1, 0, true, 0, 1, 0, 1);
        @SuppressWarnings("unchecked")
        List<Trainer.StepResult> r = (List<Trainer.StepResult>) train(overfit)[0];
        assertTrue(r.getLast().loss() < 0.5f * r.getFirst().loss(), "one batch is memorized: " + r.getFirst().loss()
                + " -> " + r.getLast().loss());
    }

    @Test
    void passKeysDifferPerStepMicroStepAndRank() {
        Trainer a = new Trainer(null, null, new TrainConfig("x", null, null, 1, 1, 1, 1, false, 1e-3f, 0, 1f, 0f, 1f,
                0.9f, 0.95f, 1e-8f, 0, 1, 0, false, 0, 7, 0, 1), null, null);
        Trainer b = new Trainer(null, null, new TrainConfig("x", null, null, 1, 1, 2, 1, false, 1e-3f, 0, 1f, 0f, 1f,
                0.9f, 0.95f, 1e-8f, 0, 1, 0, false, 0, 7, 1, 2), null, null);
        java.util.Set<Long> keys = new java.util.HashSet<>();
        for (int step = 0; step < 20; step++) {
            for (int micro = 0; micro < 4; micro++) {
                long ka = a.passKey(step, micro), kb = b.passKey(step, micro);
                assertTrue(ka >= 0 && kb >= 0);
                keys.add(ka);
                keys.add(kb);
            }
        }
        assertEquals(160, keys.size(), "every (step, micro, rank) gets its own dropout key");
    }

    @Test
    void etaIsWrittenInHoursMinutesOrSeconds() {
        org.junit.jupiter.api.Assertions.assertEquals("45s", Trainer.duration(45));
        org.junit.jupiter.api.Assertions.assertEquals("2m 05s", Trainer.duration(125));
        org.junit.jupiter.api.Assertions.assertEquals("19h 03m", Trainer.duration(19 * 3600 + 3 * 60 + 59));
    }
}
