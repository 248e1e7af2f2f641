package gpt2.eval;

import java.nio.file.Path;

/** CoreTest's tiny eval bundle (three tasks, one per type) for tests in other packages. */
public final class CoreTestBundles {
    private CoreTestBundles() {
    }

    /** Writes it as DIR/eval_bundle.zip (with the top folder eval_bundle/, as the real one). */
    public static Path zip(Path dir) throws Exception {
        return CoreTest.zip(dir, CoreTest.files());
    }
}
