package gpt2.data;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Tiny Shakespeare as the original prepared it: the text split on blank lines ("\n\n", which is
 * dropped), each section a document with an end-of-text token before it; the first 32,768
 * tokens are the validation split, the rest the training split.
 */
public final class TinyShakespeare {
    private TinyShakespeare() {
    }

    public static final String URL =
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
    public static final int VAL_TOKENS = 32_768;
    public static final String VAL_FILE = "tiny_shakespeare_val.bin";
    public static final String TRAIN_FILE = "tiny_shakespeare_train.bin";

    /** Sections as Python's {@code text.split("\n\n")}: left to right, empty pieces kept. */
    static List<String> sections(String text) {
        List<String> out = new ArrayList<>();
        int from = 0;
        while (true) {
            int i = text.indexOf("\n\n", from);
            if (i < 0) break;
            out.add(text.substring(from, i));
            from = i + 2;
        }
        out.add(text.substring(from));
        return out;
    }

    public static int[] tokenize(String text) {
        Tokenizer tok = Tokenizer.gpt2();
        List<int[]> parts = new ArrayList<>();
        int total = 0;
        List<String> sections = sections(text);
        try (Progress bar = new Progress("tinyshakespeare", sections.size(), "docs")) {
            for (String s : sections) {
                int[] doc = tok.encodeDocument(s);
                parts.add(doc);
                total += doc.length;
                bar.step(1);
            }
        }
        int[] all = new int[total];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, all, at, p.length);
            at += p.length;
        }
        return all;
    }

    /** Writes the two shards; returns {documents, tokens}. */
    public static long[] writeShards(String text, Path outDir, int magic) {
        int[] tokens = tokenize(text);
        if (tokens.length <= VAL_TOKENS) {
            throw new IllegalArgumentException("the text has " + tokens.length + " tokens; the validation split alone needs "
                    + VAL_TOKENS);
        }
        ShardWriter.write(outDir.resolve(VAL_FILE), magic, tokens, 0, VAL_TOKENS);
        ShardWriter.write(outDir.resolve(TRAIN_FILE), magic, tokens, VAL_TOKENS, tokens.length);
        return new long[]{sections(text).size(), tokens.length};
    }
}
