package gpt2.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A token shard, memory-mapped read-only (a 200 MB shard never lands on the heap).
 *
 * <pre>
 * header: 256 little-endian int32 = [magic, version = 1, token count, 0 ...]   (1024 bytes)
 * body:   token count little-endian uint16
 * </pre>
 * Magic 20240520 is llm.c's (written by default); 20250211 is the original project's (read).
 */
public final class TokenShard implements AutoCloseable {

    public static final int MAGIC_LLMC = 20240520;
    public static final int MAGIC_SEED = 20250211;
    public static final int VERSION = 1;
    public static final int HEADER_INTS = 256;
    public static final int HEADER_BYTES = HEADER_INTS * 4;

    static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment map;
    private final int magic;
    private final long count;

    private TokenShard(Path path, Arena arena, MemorySegment map, int magic, long count) {
        this.path = path;
        this.arena = arena;
        this.map = map;
        this.magic = magic;
        this.count = count;
    }

    /** Maps a shard and checks its header and size; errors name the file and the problem. */
    public static TokenShard open(Path file) {
        long size;
        try {
            size = Files.size(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read token shard (" + e.getMessage() + ")");
        }
        if (size < HEADER_BYTES) {
            throw new IllegalArgumentException(file + ": truncated token shard: " + size
                    + " bytes, shorter than the 1024-byte header");
        }
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment map = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            int magic = map.get(INT_LE, 0);
            int version = map.get(INT_LE, 4);
            long count = Integer.toUnsignedLong(map.get(INT_LE, 8));
            if (magic != MAGIC_LLMC && magic != MAGIC_SEED) {
                throw new IllegalArgumentException(file + ": bad magic " + magic + " in token shard header (expected "
                        + MAGIC_LLMC + " or " + MAGIC_SEED + "); is this a token shard?");
            }
            if (version != VERSION) {
                throw new IllegalArgumentException(file + ": unsupported token shard version " + version
                        + " (expected " + VERSION + ")");
            }
            long expected = HEADER_BYTES + 2 * count;
            if (size != expected) {
                throw new IllegalArgumentException(file + ": " + (size < expected ? "truncated" : "oversized")
                        + " token shard: header says " + count + " tokens (" + expected + " bytes), file has "
                        + size + " bytes");
            }
            return new TokenShard(file, arena, map, magic, count);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException(file + ": cannot map token shard: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    public int magic() {
        return magic;
    }

    /** Number of tokens. */
    public long size() {
        return count;
    }

    public int get(long i) {
        return Short.toUnsignedInt(map.get(U16_LE, HEADER_BYTES + 2 * i));
    }

    /**
     * Copies n tokens from {@code start} into dst[off...], checking each against the vocabulary.
     */
    public void read(long start, int[] dst, int off, int n, int vocabSize) {
        if (start < 0 || start + n > count) {
            throw new IndexOutOfBoundsException(path + ": tokens [" + start + ", " + (start + n)
                    + ") outside a shard of " + count);
        }
        for (int i = 0; i < n; i++) {
            int t = get(start + i);
            if (t >= vocabSize) {
                throw new IllegalArgumentException(path + ": token id " + t + " at index " + (start + i)
                        + " is >= the vocabulary size " + vocabSize);
            }
            dst[off + i] = t;
        }
    }

    /** All tokens (for small shards and tests). */
    public int[] readAll() {
        if (count > Integer.MAX_VALUE - 8) throw new IllegalStateException(path + ": too large to read at once");
        int[] out = new int[(int) count];
        for (int i = 0; i < out.length; i++) out[i] = get(i);
        return out;
    }

    @Override
    public void close() {
        arena.close();
    }
}
