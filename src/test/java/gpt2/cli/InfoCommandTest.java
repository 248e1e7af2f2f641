package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class InfoCommandTest {

    static String[] run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new String[]{String.valueOf(code), out.toString(), err.toString()};
    }

    @Test
    void seedD12PrintsTheOriginalsCount() {
        String[] r = run("info", "--model", "seed-d12");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("parameters: 162,990,336"), r[1]);
        assertTrue(r[1].contains("parameters with padded vocabulary: 163,062,528"), r[1]);
        assertTrue(r[1].contains("norm rmsnorm"), r[1]);
    }

    @Test
    void overridesChangeTheCount() {
        String[] r = run("info", "--model", "gpt2", "--n_layer", "1", "--vocab_size", "100", "--tensors");
        assertEquals("0", r[0], r[2]);
        // wte (128 padded rows; 100 real) + wpe + one layer + ln_f
        long c = 768, perLayer = 2 * c + 3 * c * c + 3 * c + c * c + c + 2 * c + 4 * c * c + 4 * c + 4 * c * c + c;
        long expected = 100 * c + 1024 * c + perLayer + 2 * c;
        assertTrue(r[1].contains(String.format("parameters: %,d", expected)), r[1]);
        assertTrue(r[1].contains("h.0.attn.c_attn.weight"), r[1]);
    }

    @Test
    void unknownPresetIsAOneLineError() {
        String[] r = run("info", "--model", "gpt5");
        assertEquals("2", r[0]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertTrue(r[2].contains("--model gpt5: no such file or folder, and not a preset name (presets: gpt2, "), r[2]);
    }

    /**
     * Issue 29: `info --model nope.bin` said "unknown model preset" where `sample` said "no such file
     * or folder": every command now says the same, whatever the name looks like.
     */
    @Test
    void aMissingModelFileGetsTheSameMessageFromEveryCommand(@TempDir Path dir) {
        for (String name : new String[]{"nope.bin", dir.resolve("nope.bin").toString(), "./nope"}) {
            String[] info = run("info", "--model", name), sample = run("sample", "--model", name);
            String want = "--model " + name + ": no such file or folder, and not a preset name (presets: ";
            assertEquals("2", info[0], info[2]);
            assertEquals("2", sample[0], sample[2]);
            assertTrue(info[2].contains(want) && info[2].strip().lines().count() == 1, info[2]);
            assertTrue(sample[2].contains(want) && sample[2].strip().lines().count() == 1, sample[2]);
        }
    }

    @Test
    void badOverrideIsAOneLineError() {
        String[] r = run("info", "--n_head", "5");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("n_embd 768 must be divisible by n_head 5"), r[2]);
    }

    /** Issue 22.6: --model promised checkpoints and run folders, and refused them. */
    @Test
    void describesACheckpointARunFolderAndAnLlmcFile(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path ckpt = SampleCommandTest.checkpoint(dir);
        String[] r = run("info", "--model", ckpt.toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("weights: " + ckpt + " (OURS)") && r[1].contains("  step 2\n"), r[1]);
        assertTrue(r[1].contains("recorded flags:") && r[1].contains("--num_iterations 2") && r[1].contains("--batch_size 2"), r[1]);
        assertTrue(r[1].contains("n_layer 1") && r[1].contains("parameters: "), r[1]);
        r = run("info", "--model", ckpt.getParent().toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("a run folder; using its newest valid checkpoint, checkpoint_00000002") && r[1].contains("step 2"), r[1]);
        String[] c = run("convert", "--from", ckpt.toString(), "--to", dir.resolve("m.bin").toString());
        assertEquals("0", c[0], c[2]);
        r = run("info", "--model", dir.resolve("m.bin").toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("(LLMC)") && !r[1].contains("recorded flags"), r[1]);
    }
}
