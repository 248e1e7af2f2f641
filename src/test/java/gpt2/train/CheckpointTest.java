package gpt2.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.cpu.CpuBackend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.model.TinyConfigs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A checkpoint restores the exact training state and refuses anything it cannot verify. */
class CheckpointTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int B = 2, T = 8;

    /** A tiny model after {@code steps} real AdamW steps on a fixed token pattern. */
    private static void train(Gpt2 model, AdamW opt, int steps, int firstKey) {
        int V = model.config().vocabSize();
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) {
            in[i] = (i * 7 + 3) % V;
            tg[i] = (i * 7 + 10) % V;
        }
        for (int s = 0; s < steps; s++) {
            model.zeroGrad();
            float loss = model.forward(in, tg, B, T, firstKey + s);
            assertTrue(Float.isFinite(loss), "loss " + loss);
            model.backward(1f);
            float[] clip = AdamW.normAndClipScale(model.backend(), model.grads(), 1f);
            opt.step(model.params(), model.grads(), 1e-3f, clip[1]);
        }
    }

    private static float[] read(Backend be, Buffer b, long n) {
        float[] out = new float[(int) n];
        be.read(b, out);
        return out;
    }

    private static void assertBitEqual(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + " length");
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                throw new AssertionError(what + "[" + i + "]: expected " + want[i] + ", got " + got[i]);
            }
        }
    }

    /** CRC32C computed independently of the code under test. */
    private static String crc32c(Path file) throws IOException {
        java.util.zip.CRC32C c = new java.util.zip.CRC32C();
        c.update(Files.readAllBytes(file));
        return String.format("%08x", c.getValue());
    }

    private static String sha256(Path file) throws IOException, NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    private static ObjectNode userState() {
        ObjectNode s = JSON.createObjectNode();
        s.put("note", "hello checkpoint");
        s.put("rng_state", -1234567890123L);
        s.putObject("loader").put("shard", 3).put("position", 4096);
        return s;
    }

    @Test
    void saveWritesACompleteVerifiableDirectory(@TempDir Path out) throws Exception {
        GptConfig cfg = TinyConfigs.gpt2(0.1f);
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(cfg, be);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.initialize(11);
            train(model, opt, 2, 0);
            Path dir = Checkpoint.save(out, 7, model, opt, userState());

            assertEquals(out.resolve("checkpoint_00000007"), dir);
            try (Stream<Path> s = Files.list(out)) {
                assertEquals(List.of("checkpoint_00000007"), s.map(p -> p.getFileName().toString()).toList(),
                        "only the final directory remains (no .tmp)");
            }
            try (Stream<Path> s = Files.list(dir)) {
                assertEquals(List.of(Checkpoint.MODEL, Checkpoint.OPTIMIZER, Checkpoint.STATE),
                        s.map(p -> p.getFileName().toString()).sorted().toList());
            }

            JsonNode st = JSON.readTree(dir.resolve(Checkpoint.STATE).toFile());
            assertEquals("gpt2-java checkpoint v1", st.get("format").asText());
            assertEquals(7, st.get("step").asInt());
            assertEquals(2, st.get("adamw_t").asInt());
            assertEquals("hello checkpoint", st.get("note").asText());
            assertEquals(-1234567890123L, st.get("rng_state").asLong());
            assertEquals(3, st.get("loader").get("shard").asInt());
            assertEquals(4096, st.get("loader").get("position").asInt());
            JsonNode c = st.get("config");
            assertEquals(64, c.get("vocabSize").asInt());
            assertEquals(2, c.get("numLayers").asInt());
            assertEquals(16, c.get("channels").asInt());
            assertEquals(16, c.get("maxSeqLen").asInt());
            JsonNode files = st.get("files");
            assertEquals(2, files.size());
            for (String f : List.of(Checkpoint.MODEL, Checkpoint.OPTIMIZER)) {
                String hex = files.get(f).asText();
                assertTrue(hex.matches("[0-9a-f]{8}"), f + ": " + hex);
                assertEquals(crc32c(dir.resolve(f)), hex, f + " checksum");
            }

            ObjectNode verified = Checkpoint.readState(dir);
            assertEquals(cfg, Checkpoint.config(verified), "config round-trips");
            assertEquals(Optional.of(dir), Checkpoint.latest(out));
        }
    }

    @Test
    void loadRestoresParametersMomentsAndStepBitForBit(@TempDir Path out) {
        GptConfig cfg = TinyConfigs.seed(0.1f);
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(cfg, be);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            long n = model.layout().totalSize();
            model.initialize(5);
            train(model, opt, 2, 100);
            Path dir = Checkpoint.save(out, 12, model, opt, JSON.createObjectNode());
            float[] p = read(be, model.params(), n), m = read(be, opt.m(), n), v = read(be, opt.v(), n);

            ObjectNode state = Checkpoint.readState(dir);
            GptConfig loadedCfg = Checkpoint.config(state);
            assertEquals(cfg, loadedCfg);
            try (Gpt2 fresh = new Gpt2(loadedCfg, be); AdamW freshOpt = new AdamW(fresh, 0.9f, 0.95f, 1e-8f, 0.1f)) {
                long nonzero = 0;
                for (int i = 0; i < n; i++) if (m[i] != 0 && v[i] != 0) nonzero++;
                assertTrue(nonzero > n / 4, "moments are non-trivial after two steps: " + nonzero + " of " + n);
                Checkpoint.loadModel(dir, fresh);
                Checkpoint.loadOptimizer(dir, freshOpt, fresh.layout(), be, state.get("adamw_t").asInt());
                assertBitEqual(p, read(be, fresh.params(), n), "params");
                assertBitEqual(m, read(be, freshOpt.m(), n), "m");
                assertBitEqual(v, read(be, freshOpt.v(), n), "v");
                assertEquals(2, freshOpt.stepCount());

                // resuming continues exactly as the uninterrupted run would
                train(model, opt, 1, 102);
                train(fresh, freshOpt, 1, 102);
                assertBitEqual(read(be, model.params(), n), read(be, fresh.params(), n), "params after one more step");
                assertEquals(opt.stepCount(), freshOpt.stepCount());
            }
        }
    }

    @Test
    void aFlippedByteIsCaughtByTheChecksum(@TempDir Path out) throws IOException {
        Path dir = saveTiny(out, 3);
        Path model = dir.resolve(Checkpoint.MODEL);
        flipByte(model, Files.size(model) - 5);
        var e = assertThrows(IllegalArgumentException.class, () -> Checkpoint.readState(dir));
        assertTrue(e.getMessage().contains(model.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("checksum"), e.getMessage());
    }

    @Test
    void latestPicksTheHighestValidStep(@TempDir Path out) throws IOException {
        assertEquals(Optional.empty(), Checkpoint.latest(out), "empty directory");
        assertEquals(Optional.empty(), Checkpoint.latest(out.resolve("does-not-exist")), "missing directory");
        Files.createDirectories(out.resolve("checkpoint_99"));        // not the 8-digit pattern
        Files.writeString(out.resolve("notes.txt"), "not a checkpoint");
        assertEquals(Optional.empty(), Checkpoint.latest(out), "no checkpoint directories");

        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(TinyConfigs.gpt2(0f), be);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.initialize(1);
            for (int step : new int[]{20, 5, 100, 9}) Checkpoint.save(out, step, model, opt, JSON.createObjectNode());
        }
        assertEquals(Optional.of(out.resolve("checkpoint_00000100")), Checkpoint.latest(out));

        Path opt100 = out.resolve("checkpoint_00000100").resolve(Checkpoint.OPTIMIZER);
        flipByte(opt100, 100);
        assertEquals(Optional.of(out.resolve("checkpoint_00000020")), Checkpoint.latest(out), "skips the corrupt step 100");

        Files.delete(out.resolve("checkpoint_00000020").resolve(Checkpoint.MODEL));
        assertEquals(Optional.of(out.resolve("checkpoint_00000009")), Checkpoint.latest(out), "skips the incomplete step 20");
    }

    @Test
    void anotherFormatIsRefused(@TempDir Path out) throws IOException {
        Path dir = saveTiny(out, 4);
        Path st = dir.resolve(Checkpoint.STATE);
        ObjectNode state = (ObjectNode) JSON.readTree(st.toFile());
        state.put("format", "gpt2-java checkpoint v0");
        JSON.writeValue(st.toFile(), state);
        var e = assertThrows(IllegalArgumentException.class, () -> Checkpoint.readState(dir));
        assertTrue(e.getMessage().contains(st.toString()), e.getMessage());
        assertEquals(Optional.empty(), Checkpoint.latest(out));

        state.remove("format");
        JSON.writeValue(st.toFile(), state);
        assertThrows(IllegalArgumentException.class, () -> Checkpoint.readState(dir));

        Files.delete(st);
        var missing = assertThrows(IllegalArgumentException.class, () -> Checkpoint.readState(dir));
        assertTrue(missing.getMessage().contains(dir.toString()), missing.getMessage());
    }

    @Test
    void savingTheSameStepAgainReplacesIt(@TempDir Path out) throws Exception {
        try (CpuBackend be = new CpuBackend(1); Gpt2 model = new Gpt2(TinyConfigs.gpt2(0f), be)) {
            model.initialize(1);
            Path first = Checkpoint.save(out, 2, model, null, JSON.createObjectNode());
            String before = sha256(first.resolve(Checkpoint.MODEL));
            model.initialize(2);
            Path second = Checkpoint.save(out, 2, model, null, JSON.createObjectNode());
            assertEquals(first, second);
            assertNotEquals(before, sha256(second.resolve(Checkpoint.MODEL)), "new weights were written");
            assertFalse(Files.exists(second.resolve(Checkpoint.OPTIMIZER)), "no optimizer file without an optimizer");
            ObjectNode st = Checkpoint.readState(second);
            assertFalse(st.has("adamw_t"));
            assertEquals(1, st.get("files").size());
        }
    }

    private static Path saveTiny(Path out, int step) {
        try (CpuBackend be = new CpuBackend(2); Gpt2 model = new Gpt2(TinyConfigs.gpt2(0.1f), be);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.initialize(3);
            train(model, opt, 1, 0);
            Path dir = Checkpoint.save(out, step, model, opt, JSON.createObjectNode());
            Checkpoint.readState(dir); // valid before it is damaged
            return dir;
        }
    }

    private static void flipByte(Path file, long at) throws IOException {
        byte[] b = Files.readAllBytes(file);
        b[(int) at] ^= 0x01;
        Files.write(file, b);
    }
}
