package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 sample` and `gpt2 hellaswag` on a checkpoint trained by `gpt2 train` in the test. */
class SampleCommandTest {

    static Path checkpoint(Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path out = dir.resolve("run");
        String[] args = {"train", "--input_train_bin", data.resolve("toy_train_*.bin").toString(), "--output_dir", out.toString(),
                "--model", "d2", "--n_layer", "1", "--n_embd", "32", "--block_size", "32", "--batch_size", "2",
                "--sequence_length", "16", "--total_batch_size", "32", "--num_iterations", "2", "--threads", "2"};
        String[] r = InfoCommandTest.run(args);
        assertEquals("0", r[0], r[2]);
        return out.resolve("checkpoint_00000002");
    }

    /** The generated text: all of stdout (notes and timings go to stderr). */
    static String text(String[] r) {
        assertFalse(r[1].contains("tokens in") || r[1].contains("note:"), "stdout holds only the text: " + r[1]);
        return r[1];
    }

    @Test
    void sameSeedSameTextAndGreedyIsDeterministic(@TempDir Path dir) throws Exception {
        Path ckpt = checkpoint(dir);
        String[] a = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt", "Hello", "--max_new_tokens", "20",
                "--seed", "7", "--device", "cpu");
        assertEquals("0", a[0], a[2]);
        assertTrue(a[1].startsWith("Hello"), a[1]);
        assertTrue(a[2].contains("20 tokens in"), a[2]);
        // the rate the weights and cache were read at, and its share of the measured read bandwidth
        assertTrue(java.util.regex.Pattern.compile("tokens/s; weights and cache read at [0-9.]+ GB/s = [0-9]+% of this "
                + "machine's read bandwidth, [0-9.]+ GB/s\\)").matcher(a[2]).find(), a[2]);
        String[] b = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt", "Hello", "--max_new_tokens", "20",
                "--seed", "7", "--device", "cpu");
        assertEquals(text(a), text(b), "same seed, same text");
        String[] c = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt", "Hello", "--max_new_tokens", "20",
                "--seed", "8", "--device", "cpu");
        assertNotEquals(text(a), text(c), "another seed, other text");
        String[] g1 = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--temperature", "0", "--max_new_tokens", "40",
                "--seed", "1", "--device", "cpu");
        String[] g2 = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--temperature", "0", "--max_new_tokens", "40",
                "--seed", "2", "--device", "cpu");
        assertEquals("0", g1[0], g1[2]);
        assertEquals(text(g1), text(g2), "greedy ignores the seed");
        // 40 new tokens after the prompt exceed the block size of 32: the window slides
        String[] n = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--num_samples", "2", "--max_new_tokens", "5",
                "--top_p", "0.9", "--device", "cpu");
        assertEquals("0", n[0], n[2]);
        assertTrue(n[1].contains("--- sample 2"), n[1]);
    }

    /** Issue 22.10: --prompt_file: a prompt with newlines from a file samples as the same --prompt. */
    @Test
    void promptFileIsTheSameAsThePrompt(@TempDir Path dir) throws Exception {
        Path ckpt = checkpoint(dir);
        String prompt = "First line,\nsecond line: ";
        Path file = Files.writeString(dir.resolve("prompt.txt"), prompt);
        String[] a = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt", prompt, "--max_new_tokens", "8",
                "--seed", "5", "--device", "cpu");
        String[] b = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt_file", file.toString(),
                "--max_new_tokens", "8", "--seed", "5", "--device", "cpu");
        assertEquals("0", b[0], b[2]);
        assertTrue(b[1].startsWith(prompt), b[1]);
        assertEquals(a[1], b[1]);
        String[] both = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt", "x", "--prompt_file", file.toString());
        assertEquals("2", both[0]);
        assertTrue(both[2].contains("give --prompt or --prompt_file, not both"), both[2]);
        String[] missing = InfoCommandTest.run("sample", "--model", ckpt.toString(), "--prompt_file", dir.resolve("no.txt").toString());
        assertEquals("2", missing[0]);
        assertTrue(missing[2].contains("--prompt_file " + dir.resolve("no.txt") + ": cannot read it"), missing[2]);
    }

    /** gpt2 sample > out.txt, as a user runs it: the file holds the text; the run folder note and the timing go to stderr. */
    @Test
    void stdoutHoldsOnlyTheText(@TempDir Path dir) throws Exception {
        Path run = checkpoint(dir).getParent();
        String[] inProcess = InfoCommandTest.run("sample", "--model", run.toString(), "--prompt", "Hello", "--max_new_tokens", "12",
                "--temperature", "0", "--device", "cpu", "--threads", "1");
        assertEquals("0", inProcess[0], inProcess[2]);
        Path out = dir.resolve("out.txt"), err = dir.resolve("err.txt");
        Process p = new ProcessBuilder(ReliabilityTest.gpt2Command(java.util.List.of(), java.util.List.of("sample", "--model",
                run.toString(), "--prompt", "Hello", "--max_new_tokens", "12", "--temperature", "0", "--device", "cpu", "--threads", "1")))
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
        String text = Files.readString(out), log = Files.readString(err);
        assertEquals(0, p.exitValue(), log);
        assertEquals(text(inProcess), text, "out.txt is the text alone");
        assertTrue(text.startsWith("Hello"), text);
        assertTrue(log.contains("a run folder; using its newest valid checkpoint, checkpoint_00000002"), log);
        assertTrue(log.contains("12 tokens in"), log);
    }

    /** hellaswag in a folder without the prepared data: one line that says how to make it. */
    @Test
    void hellaswagWithoutItsDataSaysToPrepareIt(@TempDir Path dir) throws Exception {
        Process p = new ProcessBuilder(ReliabilityTest.gpt2Command(java.util.List.of(), java.util.List.of("hellaswag", "--model", "d2",
                "--device", "cpu"))).directory(dir.toFile()).redirectErrorStream(false).start();
        String out = new String(p.getInputStream().readAllBytes()), err = new String(p.getErrorStream().readAllBytes());
        assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
        assertEquals(2, p.exitValue(), err);
        assertEquals("", out);
        String line = err.lines().filter(l -> !l.startsWith("WARNING: Using incubator modules")).collect(java.util.stream.Collectors.joining("\n"));
        assertEquals("hellaswag: error: --input data/hellaswag/hellaswag_val.jsonl: no such file; run 'gpt2 prepare hellaswag' first", line);
    }

    @Test
    void badArgumentsAreRefused(@TempDir Path dir) throws Exception {
        String[] r = InfoCommandTest.run("sample", "--model", dir.toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("not a model (a checkpoint directory"), r[2]);
        r = InfoCommandTest.run("sample", "--model", "d2", "--top_p", "0", "--device", "cpu");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--top_p must be in (0, 1]"), r[2]);
        r = InfoCommandTest.run("hellaswag", "--model", "d2", "--input", dir.resolve("none.jsonl").toString());
        assertEquals("2", r[0]);
        assertEquals("hellaswag: error: --input " + dir.resolve("none.jsonl") + ": no such file; run 'gpt2 prepare hellaswag' "
                + "first (it writes data/hellaswag/hellaswag_val.jsonl, the default --input)", r[2].strip());
        r = InfoCommandTest.run("hellaswag", "--model", "d2", "--input", dir.resolve("hellaswag_val.jsonl").toString());
        assertEquals("2", r[0]);
        assertEquals("hellaswag: error: --input " + dir.resolve("hellaswag_val.jsonl") + ": no such file; run 'gpt2 prepare "
                + "hellaswag --output_dir " + dir + "' first", r[2].strip());
        r = InfoCommandTest.run("sample", "--model", "d2", "--device", "cpu", "--dtype", "bfloat16");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--dtype bfloat16: the CPU backend computes in float32"), r[2]);
        r = InfoCommandTest.run("hellaswag", "--model", "d2", "--device", "cpu", "--dtype", "float16",
                "--input", dir.resolve("none.jsonl").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--dtype float16: expected float32 or bfloat16"), r[2]);
        r = InfoCommandTest.run("bench", "--model", "d2", "--device", "cpu", "--dtype", "bfloat16");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--dtype bfloat16: the CPU backend computes in float32"), r[2]);
    }

    @Test
    void hellaswagScoresCheckpointsAndWritesResultsBesideThem(@TempDir Path dir) throws Exception {
        Path ckpt = checkpoint(dir);
        String line = "{\"ctx\": \"The cat sat on the\", \"endings\": [\"mat.\", \"moon.\", \"idea.\", \"sky.\"], \"label\": 0}";
        Path input = Files.writeString(dir.resolve("h.jsonl"), (line + "\n").repeat(5));
        String[] r = InfoCommandTest.run("hellaswag", "--model", ckpt.toString(), "d2", "--input", input.toString(),
                "--verbose", "1", "--device", "cpu", "--batch", "2");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains(ckpt + ": 5 examples | acc "), r[1]);
        assertTrue(r[1].contains("d2: 5 examples | acc "), r[1]);
        assertTrue(r[1].contains("Context:") && r[1].contains("predicted:"), r[1]);
        String json = Files.readString(ckpt.resolve("hellaswag.json"));
        assertTrue(json.contains("\"examples\" : 5") && json.contains("\"acc_norm\""), json);
    }
}
