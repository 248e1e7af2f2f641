package gpt2.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Shard format read back with plain java.nio (independent of TokenShard), then TokenShard's errors. */
class TokenShardTest {

    @TempDir
    Path dir;

    /** Deterministic uint16 tokens that start with the edge values and cover the sign bit. */
    static int[] tokens(int n) {
        int[] edges = {0, 50256, 65535, 1, 32767, 32768, 255, 256};
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = i < edges.length ? edges[i] : (int) ((i * 40503L + 7) & 0xFFFF);
        return t;
    }

    /** The file as [header ints..., tokens...] decoded by hand: little-endian int32 header, uint16 body. */
    static ByteBuffer bytes(Path f) throws IOException {
        return ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
    }

    static void assertFileHolds(Path f, int magic, int[] expected) throws IOException {
        ByteBuffer b = bytes(f);
        assertEquals(1024L + 2L * expected.length, b.capacity(), "file size");
        assertEquals(magic, b.getInt(0), "magic");
        assertEquals(1, b.getInt(4), "version");
        assertEquals(expected.length, b.getInt(8), "count");
        for (int i = 3; i < 256; i++) assertEquals(0, b.getInt(4 * i), "header int " + i);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], Short.toUnsignedInt(b.getShort(1024 + 2 * i)), "token " + i);
        }
    }

    static void assertShardReads(Path f, int magic, int[] expected) {
        try (TokenShard s = TokenShard.open(f)) {
            assertEquals(f, s.path());
            assertEquals(magic, s.magic());
            assertEquals(expected.length, s.size());
            assertArrayEquals(expected, s.readAll());
            for (int i = 0; i < expected.length; i += 97) assertEquals(expected[i], s.get(i), "get " + i);
            assertEquals(expected[expected.length - 1], s.get(expected.length - 1));
            int start = Math.min(3, expected.length), n = Math.max(0, expected.length - start - 2);
            int[] dst = new int[n + 4];
            Arrays.fill(dst, -7);
            s.read(start, dst, 2, n, 65536);
            assertEquals(-7, dst[0]);
            assertEquals(-7, dst[1]);
            assertArrayEquals(Arrays.copyOfRange(expected, start, start + n), Arrays.copyOfRange(dst, 2, 2 + n));
            assertEquals(-7, dst[n + 2]);
            assertEquals(-7, dst[n + 3]);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {TokenShard.MAGIC_LLMC, TokenShard.MAGIC_SEED})
    void writeRoundTripsThroughBothMagics(int magic) throws IOException {
        assertEquals(magic == TokenShard.MAGIC_LLMC ? 20240520 : 20250211, magic);
        int[] all = tokens(1000);
        Path f = dir.resolve("sub/dir/shard.bin");   // parent directories are created
        ShardWriter.write(f, magic, all, 10, 910);
        int[] expected = Arrays.copyOfRange(all, 10, 910);
        assertFileHolds(f, magic, expected);
        assertShardReads(f, magic, expected);
    }

    @ParameterizedTest
    @ValueSource(ints = {TokenShard.MAGIC_LLMC, TokenShard.MAGIC_SEED})
    void streamingAppendRoundTripsAcrossBufferFlushes(int magic) throws IOException {
        int[] expected = tokens(600_000);   // more than the writer's 1 MiB (524288-token) buffer
        Path f = dir.resolve("stream.bin");
        try (ShardWriter w = new ShardWriter(f, magic)) {
            int[] chunks = {8, 1, 0, 262_144, 300_000, 37_847};
            int off = 0;
            for (int c : chunks) {
                w.append(expected, off, c);
                off += c;
                assertEquals(off, w.count());
            }
            assertEquals(expected.length, off);
            w.commit();
        }
        assertFileHolds(f, magic, expected);
        assertShardReads(f, magic, expected);
        assertFalse(Files.exists(dir.resolve("stream.bin.tmp")));
    }

    @Test
    void emptyShardIsJustAHeader() throws IOException {
        Path f = dir.resolve("empty.bin");
        ShardWriter.write(f, TokenShard.MAGIC_LLMC, new int[0], 0, 0);
        assertFileHolds(f, TokenShard.MAGIC_LLMC, new int[0]);
        try (TokenShard s = TokenShard.open(f)) {
            assertEquals(0, s.size());
            assertEquals(0, s.readAll().length);
        }
    }

    // ---------------------------------------------------------------- corrupt files

    /** A file with the given header ints (rest zero) followed by bodyBytes zero bytes. */
    Path raw(String name, int magic, int version, int count, int bodyBytes) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(1024 + bodyBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, magic).putInt(4, version).putInt(8, count);
        Path f = dir.resolve(name);
        Files.write(f, b.array());
        return f;
    }

    static String openError(Path f) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TokenShard.open(f).close());
        assertTrue(e.getMessage().contains(f.toString()), "names the file: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void fileShorterThanTheHeaderIsTruncated() throws IOException {
        Path f = dir.resolve("short.bin");
        Files.write(f, new byte[100]);
        String m = openError(f);
        assertTrue(m.contains("truncated") && m.contains("100 bytes"), m);
        Path empty = dir.resolve("zero.bin");
        Files.write(empty, new byte[0]);
        assertTrue(openError(empty).contains("truncated"));
    }

    @Test
    void badMagicIsRefused() throws IOException {
        String m = openError(raw("magic.bin", 12345, 1, 0, 0));
        assertTrue(m.contains("bad magic 12345"), m);
    }

    @Test
    void unsupportedVersionIsRefused() throws IOException {
        String m = openError(raw("v2.bin", TokenShard.MAGIC_LLMC, 2, 0, 0));
        assertTrue(m.contains("unsupported") && m.contains("version 2"), m);
    }

    @Test
    void countLargerThanTheBodyIsTruncated() throws IOException {
        String m = openError(raw("trunc.bin", TokenShard.MAGIC_SEED, 1, 10, 16));
        assertTrue(m.contains("truncated") && m.contains("10 tokens") && m.contains("1040 bytes"), m);
        // the count is unsigned: 0xFFFFFFFF is 4294967295 tokens, not -1
        String u = openError(raw("huge.bin", TokenShard.MAGIC_LLMC, 1, -1, 4));
        assertTrue(u.contains("truncated") && u.contains("4294967295 tokens"), u);
    }

    @Test
    void countSmallerThanTheBodyIsOversized() throws IOException {
        String m = openError(raw("over.bin", TokenShard.MAGIC_LLMC, 1, 10, 24));
        assertTrue(m.contains("oversized") && m.contains("10 tokens") && m.contains("1048 bytes"), m);
        String odd = openError(raw("odd.bin", TokenShard.MAGIC_LLMC, 1, 10, 21));   // half a token extra
        assertTrue(odd.contains("oversized"), odd);
    }

    @Test
    void tokenAtOrAboveTheVocabularyIsNamedWithItsIndex() {
        Path f = dir.resolve("vocab.bin");
        int[] t = {1, 2, 3, 50257, 5, 50256};
        ShardWriter.write(f, TokenShard.MAGIC_LLMC, t, 0, t.length);
        try (TokenShard s = TokenShard.open(f)) {
            int[] dst = new int[6];
            s.read(0, dst, 0, 3, 50257);      // the bad id lies outside this range
            assertArrayEquals(new int[]{1, 2, 3, 0, 0, 0}, dst);
            s.read(4, dst, 0, 2, 50257);      // 50256 is the last valid id
            assertEquals(50256, dst[1]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> s.read(1, new int[6], 0, 5, 50257));
            String m = e.getMessage();
            assertTrue(m.contains(f.toString()) && m.contains("token id 50257") && m.contains("index 3"), m);
            s.read(0, dst, 0, 6, 50258);      // a larger vocabulary accepts it
            assertEquals(50257, dst[3]);
        }
    }

    @Test
    void readOutOfRangeIsRefused() {
        Path f = dir.resolve("range.bin");
        ShardWriter.write(f, TokenShard.MAGIC_LLMC, tokens(10), 0, 10);
        try (TokenShard s = TokenShard.open(f)) {
            int[] dst = new int[20];
            s.read(0, dst, 0, 10, 65536);     // exactly the whole shard is fine
            for (long[] bad : new long[][]{{1, 10}, {-1, 2}, {10, 1}, {0, 11}}) {
                IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class,
                        () -> s.read(bad[0], dst, 0, (int) bad[1], 65536));
                assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("10"), e.getMessage());
            }
        }
    }

    // ---------------------------------------------------------------- ShardWriter

    static long filesIn(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.count();
        }
    }

    @Test
    void closeWithoutCommitLeavesNothing() throws IOException {
        Path f = dir.resolve("partial.bin");
        try (ShardWriter w = new ShardWriter(f, TokenShard.MAGIC_LLMC)) {
            w.append(tokens(100), 0, 100);
            assertTrue(Files.exists(dir.resolve("partial.bin.tmp")), "written under a temporary name");
            assertFalse(Files.exists(f));
        }
        assertFalse(Files.exists(f));
        assertFalse(Files.exists(dir.resolve("partial.bin.tmp")));
        assertEquals(0, filesIn(dir));
    }

    @Test
    void abandonedRewriteKeepsTheOldShard() throws IOException {
        Path f = dir.resolve("keep.bin");
        int[] old = tokens(50);
        ShardWriter.write(f, TokenShard.MAGIC_SEED, old, 0, 50);
        try (ShardWriter w = new ShardWriter(f, TokenShard.MAGIC_LLMC)) {
            w.append(new int[]{9, 9, 9}, 0, 3);
        }
        assertFileHolds(f, TokenShard.MAGIC_SEED, old);
        assertEquals(1, filesIn(dir));
    }

    @Test
    void tokensOutsideUint16AreRefused() throws IOException {
        Path f = dir.resolve("range.bin");
        for (int bad : new int[]{65536, -1, Integer.MAX_VALUE, Integer.MIN_VALUE}) {
            try (ShardWriter w = new ShardWriter(f, TokenShard.MAGIC_LLMC)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> w.append(new int[]{1, 65535, bad}, 0, 3));
                assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("token " + bad),
                        e.getMessage());
            }
        }
        assertEquals(0, filesIn(dir));
    }

    @Test
    void invalidMagicIsRefused() throws IOException {
        Path f = dir.resolve("magic.bin");
        for (int bad : new int[]{0, 12345, 20240521}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ShardWriter(f, bad));
            assertTrue(e.getMessage().contains(String.valueOf(bad)), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ShardWriter.write(f, bad, new int[]{1}, 0, 1));
        }
        assertEquals(0, filesIn(dir));
    }

    @Test
    void commitReplacesAnExistingShardWhole() throws IOException {
        Path f = dir.resolve("replace.bin");
        ShardWriter.write(f, TokenShard.MAGIC_SEED, tokens(5000), 0, 5000);
        assertEquals(1024 + 2 * 5000, Files.size(f));
        int[] fresh = {7, 65535, 0};
        try (ShardWriter w = new ShardWriter(f, TokenShard.MAGIC_LLMC)) {
            w.append(fresh, 0, 3);
            assertFileHolds(f, TokenShard.MAGIC_SEED, tokens(5000));   // untouched until commit
            w.commit();
        }
        assertFileHolds(f, TokenShard.MAGIC_LLMC, fresh);             // size checked: no old tail remains
        assertShardReads(dir.resolve("replace.bin"), TokenShard.MAGIC_LLMC, fresh);
        assertEquals(1, filesIn(dir));
    }

    @Test
    void aRefusedAppendWritesNothingOfIt() throws IOException {
        Path f = dir.resolve("partial.bin");
        try (ShardWriter w = new ShardWriter(f, TokenShard.MAGIC_LLMC)) {
            w.append(new int[]{5, 6}, 0, 2);
            assertThrows(IllegalArgumentException.class, () -> w.append(new int[]{7, 70_000}, 0, 2));
            assertEquals(2, w.count());
            w.commit();
        }
        try (TokenShard s = TokenShard.open(f)) {
            assertArrayEquals(new int[]{5, 6}, s.readAll());
        }
    }
}
