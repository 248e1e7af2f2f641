package gpt2.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Streams tokens into a shard file: written under a temporary name, the header filled in,
 * forced to disk and renamed into place by {@link #commit()}. Closing without commit deletes the
 * temporary file, so an interrupted preparation never leaves a partial shard under a final name.
 */
public final class ShardWriter implements AutoCloseable {

    private final Path target, temp;
    private final int magic;
    private final FileChannel channel;
    private final ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
    private long count;
    private boolean committed;

    public ShardWriter(Path target, int magic) {
        if (magic != TokenShard.MAGIC_LLMC && magic != TokenShard.MAGIC_SEED) {
            throw new IllegalArgumentException("--magic " + magic + " is not a shard magic (" + TokenShard.MAGIC_LLMC
                    + " llm.c, " + TokenShard.MAGIC_SEED + " the original project)");
        }
        this.target = target;
        this.magic = magic;
        this.temp = target.resolveSibling(target.getFileName() + ".tmp");
        try {
            if (target.getParent() != null) Files.createDirectories(target.getParent());
            channel = FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE);
            channel.position(TokenShard.HEADER_BYTES);
        } catch (IOException e) {
            throw new UncheckedIOException(temp + ": cannot create shard: " + e.getMessage(), e);
        }
    }

    /** Writes a whole shard at once. */
    public static void write(Path target, int magic, int[] tokens, int from, int to) {
        try (ShardWriter w = new ShardWriter(target, magic)) {
            w.append(tokens, from, to - from);
            w.commit();
        }
    }

    /** Appends tokens; a token that does not fit uint16 is refused before any of them is written. */
    public void append(int[] tokens, int off, int n) {
        for (int i = 0; i < n; i++) {
            int t = tokens[off + i];
            if (t < 0 || t > 0xFFFF) {
                throw new IllegalArgumentException(target + ": token " + t + " does not fit in uint16");
            }
        }
        for (int i = 0; i < n; i++) {
            if (!buf.hasRemaining()) flush();
            buf.putShort((short) tokens[off + i]);
        }
        count += n;
    }

    public long count() {
        return count;
    }

    private void flush() {
        buf.flip();
        try {
            while (buf.hasRemaining()) channel.write(buf);
        } catch (IOException e) {
            throw new UncheckedIOException(temp + ": write failed: " + e.getMessage(), e);
        }
        buf.clear();
    }

    /** Fills in the header, forces the file to disk and renames it into place. */
    public void commit() {
        if (count > 0xFFFFFFFFL) throw new IllegalStateException(target + ": more tokens than a header can count");
        flush();
        ByteBuffer header = ByteBuffer.allocate(TokenShard.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(magic).putInt(TokenShard.VERSION).putInt((int) count).rewind(); // all 1024 bytes
        try {
            channel.write(header, 0);
            channel.force(true);
            channel.close();
            Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            committed = true;
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": cannot finish shard: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        if (committed) return;
        try {
            channel.close();
            Files.deleteIfExists(temp);
        } catch (IOException ignored) {
            // best effort: the temporary name never passes for a shard
        }
    }
}
