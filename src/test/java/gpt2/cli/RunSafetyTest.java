package gpt2.cli;

import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static gpt2.cli.TrainCommandTest.args;
import static gpt2.cli.TrainCommandTest.shards;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 train` never damages an output folder: refused runs leave every byte as it was. */
class RunSafetyTest {

    /** Every file under dir (relative path) with the SHA-256 of its bytes. */
    static Map<String, String> snapshot(Path dir) throws Exception {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                out.put(dir.relativize(f).toString(), HexFormat.of().formatHex(
                        MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f))));
            }
        }
        return out;
    }

    /** A finished 4-step run with checkpoints at 2 and 4. */
    private static Path finishedRun(Path dir, Path data) {
        return finishedRun(dir, data, "512");
    }

    /** The same with another vocabulary size (GPT-2's, for commands that tokenize text). */
    private static Path finishedRun(Path dir, Path data, String vocab) {
        Path out = dir.resolve("run");
        String[] a = args(data, out, "--num_iterations", "4", "--save_every_niter", "2",
                "--val_loss_every", "2", "--val_max_steps", "1", "--sample_every", "2");
        for (int i = 0; i < a.length; i++) if (a[i].equals("--vocab_size")) a[i + 1] = vocab;
        String[] r = InfoCommandTest.run(a);
        assertEquals("0", r[0], r[2]);
        return out;
    }

    @Test
    void aSecondRunIntoAFolderHoldingARunIsRefusedAndChangesNothing(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path out = finishedRun(dir, data);
        Map<String, String> before = snapshot(out);
        String[] r = InfoCommandTest.run(args(data, out, "--num_iterations", "4"));
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("already holds a run (last checkpoint: step 4); continue it with --resume"), r[2]);
        assertEquals(1, r[2].strip().lines().count(), "one line: " + r[2]);
        assertEquals(before, snapshot(out), "the refused run changed the folder");
    }

    @Test
    void overwriteMovesTheOldRunAside(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path out = finishedRun(dir, data);
        Map<String, String> before = snapshot(out);
        String[] r = InfoCommandTest.run(args(data, out, "--num_iterations", "2", "--overwrite", "1", "--save_every_niter", "0"));
        assertEquals("0", r[0], r[2]);
        Path aside = dir.resolve("run.old-1");
        assertTrue(r[1].contains("is now in " + aside), r[1]);
        assertEquals(before, snapshot(aside), "the old run is not intact under its new name");
        assertTrue(Files.isDirectory(out.resolve("checkpoint_00000002")), "the new run's checkpoint");
        assertFalse(Files.exists(out.resolve("checkpoint_00000004")), "an old checkpoint left in the new run");
    }

    @Test
    void aBadTokenInTheFirstBatchStopsTheRunBeforeTheFolderIsTouched(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path out = finishedRun(dir, data);
        Path bad = Files.createDirectories(dir.resolve("bad"));
        int[] tokens = new int[3000];
        tokens[5] = 600; // outside --vocab_size 512
        ShardWriter.write(bad.resolve("toy_train_000001.bin"), TokenShard.MAGIC_LLMC, tokens, 0, 3000);
        Files.copy(data.resolve("toy_val_000000.bin"), bad.resolve("toy_val_000000.bin"));
        Map<String, String> before = snapshot(out);
        // into the finished run with --overwrite 1: refused before anything moves
        String[] r = InfoCommandTest.run(args(bad, out, "--num_iterations", "2", "--overwrite", "1"));
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("600"), r[2]);
        assertEquals(before, snapshot(out));
        assertFalse(Files.exists(dir.resolve("run.old-1")));
        // into a new folder: it is not even created
        r = InfoCommandTest.run(args(bad, dir.resolve("fresh"), "--num_iterations", "2"));
        assertEquals("2", r[0], r[1]);
        assertFalse(Files.exists(dir.resolve("fresh")));
    }

    @Test
    void resumeIsStrict(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path out = finishedRun(dir, data);
        // a finished run: nothing to redo
        Map<String, String> before = snapshot(out);
        String[] r = InfoCommandTest.run(args(data, out, "--num_iterations", "4", "--resume"));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("already complete at step 4"), r[1]);
        assertFalse(r[1].contains("step    4/4 | loss") || r[1].contains("val loss"), r[1]);
        assertEquals(before, snapshot(out));
        // another preset than the checkpoint's is refused with both shapes
        String[] other = args(data, out, "--num_iterations", "6", "--resume");
        for (int i = 0; i < other.length; i++) if (other[i].equals("--n_layer")) other[i + 1] = "2";
        r = InfoCommandTest.run(other);
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("n_layer 1") && r[2].contains("n_layer 2"), r[2]);
        r = InfoCommandTest.run(args(data, out, "--num_iterations", "6", "--resume", "--model", "d4"));
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("holds a model of") && r[2].contains("the flags ask for"), r[2]);
        // every checkpoint corrupt: refused, each named with what is wrong
        Files.writeString(out.resolve("checkpoint_00000004/state.json"), "{ not json");
        Files.write(out.resolve("checkpoint_00000002/model.safetensors"), new byte[]{1, 2, 3}, java.nio.file.StandardOpenOption.APPEND);
        before = snapshot(out);
        r = InfoCommandTest.run(args(data, out, "--num_iterations", "6", "--resume"));
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("checkpoint_00000004 (") && r[2].contains("invalid JSON at line 1"), r[2]);
        assertTrue(r[2].contains("checkpoint_00000002 (") && r[2].contains("checksum mismatch"), r[2]);
        assertEquals(before, snapshot(out));
        // no checkpoint at all: from scratch, said once
        r = InfoCommandTest.run(args(data, dir.resolve("new"), "--num_iterations", "1", "--resume"));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("no checkpoint in " + dir.resolve("new") + "; starting from scratch"), r[1]);
    }

    @Test
    void withoutAnOutputFolderTheRunSaysNothingIsSaved(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        String[] a = args(data, dir.resolve("x"), "--num_iterations", "1");
        java.util.List<String> l = new java.util.ArrayList<>(java.util.List.of(a));
        int i = l.indexOf("--output_dir");
        l.remove(i + 1);
        l.remove(i);
        String[] r = InfoCommandTest.run(l.toArray(String[]::new));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("no --output_dir: nothing is saved"), r[1]);
        assertTrue(r[1].strip().endsWith("note: no --output_dir: nothing was saved"), r[1]);
        String[] file = InfoCommandTest.run(args(data, data.resolve("toy_val_000000.bin"), "--num_iterations", "1"));
        assertEquals("2", file[0]);
        assertTrue(file[2].contains("toy_val_000000.bin: is a file"), file[2]);
    }

    @Test
    void aRunWithoutModelNamesItsArchitecture(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        String[] r = InfoCommandTest.run("train", "--input_train_bin", data.resolve("toy_train_*.bin").toString(),
                "--batch_size", "2", "--sequence_length", "16", "--total_batch_size", "32", "--num_iterations", "1",
                "--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--vocab_size", "512", "--block_size", "32");
        assertEquals("0", r[0], r[2]);
        String first = r[1].lines().findFirst().orElse("");
        assertTrue(first.contains("OpenAI's GPT-2 architecture") && first.contains("--model seed-d12"), first);
    }

    @Test
    void aRunFolderIsAModelForEveryCommand(@TempDir Path dir) throws Exception {
        Path data = shards(Files.createDirectories(dir.resolve("data")));
        Path run = finishedRun(dir, data, "50257");
        String rs = run.toString();
        String[] r = InfoCommandTest.run("sample", "--model", rs, "--max_new_tokens", "4", "--device", "cpu");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[2].contains("a run folder; using its newest valid checkpoint, checkpoint_00000004"), r[2]);
        r = InfoCommandTest.run("convert", "--from", rs, "--to", dir.resolve("copy").toString(), "--format", "ours");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("checkpoint_00000004"), r[1]);
        r = InfoCommandTest.run("bench", "--model", rs, "--device", "cpu", "--steps", "1", "--batch_size", "1",
                "--sequence_length", "8", "--threads", "1");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("checkpoint_00000004") && r[1].contains("bench seed-d12"), r[1]);
        Path hs = Files.writeString(dir.resolve("h.jsonl"),
                "{\"ctx\": \"A cat\", \"endings\": [\"sat.\", \"ran.\", \"flew.\", \"sang.\"], \"label\": 0}\n");
        r = InfoCommandTest.run("hellaswag", "--model", rs, "--input", hs.toString(), "--device", "cpu");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains(run.resolve("checkpoint_00000004") + ": 1 examples"), r[1]);
        assertFalse(r[1].contains("checkpoint_00000002:"), r[1]);
        r = InfoCommandTest.run("hellaswag", "--model", rs, "--input", hs.toString(), "--device", "cpu", "--all_checkpoints", "1");
        assertEquals("0", r[0], r[2]);
        int two = r[1].indexOf("checkpoint_00000002: 1 examples"), four = r[1].indexOf("checkpoint_00000004: 1 examples");
        assertTrue(two >= 0 && four > two, "oldest first: " + r[1]);
        // train from a run folder's weights into a new folder
        String[] ft = args(data, dir.resolve("finetune"), "--num_iterations", "1", "--model", rs);
        for (int i = 0; i < ft.length; i++) if (ft[i].equals("--vocab_size")) ft[i + 1] = "50257";
        r = InfoCommandTest.run(ft);
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("weights from " + run.resolve("checkpoint_00000004")), r[1]);
        // a folder with neither weights nor checkpoints is named as such
        r = InfoCommandTest.run("sample", "--model", data.toString(), "--device", "cpu");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("not a model (a checkpoint directory, run folder with checkpoint_NNNNNNNN inside"), r[2]);
    }
}
