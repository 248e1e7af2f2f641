package gpt2.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.backend.Backend;
import gpt2.eval.HellaSwag;
import gpt2.model.Gpt2;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "hellaswag", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Score checkpoints on HellaSwag (completion style: acc and acc_norm).",
                "Example: gpt2 hellaswag --model runs/d12/checkpoint_00005000 runs/d12/checkpoint_00010000"})
final class HellaSwagCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, arity = "1..*", paramLabel = "CKPT",
            description = "One or more checkpoint directories, run folders (their newest valid checkpoint), llm.c model "
                    + "files or Hugging Face folders (a preset means untrained weights).")
    List<String> models;

    @Option(names = {"--all_checkpoints", "--all-checkpoints"}, defaultValue = "0", paramLabel = "0|1",
            description = "1: every valid checkpoint of each run folder, oldest first (default: ${DEFAULT-VALUE}: the newest).")
    int allCheckpoints;

    static final String DEFAULT_INPUT = "data/hellaswag/hellaswag_val.jsonl";

    @Option(names = "--input", defaultValue = DEFAULT_INPUT, paramLabel = "FILE",
            description = "HellaSwag JSONL, made by 'gpt2 prepare hellaswag' (default: ${DEFAULT-VALUE}).")
    Path input;

    @Option(names = "--limit", defaultValue = "0", paramLabel = "N", description = "Only the first N examples; 0 = all (default: ${DEFAULT-VALUE}).")
    int limit;

    @Option(names = "--batch", defaultValue = "4", paramLabel = "N", description = "Examples per forward pass, 4 rows each (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--verbose", defaultValue = "0", paramLabel = "N", description = "Print the first N examples in detail (default: ${DEFAULT-VALUE}).")
    int verbose;

    @Mixin
    DeviceOptions dev;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        dev.check();
        if (!java.nio.file.Files.exists(input)) throw new IllegalArgumentException(missingInput(input));
        List<HellaSwag.Example> examples = HellaSwag.load(input, limit);
        PrintStream log = new PrintStream(new WriterStream(out), true, StandardCharsets.UTF_8);
        boolean all = ModelOptions.flag("--all_checkpoints", allCheckpoints);
        // run folders become their checkpoints, each verified once
        List<ModelSource.Resolved> expanded = new java.util.ArrayList<>();
        for (String model : models) {
            List<gpt2.train.Checkpoint.Found> cps = ModelSource.runCheckpoints(model, all);
            if (cps == null) expanded.add(ModelSource.resolve(model, out));
            else for (gpt2.train.Checkpoint.Found c : cps) expanded.add(ModelSource.of(c));
        }
        try (Backend be = dev.backend(false)) {
            for (ModelSource.Resolved model : expanded) {
                try (Gpt2 m = ModelSource.load(model, be, out)) {
                    HellaSwag.Result r = HellaSwag.evaluate(m, examples, batch, verbose, log);
                    log.flush();
                    out.printf("%s: %s%n", model.name(), r.line());
                    if (ModelSource.isCheckpoint(model.name())) out.printf("wrote %s%n", write(Path.of(model.name()), r));
                    out.flush();
                }
            }
        }
        return 0;
    }

    /** The one-line error for an --input that is not there: how to make it. */
    private static String missingInput(Path input) {
        String head = "--input " + input + ": no such file; run 'gpt2 prepare hellaswag";
        if (input.equals(Path.of(DEFAULT_INPUT))) return head + "' first";
        if (input.getFileName().toString().equals(gpt2.data.HellaSwagData.FILE)) {
            return head + " --output_dir " + (input.getParent() == null ? "." : input.getParent()) + "' first";
        }
        return head + "' first (it writes " + DEFAULT_INPUT + ", the default --input)";
    }

    private Path write(Path checkpoint, HellaSwag.Result r) {
        ObjectNode o = new ObjectMapper().createObjectNode();
        o.put("input", input.toString()).put("examples", r.examples()).put("acc", r.acc()).put("acc_norm", r.accNorm());
        Path f = checkpoint.resolve("hellaswag.json");
        try {
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(f.toFile(), o);
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
        return f;
    }
}
