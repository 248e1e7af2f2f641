package gpt2.cli;

import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training that survives: real child JVMs killed with SIGKILL and stopped with SIGTERM, corrupt
 * checkpoints, bad steps, bad input, a full disk (a file-size limit on the child).
 */
class ReliabilityTest {

    private static final Pattern STEP = Pattern.compile("^step +(\\d+)/\\d+ \\| (loss [0-9.]+ \\| norm [0-9.]+ \\| lr \\S+)");

    static List<String> trainArgs(Path data, Path out, int steps, String... more) {
        List<String> a = new ArrayList<>(List.of("train", "--input_train_bin", data.resolve("toy_train_*.bin").toString(),
                "--output_dir", out.toString(), "--batch_size", "4", "--sequence_length", "16", "--total_batch_size", "64",
                "--num_iterations", String.valueOf(steps), "--overfit_single_batch", "0", "--learning_rate", "3e-3",
                "--save_every_niter", "4", "--device", "cpu"));
        a.addAll(List.of(TrainCommandTest.TINY));
        a.addAll(List.of(more));
        return a;
    }

    /** The command line of a child JVM running gpt2 on this test run's classes. */
    static List<String> gpt2Command(List<String> jvmProps, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        cmd.addAll(jvmProps);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "gpt2.cli.Main"));
        cmd.addAll(args);
        return cmd;
    }

    /** A child JVM running gpt2 with its output in a file; {@code shellPrefix} runs before (e.g. ulimit). */
    static Process child(Path log, String shellPrefix, List<String> jvmProps, List<String> args) throws Exception {
        List<String> cmd = gpt2Command(jvmProps, args);
        ProcessBuilder pb;
        if (shellPrefix == null) {
            pb = new ProcessBuilder(cmd);
        } else {
            StringBuilder sh = new StringBuilder(shellPrefix).append("; exec");
            for (String c : cmd) sh.append(" '").append(c.replace("'", "'\\''")).append("'");
            pb = new ProcessBuilder("bash", "-c", sh.toString());
        }
        return pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    static List<String> steps(String out, int after) {
        List<String> r = new ArrayList<>();
        for (String l : out.lines().toList()) {
            Matcher m = STEP.matcher(l);
            if (m.find() && Integer.parseInt(m.group(1)) > after) r.add(m.group(1) + " " + m.group(2));
        }
        return r;
    }

    static void waitFor(Path p, Process proc, long ms) throws Exception {
        long end = System.currentTimeMillis() + ms;
        while (!Files.exists(p)) {
            assertTrue(proc.isAlive(), "the child ended before " + p + " appeared");
            assertTrue(System.currentTimeMillis() < end, "timed out waiting for " + p);
            Thread.sleep(20);
        }
    }

    @Test
    void killedWithSigkillAndResumedItMatchesAnUninterruptedRun(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        String[] full = InfoCommandTest.run(trainArgs(data, dir.resolve("full"), 24).toArray(String[]::new));
        assertEquals("0", full[0], full[2]);

        Path run = dir.resolve("killed");
        Process p = child(dir.resolve("child.log"), null, List.of("-Dgpt2.test.stepDelayMs=150"), trainArgs(data, run, 24));
        waitFor(run.resolve("checkpoint_00000008"), p, 120_000);
        Thread.sleep(200); // somewhere after the checkpoint, mid-step or between steps
        p.destroyForcibly(); // SIGKILL
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertTrue(p.exitValue() != 0, "killed, not finished");
        assertFalse(Files.exists(run.resolve("checkpoint_00000024")), "the child must not have finished");

        String[] resumed = InfoCommandTest.run(trainArgs(data, run, 24, "--resume").toArray(String[]::new));
        assertEquals("0", resumed[0], resumed[2]);
        Matcher m = Pattern.compile("resumed from .* at step (\\d+)").matcher(resumed[1]);
        assertTrue(m.find(), resumed[1]);
        int from = Integer.parseInt(m.group(1));
        assertTrue(from >= 8, "resumed at " + from);
        assertEquals(steps(full[1], from), steps(resumed[1], from), "losses after resuming at step " + from);
        assertEquals(24 - from, steps(resumed[1], from).size());
    }

    @Test
    void sigtermWritesACheckpointAndExitsZero(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path run = dir.resolve("run");
        Path log = dir.resolve("child.log");
        Process p = child(log, null, List.of("-Dgpt2.test.stepDelayMs=150"), trainArgs(data, run, 40));
        waitFor(run.resolve("checkpoint_00000004"), p, 120_000);
        p.destroy(); // SIGTERM
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String out = Files.readString(log);
        assertEquals(0, p.exitValue(), out);
        Matcher m = Pattern.compile("stopped by a stop signal after step (\\d+); continue with the same command and --resume").matcher(out);
        assertTrue(m.find(), out);
        int stoppedAt = Integer.parseInt(m.group(1));
        assertTrue(Files.isDirectory(run.resolve(String.format("checkpoint_%08d", stoppedAt))), "checkpoint of step " + stoppedAt);
        String status = Files.readString(run.resolve("run.json")).replace(" ", "");
        assertTrue(status.contains("\"state\":\"stopped\"") && status.contains("\"step\":" + stoppedAt + ","), status);
        String[] resumed = InfoCommandTest.run(trainArgs(data, run, stoppedAt + 2, "--resume").toArray(String[]::new));
        assertEquals("0", resumed[0], resumed[2]);
        assertTrue(resumed[1].contains("at step " + stoppedAt), resumed[1]);
    }

    @Test
    void aCorruptNewestCheckpointFallsBackToThePreviousOne(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path run = dir.resolve("run");
        String[] r = InfoCommandTest.run(trainArgs(data, run, 8).toArray(String[]::new));
        assertEquals("0", r[0], r[2]);
        Path model = run.resolve("checkpoint_00000008/model.safetensors");
        byte[] b = Files.readAllBytes(model);
        b[b.length / 2] ^= 1;
        Files.write(model, b);
        r = InfoCommandTest.run(trainArgs(data, run, 10, "--resume").toArray(String[]::new));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("checkpoint_00000004 at step 4"), r[1]);
    }

    @Test
    void nanStepsAreSkippedAndTooManyStopTheRun(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        System.setProperty("gpt2.test.nanLossAtSteps", "3,4");
        try {
            String[] r = InfoCommandTest.run(trainArgs(data, dir.resolve("a"), 6).toArray(String[]::new));
            assertEquals("0", r[0], r[2]);
            assertTrue(r[1].contains("step 3 skipped (loss is NaN); 1 in a row"), r[1]);
            assertTrue(r[1].contains("step 4 skipped (loss is NaN); 2 in a row"), r[1]);
            r = InfoCommandTest.run(trainArgs(data, dir.resolve("b"), 6, "--max_skipped_steps", "2").toArray(String[]::new));
            assertEquals("1", r[0], r[1]);
            assertTrue(r[2].contains("2 steps in a row were skipped (--max_skipped_steps 2)"), r[2]);
            assertTrue(Files.isDirectory(dir.resolve("b/checkpoint_00000004")), "the last good state is saved");
            String status = Files.readString(dir.resolve("b/run.json")).replace(" ", "");
            assertTrue(status.contains("\"state\":\"failed\"") && status.contains("stepsinarowwereskipped"), status);
        } finally {
            System.clearProperty("gpt2.test.nanLossAtSteps");
        }
    }

    @Test
    void checkpointsArePrunedToKeepLastAndKeepEvery(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path run = dir.resolve("run");
        String[] r = InfoCommandTest.run(trainArgs(data, run, 24, "--keep_last", "2", "--keep_every", "12").toArray(String[]::new));
        assertEquals("0", r[0], r[2]);
        List<String> names;
        try (var s = Files.list(run)) {
            names = s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("checkpoint_")).sorted().toList();
        }
        assertEquals(List.of("checkpoint_00000012", "checkpoint_00000020", "checkpoint_00000024"), names);
    }

    @Test
    void aFullDiskLeavesThePreviousCheckpointIntact(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path run = dir.resolve("run");
        String[] r = InfoCommandTest.run(trainArgs(data, run, 4).toArray(String[]::new));
        assertEquals("0", r[0], r[2]);
        // files may not exceed 100 KiB in the child: its next checkpoint cannot be written
        Path log = dir.resolve("child.log");
        Process p = child(log, "ulimit -f 100", List.of(), trainArgs(data, run, 8, "--resume"));
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        String out = Files.readString(log);
        assertEquals(1, p.exitValue(), out);
        assertTrue(out.contains("could not write the checkpoint of step 8") && out.contains("File too large")
                && out.contains("checkpoint_00000004 is intact"), out);
        try (var s = Files.list(run)) {
            assertEquals(List.of(), s.map(x -> x.getFileName().toString()).filter(n -> n.contains(".tmp")).toList(), "no half-written checkpoint");
        }
        r = InfoCommandTest.run(trainArgs(data, run, 8, "--resume").toArray(String[]::new));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("at step 4"), r[1]);
    }

    @Test
    void badInputIsAOneLineErrorWithExitTwo(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path good = data.resolve("toy_train_000001.bin");
        byte[] bytes = Files.readAllBytes(good);
        Path bad = Files.createDirectories(dir.resolve("bad"));
        Files.write(bad.resolve("trunc_train_1.bin"), java.util.Arrays.copyOf(bytes, bytes.length - 10));
        byte[] magic = bytes.clone();
        magic[0] = 7;
        Files.write(bad.resolve("magic_train_1.bin"), magic);
        int[] big = new int[300];
        java.util.Arrays.fill(big, 600); // token ids >= the model's vocabulary of 512
        ShardWriter.write(bad.resolve("vocab_train_1.bin"), TokenShard.MAGIC_LLMC, big, 0, big.length);
        String[][] cases = {
                {bad.resolve("trunc_train_1.bin").toString(), "trunc_train_1.bin: truncated token shard"},
                {bad.resolve("magic_train_1.bin").toString(), "magic_train_1.bin: bad magic"},
                {bad.resolve("vocab_train_1.bin").toString(), "vocab_train_1.bin: token id 600 at index 0 is >= the vocabulary size 512"},
        };
        for (String[] c : cases) {
            List<String> a = trainArgs(data, dir.resolve("out"), 2);
            a.set(a.indexOf("--input_train_bin") + 1, c[0]);
            String[] r = InfoCommandTest.run(a.toArray(String[]::new));
            assertEquals("2", r[0], c[1] + ": " + r[2]);
            assertTrue(r[2].contains(c[1]), r[2]);
            assertEquals(1, r[2].strip().lines().count(), r[2]);
        }
        // another architecture than the checkpoint holds: both shapes named
        Path run = dir.resolve("run");
        assertEquals("0", InfoCommandTest.run(trainArgs(data, run, 4).toArray(String[]::new))[0]);
        List<String> other = trainArgs(data, run, 8, "--resume", "--n_layer", "2");
        String[] r = InfoCommandTest.run(other.toArray(String[]::new));
        assertEquals("2", r[0], r[2]);
        assertTrue(r[2].contains("holds a model of n_layer 1") && r[2].contains("the flags ask for n_layer 2"), r[2]);
        // an output folder that cannot be made
        Path file = Files.writeString(dir.resolve("afile"), "x");
        r = InfoCommandTest.run(trainArgs(data, file.resolve("sub"), 2).toArray(String[]::new));
        assertEquals("2", r[0], r[2]);
        assertTrue(r[2].contains("--output_dir " + file.resolve("sub") + ": not writable"), r[2]);
        assertEquals("x", Files.readString(file), "nothing good overwritten");
        assertTrue(new File(run.toString(), "checkpoint_00000004").isDirectory());
    }
}
