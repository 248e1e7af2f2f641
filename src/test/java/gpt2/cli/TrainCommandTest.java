package gpt2.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 train` end to end on generated shards with a tiny model. */
class TrainCommandTest {

    private static final Pattern STEP = Pattern.compile("step +(\\d+)/(\\d+) \\| loss ([0-9.]+) \\| norm");
    /** A small model of the original's architecture (RMSNorm, dropout 0.1, untied head), vocab 512. */
    static final String[] TINY = {"--model", "seed-d12", "--n_layer", "1", "--n_head", "2", "--n_embd", "32",
            "--block_size", "32", "--vocab_size", "512", "--threads", "2"};

    /** Train and val shards of a learnable stream: a noisy walk through a fixed cycle of 64 tokens. */
    static Path shards(Path dir) throws Exception {
        Random r = new Random(1);
        int[] cycle = new int[64];
        for (int i = 0; i < 64; i++) cycle[i] = r.nextInt(512);
        int[] stream = new int[6000];
        for (int i = 0; i < stream.length; i++) stream[i] = r.nextInt(10) == 0 ? r.nextInt(512) : cycle[i % 64];
        ShardWriter.write(dir.resolve("toy_val_000000.bin"), TokenShard.MAGIC_LLMC, stream, 0, 1000);
        ShardWriter.write(dir.resolve("toy_train_000001.bin"), TokenShard.MAGIC_LLMC, stream, 1000, 3500);
        ShardWriter.write(dir.resolve("toy_train_000002.bin"), TokenShard.MAGIC_LLMC, stream, 3500, 6000);
        return dir;
    }

    static String[] args(Path data, Path out, String... more) {
        List<String> a = new ArrayList<>(List.of("train", "--input_train_bin", data.resolve("toy_train_*.bin").toString(),
                "--input_val_bin", data.resolve("toy_val_*.bin").toString(), "--output_dir", out.toString(),
                "--batch_size", "4", "--sequence_length", "16", "--total_batch_size", "128", "--overfit_single_batch", "0",
                "--learning_rate", "3e-3"));
        a.addAll(List.of(TINY));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    static List<String> stepLosses(String stdout) {
        List<String> out = new ArrayList<>();
        for (String l : stdout.lines().toList()) {
            Matcher m = STEP.matcher(l);
            if (m.find()) out.add(m.group(1) + ":" + m.group(3));
        }
        return out;
    }

    @Test
    void trainsLogsValidatesAndCheckpoints(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path out = dir.resolve("run");
        String[] r = InfoCommandTest.run(args(data, out, "--num_iterations", "12", "--val_loss_every", "5",
                "--val_max_steps", "3", "--save_every_niter", "4", "--sample_every", "6"));
        assertEquals("0", r[0], r[2]);
        List<String> losses = stepLosses(r[1]);
        assertEquals(12, losses.size(), r[1]);
        float first = Float.parseFloat(losses.getFirst().split(":")[1]), last = Float.parseFloat(losses.getLast().split(":")[1]);
        assertTrue(last < first - 1.0, "loss did not fall: " + losses);
        assertTrue(r[1].contains("2 micro-batches"), r[1]);
        // every step line but the first and the last says how long the rest will take (issue 22.10)
        assertEquals(10, r[1].lines().filter(l -> l.startsWith("step ") && l.contains(" tok/s | ETA ")).count(), r[1]);
        assertTrue(r[1].contains("mean step time (last 12 steps)"), r[1]);

        // main.log: val at 0, 5, 10 and the end (12); a train line per step
        List<String> main = Files.readAllLines(out.resolve("main.log"));
        List<Integer> valSteps = main.stream().filter(l -> l.contains("vloss")).map(l -> Integer.parseInt(l.split("[: ]")[1])).toList();
        assertEquals(List.of(0, 5, 10, 12), valSteps);
        // one numbering: the console's "step s/N" is main.log's "s:s trl" (s = updates done, 1..12)
        List<Integer> trainSteps = main.stream().filter(l -> l.matches("s:\\d+ trl:\\d+\\.\\d{6}"))
                .map(l -> Integer.parseInt(l.split("[: ]")[1])).toList();
        assertEquals(java.util.stream.IntStream.rangeClosed(1, 12).boxed().toList(), trainSteps, main.toString());
        String consoleStep3 = r[1].lines().filter(l -> l.startsWith("step    3/12 | loss ")).findFirst().orElseThrow();
        assertTrue(main.contains("s:3 trl:" + consoleStep3.split(" \\| loss ")[1].split(" ")[0]), consoleStep3 + " vs " + main);

        // metrics.jsonl: a record per step ("step" as above) and per validation; tokens seen add up
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> metrics = new ArrayList<>();
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) metrics.add(json.readTree(l));
        List<JsonNode> steps = metrics.stream().filter(m -> m.has("loss")).toList();
        assertEquals(trainSteps, steps.stream().map(m -> m.get("step").asInt()).toList());
        assertEquals(12 * 128, steps.getLast().get("tokens").asLong());
        assertEquals(List.of(0, 5, 10, 12), metrics.stream().filter(m -> m.has("val_loss")).map(m -> m.get("step").asInt()).toList());
        // bits per byte at every validation (issue 30): the loss in bits over the bytes the targets decode to
        for (JsonNode v : metrics.stream().filter(m -> m.has("val_loss")).toList()) {
            assertTrue(v.has("val_bpb") && v.get("val_bpb").asDouble() > 0, v.toString());
        }
        for (String field : List.of("loss", "lr", "norm", "ms", "tok_s")) assertTrue(steps.get(3).has(field), field);

        // checkpoints after steps 4, 8 and at the end (12); samples at 0, 6, 12; the plot
        try (Stream<Path> s = Files.list(out)) {
            List<String> names = s.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(List.of("checkpoint_00000004", "checkpoint_00000008", "checkpoint_00000012", "loss.png",
                    "main.log", "metrics.jsonl", "run.json", "samples.txt"), names);
        }
        // run.json: what the run is and how it ended (gpt2 serve's list of runs reads it)
        JsonNode status = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.resolve("run.json").toFile());
        assertEquals("finished", status.get("state").asText(), status.toString());
        assertEquals(12, status.get("step").asInt());
        assertEquals(12, status.get("num_iterations").asInt());
        assertEquals(ProcessHandle.current().pid(), status.get("pid").asLong());
        assertEquals(12, status.get("args").get("num_iterations").asInt(), status.toString());
        assertEquals(3, Files.readAllLines(out.resolve("samples.txt")).stream().filter(l -> l.startsWith("--- step")).count());
    }

    @Test
    void resumingReproducesTheUninterruptedRunExactly(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path full = dir.resolve("full");
        String[] a = InfoCommandTest.run(args(data, full, "--num_iterations", "8", "--save_every_niter", "3",
                "--val_loss_every", "4", "--val_max_steps", "2", "--sample_every", "4"));
        assertEquals("0", a[0], a[2]);
        // continue from step 3 in another directory, and with --resume in a copy that lost its later checkpoints
        Path other = dir.resolve("other");
        String[] b = InfoCommandTest.run(args(data, other, "--num_iterations", "8", "--save_every_niter", "3",
                "--val_loss_every", "4", "--val_max_steps", "2", "--sample_every", "4",
                "--load_chkpoint_file", full.resolve("checkpoint_00000003").toString()));
        assertEquals("0", b[0], b[2]);
        assertTrue(b[1].contains("resumed from") && b[1].contains("at step 3"), b[1]);
        assertEquals(stepLosses(a[1]).subList(3, 8), stepLosses(b[1]), "losses after resuming");

        Path copy = dir.resolve("copy");
        copyTree(full, copy);
        deleteTree(copy.resolve("checkpoint_00000006"));
        deleteTree(copy.resolve("checkpoint_00000008"));
        String[] c = InfoCommandTest.run(args(data, copy, "--num_iterations", "8", "--save_every_niter", "3",
                "--val_loss_every", "4", "--val_max_steps", "2", "--sample_every", "4", "--resume"));
        assertEquals("0", c[0], c[2]);
        assertTrue(c[1].contains("at step 6") == false && c[1].contains("at step 3"), c[1]);
        for (String f : List.of("main.log", "metrics.jsonl", "samples.txt")) {
            List<String> x = Files.readAllLines(full.resolve(f)), y = Files.readAllLines(copy.resolve(f));
            if (f.equals("metrics.jsonl")) { // step times differ; everything else must not
                x = x.stream().map(TrainCommandTest::withoutTimes).toList();
                y = y.stream().map(TrainCommandTest::withoutTimes).toList();
            }
            assertEquals(x, y, f + " of the resumed run");
        }
        byte[] weightsA = Files.readAllBytes(full.resolve("checkpoint_00000008/model.safetensors"));
        byte[] weightsC = Files.readAllBytes(copy.resolve("checkpoint_00000008/model.safetensors"));
        assertTrue(Arrays.equals(weightsA, weightsC), "final weights differ after resume");
    }

    /**
     * Issue 22.2: `--output_dir RUN --resume` alone took every flag but the model from the defaults
     * (learning rate, batch, validation cadence...). Now the run's recorded flags apply, and a flag
     * given again with another value replaces its recorded one with a note.
     */
    @Test
    void resumeAloneContinuesTheRunAsItWasStarted(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path full = dir.resolve("full"), cut = dir.resolve("cut");
        String[] a = InfoCommandTest.run(args(data, full, "--num_iterations", "6", "--val_loss_every", "3",
                "--val_max_steps", "2", "--save_every_niter", "2"));
        assertEquals("0", a[0], a[2]);
        String[] b = InfoCommandTest.run(args(data, cut, "--num_iterations", "4", "--val_loss_every", "3",
                "--val_max_steps", "2", "--save_every_niter", "2"));
        assertEquals("0", b[0], b[2]);
        // every flag but these from the checkpoint (data, model, batch, learning rate, validation...)
        String[] c = InfoCommandTest.run("train", "--output_dir", cut.toString(), "--resume", "--num_iterations", "6");
        assertEquals("0", c[0], c[2]);
        assertTrue(c[1].contains("note: --num_iterations 6 replaces the run's 4"), c[1]);
        assertTrue(c[1].contains("resumed from " + cut.resolve("checkpoint_00000004") + " at step 4"), c[1]);
        assertEquals(stepLosses(a[1]).subList(4, 6), stepLosses(c[1]), "steps 5-6 of the resumed run against the uninterrupted one");
        assertTrue(c[1].contains("val loss"), "the recorded --val_loss_every 3 still applies: " + c[1]);
        // --resume 1 and --resume 0 are accepted like the other 0|1 flags
        String[] d = InfoCommandTest.run("train", "--output_dir", cut.toString(), "--resume", "1", "--num_iterations", "6");
        assertEquals("0", d[0], d[2]);
        assertTrue(d[1].contains("already complete at step 6"), d[1]);
        String[] e = InfoCommandTest.run("train", "--output_dir", cut.toString(), "--resume", "0", "--num_iterations", "6");
        assertEquals("2", e[0], e[1]);
        assertTrue(e[2].contains("already holds a run"), e[2]);
        String[] f = InfoCommandTest.run("train", "--output_dir", cut.toString(), "--resume", "2");
        assertEquals("2", f[0]);
        assertTrue(f[2].contains("--resume must be 0 or 1, got 2"), f[2]);
    }

    /**
     * Issue 22.4: on a nearly full disk a run trained and then failed at its save (with --keep_last 1
     * the old checkpoint is pruned only after the new one is written). The free space is checked
     * first: refused when one checkpoint does not fit, a note when the run's peak does not.
     */
    @Test
    void freeSpaceForCheckpointsIsCheckedBeforeTraining(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        try {
            System.setProperty("gpt2.test.usableBytes", "1000000");
            String[] r = InfoCommandTest.run(args(data, dir.resolve("a"), "--num_iterations", "4", "--save_every_niter", "2",
                    "--keep_last", "1"));
            assertEquals("2", r[0], r[1]);
            assertTrue(r[2].contains("1 MB free, a checkpoint of this model needs"), r[2]);
            assertTrue(stepLosses(r[1]).isEmpty(), "refused before any step: " + r[1]);
            System.setProperty("gpt2.test.usableBytes", "3000000");
            r = InfoCommandTest.run(args(data, dir.resolve("b"), "--num_iterations", "4", "--save_every_niter", "2",
                    "--keep_last", "1"));
            assertEquals("0", r[0], r[2]);
            assertTrue(r[1].contains("note: --output_dir " + dir.resolve("b") + " has 3 MB free; this run's checkpoints need up to")
                    && r[1].contains("(2 x ") && r[1].contains("before --keep_last 1 prunes the older one"), r[1]);
        } finally {
            System.clearProperty("gpt2.test.usableBytes");
        }
        String[] r = InfoCommandTest.run(args(data, dir.resolve("c"), "--num_iterations", "2"));
        assertEquals("0", r[0], r[2]);
        assertTrue(!r[1].contains("free;"), "no note with room to spare: " + r[1]);
    }

    private static String withoutTimes(String json) {
        return json.replaceAll("\"(ms|tok_s)\":[0-9.Ee+-]+,?", "");
    }

    @Test
    void inferenceOnlyDoesNotUpdate(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        String[] r = InfoCommandTest.run(args(data, dir.resolve("inf"), "--num_iterations", "3", "--inference_only", "1",
                "--overfit_single_batch", "1"));
        assertEquals("0", r[0], r[2]);
        List<String> l = stepLosses(r[1]);
        assertEquals(3, l.size());
        assertEquals(l.get(0).split(":")[1], l.get(2).split(":")[1], "same batch, no update: same loss");
    }

    @Test
    void badFlagCombinationsAreRefused(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        String[][] cases = {
                {"--total_batch_size", "100", "--total_batch_size 100 is not a positive multiple of --batch_size 4 x --sequence_length 16 x 1 rank = 64"},
                {"--dtype", "bfloat16", "--dtype bfloat16"},
                {"--dtype", "float16", "--dtype float16 is not supported"},
                {"--flash", "1", "--flash 1: flash attention needs the CUDA backend"},
                {"--zero_stage", "1", "--zero_stage 1"},
                {"--device", "tpu", "--device tpu: expected cpu, cuda or cuda:N"},
                {"--write_tensors", "1", "--write_tensors 1 (llm.c model files) holds OpenAI GPT-2 models only"},
                {"--sequence_length", "64", "--sequence_length 64 exceeds the model's block_size 32"},
                {"--load_chkpoint_file", dir.resolve("nope").toString(), "no such checkpoint directory"},
        };
        for (String[] c : cases) {
            String[] r = InfoCommandTest.run(args(data, dir.resolve("bad"), c[0], c[1]));
            assertEquals("2", r[0], String.join(" ", c) + ": " + r[2]);
            assertTrue(r[2].contains(c[2]), r[2]);
            assertEquals(1, r[2].strip().lines().filter(x -> !x.startsWith("WARNING")).count(), r[2]);
        }
        String[] r = InfoCommandTest.run(args(data, dir.resolve("ok"), "--num_iterations", "1", "--tensorcores", "1", "--compile", "1",
                "--wandb_log_iters", "10"));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("note: --tensorcores 1 has no effect on the CPU"), r[1]);
        assertTrue(r[1].contains("note: --compile 1 has no effect"), r[1]);
        assertTrue(r[1].contains("note: Weights & Biases is not available"), r[1]);
        assertTrue(r[1].contains("`gpt2 serve --runs DIR` shows them live in a browser"), "the note points at serve: " + r[1]);
        // --write_tensors 1 with a GPT-2 architecture writes llm.c files that load back
        String[] w = InfoCommandTest.run("train", "--input_train_bin", data.resolve("toy_train_*.bin").toString(),
                "--output_dir", dir.resolve("wt").toString(), "--model", "d2", "--n_layer", "1", "--n_embd", "32",
                "--block_size", "32", "--vocab_size", "512", "--batch_size", "2", "--sequence_length", "16",
                "--total_batch_size", "32", "--num_iterations", "1", "--write_tensors", "1", "--device", "cpu");
        assertEquals("0", w[0], w[2]);
        Path bin = dir.resolve("wt/model_d2.bin");
        assertTrue(Files.exists(bin) && Files.exists(dir.resolve("wt/model_d2_bf16.bin")), w[1]);
        assertEquals(1, gpt2.train.ModelFiles.config(bin).numLayers());
        r = InfoCommandTest.run("train", "--input_train_bin", dir.resolve("none_*.bin").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("no files match"), r[2]);
        assertFalse(Files.exists(dir.resolve("bad")), "a refused run must not create its output directory");
    }

    /** Bad values of the Muon and schedule flags: refused before anything runs, in one line naming the flag. */
    @Test
    void badOptimizerAndScheduleValuesAreRefused(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        String[][] cases = {
                {"--optimizer", "sgd", "--optimizer sgd: must be adamw or muon"},
                {"--lr_schedule", "foo", "--lr_schedule foo: must be cosine or wsd"},
                {"--muon_momentum", "1.5", "--muon_momentum must be in [0, 1), got 1.5"},
                {"--muon_ns_steps", "0", "--muon_ns_steps must be >= 1, got 0"},
                {"--muon_lr", "-1", "--muon_lr must be >= 0, got -1.0"},
                {"--warmdown_frac", "2", "--warmdown_frac must be in [0, 1], got 2.0"},
        };
        for (String[] c : cases) {
            String[] r = InfoCommandTest.run(args(data, dir.resolve("bad"), "--optimizer", "muon", "--lr_schedule", "wsd", c[0], c[1]));
            assertEquals("2", r[0], String.join(" ", c) + ": " + r[2]);
            assertTrue(r[2].contains(c[2]), r[2]);
            assertEquals(1, r[2].strip().lines().filter(x -> !x.startsWith("WARNING")).count(), r[2]);
        }
        assertFalse(Files.exists(dir.resolve("bad")), "a refused run must not create its output directory");
    }

    /**
     * The modern recipe with Muon and wsd: the log shows Muon's lr; `--resume` alone continues with
     * the recorded optimizer flags and gives the uninterrupted run's losses; switching optimizer on
     * resume is refused in one line.
     */
    @Test
    void aMuonRunResumesAsStartedAndRefusesAnotherOptimizer(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        java.util.function.BiFunction<Path, String, String[]> muonArgs = (out, steps) -> new String[]{"train",
                "--input_train_bin", data.resolve("toy_train_*.bin").toString(), "--output_dir", out.toString(),
                "--model", "d4-modern", "--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--block_size", "32",
                "--vocab_size", "512", "--threads", "2", "--batch_size", "4", "--sequence_length", "16",
                "--total_batch_size", "64", "--overfit_single_batch", "0", "--optimizer", "muon", "--muon_lr", "0.03",
                "--lr_schedule", "wsd", "--warmup_iters", "1", "--warmdown_frac", "0.5", "--learning_rate_decay_frac", "0",
                "--num_iterations", steps, "--save_every_niter", "2", "--val_loss_every", "0"};
        String[] a = InfoCommandTest.run(muonArgs.apply(dir.resolve("full"), "4"));
        assertEquals("0", a[0], a[2]);
        assertTrue(a[1].contains("step    2/4 | loss ") && a[1].contains("| lr 3.00e-02 |"), "Muon's lr is logged: " + a[1]);
        assertTrue(a[1].contains("step    4/4 |") && a[1].contains("| lr 1.50e-02 |"), "the warmdown halves it at step 4: " + a[1]);
        String[] b = InfoCommandTest.run(muonArgs.apply(dir.resolve("cut"), "2"));
        assertEquals("0", b[0], b[2]);
        String[] c = InfoCommandTest.run("train", "--output_dir", dir.resolve("cut").toString(), "--resume", "--num_iterations", "4");
        assertEquals("0", c[0], c[2]);
        assertEquals(stepLosses(a[1]).subList(2, 4), stepLosses(c[1]), "steps 3-4 of the resumed Muon run: " + c[1]);
        String[] d = InfoCommandTest.run("train", "--output_dir", dir.resolve("cut").toString(), "--resume", "--num_iterations", "6",
                "--optimizer", "adamw");
        assertEquals("2", d[0], d[1]);
        assertTrue(d[2].contains("is a run of --optimizer muon; it cannot continue with --optimizer adamw"), d[2]);
        assertEquals(1, d[2].strip().lines().filter(x -> !x.startsWith("WARNING")).count(), d[2]);
    }

    static void copyTree(Path from, Path to) throws Exception {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) Files.copy(p, to.resolve(from.relativize(p).toString()));
        }
    }

    static void deleteTree(Path p) throws Exception {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path f : s.sorted((x, y) -> y.getNameCount() - x.getNameCount()).toList()) Files.delete(f);
        }
    }
}
