package gpt2.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import gpt2.data.Progress;
import gpt2.data.Tokenizer;
import gpt2.model.Gpt2;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Completion-style HellaSwag scoring, as the original and llm.c: each of the four endings is
 * appended to the context (" " + ending), the model's loss is summed over the ending's tokens only;
 * {@code acc} picks the ending with the lowest sum, {@code acc_norm} the lowest mean per token.
 *
 * <pre>
 * row i:    ctx tokens | ending_i tokens          (4 rows per example, padded to the longest)
 * targets:  -1 ...  -1 | next tokens of ending_i  (loss counted only there)
 * </pre>
 */
public final class HellaSwag {
    private HellaSwag() {
    }

    public record Example(String ctx, List<String> endings, int label) {
    }

    /** The four rows of an example: tokens and the mask of ending tokens (1) vs context (0). */
    public record Rendered(int[][] tokens, int[][] mask, int label) {
    }

    public record Result(int examples, int correct, int correctNorm) {
        public double acc() {
            return examples == 0 ? 0 : (double) correct / examples;
        }

        public double accNorm() {
            return examples == 0 ? 0 : (double) correctNorm / examples;
        }

        public String line() {
            return String.format("%d examples | acc %.4f | acc_norm %.4f", examples, acc(), accNorm());
        }
    }

    public static Rendered render(Example e, Tokenizer tok) {
        int[] ctx = tok.encode(e.ctx());
        int[][] tokens = new int[4][], mask = new int[4][];
        for (int i = 0; i < 4; i++) {
            int[] end = tok.encode(" " + e.endings().get(i));
            tokens[i] = new int[ctx.length + end.length];
            mask[i] = new int[ctx.length + end.length];
            System.arraycopy(ctx, 0, tokens[i], 0, ctx.length);
            System.arraycopy(end, 0, tokens[i], ctx.length, end.length);
            for (int j = ctx.length; j < mask[i].length; j++) mask[i][j] = 1;
        }
        return new Rendered(tokens, mask, e.label());
    }

    /** Examples of a HellaSwag JSONL file (the first {@code limit}, all when limit <= 0); bad lines name their number. */
    public static List<Example> load(Path file, int limit) {
        ObjectMapper json = new ObjectMapper();
        List<Example> out = new ArrayList<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read (" + e.getMessage() + ")");
        }
        for (int n = 0; n < lines.size() && (limit <= 0 || out.size() < limit); n++) {
            String line = lines.get(n);
            if (line.isBlank()) continue;
            String problem = gpt2.data.HellaSwagData.problem(json, line);
            if (problem != null) throw new IllegalArgumentException(file + ": line " + (n + 1) + ": " + problem);
            try {
                JsonNode node = json.readTree(line);
                List<String> endings = new ArrayList<>();
                node.get("endings").forEach(x -> endings.add(x.asText()));
                out.add(new Example(node.get("ctx").asText(), endings, node.get("label").asInt()));
            } catch (IOException e) {
                throw new IllegalArgumentException(file + ": line " + (n + 1) + ": not valid JSON");
            }
        }
        if (out.isEmpty()) throw new IllegalArgumentException(file + ": no examples");
        return out;
    }

    /**
     * Scores examples, {@code batch} examples (4 rows each) per forward pass; prints the first
     * {@code verbose} examples in detail to {@code log}.
     */
    public static Result evaluate(Gpt2 model, List<Example> examples, int batch, int verbose, PrintStream log) {
        if (batch < 1) throw new IllegalArgumentException("--batch must be >= 1, got " + batch);
        Tokenizer tok = Tokenizer.gpt2();
        int maxT = model.config().maxSeqLen();
        int correct = 0, correctNorm = 0, done = 0;
        try (Progress bar = new Progress("hellaswag", examples.size(), "examples")) {
            for (int start = 0; start < examples.size(); start += batch) {
                List<Example> chunk = examples.subList(start, Math.min(examples.size(), start + batch));
                List<Rendered> rendered = new ArrayList<>();
                for (Example e : chunk) rendered.add(fit(render(e, tok), maxT));
                // the ending's tokens are the scored span of each row: from the first masked token to the end
                int[][] rows = new int[4 * chunk.size()][];
                int[] from = new int[rows.length], end = new int[rows.length];
                for (int i = 0; i < chunk.size(); i++) {
                    for (int e = 0; e < 4; e++) {
                        int row = 4 * i + e;
                        int[] m = rendered.get(i).mask()[e];
                        rows[row] = rendered.get(i).tokens()[e];
                        end[row] = m.length;
                        from[row] = end[row];
                        while (from[row] > 0 && m[from[row] - 1] == 1) from[row]--;
                    }
                }
                double[][] sums = Core.forwardSpans(Core.Lm.of(model), rows, from, end, true);
                for (int i = 0; i < chunk.size(); i++) {
                    double[] sum = new double[4], avg = new double[4];
                    for (int e = 0; e < 4; e++) {
                        sum[e] = sums[4 * i + e][0];
                        avg[e] = sum[e] / Math.max(1, sums[4 * i + e][1]);
                    }
                    int pred = argmin(sum), predNorm = argmin(avg), label = chunk.get(i).label();
                    if (pred == label) correct++;
                    if (predNorm == label) correctNorm++;
                    done++;
                    if (done <= verbose && log != null) {
                        Example ex = chunk.get(i);
                        log.printf("---%nContext:%n %s%nEndings:%n", ex.ctx());
                        for (int e = 0; e < 4; e++) {
                            log.printf("%d (loss: %.4f) %s%n", e, avg[e], ex.endings().get(e));
                        }
                        log.printf("predicted: %d, actual: %d%n", predNorm, label);
                    }
                }
                bar.step(chunk.size());
                bar.extra(String.format("acc_norm %.4f", (double) correctNorm / done));
            }
        }
        return new Result(done, correct, correctNorm);
    }

    /** Drops leading context tokens so every row fits the block size + 1; the ending must fit. */
    static Rendered fit(Rendered r, int maxT) {
        int longest = 0;
        for (int[] row : r.tokens()) longest = Math.max(longest, row.length);
        int drop = longest - (maxT + 1);
        if (drop <= 0) return r;
        int[][] t = new int[4][], m = new int[4][];
        for (int e = 0; e < 4; e++) {
            if (r.mask()[e][drop - 1] == 1) { // a dropped token belongs to the ending
                throw new IllegalArgumentException("an ending alone is longer than the block size " + maxT);
            }
            t[e] = java.util.Arrays.copyOfRange(r.tokens()[e], drop, r.tokens()[e].length);
            m[e] = java.util.Arrays.copyOfRange(r.mask()[e], drop, r.mask()[e].length);
        }
        return new Rendered(t, m, r.label());
    }

    static int argmin(double[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) if (x[i] < x[best]) best = i;
        return best;
    }
}
