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

    /** A document as the original tokenized it: the end-of-text token, then its ordinary tokens. */
    public int[] encodeDocument(String text) {
        IntArrayList ids = encoding.encodeOrdinary(text);
        int[] out = new int[ids.size() + 1];
        out[0] = EOT;
        for (int i = 0; i < ids.size(); i++) out[i + 1] = ids.get(i);
        return out;
    }

    /** Text of whole tokens; bytes that do not form valid UTF-8 become U+FFFD. */
    public String decode(int[] tokens) {
        return new String(decodeBytes(tokens), java.nio.charset.StandardCharsets.UTF_8);
    }

    /** The raw bytes of tokens (a token may hold part of a UTF-8 character). */
    public byte[] decodeBytes(int[] tokens) {
        IntArrayList ids = new IntArrayList(tokens.length);
        for (int t : tokens) {
            if (t < 0 || t >= VOCAB_SIZE) {
                throw new IllegalArgumentException("token id " + t + " is outside the GPT-2 vocabulary [0, " + VOCAB_SIZE + ")");
            }
            ids.add(t);
        }
        return encoding.decodeBytes(ids);
    }

    /** A decoder for tokens arriving one at a time (sampling), which holds back partial characters. */
    public StreamDecoder streamDecoder() {
        return new StreamDecoder(this);
    }
}
