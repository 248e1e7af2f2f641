package gpt2.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.model.GptConfig;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Hugging Face transformers' GPT-2: a folder with {@code config.json} and {@code model.safetensors}.
 * Names as transformers' GPT2Model ({@code wte.weight}, {@code h.0.attn.c_attn.weight}, ...; an
 * optional {@code transformer.} prefix and a separate {@code lm_head.weight} are accepted when
 * reading). Its Conv1D weights are stored [in, out], the transpose of ours; the vocabulary is not
 * padded.
 */
public final class HfFormat {
    private HfFormat() {
    }

    public static final String CONFIG = "config.json", WEIGHTS = "model.safetensors";
    private static final ObjectMapper JSON = new ObjectMapper();

    public static boolean isHfDir(Path p) {
        return Files.isDirectory(p) && Files.isRegularFile(p.resolve(CONFIG)) && Files.isRegularFile(p.resolve(WEIGHTS));
    }

    public static GptConfig readConfig(Path dir) {
        JsonNode c;
        try {
            c = JSON.readTree(dir.resolve(CONFIG).toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(dir.resolve(CONFIG) + ": not valid JSON (" + e.getMessage() + ")");
        }
        for (String k : List.of("n_layer", "n_head", "n_embd", "vocab_size")) {
            if (!c.path(k).canConvertToInt()) throw new IllegalArgumentException(dir.resolve(CONFIG) + ": no integer '" + k + "'");
        }
        int positions = c.path("n_positions").asInt(c.path("n_ctx").asInt(1024));
        boolean tied = c.path("tie_word_embeddings").asBoolean(true);
        float eps = (float) c.path("layer_norm_epsilon").asDouble(1e-5);
        return GptConfig.preset("gpt2").with(b -> b.name("hf-gpt2").numLayers(c.get("n_layer").asInt())
                .numHeads(c.get("n_head").asInt()).channels(c.get("n_embd").asInt()).vocabSize(c.get("vocab_size").asInt())
                .maxSeqLen(positions).normEps(eps).tiedEmbeddings(tied));
    }

    /** Our tensor name to the HF name and whether HF stores it transposed (Conv1D weights). */
    static String hfName(String ours) {
        if (ours.equals("wte") || ours.equals("wpe")) return ours + ".weight";
        return ours;
    }

    static boolean conv1d(TensorSpec t) {
        return t.rank() == 2 && t.name().startsWith("h.");
    }

    /** HF's shape of one of our tensors. */
    static long[] hfShape(TensorSpec t, GptConfig c, ParameterLayout p) {
        if (p.hasVocabRows(t)) return new long[]{c.vocabSize(), c.channels()};
        return conv1d(t) ? new long[]{t.dim(1), t.dim(0)} : t.shape();
    }

    public static void read(Path dir, GptConfig c, MemorySegment dst) {
        ParameterLayout p = ParameterLayout.of(c);
        try (Safetensors.Reader r = new Safetensors.Reader(dir.resolve(WEIGHTS)); Arena arena = Arena.ofConfined()) {
            String prefix = r.tensors().containsKey("wte.weight") ? "" : "transformer.";
            if (!r.tensors().containsKey(prefix + "wte.weight")) {
                throw new IllegalArgumentException(dir.resolve(WEIGHTS) + ": no 'wte.weight' (is this a GPT-2 model?)");
            }
            dst.fill((byte) 0);
            long largestConv1d = 0;
            for (TensorSpec t : p.tensors()) if (conv1d(t)) largestConv1d = Math.max(largestConv1d, t.size());
            MemorySegment widened = null; // a 16-bit Conv1D weight in float32 before the transpose (one, reused)
            for (TensorSpec t : p.tensors()) {
                String name = t == p.lmHead() && !c.tiedEmbeddings() ? "lm_head.weight" : prefix + hfName(t.name());
                long[] shape = hfShape(t, c, p);
                long n = shape[0] * (shape.length > 1 ? shape[1] : 1);
                if (!conv1d(t)) {
                    r.readFloats(name, shape, dst.asSlice(t.offset() * 4, n * 4)); // wte: its first V (unpadded) rows
                    continue;
                }
                MemorySegment src; // HF [in, out], transposed into ours (out, in)
                Safetensors.Info info = r.tensors().get(name);
                if (info != null && info.dtype().equals("F32")) {
                    src = r.f32(name, shape); // straight from the mapped file
                } else {
                    if (widened == null) widened = arena.allocate(largestConv1d * 4, 64);
                    src = widened.asSlice(0, n * 4);
                    r.readFloats(name, shape, src);
                }
                FloatCopy.transpose(src, 0, dst, t.offset(), (int) shape[0], (int) shape[1]);
            }
        }
    }

    /** Writes config.json and model.safetensors into {@code dir} (created; files renamed into place). */
    public static void write(Path dir, GptConfig c, MemorySegment src, boolean bf16) {
        LlmcFormat.checkRepresentable(c, "Hugging Face GPT-2");
        ParameterLayout p = ParameterLayout.of(c);
        try (Arena arena = Arena.ofConfined()) {
            Files.createDirectories(dir);
            List<Safetensors.Entry> entries = new ArrayList<>();
            for (TensorSpec t : p.tensors()) {
                long[] shape = hfShape(t, c, p);
                long n = shape[0] * (shape.length > 1 ? shape[1] : 1);
                MemorySegment data;
                if (conv1d(t)) {
                    data = arena.allocate(n * 4, 64);
                    FloatCopy.transpose(src, t.offset(), data, 0, (int) t.dim(0), (int) t.dim(1)); // ours (out, in) -> HF [in, out]
                } else {
                    data = src.asSlice(t.offset() * 4, n * 4); // wte: the first V (unpadded) rows
                }
                entries.add(new Safetensors.Entry(hfName(t.name()), shape, data, bf16 ? "BF16" : "F32"));
            }
            Path weights = dir.resolve(WEIGHTS + ".tmp");
            Safetensors.write(weights, entries, Map.of("format", "pt"));
            Files.move(weights, dir.resolve(WEIGHTS), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            Path cfg = dir.resolve(CONFIG + ".tmp");
            JSON.copy().enable(SerializationFeature.INDENT_OUTPUT).writeValue(cfg.toFile(), configJson(c, bf16));
            Files.move(cfg, dir.resolve(CONFIG), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot write (" + e.getMessage() + ")", e);
        }
    }

    /** transformers' GPT2Config keys. */
    static ObjectNode configJson(GptConfig c, boolean bf16) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("architectures", List.of("GPT2LMHeadModel"));
        m.put("model_type", "gpt2");
        m.put("vocab_size", c.vocabSize());
        m.put("n_positions", c.maxSeqLen());
        m.put("n_ctx", c.maxSeqLen());
        m.put("n_embd", c.channels());
        m.put("n_layer", c.numLayers());
        m.put("n_head", c.numHeads());
        m.put("n_inner", null);
        m.put("activation_function", "gelu_new");
        m.put("layer_norm_epsilon", Double.parseDouble(Float.toString(c.normEps()))); // 1e-05, not 9.99e-06
        double pdrop = Double.parseDouble(Float.toString(c.dropout()));
        m.put("resid_pdrop", pdrop);
        m.put("embd_pdrop", pdrop);
        m.put("attn_pdrop", pdrop);
        m.put("initializer_range", 0.02);
        m.put("bos_token_id", 50256);
        m.put("eos_token_id", 50256);
        m.put("tie_word_embeddings", true);
        m.put("torch_dtype", bf16 ? "bfloat16" : "float32");
        return JSON.valueToTree(m);
    }
}
