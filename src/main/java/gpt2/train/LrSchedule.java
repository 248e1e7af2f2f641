package gpt2.train;

/**
 * The learning-rate schedule, as a multiplier of the peak that every parameter group shares.
 * <ul>
 *   <li>{@link Kind#COSINE} (the original's and llm.c's): linear warmup to {@code maxLr} over
 *       {@code warmupIters} steps, {@code maxLr * (step+1) / warmupIters}; then cosine decay to
 *       {@code maxLr * decayFrac} at {@code numIterations}; constant at that floor afterwards.</li>
 *   <li>{@link Kind#WSD} (warmup-stable-decay, as nanochat and the GPT-2 speedrun): the same linear
 *       warmup, then constant at the peak, then over the last {@code round(warmdownFrac * numIterations)}
 *       steps a linear warmdown to {@code maxLr * decayFrac} at {@code numIterations}:
 *       multiplier {@code decayFrac + (1 - decayFrac) * (numIterations - step) / warmdown}.</li>
 * </ul>
 */
public record LrSchedule(Kind kind, float maxLr, int warmupIters, int numIterations, float decayFrac, float warmdownFrac) {

    /** The shape of the schedule ({@code --lr_schedule}). */
    public enum Kind {
        COSINE, WSD;

        /** {@code --lr_schedule}'s value: cosine or wsd. */
        public static Kind parse(String s) {
            return switch (s) {
                case "cosine" -> COSINE;
                case "wsd" -> WSD;
                default -> throw new IllegalArgumentException("--lr_schedule " + s + ": must be cosine or wsd");
            };
        }
    }

    /** The original's cosine schedule. */
    public LrSchedule(float maxLr, int warmupIters, int numIterations, float decayFrac) {
        this(Kind.COSINE, maxLr, warmupIters, numIterations, decayFrac, 0.2f);
    }

    public LrSchedule {
        if (kind == null) throw new IllegalArgumentException("--lr_schedule is required");
        if (!(maxLr >= 0)) throw new IllegalArgumentException("--learning_rate must be >= 0, got " + maxLr);
        if (warmupIters < 0) throw new IllegalArgumentException("--warmup_iters must be >= 0, got " + warmupIters);
        if (!(decayFrac >= 0 && decayFrac <= 1)) {
            throw new IllegalArgumentException("--learning_rate_decay_frac must be in [0, 1], got " + decayFrac);
        }
        if (!(warmdownFrac >= 0 && warmdownFrac <= 1)) {
            throw new IllegalArgumentException("--warmdown_frac must be in [0, 1], got " + warmdownFrac);
        }
    }

    /** The learning rate of a 0-based step (--learning_rate's group). */
    public float lr(int step) {
        if (kind == Kind.WSD) return (float) (maxLr * multiplier(step));
        // the cosine schedule exactly as it always was computed (bit for bit)
        double minLr = (double) maxLr * decayFrac;
        if (step < warmupIters) return (float) ((double) maxLr * (step + 1) / warmupIters);
        if (step >= numIterations) return (float) minLr;
        int decaySteps = numIterations - warmupIters;
        double ratio = decaySteps <= 0 ? 1.0 : (double) (step - warmupIters) / decaySteps;
        double coeff = 0.5 * (1.0 + Math.cos(Math.PI * ratio));
        return (float) (minLr + coeff * (maxLr - minLr));
    }

    /**
     * The schedule of a 0-based step as a fraction of the peak, in (0, 1]: every parameter group's
     * learning rate is its own peak times this (Muon, embeddings, head, the rest).
     */
    public double multiplier(int step) {
        if (step < warmupIters) return (double) (step + 1) / warmupIters;
        if (step >= numIterations) return decayFrac;
        if (kind == Kind.COSINE) {
            int decaySteps = numIterations - warmupIters;
            double ratio = decaySteps <= 0 ? 1.0 : (double) (step - warmupIters) / decaySteps;
            return decayFrac + 0.5 * (1.0 + Math.cos(Math.PI * ratio)) * (1.0 - decayFrac);
        }
        long warmdown = warmdownSteps();
        if (step <= numIterations - warmdown) return 1.0;
        double progress = (double) (numIterations - step) / warmdown;
        return decayFrac + progress * (1.0 - decayFrac);
    }

    /** WSD: the steps of the final linear warmdown. */
    public long warmdownSteps() {
        return Math.round((double) warmdownFrac * numIterations);
    }
}
