package gpt2.backend;

/**
 * Dropout by a counter-based hash: whether element {@code i} of a site is kept depends only on
 * the site's key and {@code i}, so backward regenerates the forward mask without storing it,
 * and a run is reproducible from its seed and step. Kept elements are scaled by 1/(1-p).
 *
 * <p>The hash is SplitMix64's finalizer over {@code key + i * golden}; the top 24 bits give a
 * uniform in [0, 1). It is written with 64-bit integer operations only so that a GPU kernel
 * reproduces it bit for bit.
 *
 * @param p   probability of dropping an element, in [0, 1)
 * @param key the site's key (see {@link #siteKey})
 */
public record Dropout(float p, long key) {

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    public Dropout {
        if (!(p >= 0f && p < 1f)) throw new IllegalArgumentException("dropout p must be in [0, 1), got " + p);
    }

    /** True when this dropout changes nothing (p = 0). */
    public boolean isOff() {
        return p == 0f;
    }

    /** The factor element {@code index} is multiplied by: 0 or 1/(1-p). */
    public float scale(long index) {
        return keep(index) ? 1f / (1f - p) : 0f;
    }

    public boolean keep(long index) {
        return uniform(key, index) >= p;
    }

    /** A uniform number in [0, 1) with 24 random bits, from the key and a counter. */
    public static float uniform(long key, long index) {
        long z = mix64(key + index * GOLDEN);
        return (z >>> 40) * 0x1.0p-24f;
    }

    /** SplitMix64's output function. */
    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * The key of one dropout site in one forward pass.
     *
     * @param passKey differs per training step and micro-step (derived from the run's seed)
     * @param layer   the layer index, or -1 for the embedding
     * @param site    which site within the layer (attention weights, attention branch, MLP branch)
     */
    public static long siteKey(long passKey, int layer, int site) {
        return mix64(passKey ^ mix64(((long) (layer + 1) << 8) + site + 1));
    }
}
