package gpt2.eval;

import com.fasterxml.jackson.databind.JsonNode;
import gpt2.data.Tokenizer;
import gpt2.model.Gpt2;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The CORE metric (DCLM, arXiv 2406.11794) as nanochat scores it: in-context tasks of three types,
 * each example rendered with its few-shot examples into one prompt per option, an end-of-text token
 * first, and scored by the model's losses over the part the options differ in.
 *
 * <ul>
 *   <li><b>multiple choice</b> (the same context, different continuations): the option whose tokens
 *       after the options' common prefix have the lowest mean loss wins;</li>
 *   <li><b>schema</b> (different contexts, the same continuation): the option whose common suffix
 *       has the lowest mean loss wins;</li>
 *   <li><b>language modelling</b>: right when the model's greedy prediction is the continuation at
 *       every one of its tokens.</li>
 * </ul>
 * Prompts: each few-shot example as context, delimiter, gold answer and a blank line; the item
 * last. Language-modelling contexts are trimmed and the prompt without the continuation stripped.
 * A task's examples are shuffled with seed 1337 (before {@code max_per_task} keeps the first ones)
 * and example i's few-shot examples drawn with seed 1234 + i among the others ({@link PyRandom}:
 * Python's generator, so the draws are nanochat's). A sequence longer than the block size keeps
 * its last block-size tokens. Accuracy is centered on the task's random baseline b (percent):
 * (acc - b/100) / (1 - b/100); CORE is the mean of the centered accuracies.
 */
public final class Core {
    private Core() {
    }

    public enum Type {
        MULTIPLE_CHOICE("multiple_choice"), SCHEMA("schema"), LANGUAGE_MODELING("language_modeling");

        public final String yaml;

        Type(String yaml) {
            this.yaml = yaml;
        }

        public static Type of(String s) {
            for (Type t : values()) if (t.yaml.equals(s)) return t;
            return null;
        }
    }

    /**
     * What scoring needs of a model: one forward pass over B x T tokens with targets (-1: none), then
     * the per-position losses and the logits at a position. {@link #of(Gpt2)} adapts the model;
     * tests give stand-ins with known preferences.
     */
    public interface Lm {
        int vocabSize();

        int maxSeqLen();

        /** Runs the model; {@code targets} null when only logits are needed. */
        void forward(int[] inputs, int[] targets, int B, int T);

        float[] positionLosses();

        float[] logits(int b, int t);

        static Lm of(Gpt2 model) {
            return new Lm() {
                public int vocabSize() {
                    return model.config().vocabSize();
                }

                public int maxSeqLen() {
                    return model.config().maxSeqLen();
                }

                public void forward(int[] inputs, int[] targets, int B, int T) {
                    model.forward(inputs, targets, B, T, -1);
                }

                public float[] positionLosses() {
                    return model.positionLosses();
                }

                public float[] logits(int b, int t) {
                    return model.logits(b, t);
                }
            };
        }
    }

    /** A task of the bundle: its examples (in the file's order) and how to render and score them. */
    public record Task(String label, Type type, int shots, String delimiter, double baselinePercent, String file,
                       List<JsonNode> data) {
    }

    /** One example's rows: tokens (end-of-text first), the scored span [start, end) of each, the gold option. */
    public record Rows(int[][] tokens, int[] start, int[] end, int gold) {
    }

    public record Result(String label, Type type, int shots, int examples, int correct, double baselinePercent, double seconds) {
        public double accuracy() {
            return examples == 0 ? 0 : (double) correct / examples;
        }

        public double centered() {
            double b = baselinePercent / 100;
            return (accuracy() - b) / (1 - b);
        }

        public String line() {
            return String.format(java.util.Locale.ROOT, "%-34s %2d-shot %-17s %6d examples | accuracy %.4f | centered %7.4f | %.1f s",
                    label, shots, type.yaml, examples, accuracy(), centered(), seconds);
        }
    }

    /** The CORE metric: the mean of the tasks' centered accuracies. */
    public static double metric(List<Result> results) {
        return results.stream().mapToDouble(Result::centered).average().orElse(Double.NaN);
    }

    // ------------------------------------------------------------------ rendering

    /** The examples in the order they are scored: shuffled with seed 1337, the first maxPerTask kept (all when <= 0). */
    public static List<JsonNode> examples(Task t, int maxPerTask) {
        List<JsonNode> data = new ArrayList<>(t.data());
        new PyRandom(1337).shuffle(data);
        return maxPerTask > 0 && data.size() > maxPerTask ? new ArrayList<>(data.subList(0, maxPerTask)) : data;
    }

    /** Example idx's few-shot examples: drawn with seed 1234 + idx among the others, never itself. */
    public static List<JsonNode> fewshot(List<JsonNode> data, int idx, int shots) {
        if (shots <= 0) return List.of();
        List<Integer> others = new ArrayList<>(data.size() - 1);
        for (int i = 0; i < data.size(); i++) if (i != idx) others.add(i);
        if (shots > others.size()) {
            throw new IllegalArgumentException(shots + "-shot needs at least " + (shots + 1) + " examples, the task has " + data.size());
        }
        List<JsonNode> out = new ArrayList<>(shots);
        for (int i : new PyRandom(1234L + idx).sample(others, shots)) out.add(data.get(i));
        return out;
    }

    /** The prompts of one item: one per option (multiple choice, schema), or without and with the continuation. */
    public static List<String> prompts(Type type, String delim, JsonNode item, List<JsonNode> shots) {
        StringBuilder prefix = new StringBuilder();
        List<String> out = new ArrayList<>();
        switch (type) {
            case MULTIPLE_CHOICE -> {
                for (JsonNode e : shots) {
                    prefix.append(e.get("query").asText()).append(delim)
                            .append(e.get("choices").get(e.get("gold").asInt()).asText()).append("\n\n");
                }
                String query = item.get("query").asText();
                for (JsonNode c : item.get("choices")) out.add(prefix + query + delim + c.asText());
            }
            case SCHEMA -> {
                for (JsonNode e : shots) {
                    prefix.append(e.get("context_options").get(e.get("gold").asInt()).asText()).append(delim)
                            .append(e.get("continuation").asText()).append("\n\n");
                }
                String continuation = item.get("continuation").asText();
                for (JsonNode c : item.get("context_options")) out.add(prefix + c.asText() + delim + continuation);
            }
            case LANGUAGE_MODELING -> {
                for (JsonNode e : shots) {
                    prefix.append(pyStrip(e.get("context").asText())).append(delim).append(e.get("continuation").asText())
                            .append("\n\n");
                }
                String without = prefix + pyStrip(item.get("context").asText()) + delim;
                out.add(pyStrip(without));
                out.add(without + item.get("continuation").asText());
            }
        }
        return out;
    }

    /** The item's rows and scored spans (see the class comment), an end-of-text token first. */
    public static Rows rows(Type type, List<String> prompts, int gold, Tokenizer tok) {
        return rows(type, prompts, gold, tok, true);
    }

    /** As {@link #rows(Type, List, int, Tokenizer)}; without the leading end-of-text token for comparisons with llm.c's HellaSwag. */
    static Rows rows(Type type, List<String> prompts, int gold, Tokenizer tok, boolean leadingEot) {
        int lead = leadingEot ? 1 : 0;
        int[][] tokens = new int[prompts.size()][];
        for (int i = 0; i < tokens.length; i++) {
            int[] body = tok.encode(prompts.get(i));
            tokens[i] = new int[body.length + lead];
            if (leadingEot) tokens[i][0] = Tokenizer.EOT;
            System.arraycopy(body, 0, tokens[i], lead, body.length);
        }
        int n = tokens.length;
        int[] start = new int[n], end = new int[n];
        switch (type) {
            case MULTIPLE_CHOICE -> {
                int common = commonLength(tokens, true);
                for (int i = 0; i < n; i++) {
                    start[i] = common;
                    end[i] = tokens[i].length;
                }
            }
            case SCHEMA -> {
                int suffix = commonLength(tokens, false);
                for (int i = 0; i < n; i++) {
                    end[i] = tokens[i].length;
                    start[i] = end[i] - suffix;
                }
            }
            case LANGUAGE_MODELING -> {
                int[] without = tokens[0], with = tokens[1];
                if (without.length >= with.length || !Arrays.equals(without, 0, without.length, with, 0, without.length)) {
                    throw new IllegalArgumentException("the prompt without its continuation does not tokenize to a prefix of the "
                            + "prompt with it");
                }
                return new Rows(new int[][]{with}, new int[]{without.length}, new int[]{with.length}, 0);
            }
        }
        return new Rows(tokens, start, end, gold);
    }

    /** Rows longer than maxT keep their last maxT tokens, their spans moved with them (nanochat's left truncation). */
    public static Rows crop(Rows r, int maxT) {
        int n = r.tokens().length;
        int[][] t = new int[n][];
        int[] s = r.start().clone(), e = r.end().clone();
        for (int i = 0; i < n; i++) {
            int cut = Math.max(0, r.tokens()[i].length - maxT);
            t[i] = cut == 0 ? r.tokens()[i] : Arrays.copyOfRange(r.tokens()[i], cut, r.tokens()[i].length);
            s[i] -= cut;
            e[i] -= cut;
            if (s[i] < 1) {
                throw new IllegalArgumentException("the scored tokens alone (" + (r.end()[i] - r.start()[i]) + ") do not fit the block size "
                        + maxT);
            }
        }
        return new Rows(t, s, e, r.gold());
    }

    /** Length of the common prefix (left) or suffix of the rows. */
    static int commonLength(int[][] rows, boolean left) {
        int min = Integer.MAX_VALUE;
        for (int[] r : rows) min = Math.min(min, r.length);
        for (int i = 0; i < min; i++) {
            int first = left ? rows[0][i] : rows[0][rows[0].length - 1 - i];
            for (int[] r : rows) {
                if ((left ? r[i] : r[r.length - 1 - i]) != first) return i;
            }
        }
        return min;
    }

    /** Python's str.strip(): its whitespace is Java's plus the no-break spaces and NEL. */
    static String pyStrip(String s) {
        int a = 0, b = s.length();
        while (a < b && pySpace(s.charAt(a))) a++;
        while (b > a && pySpace(s.charAt(b - 1))) b--;
        return s.substring(a, b);
    }

    private static boolean pySpace(char c) {
        return Character.isWhitespace(c) || c == '\u00a0' || c == '\u2007' || c == '\u202f' || c == '\u0085';
    }

    // ------------------------------------------------------------------ scoring

    /** Scores a task: {@code rowsPerPass} rows (options) per forward pass at most; progress to {@code progress} (may be null). */
    public static Result evaluate(Gpt2 model, Task task, int maxPerTask, int rowsPerPass, java.util.function.IntConsumer progress) {
        return evaluate(Lm.of(model), task, maxPerTask, rowsPerPass, progress, true);
    }

    static Result evaluate(Lm model, Task task, int maxPerTask, int rowsPerPass, java.util.function.IntConsumer progress,
                           boolean leadingEot) {
        if (rowsPerPass < 1) throw new IllegalArgumentException("--batch_rows must be >= 1, got " + rowsPerPass);
        long t0 = System.nanoTime();
        Tokenizer tok = Tokenizer.gpt2();
        int maxT = model.maxSeqLen();
        List<JsonNode> data = examples(task, maxPerTask);
        List<Rows> pending = new ArrayList<>();
        int pendingRows = 0, correct = 0;
        for (int idx = 0; idx < data.size(); idx++) {
            JsonNode item = data.get(idx);
            Rows r;
            try {
                List<String> prompts = prompts(task.type(), task.delimiter(), item, fewshot(data, idx, task.shots()));
                r = crop(rows(task.type(), prompts, item.path("gold").asInt(0), tok, leadingEot), maxT);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(task.label() + " (" + task.file() + "), example " + idx + " after the shuffle: "
                        + e.getMessage());
            }
            if (pendingRows > 0 && pendingRows + r.tokens().length > rowsPerPass) {
                correct += score(model, task.type(), pending);
                if (progress != null) progress.accept(pending.size());
                pending.clear();
                pendingRows = 0;
            }
            pending.add(r);
            pendingRows += r.tokens().length;
        }
        if (!pending.isEmpty()) {
            correct += score(model, task.type(), pending);
            if (progress != null) progress.accept(pending.size());
        }
        return new Result(task.label(), task.type(), task.shots(), data.size(), correct, task.baselinePercent(),
                (System.nanoTime() - t0) / 1e9);
    }

    /** One forward pass over the examples' rows (padded to the longest); how many are right. */
    static int score(Lm model, Type type, List<Rows> examples) {
        int B = 0;
        for (Rows r : examples) B += r.tokens().length;
        int[][] rows = new int[B][];
        int[] start = new int[B], end = new int[B];
        int row = 0;
        for (Rows r : examples) {
            for (int i = 0; i < r.tokens().length; i++, row++) {
                rows[row] = r.tokens()[i];
                start[row] = r.start()[i];
                end[row] = r.end()[i];
            }
        }
        boolean lm = type == Type.LANGUAGE_MODELING;
        double[][] sums = forwardSpans(model, rows, start, end, !lm);
        int correct = 0;
        row = 0;
        for (Rows r : examples) {
            if (lm) {
                boolean right = true;
                int[] t = r.tokens()[0];
                for (int j = r.start()[0] - 1; j < r.end()[0] - 1 && right; j++) right = argmax(model.logits(row, j)) == t[j + 1];
                if (right) correct++;
                row++;
                continue;
            }
            double best = Double.POSITIVE_INFINITY;
            int pick = -1;
            for (int i = 0; i < r.tokens().length; i++, row++) {
                double mean = sums[row][1] == 0 ? Double.POSITIVE_INFINITY : sums[row][0] / sums[row][1];
                if (pick < 0 || mean < best) {
                    best = mean;
                    pick = i;
                }
            }
            if (pick == r.gold()) correct++;
        }
        return correct;
    }

    /**
     * One forward pass over rows of tokens, each padded to the longest (its last token is only ever a
     * target), with targets at the positions that predict each row's tokens [start, end). With
     * {@code losses}: per row the summed loss over those tokens and their count; without: only the
     * forward pass (its logits are the model's to read), null. HellaSwag's completion scoring uses it too.
     */
    static double[][] forwardSpans(Lm model, int[][] rows, int[] start, int[] end, boolean losses) {
        int B = rows.length, longest = 2;
        for (int[] t : rows) longest = Math.max(longest, t.length);
        int T = longest - 1;
        int[] in = new int[B * T], tg = new int[B * T];
        Arrays.fill(in, Tokenizer.EOT < model.vocabSize() ? Tokenizer.EOT : 0); // padding: after every scored position
        Arrays.fill(tg, -1);
        for (int row = 0; row < B; row++) {
            int[] t = rows[row];
            System.arraycopy(t, 0, in, row * T, t.length - 1);
            for (int j = Math.max(0, start[row] - 1); j < end[row] - 1; j++) tg[row * T + j] = t[j + 1]; // a first token has no predictor
        }
        model.forward(in, losses ? tg : null, B, T);
        if (!losses) return null;
        float[] l = model.positionLosses();
        double[][] out = new double[B][2];
        for (int row = 0; row < B; row++) {
            for (int j = Math.max(0, start[row] - 1); j < end[row] - 1; j++) {
                out[row][0] += l[row * T + j];
                out[row][1]++;
            }
        }
        return out;
    }

    static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
