package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The modern architecture (d4-modern's switches) through the commands a user types. */
class ModernModelCommandTest {

    /** d4-modern at the size of TrainCommandTest's tiny model (head size 16: eight RoPE pairs). */
    static final String[] TINY_MODERN = {"--model", "d4-modern", "--n_layer", "1", "--n_head", "2", "--n_embd", "32",
            "--block_size", "32", "--vocab_size", "512", "--threads", "2"};

    private static String[] trainArgs(Path data, Path out, String... more) {
        List<String> a = new java.util.ArrayList<>(List.of("train", "--input_train_bin",
                data.resolve("toy_train_*.bin").toString(), "--input_val_bin", data.resolve("toy_val_*.bin").toString(),
                "--output_dir", out.toString(), "--batch_size", "4", "--sequence_length", "16", "--total_batch_size", "64",
                "--learning_rate", "1e-2", "--weight_decay", "0"));
        a.addAll(List.of(TINY_MODERN));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    @Test
    void trainsSamplesAndDescribesTheModernModel(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        Path out = dir.resolve("run");
        String[] r = InfoCommandTest.run(trainArgs(data, out, "--num_iterations", "30", "--val_loss_every", "30",
                "--val_max_steps", "2", "--sample_every", "30"));
        assertEquals("0", r[0], r[2]);
        List<String> losses = TrainCommandTest.stepLosses(r[1]);
        assertEquals(30, losses.size(), r[1]);
        float first = Float.parseFloat(losses.getFirst().split(":")[1]), last = Float.parseFloat(losses.getLast().split(":")[1]);
        // zero-initialised head: the first loss is ln(512) exactly as every logit is 0
        assertEquals(Math.log(512), first, 1e-3, "first loss of a zero-initialised head");
        assertTrue(last < first - 1.0, "loss did not fall: " + losses);
        assertTrue(Files.readString(out.resolve("samples.txt")).contains("--- step 30"), "sampled with the KV cache and RoPE");

        Path ckpt = out.resolve("checkpoint_00000030");
        String[] info = InfoCommandTest.run("info", "--model", ckpt.toString(), "--tensors");
        assertEquals("0", info[0], info[2]);
        assertTrue(info[1].contains("positions rope (theta 10000.0) | qk-norm yes | mlp relu2 | norm weights none | logit softcap 15.0"),
                info[1]);
        assertFalse(info[1].contains("wpe") || info[1].contains("ln_1.weight"), "no position table, no norm weights: " + info[1]);

        // formats that hold OpenAI GPT-2 only refuse it in one line, writing nothing
        for (String[] to : List.of(new String[]{"m.bin", "llmc"}, new String[]{"hf", "hf"})) {
            String[] c = InfoCommandTest.run("convert", "--from", ckpt.toString(), "--to", dir.resolve(to[0]).toString(),
                    "--format", to[1]);
            assertEquals("2", c[0], c[1] + c[2]);
            assertEquals(1, c[2].strip().lines().count(), c[2]);
            assertTrue(c[2].contains("rotary position embeddings") && c[2].contains("qk-norm") && c[2].contains("relu2")
                    && c[2].contains("logit soft-capping"), c[2]);
            assertFalse(Files.exists(dir.resolve(to[0])), to[0] + " was written");
        }
    }

    /** The recipe as the README gives it: Muon on a warmup-constant-warmdown schedule, ending at 0 by default. */
    @Test
    void muonWithTheWsdScheduleWarmsDownToZero(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        String[] r = InfoCommandTest.run(trainArgs(data, dir.resolve("run"), "--num_iterations", "20", "--val_loss_every", "0",
                "--sample_every", "0", "--optimizer", "muon", "--lr_schedule", "wsd", "--warmdown_frac", "0.5",
                "--embedding_lr", "0.05", "--head_lr", "0.02"));
        assertEquals("0", r[0], r[2]);
        List<String> lines = r[1].lines().filter(l -> l.startsWith("step ") && l.contains("| lr ")).toList();
        assertEquals(20, lines.size(), r[1]);
        // Muon's lr (0.02) until step 10, then linearly down: step 20 (0-based 19) is 1/10 of the way from 0
        assertTrue(lines.get(9).contains("| lr 2.00e-02 |"), lines.get(9));
        assertTrue(lines.get(14).contains("| lr 1.20e-02 |"), lines.get(14));
        assertTrue(lines.get(19).contains("| lr 2.00e-03 |"), lines.get(19));
        List<String> losses = TrainCommandTest.stepLosses(r[1]);
        float first = Float.parseFloat(losses.getFirst().split(":")[1]), last = Float.parseFloat(losses.getLast().split(":")[1]);
        assertTrue(last < first - 1.0, "loss did not fall: " + losses);
    }

    @Test
    void eachSwitchIsAFlagAndBadValuesAreOneLine() {
        String[] r = InfoCommandTest.run("info", "--model", "d4", "--rope", "1", "--qk_norm", "1", "--activation", "relu2",
                "--logit_softcap", "30");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("positions rope (theta 50000.0) | qk-norm yes | mlp relu2 | norm weights yes | logit softcap 30.0"),
                r[1]);
        for (String[] bad : List.of(new String[]{"--activation", "swiglu"}, new String[]{"--rope", "2"},
                new String[]{"--norm_weights", "0"}, new String[]{"--logit_softcap", "-1"},
                new String[]{"--rope", "1", "--rope_theta", "0.5"})) {
            List<String> a = new java.util.ArrayList<>(List.of("info", "--model", "d4"));
            a.addAll(List.of(bad));
            String[] e = InfoCommandTest.run(a.toArray(String[]::new));
            assertEquals("2", e[0], String.join(" ", bad) + ": " + e[1]);
            assertEquals(1, e[2].strip().lines().count(), e[2]);
        }
    }
}
