package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.Checkpoint;
import gpt2.train.ModelFiles;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;

/** A model named on the command line: a checkpoint directory, or a preset with untrained weights. */
final class ModelSource {
    private ModelSource() {
    }

    static boolean isCheckpoint(String model) {
        Path p = Path.of(model);
        return Files.isDirectory(p) && Files.exists(p.resolve(Checkpoint.STATE));
    }

    /**
     * --model as weights on disk (our checkpoint, llm.c model file, Hugging Face folder), or null
     * when it names no file (a preset); a file of another kind is an error.
     */
    static Path weights(String model) {
        Path p = Path.of(model);
        if (ModelFiles.detect(p) != null) return p;
        if (Files.exists(p)) {
            throw new IllegalArgumentException("--model " + model + ": not a checkpoint directory, llm.c model file or "
                    + "Hugging Face folder");
        }
        return null;
    }

    /**
     * Loads the model: our checkpoint, an llm.c model file or a Hugging Face GPT-2 folder; a preset
     * gets seed-42 random weights and a note saying so.
     */
    static Gpt2 load(String model, Backend backend, PrintWriter out) {
        Path path = weights(model);
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
