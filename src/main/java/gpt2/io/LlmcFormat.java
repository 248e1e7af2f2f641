package gpt2.io;

import gpt2.model.GptConfig;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * llm.c's model file: a header of 256 int32 [20240326, version 3 (fp32) or 5 (bf16), maxT, V, L,
 * NH, C, Vp, 0...], then the tensors in llm.c's order, each kind for all layers at once:
 * <pre>
 * wte (Vp,C) wpe (maxT,C) ln1w (L,C) ln1b (L,C) qkvw (L,3C,C) qkvb (L,3C) attprojw (L,C,C)
 * attprojb (L,C) ln2w ln2b fcw (L,4C,C) fcb (L,4C) fcprojw (L,C,4C) fcprojb (L,C) lnfw (C) lnfb (C)
 * </pre>
 * Weights are (out, in) as ours; the head is tied. Only the OpenAI GPT-2 architecture fits.
 */
public final class LlmcFormat {
    private LlmcFormat() {
    }

    public static final int MAGIC = 20240326;
    public static final int VERSION_FP32 = 3, VERSION_BF16 = 5;

    /** Our tensors in the file's order. */
    static List<TensorSpec> order(ParameterLayout p) {
        List<TensorSpec> out = new ArrayList<>();
        out.add(p.wte());
        out.add(p.wpe());
        List<Function<ParameterLayout.Layer, TensorSpec>> kinds = List.of(ParameterLayout.Layer::ln1w,
                ParameterLayout.Layer::ln1b, ParameterLayout.Layer::qkvw, ParameterLayout.Layer::qkvb,
                ParameterLayout.Layer::attprojw, ParameterLayout.Layer::attprojb, ParameterLayout.Layer::ln2w,
                ParameterLayout.Layer::ln2b, ParameterLayout.Layer::fcw, ParameterLayout.Layer::fcb,
                ParameterLayout.Layer::fcprojw, ParameterLayout.Layer::fcprojb);
        for (var kind : kinds) for (ParameterLayout.Layer l : p.layers()) out.add(kind.apply(l));
        out.add(p.lnfw());
        out.add(p.lnfb());
        return out;
    }

    /** Refuses an architecture llm.c's format cannot hold, naming what does not fit. */
    public static void checkRepresentable(GptConfig c, String format) {
        List<String> misfits = new ArrayList<>();
        if (c.norm() != GptConfig.NormType.LAYERNORM) misfits.add("RMSNorm (needs LayerNorm)");
        if (!c.qkvBias()) misfits.add("no q/k/v bias");
        if (!c.bias()) misfits.add("no linear biases");
        if (!c.tiedEmbeddings()) misfits.add("an untied output head");
        if (c.rope()) misfits.add("rotary position embeddings (no wpe)");
        if (c.qkNorm()) misfits.add("qk-norm");
        if (c.activation() != GptConfig.Activation.GELU) misfits.add(c.activation().name().toLowerCase() + " MLP activation");
        if (c.logitSoftcap() > 0) misfits.add("logit soft-capping");
        if (!misfits.isEmpty()) {
            throw new IllegalArgumentException(format + " holds OpenAI GPT-2 models only; model '" + c.name() + "' has "
                    + String.join(", ", misfits));
        }
    }

    public static GptConfig readConfig(Path file) {
        int[] h = header(file);
        GptConfig c = GptConfig.preset("gpt2").with(b -> b.name("llmc").maxSeqLen(h[2]).vocabSize(h[3]).numLayers(h[4])
                .numHeads(h[5]).channels(h[6]).paddedVocabSize(h[7]));
        long expected = 1024 + ParameterLayout.of(c).totalSize() * (h[1] == VERSION_BF16 ? 2 : 4);
        long size = size(file);
        if (size != expected) {
            throw new IllegalArgumentException(file + ": " + (size < expected ? "truncated" : "oversized")
                    + " llm.c model file: " + size + " bytes, the header's shape needs " + expected);
        }
        return c;
    }

    private static int[] header(Path file) {
        if (size(file) < 1024) throw new IllegalArgumentException(file + ": too short for an llm.c model header");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(1024).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && ch.read(b) > 0) { }
            b.flip();
            int[] h = new int[8];
            for (int i = 0; i < 8; i++) h[i] = b.getInt();
            if (h[0] != MAGIC) throw new IllegalArgumentException(file + ": bad magic " + h[0] + " (llm.c model files have " + MAGIC + ")");
            if (h[1] != VERSION_FP32 && h[1] != VERSION_BF16) {
                throw new IllegalArgumentException(file + ": llm.c model version " + h[1] + " (3 fp32 and 5 bf16 are read)");
            }
            for (int i = 2; i < 8; i++) {
                if (h[i] <= 0) throw new IllegalArgumentException(file + ": header field " + i + " is " + h[i]);
            }
            if (h[7] < h[3]) throw new IllegalArgumentException(file + ": padded vocab " + h[7] + " < vocab " + h[3]);
            return h;
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read (" + e.getMessage() + ")");
        }
    }

    private static long size(Path f) {
        try {
            return Files.size(f);
        } catch (IOException e) {
            throw new IllegalArgumentException(f + ": cannot read (" + e.getMessage() + ")");
        }
    }

    /**
     * Reads the tensors into {@code dst}, float32 in our layout for {@code readConfig(file)}: each
     * tensor one bulk copy out of the mapped file (bf16 widened exactly, a chunk at a time).
     */
    public static void read(Path file, GptConfig c, MemorySegment dst) {
        boolean bf16 = header(file)[1] == VERSION_BF16;
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment map = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            long at = 1024;
            for (TensorSpec t : order(ParameterLayout.of(c))) {
                if (bf16) FloatCopy.fromHalf(FloatCopy.Half.BF16, map, at, dst, t.offset(), t.size());
                else FloatCopy.fromLittleEndian(map, at, dst, t.offset(), t.size());
                at += t.size() * (bf16 ? 2 : 4);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": " + e.getMessage(), e);
        }
    }

    /** Writes an llm.c model file (temporary name, then renamed). */
    public static void write(Path file, GptConfig c, MemorySegment src, boolean bf16) {
        checkRepresentable(c, "an llm.c model file");
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            ByteBuffer h = ByteBuffer.allocate(1024).order(ByteOrder.LITTLE_ENDIAN);
            h.putInt(MAGIC).putInt(bf16 ? VERSION_BF16 : VERSION_FP32).putInt(c.maxSeqLen()).putInt(c.vocabSize())
                    .putInt(c.numLayers()).putInt(c.numHeads()).putInt(c.channels()).putInt(c.paddedVocabSize()).rewind();
            while (h.hasRemaining()) ch.write(h);
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 22);
            MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
            int perBuf = (1 << 22) / (bf16 ? 2 : 4);
            for (TensorSpec t : order(ParameterLayout.of(c))) {
                for (long done = 0; done < t.size(); done += perBuf) {
                    int n = (int) Math.min(perBuf, t.size() - done);
                    if (bf16) FloatCopy.toBf16(src, t.offset() + done, bufSeg, 0, n);
                    else FloatCopy.toLittleEndian(src, t.offset() + done, bufSeg, 0, n);
                    buf.clear().limit(n * (bf16 ? 2 : 4));
                    while (buf.hasRemaining()) ch.write(buf);
                }
            }
            ch.force(true);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write (" + e.getMessage() + ")", e);
        }
        try {
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot rename into place (" + e.getMessage() + ")", e);
        }
    }
}
