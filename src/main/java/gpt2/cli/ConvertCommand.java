package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.ModelFiles;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "convert", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Convert model weights between our checkpoints, llm.c model files and Hugging Face GPT-2 folders.",
                "Example: gpt2 convert --from ./gpt2-hf --to gpt2_124M.bin --format llmc"})
final class ConvertCommand implements Callable<Integer> {

    @Option(names = "--from", required = true, paramLabel = "PATH",
            description = "A checkpoint directory, a run folder (its newest valid checkpoint), an llm.c .bin file or a "
                    + "Hugging Face folder (detected).")
    Path from;

    @Option(names = "--to", required = true, paramLabel = "PATH", description = "Where to write.")
    Path to;

    @Option(names = "--format", paramLabel = "ours|llmc|hf",
            description = "Output format (default: llmc when --to ends in .bin, else required).")
    String format;

    @Option(names = "--dtype", defaultValue = "float32", paramLabel = "float32|bfloat16",
            description = "Stored precision for llmc and hf (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--overwrite", defaultValue = "0", paramLabel = "0|1",
            description = "1: an existing --to (file or non-empty folder) is moved aside to PATH.old-N once the new one "
                    + "is written (nothing is deleted); 0: it is refused (default: ${DEFAULT-VALUE}).")
    int overwrite;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        ModelFiles.Format f = outputFormat();
        if (!dtype.equals("float32") && !dtype.equals("bfloat16")) {
            throw new IllegalArgumentException("--dtype " + dtype + ": expected float32 or bfloat16");
        }
        if (to.toAbsolutePath().normalize().equals(from.toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("--to is the same path as --from");
        }
        if (!java.nio.file.Files.exists(from)) throw new IllegalArgumentException("--from " + from + ": no such file or folder");
        ModelFiles.Source source = ModelSource.resolve(from.toString(), "--from", spec.commandLine().getOut()).weights();
        from = source.path();
        GptConfig cfg = source.config();
        OutputPath target = OutputPath.check("--to", to, from, ModelOptions.flag("--overwrite", overwrite));
        try (Backend be = Backends.create("cpu", 0, false); Gpt2 m = new Gpt2(cfg, be)) {
            source.loadInto(m);
            target.write(tmp -> ModelFiles.export(m, tmp, f, dtype.equals("bfloat16")));
        }
        spec.commandLine().getOut().printf("%s (%s, %,d parameters) -> %s (%s, %s)%n", from, source.format(),
                cfg.parameterCount(), to, f, dtype);
        if (target.movedAside() != null) {
            spec.commandLine().getOut().printf("--overwrite 1: what was at %s is now at %s%n", to, target.movedAside());
        }
        return 0;
    }

    private ModelFiles.Format outputFormat() {
        if (format == null) {
            if (to.getFileName().toString().endsWith(".bin")) return ModelFiles.Format.LLMC;
            throw new IllegalArgumentException("--format is needed (ours, llmc or hf) unless --to ends in .bin");
        }
        return switch (format) {
            case "ours" -> ModelFiles.Format.OURS;
            case "llmc" -> ModelFiles.Format.LLMC;
            case "hf" -> ModelFiles.Format.HF;
            default -> throw new IllegalArgumentException("--format " + format + ": expected ours, llmc or hf");
        };
    }
}
