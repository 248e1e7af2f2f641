package gpt2.train;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import gpt2.io.HfFormat;
import gpt2.io.LlmcFormat;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Model files from anywhere: our checkpoints, llm.c model files and Hugging Face GPT-2 folders,
 * read into and written from a model on any backend (through host memory).
 */
public final class ModelFiles {
    private ModelFiles() {
    }

    public enum Format { OURS, LLMC, HF }

    /** The format of a path, or null when it is none of them. */
    public static Format detect(Path p) {
        if (Files.isDirectory(p)) {
            if (Files.isRegularFile(p.resolve(Checkpoint.STATE))) return Format.OURS;
            if (HfFormat.isHfDir(p)) return Format.HF;
            return null;
        }
        if (Files.isRegularFile(p)) {
            try (InputStream in = Files.newInputStream(p)) {
                byte[] b = in.readNBytes(4);
                if (b.length == 4 && ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt() == LlmcFormat.MAGIC) {
                    return Format.LLMC;
                }
            } catch (IOException e) {
                return null;
            }
        }
        return null;
    }

    private static Format require(Path p) {
        Format f = detect(p);
        if (f == null) {
            throw new IllegalArgumentException(p + ": not a model (expected a checkpoint directory with state.json, a "
                    + "Hugging Face folder with config.json and model.safetensors, or an llm.c model file)");
        }
        return f;
    }

    /**
     * Model weights on disk, opened once: the format detected, the configuration read (and a
     * checkpoint's checksums verified: {@code state} is its verified state.json, null for other
     * formats), ready to load into a model of that configuration.
     */
    public record Source(Path path, Format format, GptConfig config, com.fasterxml.jackson.databind.node.ObjectNode state) {

        /** Loads the weights into a model built with {@link #config()}. */
        public void loadInto(Gpt2 model) {
            if (format == Format.OURS) {
                Checkpoint.loadModel(path, model);
                return;
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(model.layout().totalSize() * 4, 64);
                if (format == Format.LLMC) LlmcFormat.read(path, model.config(), host); else HfFormat.read(path, model.config(), host);
                model.backend().copyFromHost(model.params(), host);
            }
        }
    }

    /** Opens a model path of any format (see {@link Source}); refused when it is none. */
    public static Source open(Path p) {
        Format f = require(p);
        com.fasterxml.jackson.databind.node.ObjectNode state = f == Format.OURS ? Checkpoint.readState(p) : null;
        GptConfig config = switch (f) {
            case OURS -> Checkpoint.config(state);
            case LLMC -> LlmcFormat.readConfig(p);
            case HF -> HfFormat.readConfig(p);
        };
        return new Source(p, f, config, state);
    }

    public static GptConfig config(Path p) {
        return open(p).config();
    }

    /** Loads the weights of {@code p} into a model built with {@link #config}. */
    public static void loadInto(Path p, Gpt2 model) {
        open(p).loadInto(model);
    }

    /** Writes the model's weights to {@code to} in a format; bf16 for llm.c and HF only. */
    public static void export(Gpt2 model, Path to, Format format, boolean bf16) {
        if (format == Format.OURS) {
            if (bf16) throw new IllegalArgumentException("--dtype bfloat16: our checkpoints hold float32 (AdamW continues from them)");
            Checkpoint.saveDir(to, 0, model, null, JsonNodeFactory.instance.objectNode().put("converted", true));
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(model.layout().totalSize() * 4, 64);
            model.backend().copyToHost(model.params(), host);
            if (format == Format.LLMC) LlmcFormat.write(to, model.config(), host, bf16);
            else HfFormat.write(to, model.config(), host, bf16);
        }
    }
}
