package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 convert`, and other commands taking llm.c files and Hugging Face folders as --model. */
class ConvertCommandTest {

    @Test
    void convertThenSampleTrainAndScoreTheConvertedFiles(@TempDir Path dir) throws Exception {
        Path ckpt = SampleCommandTest.checkpoint(dir);
        String[] r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", dir.resolve("m.bin").toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("(OURS,") && r[1].contains("(LLMC, float32)"), r[1]);
        r = InfoCommandTest.run("convert", "--from", dir.resolve("m.bin").toString(), "--to", dir.resolve("hf").toString(),
                "--format", "hf", "--dtype", "bfloat16");
        assertEquals("0", r[0], r[2]);
        assertTrue(Files.exists(dir.resolve("hf/config.json")) && Files.exists(dir.resolve("hf/model.safetensors")));

        String[] a = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--max_new_tokens", "10", "--seed", "3", "--device", "cpu");
        String[] b = InfoCommandTest.run("sample", "--model", dir.resolve("m.bin").toString(), "--max_new_tokens", "10", "--seed", "3",
                "--device", "cpu");
        assertEquals("0", b[0], b[2]);
        assertEquals(SampleCommandTest.text(a), SampleCommandTest.text(b), "an llm.c copy samples the same text");

        Path data = dir.resolve("data");
        r = InfoCommandTest.run("train", "--model", dir.resolve("hf").toString(), "--input_train_bin",
                data.resolve("toy_train_*.bin").toString(), "--batch_size", "2", "--sequence_length", "16",
                "--total_batch_size", "32", "--num_iterations", "2", "--device", "cpu");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("weights from " + dir.resolve("hf")), r[1]);

        Path hs = Files.writeString(dir.resolve("h.jsonl"),
                "{\"ctx\": \"A cat\", \"endings\": [\"sat.\", \"ran.\", \"flew.\", \"sang.\"], \"label\": 0}\n");
        r = InfoCommandTest.run("hellaswag", "--model", dir.resolve("m.bin").toString(), "--input", hs.toString(), "--device", "cpu");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("1 examples | acc"), r[1]);
    }

    @Test
    void badConversionsAreOneLineErrors(@TempDir Path dir) throws Exception {
        String[] r = InfoCommandTest.run("convert", "--from", dir.toString(), "--to", dir.resolve("x.bin").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("not a model"), r[2]);
        Path ckpt = SampleCommandTest.checkpoint(dir);
        r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", dir.resolve("out").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--format is needed"), r[2]);
        r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", dir.resolve("out").toString(), "--format", "onnx");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--format onnx"), r[2]);
    }

    /** Every regular file below dir with its bytes' hash: what "unchanged" means. */
    static Map<String, Integer> contents(Path dir) throws Exception {
        Map<String, Integer> m = new TreeMap<>();
        try (var s = Files.walk(dir)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                m.put(dir.relativize(f).toString(), java.util.Arrays.hashCode(Files.readAllBytes(f)));
            }
        }
        return m;
    }

    /** Issue 22.1: --to an existing run folder deleted it (logs, checkpoints); a file was overwritten. */
    @Test
    void convertNeverDeletesWhatItDidNotMake(@TempDir Path dir) throws Exception {
        Path ckpt = SampleCommandTest.checkpoint(dir);
        Path run = ckpt.getParent(), other = dir.resolve("other-run"); // another run folder: logs and checkpoints
        try (var s = Files.walk(run)) {
            for (Path p : s.toList()) Files.copy(p, other.resolve(run.relativize(p).toString()));
        }
        Map<String, Integer> before = contents(other);
        assertTrue(before.containsKey("main.log") && before.size() > 3, before.toString());
        String[] r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", other.toString(), "--format", "ours");
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--to " + other + ": already exists (a folder that is not empty)") && r[2].strip().lines().count() == 1, r[2]);
        assertEquals(before, contents(other), "the refused target is untouched");
        before = contents(run);

        Path bin = Files.writeString(dir.resolve("precious.bin"), "not a model, but mine");
        r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", bin.toString());
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("already exists (a file)"), r[2]);
        assertEquals("not a model, but mine", Files.readString(bin));

        // --overwrite 1: the old one is moved aside, whole, once the new one is complete
        r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", bin.toString(), "--overwrite", "1");
        assertEquals("0", r[0], r[2]);
        assertEquals("not a model, but mine", Files.readString(dir.resolve("precious.bin.old-1")));
        assertTrue(r[1].contains("is now at " + dir.resolve("precious.bin.old-1")), r[1]);
        Path copy = dir.resolve("copy");
        r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", copy.toString(), "--format", "ours");
        assertEquals("0", r[0], r[2]);
        r = InfoCommandTest.run("convert", "--from", bin.toString(), "--to", copy.toString(), "--format", "ours", "--overwrite", "1");
        assertEquals("0", r[0], r[2]);
        assertTrue(Files.exists(copy.resolve("model.safetensors")) && Files.exists(dir.resolve("copy.old-1/model.safetensors")));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(".tmp")), "no temporary left behind");
        }
        // the folder holding the model being read is refused even with --overwrite 1
        r = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", run.toString(), "--format", "ours", "--overwrite", "1");
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("holds the model being read"), r[2]);
        assertEquals(before, contents(run));
    }

    /** Issue 22.1: `--to .` deleted every file in the working folder. A child JVM, so "." is a folder of the test's. */
    @Test
    void theWorkingFolderIsNeverATarget(@TempDir Path dir) throws Exception {
        Path ckpt = SampleCommandTest.checkpoint(dir);
        Path work = Files.createDirectories(dir.resolve("work"));
        Files.writeString(work.resolve("thesis.tex"), "years of work");
        for (String overwrite : List.of("0", "1")) {
            Process p = new ProcessBuilder(ReliabilityTest.gpt2Command(List.of(), List.of("convert", "--from", ckpt.toString(),
                    "--to", ".", "--format", "ours", "--overwrite", overwrite))).directory(work.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            assertTrue(p.waitFor(120, TimeUnit.SECONDS));
            assertEquals(2, p.exitValue(), out);
            assertTrue(out.contains("--to .: is the working folder or holds it"), out);
            assertEquals("years of work", Files.readString(work.resolve("thesis.tex")));
        }
    }

    /** Issue 22.1: a checkpoint replaced by converted weights made --resume refuse instead of falling back. */
    @Test
    void resumeFallsBackPastAWeightsOnlyCheckpoint(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path out = dir.resolve("run");
        String[] r = InfoCommandTest.run(TrainCommandTest.args(data, out, "--num_iterations", "4", "--save_every_niter", "2"));
        assertEquals("0", r[0], r[2]);
        Path newest = out.resolve("checkpoint_00000004");
        Map<String, Integer> before = contents(newest);
        r = InfoCommandTest.run("convert", "--from", out.resolve("checkpoint_00000002").toString(), "--to", newest.toString(),
                "--format", "ours");
        assertEquals("2", r[0]);
        assertEquals(before, contents(newest), "the checkpoint is not replaced without --overwrite 1");
        r = InfoCommandTest.run("convert", "--from", out.resolve("checkpoint_00000002").toString(), "--to", newest.toString(),
                "--format", "ours", "--overwrite", "1");
        assertEquals("0", r[0], r[2]);
        assertEquals(before, contents(out.resolve("checkpoint_00000004.old-1")), "moved aside whole");
        r = InfoCommandTest.run(TrainCommandTest.args(data, out, "--num_iterations", "6", "--save_every_niter", "2", "--resume"));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[2].contains("skipping " + newest + ": holds weights only"), r[2]);
        assertTrue(r[1].contains("resumed from " + out.resolve("checkpoint_00000002") + " at step 2"), r[1]);
    }
}
