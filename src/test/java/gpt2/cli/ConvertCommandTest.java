package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

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
}
