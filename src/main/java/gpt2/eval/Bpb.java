package gpt2.eval;

import gpt2.data.Tokenizer;

/**
 * Bits per byte: the summed loss in nats over some tokens divided by ln 2 times the UTF-8 bytes
 * those tokens decode to (special tokens, GPT-2's end-of-text, count zero bytes). Unlike the loss
 * per token it does not depend on the tokenizer, so models with different vocabularies compare.
 */
public final class Bpb {
    private Bpb() {
    }

    private static volatile int[] tokenBytes;

    /** UTF-8 bytes of each GPT-2 token id on its own; 0 for the end-of-text token. */
    public static int[] tokenBytes() {
        int[] t = tokenBytes;
        if (t == null) {
            Tokenizer tok = Tokenizer.gpt2();
            t = new int[Tokenizer.VOCAB_SIZE];
            for (int i = 0; i < t.length; i++) t[i] = i == Tokenizer.EOT ? 0 : tok.decodeBytes(new int[]{i}).length;
            tokenBytes = t;
        }
        return t;
    }

    /** Bytes the targets decode to (targets of -1, and ids outside GPT-2's vocabulary, count none). */
    public static long bytes(int[] targets) {
        int[] b = tokenBytes();
        long sum = 0;
        for (int t : targets) if (t >= 0 && t < b.length) sum += b[t];
        return sum;
    }

    /** Over some batches: the sum of their mean losses (nats per token) and the bytes their targets decode to. */
    public record Sums(double meanLosses, long bytes) {
    }

    /**
     * Reads {@code steps} batches of B x T tokens from the loader (every position has a target), runs
     * the model on each (evaluation: no dropout) and sums their mean losses and their targets' bytes;
     * the summed nats are {@code meanLosses x B x T}. Validation during training and {@code gpt2 eval
     * --tasks bpb} both measure this way.
     */
    public static Sums over(gpt2.model.Gpt2 model, gpt2.data.DataLoader loader, int[] inputs, int[] targets, int B, int T,
                            int steps) {
        double losses = 0;
        long bytes = 0;
        for (int i = 0; i < steps; i++) {
            loader.next(inputs, targets);
            losses += model.forward(inputs, targets, B, T, -1);
            bytes += bytes(targets);
        }
        return new Sums(losses, bytes);
    }

    /** nats / (ln 2 x bytes); NaN without bytes. */
    public static double of(double nats, long bytes) {
        return bytes == 0 ? Double.NaN : nats / (Math.log(2) * bytes);
    }
}
