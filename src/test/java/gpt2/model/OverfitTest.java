package gpt2.model;

import gpt2.backend.cpu.CpuBackend;
import gpt2.train.AdamW;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Whole-model training checks: loss at initialization, and memorizing one batch. */
class OverfitTest {

    private static GptConfig config(String arch) {
        return arch.equals("gpt2") ? TinyConfigs.gpt2(0f) : TinyConfigs.seed(0.1f);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "seed"})
    void lossAtInitializationIsLnVocab(String arch) {
        GptConfig c = config(arch).with(b -> b.channels(32));
        try (CpuBackend backend = new CpuBackend(2); Gpt2 model = new Gpt2(c, backend)) {
            model.initialize(1);
            int B = 4, T = 16;
            int[][] batch = randomBatch(new Random(2), B * T, c.vocabSize());
            float loss = model.forward(batch[0], batch[1], B, T, -1);
            assertEquals(Math.log(c.vocabSize()), loss, 0.1, "loss at init for vocab " + c.vocabSize());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "seed"})
    void tinyModelOverfitsOneBatch(String arch) {
        GptConfig c = config(arch).with(b -> b.channels(32).numHeads(4));
        try (CpuBackend backend = new CpuBackend(2); Gpt2 model = new Gpt2(c, backend);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.0f)) {
            model.initialize(42);
            int B = 4, T = 16;
            int[][] batch = randomBatch(new Random(7), B * T, c.vocabSize());
            float first = Float.NaN, loss = Float.NaN;
            int step = 0;
            for (; step < 300; step++) {
                model.zeroGrad();
                loss = model.forward(batch[0], batch[1], B, T, step);
                if (step == 0) first = loss;
                model.backward(1f);
                opt.step(model.params(), model.grads(), 3e-3f, 1f);
                if (loss < 0.05f) break;
            }
            // evaluation loss (dropout off) must be low too
            float eval = model.forward(batch[0], batch[1], B, T, -1);
            System.out.printf("%s: loss %.4f -> %.4f after %d steps, eval %.4f%n", arch, first, loss, step, eval);
            assertTrue(loss < 0.05f, "training loss " + loss + " after 300 steps");
            assertTrue(eval < 0.2f, "evaluation loss " + eval);
        }
    }

    /** inputs and targets (shifted by one) from one random token stream. */
    static int[][] randomBatch(Random rng, int n, int vocab) {
        int[] stream = new int[n + 1];
        for (int i = 0; i < stream.length; i++) stream[i] = rng.nextInt(vocab);
        int[] in = new int[n], tg = new int[n];
        System.arraycopy(stream, 0, in, 0, n);
        System.arraycopy(stream, 1, tg, 0, n);
        return new int[][]{in, tg};
    }
}
