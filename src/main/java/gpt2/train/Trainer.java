package gpt2.train;

import gpt2.backend.Dropout;
import gpt2.data.BatchSource;
import gpt2.model.Gpt2;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The training loop: per step, gradient accumulation over micro-batches, global-norm clipping,
 * AdamW with the learning-rate schedule, and a log line.
 *
 * <pre>
 * for step: zero grads -> k x [next batch -> forward -> backward(1/k)] -> norm, clip scale
 *           -> AdamW(lr(step)) -> "step N/M | loss | norm | lr | ms | tok/s"
 * </pre>
 */
public final class Trainer {

    /**
     * @param numIterations steps to run
     * @param batchSize     B, sequences per micro-batch
     * @param seqLen        T, tokens per sequence
     * @param gradAccum     micro-batches per step
     * @param gradClip      max global gradient norm (<= 0: no clipping)
     * @param seed          seed of the dropout masks
     */
    public record Options(int numIterations, int batchSize, int seqLen, int gradAccum, float gradClip, long seed) {
        public Options {
            if (numIterations < 0) throw new IllegalArgumentException("--num_iterations must be >= 0, got " + numIterations);
            if (batchSize <= 0) throw new IllegalArgumentException("--batch_size must be positive, got " + batchSize);
            if (seqLen <= 0) throw new IllegalArgumentException("--sequence_length must be positive, got " + seqLen);
            if (gradAccum <= 0) throw new IllegalArgumentException("gradient accumulation steps must be positive");
        }
    }

    /** What one step did. */
    public record StepResult(int step, float loss, float norm, float lr, double millis) {
    }

    private final Gpt2 model;
    private final AdamW optimizer;
    private final LrSchedule schedule;
    private final BatchSource batches;
    private final Options options;
    private final PrintStream log;

    public Trainer(Gpt2 model, AdamW optimizer, LrSchedule schedule, BatchSource batches, Options options,
                   PrintStream log) {
        this.model = model;
        this.optimizer = optimizer;
        this.schedule = schedule;
        this.batches = batches;
        this.options = options;
        this.log = log;
    }

    /** Runs every step and returns what each did. */
    public List<StepResult> run() {
        List<StepResult> results = new ArrayList<>();
        for (int step = 0; step < options.numIterations(); step++) {
            StepResult r = step(step);
            results.add(r);
            long tokens = (long) options.batchSize() * options.seqLen() * options.gradAccum();
            log.printf("step %4d/%d | loss %.6f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s%n",
                    step + 1, options.numIterations(), r.loss(), r.norm(), r.lr(), r.millis(),
                    tokens / (r.millis() / 1000.0));
            if (!Float.isFinite(r.loss())) {
                throw new IllegalStateException("loss is " + r.loss() + " at step " + (step + 1)
                        + "; try a lower --learning_rate");
            }
        }
        return results;
    }

    /** One optimizer step (0-based). */
    public StepResult step(int step) {
        long start = System.nanoTime();
        int B = options.batchSize(), T = options.seqLen(), k = options.gradAccum();
        int[] inputs = new int[B * T], targets = new int[B * T];
        model.zeroGrad();
        double loss = 0;
        for (int micro = 0; micro < k; micro++) {
            batches.next(inputs, targets);
            long passKey = passKey(options.seed(), step, micro);
            loss += model.forward(inputs, targets, B, T, passKey);
            model.backward(1f / k);
        }
        loss /= k;
        float[] normScale = AdamW.normAndClipScale(model.backend(), model.grads(), options.gradClip());
        float lr = schedule.lr(step);
        optimizer.step(model.params(), model.grads(), lr, normScale[1]);
        double ms = (System.nanoTime() - start) / 1e6;
        return new StepResult(step, (float) loss, normScale[0], lr, ms);
    }

    /** The dropout key of one forward pass: reproducible from seed, step and micro-step, never negative. */
    static long passKey(long seed, int step, int micro) {
        return Dropout.mix64(seed * 0x100000001B3L + ((long) step << 20) + micro) & Long.MAX_VALUE;
    }
}
