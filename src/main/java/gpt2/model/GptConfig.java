package gpt2.model;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The shape and architecture switches of a GPT-2 style decoder.
 *
 * <p>Two architectures share one code path; the switches below select between them:
 * <ul>
 *   <li>{@code gpt2}: OpenAI GPT-2 — LayerNorm (eps 1e-5), biases on every linear layer,
 *       output head tied to the token embedding, no dropout.</li>
 *   <li>{@code seed-d12}: the original PyTorch project's model — RMSNorm with scale (1+w) and
 *       eps 1e-6, no q/k/v bias, untied head without bias, dropout 0.1.</li>
 *   <li>{@code d12-modern}: the modern recipe (as the GPT-2 speedrun and nanochat) — rotary
 *       position embeddings instead of learned ones, QK-norm, ReLU² MLP, no biases,
 *       parameter-free RMSNorm, zero-initialised output projections and head, untied head,
 *       logits soft-capped at 15. Trained with Muon (see {@code gpt2.train.Muon}).</li>
 * </ul>
 * The modern switches default to off, so a config written before they existed (a checkpoint's
 * {@code state.json}) reads back as the same model.
 *
 * @param name            preset name (or "custom")
 * @param maxSeqLen       maximum sequence length, the rows of the position embedding (block_size)
 * @param vocabSize       real vocabulary size V (50257 for GPT-2)
 * @param paddedVocabSize Vp >= V, the row count of the embedding and logits (a multiple of 128
 *                        by default, for the GEMMs); padded logits never win and never get gradient
 * @param numLayers       L
 * @param numHeads        NH
 * @param channels        C
 * @param norm            LayerNorm or RMSNorm
 * @param normEps         epsilon inside the norm's square root
 * @param bias            biases on the attention output projection and the MLP linears
 * @param qkvBias         bias on the fused q/k/v projection
 * @param tiedEmbeddings  the output head reuses the token embedding
 * @param dropout         dropout probability on embeddings, attention weights and residual branches
 * @param scaledResidualInit GPT-2's init of the residual projections with std 0.02/sqrt(2L)
 *                        (otherwise every matrix uses std 0.02)
 * @param rope            rotary position embeddings on q and k (no learned position table wpe)
 * @param ropeTheta       RoPE's base: pair j of a head rotates by t * theta^(-2j/hs)
 * @param qkNorm          q and k RMS-normalised per head (no weights) before RoPE and attention
 * @param activation      the MLP's nonlinearity: GELU (tanh approximation) or ReLU²
 * @param parameterFreeNorm RMSNorm without a learned scale (RMSNorm only)
 * @param zeroInitProjections the attention and MLP output projections and an untied head start at zero
 * @param logitSoftcap    logits = cap * tanh(logits / cap) before the softmax; 0 = off
 */
public record GptConfig(
        String name,
        int maxSeqLen,
        int vocabSize,
        int paddedVocabSize,
        int numLayers,
        int numHeads,
        int channels,
        NormType norm,
        float normEps,
        boolean bias,
        boolean qkvBias,
        boolean tiedEmbeddings,
        float dropout,
        boolean scaledResidualInit,
        boolean rope,
        float ropeTheta,
        boolean qkNorm,
        Activation activation,
        boolean parameterFreeNorm,
        boolean zeroInitProjections,
        float logitSoftcap) {

    public enum NormType { LAYERNORM, RMSNORM }

    public enum Activation { GELU, RELU2 }

    /** RoPE's base when none is given: the original project's (rope_en, theta 50000). */
    public static final float DEFAULT_ROPE_THETA = 50000f;

    public static final int GPT2_VOCAB = 50257;

    public GptConfig {
        require(maxSeqLen > 0, "block_size (max sequence length) must be positive, got " + maxSeqLen);
        require(vocabSize > 0, "vocab_size must be positive, got " + vocabSize);
        require(paddedVocabSize >= vocabSize,
                "padded_vocab_size " + paddedVocabSize + " must be >= vocab_size " + vocabSize);
        require(numLayers > 0, "n_layer must be positive, got " + numLayers);
        require(numHeads > 0, "n_head must be positive, got " + numHeads);
        require(channels > 0, "n_embd must be positive, got " + channels);
        require(channels % numHeads == 0,
                "n_embd " + channels + " must be divisible by n_head " + numHeads);
        require(normEps > 0, "norm_eps must be positive, got " + normEps);
        require(dropout >= 0 && dropout < 1, "dropout must be in [0, 1), got " + dropout);
        require(norm != null, "norm type missing");
        if (activation == null) activation = Activation.GELU; // configs written before the switch
        if (rope && ropeTheta == 0) ropeTheta = DEFAULT_ROPE_THETA;
        require(!rope || ropeTheta > 1, "rope_theta must be > 1, got " + ropeTheta);
        require(!rope || headSizeOf(channels, numHeads) % 2 == 0,
                "rope needs an even head size, got " + headSizeOf(channels, numHeads));
        require(!parameterFreeNorm || norm == NormType.RMSNORM, "a parameter-free norm (--norm_weights 0) needs --norm rmsnorm");
        require(logitSoftcap >= 0 && Float.isFinite(logitSoftcap), "logit_softcap must be >= 0 (0 = off), got " + logitSoftcap);
    }

    /** The shape and switches of GPT-2 and seed-d12 (the modern switches off). */
    public GptConfig(String name, int maxSeqLen, int vocabSize, int paddedVocabSize, int numLayers, int numHeads,
                     int channels, NormType norm, float normEps, boolean bias, boolean qkvBias, boolean tiedEmbeddings,
                     float dropout, boolean scaledResidualInit) {
        this(name, maxSeqLen, vocabSize, paddedVocabSize, numLayers, numHeads, channels, norm, normEps, bias, qkvBias,
                tiedEmbeddings, dropout, scaledResidualInit, false, 0f, false, Activation.GELU, false, false, 0f);
    }

    private static int headSizeOf(int channels, int numHeads) {
        return numHeads > 0 ? channels / numHeads : 0;
    }

    /** Whether any switch of the modern recipe is on (formats that hold GPT-2 only refuse it). */
    public boolean modern() {
        return rope || qkNorm || activation != Activation.GELU || parameterFreeNorm || logitSoftcap > 0;
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }

    /** Rounds a vocabulary size up to a multiple of 128, as llm.c does (50257 -> 50304). */
    public static int padVocab(int vocabSize) {
        return (vocabSize + 127) / 128 * 128;
    }

    /** A one-line description of the shape and architecture (for messages). */
    public String shape() {
        return String.format("n_layer %d, n_head %d, n_embd %d, block_size %d, vocab %d (padded %d), %s%s, %s head%s%s%s",
                numLayers, numHeads, channels, maxSeqLen, vocabSize, paddedVocabSize, norm.name().toLowerCase(),
                parameterFreeNorm ? " (no weights)" : "", tiedEmbeddings ? "tied" : "untied",
                qkvBias ? "" : ", no qkv bias", dropout > 0 ? ", dropout " + dropout : "", modernSwitches());
    }

    private String modernSwitches() {
        StringBuilder s = new StringBuilder();
        if (rope) s.append(", rope theta ").append(ropeTheta);
        if (qkNorm) s.append(", qk-norm");
        if (activation != Activation.GELU) s.append(", ").append(activation.name().toLowerCase());
        if (logitSoftcap > 0) s.append(", logit softcap ").append(logitSoftcap);
        return s.toString();
    }

    public int headSize() {
        return channels / numHeads;
    }

    /** Exact parameter count with the real vocabulary (what PyTorch would print). */
    public long parameterCount() {
        return ParameterLayout.of(withPaddedVocab(vocabSize)).totalSize();
    }

    /** Parameter count as stored, with embedding rows padded to {@link #paddedVocabSize}. */
    public long paddedParameterCount() {
        return ParameterLayout.of(this).totalSize();
    }

    /**
     * Training FLOPs per token at sequence length T, as llm.c counts them for MFU:
     * 6 N (forward and backward through the weights) + 12 L C T (attention scores and mixing).
     */
    public double trainingFlopsPerToken(int T) {
        return 6.0 * parameterCount() + 12.0 * numLayers * channels * T;
    }

    public GptConfig withPaddedVocab(int vp) {
        return with(b -> b.paddedVocabSize(vp));
    }

    // ---------------------------------------------------------------------------------------
    // presets

    /** OpenAI GPT-2 with L layers, NH heads and C channels (1024 positions, GPT-2 vocabulary). */
    static GptConfig gpt2Shape(String name, int layers, int heads, int channels) {
        return new GptConfig(name, 1024, GPT2_VOCAB, padVocab(GPT2_VOCAB), layers, heads, channels,
                NormType.LAYERNORM, 1e-5f, true, true, true, 0f, true);
    }

    private static final Map<String, GptConfig> PRESETS = new LinkedHashMap<>();

    static {
        PRESETS.put("gpt2", gpt2Shape("gpt2", 12, 12, 768));
        PRESETS.put("seed-d12", new GptConfig("seed-d12", 1024, GPT2_VOCAB, padVocab(GPT2_VOCAB),
                12, 12, 768, NormType.RMSNORM, 1e-6f, true, false, false, 0.1f, false));
        PRESETS.put("d12", gpt2Shape("d12", 12, 12, 768));
        PRESETS.put("d24", gpt2Shape("d24", 24, 16, 1024));
        PRESETS.put("d36", gpt2Shape("d36", 36, 20, 1280));
        PRESETS.put("d48", gpt2Shape("d48", 48, 25, 1600));
        // the modern recipe at GPT-2 small's shape (see the class doc)
        PRESETS.put("d12-modern", withModernRecipe(gpt2Shape("d12-modern", 12, 12, 768)));
        // tiny GPT-2 shapes for tests and smoke runs (GPT-2 vocabulary, 256 positions)
        PRESETS.put("d2", tiny("d2", 2, 2, 64));
        PRESETS.put("d4", tiny("d4", 4, 4, 128));
        PRESETS.put("d4-modern", withModernRecipe(tiny("d4-modern", 4, 4, 128)));
    }

    /** The modern recipe's switches on a GPT-2 shape (see the class doc). */
    static GptConfig withModernRecipe(GptConfig shape) {
        return shape.with(b -> b.norm(NormType.RMSNORM).normEps(1e-6f).parameterFreeNorm(true).bias(false).qkvBias(false)
                .tiedEmbeddings(false).rope(true).ropeTheta(10000f).qkNorm(true).activation(Activation.RELU2)
                .zeroInitProjections(true).logitSoftcap(15f));
    }

    private static GptConfig tiny(String name, int layers, int heads, int channels) {
        return new GptConfig(name, 256, GPT2_VOCAB, padVocab(GPT2_VOCAB), layers, heads, channels,
                NormType.LAYERNORM, 1e-5f, true, true, true, 0f, true);
    }

    public static List<String> presetNames() {
        return List.copyOf(PRESETS.keySet());
    }

    /** The preset of that name; an error listing the known presets otherwise. */
    public static GptConfig preset(String name) {
        GptConfig c = PRESETS.get(name);
        if (c == null) {
            throw new IllegalArgumentException("unknown model preset '" + name + "'; known: "
                    + String.join(", ", PRESETS.keySet()));
        }
        return c;
    }

    /** A copy with some fields changed; {@code edit} gets a builder seeded from this config. */
    public GptConfig with(Function<Builder, Builder> edit) {
        return edit.apply(new Builder(this)).build();
    }

    /** Mutable copy of a config, for overrides from the command line and tests. */
    public static final class Builder {
        public String name;
        public int maxSeqLen, vocabSize, paddedVocabSize, numLayers, numHeads, channels;
        public NormType norm;
        public float normEps, dropout;
        public boolean bias, qkvBias, tiedEmbeddings, scaledResidualInit;
        public boolean rope, qkNorm, parameterFreeNorm, zeroInitProjections;
        public float ropeTheta, logitSoftcap;
        public Activation activation;
        private final int originalVocab, originalPadded;

        Builder(GptConfig c) {
            name = c.name; maxSeqLen = c.maxSeqLen; vocabSize = c.vocabSize;
            paddedVocabSize = c.paddedVocabSize; numLayers = c.numLayers; numHeads = c.numHeads;
            channels = c.channels; norm = c.norm; normEps = c.normEps; bias = c.bias;
            qkvBias = c.qkvBias; tiedEmbeddings = c.tiedEmbeddings; dropout = c.dropout;
            scaledResidualInit = c.scaledResidualInit;
            rope = c.rope; ropeTheta = c.ropeTheta; qkNorm = c.qkNorm; activation = c.activation;
            parameterFreeNorm = c.parameterFreeNorm; zeroInitProjections = c.zeroInitProjections;
            logitSoftcap = c.logitSoftcap;
            originalVocab = c.vocabSize; originalPadded = c.paddedVocabSize;
        }

        public Builder maxSeqLen(int v) { maxSeqLen = v; return this; }
        public Builder vocabSize(int v) { vocabSize = v; return this; }
        public Builder paddedVocabSize(int v) { paddedVocabSize = v; return this; }
        public Builder numLayers(int v) { numLayers = v; return this; }
        public Builder numHeads(int v) { numHeads = v; return this; }
        public Builder channels(int v) { channels = v; return this; }
        public Builder norm(NormType v) { norm = v; return this; }
        public Builder normEps(float v) { normEps = v; return this; }
        public Builder bias(boolean v) { bias = v; return this; }
        public Builder qkvBias(boolean v) { qkvBias = v; return this; }
        public Builder tiedEmbeddings(boolean v) { tiedEmbeddings = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder scaledResidualInit(boolean v) { scaledResidualInit = v; return this; }
        public Builder name(String v) { name = v; return this; }
        public Builder rope(boolean v) { rope = v; return this; }
        public Builder ropeTheta(float v) { ropeTheta = v; return this; }
        public Builder qkNorm(boolean v) { qkNorm = v; return this; }
        public Builder activation(Activation v) { activation = v; return this; }
        public Builder parameterFreeNorm(boolean v) { parameterFreeNorm = v; return this; }
        public Builder zeroInitProjections(boolean v) { zeroInitProjections = v; return this; }
        public Builder logitSoftcap(float v) { logitSoftcap = v; return this; }

        public GptConfig build() {
            int vp = paddedVocabSize;
            // a changed vocabulary with an untouched padding gets the default padding
            if (vocabSize != originalVocab && paddedVocabSize == originalPadded) vp = padVocab(vocabSize);
            return new GptConfig(name, maxSeqLen, vocabSize, vp, numLayers, numHeads, channels, norm,
                    normEps, bias, qkvBias, tiedEmbeddings, dropout, scaledResidualInit, rope, ropeTheta, qkNorm,
                    activation, parameterFreeNorm, zeroInitProjections, logitSoftcap);
        }
    }
}
