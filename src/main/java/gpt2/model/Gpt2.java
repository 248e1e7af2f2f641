package gpt2.model;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Dropout;

import java.util.Random;

/**
 * A GPT-2 decoder as explicit forward and backward passes over flat buffers, on any backend.
 *
 * <pre>
 * tokens (B,T) -> encoder (wte + wpe) -> dropout -> x
 * layer l:  x += dropout(attn_proj(attention(qkv(norm1(x)))))
 *           x += dropout(mlp_proj(gelu(mlp_fc(norm2(x)))))
 * -> norm_f -> lm_head (tied: wte) -> logits (B,T,Vp) -> cross-entropy vs targets -> mean loss
 * </pre>
 * The modern switches change three places: qkv -> [qk-norm, RoPE] -> attention (and no wpe), the
 * MLP's GELU -> ReLU², and logits -> soft cap before the cross-entropy (whose backward takes the
 * gradient through the cap).
 * The backward pass walks the same ops in reverse, one call per line; see {@link ActivationLayout}
 * for the saved activations and the gradient scratch.
 *
 * <p>Precision: the parameters, their gradients and the statistics (norm means and rstds, losses)
 * are float32. Activations, activation gradients and the weights the ops read are in the
 * backend's {@link Backend#computeType() compute type}; when that is not float32 (bf16 mixed
 * precision) the model keeps a compute copy of the weights, remade from the float32 parameters
 * before a {@link #forward} or {@link #decode} whenever they may have changed: after
 * {@link #initialize} and after anyone took {@link #params()}.
 */
public final class Gpt2 implements AutoCloseable {

    /**
     * Dropout sites within a layer (the embedding's is layer -1): with {@link Dropout#siteKey} they
     * make the key of each mask. Element indices: (B,T,C) row-major for the embedding and the two
     * residual branches, ((b*NH+h)*T+t)*T+t2 for the attention weights.
     */
    static final int SITE_EMBED = 0, SITE_ATTN_WEIGHTS = 1, SITE_ATTN_RESID = 2, SITE_MLP_RESID = 3;

    private final GptConfig config;
    private final ParameterLayout layout;
    private final Backend backend;
    private final Buffer params;
    private final DType computeType;
    private Buffer grads;
    /** The weights the ops read: params itself in float32, else a copy in the compute type. */
    private Buffer computeWeights;
    /** Whether the parameters may have changed since the compute copy was made. */
    private boolean computeWeightsStale = true;

    // activation state for the current (B, T)
    private ActivationLayout acts;
    private Buffer actBuf, statBuf, gradScratch, inputs, targets;
    private long actCapacity, statCapacity, scratchCapacity, tokenCapacity;
    private int validTargets;
    private float[] hostLosses = new float[0];
    private long passKey;
    private boolean training;
    private boolean forwardHasTargets;
    private boolean flash;
    /** The loss scale the last {@link #trainForward} wrote the logits' gradient with, or NaN. */
    private float fusedLossScale = Float.NaN;
    /** (2, float32): the step's loss, accumulated by {@link #trainForward}, and the gradients' sum of squares. */
    private Buffer stepNumbers;

    public Gpt2(GptConfig config, Backend backend) {
        this.config = config;
        this.layout = ParameterLayout.of(config);
        this.backend = backend;
        this.params = backend.allocate(DType.F32, layout.totalSize(), "parameters");
        this.computeType = backend.computeType();
        this.computeWeights = computeType == DType.F32 ? params
                : backend.allocate(computeType, layout.totalSize(), "parameters (" + computeType + " compute copy)");
    }

    /**
     * Converts the float32 parameters into the compute copy when they may have changed (nothing to
     * do in float32): once per optimizer step, not once per micro-batch.
     */
    private void refreshComputeWeights() {
        if (computeWeights == params || !computeWeightsStale) return;
        backend.convert(computeWeights, params);
        computeWeightsStale = false;
    }

    public GptConfig config() { return config; }
    public ParameterLayout layout() { return layout; }
    public Backend backend() { return backend; }
    /**
     * The float32 parameters. Whoever takes them may write them (the optimizer, checkpoint and
     * model loading, collectives), so the compute copy is remade before the next pass.
     */
    public Buffer params() {
        computeWeightsStale = true;
        return params;
    }
    /** The parameter gradients (allocated on first use, same layout as the parameters). */
    public Buffer grads() {
        if (grads == null) grads = backend.allocate(DType.F32, layout.totalSize(), "parameter gradients");
        return grads;
    }
    /**
     * Flash attention from the next forward pass on: the (B,NH,T,T) attention weights are neither
     * stored nor read back; only each row's log-sum-exp is kept. Refused by a backend without it.
     */
    public void setFlashAttention(boolean on) {
        if (on && !backend.hasFlashAttention()) {
            throw new IllegalArgumentException("--flash 1: the " + backend.name() + " backend has no flash attention");
        }
        flash = on;
    }

    public boolean flashAttention() { return flash; }

    /** Activations of the last forward pass (null before the first). */
    public ActivationLayout activationLayout() { return acts; }
    public Buffer activations() { return actBuf; }

    // ------------------------------------------------------------------ initialization

    /**
     * GPT-2's initialization, deterministic from the seed: normal(0, 0.02) for linear and embedding
     * weights (0.02/sqrt(2L) for the two residual projections when the config asks for it), zero
     * biases, norm scales at identity (1 for LayerNorm, 0 for RMSNorm's 1 + w), padded vocabulary
     * rows zero. With {@link GptConfig#zeroInitProjections()} the two residual projections and an
     * untied head start at zero instead (their draws are skipped, not made and discarded).
     */
    public void initialize(long seed) {
        computeWeightsStale = true;
        Random rng = new Random(seed);
        float std = 0.02f;
        float residStd = config.scaledResidualInit() ? (float) (0.02 / Math.sqrt(2.0 * config.numLayers())) : std;
        float normScale = config.norm() == GptConfig.NormType.LAYERNORM ? 1f : 0f;
        for (TensorSpec t : layout.tensors()) {
            String n = t.name();
            boolean resid = n.endsWith("attn.c_proj.weight") || n.endsWith("mlp.c_proj.weight");
            if (config.zeroInitProjections() && (resid || (t == layout.lmHead() && !config.tiedEmbeddings()))) {
                fillConstant(t, 0f); // the modern recipe: every block starts as the identity, the head at zero
            } else if (t.rank() >= 2) {
                long realRows = layout.hasVocabRows(t) ? config.vocabSize() : t.dim(0);
                fillNormal(t, rng, resid ? residStd : std, realRows * t.dim(1));
            } else if (n.endsWith("ln_1.weight") || n.endsWith("ln_2.weight") || n.equals("ln_f.weight")) {
                fillConstant(t, normScale);
            } else {
                fillConstant(t, 0f);
            }
        }
    }

    private static final int CHUNK = 1 << 20;

    /** The first {@code count} elements normal(0, std), the rest zero. */
    private void fillNormal(TensorSpec t, Random rng, float std, long count) {
        Buffer dst = params.slice(t);
        for (long s = 0; s < t.size(); s += CHUNK) {
            int n = (int) Math.min(CHUNK, t.size() - s);
            float[] chunk = new float[n];
            for (int i = 0; i < n && s + i < count; i++) chunk[i] = (float) (rng.nextGaussian() * std);
            backend.write(dst.slice(s, n), chunk);
        }
    }

    private void fillConstant(TensorSpec t, float value) {
        float[] v = new float[(int) t.size()];
        java.util.Arrays.fill(v, value);
        backend.write(params.slice(t), v);
    }

    // ------------------------------------------------------------------ forward

    /**
     * Runs the model on B x T tokens.
     *
     * @param inputs  (B*T) token ids
     * @param targets (B*T) next-token ids, -1 to ignore a position, or null for logits only
     * @param passKey with dropout: the key of this pass (differs per step and micro-step); a negative
     *                key means evaluation, with dropout off
     * @return the mean loss over the positions with a target, or NaN without targets
     */
    public float forward(int[] inputs, int[] targets, int B, int T, long passKey) {
        int V = config.vocabSize(), Vp = config.paddedVocabSize(), N = B * T;
        validTargets = run(inputs, targets, B, T, passKey, null, true);
        fusedLossScale = Float.NaN;
        if (targets == null) return Float.NaN;
        backend.crossEntropyForward(stat(acts.losses()), act(acts.logits()), this.targets, N, V, Vp);
        if (hostLosses.length != N) hostLosses = new float[N];
        backend.read(stat(acts.losses()), hostLosses);
        double sum = 0;
        for (int i = 0; i < N; i++) if (targets[i] != -1) sum += hostLosses[i];
        return validTargets == 0 ? 0f : (float) (sum / validTargets);
    }

    /**
     * The forward pass of a training step, which the host does not wait for: the fused classifier
     * computes the losses and, in place of the logits, their gradient for {@link #backward} with
     * this {@code lossScale}; {@code lossScale} x the mean loss is added to the step's loss on the
     * device (read with {@link #stepStatistics}; {@link #zeroGrad} starts a step at 0). With k
     * micro-batches, lossScale = 1/k and the step's loss is their mean. The logits are gone after
     * this (use {@link #forward} to see them).
     */
    public void trainForward(int[] inputs, int[] targets, int B, int T, long passKey, float lossScale) {
        if (targets == null) throw new IllegalArgumentException("trainForward needs targets");
        int V = config.vocabSize(), Vp = config.paddedVocabSize(), N = B * T;
        // the forward and backward of a training micro-batch repeat with the same shapes: one segment
        // a backend may capture and replay (CUDA graphs), closed at the end of backward; not with a
        // backward hook (data parallelism's all-reduces go to another stream as layers finish)
        String segment = backwardHook == null ? "train B=" + B + " T=" + T + (flash ? " flash" : "") : null;
        float cap = config.logitSoftcap();
        // with a soft cap, the cap goes with the loss (one op), not at the end of the trunk
        validTargets = run(inputs, targets, B, T, passKey, segment, cap <= 0);
        fusedLossScale = lossScale;
        if (validTargets == 0) return;
        float scale = lossScale / validTargets;
        if (cap > 0) backend.softcapCrossEntropyFused(stat(acts.losses()), act(acts.logits()), this.targets, scale, N, V, Vp, cap);
        else backend.crossEntropyFused(stat(acts.losses()), act(acts.logits()), this.targets, scale, N, V, Vp, 0f);
        backend.addSum(stepNumbers().slice(0, 1), stat(acts.losses()), scale, N);
    }

    private Buffer stepNumbers() {
        if (stepNumbers == null) stepNumbers = backend.allocate(DType.F32, 2, "step loss and gradient norm");
        return stepNumbers;
    }

    /**
     * The step's numbers in one read (the host's one wait per step): {loss, sum of squares of the
     * gradients in [lo, hi)}; the loss is what {@link #trainForward} accumulated since
     * {@link #zeroGrad}.
     */
    public float[] stepStatistics(long lo, long hi) {
        backend.sumOfSquares(stepNumbers().slice(1, 1), grads().slice(lo, hi - lo));
        float[] out = new float[2];
        backend.read(stepNumbers, out);
        return out;
    }

    /**
     * Checks the tokens, uploads them (and the targets), runs the trunk; returns the number of
     * positions with a target. With a {@code segment} name the trunk opens a replayable segment
     * after the uploads (see {@link Backend#beginReplayable}); {@code capLogits} false leaves a soft
     * cap to the op that takes the loss.
     */
    private int run(int[] inputs, int[] targets, int B, int T, long passKey, String segment, boolean capLogits) {
        int V = config.vocabSize(), N = B * T;
        if (inputs.length != N) throw new IllegalArgumentException("inputs: expected B*T = " + N + " tokens, got " + inputs.length);
        if (targets != null && targets.length != N) throw new IllegalArgumentException("targets: expected " + N + " tokens, got " + targets.length);
        int valid = 0;
        for (int i = 0; i < N; i++) {
            if (inputs[i] < 0 || inputs[i] >= V) {
                throw new IllegalArgumentException("input token " + inputs[i] + " at position " + i
                        + " is outside the vocabulary [0, " + V + ")");
            }
            if (targets != null && (targets[i] < -1 || targets[i] >= V)) {
                throw new IllegalArgumentException("target token " + targets[i] + " at position " + i
                        + " is outside the vocabulary [0, " + V + ") and is not -1 (ignore)");
            }
            if (targets != null && targets[i] != -1) valid++;
        }
        ensureActivations(B, T);
        refreshComputeWeights();
        this.passKey = passKey;
        this.training = passKey >= 0 && config.dropout() > 0;
        backend.write(this.inputs, inputs);
        if (targets != null) backend.write(this.targets, targets);
        if (segment != null) backend.beginReplayable(segment);
        trunk(B, T, this.inputs, par(layout.wpe()), null, 0, capLogits);
        forwardHasTargets = targets != null;
        return valid;
    }

    /**
     * Embedding, every layer, final norm and logits into the current activations. With a KV cache,
     * T is 1 and attention covers the cached positions 0..pos (wpe is then the row of pos).
     */
    private void trunk(int B, int T, Buffer tokens, Buffer wpe, KvCache cache, int pos, boolean capLogits) {
        int C = config.channels(), NH = config.numHeads(), Vp = config.paddedVocabSize();
        int N = B * T;
        ParameterLayout p = layout;
        ActivationLayout a = acts;

        Buffer encoded = act(a.encoded());
        backend.encoderForward(encoded, tokens, par(p.wte()), wpe, B, T, C);
        backend.dropout(encoded, (long) N * C, dropout(-1, SITE_EMBED));
        ActivationLayout.Layer first = a.layer(0);
        normForward(act(first.ln1()), first.ln1Mean(), first.ln1Rstd(), encoded, p.layer(0).ln1w(), p.layer(0).ln1b(), N);
        for (int l = 0; l < config.numLayers(); l++) {
            ParameterLayout.Layer w = p.layer(l);
            ActivationLayout.Layer x = a.layer(l);
            Buffer residual = act(a.residualIn(l));
            backend.matmulForward(act(x.qkv()), act(x.ln1()), par(w.qkvw()), par(w.qkvb()), N, C, 3 * C);
            if (config.qkNorm() || config.rope()) {
                backend.qkNormRopeForward(act(x.qkv()), stat(x.qkRstd()), B, T, C, NH, cache == null ? 0 : pos, ropeTheta(),
                        config.normEps());
            }
            if (cache == null && x.att() == null) {
                backend.flashAttentionForward(act(x.atty()), stat(x.attLse()), act(x.qkv()), B, T, C, NH,
                        dropout(l, SITE_ATTN_WEIGHTS));
            } else if (cache == null) {
                backend.attentionForward(act(x.atty()), act(x.att()), act(x.qkv()), B, T, C, NH,
                        dropout(l, SITE_ATTN_WEIGHTS));
            } else {
                backend.attentionDecode(act(x.atty()), act(x.qkv()), cache.k(l), cache.v(l), B, pos,
                        config.maxSeqLen(), C, NH);
            }
            backend.matmulForward(act(x.attproj()), act(x.atty()), par(w.attprojw()), par(w.attprojb()), N, C, C);
            backend.dropout(act(x.attproj()), (long) N * C, dropout(l, SITE_ATTN_RESID));
            // res2 = residual + attproj, fused with ln2
            residualNormForward(act(x.res2()), act(x.ln2()), x.ln2Mean(), x.ln2Rstd(), residual, act(x.attproj()),
                    w.ln2w(), w.ln2b(), N);
            if (config.activation() == GptConfig.Activation.RELU2) {
                backend.matmulForward(act(x.fch()), act(x.ln2()), par(w.fcw()), par(w.fcb()), N, C, 4 * C);
                backend.reluSquaredForward(act(x.fchGelu()), act(x.fch()), (long) N * 4 * C);
            } else {
                backend.matmulGeluForward(act(x.fchGelu()), act(x.fch()), act(x.ln2()), par(w.fcw()), par(w.fcb()), N, C, 4 * C);
            }
            backend.matmulForward(act(x.fcproj()), act(x.fchGelu()), par(w.fcprojw()), par(w.fcprojb()), N, 4 * C, C);
            backend.dropout(act(x.fcproj()), (long) N * C, dropout(l, SITE_MLP_RESID));
            // res3 = res2 + fcproj, fused with the next layer's ln1 (or the final norm)
            if (l + 1 < config.numLayers()) {
                ActivationLayout.Layer next = a.layer(l + 1);
                residualNormForward(act(x.res3()), act(next.ln1()), next.ln1Mean(), next.ln1Rstd(), act(x.res2()),
                        act(x.fcproj()), p.layer(l + 1).ln1w(), p.layer(l + 1).ln1b(), N);
            } else {
                residualNormForward(act(x.res3()), act(a.lnf()), a.lnfMean(), a.lnfRstd(), act(x.res2()), act(x.fcproj()),
                        p.lnfw(), p.lnfb(), N);
            }
        }
        backend.matmulForward(act(a.logits()), act(a.lnf()), par(p.lmHead()), null, N, C, Vp);
        if (config.logitSoftcap() > 0 && capLogits) backend.softcapForward(act(a.logits()), (long) N * Vp, config.logitSoftcap());
    }

    /** RoPE's theta as the ops take it: 0 without RoPE. */
    private float ropeTheta() {
        return config.rope() ? config.ropeTheta() : 0f;
    }

    // ------------------------------------------------------------------ incremental decoding

    /** Per-layer key and value caches for B sequences, and the activations of one position. */
    public final class KvCache implements AutoCloseable {
        private final int batch;
        private final Buffer k, v, tokens, stepActs, stepStats;
        private final ActivationLayout stepLayout;
        private final long perLayer;

        private KvCache(int B) {
            this.batch = B;
            this.perLayer = (long) B * config.maxSeqLen() * config.channels(); // (B,NH,maxT,hs)
            this.k = backend.allocate(computeType, perLayer * config.numLayers(), "KV cache (keys)");
            this.v = backend.allocate(computeType, perLayer * config.numLayers(), "KV cache (values)");
            this.tokens = backend.allocate(DType.I32, B, "decode tokens");
            this.stepLayout = ActivationLayout.of(config, B, 1);
            this.stepActs = backend.allocate(computeType, stepLayout.totalSize(), "decode activations");
            this.stepStats = backend.allocate(DType.F32, stepLayout.statsSize(), "decode statistics");
        }

        Buffer k(int layer) {
            return k.slice(layer * perLayer, perLayer);
        }

        Buffer v(int layer) {
            return v.slice(layer * perLayer, perLayer);
        }

        public int batchSize() {
            return batch;
        }

        @Override
        public void close() {
            backend.free(k);
            backend.free(v);
            backend.free(tokens);
            backend.free(stepActs);
            backend.free(stepStats);
        }
    }

    /** A KV cache for B sequences of up to the model's block size. */
    public KvCache newKvCache(int B) {
        return new KvCache(B);
    }

    /**
     * Feeds one token per sequence at position {@code pos} (0-based; positions 0..pos-1 must already
     * be in the cache) and returns the logits of the next token, [B][V]. Dropout is off.
     */
    public float[][] decode(int[] tokens, int pos, KvCache cache) {
        int B = cache.batch, C = config.channels(), V = config.vocabSize(), Vp = config.paddedVocabSize();
        if (tokens.length != B) throw new IllegalArgumentException("decode: expected " + B + " tokens, got " + tokens.length);
        if (pos < 0 || pos >= config.maxSeqLen()) {
            throw new IllegalArgumentException("decode position " + pos + " outside the block size " + config.maxSeqLen());
        }
        for (int t : tokens) {
            if (t < 0 || t >= V) throw new IllegalArgumentException("token " + t + " is outside the vocabulary [0, " + V + ")");
        }
        backend.write(cache.tokens, tokens);
        refreshComputeWeights();
        ActivationLayout savedLayout = acts;
        Buffer savedBuf = actBuf, savedStats = statBuf;
        boolean savedTraining = training;
        acts = cache.stepLayout;
        actBuf = cache.stepActs;
        statBuf = cache.stepStats;
        training = false;
        try {
            Buffer wpe = layout.wpe() == null ? null : computeWeights.slice(layout.wpe().offset() + (long) pos * C, C);
            trunk(B, 1, cache.tokens, wpe, cache, pos, true);
            float[] row = new float[V];
            float[][] out = new float[B][];
            for (int b = 0; b < B; b++) {
                backend.read(actBuf.slice(acts.logits().offset() + (long) b * Vp, V), row);
                out[b] = row.clone();
            }
            return out;
        } finally {
            acts = savedLayout;
            actBuf = savedBuf;
            statBuf = savedStats;
            training = savedTraining;
        }
    }

    /** Per-position losses of the last forward pass with targets (0 where the target was -1). */
    public float[] positionLosses() {
        if (acts == null || !forwardHasTargets) throw new IllegalStateException("no forward pass with targets");
        float[] out = new float[acts.batchSize() * acts.seqLen()];
        backend.read(stat(acts.losses()), out);
        return out;
    }

    // ------------------------------------------------------------------ backward

    /**
     * Accumulates into {@link #grads()} the gradient of {@code lossScale} x (the mean loss of the
     * last forward pass). With gradient accumulation over k micro-batches, lossScale = 1/k.
     * Overwrites the logits with their gradient.
     */
    public void backward(float lossScale) {
        if (acts == null || !forwardHasTargets) {
            throw new IllegalStateException("backward needs a forward pass with targets first");
        }
        int B = acts.batchSize(), T = acts.seqLen();
        int C = config.channels(), NH = config.numHeads(), V = config.vocabSize(), Vp = config.paddedVocabSize();
        int N = B * T;
        int valid = validTargets;
        if (valid == 0) {
            backend.endReplayable();
            // nothing to add to the gradients, but the buckets are still handed on: with data
            // parallelism every rank must make the same collective calls, or the others wait forever
            if (backwardHook != null) {
                for (int l = config.numLayers() - 1; l >= 0; l--) backwardHook.accept(l);
                backwardHook.accept(-1);
            }
            return;
        }
        grads();
        ParameterLayout p = layout;
        ActivationLayout a = acts;
        ActivationLayout.Grads g = a.grads();
        Buffer dres = scratch(g.dres()), dln = scratch(g.dln()), datty = scratch(g.datty());
        Buffer dqkv = scratch(g.dqkv()), dfch = scratch(g.dfch());

        Buffer dlogits = act(a.logits());
        if (Float.isNaN(fusedLossScale)) {
            backend.crossEntropyBackward(dlogits, this.targets, lossScale / valid, N, V, Vp, config.logitSoftcap());
        } else if (fusedLossScale != lossScale) {
            throw new IllegalArgumentException("backward(" + lossScale + ") after trainForward with loss scale " + fusedLossScale);
        }
        fusedLossScale = Float.NaN; // the logits' gradient is used up
        backend.matmulBackward(dln, grad(p.lmHead()), null, dlogits, act(a.lnf()), par(p.lmHead()), N, C, Vp);
        backend.zero(dres);
        normBackward(dres, p.lnfw(), p.lnfb(), dln, act(a.residualOut()), a.lnfMean(), a.lnfRstd(), N);
        for (int l = config.numLayers() - 1; l >= 0; l--) {
            ParameterLayout.Layer w = p.layer(l);
            ActivationLayout.Layer x = a.layer(l);
            // x = res2 + dropout(mlp(...)): the branch's gradient is dres through the dropout
            Buffer dbranch = branch(dres, g, dropout(l, SITE_MLP_RESID), (long) N * C);
            backend.matmulBackward(dfch, grad(w.fcprojw()), grad(w.fcprojb()), dbranch, act(x.fchGelu()), par(w.fcprojw()), N, 4 * C, C);
            if (config.activation() == GptConfig.Activation.RELU2) {
                backend.reluSquaredBackward(dfch, act(x.fch()), dfch, (long) N * 4 * C);
            } else {
                backend.geluBackward(dfch, act(x.fch()), dfch, N, 4 * C);
            }
            backend.matmulBackward(dln, grad(w.fcw()), grad(w.fcb()), dfch, act(x.ln2()), par(w.fcw()), N, C, 4 * C);
            normBackward(dres, w.ln2w(), w.ln2b(), dln, act(x.res2()), x.ln2Mean(), x.ln2Rstd(), N);
            // res2 = x_in + dropout(attention(...))
            dbranch = branch(dres, g, dropout(l, SITE_ATTN_RESID), (long) N * C);
            backend.matmulBackward(datty, grad(w.attprojw()), grad(w.attprojb()), dbranch, act(x.atty()), par(w.attprojw()), N, C, C);
            if (x.att() == null) {
                backend.flashAttentionBackward(dqkv, datty, act(x.qkv()), act(x.atty()), stat(x.attLse()), B, T, C, NH,
                        dropout(l, SITE_ATTN_WEIGHTS));
            } else {
                backend.attentionBackward(dqkv, datty, act(x.qkv()), act(x.att()), B, T, C, NH, dropout(l, SITE_ATTN_WEIGHTS));
            }
            if (config.qkNorm() || config.rope()) {
                backend.qkNormRopeBackward(dqkv, act(x.qkv()), stat(x.qkRstd()), B, T, C, NH, ropeTheta());
            }
            backend.matmulBackward(dln, grad(w.qkvw()), grad(w.qkvb()), dqkv, act(x.ln1()), par(w.qkvw()), N, C, 3 * C);
            normBackward(dres, w.ln1w(), w.ln1b(), dln, act(a.residualIn(l)), x.ln1Mean(), x.ln1Rstd(), N);
            backend.flush(); // this layer's gradients are final
            if (backwardHook != null) backwardHook.accept(l);
        }
        Buffer dencoded = branch(dres, g, dropout(-1, SITE_EMBED), (long) N * C);
        backend.encoderBackward(grad(p.wte()), grad(p.wpe()), dencoded, this.inputs, B, T, C);
        backend.flush();
        backend.endReplayable();
        if (backwardHook != null) backwardHook.accept(-1);
    }

    /**
     * The logits (first V of Vp) at sequence b, position t of the last forward pass; only valid
     * before a backward pass overwrites them.
     */
    public float[] logits(int b, int t) {
        if (acts == null) throw new IllegalStateException("no forward pass yet");
        float[] out = new float[config.vocabSize()];
        long row = ((long) b * acts.seqLen() + t) * config.paddedVocabSize();
        backend.read(actBuf.slice(acts.logits().offset() + row, config.vocabSize()), out);
        return out;
    }

    private java.util.function.IntConsumer backwardHook;

    /**
     * Called during backward as gradients become final: with layer l after that layer's backward,
     * and with -1 at the end (embeddings, final norm, head). Null for none. Data parallelism uses
     * it to start each bucket's all-reduce while backward goes on.
     */
    public void setBackwardHook(java.util.function.IntConsumer hook) {
        this.backwardHook = hook;
    }

    /** Sets every parameter gradient and the step's loss to zero (before the first micro-batch of a step). */
    public void zeroGrad() {
        backend.zero(grads());
        backend.zero(stepNumbers());
    }

    /**
     * Lets an optimizer update the parameters: {@code update} gets the float32 parameters, their
     * gradients and the compute copy (null in float32) and returns whether it wrote the updated
     * weights into the copy too (in the same pass); if not, the copy is remade before the next pass.
     */
    public void applyUpdate(Update update) {
        Buffer copy = computeWeights == params ? null : computeWeights;
        boolean refreshed = update.apply(params, grads(), copy);
        computeWeightsStale = copy != null && !refreshed;
    }

    /** See {@link #applyUpdate}. */
    @FunctionalInterface
    public interface Update {
        boolean apply(Buffer params, Buffer grads, Buffer computeCopy);
    }

    // ------------------------------------------------------------------ helpers

    private void normForward(Buffer out, TensorSpec mean, TensorSpec rstd, Buffer inp, TensorSpec w, TensorSpec b, int N) {
        if (config.norm() == GptConfig.NormType.LAYERNORM) {
            backend.layerNormForward(out, stat(mean), stat(rstd), inp, par(w), par(b), N, config.channels(), config.normEps());
        } else {
            backend.rmsNormForward(out, stat(rstd), inp, par(w), N, config.channels(), config.normEps());
        }
    }

    /** res = a + b, then the norm of res into out: the residual add fused with the next norm. */
    private void residualNormForward(Buffer res, Buffer out, TensorSpec mean, TensorSpec rstd, Buffer a, Buffer b,
                                     TensorSpec w, TensorSpec bias, int N) {
        if (config.norm() == GptConfig.NormType.LAYERNORM) {
            backend.residualLayerNormForward(res, out, stat(mean), stat(rstd), a, b, par(w), par(bias), N,
                    config.channels(), config.normEps());
        } else {
            backend.residualRmsNormForward(res, out, stat(rstd), a, b, par(w), N, config.channels(), config.normEps());
        }
    }

    /** dinp += the norm's input gradient; weight (and bias) gradients +=. */
    private void normBackward(Buffer dinp, TensorSpec w, TensorSpec b, Buffer dout, Buffer inp, TensorSpec mean,
                              TensorSpec rstd, int N) {
        if (config.norm() == GptConfig.NormType.LAYERNORM) {
            backend.layerNormBackward(dinp, grad(w), grad(b), dout, inp, par(w), stat(mean), stat(rstd), N, config.channels());
        } else {
            backend.rmsNormBackward(dinp, grad(w), dout, inp, par(w), stat(rstd), N, config.channels());
        }
    }

    /** The gradient entering a dropout-ed branch: dres itself without dropout, else a masked copy. */
    private Buffer branch(Buffer dres, ActivationLayout.Grads g, Dropout d, long n) {
        if (d == null) return dres;
        Buffer dbranch = scratch(g.dbranch());
        backend.copy(dbranch, dres);
        backend.dropout(dbranch, n, d);
        return dbranch;
    }

    /** The dropout of a site in the current pass, or null when dropout is off. */
    private Dropout dropout(int layer, int site) {
        if (!training) return null;
        return new Dropout(config.dropout(), Dropout.siteKey(passKey, layer, site));
    }

    /** A weight as the ops read it (the compute copy). */
    private Buffer par(TensorSpec t) {
        return t == null ? null : computeWeights.slice(t);
    }

    private Buffer grad(TensorSpec t) {
        return t == null ? null : grads.slice(t);
    }

    /** A value tensor of the activation layout (compute type). */
    private Buffer act(TensorSpec t) {
        return t == null ? null : actBuf.slice(t);
    }

    /** A statistics tensor of the activation layout (float32). */
    private Buffer stat(TensorSpec t) {
        return t == null ? null : statBuf.slice(t);
    }

    private Buffer scratch(TensorSpec t) {
        return gradScratch.slice(t);
    }

    private void ensureActivations(int B, int T) {
        if (acts != null && acts.batchSize() == B && acts.seqLen() == T && acts.flash() == flash) return; // every step
        ActivationLayout next = ActivationLayout.of(config, B, T, flash);
        long N = (long) B * T;
        if (actBuf == null || next.totalSize() > actCapacity) {
            if (actBuf != null) backend.free(actBuf);
            actBuf = backend.allocate(computeType, next.totalSize(), "activations for B=" + B + ", T=" + T);
            actCapacity = next.totalSize();
        }
        if (statBuf == null || next.statsSize() > statCapacity) {
            if (statBuf != null) backend.free(statBuf);
            statBuf = backend.allocate(DType.F32, next.statsSize(), "norm statistics and losses for B=" + B + ", T=" + T);
            statCapacity = next.statsSize();
        }
        if (gradScratch == null || next.grads().totalSize() > scratchCapacity) {
            if (gradScratch != null) backend.free(gradScratch);
            gradScratch = backend.allocate(computeType, next.grads().totalSize(), "gradient scratch for B=" + B + ", T=" + T);
            scratchCapacity = next.grads().totalSize();
        }
        if (inputs == null || N > tokenCapacity) {
            if (inputs != null) {
                backend.free(inputs);
                backend.free(targets);
            }
            inputs = backend.allocate(DType.I32, N, "input tokens");
            targets = backend.allocate(DType.I32, N, "target tokens");
            tokenCapacity = N;
        }
        // token buffers hold the largest B*T seen; ops read only the first B*T
        acts = next;
    }

    @Override
    public void close() {
        backend.free(params);
        if (computeWeights != params) backend.free(computeWeights);
        if (grads != null) backend.free(grads);
        if (actBuf != null) backend.free(actBuf);
        if (statBuf != null) backend.free(statBuf);
        if (gradScratch != null) backend.free(gradScratch);
        if (stepNumbers != null) backend.free(stepNumbers);
        if (inputs != null) {
            backend.free(inputs);
            backend.free(targets);
        }
    }
}
