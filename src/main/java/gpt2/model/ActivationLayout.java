package gpt2.model;

import java.util.ArrayList;
import java.util.List;

/**
 * Where every saved activation of a forward pass lives, for a batch of B sequences of T tokens,
 * plus the gradient scratch the backward pass needs. Two flat buffers: the values (in the
 * backend's compute type: float32, or bf16 under mixed precision) and the statistics (always
 * float32: the norms' means and reciprocal standard deviations, and the per-position losses).
 *
 * <p>Forward activations (per layer l), values:
 * <pre>
 * encoded (B,T,C) -> [ln1 (B,T,C) qkv (B,T,3C) att (B,NH,T,T) atty (B,T,C) attproj (B,T,C) res2 (B,T,C)
 *   ln2 (B,T,C) fch (B,T,4C) fchGelu (B,T,4C) fcproj (B,T,C) res3 (B,T,C)] x L -> lnf (B,T,C) -> logits (B,T,Vp)
 * </pre>
 * statistics: [ln1Mean (B,T) ln1Rstd (B,T) (qkRstd (B,T,2NH)) (attLse (B,NH,T)) ln2Mean ln2Rstd] x L, lnfMean,
 * lnfRstd, losses (B,T). With flash attention att is not kept and attLse (each row's log-sum-exp) is.
 * With QK-norm, qkRstd holds the per-head rstd of q and k; qkv then holds q and k as attention
 * reads them (normalised and rotated, in place).
 * The mean tensors exist for LayerNorm only. Dropout works in place and saves nothing: its mask
 * is regenerated from the key.
 *
 * <p>Gradient scratch (one layer's worth, reused by every layer as backward walks down):
 * dres (B,T,C) the residual stream's gradient, dbranch (B,T,C), dln (B,T,C), datty (B,T,C),
 * dqkv (B,T,3C), dfch (B,T,4C). dlogits overwrite logits in place.
 */
public final class ActivationLayout {

    /** att is null with flash attention, attLse null without; qkRstd null without QK-norm. */
    public record Layer(TensorSpec ln1, TensorSpec ln1Mean, TensorSpec ln1Rstd, TensorSpec qkv, TensorSpec qkRstd,
                        TensorSpec att,
                        TensorSpec attLse, TensorSpec atty, TensorSpec attproj, TensorSpec res2, TensorSpec ln2,
                        TensorSpec ln2Mean, TensorSpec ln2Rstd, TensorSpec fch, TensorSpec fchGelu, TensorSpec fcproj,
                        TensorSpec res3) {
    }

    /** Backward scratch; offsets within the gradient-scratch buffer. */
    public record Grads(TensorSpec dres, TensorSpec dbranch, TensorSpec dln, TensorSpec datty, TensorSpec dqkv,
                        TensorSpec dfch, long totalSize) {
    }

    private final int B, T;
    private final boolean flash;
    private final TensorSpec encoded, lnf, lnfMean, lnfRstd, logits, losses;
    private final List<Layer> layers;
    private final long totalSize, statsSize;
    private final Grads grads;

    private ActivationLayout(GptConfig c, int B, int T, boolean flash) {
        if (B <= 0 || T <= 0) throw new IllegalArgumentException("batch size and sequence length must be positive");
        if (T > c.maxSeqLen()) {
            throw new IllegalArgumentException("sequence length " + T + " exceeds the model's block_size "
                    + c.maxSeqLen());
        }
        this.B = B;
        this.T = T;
        this.flash = flash;
        long C = c.channels(), NH = c.numHeads();
        boolean ln = c.norm() == GptConfig.NormType.LAYERNORM;
        LayoutBuilder b = new LayoutBuilder(), s = new LayoutBuilder();
        encoded = b.add("encoded", -1, B, T, C);
        List<Layer> ls = new ArrayList<>();
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "h." + l + ".";
            ls.add(new Layer(
                    b.add(p + "ln1", l, B, T, C),
                    s.addIf(ln, p + "ln1_mean", l, B, T),
                    s.add(p + "ln1_rstd", l, B, T),
                    b.add(p + "qkv", l, B, T, 3 * C),
                    s.addIf(c.qkNorm(), p + "qk_rstd", l, B, T, 2 * NH),
                    b.addIf(!flash, p + "att", l, B, NH, T, T),
                    s.addIf(flash, p + "att_lse", l, B, NH, T),
                    b.add(p + "atty", l, B, T, C),
                    b.add(p + "attproj", l, B, T, C),
                    b.add(p + "res2", l, B, T, C),
                    b.add(p + "ln2", l, B, T, C),
                    s.addIf(ln, p + "ln2_mean", l, B, T),
                    s.add(p + "ln2_rstd", l, B, T),
                    b.add(p + "fch", l, B, T, 4 * C),
                    b.add(p + "fch_gelu", l, B, T, 4 * C),
                    b.add(p + "fcproj", l, B, T, C),
                    b.add(p + "res3", l, B, T, C)));
        }
        lnf = b.add("lnf", -1, B, T, C);
        lnfMean = s.addIf(ln, "lnf_mean", -1, B, T);
        lnfRstd = s.add("lnf_rstd", -1, B, T);
        logits = b.add("logits", -1, B, T, c.paddedVocabSize());
        losses = s.add("losses", -1, B, T);
        layers = List.copyOf(ls);
        totalSize = b.size();
        statsSize = s.size();

        LayoutBuilder g = new LayoutBuilder();
        grads = new Grads(g.add("dres", -1, B, T, C), g.add("dbranch", -1, B, T, C), g.add("dln", -1, B, T, C),
                g.add("datty", -1, B, T, C), g.add("dqkv", -1, B, T, 3 * C), g.add("dfch", -1, B, T, 4 * C),
                g.size());
    }

    public static ActivationLayout of(GptConfig config, int B, int T) {
        return new ActivationLayout(config, B, T, false);
    }

    /**
     * With flash attention the (B,NH,T,T) weights are not kept; each layer saves the rows'
     * log-sum-exp (B,NH,T) among the statistics instead.
     */
    public static ActivationLayout of(GptConfig config, int B, int T, boolean flash) {
        return new ActivationLayout(config, B, T, flash);
    }

    public boolean flash() { return flash; }

    public int batchSize() { return B; }
    public int seqLen() { return T; }
    public TensorSpec encoded() { return encoded; }
    public Layer layer(int l) { return layers.get(l); }
    public TensorSpec lnf() { return lnf; }
    public TensorSpec lnfMean() { return lnfMean; }
    public TensorSpec lnfRstd() { return lnfRstd; }
    public TensorSpec logits() { return logits; }
    public TensorSpec losses() { return losses; }
    /** The residual stream entering layer l (the embedding for l = 0). */
    public TensorSpec residualIn(int l) { return l == 0 ? encoded : layers.get(l - 1).res3(); }
    public TensorSpec residualOut() { return layers.get(layers.size() - 1).res3(); }
    /** Elements of the values buffer. */
    public long totalSize() { return totalSize; }
    /** Elements of the statistics buffer. */
    public long statsSize() { return statsSize; }
    public Grads grads() { return grads; }
}
