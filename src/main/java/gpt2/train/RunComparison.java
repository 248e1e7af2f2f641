package gpt2.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Validation curves of training runs (their metrics.jsonl) against tokens seen, and how many tokens
 * one run needs to reach another's final validation loss: the measure of a training recipe.
 * <pre>
 * baseline: (t0, v0) ... (T, v_final)        candidate: (t0, w0) ... crosses v_final between two
 * evaluations -> linear interpolation gives t*; ratio = t* / T   (> 1 or "not reached" otherwise)
 * </pre>
 */
public final class RunComparison {
    private RunComparison() {
    }

    /** One run's curves: train loss per step and validation loss per evaluation, both against tokens. */
    public record Curves(Path run, long tokensPerStep, double[] trainTokens, double[] trainLoss, double[] valTokens,
                         double[] valLoss) {
        public String name() {
            return run.toAbsolutePath().normalize().getFileName().toString();
        }

        public double finalValLoss() {
            return valLoss[valLoss.length - 1];
        }

        public double finalTokens() {
            return valTokens[valTokens.length - 1];
        }
    }

    /** Reads a run folder's metrics.jsonl; an error names the file when it has no validation losses. */
    public static Curves read(Path run) {
        Path metrics = run.resolve(RunLog.METRICS);
        List<double[]> train = new ArrayList<>(), val = new ArrayList<>();
        long perStep = 0;
        for (JsonNode r : readMetrics(run)) {
            int step = r.path("step").asInt();
            if (r.has("loss") && r.has("tokens") && step > 0) {
                perStep = r.get("tokens").asLong() / step;
                train.add(new double[]{step, r.get("loss").asDouble()});
            }
            if (r.has("val_loss")) val.add(new double[]{step, r.get("val_loss").asDouble()});
        }
        if (val.isEmpty()) throw new IllegalArgumentException(metrics + ": no validation losses (train with --val_loss_every N)");
        if (perStep == 0) throw new IllegalArgumentException(metrics + ": no training steps with a token count");
        return new Curves(run, perStep, column(train, 0, perStep), column(train, 1, 1), column(val, 0, perStep),
                column(val, 1, 1));
    }

    /**
     * The records of a run folder's metrics.jsonl, in order; an error names the folder when there is
     * none and the line when one is not JSON.
     */
    static List<JsonNode> readMetrics(Path run) {
        Path metrics = run.resolve(RunLog.METRICS);
        if (!Files.isRegularFile(metrics)) {
            throw new IllegalArgumentException(run + ": no " + RunLog.METRICS + " (is this a run directory made by 'gpt2 train --output_dir'?)");
        }
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> out = new ArrayList<>();
        try {
            int n = 0;
            for (String line : Files.readAllLines(metrics, StandardCharsets.UTF_8)) {
                n++;
                if (line.isBlank()) continue;
                try {
                    out.add(json.readTree(line));
                } catch (IOException e) {
                    throw new IllegalArgumentException(metrics + ": line " + n + " is not JSON");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(metrics + ": " + e.getMessage(), e);
        }
        return out;
    }

    private static double[] column(List<double[]> rows, int c, double scale) {
        double[] out = new double[rows.size()];
        for (int i = 0; i < out.length; i++) out[i] = rows.get(i)[c] * scale;
        return out;
    }

    /**
     * Tokens at which the validation curve (tokens, loss) first reaches {@code target}, linearly
     * interpolated between the two evaluations around the crossing; NaN when it never does.
     */
    public static double tokensToReach(double[] tokens, double[] loss, double target) {
        for (int i = 0; i < loss.length; i++) {
            if (loss[i] <= target) {
                if (i == 0) return tokens[0];
                double f = (loss[i - 1] - target) / (loss[i - 1] - loss[i]);
                return tokens[i - 1] + f * (tokens[i] - tokens[i - 1]);
            }
        }
        return Double.NaN;
    }

    /** tokens the candidate needs for the baseline's final validation loss / the baseline's tokens; NaN if never. */
    public static double tokenRatio(Curves baseline, Curves candidate) {
        return tokensToReach(candidate.valTokens(), candidate.valLoss(), baseline.finalValLoss()) / baseline.finalTokens();
    }

    /** The line a comparison prints for one candidate. */
    public static String describe(Curves baseline, Curves candidate) {
        double t = tokensToReach(candidate.valTokens(), candidate.valLoss(), baseline.finalValLoss());
        if (Double.isNaN(t)) {
            return String.format("%s does not reach %s's final val loss %.4f within %,.0f tokens (its best: %.4f)",
                    candidate.name(), baseline.name(), baseline.finalValLoss(), candidate.finalTokens(),
                    java.util.Arrays.stream(candidate.valLoss()).min().orElse(Double.NaN));
        }
        return String.format("%s reaches %s's final val loss %.4f at %,.0f tokens: %.3f of %s's %,.0f tokens"
                        + " (its own final val loss %.4f)", candidate.name(), baseline.name(), baseline.finalValLoss(), t,
                t / baseline.finalTokens(), baseline.name(), baseline.finalTokens(), candidate.finalValLoss());
    }

    /** The validation curves side by side, one row per number of tokens any run was evaluated at. */
    public static String table(List<Curves> runs) {
        java.util.TreeSet<Double> tokens = new java.util.TreeSet<>();
        for (Curves c : runs) for (double t : c.valTokens()) tokens.add(t);
        StringBuilder sb = new StringBuilder(String.format("%12s", "tokens"));
        for (Curves c : runs) sb.append(String.format(" | %12s", c.name()));
        sb.append('\n');
        for (double t : tokens) {
            sb.append(String.format("%,12.0f", t));
            for (Curves c : runs) {
                int i = java.util.Arrays.binarySearch(c.valTokens(), t);
                sb.append(i >= 0 ? String.format(" | %12.4f", c.valLoss()[i]) : String.format(" | %12s", "-"));
            }
            sb.append('\n');
        }
        return sb.toString();
    }
}
