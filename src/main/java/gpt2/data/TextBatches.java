package gpt2.data;

/**
 * Batches from one in-memory token stream, read front to back in windows of B*T+1 tokens
 * (inputs, and targets shifted by one), wrapping to the start when the stream runs out, as
 * llm.c's loader does within a shard.
 */
public final class TextBatches implements BatchSource {

    private final int[] tokens;
    private final int B, T;
    private long position;

    public TextBatches(int[] tokens, int B, int T) {
        if (tokens.length < (long) B * T + 1) {
            throw new IllegalArgumentException("the text has " + tokens.length + " tokens, fewer than one batch needs ("
                    + B + " x " + T + " + 1 = " + ((long) B * T + 1) + "); lower --batch_size or --sequence_length");
        }
        this.tokens = tokens;
        this.B = B;
        this.T = T;
    }

    @Override
    public void next(int[] inputs, int[] targets) {
        int n = B * T;
        if (position + n + 1 > tokens.length) position = 0;
        int p = (int) position;
        System.arraycopy(tokens, p, inputs, 0, n);
        System.arraycopy(tokens, p + 1, targets, 0, n);
        position += n;
    }

    @Override
    public void reset() {
        position = 0;
    }

    public int tokenCount() {
        return tokens.length;
    }
}
