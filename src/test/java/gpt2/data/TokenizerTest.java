package gpt2.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Golden ids from tiktoken's "gpt2" encoding (published in tiktoken's and other libraries' test
 * suites; byte-level BPE with the GPT-2 pre-tokenization regex).
 */
class TokenizerTest {

    record Case(String text, int[] ids) {
    }

    static Stream<Case> golden() {
        return Stream.of(
                new Case("Hello world", new int[]{15496, 995}),
                new Case("hello world", new int[]{31373, 995}),
                new Case("How are you doing?", new int[]{2437, 389, 345, 1804, 30}),
                // contractions
                new Case("You should've done this", new int[]{1639, 815, 1053, 1760, 428}),
                new Case("A\n'll !!to?'d''d of, can't.", new int[]{32, 198, 1183, 37867, 1462, 8348, 67, 7061, 67, 286, 11, 460, 470, 13}),
                // numbers
                new Case("0123456789 0 1 2 3 4 5 6 7 8 9 10 100 1000",
                        new int[]{486, 1954, 2231, 3134, 4531, 657, 352, 362, 513, 604, 642, 718, 767, 807, 860, 838, 1802, 8576}),
                new Case("The company was founded in 2016.", new int[]{464, 1664, 373, 9393, 287, 1584, 13}),
                new Case("000000000", new int[]{10535, 830}),
                new Case("0000000000000000", new int[]{25645}),
                // runs of whitespace and newlines
                new Case("This\n\nis\na\ntest.", new int[]{1212, 198, 198, 271, 198, 64, 198, 9288, 13}),
                new Case("   leading space", new int[]{220, 220, 3756, 2272}),
                new Case("trailing space   ", new int[]{9535, 4386, 2272, 220, 220, 220}),
                new Case("Hi  Hello", new int[]{17250, 220, 18435}),
                new Case("def main():\n\tpass", new int[]{4299, 1388, 33529, 198, 197, 6603}),
                // unicode
                new Case("UNwant\u00e9d,running", new int[]{4944, 42949, 2634, 67, 11, 20270}),
                new Case("\u751f\u6d3b\u7684\u771f\u8c1b\u662f", new int[]{37955, 162, 112, 119, 21410, 40367, 253, 164, 108, 249, 42468}),
                new Case("hello\uff0c\u4f60\u597d\u554a, thanks", new int[]{31373, 171, 120, 234, 19526, 254, 25001, 121, 161, 243, 232, 11, 5176}),
                new Case("test $1 R2 #3 \u20ac4 \u00a35 \u00a56 \u20a37 \u20b98 \u20b19 test",
                        new int[]{9288, 720, 16, 371, 17, 1303, 18, 10432, 19, 4248, 20, 38221, 21, 2343, 224, 96, 22,
                                2343, 224, 117, 23, 2343, 224, 109, 24, 1332}),
                new Case("you\u2026  ", new int[]{5832, 1399, 220, 220}));
    }

    @ParameterizedTest
    @MethodSource("golden")
    void encodesAsTiktokenGpt2(Case c) {
        Tokenizer tok = Tokenizer.gpt2();
        assertArrayEquals(c.ids(), tok.encode(c.text()), "encode " + c.text());
        assertEquals(c.text(), tok.decode(c.ids()), "decode");
    }

    @Test
    void endOfTextIsOrdinaryTextInsideDocuments() {
        Tokenizer tok = Tokenizer.gpt2();
        int[] ids = tok.encode("hello <|endoftext|>");
        assertEquals(31373, ids[0]);
        assertFalse(java.util.Arrays.stream(ids).anyMatch(t -> t == Tokenizer.EOT), "special token must not be parsed");
        assertArrayEquals(new int[]{50256, 31373, 995}, tok.encodeDocument("hello world"));
    }

    @Test
    void streamDecoderHoldsBackPartialCharacters() {
        Tokenizer tok = Tokenizer.gpt2();
        String text = "hi \u751f\u6d3b\u7684 \uD83D\uDE00 \u20b98 end";
        int[] ids = tok.encode(text);
        StreamDecoder d = tok.streamDecoder();
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            String piece = d.push(id);
            assertFalse(piece.contains("\uFFFD"), "streamed a replacement character after token " + id);
            sb.append(piece);
        }
        sb.append(d.flush());
        assertEquals(text, sb.toString());
        // a lone partial character at the end is flushed as a replacement character
        StreamDecoder partial = tok.streamDecoder();
        assertEquals("", partial.push(162)); // first byte of a 3-byte character
        assertEquals("\uFFFD", partial.flush());
    }

    @Test
    void completePrefixFindsUnfinishedSequences() {
        assertEquals(2, StreamDecoder.completePrefix(new byte[]{'a', 'b', (byte) 0xE7, (byte) 0x94}));
        assertEquals(5, StreamDecoder.completePrefix(new byte[]{'a', 'b', (byte) 0xE7, (byte) 0x94, (byte) 0x9F}));
        assertEquals(0, StreamDecoder.completePrefix(new byte[]{(byte) 0xF0, (byte) 0x9F, (byte) 0x98}));
        assertEquals(1, StreamDecoder.completePrefix(new byte[]{'x'}));
    }

    @Test
    void idsOutsideTheVocabularyAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Tokenizer.gpt2().decode(new int[]{50257}));
    }
}
