package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.backend.Profile;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;

/**
 * Times whole training steps on random tokens, each the trainer's step: zero the gradients,
 * forward with the fused classifier, backward, one read of the loss and gradient norm, AdamW.
 * On CUDA it also counts the step's plan (launches, GEMMs, host synchronizations, bytes by kernel
 * family, device memory): {@code --profile 1} times each family with device events, and
 * {@code --dry_run 1} prints the plan without a GPU. A model on disk is timed with its weights;
 * {@code --compare_fresh 1} times it against a fresh model of its configuration.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time whole training steps (forward, backward, AdamW) on random tokens: median ms, tokens/s; "
                + "on CUDA the step's kernel plan, with --profile 1 timed per kernel family, with --dry_run 1 without a GPU.")
final class BenchCommand implements Callable<Integer> {

    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"--batch_size", "--batch-size"}, defaultValue = "4", paramLabel = "B",
            description = "Sequences per step (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = {"--sequence_length", "--sequence-length"}, defaultValue = "64", paramLabel = "T",
            description = "Tokens per sequence (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Option(names = "--steps", defaultValue = "10", description = "Timed steps after the warm-up steps (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--warmup", defaultValue = "-1", paramLabel = "N",
            description = "Untimed steps first (default: 2 on CUDA; 10 on the CPU, whose JIT compiles the vector kernels "
                    + "during the first steps: with 2, the first timed steps still run partly interpreted).")
    int warmup;

    @Mixin
    DeviceOptions dev;

    @Option(names = "--tensorcores", defaultValue = "0", paramLabel = "0|1", description = "TF32 GEMMs on CUDA.")
    int tensorcores;

    @Option(names = "--flash", defaultValue = "0", paramLabel = "0|1", description = "Flash attention (CUDA only).")
    int flash;

    @Option(names = "--profile", defaultValue = "0", paramLabel = "0|1",
            description = "After the timed steps, as many again with every op timed (CUDA: every kernel and GEMM between "
                    + "device events; CPU: the wall clock around every op); prints the table by family (calls, MB, ms, share, "
                    + "GB/s or FLOP/s; on the CPU each family's GEMM floor and memory-bound floor beside it).")
    int profile;

    @Option(names = "--dry_run", defaultValue = "0", paramLabel = "0|1",
            description = "CUDA without a GPU: one step through the checked dry-run executor; prints the step's plan "
                    + "(launches, GEMMs, host synchronizations, bytes per kernel family, device memory), no times.")
    int dryRun;

    @Option(names = {"--random_weights", "--random-weights"}, defaultValue = "0", paramLabel = "0|1",
            description = "With --model naming weights on disk: time its configuration with fresh random weights "
                    + "instead of reading them.")
    int randomWeights;

    @Option(names = {"--compare_fresh", "--compare-fresh"}, defaultValue = "0", paramLabel = "0|1",
            description = "With --model naming weights on disk: time the model read from disk and a fresh model of the "
                    + "same configuration, each in a JVM of its own with these flags; prints both medians and the ratio "
                    + "loaded/fresh.")
    int compareFresh;

    @Option(names = "--decode", defaultValue = "0", paramLabel = "0|1",
            description = "Time decoding instead of training: one position at a time through the KV cache for "
                    + "--sequence_length positions of --batch_size sequences (after one untimed pass); prints the median "
                    + "ms per position, tokens/s, and the bytes each position reads at least (weights, cache) as a rate "
                    + "and a share of the measured memory read bandwidth; with --profile 1 the ops of a position.")
    int decode;

    @Option(names = "--json", description = "Also print one JSON line with the numbers.")
    boolean json;

    @Spec
    CommandSpec spec;

    private static double median(double[] x) {
        double[] s = x.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        ModelSource.Resolved source = ModelSource.resolve(modelOptions.model, out);
        GptConfig cfg = source.config(modelOptions);
        if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1");
        boolean dry = ModelOptions.flag("--dry_run", dryRun), profiled = ModelOptions.flag("--profile", profile);
        boolean random = ModelOptions.flag("--random_weights", randomWeights);
        if (ModelOptions.flag("--compare_fresh", compareFresh)) return compareFresh(out, source, dry);
        boolean decoding = ModelOptions.flag("--decode", decode);
        if (decoding && dry) throw new IllegalArgumentException("--decode 1: a dry run has no times; drop --dry_run");
        if (decoding && seqLen > cfg.maxSeqLen()) {
            throw new IllegalArgumentException("--sequence_length " + seqLen + ": decoding goes up to the block size "
                    + cfg.maxSeqLen());
        }
        boolean load = source.weights() != null && !random && !dry; // a dry run moves no data
        if (load && !sameLayout(cfg, source.weights().config())) {
            throw new IllegalArgumentException("--model " + modelOptions.model + ": the overrides change the model's shape, "
                    + "so its weights cannot be read; add --random_weights 1 to time that shape with random weights");
        }
        int B = batchSize, T = seqLen;
        Random r = new Random(1);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(cfg.vocabSize()); tg[i] = r.nextInt(cfg.vocabSize()); }
        try (Backend be = dry ? dryRunBackend() : dev.backend(ModelOptions.flag("--tensorcores", tensorcores));
             Gpt2 m = new Gpt2(cfg, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            if (profiled && be.profile() == null) throw new IllegalArgumentException("--profile 1: the " + be.name() + " backend has no per-op profile");
            m.setFlashAttention(ModelOptions.flag("--flash", flash));
            if (load) {
                long t0 = System.nanoTime();
                source.weights().loadInto(m);
                out.printf("weights: read from %s in %.1f s%n", source.path(), (System.nanoTime() - t0) / 1e9);
            } else if (!dry) {
                m.initialize(1); // a dry run moves no data: drawing 1.5B random weights would only take time
            }
            out.printf("bench %s (%,d parameters) B=%d T=%d on %s%s%n", cfg.name(), cfg.parameterCount(), B, T, be.name(),
                    m.flashAttention() ? ", flash attention" : "");
            if (be.gemmDescription() != null) out.printf("GEMM: %s%n", be.gemmDescription());
            out.flush();
            if (dry) return dryRun(out, be, m, opt, in, tg, B, T, cfg);
            if (decoding) return decode(out, be, m, in, B, T, profiled);
            double[] ms = new double[steps], fwd = new double[steps], bwd = new double[steps], optim = new double[steps];
            double[] gemm = new double[steps], fwdBwd = new double[steps];
            double gemmFlops = 0; // one step's GEMM FLOPs (the same every step)
            Profile plan = be.profile();
            // with CUDA graphs a micro-batch's forward and backward are one replayed segment: a
            // synchronization between them would end it (and after two such misses, graphs for it)
            boolean whole = be.replaysSegments();
            int warm = warmup >= 0 ? warmup : be.benchWarmupSteps();
            for (int s = -warm; s < steps; s++) {
                be.resetGemmStats();
                long t0 = System.nanoTime();
                m.zeroGrad();
                m.trainForward(in, tg, B, T, s + warm, 1f);
                if (!whole) be.synchronize();
                long t1 = System.nanoTime();
                m.backward(1f);
                be.synchronize();
                long t2 = System.nanoTime();
                step(m, opt);
                be.synchronize();
                long t3 = System.nanoTime();
                if (s >= 0) {
                    ms[s] = (t3 - t0) / 1e6;
                    fwd[s] = (t1 - t0) / 1e6;
                    bwd[s] = (t2 - t1) / 1e6;
                    fwdBwd[s] = (t2 - t0) / 1e6;
                    optim[s] = (t3 - t2) / 1e6;
                    long[] g = be.gemmStats();
                    if (g != null) {
                        gemm[s] = g[1] / (g[0] / 1e9) / 1e9;
                        gemmFlops = g[1];
                    }
                }
            }
            double median = median(ms);
            if (whole) {
                out.printf("phases (median ms): forward + backward %.1f (one CUDA graph segment) | optimizer %.1f%n",
                        median(fwdBwd), median(optim));
            } else {
                out.printf("phases (median ms): forward %.1f | backward %.1f | optimizer %.1f%n", median(fwd), median(bwd), median(optim));
            }
            double peak = Double.NaN;
            if (be.gemmStats() != null) {
                peak = be.measureGemmPeak(1024, 20);
                out.printf("GEMMs in the step: %.1f GFLOP/s median = %.0f%% of this run's sgemm peak (%.1f GFLOP/s, n=1024)%n",
                        median(gemm), 100 * median(gemm) / peak, peak);
                // the floor: what the step's GEMMs alone would take at that peak, beside the step itself
                double floorMs = gemmFlops / (peak * 1e9) * 1e3;
                out.printf("sgemm floor: the step's %.1f GFLOP of GEMMs at this run's peak take %.1f ms; the step takes %.1f ms "
                        + "(%.2fx the floor)%n", gemmFlops / 1e9, floorMs, median, median / floorMs);
            }
            String planJson = "";
            double copyGBs = Double.NaN;
            if (plan != null && (profiled || !plan.isHost())) {
                // the plan as the trainer runs a step (no phase synchronizations): one step, or with
                // --profile 1 as many as were timed, every call timed (CUDA: between device events; the
                // CPU, which counts nothing unprofiled: the wall clock around every op)
                int counted = profiled ? steps : 1;
                plan.reset();
                be.setProfiling(profiled);
                for (int s = 0; s < counted; s++) trainStep(m, opt, in, tg, B, T, s + 2);
                be.setProfiling(false); // CUDA: waits for the events and adds their times
                if (plan.isHost()) {
                    copyGBs = be.copyBandwidth(1L << 28);
                    out.printf("per-op profile over %d steps (wall clock around every op); floors at this run's sgemm peak "
                            + "%.1f GFLOP/s and memory copy bandwidth %.1f GB/s (read + write, 256 MiB):%n", steps, peak, copyGBs);
                    out.print(plan.hostTable(counted, peak, copyGBs));
                } else {
                    if (profiled) {
                        copyGBs = be.copyBandwidth(1L << 30);
                        out.printf("per-kernel profile over %d steps (device events around every call); "
                                + "device copy bandwidth %.0f GB/s (device-to-device copy of 1 GiB, read + write):%n", steps, copyGBs);
                    } else {
                        out.printf("step plan (one step as the trainer runs it; add --profile 1 for times):%n");
                    }
                    out.print(plan.table(counted, copyGBs));
                    if (profiled) out.println(attentionLine(plan, counted, cfg, B, T));
                }
                out.flush();
                planJson = "," + plan.jsonFields(counted) + (Double.isNaN(copyGBs) ? "" : String.format(Locale.ROOT, ",\"copy_gbs\":%.1f", copyGBs));
            }
            double flops = cfg.trainingFlopsPerToken(T) * B * T;
            double achieved = flops / (median / 1000);
            String mfu = !Double.isNaN(be.bf16PeakFlops())
                    ? String.format(" | MFU %.1f%% of the %s's bf16 peak", 100 * achieved / be.bf16PeakFlops(), be.deviceName())
                    : "";
            long[] mem = be.deviceMemoryInfo();
            String gpuMem = plan == null || plan.isHost() ? "" : String.format(Locale.ROOT, " | GPU memory: peak allocated %.0f MiB%s",
                    plan.peakDeviceBytes() / 1048576.0,
                    mem == null ? "" : String.format(Locale.ROOT, ", in use %.0f of %.0f MiB (cudaMemGetInfo)",
                            (mem[1] - mem[0]) / 1048576.0, mem[1] / 1048576.0));
            out.printf("median step %.1f ms | %.0f tokens/s | %.1f GFLOP/s (6N + 12LCT per token)%s | peak memory %s%s%n",
                    median, B * T / (median / 1000), achieved / 1e9, mfu, gpt2.train.Trainer.peakMemory(), gpuMem);
            if (json) {
                out.printf(Locale.ROOT, "{\"model\":\"%s\",\"device\":\"%s\",\"batch_size\":%d,\"sequence_length\":%d,\"median_ms\":%.3f,"
                                + "\"forward_ms\":%s,\"backward_ms\":%s,\"forward_backward_ms\":%.3f,\"optimizer_ms\":%.3f,"
                                + "\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"peak_rss_mib\":%d%s%s}%n",
                        cfg.name(), be.name().replace("\"", "'"), B, T, median,
                        whole ? "null" : String.format(Locale.ROOT, "%.3f", median(fwd)),
                        whole ? "null" : String.format(Locale.ROOT, "%.3f", median(bwd)), median(fwdBwd), median(optim),
                        B * T / (median / 1000), achieved / 1e9, gpt2.train.Trainer.peakMemoryMiB(),
                        mem == null ? "" : ",\"gpu_memory_used_bytes\":" + (mem[1] - mem[0]), planJson);
            }
        }
        return 0;
    }

    /**
     * --decode 1: positions 0..T-1 of B sequences one at a time through the KV cache, once untimed
     * (the JIT, the allocations), once timed per position; the rate against the read bandwidth.
     */
    private int decode(PrintWriter out, Backend be, Gpt2 m, int[] tokens, int B, int T, boolean profiled) {
        GptConfig cfg = m.config();
        double[] ms = new double[T];
        Profile plan = be.profile();
        try (Gpt2.KvCache cache = m.newKvCache(B)) {
            int[] step = new int[B];
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 1 && profiled) {
                    plan.reset();
                    be.setProfiling(true);
                }
                for (int t = 0; t < T; t++) {
                    for (int b = 0; b < B; b++) step[b] = tokens[b * T + t];
                    long t0 = System.nanoTime();
                    m.decode(step, t, cache);
                    be.synchronize();
                    ms[t] = (System.nanoTime() - t0) / 1e6;
                }
            }
            be.setProfiling(false);
        }
        double bytes = gpt2.eval.Sampler.bytesForPositions(cfg, B, T) / T;
        double median = median(ms), gbs = bytes / (median / 1e3) / 1e9;
        double readGBs = be.readBandwidth(1L << 28);
        out.printf(Locale.ROOT, "decode: median %.2f ms per position (positions 0..%d, %d sequence%s) | %.1f tokens/s | "
                        + "%.0f MB read per position at least (weights, KV cache) = %.1f GB/s%s%n", median, T - 1, B,
                B == 1 ? "" : "s", B / (median / 1e3), bytes / 1e6, gbs,
                Double.isNaN(readGBs) ? "" : String.format(Locale.ROOT, " = %.0f%% of this machine's read bandwidth "
                        + "(%.1f GB/s, 256 MiB)", 100 * gbs / readGBs, readGBs));
        if (profiled) {
            out.printf("per-op profile of one position (the mean over %d):%n", T);
            out.print(plan.isHost() ? plan.hostTable(T, be.measureGemmPeak(1024, 5), be.copyBandwidth(1L << 28)) : plan.table(T));
            out.flush();
        }
        if (json) {
            out.printf(Locale.ROOT, "{\"model\":\"%s\",\"device\":\"%s\",\"batch_size\":%d,\"positions\":%d,"
                            + "\"decode_median_ms\":%.3f,\"tokens_per_s\":%.2f,\"bytes_per_position\":%.0f,\"read_gbs\":%.2f,"
                            + "\"bandwidth_gbs\":%s}%n", cfg.name(), be.name().replace("\"", "'"), B, T, median, B / (median / 1e3),
                    bytes, gbs, Double.isNaN(readGBs) ? "null" : String.format(Locale.ROOT, "%.2f", readGBs));
        }
        return 0;
    }

    /** --compare_fresh 1: the loaded and a fresh model, each benched in a child JVM (see {@link FreshComparison}). */
    private int compareFresh(PrintWriter out, ModelSource.Resolved source, boolean dry) {
        if (source.weights() == null) {
            throw new IllegalArgumentException("--compare_fresh 1: --model " + modelOptions.model + " is a preset; "
                    + "name weights on disk (an llm.c .bin, a Hugging Face folder, a checkpoint or a run folder)");
        }
        if (dry) throw new IllegalArgumentException("--compare_fresh 1: a dry run reads no weights and has no times");
        if (randomWeights != 0) throw new IllegalArgumentException("--compare_fresh 1: times the file's weights; drop --random_weights");
        double[] ms = FreshComparison.run(spec, out);
        out.println(FreshComparison.ratioLine(ms[0], ms[1], steps));
        if (json) {
            out.printf(Locale.ROOT, "{\"model\":\"%s\",\"loaded_median_ms\":%.3f,\"fresh_median_ms\":%.3f,\"loaded_over_fresh\":%.4f}%n",
                    source.path().toString().replace("\\", "/").replace("\"", "'"), ms[0], ms[1], ms[0] / ms[1]);
        }
        return 0;
    }

    /** Whether weights of config {@code b} fit a model of config {@code a}: the same tensors, shapes and offsets. */
    static boolean sameLayout(GptConfig a, GptConfig b) {
        var x = gpt2.model.ParameterLayout.of(a).tensors();
        var y = gpt2.model.ParameterLayout.of(b).tensors();
        if (x.size() != y.size()) return false;
        for (int i = 0; i < x.size(); i++) {
            if (!x.get(i).name().equals(y.get(i).name()) || x.get(i).offset() != y.get(i).offset()
                    || !Arrays.equals(x.get(i).shape(), y.get(i).shape())) {
                return false;
            }
        }
        return true;
    }

    /**
     * The attention's share of a profiled step: its families' time (flash_*, or attention GEMMs and
     * softmax kernels) and the rate on the causal attention's FLOPs as FlashAttention-2 counts them
     * (forward two T x T x hs products over the causal triangle, backward five; 2 FLOPs each).
     */
    static String attentionLine(Profile plan, int steps, GptConfig cfg, int B, int T) {
        double ms = 0;
        for (Profile.Row r : plan.rows()) {
            String f = r.family();
            if (f.startsWith("flash") || f.startsWith("attention") || f.startsWith("softmax")) ms += r.ms();
        }
        ms /= steps;
        double flops = 7 * 2.0 * cfg.numLayers() * B * cfg.numHeads() * (T * (T + 1.0) / 2) * (cfg.channels() / cfg.numHeads());
        return String.format(Locale.ROOT, "attention: %.2f ms per step = %.1f TFLOP/s on its %.2f TFLOP (causal, forward + "
                + "backward, FlashAttention-2's count)", ms, flops / (ms / 1e3) / 1e12, flops / 1e12);
    }

    /** The trainer's step, one micro-batch: zero, forward, backward, one read of loss and norm, AdamW. */
    private static void trainStep(Gpt2 m, AdamW opt, int[] in, int[] tg, int B, int T, long key) {
        m.zeroGrad();
        m.trainForward(in, tg, B, T, key, 1f);
        m.backward(1f);
        step(m, opt);
    }

    /** The trainer's step after backward: one read of loss and norm, then AdamW with clipping at 1. */
    private static void step(Gpt2 m, AdamW opt) {
        float[] numbers = m.stepStatistics(0, m.layout().totalSize());
        opt.step(m, 1e-4f, AdamW.clipScale((float) Math.sqrt(numbers[1]), 1f));
    }

    private Backend dryRunBackend() {
        dev.check();
        if (!dev.device.isEmpty() && !dev.device.startsWith("cuda")) {
            throw new IllegalArgumentException("--dry_run 1: a plan of the CUDA backend; --device " + dev.device + " has none");
        }
        return Backends.dryRun(dev.dtype.equals("bfloat16"));
    }

    /** One warm-up step (allocations), then the plan of one step. */
    private int dryRun(PrintWriter out, Backend be, Gpt2 m, AdamW opt, int[] in, int[] tg, int B, int T, GptConfig cfg) {
        Profile plan = be.profile();
        for (int s = 0; s < 2; s++) {
            if (s == 1) plan.reset();
            trainStep(m, opt, in, tg, B, T, s);
        }
        out.printf("step plan (dry run: checked launches and GEMMs, no GPU, no times):%n");
        out.print(plan.table(1));
        out.flush();
        if (json) {
            out.printf(Locale.ROOT, "{\"model\":\"%s\",\"device\":\"%s\",\"batch_size\":%d,\"sequence_length\":%d,\"dry_run\":true,%s}%n",
                    cfg.name(), be.name().replace("\"", "'"), B, T, plan.jsonFields(1));
        }
        return 0;
    }
}
