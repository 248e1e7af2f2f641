package gpt2.train;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.backend.Dropout;
import gpt2.data.DataLoader;
import gpt2.data.Tokenizer;
import gpt2.eval.Sampler;
import gpt2.model.Gpt2;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The training loop of the original (llm.c's train_gpt2.py shape), for steps 0..N:
 *
 * <pre>
 * step s:  [val loss if s == 0, s % val_loss_every == 0 or s == N]
 *          [sample   if s == 0, s % sample_every == 0 or s == N]      (rank 0)
 *          s == N: stop
 *          zero grads -> k x [next batch -> forward -> backward(1/k)] -> clip -> AdamW (or Muon + AdamW) at lr(s)
 *          log "step s+1/N | loss | norm | lr | ms | tok/s"; main.log, metrics.jsonl
 *          [checkpoint after step s+1 if (s+1) % save_every_niter == 0]
 * end:     checkpoint at N (with an output dir), mean of the last 20 step times, peak memory, loss.png
 * </pre>
 * Everything a resumed run needs to continue bit for bit is in the checkpoint: weights, AdamW
 * moments (Muon's momentum) and step, the optimizer's kind, the loader position and the sampling RNG; dropout masks derive from
 * (seed, step, micro-step, rank).
 */
public final class Trainer {

    /** What one step did; {@code skipped} names why the update was skipped, or is null. */
    public record StepResult(int step, float loss, float norm, float lr, double millis, String skipped) {
    }

    private final Gpt2 model;
    private final AdamW optimizer;
    private final TrainConfig cfg;
    private final PrintStream out;
    private final ObjectNode args;
    private final Rng sampleRng;
    private DataLoader train, val;
    private int startStep;
    private Path resumeFrom;
    private int lastSaved = -1;
    private gpt2.parallel.Communicator comm = gpt2.parallel.Communicator.single();
    private final LrSchedule schedule;
    /** One host batch, reused by every micro-step (and by validation). */
    private final int[] inputs, targets;
    private boolean zero;
    private final OutlierDetector lossDetector = new OutlierDetector(), normDetector = new OutlierDetector();
    private int skippedInARow;
    private java.util.function.BooleanSupplier stopRequested = () -> false;
    private String stopReason = "a stop request";
    /** Test hook: steps whose loss is replaced by NaN (system property gpt2.test.nanLossAtSteps, e.g. "3,4"). */
    private final java.util.Set<Integer> nanAt = parseSteps(System.getProperty("gpt2.test.nanLossAtSteps", ""));
    /** Test hook: milliseconds to sleep after each step, so a test can kill a run mid-way. */
    private final long stepDelayMs = Long.getLong("gpt2.test.stepDelayMs", 0L);

    /**
     * @param args the command line's flags, saved into every checkpoint's state.json
     */
    public Trainer(Gpt2 model, AdamW optimizer, TrainConfig cfg, PrintStream out, ObjectNode args) {
        this.model = model;
        this.optimizer = optimizer;
        this.cfg = cfg;
        this.out = out;
        this.args = args == null ? JsonNodeFactory.instance.objectNode() : args;
        this.sampleRng = new Rng(cfg.seed() ^ 0x53414D504C45L);
        this.schedule = cfg.schedule();
        this.inputs = new int[cfg.batchSize() * cfg.seqLen()];
        this.targets = new int[cfg.batchSize() * cfg.seqLen()];
    }

    /**
     * Checked after every step: when it says stop, the trainer writes a checkpoint (with an output
     * dir) and returns normally (SIGTERM / SIGINT on preemptible machines).
     */
    public Trainer stopWhen(java.util.function.BooleanSupplier stop, String reason) {
        this.stopRequested = stop;
        this.stopReason = reason;
        return this;
    }

    private static java.util.Set<Integer> parseSteps(String s) {
        java.util.Set<Integer> out = new java.util.HashSet<>();
        for (String x : s.split(",")) if (!x.isBlank()) out.add(Integer.parseInt(x.trim()));
        return out;
    }

    /**
     * The other ranks of a data-parallel run: gradients are averaged over them after the last
     * micro-batch of each step, logged losses too; rank 0 alone logs, samples and saves.
     */
    public Trainer withCommunicator(gpt2.parallel.Communicator c) {
        if (c.worldSize() != cfg.world() || c.rank() != cfg.rank()) {
            throw new IllegalArgumentException("communicator is rank " + c.rank() + " of " + c.worldSize()
                    + " but the run is rank " + cfg.rank() + " of " + cfg.world());
        }
        this.comm = c;
        return this;
    }

    /**
     * ZeRO-1: gradients reduce-scattered, each rank's optimizer (built with this rank's shard of
     * {@code Communicator.shard}) updates its slice of the parameters, which are then all-gathered;
     * clipping uses the global norm over the shards; checkpoints hold the gathered optimizer state.
     */
    public Trainer zeroStage1() {
        long total = model.layout().totalSize();
        long[] sh = gpt2.parallel.Communicator.shard(total, comm.rank(), comm.worldSize());
        if (optimizer.shardStart() != sh[0] || optimizer.shardEnd() != sh[1]) {
            throw new IllegalArgumentException("ZeRO-1 needs the optimizer built for this rank's shard [" + sh[0] + ", "
                    + sh[1] + ") (set the communicator first)");
        }
        this.zero = true;
        return this;
    }

    private List<gpt2.eval.Core.Task> coreTasks;
    private int coreEvery, coreMaxPerTask;

    /**
     * CORE during training (nanochat's base_train does the same): every {@code every} steps after the
     * first, and at the end, rank 0 scores the tasks (at most {@code maxPerTask} examples each) and
     * logs one metrics.jsonl record per task ("eval_task", accuracy, centered) and one with "core".
     */
    public Trainer withCoreEval(List<gpt2.eval.Core.Task> tasks, int every, int maxPerTask) {
        if (every < 1) throw new IllegalArgumentException("--eval_every must be >= 1, got " + every);
        this.coreTasks = tasks;
        this.coreEvery = every;
        this.coreMaxPerTask = maxPerTask;
        return this;
    }

    /** Scores the CORE tasks now; rows per pass kept to the training batch's tokens at the longest rows. */
    private void coreEval(int step, RunLog log) {
        int rows = Math.max(1, cfg.batchSize() * cfg.seqLen() / model.config().maxSeqLen());
        List<gpt2.eval.Core.Result> results = new ArrayList<>();
        for (gpt2.eval.Core.Task t : coreTasks) {
            gpt2.eval.Core.Result r = gpt2.eval.Core.evaluate(model, t, coreMaxPerTask, rows, null);
            results.add(r);
            out.printf("step %4d/%d | %s%n", step, cfg.numIterations(), r.line());
            log.metrics(record(step).put("eval_task", r.label()).put("shots", r.shots()).put("examples", r.examples())
                    .put("accuracy", r.accuracy()).put("centered", r.centered()));
        }
        double core = gpt2.eval.Core.metric(results);
        out.printf("step %4d/%d | CORE %.4f (%d tasks)%n", step, cfg.numIterations(), core, results.size());
        log.metrics(record(step).put("core", core));
    }

    /** Continue from a checkpoint (weights, optimizer, loader, RNG, step) when the run starts. */
    public Trainer resumeFrom(Path checkpointDir) {
        this.resumeFrom = checkpointDir;
        return this;
    }

    /**
     * Opens the training and validation shards and reads their first batch (headers, sizes, token
     * ids), so a bad input stops the run before anything in the output folder is written.
     */
    public void validateInputs() {
        openLoaders();
        for (DataLoader d : val == null ? List.of(train) : List.of(train, val)) {
            d.next(inputs, targets);
            d.reset(); // the run starts at the first batch (or where a checkpoint says)
        }
    }

    /** The training and validation loaders, opened once (by {@link #validateInputs} or the run). */
    private void openLoaders() {
        if (train != null) return;
        int V = model.config().vocabSize();
        train = new DataLoader(cfg.trainPattern(), cfg.batchSize(), cfg.seqLen(), cfg.rank(), cfg.world(), V);
        val = cfg.valPattern() == null ? null
                : new DataLoader(cfg.valPattern(), cfg.batchSize(), cfg.seqLen(), cfg.rank(), cfg.world(), V);
    }

    /** Runs the loop; returns the results of the steps it took. */
    public List<StepResult> run() {
        openLoaders();
        RunStatus status = null;
        try {
            if (resumeFrom != null) restore(resumeFrom);
            if (cfg.outputDir() != null && cfg.isMaster()) {
                status = RunStatus.start(cfg.outputDir(), model.config().name(), cfg.numIterations(), startStep, args);
            }
            if (comm.worldSize() > 1) comm.broadcast(model.backend(), model.params()); // every rank starts identical
            List<StepResult> results = loop();
            int done = results.isEmpty() ? startStep : results.getLast().step() + 1;
            if (status != null) status.end(done >= cfg.numIterations() ? RunStatus.FINISHED : RunStatus.STOPPED, done, null);
            return results;
        } catch (RuntimeException | Error e) {
            if (status != null) status.end(RunStatus.FAILED, -1, e.getMessage() != null ? e.getMessage() : e.toString());
            throw e;
        } finally {
            train.close();
            if (val != null) val.close();
        }
    }

    private void restore(Path dir) {
        ObjectNode state = Checkpoint.readState(dir);
        if (!state.has("train_loader")) {
            throw new IllegalArgumentException(dir + " holds weights only (a converted model); start from it with --model");
        }
        String trained = state.path("optimizer").asText("adamw"); // checkpoints before Muon are AdamW's
        if (!trained.equals(optimizer.kind())) {
            throw new IllegalArgumentException(dir + " was trained with --optimizer " + trained + "; it cannot continue with --optimizer "
                    + optimizer.kind() + " (the optimizer state differs)");
        }
        Checkpoint.loadModel(dir, model);
        if (state.has("adamw_t")) {
            Checkpoint.loadOptimizer(dir, optimizer, model.layout(), model.backend(), state.get("adamw_t").asInt());
        }
        startStep = state.path("step").asInt();
        if (startStep > cfg.numIterations()) {
            throw new IllegalArgumentException(dir + " is at step " + startStep + ", past --num_iterations "
                    + cfg.numIterations());
        }
        ObjectNode loader = (ObjectNode) state.get("train_loader");
        train.restore(new DataLoader.State(loader.get("shard").asInt(), loader.get("position").asLong()));
        sampleRng.setState(state.path("sample_rng").asLong());
        lossDetector.restore((ObjectNode) state.get("loss_outliers"));
        normDetector.restore((ObjectNode) state.get("norm_outliers"));
        skippedInARow = state.path("skipped_in_a_row").asInt(0);
        lastSaved = startStep;
        if (cfg.isMaster()) out.printf("resumed from %s at step %d%n", dir, startStep);
    }

    private List<StepResult> loop() {
        List<StepResult> results = new ArrayList<>();
        int N = cfg.numIterations();
        try (RunLog log = cfg.outputDir() != null && cfg.isMaster() ? RunLog.open(cfg.outputDir(), startStep) : RunLog.none()) {
            for (int step = startStep; step <= N; step++) {
                boolean last = step == N;
                Float valLoss = null;
                if (val != null && cfg.valLossEvery() > 0 && (step % cfg.valLossEvery() == 0 || last)) {
                    Validation v = validate();
                    valLoss = v.loss();
                    log.val(step, valLoss);
                    ObjectNode rec = record(step).put("val_loss", valLoss);
                    if (!Double.isNaN(v.bpb())) rec.put("val_bpb", v.bpb());
                    log.metrics(rec);
                    if (cfg.isMaster()) {
                        out.printf("step %4d/%d | val loss %.6f%s%n", step, N, valLoss,
                                Double.isNaN(v.bpb()) ? "" : String.format(" | val bpb %.4f", v.bpb()));
                    }
                }
                if (cfg.sampleEvery() > 0 && (step % cfg.sampleEvery() == 0 || last) && cfg.isMaster()) {
                    String text = sample();
                    out.printf("generating:%n---%n%s%n---%n", text);
                    log.sample(step, text);
                }
                if (coreTasks != null && cfg.isMaster() && (last || (step > 0 && step % coreEvery == 0))) coreEval(step, log);
                if (last) break;
                StepResult r = step(step);
                results.add(r);
                report(r, results, log);
                if (stepDelayMs > 0) sleep(stepDelayMs);
                if (r.skipped() != null) {
                    skippedInARow++;
                    if (cfg.isMaster()) out.printf("step %d skipped (%s); %d in a row%n", step + 1, r.skipped(), skippedInARow);
                    if (skippedInARow >= cfg.maxSkippedSteps()) {
                        if (cfg.outputDir() != null) save(step + 1, results);
                        throw new IllegalStateException(skippedInARow + " steps in a row were skipped (--max_skipped_steps "
                                + cfg.maxSkippedSteps() + "): stopping" + (cfg.outputDir() != null
                                ? "; the last good weights are in " + Checkpoint.dirFor(cfg.outputDir(), step + 1) : "")
                                + "; try a lower --learning_rate");
                    }
                } else {
                    skippedInARow = 0;
                }
                if (cfg.saveEveryNiter() > 0 && (step + 1) % cfg.saveEveryNiter() == 0) save(step + 1, results);
                boolean stop = stopRequested.getAsBoolean();
                if (comm.worldSize() > 1) stop = comm.allReduceSum(stop ? 1 : 0) > 0; // all ranks stop together
                if (stop && step + 1 < N) {
                    if (cfg.outputDir() != null && lastSaved != step + 1) save(step + 1, results);
                    if (cfg.isMaster()) {
                        out.printf("stopped by %s after step %d%s%n", stopReason, step + 1, cfg.outputDir() == null
                                ? " (no --output_dir: nothing saved)"
                                : "; continue with the same command and --resume (or --load_chkpoint_file "
                                + Checkpoint.dirFor(cfg.outputDir(), step + 1) + ")");
                    }
                    summary(results);
                    return results;
                }
            }
            if (cfg.outputDir() != null && lastSaved != N) save(N, results);
        }
        if (comm.worldSize() > 1) checkRanksAgree();
        summary(results);
        return results;
    }

    /**
     * Data parallelism keeps every rank's weights identical bit for bit; checked once at the end:
     * a CRC32C of the parameters' bits on each rank, compared through an all-reduce, printed by
     * every rank. A difference (a collective that went wrong) stops the run with an error.
     */
    private void checkRanksAgree() {
        long n = model.layout().totalSize(), chunk = 1 << 22;
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment host = arena.allocate(4 * Math.min(n, chunk), 64);
            for (long at = 0; at < n; at += chunk) {
                long len = Math.min(chunk, n - at);
                java.lang.foreign.MemorySegment part = host.asSlice(0, 4 * len);
                model.backend().copyToHost(model.params().slice(at, len), part);
                crc.update(part.asByteBuffer());
            }
        }
        long mine = crc.getValue();
        double sum = comm.allReduceSum(mine);
        if (sum != (double) mine * comm.worldSize()) {
            throw new IllegalStateException("rank " + comm.rank() + ": the final parameters (crc32c " + String.format("%08x", mine)
                    + ") differ from another rank's: data parallelism went wrong");
        }
        out.printf("rank %d: the final parameters agree on every rank (crc32c %08x)%n", comm.rank(), mine);
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * One optimizer step (0-based); with --inference_only, forward passes only. The host waits for
     * the device once: the read of the step's loss and gradient norm, before deciding on the update.
     */
    public StepResult step(int step) {
        long start = System.nanoTime();
        int B = cfg.batchSize(), T = cfg.seqLen(), k = cfg.gradAccumSteps();
        if (cfg.overfitSingleBatch()) train.reset();
        if (cfg.inferenceOnly()) return inferenceStep(step, start);
        model.zeroGrad();
        boolean buckets = comm.worldSize() > 1 && !zero;
        for (int micro = 0; micro < k; micro++) {
            train.next(inputs, targets);
            // gradients are reduced only during the last micro-batch's backward, bucket by bucket; the
            // hook is set before the forward, which leaves such a micro-batch out of CUDA graphs (its
            // all-reduces go to another stream and must not land inside a capture)
            model.setBackwardHook(buckets && micro == k - 1 ? this::reduceBucket : null);
            model.trainForward(inputs, targets, B, T, passKey(step, micro), 1f / k);
            model.backward(1f / k);
        }
        model.setBackwardHook(null);
        if (comm.worldSize() > 1) {
            if (zero) comm.reduceScatterAverage(model.backend(), model.grads());
            else comm.finishPending();
        }
        // the norm over this rank's shard with ZeRO-1 (summed over ranks below), else over all gradients
        long lo = zero ? optimizer.shardStart() : 0, hi = zero ? optimizer.shardEnd() : model.layout().totalSize();
        float[] numbers = model.stepStatistics(lo, hi);
        double loss = numbers[0], sumSq = numbers[1];
        if (comm.worldSize() > 1) {
            loss = comm.allReduceSum(loss) / comm.worldSize();
            if (zero) sumSq = comm.allReduceSum(sumSq);
        }
        if (nanAt.contains(step + 1)) loss = Double.NaN;
        float lr = lr(step);
        float norm = (float) Math.sqrt(sumSq);
        String skipped = null;
        double zLoss = lossDetector.update(loss), zNorm = normDetector.update(norm);
        if (!Double.isFinite(loss)) skipped = "loss is " + loss;
        else if (!Float.isFinite(norm)) skipped = "gradient norm is " + norm;
        else if (cfg.skipLossZ() > 0 && zLoss > cfg.skipLossZ()) skipped = String.format("loss z-score %.1f > %s", zLoss, cfg.skipLossZ());
        else if (cfg.skipGradZ() > 0 && zNorm > cfg.skipGradZ()) skipped = String.format("gradient-norm z-score %.1f > %s", zNorm, cfg.skipGradZ());
        if (skipped == null) {
            optimizer.step(model, schedule, step, AdamW.clipScale(norm, cfg.gradClip()), zero ? comm : null);
            if (zero) comm.allGather(model.backend(), model.params());
        }
        double ms = (System.nanoTime() - start) / 1e6;
        return new StepResult(step, (float) loss, norm, lr, ms, skipped);
    }

    /** --inference_only: the step's forward passes, no gradients. */
    private StepResult inferenceStep(int step, long start) {
        int B = cfg.batchSize(), T = cfg.seqLen(), k = cfg.gradAccumSteps();
        double loss = 0;
        for (int micro = 0; micro < k; micro++) {
            train.next(inputs, targets);
            loss += model.forward(inputs, targets, B, T, -1);
        }
        loss /= k;
        if (comm.worldSize() > 1) loss = comm.allReduceSum(loss) / comm.worldSize();
        if (nanAt.contains(step + 1)) loss = Double.NaN;
        double ms = (System.nanoTime() - start) / 1e6;
        return new StepResult(step, (float) loss, Float.NaN, lr(step), ms, null);
    }

    /** The learning rate the log shows for a step: --learning_rate's, or Muon's with --optimizer muon. */
    private float lr(int step) {
        return optimizer == null ? schedule.lr(step) : optimizer.displayLr(schedule, step);
    }

    /** Starts the all-reduce of one bucket: a layer's gradients (contiguous), or with -1 everything else. */
    private void reduceBucket(int layer) {
        if (layer == 0 && comm.rank() == 1 && gpt2.backend.Faults.on("skip-bucket")) return;
        var p = model.layout();
        gpt2.backend.Buffer g = model.grads();
        if (layer >= 0) {
            var l = p.layer(layer);
            comm.allReduceAverageAsync(model.backend(), g.slice(l.start(), l.end() - l.start()));
            return;
        }
        long first = p.layer(0).start(), end = p.layer(p.layers().size() - 1).end();
        if (first > 0) comm.allReduceAverageAsync(model.backend(), g.slice(0, first)); // wte, wpe
        if (end < p.totalSize()) comm.allReduceAverageAsync(model.backend(), g.slice(end, p.totalSize() - end)); // ln_f, head
    }

    /** The dropout key of one forward pass: from seed, step, micro-step and rank; never negative. */
    long passKey(int step, int micro) {
        long k = Dropout.mix64(cfg.seed() * 0x100000001B3L + step);
        k = Dropout.mix64(k ^ ((long) micro << 32 | cfg.rank()));
        return k & Long.MAX_VALUE;
    }

    /**
     * A validation over --val_max_steps batches from the start of the validation shards: the mean loss
     * per token and the bits per byte (NaN when its tokens decode to no bytes).
     */
    record Validation(float loss, double bpb) {
    }

    Validation validate() {
        int B = cfg.batchSize(), T = cfg.seqLen();
        val.reset();
        gpt2.eval.Bpb.Sums sums = gpt2.eval.Bpb.over(model, val, inputs, targets, B, T, cfg.valMaxSteps());
        double sum = sums.meanLosses(), bytes = sums.bytes();
        if (comm.worldSize() > 1) {
            sum = comm.allReduceSum(sum) / comm.worldSize();
            bytes = comm.allReduceSum(bytes) / comm.worldSize();
        }
        return new Validation((float) (sum / cfg.valMaxSteps()), gpt2.eval.Bpb.of(sum * B * T, Math.round(bytes)));
    }

    /** 32 tokens after an end-of-text token, top-k 40, temperature 1 (as the original). */
    String sample() {
        int maxNew = Math.min(32, model.config().maxSeqLen() - 1);
        // a model with a vocabulary smaller than GPT-2's (tests, toy data) has no end-of-text token: start from 0
        int start = Tokenizer.EOT < model.config().vocabSize() ? Tokenizer.EOT : 0;
        int[] seq = Sampler.generate(model, new int[]{start}, maxNew, 40, 1f, sampleRng);
        int[] gen = java.util.Arrays.copyOfRange(seq, 1, seq.length);
        for (int t : gen) if (t >= Tokenizer.VOCAB_SIZE) return "(token ids) " + java.util.Arrays.toString(gen);
        return Tokenizer.gpt2().decode(gen);
    }

    private ObjectNode record(int step) {
        return JsonNodeFactory.instance.objectNode().put("step", step);
    }

    /**
     * The step's line on the console and its records. One numbering everywhere: a step is named by
     * the number of updates done after it (the console's "step s/N", main.log's "s:s trl",
     * metrics.jsonl's "step": s), and a validation by the updates done before it.
     */
    private void report(StepResult r, List<StepResult> results, RunLog log) {
        long tokens = cfg.totalBatchSize();
        double tokS = tokens / (r.millis() / 1000.0);
        double mfuPercent = Double.isNaN(model.backend().bf16PeakFlops()) ? Double.NaN
                : 100 * model.config().trainingFlopsPerToken(cfg.seqLen()) * tokS / model.backend().bf16PeakFlops();
        if (cfg.isMaster()) {
            String mfu = Double.isNaN(mfuPercent) ? "" : String.format(" | MFU %.1f%%", mfuPercent);
            out.printf("step %4d/%d | loss %.6f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s%s%s%n",
                    r.step() + 1, cfg.numIterations(), r.loss(), r.norm(), r.lr(), r.millis(), tokS, mfu, eta(results));
        }
        log.train(r.step() + 1, r.loss());
        ObjectNode rec = record(r.step() + 1).put("loss", r.loss()).put("lr", r.lr()).put("ms", r.millis())
                .put("tok_s", tokS).put("tokens", (r.step() + 1L) * tokens);
        if (Float.isFinite(r.norm())) rec.put("norm", r.norm());
        if (!Double.isNaN(mfuPercent)) rec.put("mfu", mfuPercent);
        log.metrics(rec);
    }

    /**
     * " | ETA 1h 02m" from the median time of this run's last 20 steps (its first step, with warm-up
     * and compilation, left out), as llm.c and nanoGPT users expect; "" before there is one or after the last.
     */
    private String eta(List<StepResult> results) {
        int left = cfg.numIterations() - (results.getLast().step() + 1);
        int from = Math.max(1, results.size() - 20);
        if (from >= results.size() || left <= 0) return "";
        double[] ms = results.subList(from, results.size()).stream().mapToDouble(StepResult::millis).sorted().toArray();
        return " | ETA " + duration(Math.round(ms[ms.length / 2] * left / 1000));
    }

    static String duration(long seconds) {
        if (seconds >= 3600) return String.format("%dh %02dm", seconds / 3600, seconds % 3600 / 60);
        if (seconds >= 60) return String.format("%dm %02ds", seconds / 60, seconds % 60);
        return seconds + "s";
    }

    private void save(int step, List<StepResult> results) {
        if (cfg.outputDir() == null) return;
        gpt2.backend.Buffer fullM = null, fullV = null;
        if (zero && !cfg.inferenceOnly()) { // every rank takes part in gathering the optimizer state
            long total = model.layout().totalSize(), lo = optimizer.shardStart(), hi = optimizer.shardEnd();
            fullM = model.backend().allocate(gpt2.backend.DType.F32, total, "gathered AdamW m");
            fullV = model.backend().allocate(gpt2.backend.DType.F32, total, "gathered AdamW v");
            model.backend().copy(fullM.slice(lo, hi - lo), optimizer.m());
            model.backend().copy(fullV.slice(lo, hi - lo), optimizer.v());
            comm.allGather(model.backend(), fullM);
            comm.allGather(model.backend(), fullV);
        }
        try {
            saveGathered(step, results, fullM, fullV);
        } finally {
            if (fullM != null) {
                model.backend().free(fullM);
                model.backend().free(fullV);
            }
        }
    }

    private void saveGathered(int step, List<StepResult> results, gpt2.backend.Buffer fullM, gpt2.backend.Buffer fullV) {
        if (cfg.isMaster()) {
            ObjectNode state = JsonNodeFactory.instance.objectNode();
            DataLoader.State ls = train.state();
            state.putObject("train_loader").put("shard", ls.shard()).put("position", ls.position());
            state.put("sample_rng", sampleRng.state());
            state.set("loss_outliers", lossDetector.toJson());
            state.set("norm_outliers", normDetector.toJson());
            state.put("skipped_in_a_row", skippedInARow);
            state.put("seed", cfg.seed());
            state.put("optimizer", optimizer.kind());
            state.set("args", args.deepCopy());
            var losses = state.putArray("last_losses");
            for (int i = Math.max(0, results.size() - 20); i < results.size(); i++) losses.add(results.get(i).loss());
            Path dir;
            try {
                dir = fullM != null
                        ? Checkpoint.save(cfg.outputDir(), step, model, fullM, fullV, optimizer.stepCount(), state)
                        : Checkpoint.save(cfg.outputDir(), step, model, cfg.inferenceOnly() ? null : optimizer, state);
            } catch (java.io.UncheckedIOException e) {
                String previous = lastSaved >= 0 ? "; the previous checkpoint " + Checkpoint.dirFor(cfg.outputDir(), lastSaved)
                        + " is intact" : "";
                throw new IllegalStateException("could not write the checkpoint of step " + step + " ("
                        + e.getCause().getMessage() + ")" + previous, e);
            }
            out.printf("saved checkpoint %s%n", dir);
            Checkpoint.prune(cfg.outputDir(), cfg.keepLast(), cfg.keepEvery());
        }
        lastSaved = step;
    }

    private void summary(List<StepResult> results) {
        if (!cfg.isMaster()) return;
        if (!results.isEmpty()) {
            int from = Math.max(0, results.size() - 20);
            double mean = results.subList(from, results.size()).stream().mapToDouble(StepResult::millis).average().orElse(0);
            out.printf("mean step time (last %d steps): %.1f ms | peak memory: %s%n", results.size() - from, mean,
                    peakMemory());
        }
        gpt2.backend.Profile profile = model.backend().profile();
        if (profile != null && (profile.graphLaunches() > 0 || profile.graphMisses() > 0)) {
            out.printf("CUDA graphs: %d graph launches ran %d kernel launches and GEMM calls; %d segments missed their graph%n",
                    profile.graphLaunches(), profile.graphCalls(), profile.graphMisses());
        }
        if (cfg.outputDir() != null && Files.isRegularFile(cfg.outputDir().resolve(RunLog.METRICS))) {
            try {
                out.printf("loss plot: %s%n", LossPlot.draw(cfg.outputDir()));
            } catch (RuntimeException | LinkageError e) { // a runtime without java.desktop cannot draw
                out.printf("loss plot not drawn: %s%n", e);
            }
        }
    }

    /** Peak resident memory in MiB (Linux's VmHWM), or -1 when unknown. */
    public static long peakMemoryMiB() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.UTF_8)) {
                if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("[^0-9]", "")) / 1024;
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return -1;
    }

    /** Peak resident memory of this process (Linux's VmHWM), or "unknown". */
    public static String peakMemory() {
        long mib = peakMemoryMiB();
        return mib < 0 ? "unknown" : mib + " MiB resident";
    }
}
