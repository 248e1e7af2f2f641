package gpt2.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.data.DataLoader;
import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import gpt2.data.Tokenizer;
import gpt2.model.GptConfig;
import gpt2.model.Gpt2;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 30: `gpt2 eval` as a user runs it: a bundle's tasks, CORE, bits per byte, and its refusals. */
class EvalCommandTest {

    @Test
    void coreTasksFromABundleFileWithResultsWritten(@TempDir Path dir) throws Exception {
        Path zip = gpt2.eval.CoreTestBundles.zip(dir);
        String[] list = InfoCommandTest.run("eval", "--tasks", "list", "--bundle", zip.toString());
        assertEquals("0", list[0], list[2]);
        assertTrue(list[1].contains("mc_task") && list[1].contains("2-shot multiple_choice") && list[1].contains("random baseline 25.0%")
                && list[1].contains("3 tasks in " + zip), list[1]);

        Path out = dir.resolve("result");
        String[] r = InfoCommandTest.run("eval", "--model", "d2", "--bundle", zip.toString(), "--tasks", "mc_task,lm_task",
                "--max_per_task", "4", "--out", out.toString(), "--threads", "2");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("2 task(s) from " + zip + " (at most 4 examples per task)"), r[1]);
        assertTrue(r[1].lines().anyMatch(l -> l.startsWith("mc_task") && l.contains("4 examples | accuracy")), r[1]);
        assertTrue(r[1].lines().anyMatch(l -> l.startsWith("lm_task") && l.contains(" 0-shot language_modeling")), r[1]);
        assertTrue(r[1].contains("CORE ") && r[1].contains("(the mean centered accuracy of 2 task(s))"), r[1]);
        JsonNode json = new ObjectMapper().readTree(out.resolveSibling("result.json").toFile());
        assertEquals(2, json.get("tasks").size());
        double mean = (json.get("tasks").get(0).get("centered").asDouble() + json.get("tasks").get(1).get("centered").asDouble()) / 2;
        assertEquals(mean, json.get("core").asDouble(), 1e-12);
        String csv = Files.readString(out.resolveSibling("result.csv"));
        assertTrue(csv.startsWith("task,shots,type,examples,accuracy,centered\nmc_task,2,multiple_choice,4,") && csv.contains("\nCORE,"), csv);
    }

    @Test
    void badRequestsAreOneLineErrors(@TempDir Path dir) throws Exception {
        Path zip = gpt2.eval.CoreTestBundles.zip(dir);
        String[] r = InfoCommandTest.run("eval", "--model", "d2", "--bundle", zip.toString(), "--tasks", "mc_task,nope");
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--tasks: no task nope in the bundle (it has: mc_task, schema_task, lm_task; or core, all, bpb, list)"), r[2]);
        r = InfoCommandTest.run("eval", "--model", "d2", "--bundle", dir.resolve("none").toString());
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--bundle " + dir.resolve("none") + ": no such folder or zip (get the bundle with: gpt2 prepare core)"), r[2]);
        if (!Files.exists(Path.of("data/eval_bundle")) && !Files.exists(Path.of("data/eval_bundle.zip"))) { // a clone without the bundle
            r = InfoCommandTest.run("eval", "--model", "d2");
            assertEquals("2", r[0], r[1]);
            assertTrue(r[2].contains("no eval bundle: looked at data/eval_bundle and data/eval_bundle.zip; get it with 'gpt2 prepare core'"), r[2]);
        }
        r = InfoCommandTest.run("eval", "--model", "d2", "--tasks", "bpb");
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--tasks bpb needs --input_val_bin"), r[2]);
        r = InfoCommandTest.run("eval", "--tasks", "core", "--bundle", zip.toString());
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--model: name the model to score"), r[2]);
        for (String[] x : new String[][]{r}) assertEquals(1, x[2].strip().lines().count(), x[2]);
    }

    /** CORE during training: every --eval_every steps after the first and at the end, one metrics record per task and one with the mean. */
    @Test
    void coreDuringTrainingGoesToMetricsJsonl(@TempDir Path dir) throws Exception {
        Path zip = gpt2.eval.CoreTestBundles.zip(dir);
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path run = dir.resolve("run");
        String[] r = InfoCommandTest.run(TrainCommandTest.args(data, run, "--num_iterations", "5", "--eval_every", "2",
                "--eval_bundle", zip.toString(), "--eval_max_per_task", "3", "--vocab_size", "50257", "--val_loss_every", "0"));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("step    2/5 | CORE ") && r[1].contains("step    4/5 | CORE ") && r[1].contains("step    5/5 | CORE "), r[1]);
        assertTrue(r[1].contains("step    2/5 | mc_task"), r[1]);
        java.util.List<JsonNode> records = new java.util.ArrayList<>();
        for (String l : Files.readAllLines(run.resolve("metrics.jsonl"))) records.add(new ObjectMapper().readTree(l));
        assertEquals(java.util.List.of(2, 4, 5), records.stream().filter(x -> x.has("core")).map(x -> x.get("step").asInt()).toList());
        assertEquals(9, records.stream().filter(x -> x.has("eval_task")).count(), "3 tasks x 3 evaluations");
        JsonNode one = records.stream().filter(x -> x.has("eval_task")).findFirst().orElseThrow();
        assertEquals(3, one.get("examples").asInt());
        assertTrue(one.has("accuracy") && one.has("centered"), one.toString());

        String[] bad = InfoCommandTest.run(TrainCommandTest.args(data, dir.resolve("run2"), "--eval_every", "2", "--eval_bundle",
                dir.resolve("nope.zip").toString()));
        assertEquals("2", bad[0], bad[1]);
        assertTrue(bad[2].contains("--eval_bundle " + dir.resolve("nope.zip") + ": no such folder or zip (get the bundle with: gpt2 prepare core)"), bad[2]);
        assertTrue(!Files.exists(dir.resolve("run2")), "refused before the output folder is made");
    }

    /** Bits per byte against a direct computation: the same batches' summed loss over ln 2 times their text's bytes. */
    @Test
    void bitsPerByteAgainstADirectComputation(@TempDir Path dir) throws Exception {
        Tokenizer tok = Tokenizer.gpt2();
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 40; i++) text.append("Line ").append(i).append(": the river ran to the sea, and the sea was glad. ");
        int[] doc = tok.encodeDocument(text.toString());
        Path shard = dir.resolve("val_000000.bin");
        ShardWriter.write(shard, TokenShard.MAGIC_LLMC, doc, 0, doc.length);
        Path out = dir.resolve("bpb");
        String[] r = InfoCommandTest.run("eval", "--model", "d2", "--tasks", "bpb", "--input_val_bin", shard.toString(),
                "--batch_size", "2", "--sequence_length", "16", "--val_max_steps", "3", "--out", out.toString(), "--threads", "2");
        assertEquals("0", r[0], r[2]);
        double got = new ObjectMapper().readTree(out.resolveSibling("bpb.json").toFile()).get("val_bpb").asDouble();
        assertTrue(r[1].contains(String.format(java.util.Locale.ROOT, "val bpb %.4f", got)), r[1]);

        // directly: the preset's weights (seed 42, as every command's preset), the same 3 batches
        try (Backend be = Backends.create("cpu", 2, false, false); Gpt2 m = new Gpt2(GptConfig.preset("d2"), be);
             DataLoader val = new DataLoader(shard.toString(), 2, 16, 0, 1, m.config().vocabSize())) {
            m.initialize(42);
            int[] in = new int[32], tg = new int[32];
            double nats = 0;
            long bytes = 0;
            for (int i = 0; i < 3; i++) {
                val.next(in, tg);
                m.forward(in, tg, 2, 16, -1);
                for (float l : m.positionLosses()) nats += l;
                int[] text2 = Arrays.stream(tg).filter(t -> t != Tokenizer.EOT).toArray();
                bytes += tok.decodeBytes(text2).length;
            }
            double want = nats / (Math.log(2) * bytes);
            assertEquals(want, got, 1e-5 * want);
        }
    }
}
