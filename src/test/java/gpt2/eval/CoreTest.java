package gpt2.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.data.Tokenizer;
import gpt2.model.GptConfig;
import gpt2.model.Gpt2;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 30: CORE's three task types, its bundle, its prompts, few-shot draws, truncation and centering. */
class CoreTest {
    static final Tokenizer TOK = Tokenizer.gpt2();
    static final ObjectMapper JSON = new ObjectMapper();

    static final String YAML = """
            icl_tasks:
            - label: mc_task
              dataset_uri: mc.jsonl
              num_fewshot: [2]
              icl_task_type: multiple_choice
              continuation_delimiter: "\\nAnswer: "
            - label: schema_task
              dataset_uri: schema.jsonl
              num_fewshot: [1]
              icl_task_type: schema
            - label: lm_task
              dataset_uri: lm.jsonl
              num_fewshot: [0]
              icl_task_type: language_modeling
            """;
    static final String CSV = """
            Eval Task,Task Category,Task Type,#shots,Random baseline,Centered Metric?,Description
            mc_task,commonsense,multiple choice,2,25,Yes,"A task, with commas, and ""quotes""\"
            schema_task,language,schema,1,50,Yes,"Two contexts,
            one continuation"
            lm_task,world knowledge,language modeling,0,0,Yes,Plain
            """;
    static final String[] WORDS = {"red", "green", "blue", "black", "white", "gold", "pink", "grey"};

    /** The files of a tiny bundle, path inside it to text. */
    static List<String[]> files() {
        List<String[]> f = new ArrayList<>();
        f.add(new String[]{"core.yaml", YAML});
        f.add(new String[]{"eval_meta_data.csv", CSV});
        StringBuilder mc = new StringBuilder(), schema = new StringBuilder(), lm = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            int gold = i % 4;
            List<String> choices = new ArrayList<>();
            for (int c = 0; c < 4; c++) choices.add(WORDS[(i + c) % WORDS.length]);
            mc.append(json("{\"query\": \"Question %d: which color is number %d?\", \"choices\": %s, \"gold\": %d}", i, i,
                    jsonList(choices), gold)).append('\n');
        }
        for (int i = 0; i < 4; i++) {
            schema.append(json("{\"context_options\": [\"The %s car\", \"The %s boat\"], \"continuation\": \"drove away.\", "
                    + "\"gold\": %d}", WORDS[i], WORDS[i + 1], i % 2)).append('\n');
            lm.append(json("{\"context\": \"  Count: %d, %d, \", \"continuation\": \"%d\"}", i, i + 1, i + 2)).append('\n');
        }
        f.add(new String[]{"eval_data/mc.jsonl", mc.toString()});
        f.add(new String[]{"eval_data/schema.jsonl", schema.toString()});
        f.add(new String[]{"eval_data/lm.jsonl", lm.toString()});
        return f;
    }

    private static String json(String fmt, Object... args) {
        return String.format(java.util.Locale.ROOT, fmt, args);
    }

    private static String jsonList(List<String> xs) {
        try {
            return JSON.writeValueAsString(xs);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    static Path folder(Path dir, List<String[]> files) throws Exception {
        Path root = dir.resolve("eval_bundle");
        for (String[] f : files) {
            Path p = root.resolve(f[0]);
            Files.createDirectories(p.getParent());
            Files.writeString(p, f[1]);
        }
        return dir;
    }

    static Path zip(Path dir, List<String[]> files) throws Exception {
        Path z = dir.resolve("eval_bundle.zip");
        try (ZipOutputStream out = new ZipOutputStream(Files.newOutputStream(z))) {
            for (String[] f : files) {
                out.putNextEntry(new ZipEntry("eval_bundle/" + f[0]));
                out.write(f[1].getBytes(java.nio.charset.StandardCharsets.UTF_8));
                out.closeEntry();
            }
        }
        return z;
    }

    static Core.Task task(List<Core.Task> tasks, String label) {
        return tasks.stream().filter(t -> t.label().equals(label)).findFirst().orElseThrow();
    }

    @Test
    void theBundleLoadsFromAFolderOrTheZip(@TempDir Path dir) throws Exception {
        for (Path b : List.of(folder(Files.createDirectories(dir.resolve("f")), files()), zip(dir, files()))) {
            List<Core.Task> tasks = CoreBundle.load(b);
            assertEquals(List.of("mc_task", "schema_task", "lm_task"), tasks.stream().map(Core.Task::label).toList(), b.toString());
            Core.Task mc = task(tasks, "mc_task");
            assertEquals(Core.Type.MULTIPLE_CHOICE, mc.type());
            assertEquals(2, mc.shots());
            assertEquals("\nAnswer: ", mc.delimiter());
            assertEquals(25.0, mc.baselinePercent());
            assertEquals(8, mc.data().size());
            assertEquals(" ", task(tasks, "schema_task").delimiter(), "the default delimiter is a space");
            assertEquals(50.0, task(tasks, "schema_task").baselinePercent(), "a quoted field with a newline in the CSV");
            assertEquals(Core.Type.LANGUAGE_MODELING, task(tasks, "lm_task").type());
        }
    }

    @Test
    void badRowsAndMissingFilesAreReportedByFileAndLineBeforeScoring(@TempDir Path dir) throws Exception {
        List<String[]> f = files();
        f.set(2, new String[]{"eval_data/mc.jsonl", f.get(2)[1] + "{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}\nnot json\n"
                + "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n"});
        f.removeIf(x -> x[0].equals("eval_data/lm.jsonl"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CoreBundle.load(zip(dir, f)));
        String m = e.getMessage();
        assertTrue(m.startsWith("4 problem(s) in the eval bundle, nothing scored"), m);
        assertTrue(m.contains("eval_bundle/eval_data/mc.jsonl:9: \"gold\" must be an index into \"choices\" (0..1), got "), m);
        assertTrue(m.contains("mc.jsonl:10: not JSON"), m);
        assertTrue(m.contains("mc.jsonl:11: \"gold\" must be an index into \"choices\" (0..1), got 2"), m);
        assertTrue(m.contains("eval_data/lm.jsonl: missing (task lm_task)"), m);
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> CoreBundle.load(dir.resolve("nope.zip")));
        assertTrue(none.getMessage().contains("no such folder or zip (get the bundle with: gpt2 prepare core)"), none.getMessage());
    }

    @Test
    void promptsAreRenderedAsNanochatRendersThem() throws Exception {
        JsonNode a = JSON.readTree("{\"query\": \"Q1\", \"choices\": [\"x\", \"y\"], \"gold\": 1}");
        JsonNode b = JSON.readTree("{\"query\": \"Q2\", \"choices\": [\"u\", \"v\"], \"gold\": 0}");
        JsonNode item = JSON.readTree("{\"query\": \"Q3\", \"choices\": [\"p\", \"q\"], \"gold\": 0}");
        assertEquals(List.of("Q1: y\n\nQ2: u\n\nQ3: p", "Q1: y\n\nQ2: u\n\nQ3: q"),
                Core.prompts(Core.Type.MULTIPLE_CHOICE, ": ", item, List.of(a, b)));
        JsonNode s1 = JSON.readTree("{\"context_options\": [\"C1\", \"C2\"], \"continuation\": \"end1\", \"gold\": 1}");
        JsonNode s2 = JSON.readTree("{\"context_options\": [\"D1\", \"D2\"], \"continuation\": \"end2\", \"gold\": 0}");
        assertEquals(List.of("C2 end1\n\nD1 end2", "C2 end1\n\nD2 end2"), Core.prompts(Core.Type.SCHEMA, " ", s2, List.of(s1)));
        JsonNode l1 = JSON.readTree("{\"context\": \"  The sky is \", \"continuation\": \"blue\"}");
        JsonNode l2 = JSON.readTree("{\"context\": \"Grass is\\u00a0\", \"continuation\": \"green\"}");
        // contexts trimmed (Python's whitespace, the no-break space included); the prompt without the continuation stripped
        assertEquals(List.of("The sky is blue\n\nGrass is", "The sky is blue\n\nGrass is green"),
                Core.prompts(Core.Type.LANGUAGE_MODELING, " ", l2, List.of(l1)));
    }

    @Test
    void fewShotDrawsAreDeterministicExcludeTheExampleAndArePythons() throws Exception {
        List<JsonNode> data = new ArrayList<>();
        for (int i = 0; i < 30; i++) data.add(JSON.readTree("{\"i\": " + i + "}"));
        // CPython: random.Random(1234 + 7).sample([i for i in range(30) if i != 7], 3) == [20, 16, 25]
        assertEquals(List.of(20, 16, 25), Core.fewshot(data, 7, 3).stream().map(n -> n.get("i").asInt()).toList());
        for (int idx = 0; idx < 30; idx++) {
            List<JsonNode> shots = Core.fewshot(data, idx, 10);
            assertEquals(shots, Core.fewshot(data, idx, 10), "the same draw every time");
            assertFalse(shots.contains(data.get(idx)), "example " + idx + " among its own few-shot examples");
            assertEquals(10, shots.stream().distinct().count());
        }
        assertThrows(IllegalArgumentException.class, () -> Core.fewshot(data.subList(0, 3), 0, 3), "3-shot needs 4 examples");
        // the task's examples: CPython's shuffle with seed 1337 (random.Random(1337).shuffle(list(range(10))))
        Core.Task t = new Core.Task("t", Core.Type.LANGUAGE_MODELING, 0, " ", 0, "t.jsonl", data.subList(0, 10));
        assertEquals(List.of(0, 3, 7, 2, 1, 6, 4, 5, 8, 9), Core.examples(t, -1).stream().map(n -> n.get("i").asInt()).toList());
        assertEquals(List.of(0, 3, 7), Core.examples(t, 3).stream().map(n -> n.get("i").asInt()).toList(), "max_per_task after the shuffle");
    }

    @Test
    void theScoredSpansOfEachType() {
        int eot = Tokenizer.EOT;
        // multiple choice: after the options' common prefix
        Core.Rows mc = Core.rows(Core.Type.MULTIPLE_CHOICE, List.of("The cat sat", "The cat ran far"), 1, TOK);
        int prefix = 1 + TOK.encode("The cat").length;
        assertEquals(eot, mc.tokens()[0][0]);
        assertArrayEquals(new int[]{prefix, prefix}, mc.start());
        assertArrayEquals(new int[]{1 + TOK.encode("The cat sat").length, 1 + TOK.encode("The cat ran far").length}, mc.end());
        // schema: the common suffix
        Core.Rows schema = Core.rows(Core.Type.SCHEMA, List.of("A red car drove away", "A big blue boat drove away"), 0, TOK);
        int suffix = TOK.encode(" drove away").length;
        for (int i = 0; i < 2; i++) assertEquals(schema.end()[i] - suffix, schema.start()[i]);
        // language modelling: the continuation after the prompt without it
        Core.Rows lm = Core.rows(Core.Type.LANGUAGE_MODELING, List.of("Count: 1, 2,", "Count: 1, 2, 3"), 0, TOK);
        assertEquals(1, lm.tokens().length);
        assertEquals(1 + TOK.encode("Count: 1, 2,").length, lm.start()[0]);
        assertEquals(lm.tokens()[0].length, lm.end()[0]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Core.rows(Core.Type.LANGUAGE_MODELING, List.of("ab", "a b"), 0, TOK));
        assertTrue(e.getMessage().contains("does not tokenize to a prefix"), e.getMessage());
    }

    @Test
    void longRowsKeepTheirLastBlockSizeTokens() {
        int[] row = new int[20];
        for (int i = 0; i < 20; i++) row[i] = 100 + i;
        Core.Rows r = new Core.Rows(new int[][]{row, Arrays.copyOf(row, 12)}, new int[]{15, 10}, new int[]{20, 12}, 0);
        Core.Rows c = Core.crop(r, 8);
        assertArrayEquals(Arrays.copyOfRange(row, 12, 20), c.tokens()[0], "the last 8 tokens");
        assertArrayEquals(new int[]{3, 6}, c.start(), "spans moved with the tokens");
        assertArrayEquals(new int[]{8, 8}, c.end());
        Core.Rows whole = Core.crop(r, 20);
        assertArrayEquals(row, whole.tokens()[0], "nothing to cut");
        assertArrayEquals(r.start(), whole.start());
        assertThrows(IllegalArgumentException.class, () -> Core.crop(r, 5), "the scored tokens alone do not fit");
    }

    @Test
    void centeringAndTheCoreMean() {
        Core.Result a = new Core.Result("a", Core.Type.MULTIPLE_CHOICE, 10, 4, 3, 25, 0);
        Core.Result b = new Core.Result("b", Core.Type.LANGUAGE_MODELING, 0, 10, 5, 0, 0);
        assertEquals(0.75, a.accuracy());
        assertEquals((0.75 - 0.25) / 0.75, a.centered(), 1e-12);
        assertEquals(0.5, b.centered(), 1e-12, "a zero baseline leaves the accuracy");
        assertEquals(((0.75 - 0.25) / 0.75 + 0.5) / 2, Core.metric(List.of(a, b)), 1e-12);
    }

    /**
     * A stand-in model that knows the right rows: loss 0 on a position whose tokens so far continue
     * a right row, 1 elsewhere; its greedy prediction is a right row's next token where there is one.
     */
    static class Oracle implements Core.Lm {
        final List<int[]> right;
        int[] in;
        int[] tg;
        int T;

        Oracle(List<int[]> right) {
            this.right = right;
        }

        public int vocabSize() {
            return Tokenizer.VOCAB_SIZE;
        }

        public int maxSeqLen() {
            return 1024;
        }

        public void forward(int[] inputs, int[] targets, int B, int T) {
            this.in = inputs.clone();
            this.tg = targets == null ? null : targets.clone();
            this.T = T;
        }

        /** The right row that starts with row b's tokens 0..t (and then next, when given), or null. */
        int[] match(int b, int t, int next) {
            for (int[] r : right) {
                if (r.length <= t + 1) continue;
                boolean ok = Arrays.equals(r, 0, t + 1, in, b * T, b * T + t + 1) && (next < 0 || r[t + 1] == next);
                if (ok) return r;
            }
            return null;
        }

        public float[] positionLosses() {
            float[] out = new float[in.length];
            for (int i = 0; i < in.length; i++) {
                if (tg[i] < 0) continue;
                out[i] = match(i / T, i % T, tg[i]) != null ? 0f : 1f;
            }
            return out;
        }

        public float[] logits(int b, int t) {
            float[] l = new float[vocabSize()];
            int[] r = match(b, t, -1);
            if (r != null) l[r[t + 1]] = 1f;
            return l;
        }
    }

    /** A model with no preference: every loss the same, every logit the same (greedy picks token 0). */
    static final class Uniform extends Oracle {
        Uniform() {
            super(List.of());
        }

        @Override
        public float[] positionLosses() {
            float[] out = new float[in.length];
            Arrays.fill(out, (float) Math.log(vocabSize()));
            return out;
        }
    }

    /** Every example's right row, rendered as scoring renders it. */
    static List<int[]> rightRows(Core.Task t) {
        List<int[]> out = new ArrayList<>();
        List<JsonNode> data = Core.examples(t, -1);
        for (int i = 0; i < data.size(); i++) {
            List<String> prompts = Core.prompts(t.type(), t.delimiter(), data.get(i), Core.fewshot(data, i, t.shots()));
            Core.Rows r = Core.rows(t.type(), prompts, data.get(i).path("gold").asInt(0), TOK);
            out.add(r.tokens()[t.type() == Core.Type.LANGUAGE_MODELING ? 0 : r.gold()]);
        }
        return out;
    }

    @Test
    void aModelThatPrefersTheRightAnswerScoresOneAndAUniformOneItsBaseline(@TempDir Path dir) throws Exception {
        List<Core.Task> tasks = CoreBundle.load(folder(dir, files()));
        List<Core.Result> right = new ArrayList<>(), uniform = new ArrayList<>();
        for (Core.Task t : tasks) {
            for (int rows : new int[]{1, 5, 64}) { // batching changes nothing
                Core.Result r = Core.evaluate(new Oracle(rightRows(t)), t, -1, rows, null, true);
                assertEquals(t.data().size(), r.correct(), t.label() + " with " + rows + " rows per pass");
            }
            right.add(Core.evaluate(new Oracle(rightRows(t)), t, -1, 8, null, true));
            uniform.add(Core.evaluate(new Uniform(), t, -1, 8, null, true));
        }
        assertEquals(1.0, Core.metric(right), 1e-12, "every task right: CORE 1");
        for (Core.Result r : uniform) assertEquals(r.baselinePercent() / 100, r.accuracy(), 1e-12, r.line());
        assertEquals(0.0, Core.metric(uniform), 1e-12, "chance everywhere: CORE 0");
        assertEquals(3, Core.evaluate(new Oracle(rightRows(tasks.getFirst())), tasks.getFirst(), 3, 8, null, true).examples(),
                "max_per_task (few-shot examples are drawn from those kept, as nanochat draws them)");
    }

    /**
     * Zero-shot HellaSwag through CORE and through `gpt2 hellaswag` (llm.c's acc_norm) agree where their
     * prompts agree: without CORE's leading end-of-text token, and with endings whose first tokens
     * differ (CORE scores only the tokens after the options' common prefix), every prediction is the same.
     */
    @Test
    void zeroShotHellaSwagAgreesWithTheHellaswagCommandWhereThePromptsAgree() throws Exception {
        List<HellaSwag.Example> hs = new ArrayList<>();
        List<JsonNode> rows = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            String ctx = "Example " + i + ": a person walks to the " + WORDS[i % 8] + " door and";
            List<String> endings = List.of("opens it slowly.", "sits down on the floor.", "runs back home.", "waves at a friend " + i + ".");
            hs.add(new HellaSwag.Example(ctx, endings, i % 4));
            rows.add(JSON.readTree(json("{\"query\": %s, \"choices\": %s, \"gold\": %d}", JSON.writeValueAsString(ctx),
                    jsonList(endings), i % 4)));
        }
        try (Backend be = Backends.create("cpu", 2, false, false); Gpt2 m = new Gpt2(GptConfig.preset("d2"), be)) {
            m.initialize(7);
            for (int i = 0; i < hs.size(); i++) {
                HellaSwag.Result viaHellaswag = HellaSwag.evaluate(m, List.of(hs.get(i)), 1, 0, null);
                Core.Task one = new Core.Task("hellaswag_zeroshot", Core.Type.MULTIPLE_CHOICE, 0, " ", 25, "hellaswag.jsonl",
                        List.of(rows.get(i)));
                Core.Result viaCore = Core.evaluate(Core.Lm.of(m), one, -1, 4, null, false);
                assertEquals(viaHellaswag.correctNorm(), viaCore.correct(), "example " + i);
            }
        }
    }
}
