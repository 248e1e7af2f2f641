package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.Checkpoint;

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

    /** Loads the model; a preset gets seed-42 random weights and a note saying so. */
    static Gpt2 load(String model, Backend backend, PrintWriter out) {
        if (isCheckpoint(model)) {
            Path dir = Path.of(model);
            GptConfig cfg = Checkpoint.config(Checkpoint.readState(dir));
            Gpt2 m = new Gpt2(cfg, backend);
            Checkpoint.loadModel(dir, m);
            return m;
        }
        if (Files.exists(Path.of(model))) {
            throw new IllegalArgumentException("--model " + model + ": not a checkpoint directory (no " + Checkpoint.STATE + ")");
        }
        GptConfig cfg = GptConfig.preset(model);
        out.printf("note: --model %s is a preset: untrained random weights%n", model);
        Gpt2 m = new Gpt2(cfg, backend);
        m.initialize(42);
        return m;
    }
}
