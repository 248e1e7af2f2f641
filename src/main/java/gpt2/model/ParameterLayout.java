package gpt2.model;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where every parameter tensor lives in the one flat parameter buffer. Gradients, AdamW's m and
 * v (and later the bf16 copy) use the same layout.
 *
 * <pre>
 * wte (Vp,C) | wpe (maxT,C) | layer 0 ... layer L-1 | ln_f | lm_head (Vp,C), only when untied
 * layer l:  ln_1.weight (C) [ln_1.bias (C)] attn.c_attn.weight (3C,C) [attn.c_attn.bias (3C)]
 *           attn.c_proj.weight (C,C) [attn.c_proj.bias (C)] ln_2.weight (C) [ln_2.bias (C)]
 *           mlp.c_fc.weight (4C,C) [mlp.c_fc.bias (4C)] mlp.c_proj.weight (C,4C) [mlp.c_proj.bias (C)]
 * </pre>
 * Each layer is contiguous, so a layer's gradients form one bucket for the all-reduce.
 * Norm biases exist for LayerNorm only; linear biases follow {@link GptConfig#bias()} and
 * {@link GptConfig#qkvBias()}; norm weights are absent with {@link GptConfig#parameterFreeNorm()},
 * wpe with {@link GptConfig#rope()}.
 */
public final class ParameterLayout {

    /** The tensors of one transformer layer; absent ones are null. */
    public record Layer(int index, TensorSpec ln1w, TensorSpec ln1b, TensorSpec qkvw, TensorSpec qkvb,
                        TensorSpec attprojw, TensorSpec attprojb, TensorSpec ln2w, TensorSpec ln2b,
                        TensorSpec fcw, TensorSpec fcb, TensorSpec fcprojw, TensorSpec fcprojb,
                        long start, long end) {
    }

    private final GptConfig config;
    private final TensorSpec wte, wpe, lnfw, lnfb, lmHead;
    private final List<Layer> layers;
    private final List<TensorSpec> tensors;
    private final Map<String, TensorSpec> byName = new LinkedHashMap<>();
    private final long totalSize;

    private ParameterLayout(GptConfig c) {
        this.config = c;
        long C = c.channels(), Vp = c.paddedVocabSize();
        boolean ln = c.norm() == GptConfig.NormType.LAYERNORM, nw = !c.parameterFreeNorm();
        LayoutBuilder b = new LayoutBuilder();
        wte = b.add("wte", -1, Vp, C);
        wpe = b.addIf(!c.rope(), "wpe", -1, c.maxSeqLen(), C);
        List<Layer> ls = new ArrayList<>();
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "h." + l + ".";
            long start = b.size();
            TensorSpec ln1w = b.addIf(nw, p + "ln_1.weight", l, C);
            TensorSpec ln1b = b.addIf(ln, p + "ln_1.bias", l, C);
            TensorSpec qkvw = b.add(p + "attn.c_attn.weight", l, 3 * C, C);
            TensorSpec qkvb = b.addIf(c.qkvBias(), p + "attn.c_attn.bias", l, 3 * C);
            TensorSpec apw = b.add(p + "attn.c_proj.weight", l, C, C);
            TensorSpec apb = b.addIf(c.bias(), p + "attn.c_proj.bias", l, C);
            TensorSpec ln2w = b.addIf(nw, p + "ln_2.weight", l, C);
            TensorSpec ln2b = b.addIf(ln, p + "ln_2.bias", l, C);
            TensorSpec fcw = b.add(p + "mlp.c_fc.weight", l, 4 * C, C);
            TensorSpec fcb = b.addIf(c.bias(), p + "mlp.c_fc.bias", l, 4 * C);
            TensorSpec fpw = b.add(p + "mlp.c_proj.weight", l, C, 4 * C);
            TensorSpec fpb = b.addIf(c.bias(), p + "mlp.c_proj.bias", l, C);
            ls.add(new Layer(l, ln1w, ln1b, qkvw, qkvb, apw, apb, ln2w, ln2b, fcw, fcb, fpw, fpb, start, b.size()));
        }
        lnfw = b.addIf(nw, "ln_f.weight", -1, C);
        lnfb = b.addIf(ln, "ln_f.bias", -1, C);
        lmHead = c.tiedEmbeddings() ? wte : b.add("lm_head.weight", -1, Vp, C);
        layers = List.copyOf(ls);
        tensors = b.tensors();
        for (TensorSpec t : tensors) byName.put(t.name(), t);
        totalSize = b.size();
    }

    public static ParameterLayout of(GptConfig config) {
        return new ParameterLayout(config);
    }

    public GptConfig config() { return config; }
    public TensorSpec wte() { return wte; }
    /** Null with RoPE. */
    public TensorSpec wpe() { return wpe; }
    /** Null with a parameter-free norm. */
    public TensorSpec lnfw() { return lnfw; }
    /** Null for RMSNorm. */
    public TensorSpec lnfb() { return lnfb; }
    /** The output head (Vp,C); the same tensor as {@link #wte()} when tied. */
    public TensorSpec lmHead() { return lmHead; }
    public Layer layer(int l) { return layers.get(l); }
    public List<Layer> layers() { return layers; }

    /** Every tensor once, in offset order. */
    public List<TensorSpec> tensors() { return tensors; }

    public TensorSpec tensor(String name) {
        TensorSpec t = byName.get(name);
        if (t == null) throw new IllegalArgumentException("no parameter tensor named '" + name + "'");
        return t;
    }

    /** Elements in the buffer, padding rows included. */
    public long totalSize() { return totalSize; }

    /** Matrices and embeddings get weight decay; biases and norm scales do not (as nanoGPT). */
    public static boolean decays(TensorSpec t) {
        return t.rank() >= 2;
    }

    /** Embedding-like tensors whose rows past the real vocabulary are padding. */
    public boolean hasVocabRows(TensorSpec t) {
        return t == wte || t == lmHead;
    }
}
