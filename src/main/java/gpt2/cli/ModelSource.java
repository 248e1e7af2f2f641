package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.Checkpoint;
import gpt2.train.ModelFiles;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A model named on the command line (--model, --from): a checkpoint directory, a run folder (its
 * newest valid checkpoint), an llm.c model file, a Hugging Face folder, or a preset with untrained
 * weights.
 */
final class ModelSource {
    private ModelSource() {
    }

    static boolean isCheckpoint(String model) {
        Path p = Path.of(model);
        return Files.isDirectory(p) && Files.exists(p.resolve(Checkpoint.STATE));
    }

    /**
     * --model resolved once: a run folder becomes its newest valid checkpoint (said on {@code out}),
     * weights on disk are opened (format detected, configuration read, checksums verified); a name
     * that is no file stays a preset ({@code weights} null). Every command takes its model from here.
     */
    record Resolved(String name, ModelFiles.Source weights) {
        /** The configuration: the weights' own, or the preset with the overrides. */
        GptConfig config(ModelOptions options) {
            return weights == null ? options.config() : options.applyTo(weights.config());
        }

        Path path() {
            return weights == null ? null : weights.path();
        }
    }

    static Resolved resolve(String model, PrintWriter out) {
        return resolve(model, "--model", out);
    }

    /** As {@link #resolve(String, PrintWriter)} for a value of {@code flag} (named in messages). */
    static Resolved resolve(String model, String flag, PrintWriter out) {
        String name = model;
        List<Path> cps = runCheckpoints(model, false);
        if (cps != null) {
            out.printf("%s %s: a run folder; using its newest valid checkpoint, %s%n", flag, model, cps.getFirst().getFileName());
            name = cps.getFirst().toString();
        }
        Path p = Path.of(name);
        if (ModelFiles.detect(p) != null) return new Resolved(name, ModelFiles.open(p));
        if (Files.exists(p)) {
            throw new IllegalArgumentException(flag + " " + model + ": not a model (a checkpoint directory, run folder "
                    + "with checkpoint_NNNNNNNN inside, llm.c model file or Hugging Face folder)");
        }
        if (name.contains("/") || name.startsWith(".")) {
            throw new IllegalArgumentException(flag + " " + model + ": no such file or folder (and not a preset name)");
        }
        GptConfig.preset(name); // an unknown preset is refused here, by name
        return new Resolved(name, null);
    }

    /**
     * The valid checkpoints of a run folder: all, oldest first, or only the newest; null when
     * {@code model} is not a run folder. A run folder whose checkpoints all fail to verify is refused.
     */
    static List<Path> runCheckpoints(String model, boolean all) {
        Path p = Path.of(model);
        if (!Files.isDirectory(p) || ModelFiles.detect(p) != null) return null;
        List<Checkpoint.Found> found = Checkpoint.scan(p);
        if (found.isEmpty()) return null;
        List<Path> valid = found.stream().filter(Checkpoint.Found::valid).map(Checkpoint.Found::dir).toList();
        if (valid.isEmpty()) {
            StringBuilder why = new StringBuilder("--model " + model + ": a run folder with no valid checkpoint:");
            for (Checkpoint.Found f : found) why.append(' ').append(f.dir().getFileName()).append(" (").append(f.problem()).append(')');
            throw new IllegalArgumentException(why.toString());
        }
        return all ? valid.reversed() : List.of(valid.getFirst());
    }

    /**
     * Loads the model: weights from disk, or for a preset seed-42 random weights and a note saying so.
     */
    static Gpt2 load(String model, Backend backend, PrintWriter out) {
        Resolved r = resolve(model, out);
        if (r.weights() != null) {
            Gpt2 m = new Gpt2(r.weights().config(), backend);
            r.weights().loadInto(m);
            return m;
        }
        GptConfig cfg = GptConfig.preset(r.name());
        out.printf("note: --model %s is a preset: untrained random weights%n", r.name());
        Gpt2 m = new Gpt2(cfg, backend);
        m.initialize(42);
        return m;
    }
}
