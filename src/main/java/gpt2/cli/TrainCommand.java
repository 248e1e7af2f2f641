package gpt2.cli;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.parallel.Communicator;
import gpt2.parallel.Communicators;
import gpt2.parallel.Ranks;
import java.time.Duration;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import gpt2.train.Checkpoint;
import gpt2.train.ModelFiles;
import gpt2.train.TrainConfig;
import gpt2.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train a GPT-2. Every flag of the original (llm.c's train_gpt2.py) with its default, "
                + "unless the description says otherwise.",
                "Example: gpt2 train --input_train_bin 'data/fineweb-edu/*_train_*.bin' --input_val_bin "
                        + "'data/fineweb-edu/*_val_*.bin' --output_dir runs/d12 --overfit_single_batch 0"})
final class TrainCommand implements Callable<Integer> {

    @Option(names = {"--input_train_bin", "--input-train-bin"}, defaultValue = "data/tinyshakespeare/tiny_shakespeare_train.bin",
            paramLabel = "PATTERN", description = "Training token shards: a file or a glob in the file name (default: ${DEFAULT-VALUE}).")
    String inputTrainBin;

    @Option(names = {"--input_val_bin", "--input-val-bin"}, defaultValue = "", paramLabel = "PATTERN",
            description = "Validation token shards (default: none).")
    String inputValBin;

    @Option(names = {"--output_dir", "--output-dir"}, defaultValue = "", paramLabel = "DIR",
            description = "Where main.log, metrics.jsonl, samples.txt, checkpoints and loss.png go (default: none).")
    String outputDir;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"--load_chkpoint_file", "--load-chkpoint-file"}, defaultValue = "", paramLabel = "DIR",
            description = "Continue a run from this checkpoint directory (weights, optimizer, data position, RNG, step).")
    String loadCheckpoint;

    @Option(names = "--resume", arity = "0..1", fallbackValue = "1", defaultValue = "0", paramLabel = "0|1",
            description = "Continue from the latest valid checkpoint in --output_dir with the flags it recorded (from scratch "
                    + "when there is none; refused when checkpoints exist but none is valid). --resume alone means 1.")
    int resumeFlag;
    private boolean resume;

    @Option(names = "--overwrite", defaultValue = "0", paramLabel = "0|1",
            description = "1: an --output_dir that holds another run is moved aside to DIR.old-N first (nothing is deleted); "
                    + "0: such a folder is refused (default: ${DEFAULT-VALUE}).")
    int overwrite;

    @Option(names = {"--batch_size", "--batch-size"}, defaultValue = "4", paramLabel = "B", description = "Sequences per micro-batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = {"--sequence_length", "--sequence-length"}, defaultValue = "64", paramLabel = "T", description = "Tokens per sequence (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Option(names = {"--total_batch_size", "--total-batch-size"}, defaultValue = "256", paramLabel = "TOKENS",
            description = "Tokens per optimizer step over all ranks; a multiple of B*T*ranks, the ratio is gradient accumulation (default: ${DEFAULT-VALUE}).")
    long totalBatchSize;

    @Option(names = {"--num_iterations", "--num-iterations"}, defaultValue = "10", paramLabel = "N", description = "Optimizer steps (default: ${DEFAULT-VALUE}).")
    int numIterations;

    @Option(names = {"--inference_only", "--inference-only"}, defaultValue = "0", paramLabel = "0|1", description = "Forward passes only, no updates (default: ${DEFAULT-VALUE}).")
    int inferenceOnly;

    @Option(names = {"--learning_rate", "--learning-rate"}, defaultValue = "1e-4", paramLabel = "LR", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    float learningRate;

    @Option(names = {"--warmup_iters", "--warmup-iters"}, defaultValue = "0", paramLabel = "N", description = "Linear warmup steps (default: ${DEFAULT-VALUE}).")
    int warmupIters;

    @Option(names = {"--learning_rate_decay_frac", "--learning-rate-decay-frac"}, paramLabel = "F",
            description = "The schedule ends at this fraction of the peak at the last step (default: 1.0 with cosine, "
                    + "as the original; 0 with wsd, as nanochat).")
    Float decayFrac;

    @Option(names = {"--lr_schedule", "--lr-schedule"}, defaultValue = "cosine", paramLabel = "cosine|wsd",
            description = "cosine: warmup, then cosine decay to --learning_rate_decay_frac of the peak at the last step (the original's); "
                    + "wsd: warmup, constant, then a linear warmdown over the last --warmdown_frac of the steps to that fraction. "
                    + "Every learning rate (Muon's, embeddings', head's) follows the same multiplier (default: ${DEFAULT-VALUE}).")
    String lrSchedule;

    @Option(names = {"--warmdown_frac", "--warmdown-frac"}, defaultValue = "0.2", paramLabel = "F",
            description = "--lr_schedule wsd: the fraction of --num_iterations at the end spent in the warmdown (default: ${DEFAULT-VALUE}).")
    float warmdownFrac;

    @Option(names = "--optimizer", defaultValue = "adamw", paramLabel = "adamw|muon",
            description = "adamw: AdamW for every parameter (the original's). muon: Muon (Nesterov momentum, Newton-Schulz "
                    + "orthogonalisation) for every layer's attention and MLP matrices, AdamW for the rest with --embedding_lr "
                    + "(wte), --head_lr (untied lm_head) and --learning_rate (norms, biases, wpe); the step lines show Muon's lr "
                    + "(default: ${DEFAULT-VALUE}).")
    String optimizer;

    @Option(names = {"--muon_lr", "--muon-lr"}, defaultValue = "0.02", paramLabel = "LR",
            description = "--optimizer muon: peak learning rate of the Muon matrices (default: ${DEFAULT-VALUE}).")
    float muonLr;

    @Option(names = {"--muon_momentum", "--muon-momentum"}, defaultValue = "0.95", paramLabel = "MU",
            description = "--optimizer muon: Nesterov momentum of Muon, in [0, 1) (default: ${DEFAULT-VALUE}).")
    float muonMomentum;

    @Option(names = {"--muon_ns_steps", "--muon-ns-steps"}, defaultValue = "5", paramLabel = "N",
            description = "--optimizer muon: Newton-Schulz iterations per update (default: ${DEFAULT-VALUE}).")
    int muonNsSteps;

    @Option(names = {"--embedding_lr", "--embedding-lr"}, defaultValue = "0.2", paramLabel = "LR",
            description = "--optimizer muon: AdamW's peak learning rate for wte (also when tied to the head) (default: ${DEFAULT-VALUE}, "
                    + "nanochat's, which nanochat further scales by (n_embd/768)^-0.5; not done here).")
    float embeddingLr;

    @Option(names = {"--head_lr", "--head-lr"}, defaultValue = "0.004", paramLabel = "LR",
            description = "--optimizer muon: AdamW's peak learning rate for an untied lm_head (default: ${DEFAULT-VALUE}, nanochat's "
                    + "unembedding lr, unscaled as --embedding_lr).")
    float headLr;

    @Option(names = {"--weight_decay", "--weight-decay"}, defaultValue = "0.0", paramLabel = "WD", description = "AdamW weight decay on matrices and embeddings; with --optimizer muon on the 2-D AdamW tensors only, "
                    + "never on Muon's (default: ${DEFAULT-VALUE}).")
    float weightDecay;

    @Option(names = {"--grad_clip", "--grad-clip"}, defaultValue = "1.0", paramLabel = "NORM", description = "Clip the global gradient norm; 0 = off (default: ${DEFAULT-VALUE}).")
    float gradClip;

    @Option(names = {"--val_loss_every", "--val-loss-every"}, defaultValue = "100", paramLabel = "N",
            description = "Validation loss (with --input_val_bin) at step 0, every N steps and at the end; 0 = never (default: ${DEFAULT-VALUE}, as the original).")
    int valLossEvery;

    @Option(names = {"--val_max_steps", "--val-max-steps"}, defaultValue = "20", paramLabel = "N", description = "Validation batches per evaluation (default: ${DEFAULT-VALUE}).")
    int valMaxSteps;

    @Option(names = {"--sample_every", "--sample-every"}, defaultValue = "0", paramLabel = "N",
            description = "Sample 32 tokens (top-k 40) at step 0, every N steps and at the end; 0 = never (default: ${DEFAULT-VALUE}).")
    int sampleEvery;

    @Option(names = {"--overfit_single_batch", "--overfit-single-batch"}, defaultValue = "1", paramLabel = "0|1",
            description = "Train on the first batch only, resetting the loader every step (default: ${DEFAULT-VALUE}, as the original; pass 0 for real training).")
    int overfitSingleBatch;

    @Option(names = "--tensorcores", defaultValue = "0", paramLabel = "0|1", description = "TF32 tensor cores for the CUDA GEMMs; a no-op on the CPU, reported (default: ${DEFAULT-VALUE}).")
    int tensorcores;

    @Option(names = "--device", defaultValue = "", paramLabel = "DEVICE",
            description = "cpu, cuda or cuda:N (default: cuda when a GPU is present, else cpu).")
    String device;

    @Option(names = "--compile", defaultValue = "0", paramLabel = "0|1", description = "torch.compile in the original; a no-op here, reported (default: ${DEFAULT-VALUE}).")
    int compile;

    @Option(names = "--flash", defaultValue = "0", paramLabel = "0|1", description = "Flash attention: the T x T attention weights are never stored (GPU only; refused on the CPU) (default: ${DEFAULT-VALUE}).")
    int flash;

    @Option(names = "--dtype", defaultValue = "float32", paramLabel = "TYPE", description = "float32 on the CPU; bfloat16 needs a GPU; float16 is not supported (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = {"--zero_stage", "--zero-stage"}, defaultValue = "0", paramLabel = "0|1",
            description = "1: ZeRO-1, optimizer state sharded over the ranks (needs several; see scripts/launch.sh) (default: ${DEFAULT-VALUE}).")
    int zeroStage;

    @Option(names = {"--write_tensors", "--write-tensors"}, defaultValue = "0", paramLabel = "0|1",
            description = "1: at the end, write llm.c model files (fp32 and bf16) into --output_dir (default: 0, unlike the original's 1).")
    int writeTensors;

    @Option(names = {"--save_every_niter", "--save-every-niter"}, defaultValue = "100", paramLabel = "N",
            description = "A checkpoint every N steps (with --output_dir); the end always gets one; 0 = only the end (default: ${DEFAULT-VALUE}, as the original).")
    int saveEvery;

    @Option(names = {"--wandb_log_iters", "--wandb-log-iters"}, defaultValue = "10", paramLabel = "N",
            description = "Weights & Biases logging in the original; a no-op here, reported: metrics.jsonl holds the same numbers, and gpt2 serve shows them live (default: ${DEFAULT-VALUE}).")
    int wandbLogIters;

    @Option(names = {"--eval_every", "--eval-every"}, defaultValue = "0", paramLabel = "N",
            description = "CORE every N steps (and at the end), as nanochat; 0 = never (default: ${DEFAULT-VALUE}). See gpt2 eval.")
    int evalEvery;

    @Option(names = {"--eval_tasks", "--eval-tasks"}, defaultValue = "core", paramLabel = "TASKS",
            description = "With --eval_every: core, or a comma list of task labels (default: ${DEFAULT-VALUE}).")
    String evalTasks;

    @Option(names = {"--eval_max_per_task", "--eval-max-per-task"}, defaultValue = "500", paramLabel = "K",
            description = "With --eval_every: at most K examples per task; -1 = all (default: ${DEFAULT-VALUE}, as nanochat).")
    int evalMaxPerTask;

    @Option(names = {"--eval_bundle", "--eval-bundle"}, paramLabel = "DIR_OR_ZIP",
            description = "With --eval_every: the eval bundle (default: data/eval_bundle, else data/eval_bundle.zip).")
    Path evalBundle;

    @Option(names = {"--wandb_project_id", "--wandb-project-id"}, defaultValue = "", paramLabel = "ID", description = "See --wandb_log_iters.")
    String wandbProjectId;

    @Option(names = "--seed", defaultValue = "42", description = "Seed of initialization, dropout and sampling (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--beta1", defaultValue = "0.9", description = "AdamW beta1 (default: ${DEFAULT-VALUE}).")
    float beta1;

    @Option(names = "--beta2", defaultValue = "0.95", description = "AdamW beta2 (default: ${DEFAULT-VALUE}).")
    float beta2;

    @Option(names = {"--adam_eps", "--adam-eps"}, defaultValue = "1e-8", description = "AdamW epsilon (default: ${DEFAULT-VALUE}).")
    float adamEps;

    @Option(names = "--threads", defaultValue = "0", paramLabel = "N", description = "CPU threads; 0 = one per core (default: ${DEFAULT-VALUE}).")
    int threads;

    @Option(names = {"--skip_update_lossz", "--skip-update-lossz"}, defaultValue = "0", paramLabel = "Z",
            description = "Skip the update when the loss's z-score over the last 128 steps exceeds Z; 0 = off (default: ${DEFAULT-VALUE}).")
    float skipLossZ;

    @Option(names = {"--skip_update_gradz", "--skip-update-gradz"}, defaultValue = "0", paramLabel = "Z",
            description = "The same for the gradient norm; 0 = off (default: ${DEFAULT-VALUE}). NaN or infinite losses and norms are always skipped.")
    float skipGradZ;

    @Option(names = {"--max_skipped_steps", "--max-skipped-steps"}, defaultValue = "10", paramLabel = "N",
            description = "Stop (with a checkpoint of the last good weights) after N skipped steps in a row (default: ${DEFAULT-VALUE}).")
    int maxSkipped;

    @Option(names = {"--keep_last", "--keep-last"}, defaultValue = "0", paramLabel = "K",
            description = "Keep only the newest K checkpoints (plus --keep_every); 0 = keep all (default: ${DEFAULT-VALUE}).")
    int keepLast;

    @Option(names = {"--keep_every", "--keep-every"}, defaultValue = "0", paramLabel = "M",
            description = "With --keep_last, also keep every checkpoint whose step is a multiple of M (default: ${DEFAULT-VALUE}).")
    int keepEvery;

    @Spec
    CommandSpec spec;

    private String resolvedDevice;
    /** --model resolved once (a run folder to its newest valid checkpoint, weights opened). */
    private ModelSource.Resolved resolvedModel;
    /** This process's place in a data-parallel run: torchrun's environment (scripts/launch.sh) or SLURM's. */
    private final Ranks ranks = Ranks.fromEnvironment();
    private final boolean launched = ranks.launched();
    private final int rank = ranks.rank(), world = ranks.world(), localRank = ranks.localRank();

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    @Override
    public Integer call() {
        PrintWriter w = spec.commandLine().getOut();
        resume = flag("--resume", resumeFlag);
        if (resume && !loadCheckpoint.isEmpty()) throw new IllegalArgumentException("give --resume or --load_chkpoint_file, not both");
        if (resume && outputDir.isEmpty()) throw new IllegalArgumentException("--resume needs --output_dir (where the checkpoints are)");
        Path out = outputDir.isEmpty() ? null : Path.of(outputDir);
        if (out != null) gpt2.train.RunFolder.checkNotAFile(out);
        Checkpoint.Found resumeFrom = resumeCheckpoint(out); // verified once; its state gives step, config and flags
        List<String> notes = resumeFrom == null ? new ArrayList<>() : inheritRecordedFlags(resumeFrom);
        if (decayFrac == null) decayFrac = lrSchedule.equals("wsd") ? 0f : 1f; // a warmdown to the peak would be none
        notes.addAll(checkFlags());
        Path checkpoint = resumeFrom == null ? null : resumeFrom.dir();
        GptConfig config = modelConfig(resumeFrom);
        if (seqLen > config.maxSeqLen()) {
            throw new IllegalArgumentException("--sequence_length " + seqLen + " exceeds the model's block_size " + config.maxSeqLen());
        }
        if (resumeFrom != null) {
            int at = resumeFrom.state().path("step").asInt();
            if (at == numIterations) {
                if (rank == 0) w.printf("already complete at step %d (%s); nothing to do%n", at, checkpoint);
                return 0;
            }
        }
        // a folder holding a run is written into only to continue that run, or after moving it aside
        boolean continuing = resume || checkpoint != null && out != null
                && checkpoint.toAbsolutePath().normalize().startsWith(out.toAbsolutePath().normalize());
        boolean moveAside = out != null && flag("--overwrite", overwrite) && !continuing && gpt2.train.RunFolder.holdsRun(out);
        String refusal = out == null ? null : gpt2.train.RunFolder.refusal(out, continuing, flag("--overwrite", overwrite));
        if (refusal != null) throw new IllegalArgumentException(refusal);
        if (out == null) notes.add("no --output_dir: nothing is saved (no logs, samples or checkpoints)");
        TrainConfig cfg = new TrainConfig(inputTrainBin, inputValBin.isEmpty() ? null : inputValBin, out,
                batchSize, seqLen, totalBatchSize, numIterations, flag("--inference_only", inferenceOnly),
                learningRate, warmupIters, decayFrac, weightDecay, gradClip, beta1, beta2, adamEps,
                valLossEvery, valMaxSteps, sampleEvery, flag("--overfit_single_batch", overfitSingleBatch),
                saveEvery, seed, rank, world, skipLossZ, skipGradZ, maxSkipped, keepLast, keepEvery,
                gpt2.train.LrSchedule.Kind.parse(lrSchedule), warmdownFrac);
        AdamW.MuonSettings muon = AdamW.isMuon(optimizer)
                ? new AdamW.MuonSettings(muonLr, muonMomentum, muonNsSteps, embeddingLr, headLr) : null;
        if (flag("--write_tensors", writeTensors)) gpt2.io.LlmcFormat.checkRepresentable(config, "--write_tensors 1 (llm.c model files)");
        PrintStream log = new PrintStream(new WriterStream(w), true, StandardCharsets.UTF_8);
        long params = config.paddedParameterCount(); // as laid out; the optimizer's share: all, or this rank's with ZeRO-1
        long[] shard = zeroStage == 1 ? Communicator.shard(params, rank, world) : new long[]{0, params};
        try (Backend backend = Backends.create(resolvedDevice, threads, flag("--tensorcores", tensorcores),
                dtype.equals("bfloat16"));
             Gpt2 model = new Gpt2(config, backend);
             Communicator comm = Communicators.create(backend, launched, rank, world, ranks.masterAddr(), ranks.masterPort(),
                     Duration.ofSeconds(Long.parseLong(env("GPT2_RENDEZVOUS_TIMEOUT", "300"))));
             AdamW optimizer = new AdamW(model, beta1, beta2, adamEps, weightDecay, shard[0], shard[1], learningRate, muon)) {
            model.setFlashAttention(flag("--flash", flash));
            ModelFiles.Source start = checkpoint == null ? modelWeights() : null;
            Path startWeights = start == null ? null : start.path();
            if (start != null) {
                start.loadInto(model);
            } else {
                model.initialize(seed);
            }
            Trainer trainer = new Trainer(model, optimizer, cfg, log, args()).withCommunicator(comm);
            // every input is read and checked before the output folder is touched
            trainer.validateInputs();
            if (evalEvery > 0) {
                Path bundle = gpt2.eval.CoreBundle.locate(evalBundle, "--eval_bundle");
                trainer.withCoreEval(EvalCommand.select(gpt2.eval.CoreBundle.load(bundle), evalTasks), evalEvery, evalMaxPerTask);
            }
            if (out != null && rank == 0) {
                if (moveAside) notes.add("--overwrite 1: the run that was in " + out + " is now in " + gpt2.train.RunFolder.moveAside(out));
                gpt2.train.RunFolder.checkWritable(out);
                // weights, and AdamW's m and v unless inference only
                long checkpointBytes = params * 4 * (flag("--inference_only", inferenceOnly) ? 1 : 3) + (1 << 20);
                int saves = (saveEvery > 0 ? numIterations / saveEvery : 0) + 1;
                String space = gpt2.train.RunFolder.checkSpace(out, checkpointBytes, saves, keepLast);
                if (space != null) notes.add(space);
            }
            if (rank == 0) {
                log.printf("model %s%s: %,d parameters | backend %s%s%s%n", config.name(), architectureNote(checkpoint, startWeights),
                        config.parameterCount(), backend.name(), model.flashAttention() ? " | flash attention" : "",
                        world > 1 || launched ? " | rank 0 of " + world + (zeroStage == 1 ? ", ZeRO-1" : "") : "");
                log.printf("data %s | B %d x T %d x %d micro-batches x %d ranks = %,d tokens per step | %d steps%n",
                        inputTrainBin, batchSize, seqLen, cfg.gradAccumSteps(), world, totalBatchSize, numIterations);
                if (startWeights != null) log.printf("weights from %s%n", startWeights);
                for (String n : notes) log.println("note: " + n);
            }
            if (zeroStage == 1) trainer.zeroStage1();
            StopSignals stop = StopSignals.install();
            trainer.stopWhen(stop::requested, "a stop signal");
            if (checkpoint != null) trainer.resumeFrom(checkpoint);
            trainer.run();
            if (flag("--write_tensors", writeTensors) && rank == 0) {
                for (boolean bf16 : new boolean[]{false, true}) {
                    Path f = out.resolve("model_" + config.name() + (bf16 ? "_bf16" : "") + ".bin");
                    ModelFiles.export(model, f, ModelFiles.Format.LLMC, bf16);
                    log.printf("wrote %s (llm.c model file)%n", f);
                }
            }
            if (out == null && rank == 0) log.println("note: no --output_dir: nothing was saved");
        }
        log.flush();
        return 0;
    }

    /**
     * Without --model, which architecture the default is and where the original's own model is; with
     * a preset, its architecture in words.
     */
    private String architectureNote(Path checkpoint, Path startWeights) {
        if (checkpoint != null || startWeights != null) return "";
        boolean given = spec.commandLine().getParseResult().hasMatchedOption("--model");
        String arch = GptConfig.preset(modelOptions.model).norm() == GptConfig.NormType.LAYERNORM
                ? "OpenAI's GPT-2 architecture: LayerNorm, biases, tied head" : "the original project's architecture: RMSNorm, untied head";
        return " (" + arch + (given ? "" : "; the default --model; the original project's own model is --model seed-d12") + ")";
    }

    /** Refuses flags whose feature is missing on this device; returns notes for harmless no-ops. */
    private List<String> checkFlags() {
        List<String> notes = new ArrayList<>();
        resolvedDevice = device.isEmpty() ? (Backends.cudaUnavailableReason() == null ? "cuda" : "cpu") : device;
        boolean cuda = resolvedDevice.startsWith("cuda");
        Communicators.check(world, cuda);
        if (launched && cuda && resolvedDevice.equals("cuda")) {
            // one GPU per rank: the local rank's, unless the launcher (srun --gpus-per-task) left this rank one visible GPU
            String visible = System.getenv("CUDA_VISIBLE_DEVICES");
            boolean one = visible != null && !visible.isBlank() && !visible.contains(",");
            resolvedDevice = "cuda:" + (one ? 0 : localRank);
        }
        if (!cuda && !resolvedDevice.equals("cpu")) {
            throw new IllegalArgumentException("--device " + device + ": expected cpu, cuda or cuda:N");
        }
        switch (dtype) {
            case "float32" -> { }
            case "bfloat16" -> {
                if (!cuda) throw new IllegalArgumentException("--dtype bfloat16: the CPU backend computes in float32; bf16 needs --device cuda");
                notes.add("--dtype bfloat16: mixed precision as llm.c (bf16 activations and weight copy, bf16 tensor-core "
                        + "GEMMs with float32 accumulation; float32 master weights, gradients, AdamW state, norm statistics and loss)");
            }
            case "float16" -> throw new IllegalArgumentException("--dtype float16 is not supported (use bfloat16 on a GPU or float32)");
            default -> throw new IllegalArgumentException("--dtype " + dtype + ": must be float32, bfloat16 or float16");
        }
        if (flag("--flash", flash) && !cuda) {
            throw new IllegalArgumentException("--flash 1: flash attention needs the CUDA backend (--device cuda)");
        }
        if (zeroStage != 0 && (zeroStage != 1 || world == 1)) {
            throw new IllegalArgumentException("--zero_stage " + zeroStage + ": " + (zeroStage != 1 ? "only stage 1 exists"
                    : "ZeRO shards the optimizer over several ranks; this run has one"));
        }
        if (flag("--write_tensors", writeTensors) && outputDir.isEmpty()) {
            throw new IllegalArgumentException("--write_tensors 1 needs --output_dir (where the llm.c model files go)");
        }
        if (flag("--tensorcores", tensorcores) && !cuda) notes.add("--tensorcores 1 has no effect on the CPU");
        if (flag("--compile", compile)) notes.add("--compile 1 has no effect (there is no torch.compile; ops are already fused by hand)");
        if (spec.commandLine().getParseResult().hasMatchedOption("--wandb_log_iters") || !wandbProjectId.isEmpty()) {
            notes.add("Weights & Biases is not available; --wandb_* ignored: metrics.jsonl in --output_dir holds the same numbers, "
                    + "and `gpt2 serve --runs DIR` shows them live in a browser");
        }
        if (!AdamW.isMuon(optimizer)) { // refuses an unknown --optimizer here, before anything is opened
            for (String f : List.of("--muon_lr", "--muon_momentum", "--muon_ns_steps", "--embedding_lr", "--head_lr")) {
                if (spec.commandLine().getParseResult().hasMatchedOption(f)) notes.add(f + " has no effect with --optimizer adamw");
            }
        }
        if (gpt2.train.LrSchedule.Kind.parse(lrSchedule) == gpt2.train.LrSchedule.Kind.COSINE
                && spec.commandLine().getParseResult().hasMatchedOption("--warmdown_frac")) {
            notes.add("--warmdown_frac has no effect with --lr_schedule cosine");
        }
        if (flag("--overfit_single_batch", overfitSingleBatch)) {
            notes.add("--overfit_single_batch 1 (the default): every step trains on the first batch; pass 0 for real training");
        }
        return notes;
    }

    /** Flags about this invocation or machine, not the run: never taken from a checkpoint. */
    private static final java.util.Set<String> NOT_INHERITED = java.util.Set.of("resume", "output_dir", "load_chkpoint_file",
            "overwrite", "device", "threads", "compile");

    /**
     * Continuing a run (--resume, --load_chkpoint_file) continues it as it was started: every flag
     * not on this command line takes the value the checkpoint recorded (state.json's "args"), not
     * the default; one given here with another value replaces it, said in one note each. The model
     * comes from the checkpoint (a different shape is refused in {@link #modelConfig}).
     */
    private List<String> inheritRecordedFlags(Checkpoint.Found from) {
        List<String> notes = new ArrayList<>();
        com.fasterxml.jackson.databind.JsonNode recorded = from.state().get("args");
        if (recorded == null || !recorded.isObject()) {
            notes.add(from.dir().getFileName() + " records no flags (an older checkpoint): this command line's and the defaults apply");
            return notes;
        }
        java.util.Set<OptionSpec> model = new java.util.HashSet<>(spec.mixins().get("modelOptions").options());
        for (OptionSpec o : spec.options()) {
            String key = argKey(o);
            if (o.usageHelp() || o.versionHelp() || model.contains(o) || NOT_INHERITED.contains(key.replace('-', '_'))
                    || !recorded.hasNonNull(key)) {
                continue;
            }
            String old = recorded.get(key).asText(), now = String.valueOf((Object) o.getValue());
            if (key.equals("optimizer") && spec.commandLine().getParseResult().hasMatchedOption(o) && !old.equals(now)) {
                throw new IllegalArgumentException(from.dir() + " is a run of --optimizer " + old + "; it cannot continue with "
                        + "--optimizer " + now + " (the optimizer state differs)");
            }
            if (spec.commandLine().getParseResult().hasMatchedOption(o)) {
                if (!old.equals(now)) notes.add(o.longestName() + " " + now + " replaces the run's " + old);
            } else if (!old.equals(now)) {
                o.setValue(parse(old, o.type(), o.longestName()));
            }
        }
        return notes;
    }

    private static Object parse(String value, Class<?> type, String name) {
        try {
            if (type == int.class || type == Integer.class) return Integer.parseInt(value);
            if (type == long.class || type == Long.class) return Long.parseLong(value);
            if (type == float.class || type == Float.class) return Float.parseFloat(value);
            if (type == boolean.class || type == Boolean.class) return Boolean.parseBoolean(value);
            return value;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("the checkpoint records " + name + " " + value + ", not a " + type.getSimpleName());
        }
    }

    /**
     * The checkpoint to continue from, if any. --resume: the newest valid checkpoint in --output_dir;
     * none at all starts from scratch (said in one line); checkpoints that all fail to verify are
     * refused, each named with what is wrong.
     */
    private Checkpoint.Found resumeCheckpoint(Path out) {
        if (!loadCheckpoint.isEmpty()) {
            Path p = Path.of(loadCheckpoint);
            if (!Files.isDirectory(p)) throw new IllegalArgumentException("--load_chkpoint_file " + p + ": no such checkpoint directory");
            Checkpoint.Found f = Checkpoint.verify(p);
            if (!f.valid()) throw new IllegalArgumentException("--load_chkpoint_file " + f.problem());
            return f;
        }
        if (!resume) return null;
        List<Checkpoint.Found> bad = new ArrayList<>();
        var newest = Checkpoint.newestResumable(out, bad::add);
        if (newest.isPresent()) {
            for (Checkpoint.Found b : bad) spec.commandLine().getErr().printf("warning: skipping %s: %s%n", b.dir(), b.problem());
            return newest.get();
        }
        if (bad.isEmpty()) {
            spec.commandLine().getOut().printf("--resume: no checkpoint in %s; starting from scratch%n", out);
            return null;
        }
        throw new IllegalArgumentException("--resume: no valid checkpoint in " + out + ": " + Checkpoint.problems(bad));
    }

    /** --model as weights on disk (our checkpoint, run folder, llm.c file, HF folder), or null for a preset. */
    private ModelFiles.Source modelWeights() {
        if (resolvedModel == null) resolvedModel = ModelSource.resolve(modelOptions.model, spec.commandLine().getOut());
        return resolvedModel.weights();
    }

    /**
     * The model's configuration: a checkpoint's or weights' own (the flags may only repeat it: a
     * different --model preset or override is refused with both shapes), else the preset's.
     */
    private GptConfig modelConfig(Checkpoint.Found resumeFrom) {
        ModelFiles.Source weights = resumeFrom == null ? modelWeights() : null;
        if (resumeFrom == null && weights == null) return modelOptions.config();
        GptConfig saved = resumeFrom != null ? Checkpoint.config(resumeFrom.state()) : weights.config();
        Path from = resumeFrom != null ? resumeFrom.dir() : weights.path();
        GptConfig asked = null;
        if (resumeFrom != null && spec.commandLine().getParseResult().hasMatchedOption("--model") && modelWeights() == null) {
            asked = modelOptions.config(); // a preset named beside a checkpoint
        } else if (modelOptions.hasOverrides()) {
            asked = modelOptions.applyTo(saved);
        }
        if (asked != null && !asked.shape().equals(saved.shape())) {
            throw new IllegalArgumentException(from + " holds a model of " + saved.shape() + "; the flags ask for " + asked.shape());
        }
        return saved;
    }

    private static boolean flag(String name, int v) {
        return ModelOptions.flag(name, v);
    }

    /** Every flag and its value, for the checkpoint's state.json. */
    private ObjectNode args() {
        ObjectNode a = JsonNodeFactory.instance.objectNode();
        for (OptionSpec o : spec.options()) {
            if (o.usageHelp() || o.versionHelp()) continue;
            Object v = o.getValue();
            a.put(argKey(o), v == null ? null : String.valueOf(v));
        }
        return a;
    }

    /** A flag's key in state.json's "args" (written by {@link #args}, read back by {@link #inheritRecordedFlags}). */
    private static String argKey(OptionSpec o) {
        return o.longestName().replaceFirst("^--", "");
    }
}
