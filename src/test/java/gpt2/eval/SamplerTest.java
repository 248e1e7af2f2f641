package gpt2.eval;

import gpt2.backend.cpu.CpuBackend;
import gpt2.model.Gpt2;
import gpt2.model.TinyConfigs;
import gpt2.train.Rng;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sampling is inverse-CDF sampling over the top-k tokens: a stratified grid of u values in [0, 1)
 * must reproduce softmax(logits / temperature) over those tokens to within 2/N per token.
 */
class SamplerTest {

    private static final int GRID = 50_000;
    private static final double GRID_TOL = 2.0 / GRID;

    private static float[] randomLogits(long seed, int V, double scale) {
        Random r = new Random(seed);
        float[] l = new float[V];
        for (int i = 0; i < V; i++) l[i] = (float) (r.nextGaussian() * scale);
        return l;
    }

    /** Frequencies of each token over u = (i + 0.5) / GRID. */
    private static double[] empirical(float[] logits, int topK, float temperature) {
        double[] f = new double[logits.length];
        for (int i = 0; i < GRID; i++) f[Sampler.sample(logits, topK, temperature, (i + 0.5) / GRID)]++;
        for (int i = 0; i < f.length; i++) f[i] /= GRID;
        return f;
    }

    /** softmax(logits / temperature) over the k largest (ties toward lower ids), zero elsewhere; in double. */
    private static double[] expected(float[] logits, int k, double temperature) {
        int V = logits.length;
        boolean[] in = new boolean[V];
        for (int chosen = 0; chosen < k; chosen++) {
            int best = -1;
            for (int i = 0; i < V; i++) if (!in[i] && (best < 0 || logits[i] > logits[best])) best = i;
            in[best] = true;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < V; i++) if (in[i]) max = Math.max(max, logits[i] / temperature);
        double[] p = new double[V];
        double sum = 0;
        for (int i = 0; i < V; i++) if (in[i]) sum += p[i] = Math.exp(logits[i] / temperature - max);
        for (int i = 0; i < V; i++) p[i] /= sum;
        return p;
    }

    private static double entropy(double[] p) {
        double h = 0;
        for (double x : p) if (x > 0) h -= x * Math.log(x);
        return h;
    }

    private static int argmax(float[] l) {
        int best = 0;
        for (int i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
        return best;
    }

    @Test
    void topOneIsAlwaysTheArgmax() {
        for (long seed = 0; seed < 20; seed++) {
            float[] l = randomLogits(seed, 50, 2.0);
            int want = argmax(l);
            for (int i = 0; i < 1000; i++) {
                double u = i / 1000.0;
                assertEquals(want, Sampler.sample(l, 1, 1f, u), "seed " + seed + ", u " + u);
                assertEquals(want, Sampler.sample(l, 1, 5f, u), "high temperature, seed " + seed);
            }
            assertEquals(want, Sampler.sample(l, 1, 1f, Math.nextDown(1.0)));
        }
        float[] tie = {0.5f, 3f, -1f, 3f, 3f};
        for (int i = 0; i < 100; i++) assertEquals(1, Sampler.sample(tie, 1, 1f, i / 100.0), "ties break toward lower ids");
    }

    @Test
    void onlyTheTopKCanBeDrawnAndEachOfThemIs() {
        float[] l = randomLogits(7, 64, 1.0);
        for (int k : new int[]{2, 5, 17}) {
            double[] want = expected(l, k, 1.0);
            double[] got = empirical(l, k, 1f);
            int drawn = 0;
            for (int i = 0; i < l.length; i++) {
                if (want[i] == 0) assertEquals(0.0, got[i], "k=" + k + ": token " + i + " is outside the top k");
                else {
                    assertTrue(got[i] > 0, "k=" + k + ": top-k token " + i + " (p=" + want[i] + ") never drawn");
                    drawn++;
                }
            }
            assertEquals(k, drawn);
            assertTrue(Sampler.sample(l, k, 1f, 0.0) == argmax(l), "u = 0 gives the most likely token");
            int last = Sampler.sample(l, k, 1f, Math.nextDown(1.0));
            assertTrue(want[last] > 0, "u just below 1 stays inside the top k");
        }
    }

    @Test
    void gridFrequenciesMatchTheTruncatedSoftmax() {
        float[] l = randomLogits(3, 40, 1.5);
        int[] ks = {1, 3, 10, 40, 0, 100};
        float[] temps = {0.5f, 1f, 1.7f};
        for (int k : ks) {
            for (float temp : temps) {
                int effectiveK = k <= 0 ? l.length : Math.min(k, l.length);
                double[] want = expected(l, effectiveK, temp);
                double[] got = empirical(l, k, temp);
                for (int i = 0; i < l.length; i++) {
                    assertEquals(want[i], got[i], GRID_TOL, "k=" + k + ", T=" + temp + ", token " + i);
                }
            }
        }
    }

    @Test
    void temperatureLowersAndRaisesEntropy() {
        float[] l = randomLogits(11, 32, 1.0);
        float[] temps = {0.25f, 0.5f, 1f, 2f, 4f};
        double previous = -1;
        for (float temp : temps) {
            double h = entropy(empirical(l, 0, temp));
            assertEquals(entropy(expected(l, l.length, temp)), h, 5e-3, "entropy at T=" + temp);
            assertTrue(h > previous, "entropy rises with temperature: T=" + temp + " gives " + h + " after " + previous);
            previous = h;
        }
        assertTrue(previous < Math.log(l.length), "stays below the uniform entropy");
        double[] cold = empirical(l, 0, 0.01f);
        assertEquals(entropy(expected(l, l.length, 0.01)), entropy(cold), 5e-3, "entropy near zero temperature");
        int mode = 0;
        for (int i = 1; i < cold.length; i++) if (cold[i] > cold[mode]) mode = i;
        assertEquals(argmax(l), mode, "near zero temperature the argmax dominates");
    }

    @Test
    void rngIsReproducibleAndResumable() {
        // the published first output of SplitMix64 seeded with 0
        assertEquals(0xE220A8397B1DCDAFL, new Rng(0).nextLong());
        Rng a = new Rng(1234), b = new Rng(1234);
        for (int i = 0; i < 1000; i++) assertEquals(a.nextLong(), b.nextLong());
        assertFalse(new Rng(1234).nextLong() == new Rng(1235).nextLong(), "another seed, another sequence");

        Rng run = new Rng(99);
        for (int i = 0; i < 17; i++) run.nextDouble();
        long saved = run.state();
        double[] continued = new double[50];
        for (int i = 0; i < continued.length; i++) continued[i] = run.nextDouble();
        Rng resumed = new Rng(-7);
        resumed.setState(saved);
        assertEquals(saved, resumed.state());
        for (int i = 0; i < continued.length; i++) assertEquals(continued[i], resumed.nextDouble(), "draw " + i);

        Rng u = new Rng(5);
        double min = 1, max = 0, sum = 0;
        int n = 200_000;
        int[] bins = new int[10];
        for (int i = 0; i < n; i++) {
            double d = u.nextDouble();
            assertTrue(d >= 0 && d < 1, "nextDouble in [0, 1): " + d);
            min = Math.min(min, d);
            max = Math.max(max, d);
            sum += d;
            bins[(int) (d * 10)]++;
        }
        // mean of n uniforms: sd = sqrt(1/12/n) ~ 6.5e-4; bins: sd = sqrt(n*0.09) ~ 134
        assertEquals(0.5, sum / n, 0.004);
        for (int c : bins) assertEquals(n / 10.0, c, 800, "bin counts " + Arrays.toString(bins));
        assertTrue(min < 1e-4 && max > 1 - 1e-4, "covers the interval: " + min + " .. " + max);
    }

    @Test
    void generateExtendsThePromptDeterministicallyAndCropsTheContext() {
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(TinyConfigs.gpt2(0.1f), be)) {
            model.initialize(21);
            int V = model.config().vocabSize(), maxT = model.config().maxSeqLen();
            int[] prompt = {5, 17, 42};
            int maxNew = 30;
            assertTrue(prompt.length + maxNew > maxT, "the test must run past the block size");

            int[] a = Sampler.generate(model, prompt, maxNew, 10, 1f, new Rng(42));
            int[] b = Sampler.generate(model, prompt, maxNew, 10, 1f, new Rng(42));
            int[] c = Sampler.generate(model, prompt, maxNew, 10, 1f, new Rng(43));
            assertEquals(prompt.length + maxNew, a.length);
            assertArrayEquals(prompt, Arrays.copyOf(a, prompt.length), "starts with the prompt");
            for (int t : a) assertTrue(t >= 0 && t < V, "token " + t + " in [0, " + V + ")");
            assertArrayEquals(a, b, "same seed, same tokens");
            assertFalse(Arrays.equals(a, c), "another seed, other tokens");

            // replay: each token is drawn from the logits of the last maxT tokens, one u per token
            Rng replay = new Rng(42);
            for (int n = prompt.length; n < a.length; n++) {
                int[] ctx = Arrays.copyOfRange(a, Math.max(0, n - maxT), n);
                model.forward(ctx, null, 1, ctx.length, -1);
                int want = Sampler.sample(model.logits(0, ctx.length - 1), 10, 1f, replay.nextDouble());
                assertEquals(want, a[n], "token " + n);
            }

            int[] greedy = Sampler.generate(model, new int[]{1}, 20, 1, 1f, new Rng(1));
            int[] greedyOther = Sampler.generate(model, new int[]{1}, 20, 1, 1f, new Rng(2));
            assertArrayEquals(greedy, greedyOther, "top-1 sampling ignores the random numbers");
            assertEquals(1, Sampler.generate(model, new int[]{1}, 0, 5, 1f, new Rng(1)).length);
        }
    }

    @Test
    void generateRejectsBadArguments() {
        try (CpuBackend be = new CpuBackend(1); Gpt2 model = new Gpt2(TinyConfigs.gpt2(0f), be)) {
            model.initialize(1);
            assertThrows(IllegalArgumentException.class, () -> Sampler.generate(model, new int[0], 3, 5, 1f, new Rng(1)));
            assertThrows(IllegalArgumentException.class, () -> Sampler.generate(model, new int[]{1}, 3, 5, 0f, new Rng(1)));
            assertThrows(IllegalArgumentException.class, () -> Sampler.generate(model, new int[]{1}, 3, 5, Float.NaN, new Rng(1)));
        }
    }
}
