package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainCommandTest {

    private static final Pattern STEP = Pattern.compile("step +(\\d+)/(\\d+) \\| loss ([0-9.]+) \\| norm");

    @Test
    void trainsATinyModelWithAFallingLoss(@TempDir Path dir) throws Exception {
        Path text = dir.resolve("text.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 40; i++) sb.append("The quick brown fox jumps over the lazy dog number ").append(i % 5).append(". ");
        Files.writeString(text, sb.toString());
        String[] r = InfoCommandTest.run("train", "--model", "d2", "--n_embd", "32", "--input_text", text.toString(),
                "--batch_size", "2", "--sequence_length", "32", "--num_iterations", "25", "--learning_rate", "3e-3",
                "--total_batch_size", "128");
        assertEquals("0", r[0], r[2]);
        List<Float> losses = r[1].lines().map(STEP::matcher).filter(Matcher::find)
                .map(m -> Float.parseFloat(m.group(3))).toList();
        assertEquals(25, losses.size(), r[1]);
        assertTrue(r[1].contains("2 micro-batches"), r[1]);
        assertTrue(losses.getLast() < losses.getFirst() - 3, "loss did not fall: " + losses);
    }

    @Test
    void totalBatchNotAMultipleIsRefused(@TempDir Path dir) throws Exception {
        Path text = Files.writeString(dir.resolve("t.txt"), "hello world ".repeat(200));
        String[] r = InfoCommandTest.run("train", "--model", "d2", "--input_text", text.toString(),
                "--batch_size", "2", "--sequence_length", "32", "--total_batch_size", "100");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--total_batch_size 100 is not a positive multiple of --batch_size 2 x --sequence_length 32 = 64"), r[2]);
    }

    @Test
    void missingInputIsRefused(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("train", "--model", "d2", "--input_text", dir.resolve("nope.txt").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("nope.txt: no such file"), r[2]);
    }

    @Test
    void unsupportedDeviceIsRefused(@TempDir Path dir) throws Exception {
        Path text = Files.writeString(dir.resolve("t.txt"), "hello world ".repeat(200));
        String[] r = InfoCommandTest.run("train", "--model", "d2", "--input_text", text.toString(), "--device", "cuda");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--device cuda"), r[2]);
    }
}
