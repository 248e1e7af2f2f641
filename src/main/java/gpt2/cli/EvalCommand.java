package gpt2.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.backend.Backend;
import gpt2.data.DataLoader;
import gpt2.data.Progress;
import gpt2.eval.Bpb;
import gpt2.eval.Core;
import gpt2.eval.CoreBundle;
import gpt2.model.Gpt2;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

@Command(name = "eval", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Score a base model as nanochat does: the CORE metric (the DCLM bundle's in-context tasks, each accuracy "
                + "centered on its random baseline, averaged) and validation bits per byte.",
                "Example: gpt2 eval --model runs/d12 --tasks core --max_per_task 500",
                "         gpt2 eval --model runs/d12 --tasks bpb --input_val_bin 'data/fineweb-edu/*_val_*.bin'"})
final class EvalCommand implements Callable<Integer> {

    @Option(names = "--model", paramLabel = "CKPT",
            description = "A checkpoint directory, a run folder (its newest valid checkpoint), an llm.c model file or a Hugging Face folder.")
    String model;

    @Option(names = "--tasks", defaultValue = "core", paramLabel = "TASKS",
            description = "core (every task of the bundle's core.yaml), all (the same), a comma list of task labels "
                    + "(e.g. hellaswag_zeroshot,arc_easy), bpb, or list (the bundle's tasks, no model) (default: ${DEFAULT-VALUE}).")
    String tasks;

    @Option(names = "--bundle", paramLabel = "DIR_OR_ZIP",
            description = "The eval bundle: a folder or the zip (default: data/eval_bundle, else data/eval_bundle.zip; "
                    + "gpt2 prepare core gets it).")
    Path bundle;

    @Option(names = {"--max_per_task", "--max-per-task"}, defaultValue = "-1", paramLabel = "K",
            description = "At most K examples per task (after nanochat's shuffle); -1 = all (default: ${DEFAULT-VALUE}).")
    int maxPerTask;

    @Option(names = {"--batch_rows", "--batch-rows"}, defaultValue = "8", paramLabel = "N",
            description = "Rows (options) per forward pass (default: ${DEFAULT-VALUE}).")
    int batchRows;

    @Option(names = {"--input_val_bin", "--input-val-bin"}, paramLabel = "PATTERN",
            description = "bpb: the validation token shards (a file or glob).")
    String inputValBin;

    @Option(names = {"--batch_size", "--batch-size"}, defaultValue = "4", paramLabel = "B", description = "bpb: sequences per batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = {"--sequence_length", "--sequence-length"}, defaultValue = "0", paramLabel = "T",
            description = "bpb: tokens per sequence; 0 = the model's block size (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Option(names = {"--val_max_steps", "--val-max-steps"}, defaultValue = "20", paramLabel = "N",
            description = "bpb: batches to read (default: ${DEFAULT-VALUE}).")
    int valMaxSteps;

    @Option(names = "--out", paramLabel = "FILE",
            description = "Where the results go, FILE.csv and FILE.json (default: CKPT/core_eval beside a checkpoint; none for other models).")
    Path outFile;

    @Mixin
    DeviceOptions dev;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (tasks.equals("list")) {
            List<Core.Task> all = CoreBundle.load(bundlePath());
            for (Core.Task t : all) {
                out.printf(Locale.ROOT, "%-34s %2d-shot %-17s %6d examples | random baseline %.1f%% | %s%n", t.label(), t.shots(),
                        t.type().yaml, t.data().size(), t.baselinePercent(), t.file());
            }
            out.printf("%d tasks in %s%n", all.size(), bundlePath());
            return 0;
        }
        if (model == null) throw new IllegalArgumentException("--model: name the model to score (or --tasks list)");
        dev.check();
        boolean bpb = tasks.equals("bpb");
        List<Core.Task> selected = bpb ? List.of() : select(CoreBundle.load(bundlePath()), tasks);
        if (bpb && inputValBin == null) throw new IllegalArgumentException("--tasks bpb needs --input_val_bin (the validation shards)");
        if (valMaxSteps < 1) throw new IllegalArgumentException("--val_max_steps must be >= 1, got " + valMaxSteps);
        ModelSource.Resolved resolved = ModelSource.resolve(model, out);
        try (Backend be = dev.backend(false); Gpt2 m = ModelSource.load(resolved, be, out)) {
            ObjectNode json = new ObjectMapper().createObjectNode().put("model", resolved.name());
            StringBuilder csv = new StringBuilder();
            if (bpb) {
                double bits = bitsPerByte(m, out);
                json.put("val_bpb", bits).put("input_val_bin", inputValBin);
                csv.append("metric,value\nval_bpb,").append(String.format(Locale.ROOT, "%.6f", bits)).append('\n');
            } else {
                out.printf("%d task(s) from %s%s on %s%n", selected.size(), bundlePath(), maxPerTask > 0
                        ? " (at most " + maxPerTask + " examples per task)" : "", be.name());
                out.flush();
                List<Core.Result> results = new ArrayList<>();
                for (Core.Task t : selected) {
                    int n = maxPerTask > 0 ? Math.min(maxPerTask, t.data().size()) : t.data().size();
                    Core.Result r;
                    try (Progress bar = new Progress(t.label(), n, "examples")) {
                        r = Core.evaluate(m, t, maxPerTask, batchRows, k -> bar.step(k));
                    }
                    results.add(r);
                    out.println(r.line());
                    out.flush();
                }
                double core = Core.metric(results);
                out.printf(Locale.ROOT, "CORE %.4f (the mean centered accuracy of %d task(s))%n", core, results.size());
                json.put("bundle", bundlePath().toString()).put("max_per_task", maxPerTask).put("core", core);
                ArrayNode arr = json.putArray("tasks");
                csv.append("task,shots,type,examples,accuracy,centered\n");
                for (Core.Result r : results) {
                    arr.addObject().put("task", r.label()).put("shots", r.shots()).put("type", r.type().yaml).put("examples", r.examples())
                            .put("accuracy", r.accuracy()).put("centered", r.centered()).put("seconds", r.seconds());
                    csv.append(String.format(Locale.ROOT, "%s,%d,%s,%d,%.6f,%.6f%n", r.label(), r.shots(), r.type().yaml, r.examples(),
                            r.accuracy(), r.centered()));
                }
                csv.append(String.format(Locale.ROOT, "CORE,,,,,%.6f%n", core));
            }
            Path target = outFile != null ? outFile : ModelSource.isCheckpoint(resolved.name())
                    ? Path.of(resolved.name()).resolve(bpb ? "bpb_eval" : "core_eval") : null;
            if (target != null) {
                write(Path.of(target + ".csv"), csv.toString());
                write(Path.of(target + ".json"), new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(json));
                out.printf("wrote %s.csv and %s.json%n", target, target);
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        return 0;
    }

    private Path bundlePath() {
        return CoreBundle.locate(bundle, "--bundle");
    }

    /** The tasks --tasks names, in the bundle's order; an unknown label is refused with the known ones. */
    static List<Core.Task> select(List<Core.Task> all, String spec) {
        if (spec.equals("core") || spec.equals("all")) return all;
        Set<String> want = new LinkedHashSet<>();
        for (String s : spec.split(",")) if (!s.isBlank()) want.add(s.strip());
        List<Core.Task> out = new ArrayList<>();
        for (Core.Task t : all) if (want.remove(t.label())) out.add(t);
        if (!want.isEmpty()) {
            throw new IllegalArgumentException("--tasks: no task " + String.join(", ", want) + " in the bundle (it has: "
                    + String.join(", ", all.stream().map(Core.Task::label).toList()) + "; or core, all, bpb, list)");
        }
        return out;
    }

    /** Bits per byte over --val_max_steps batches of the validation shards, as training's validation reads them. */
    private double bitsPerByte(Gpt2 m, PrintWriter out) {
        int T = seqLen > 0 ? seqLen : m.config().maxSeqLen();
        if (T > m.config().maxSeqLen()) throw new IllegalArgumentException("--sequence_length " + T + " is over the model's block size "
                + m.config().maxSeqLen());
        int B = batchSize;
        int[] in = new int[B * T], tg = new int[B * T];
        Bpb.Sums sums;
        try (DataLoader val = new DataLoader(inputValBin, B, T, 0, 1, m.config().vocabSize())) {
            sums = Bpb.over(m, val, in, tg, B, T, valMaxSteps);
        }
        double nats = sums.meanLosses() * B * T;
        long bytes = sums.bytes();
        double bits = Bpb.of(nats, bytes);
        out.printf(Locale.ROOT, "val bpb %.4f (%,d tokens, %,d bytes, loss %.4f nats per token) from %s%n", bits,
                (long) valMaxSteps * B * T, bytes, nats / ((double) valMaxSteps * B * T), inputValBin);
        return bits;
    }

    private static void write(Path f, String text) {
        try {
            Files.writeString(f, text);
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot write (" + e.getMessage() + ")", e);
        }
    }
}
