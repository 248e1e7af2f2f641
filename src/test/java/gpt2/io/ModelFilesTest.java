package gpt2.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import gpt2.backend.cpu.CpuBackend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.ModelFiles;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Our checkpoints, llm.c model files and Hugging Face GPT-2 folders, into each other. */
class ModelFilesTest {

    static final GptConfig TINY = GptConfig.preset("gpt2").with(b -> b.name("tiny").numLayers(2).numHeads(2).channels(8)
            .maxSeqLen(16).vocabSize(50));
    private final CpuBackend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    Gpt2 trained(GptConfig c) {
        Gpt2 m = new Gpt2(c, be);
        m.initialize(3);
        // non-trivial biases and norms too
        float[] p = params(m);
        Random r = new Random(1);
        for (int i = 0; i < p.length; i++) p[i] += (float) r.nextGaussian() * 0.01f;
        // padded vocabulary rows stay zero, as training keeps them
        long V = c.vocabSize(), C = c.channels();
        for (long i = V * C; i < m.layout().wte().size(); i++) p[(int) (m.layout().wte().offset() + i)] = 0;
        be.write(m.params(), p);
        return m;
    }

    float[] params(Gpt2 m) {
        float[] p = new float[(int) m.layout().totalSize()];
        be.read(m.params(), p);
        return p;
    }

    Gpt2 imported(Path p) {
        Gpt2 m = new Gpt2(ModelFiles.config(p), be);
        ModelFiles.loadInto(p, m);
        return m;
    }

    @Test
    void roundTripsAreBitwiseInFloat32(@TempDir Path dir) {
        try (Gpt2 m = trained(TINY)) {
            float[] want = params(m);
            ModelFiles.export(m, dir.resolve("m.bin"), ModelFiles.Format.LLMC, false);
            try (Gpt2 a = imported(dir.resolve("m.bin"))) {
                assertEquals(TINY.paddedVocabSize(), a.config().paddedVocabSize());
                assertArrayEquals(want, params(a), "ours -> llm.c -> ours");
            }
            ModelFiles.export(m, dir.resolve("hf"), ModelFiles.Format.HF, false);
            try (Gpt2 b = imported(dir.resolve("hf"))) {
                assertArrayEquals(want, params(b), "ours -> HF -> ours");
            }
            ModelFiles.export(m, dir.resolve("ours"), ModelFiles.Format.OURS, false);
            try (Gpt2 c = imported(dir.resolve("ours"))) {
                assertArrayEquals(want, params(c), "ours -> ours");
            }
        }
    }

    @Test
    void bf16ExportsStayWithinBf16Rounding(@TempDir Path dir) {
        try (Gpt2 m = trained(TINY)) {
            float[] want = params(m);
            for (ModelFiles.Format f : new ModelFiles.Format[]{ModelFiles.Format.LLMC, ModelFiles.Format.HF}) {
                Path p = dir.resolve(f == ModelFiles.Format.LLMC ? "m16.bin" : "hf16");
                ModelFiles.export(m, p, f, true);
                try (Gpt2 b = imported(p)) {
                    float[] got = params(b);
                    for (int i = 0; i < want.length; i++) {
                        // 8 significant bits, rounded to nearest: relative error at most half an ulp, 2^-8
                        assertEquals(want[i], got[i], Math.abs(want[i]) * 0x1p-8, f + " element " + i);
                    }
                }
            }
        }
    }

    /** A bf16 llm.c file reads as its stored bits widened: each value decoded here from the bytes. */
    @Test
    void bf16LlmcFilesReadExactlyTheStoredValues(@TempDir Path dir) throws Exception {
        Path p = dir.resolve("m16.bin");
        try (Gpt2 m = trained(TINY)) {
            ModelFiles.export(m, p, ModelFiles.Format.LLMC, true);
        }
        ByteBuffer file = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
        gpt2.model.ParameterLayout layout = gpt2.model.ParameterLayout.of(TINY);
        float[] want = new float[(int) layout.totalSize()];
        int at = 1024;
        for (gpt2.model.TensorSpec t : LlmcFormat.order(layout)) {
            for (int i = 0; i < t.size(); i++, at += 2) want[(int) t.offset() + i] = Float.intBitsToFloat((file.getShort(at) & 0xffff) << 16);
        }
        assertEquals(file.capacity(), at, "the whole file");
        try (Gpt2 b = imported(p)) {
            assertArrayEquals(want, params(b));
        }
    }

    @Test
    void hfExportHasTransformersNamesShapesAndConfig(@TempDir Path dir) throws Exception {
        try (Gpt2 m = trained(TINY)) {
            ModelFiles.export(m, dir, ModelFiles.Format.HF, false);
        }
        TreeSet<String> names = new TreeSet<>();
        try (Safetensors.Reader r = new Safetensors.Reader(dir.resolve("model.safetensors"))) {
            Map<String, Safetensors.Info> t = r.tensors();
            names.addAll(t.keySet());
            assertArrayEquals(new long[]{50, 8}, t.get("wte.weight").shape(), "unpadded vocabulary");
            assertArrayEquals(new long[]{16, 8}, t.get("wpe.weight").shape());
            assertArrayEquals(new long[]{8, 24}, t.get("h.1.attn.c_attn.weight").shape(), "Conv1D [in, out]");
            assertArrayEquals(new long[]{24}, t.get("h.1.attn.c_attn.bias").shape());
            assertArrayEquals(new long[]{8, 8}, t.get("h.0.attn.c_proj.weight").shape());
            assertArrayEquals(new long[]{8, 32}, t.get("h.0.mlp.c_fc.weight").shape());
            assertArrayEquals(new long[]{32, 8}, t.get("h.0.mlp.c_proj.weight").shape());
        }
        List<String> expected = new ArrayList<>(List.of("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"));
        for (int l = 0; l < 2; l++) {
            for (String s : List.of("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                    "mlp.c_proj.bias")) {
                expected.add("h." + l + "." + s);
            }
        }
        assertEquals(new TreeSet<>(expected), names);
        JsonNode cfg = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        for (String k : List.of("model_type", "vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head",
                "activation_function", "layer_norm_epsilon", "tie_word_embeddings")) {
            assertTrue(cfg.has(k), "config.json lacks " + k);
        }
        assertEquals("gpt2", cfg.get("model_type").asText());
        assertEquals("gelu_new", cfg.get("activation_function").asText());
        assertEquals(1e-5, cfg.get("layer_norm_epsilon").asDouble(), 0);
        assertEquals(8, cfg.get("n_embd").asInt());
    }

    /** An llm.c file whose every float is its index in the file: each tensor must land where llm.c puts it. */
    @Test
    void llmcFileFromKnownNumbersLoadsIntoTheRightTensors(@TempDir Path dir) throws Exception {
        int maxT = 8, V = 10, L = 2, NH = 2, C = 4, Vp = 16;
        long total = (long) Vp * C + (long) maxT * C + L * (12L * C * C + 13L * C) + 2L * C;
        ByteBuffer b = ByteBuffer.allocate((int) (1024 + 4 * total)).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(LlmcFormat.MAGIC).putInt(3).putInt(maxT).putInt(V).putInt(L).putInt(NH).putInt(C).putInt(Vp);
        b.position(1024);
        for (int i = 0; i < total; i++) b.putFloat(i);
        Path f = Files.write(dir.resolve("known.bin"), b.array());
        try (Gpt2 m = imported(f)) {
            float[] p = params(m);
            var lay = m.layout();
            int wpe = Vp * C, ln1w = wpe + maxT * C, ln1b = ln1w + L * C, qkvw = ln1b + L * C, qkvb = qkvw + L * 3 * C * C;
            int apw = qkvb + L * 3 * C, apb = apw + L * C * C, ln2w = apb + L * C, ln2b = ln2w + L * C, fcw = ln2b + L * C;
            int fcb = fcw + L * 4 * C * C, fpw = fcb + L * 4 * C, fpb = fpw + L * 4 * C * C, lnfw = fpb + L * C, lnfb = lnfw + C;
            assertEquals(0f, p[(int) lay.wte().offset()]);
            assertEquals(wpe, p[(int) lay.wpe().offset()]);
            assertEquals(ln1w + C, p[(int) lay.layer(1).ln1w().offset()], "layer 1's ln1w follows layer 0's");
            assertEquals(qkvw + 3 * C * C + 5, p[(int) lay.layer(1).qkvw().offset() + 5]);
            assertEquals(apb, p[(int) lay.layer(0).attprojb().offset()]);
            assertEquals(fcb + 4 * C + 7, p[(int) lay.layer(1).fcb().offset() + 7]);
            assertEquals(fpw + 9, p[(int) lay.layer(0).fcprojw().offset() + 9]);
            assertEquals(lnfb + C - 1, p[(int) lay.lnfb().offset() + C - 1], "the last float of the file");
            assertEquals(ln2b, p[(int) lay.layer(0).ln2b().offset()]);
        }
    }

    @Test
    void logitsAreTheSameBeforeExportAndAfterImport(@TempDir Path dir) {
        int[] tokens = {1, 7, 3, 49, 0, 22, 5, 8};
        try (Gpt2 m = trained(TINY)) {
            m.forward(tokens, null, 1, tokens.length, -1);
            float[] want = m.logits(0, 7);
            ModelFiles.export(m, dir.resolve("hf"), ModelFiles.Format.HF, false);
            try (Gpt2 b = imported(dir.resolve("hf"))) {
                b.forward(tokens, null, 1, tokens.length, -1);
                assertArrayEquals(want, b.logits(0, 7));
            }
        }
    }

    @Test
    void hfReadingAcceptsTransformerPrefixAndLmHead(@TempDir Path dir) throws Exception {
        try (Gpt2 m = trained(TINY); Arena arena = Arena.ofConfined()) {
            ModelFiles.export(m, dir.resolve("plain"), ModelFiles.Format.HF, false);
            Path prefixed = Files.createDirectories(dir.resolve("prefixed"));
            Files.copy(dir.resolve("plain/config.json"), prefixed.resolve("config.json"));
            List<Safetensors.Entry> entries = new ArrayList<>();
            try (Safetensors.Reader r = new Safetensors.Reader(dir.resolve("plain/model.safetensors"))) {
                for (Safetensors.Info t : r.tensors().values()) {
                    MemorySegment s = arena.allocate(t.elements() * 4, 64);
                    r.readFloats(t.name(), t.shape(), s);
                    entries.add(new Safetensors.Entry("transformer." + t.name(), t.shape(), s));
                    if (t.name().equals("wte.weight")) entries.add(new Safetensors.Entry("lm_head.weight", t.shape(), s));
                }
            }
            Safetensors.write(prefixed.resolve("model.safetensors"), entries, Map.of());
            try (Gpt2 b = imported(prefixed)) {
                assertArrayEquals(params(m), params(b));
            }
        }
    }

    @Test
    void badFilesAndUnrepresentableModelsAreRefused(@TempDir Path dir) throws Exception {
        try (Gpt2 m = trained(TINY)) {
            ModelFiles.export(m, dir.resolve("m.bin"), ModelFiles.Format.LLMC, false);
            ModelFiles.export(m, dir.resolve("hf"), ModelFiles.Format.HF, false);
        }
        byte[] bin = Files.readAllBytes(dir.resolve("m.bin"));
        Path cut = Files.write(dir.resolve("cut.bin"), java.util.Arrays.copyOf(bin, bin.length - 8));
        var e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.config(cut));
        assertTrue(e.getMessage().contains("cut.bin: truncated llm.c model file"), e.getMessage());
        byte[] v9 = bin.clone();
        v9[4] = 9;
        Path badVersion = Files.write(dir.resolve("v9.bin"), v9);
        e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.config(badVersion));
        assertTrue(e.getMessage().contains("llm.c model version 9"), e.getMessage());
        Path text = Files.writeString(dir.resolve("notes.txt"), "hello");
        e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.config(text));
        assertTrue(e.getMessage().contains("notes.txt: not a model"), e.getMessage());
        // a config that promises more layers than the weights hold
        Path cfg = dir.resolve("hf/config.json");
        Files.writeString(cfg, Files.readString(cfg).replace("\"n_layer\" : 2", "\"n_layer\" : 3"));
        e = assertThrows(IllegalArgumentException.class, () -> imported(dir.resolve("hf")));
        assertTrue(e.getMessage().contains("no tensor 'h.2.ln_1.weight'"), e.getMessage());
        // the original project's architecture does not fit either format
        GptConfig seed = GptConfig.preset("seed-d12").with(b -> b.numLayers(1).channels(8).numHeads(2).vocabSize(50).maxSeqLen(8));
        try (Gpt2 s = trained(seed)) {
            e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.export(s, dir.resolve("s.bin"), ModelFiles.Format.LLMC, false));
            assertTrue(e.getMessage().contains("RMSNorm") && e.getMessage().contains("no q/k/v bias")
                    && e.getMessage().contains("untied output head"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ModelFiles.export(s, dir.resolve("s-hf"), ModelFiles.Format.HF, false));
            assertTrue(e.getMessage().contains("Hugging Face GPT-2 holds OpenAI GPT-2 models only"), e.getMessage());
        }
        assertTrue(!Files.exists(dir.resolve("s.bin")));
    }

    @Test
    void f16TensorsAreRead(@TempDir Path dir) throws Exception {
        // a hand-written F16 tensor: 1.5 and -2.0 in IEEE half precision
        String header = "{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
        ByteBuffer b = ByteBuffer.allocate(8 + header.length() + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length()).put(header.getBytes()).putShort(Float.floatToFloat16(1.5f)).putShort(Float.floatToFloat16(-2f));
        Path f = Files.write(dir.resolve("h.safetensors"), b.array());
        try (Safetensors.Reader r = new Safetensors.Reader(f); Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(8);
            r.readFloats("x", new long[]{2}, s);
            assertEquals(1.5f, s.getAtIndex(ValueLayout.JAVA_FLOAT, 0));
            assertEquals(-2f, s.getAtIndex(ValueLayout.JAVA_FLOAT, 1));
        }
    }
}
