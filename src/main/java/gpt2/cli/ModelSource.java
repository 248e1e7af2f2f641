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
     * --model as weights on disk (our checkpoint, llm.c model file, Hugging Face folder), or null
     * when it names no file (a preset); a file of another kind is an error. A run folder must be
     * {@link #resolve resolved} first.
     */
    static Path weights(String model) {
        Path p = Path.of(model);
        if (ModelFiles.detect(p) != null) return p;
        if (Files.exists(p)) {
            throw new IllegalArgumentException("--model " + model + ": not a checkpoint directory, run folder (with "
                    + "checkpoint_NNNNNNNN inside), llm.c model file or Hugging Face folder");
        }
        return null;
    }

    /**
     * A run folder (an --output_dir with checkpoint_NNNNNNNN directories) becomes its newest valid
     * checkpoint, said in one line on {@code out}; any other name is returned as it is.
     */
    static String resolve(String model, PrintWriter out) {
        List<Path> cps = runCheckpoints(model, false);
        if (cps == null) return model;
        out.printf("--model %s: a run folder; using its newest valid checkpoint, %s%n", model, cps.getFirst().getFileName());
        return cps.getFirst().toString();
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
     * Loads the model: our checkpoint, an llm.c model file or a Hugging Face GPT-2 folder; a preset
     * gets seed-42 random weights and a note saying so.
     */
    static Gpt2 load(String model, Backend backend, PrintWriter out) {
        Path path = weights(resolve(model, out));
        if (path != null) {
            Gpt2 m = new Gpt2(ModelFiles.config(path), backend);
            ModelFiles.loadInto(path, m);
            return m;
        }
        GptConfig cfg = GptConfig.preset(model);
        out.printf("note: --model %s is a preset: untrained random weights%n", model);
        Gpt2 m = new Gpt2(cfg, backend);
        m.initialize(42);
        return m;
    }
}
