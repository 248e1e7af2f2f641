package gpt2.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

public class RunComparisonTest {

    /** A run of {@code steps} steps of {@code perStep} tokens whose val loss is f(step), evaluated every 10 steps. */
    public static Path run(Path dir, String name, int steps, long perStep, java.util.function.IntToDoubleFunction val) throws Exception {
        Path run = Files.createDirectories(dir.resolve(name));
        StringBuilder sb = new StringBuilder();
        for (int s = 0; s <= steps; s++) {
            if (s > 0) sb.append("{\"step\":").append(s).append(",\"loss\":").append(val.applyAsDouble(s) - 0.1)
                    .append(",\"tokens\":").append(s * perStep).append("}\n");
            if (s % 10 == 0) sb.append("{\"step\":").append(s).append(",\"val_loss\":").append(val.applyAsDouble(s)).append("}\n");
        }
        Files.writeString(run.resolve(RunLog.METRICS), sb);
        return run;
    }

    @Test
    void interpolatesTheCrossingBetweenEvaluations() {
        double[] t = {0, 100, 200, 300}, v = {10, 8, 6, 4};
        assertEquals(150, RunComparison.tokensToReach(t, v, 7), 1e-9);
        assertEquals(300, RunComparison.tokensToReach(t, v, 4), 1e-9);
        assertEquals(0, RunComparison.tokensToReach(t, v, 11), 1e-9);
        assertTrue(Double.isNaN(RunComparison.tokensToReach(t, v, 3.9)));
        // the first crossing counts, even if the curve comes back up later
        assertEquals(50, RunComparison.tokensToReach(new double[]{0, 100, 200}, new double[]{6, 4, 7}, 5), 1e-9);
    }

    @Test
    void ratioOfTokensFromTwoRuns(@TempDir Path dir) throws Exception {
        // baseline: val 10 - s/10 -> 0 at step 100... final (s=100) 0.0; candidate twice as fast: 10 - s/5
        Path a = run(dir, "gpt2", 100, 512, s -> 10 - s / 10.0), b = run(dir, "modern", 100, 512, s -> 10 - s / 5.0);
        RunComparison.Curves ca = RunComparison.read(a), cb = RunComparison.read(b);
        assertEquals(512, ca.tokensPerStep());
        assertEquals(100 * 512, ca.finalTokens(), 1e-9);
        assertEquals(0.5, RunComparison.tokenRatio(ca, cb), 1e-9);
        assertTrue(RunComparison.describe(ca, cb).contains("0.500 of gpt2's 51,200 tokens"), RunComparison.describe(ca, cb));
        assertTrue(Double.isNaN(RunComparison.tokenRatio(cb, ca)));
        assertTrue(RunComparison.describe(cb, ca).contains("does not reach"), RunComparison.describe(cb, ca));
    }

    @Test
    void aRunWithoutValidationIsRefusedByName(@TempDir Path dir) throws Exception {
        Path r = Files.createDirectories(dir.resolve("r"));
        Files.writeString(r.resolve(RunLog.METRICS), "{\"step\":1,\"loss\":3.0,\"tokens\":64}\n");
        var e = assertThrows(IllegalArgumentException.class, () -> RunComparison.read(r));
        assertTrue(e.getMessage().contains("no validation losses"), e.getMessage());
    }
}
