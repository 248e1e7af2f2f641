package gpt2.cli;

import gpt2.model.GptConfig;
import picocli.CommandLine.Option;

/** --model and the overrides of each configuration field, shared by the commands that build a model. */
final class ModelOptions {

    @Option(names = "--model", defaultValue = "d12", paramLabel = "NAME",
            description = "Model preset (gpt2, seed-d12, d12, d24, d36, d48, d12-modern, d2, d4, d4-modern), or weights: a checkpoint directory, "
                    + "a run folder (its newest valid checkpoint), an llm.c model file or a Hugging Face folder "
                    + "(default: ${DEFAULT-VALUE}).")
    String model;

    @Option(names = {"--n_layer", "--n-layer"}, paramLabel = "L", description = "Override: number of layers.")
    Integer numLayers;

    @Option(names = {"--n_head", "--n-head"}, paramLabel = "NH", description = "Override: attention heads.")
    Integer numHeads;

    @Option(names = {"--n_embd", "--n-embd"}, paramLabel = "C", description = "Override: channels.")
    Integer channels;

    @Option(names = {"--block_size", "--block-size"}, paramLabel = "T", description = "Override: maximum sequence length.")
    Integer maxSeqLen;

    @Option(names = {"--vocab_size", "--vocab-size"}, paramLabel = "V", description = "Override: vocabulary size.")
    Integer vocabSize;

    @Option(names = {"--padded_vocab_size", "--padded-vocab-size"}, paramLabel = "Vp",
            description = "Override: padded vocabulary rows (default: vocab size rounded up to 128).")
    Integer paddedVocabSize;

    @Option(names = "--norm", paramLabel = "KIND", description = "Override: layernorm or rmsnorm.")
    String norm;

    @Option(names = {"--norm_eps", "--norm-eps"}, paramLabel = "EPS", description = "Override: norm epsilon.")
    Float normEps;

    @Option(names = "--bias", paramLabel = "0|1", description = "Override: biases on the projection and MLP linears.")
    Integer bias;

    @Option(names = {"--qkv_bias", "--qkv-bias"}, paramLabel = "0|1", description = "Override: bias on the q/k/v projection.")
    Integer qkvBias;

    @Option(names = {"--tie_embeddings", "--tie-embeddings"}, paramLabel = "0|1",
            description = "Override: output head tied to the token embedding.")
    Integer tied;

    @Option(names = "--dropout", paramLabel = "P", description = "Override: dropout probability.")
    Float dropout;

    @Option(names = "--rope", paramLabel = "0|1",
            description = "Override: rotary position embeddings on q and k instead of learned positions (no wpe).")
    Integer rope;

    @Option(names = {"--rope_theta", "--rope-theta"}, paramLabel = "THETA",
            description = {"Override: RoPE base (default with --rope 1: 50000, the original project's; d12-modern: 10000).",
                    "Pairs rotated: (j, j + hs/2); the original's rope_en (torchtune's) rotates interleaved (2j, 2j+1): "
                            + "equivalent from scratch, weights not interchangeable."})
    Float ropeTheta;

    @Option(names = {"--qk_norm", "--qk-norm"}, paramLabel = "0|1", description = "Override: RMS-normalise q and k per head.")
    Integer qkNorm;

    @Option(names = "--activation", paramLabel = "KIND", description = "Override: MLP activation, gelu or relu2 (ReLU squared).")
    String activation;

    @Option(names = {"--norm_weights", "--norm-weights"}, paramLabel = "0|1",
            description = "Override: learned RMSNorm scales (0: parameter-free RMSNorm; needs --norm rmsnorm).")
    Integer normWeights;

    @Option(names = {"--zero_init_proj", "--zero-init-proj"}, paramLabel = "0|1",
            description = "Override: attention/MLP output projections and an untied head start at zero.")
    Integer zeroInitProj;

    @Option(names = {"--logit_softcap", "--logit-softcap"}, paramLabel = "CAP",
            description = "Override: logits = CAP * tanh(logits / CAP) before the softmax (0: off).")
    Float logitSoftcap;

    boolean hasOverrides() {
        return numLayers != null || numHeads != null || channels != null || maxSeqLen != null || vocabSize != null
                || paddedVocabSize != null || norm != null || normEps != null || bias != null || qkvBias != null
                || tied != null || dropout != null || rope != null || ropeTheta != null || qkNorm != null
                || activation != null || normWeights != null || zeroInitProj != null || logitSoftcap != null;
    }

    /** The preset with every given override applied. */
    GptConfig config() {
        return applyTo(GptConfig.preset(model));
    }

    /** A config with every given override applied. */
    GptConfig applyTo(GptConfig base) {
        return base.with(b -> {
            if (numLayers != null) b.numLayers(numLayers);
            if (numHeads != null) b.numHeads(numHeads);
            if (channels != null) b.channels(channels);
            if (maxSeqLen != null) b.maxSeqLen(maxSeqLen);
            if (vocabSize != null) b.vocabSize(vocabSize);
            if (paddedVocabSize != null) b.paddedVocabSize(paddedVocabSize);
            if (norm != null) b.norm(parseNorm(norm));
            if (normEps != null) b.normEps(normEps);
            if (bias != null) b.bias(flag("--bias", bias));
            if (qkvBias != null) b.qkvBias(flag("--qkv_bias", qkvBias));
            if (tied != null) b.tiedEmbeddings(flag("--tie_embeddings", tied));
            if (dropout != null) b.dropout(dropout);
            if (rope != null) b.rope(flag("--rope", rope));
            if (ropeTheta != null) b.ropeTheta(ropeTheta);
            if (qkNorm != null) b.qkNorm(flag("--qk_norm", qkNorm));
            if (activation != null) b.activation(parseActivation(activation));
            if (normWeights != null) b.parameterFreeNorm(!flag("--norm_weights", normWeights));
            if (zeroInitProj != null) b.zeroInitProjections(flag("--zero_init_proj", zeroInitProj));
            if (logitSoftcap != null) b.logitSoftcap(logitSoftcap);
            return b;
        });
    }

    static boolean flag(String name, int v) {
        if (v != 0 && v != 1) throw new IllegalArgumentException(name + " must be 0 or 1, got " + v);
        return v == 1;
    }

    private static GptConfig.Activation parseActivation(String s) {
        return switch (s.toLowerCase()) {
            case "gelu" -> GptConfig.Activation.GELU;
            case "relu2", "relu^2", "relu_squared" -> GptConfig.Activation.RELU2;
            default -> throw new IllegalArgumentException("--activation must be gelu or relu2, got '" + s + "'");
        };
    }

    private static GptConfig.NormType parseNorm(String s) {
        return switch (s.toLowerCase()) {
            case "layernorm" -> GptConfig.NormType.LAYERNORM;
            case "rmsnorm" -> GptConfig.NormType.RMSNORM;
            default -> throw new IllegalArgumentException("--norm must be layernorm or rmsnorm, got '" + s + "'");
        };
    }
}
