package gpt2.eval;

import gpt2.model.Gpt2;
import gpt2.train.Rng;

import java.util.Arrays;

/**
 * Autoregressive sampling with top-k and temperature. Each new token runs the model over the
 * whole context (cropped to the block size); a KV cache makes this incremental later.
 */
public final class Sampler {
    private Sampler() {
    }

    /** Returns the prompt followed by {@code maxNew} sampled tokens. */
    public static int[] generate(Gpt2 model, int[] prompt, int maxNew, int topK, float temperature, Rng rng) {
        if (prompt.length == 0) throw new IllegalArgumentException("sampling needs at least one prompt token");
        if (!(temperature > 0)) throw new IllegalArgumentException("temperature must be > 0, got " + temperature);
        int maxT = model.config().maxSeqLen();
        int[] seq = Arrays.copyOf(prompt, prompt.length + maxNew);
        for (int n = prompt.length; n < seq.length; n++) {
            int from = Math.max(0, n - maxT);
            int[] ctx = Arrays.copyOfRange(seq, from, n);
            model.forward(ctx, null, 1, ctx.length, -1);
            seq[n] = sample(model.logits(0, ctx.length - 1), topK, temperature, rng.nextDouble());
        }
        return seq;
    }

    /**
     * Draws a token from softmax(logits / temperature) restricted to the topK largest logits
     * (all when topK <= 0), with u a uniform number in [0, 1). Ties break toward lower ids.
     */
    static int sample(float[] logits, int topK, float temperature, double u) {
        int V = logits.length;
        int k = topK <= 0 ? V : Math.min(topK, V);
        for (float l : logits) {
            if (Float.isNaN(l)) throw new IllegalStateException("the model produced NaN logits; cannot sample");
        }
        int[] idx = topIndices(logits, k);
        double max = logits[idx[0]] / temperature;
        double[] p = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) {
            p[i] = Math.exp(logits[idx[i]] / temperature - max);
            sum += p[i];
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
