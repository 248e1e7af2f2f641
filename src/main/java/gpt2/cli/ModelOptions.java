package gpt2.cli;

import gpt2.model.GptConfig;
import picocli.CommandLine.Option;

/** --model and the overrides of each configuration field, shared by the commands that build a model. */
final class ModelOptions {

    @Option(names = "--model", defaultValue = "d12", paramLabel = "NAME",
            description = "Model preset (gpt2, seed-d12, d12, d24, d36, d48, d2, d4), or weights: a checkpoint directory, "
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

    boolean hasOverrides() {
        return numLayers != null || numHeads != null || channels != null || maxSeqLen != null || vocabSize != null
                || paddedVocabSize != null || norm != null || normEps != null || bias != null || qkvBias != null
                || tied != null || dropout != null;
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
            return b;
        });
    }

    static boolean flag(String name, int v) {
        if (v != 0 && v != 1) throw new IllegalArgumentException(name + " must be 0 or 1, got " + v);
        return v == 1;
    }

    private static GptConfig.NormType parseNorm(String s) {
        return switch (s.toLowerCase()) {
            case "layernorm" -> GptConfig.NormType.LAYERNORM;
            case "rmsnorm" -> GptConfig.NormType.RMSNORM;
            default -> throw new IllegalArgumentException("--norm must be layernorm or rmsnorm, got '" + s + "'");
        };
    }
}
