package gpt2.model;

/** Tiny configurations of both architectures, for tests. */
public final class TinyConfigs {
    private TinyConfigs() {
    }

    /** GPT-2 architecture: 2 layers, 2 heads, 16 channels, vocab 64 (padded to 128), 16 positions. */
    public static GptConfig gpt2(float dropout) {
        return GptConfig.preset("gpt2").with(b -> b.name("tiny-gpt2").numLayers(2).numHeads(2).channels(16)
                .vocabSize(64).maxSeqLen(16).dropout(dropout));
    }

    /**
     * The modern recipe at the same tiny size (head size 8: four RoPE pairs), with a small
     * soft cap so the cap's curvature shows in the gradients.
     */
    public static GptConfig modern() {
        return GptConfig.preset("d12-modern").with(b -> b.name("tiny-modern").numLayers(2).numHeads(2).channels(16)
                .vocabSize(64).maxSeqLen(16).logitSoftcap(3f));
    }

    /** The original project's architecture at the same tiny size. */
    public static GptConfig seed(float dropout) {
        return GptConfig.preset("seed-d12").with(b -> b.name("tiny-seed").numLayers(2).numHeads(2).channels(16)
                .vocabSize(64).maxSeqLen(16).dropout(dropout));
    }
}
