package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.Checkpoint;
import gpt2.train.ModelFiles;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
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
        List<Checkpoint.Found> newest = runCheckpoints(model, false);
        if (newest != null) {
            Checkpoint.Found f = newest.getFirst();
            out.printf("%s %s: a run folder; using its newest valid checkpoint, %s%n", flag, model, f.dir().getFileName());
            return of(f);
        }
        Path p = Path.of(model);
        if (ModelFiles.detect(p) != null) return new Resolved(model, ModelFiles.open(p));
        if (Files.exists(p)) {
            throw new IllegalArgumentException(flag + " " + model + ": not a model (a checkpoint directory, run folder "
                    + "with checkpoint_NNNNNNNN inside, llm.c model file or Hugging Face folder)");
        }
        if (!GptConfig.presetNames().contains(model)) { // one message for every command, whatever the name looks like
            throw new IllegalArgumentException(flag + " " + model + ": no such file or folder, and not a preset name (presets: "
                    + String.join(", ", GptConfig.presetNames()) + ")");
        }
        return new Resolved(model, null);
    }

    /** A checkpoint verified already: its state gives the configuration (nothing is read again). */
    static Resolved of(Checkpoint.Found f) {
        return new Resolved(f.dir().toString(), new ModelFiles.Source(f.dir(), ModelFiles.Format.OURS, Checkpoint.config(f.state()), f.state()));
    }

    /**
     * The valid checkpoints of a run folder: all, oldest first, or only the newest (the others are
     * then not read); null when {@code model} is not a run folder. A run folder whose checkpoints all
     * fail to verify is refused, each named.
     */
    static List<Checkpoint.Found> runCheckpoints(String model, boolean all) {
        Path p = Path.of(model);
        if (!Files.isDirectory(p) || ModelFiles.detect(p) != null) return null;
        List<Path> dirs = Checkpoint.directories(p);
        if (dirs.isEmpty()) return null;
        List<Checkpoint.Found> bad = new ArrayList<>(), valid = new ArrayList<>();
        if (all) {
            for (Path d : dirs.reversed()) {
                Checkpoint.Found f = Checkpoint.verify(d);
                (f.valid() ? valid : bad).add(f);
            }
        } else {
            Checkpoint.newestValid(p, bad::add).ifPresent(valid::add);
        }
        if (valid.isEmpty()) {
            throw new IllegalArgumentException("--model " + model + ": a run folder with no valid checkpoint: " + Checkpoint.problems(bad));
        }
        return valid;
    }

    /**
     * Loads the model: weights from disk, or for a preset seed-42 random weights and a note saying so.
     */
    static Gpt2 load(String model, Backend backend, PrintWriter out) {
        return load(resolve(model, out), backend, out);
    }

    static Gpt2 load(Resolved r, Backend backend, PrintWriter out) {
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
