package gpt2.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The original's data-parallel loader over token shards.
 *
 * <pre>
 * global batch g of a shard: tokens [g*B*T*world, (g+1)*B*T*world + 1)
 * rank r reads B*T+1 tokens at  base + r*B*T     (inputs = the first B*T, targets = shifted by one)
 * then base += B*T*world; if the next global batch would not fit, go to the next shard (cycling)
 * </pre>
 * So across ranks every window of a pass is read exactly once. The position ({@link State}) is
 * the same for every rank and restores exactly.
 */
public final class DataLoader implements AutoCloseable {

    /** Where the next global batch starts. */
    public record State(int shard, long position) {
    }

    private final List<Path> files;
    private final int B, T, rank, world, vocabSize;
    /** This rank's window of B*T+1 tokens, reused by every call to next. */
    private final int[] buf;
    private TokenShard current;
    private int shard;
    private long position;

    public DataLoader(String pattern, int B, int T, int rank, int world, int vocabSize) {
        if (B <= 0 || T <= 0) throw new IllegalArgumentException("batch size and sequence length must be positive");
        if (world <= 0 || rank < 0 || rank >= world) {
            throw new IllegalArgumentException("rank " + rank + " is outside world size " + world);
        }
        this.B = B;
        this.T = T;
        this.rank = rank;
        this.world = world;
        this.vocabSize = vocabSize;
        this.buf = new int[B * T + 1];
        this.files = glob(pattern);
        long need = (long) B * T * world + 1;
        for (Path f : files) {
            try (TokenShard s = TokenShard.open(f)) {
                if (s.size() < need) {
                    throw new IllegalArgumentException(f + ": " + s.size() + " tokens, fewer than one global batch + 1 ("
                            + B + " x " + T + " x " + world + " ranks + 1 = " + need + ")");
                }
            }
        }
        reset();
    }

    /** Files matching a glob in their file name (e.g. data/fineweb-edu/*_train_*.bin), sorted. */
    public static List<Path> glob(String pattern) {
        Path p = Path.of(pattern);
        Path dir = p.getParent() == null ? Path.of(".") : p.getParent();
        String name = p.getFileName().toString();
        if (dir.toString().matches(".*[*?\\[{].*")) {
            throw new IllegalArgumentException(pattern + ": wildcards are supported in the file name only");
        }
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException(pattern + ": no such directory " + dir);
        PathMatcher m = FileSystems.getDefault().getPathMatcher("glob:" + name);
        List<Path> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            s.filter(f -> m.matches(f.getFileName()) && Files.isRegularFile(f)).sorted().forEach(out::add);
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": " + e.getMessage(), e);
        }
        if (out.isEmpty()) throw new IllegalArgumentException(pattern + ": no files match");
        return List.copyOf(out);
    }

    public List<Path> files() {
        return files;
    }

    /** Back to the first batch. */
    public void reset() {
        restore(new State(0, 0));
    }

    public State state() {
        return new State(shard, position);
    }

    public void restore(State s) {
        if (s.shard() < 0 || s.shard() >= files.size()) {
            throw new IllegalArgumentException("loader state names shard " + s.shard() + " of " + files.size());
        }
        long size;
        if (current != null && shard == s.shard()) {
            size = current.size();
        } else {
            try (TokenShard probe = TokenShard.open(files.get(s.shard()))) {
                size = probe.size();
            }
        }
        if (s.position() < 0 || s.position() + (long) B * T * world + 1 > size) {
            throw new IllegalArgumentException("loader state position " + s.position() + " does not fit shard "
                    + files.get(s.shard()));
        }
        open(s.shard());
        position = s.position();
    }

    private void open(int index) {
        if (current != null && shard == index) return;
        if (current != null) current.close();
        current = TokenShard.open(files.get(index));
        shard = index;
    }

    /** Fills B*T inputs and their next-token targets from this rank's window, then advances. */
    public void next(int[] inputs, int[] targets) {
        int n = B * T;
        current.read(position + (long) rank * n, buf, 0, n + 1, vocabSize);
        System.arraycopy(buf, 0, inputs, 0, n);
        System.arraycopy(buf, 1, targets, 0, n);
        position += (long) n * world;
        if (position + (long) n * world + 1 > current.size()) {
            open((shard + 1) % files.size());
            position = 0;
        }
    }

    @Override
    public void close() {
        if (current != null) current.close();
        current = null;
    }
}
