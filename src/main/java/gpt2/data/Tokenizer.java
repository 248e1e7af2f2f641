package gpt2.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;

/** The GPT-2 byte-pair encoding (tiktoken's "gpt2", jtokkit's R50K_BASE). */
public final class Tokenizer {

    public static final int EOT = 50256;
    public static final int VOCAB_SIZE = 50257;

    private static final Tokenizer GPT2 = new Tokenizer(
            Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE));

    private final Encoding encoding;

    private Tokenizer(Encoding encoding) {
        this.encoding = encoding;
    }

    public static Tokenizer gpt2() {
        return GPT2;
    }

    /** Token ids of ordinary text; "<|endoftext|>" in the text is encoded as plain text. */
    public int[] encode(String text) {
        IntArrayList ids = encoding.encodeOrdinary(text);
        return ids.toArray();
    }

    public String decode(int[] tokens) {
        IntArrayList ids = new IntArrayList(tokens.length);
        for (int t : tokens) ids.add(t);
        return encoding.decode(ids);
    }
}
