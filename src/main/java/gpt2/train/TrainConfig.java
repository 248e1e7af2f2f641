package gpt2.train;

import java.nio.file.Path;

/**
 * Everything a training run needs besides the model, resolved and validated in one place.
 *
 * @param trainPattern      training shards (glob in the file name)
 * @param valPattern        validation shards, or null for no validation
 * @param outputDir         where logs, samples and checkpoints go, or null for none
 * @param totalBatchSize    tokens per optimizer step across all ranks
 * @param inferenceOnly     forward passes only: no backward, no update
 * @param valLossEvery      validation every N steps (and at step 0 and the end); 0 = never
 * @param sampleEvery       a sample every N steps (and at step 0 and the end); 0 = never
 * @param saveEveryNiter    a checkpoint every N steps; the end always gets one when outputDir is set
 * @param rank              this process's rank
 * @param world             number of ranks
 * @param skipLossZ         skip the update when the loss's z-score exceeds this (0: off), as llm.c's -sl
 * @param skipGradZ         the same for the gradient norm (0: off), as llm.c's -sg
 * @param maxSkippedSteps   this many skipped steps in a row stop the run
 * @param keepLast          keep the newest K checkpoints (0: all) ...
 * @param keepEvery         ... plus every checkpoint whose step is a multiple of M (0: none)
 * @param lrSchedule        the schedule's shape: cosine (the original's) or wsd (warmup, constant, warmdown)
 * @param warmdownFrac      wsd: the fraction of numIterations at the end spent in the linear warmdown
 */
public record TrainConfig(String trainPattern, String valPattern, Path outputDir,
                          int batchSize, int seqLen, long totalBatchSize, int numIterations, boolean inferenceOnly,
                          float learningRate, int warmupIters, float decayFrac, float weightDecay, float gradClip,
                          float beta1, float beta2, float adamEps,
                          int valLossEvery, int valMaxSteps, int sampleEvery, boolean overfitSingleBatch,
                          int saveEveryNiter, long seed, int rank, int world,
                          float skipLossZ, float skipGradZ, int maxSkippedSteps, int keepLast, int keepEvery,
                          LrSchedule.Kind lrSchedule, float warmdownFrac) {

    /** With llm.c's defaults for the reliability knobs (no outlier skipping, 10 bad steps, keep all). */
    public TrainConfig(String trainPattern, String valPattern, Path outputDir,
                       int batchSize, int seqLen, long totalBatchSize, int numIterations, boolean inferenceOnly,
                       float learningRate, int warmupIters, float decayFrac, float weightDecay, float gradClip,
                       float beta1, float beta2, float adamEps,
                       int valLossEvery, int valMaxSteps, int sampleEvery, boolean overfitSingleBatch,
                       int saveEveryNiter, long seed, int rank, int world) {
        this(trainPattern, valPattern, outputDir, batchSize, seqLen, totalBatchSize, numIterations, inferenceOnly,
                learningRate, warmupIters, decayFrac, weightDecay, gradClip, beta1, beta2, adamEps, valLossEvery,
                valMaxSteps, sampleEvery, overfitSingleBatch, saveEveryNiter, seed, rank, world, 0f, 0f, 10, 0, 0,
                LrSchedule.Kind.COSINE, 0.2f);
    }

    public TrainConfig {
        if (trainPattern == null) throw new IllegalArgumentException("--input_train_bin is required");
        if (batchSize <= 0) throw new IllegalArgumentException("--batch_size must be positive, got " + batchSize);
        if (seqLen <= 0) throw new IllegalArgumentException("--sequence_length must be positive, got " + seqLen);
        if (numIterations < 0) throw new IllegalArgumentException("--num_iterations must be >= 0, got " + numIterations);
        if (valLossEvery < 0) throw new IllegalArgumentException("--val_loss_every must be >= 0, got " + valLossEvery);
        if (valMaxSteps <= 0) throw new IllegalArgumentException("--val_max_steps must be positive, got " + valMaxSteps);
        if (sampleEvery < 0) throw new IllegalArgumentException("--sample_every must be >= 0, got " + sampleEvery);
        if (saveEveryNiter < 0) throw new IllegalArgumentException("--save_every_niter must be >= 0, got " + saveEveryNiter);
        if (world <= 0 || rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " outside world " + world);
        long perStep = (long) batchSize * seqLen * world;
        if (totalBatchSize <= 0 || totalBatchSize % perStep != 0) {
            throw new IllegalArgumentException("--total_batch_size " + totalBatchSize + " is not a positive multiple of "
                    + "--batch_size " + batchSize + " x --sequence_length " + seqLen + " x " + world + " rank"
                    + (world == 1 ? "" : "s") + " = " + perStep);
        }
        new LrSchedule(lrSchedule, learningRate, warmupIters, numIterations, decayFrac, warmdownFrac); // validates its flags
        if (skipLossZ < 0 || skipGradZ < 0) throw new IllegalArgumentException("--skip_update_lossz/--skip_update_gradz must be >= 0");
        if (maxSkippedSteps < 1) throw new IllegalArgumentException("--max_skipped_steps must be >= 1, got " + maxSkippedSteps);
        if (keepLast < 0 || keepEvery < 0) throw new IllegalArgumentException("--keep_last and --keep_every must be >= 0");
    }

    /** Micro-batches per optimizer step on each rank. */
    public int gradAccumSteps() {
        return (int) (totalBatchSize / ((long) batchSize * seqLen * world));
    }

    public LrSchedule schedule() {
        return new LrSchedule(lrSchedule, learningRate, warmupIters, numIterations, decayFrac, warmdownFrac);
    }

    public boolean isMaster() {
        return rank == 0;
    }
}
