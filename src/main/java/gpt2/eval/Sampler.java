package gpt2.eval;

import gpt2.model.Gpt2;
import gpt2.train.Rng;

import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * Autoregressive sampling with a KV cache: the prompt is fed one position at a time, then each
 * new token costs one position of compute. Once the context fills the block size the window
 * slides: the model then runs over the last block-size tokens per new token, exactly as cropping
 * the context does in nanoGPT.
 */
public final class Sampler {
    private Sampler() {
    }

    /**
     * @param maxNew      tokens to generate
     * @param temperature 0 means greedy (argmax)
     * @param topK        keep the k most likely tokens (<= 0: all)
     * @param topP        then the smallest set whose probability reaches p (1: all)
     */
    public record Options(int maxNew, float temperature, int topK, float topP) {
        public Options {
            if (maxNew < 0) throw new IllegalArgumentException("--max_new_tokens must be >= 0, got " + maxNew);
            if (!(temperature >= 0)) throw new IllegalArgumentException("--temperature must be >= 0, got " + temperature);
            if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("--top_p must be in (0, 1], got " + topP);
        }
    }

    /** Returns the prompt followed by {@code maxNew} sampled tokens (top-k and temperature only). */
    public static int[] generate(Gpt2 model, int[] prompt, int maxNew, int topK, float temperature, Rng rng) {
        if (!(temperature > 0)) throw new IllegalArgumentException("temperature must be > 0, got " + temperature);
        return generate(model, prompt, new Options(maxNew, temperature, topK, 1f), rng, t -> { });
    }

    /** Generates, calling {@code onToken} with each new token as soon as it is drawn. */
    public static int[] generate(Gpt2 model, int[] prompt, Options o, Rng rng, IntConsumer onToken) {
        if (prompt.length == 0) throw new IllegalArgumentException("sampling needs at least one prompt token");
        int maxT = model.config().maxSeqLen();
        int[] seq = Arrays.copyOf(prompt, prompt.length + o.maxNew());
        try (Gpt2.KvCache cache = model.newKvCache(1)) {
            float[] logits = null;
            int cached = 0;
            for (int n = prompt.length; n < seq.length; n++) {
                if (n <= maxT) {
                    for (; cached < n; cached++) logits = model.decode(new int[]{seq[cached]}, cached, cache)[0];
                } else {
                    int[] ctx = Arrays.copyOfRange(seq, n - maxT, n);
                    model.forward(ctx, null, 1, maxT, -1);
                    logits = model.logits(0, maxT - 1);
                }
                seq[n] = sample(logits, o.topK(), o.topP(), o.temperature(), rng.nextDouble());
                onToken.accept(seq[n]);
            }
        }
        return seq;
    }

    /**
     * Bytes that decoding positions 0..positions-1 of B sequences reads at least, in float32: at each
     * position every weight except the position table (one row of it), the tied embedding once as
     * the classifier, and the KV cache of the positions so far. Its rate against the memory's
     * bandwidth says how near decoding is to its floor.
     */
    public static double bytesForPositions(gpt2.model.GptConfig cfg, int B, int positions) {
        gpt2.model.ParameterLayout p = gpt2.model.ParameterLayout.of(cfg);
        long weights = p.totalSize() - (p.wpe() == null ? 0 : p.wpe().size() - cfg.channels());
        double cachedPositions = positions * (positions + 1.0) / 2; // 1 + 2 + ... + positions
        return 4.0 * weights * positions + 4.0 * 2 * cfg.numLayers() * (double) B * cachedPositions * cfg.channels();
    }

    /** As below with top-p off. */
    static int sample(float[] logits, int topK, float temperature, double u) {
        return sample(logits, topK, 1f, temperature, u);
    }

    /**
     * Draws a token from softmax(logits / temperature) restricted to the topK largest logits
     * (all when topK <= 0), then to the smallest prefix whose probability reaches topP, with u a
     * uniform number in [0, 1). Temperature 0 returns the argmax. Ties break toward lower ids.
     */
    static int sample(float[] logits, int topK, float topP, float temperature, double u) {
        int V = logits.length;
        for (float l : logits) {
            if (Float.isNaN(l)) throw new IllegalStateException("the model produced NaN logits; cannot sample");
        }
        if (temperature == 0f) return topIndices(logits, 1)[0];
        int k = topK <= 0 ? V : Math.min(topK, V);
        int[] idx = topIndices(logits, k);
        double max = logits[idx[0]] / temperature;
        double[] p = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) {
            p[i] = Math.exp(logits[idx[i]] / temperature - max);
            sum += p[i];
        }
        if (topP < 1f) {
            double acc = 0;
            int keep = 0;
            while (keep < k) {
                acc += p[keep++] / sum;
                if (acc >= topP) break;
            }
            k = keep;
            sum = 0;
            for (int i = 0; i < k; i++) sum += p[i];
        }
        double target = u * sum, acc = 0;
        for (int i = 0; i < k; i++) {
            acc += p[i];
            if (target < acc) return idx[i];
        }
        return idx[k - 1];
    }

    /** The k largest logits' ids, largest first, ties toward lower ids. */
    static int[] topIndices(float[] logits, int k) {
        int V = logits.length;
        if (k > 256) {
            Integer[] all = new Integer[V];
            for (int i = 0; i < V; i++) all[i] = i;
            Arrays.sort(all, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : Integer.compare(a, b));
            int[] out = new int[k];
            for (int i = 0; i < k; i++) out[i] = all[i];
            return out;
        }
        // insertion into a small sorted array: O(V k) worst case, O(V) typically
        int[] top = new int[k];
        int n = 0;
        for (int i = 0; i < V; i++) {
            if (n == k && logits[i] <= logits[top[k - 1]]) continue; // not above the smallest kept (ties keep lower ids)
            int j = n < k ? n++ : k - 1;
            while (j > 0 && logits[top[j - 1]] < logits[i]) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = i;
        }
        return top;
    }
}
