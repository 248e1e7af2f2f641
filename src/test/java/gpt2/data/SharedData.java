package gpt2.data;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/** The team's data beside the checkout (../shared/data), present in CI; absent in a user's clone. */
public final class SharedData {
    private SharedData() {
    }

    public static final Path ROOT = Path.of("..", "shared", "data").toAbsolutePath().normalize();

    /** The file, or the test is skipped with a message saying what is missing. */
    public static Path require(String relative) {
        Path p = ROOT.resolve(relative);
        if (!Files.isRegularFile(p)) {
            System.out.println("SKIPPED: " + p + " is absent (team data beside the checkout; present in CI)");
        }
        Assumptions.assumeTrue(Files.isRegularFile(p), p + " is absent; the test runs in CI where ../shared exists");
        return p;
    }
}
