package gpt2.train;

/**
 * The learning-rate schedule of the original (and llm.c): linear warmup to {@code maxLr} over
 * {@code warmupIters} steps, {@code maxLr * (step+1) / warmupIters}; then cosine decay to
 * {@code maxLr * decayFrac} at {@code numIterations}; constant at that floor afterwards.
 */
public record LrSchedule(float maxLr, int warmupIters, int numIterations, float decayFrac) {

    public LrSchedule {
        if (!(maxLr >= 0)) throw new IllegalArgumentException("--learning_rate must be >= 0, got " + maxLr);
        if (warmupIters < 0) throw new IllegalArgumentException("--warmup_iters must be >= 0, got " + warmupIters);
        if (!(decayFrac >= 0 && decayFrac <= 1)) {
            throw new IllegalArgumentException("--learning_rate_decay_frac must be in [0, 1], got " + decayFrac);
        }
    }

    /** The learning rate of a 0-based step. */
    public float lr(int step) {
        double minLr = (double) maxLr * decayFrac;
        if (step < warmupIters) return (float) ((double) maxLr * (step + 1) / warmupIters);
        if (step >= numIterations) return (float) minLr;
        int decaySteps = numIterations - warmupIters;
        double ratio = decaySteps <= 0 ? 1.0 : (double) (step - warmupIters) / decaySteps;
        double coeff = 0.5 * (1.0 + Math.cos(Math.PI * ratio));
        return (float) (minLr + coeff * (maxLr - minLr));
    }
}
