package gpt2.data;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Decodes tokens as they arrive. A GPT-2 token can end in the middle of a multi-byte UTF-8
 * character (an emoji is often split over two or three tokens); those bytes are held back until
 * the character is whole, so streamed text never shows a replacement character that the full
 * decode would not.
 */
public final class StreamDecoder {

    private final Tokenizer tokenizer;
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

    StreamDecoder(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Adds one token; returns the text that became complete (possibly empty). */
    public String push(int token) {
        pending.writeBytes(tokenizer.decodeBytes(new int[]{token}));
        byte[] bytes = pending.toByteArray();
        int complete = completePrefix(bytes);
        String text = new String(bytes, 0, complete, StandardCharsets.UTF_8);
        pending.reset();
        pending.write(bytes, complete, bytes.length - complete);
        return text;
    }

    /** Whatever is held back, decoded as is (an unfinished character becomes U+FFFD). */
    public String flush() {
        String text = pending.toString(StandardCharsets.UTF_8);
        pending.reset();
        return text;
    }

    /** Length of the prefix that does not end inside an unfinished UTF-8 sequence. */
    static int completePrefix(byte[] b) {
        int n = b.length;
        // look back over at most 3 continuation bytes for the lead byte of the last sequence
        for (int back = 1; back <= Math.min(4, n); back++) {
            int c = b[n - back] & 0xFF;
            if ((c & 0xC0) == 0x80) continue; // continuation byte
            int need = (c & 0x80) == 0 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
            return back < need ? n - back : n;
        }
        return n; // only continuation bytes: invalid, let the decoder replace them
    }
}
