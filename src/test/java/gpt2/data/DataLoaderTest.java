package gpt2.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Token i of shard s is s*10000 + i, so every token says where it came from; the expected schedule
 * is computed here from the rule in DataLoader's javadoc, not from the loader.
 */
class DataLoaderTest {

    static final int B = 2, T = 3, BT = B * T, V = 50257;
    /** Shard sizes: with a tail left over, an exact fit (61 = 10*6+1), and one global batch for world 3. */
    static final int[] SIZES = {100, 19, 61};

    @TempDir
    Path dir;

    static int token(int shard, int i) {
        return shard * 10000 + i;
    }

    Path shard(String name, int id, int size) {
        int[] t = new int[size];
        for (int i = 0; i < size; i++) t[i] = token(id, i);
        Path f = dir.resolve(name);
        ShardWriter.write(f, TokenShard.MAGIC_LLMC, t, 0, size);
        return f;
    }

    String makeShards() {
        for (int s = 0; s < SIZES.length; s++) shard("train_" + s + ".bin", s, SIZES[s]);
        return dir.resolve("train_*.bin").toString();
    }

    /** Global batches in a shard by the javadoc rule: a batch at p fits while p + B*T*world + 1 <= size. */
    static int batches(int size, int world) {
        int n = 0;
        for (long p = 0; p + (long) BT * world + 1 <= size; p += (long) BT * world) n++;
        return n;
    }

    static int[][] next(DataLoader l) {
        int[] in = new int[BT], tg = new int[BT];
        l.next(in, tg);
        return new int[][]{in, tg};
    }

    @Test
    void batchCountsFollowTheRule() {
        assertEquals(16, batches(100, 1));
        assertEquals(3, batches(19, 1));
        assertEquals(10, batches(61, 1));
        assertEquals(1, batches(19, 3));
        assertEquals(3, batches(61, 3));
        for (int w = 1; w <= 3; w++) for (int size : SIZES) assertEquals((size - 1) / (BT * w), batches(size, w));
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void everyWindowIsReadOncePerPassTiledInRankOrder(int world) {
        String pattern = makeShards();
        List<DataLoader> ranks = new ArrayList<>();
        for (int r = 0; r < world; r++) ranks.add(new DataLoader(pattern, B, T, r, world, V));
        int global = BT * world;
        for (int pass = 0; pass < 2; pass++) {          // the second pass checks the cycle back to shard 0
            for (int s = 0; s < SIZES.length; s++) {
                int nb = batches(SIZES[s], world);
                List<Integer> tiled = new ArrayList<>();  // windows of this shard in (step, rank) order
                for (int g = 0; g < nb; g++) {
                    for (int r = 0; r < world; r++) {
                        DataLoader l = ranks.get(r);
                        assertEquals(new DataLoader.State(s, (long) g * global), l.state(),
                                "world " + world + " rank " + r + " pass " + pass);
                        int[][] b = next(l);
                        for (int j = 0; j < BT; j++) {
                            assertEquals(b[0][j] + 1, b[1][j], "targets are inputs shifted by one");
                            assertEquals(s, b[0][j] / 10000, "shard of the token");
                            tiled.add(b[0][j] % 10000);
                        }
                        assertEquals(token(s, g * global + r * BT + BT), b[1][BT - 1], "last target");
                    }
                }
                assertEquals(nb * global, tiled.size());
                for (int i = 0; i < tiled.size(); i++) {
                    assertEquals(i, tiled.get(i), "shard " + s + " prefix tiled exactly once, world " + world);
                }
            }
            for (DataLoader l : ranks) assertEquals(new DataLoader.State(0, 0), l.state(), "back to the start");
        }
        for (DataLoader l : ranks) l.close();
    }

    @Test
    void resetReturnsToTheFirstBatch() {
        try (DataLoader l = new DataLoader(makeShards(), B, T, 1, 2, V)) {
            int[][] first = next(l);
            assertArrayEquals(new int[]{6, 7, 8, 9, 10, 11}, first[0]);   // rank 1 starts at B*T
            for (int i = 0; i < 7; i++) next(l);                           // 8 batches: past shard 0 into shard 1
            assertEquals(1, l.state().shard());
            l.reset();
            assertEquals(new DataLoader.State(0, 0), l.state());
            int[][] again = next(l);
            assertArrayEquals(first[0], again[0]);
            assertArrayEquals(first[1], again[1]);
        }
    }

    @Test
    void restoredLoaderContinuesIdentically() {
        String pattern = makeShards();
        for (int k : new int[]{0, 3, 8, 9, 12}) {   // 8 batches in shard 0 for world 2, 1 in shard 1
            try (DataLoader a = new DataLoader(pattern, B, T, 1, 2, V);
                 DataLoader b = new DataLoader(pattern, B, T, 1, 2, V)) {
                for (int i = 0; i < k; i++) next(a);
                for (int i = 0; i < 5; i++) next(b);   // somewhere else before restoring
                b.restore(a.state());
                assertEquals(a.state(), b.state());
                for (int i = 0; i < 30; i++) {
                    int[][] x = next(a), y = next(b);
                    assertArrayEquals(x[0], y[0], "k " + k + " step " + i);
                    assertArrayEquals(x[1], y[1], "k " + k + " step " + i);
                    assertEquals(a.state(), b.state());
                }
            }
        }
    }

    @Test
    void restoreRefusesABadShardOrPosition() {
        try (DataLoader l = new DataLoader(makeShards(), B, T, 0, 2, V)) {
            for (int bad : new int[]{-1, 3}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> l.restore(new DataLoader.State(bad, 0)));
                assertTrue(e.getMessage().contains("shard " + bad + " of 3"), e.getMessage());
            }
            // shard 2 has 61 tokens: the last global batch of 12 starts at 48; 49 + 12 + 1 > 61
            l.restore(new DataLoader.State(2, 48));
            for (long bad : new long[]{-1, 49, 61, 1000}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> l.restore(new DataLoader.State(2, bad)));
                assertTrue(e.getMessage().contains("position " + bad)
                        && e.getMessage().contains(dir.resolve("train_2.bin").toString()), e.getMessage());
            }
        }
    }

    @Test
    void failedRestoreLeavesTheLoaderWhereItWas() {
        try (DataLoader l = new DataLoader(makeShards(), B, T, 0, 1, V)) {
            next(l);
            DataLoader.State before = l.state();
            assertEquals(new DataLoader.State(0, 6), before);
            assertThrows(IllegalArgumentException.class, () -> l.restore(new DataLoader.State(1, 1000)));
            assertEquals(before, l.state(), "a refused restore must not move the loader");
            assertArrayEquals(new int[]{6, 7, 8, 9, 10, 11}, next(l)[0]);
        }
    }

    // ---------------------------------------------------------------- files and validation

    @Test
    void globSortsByNameAndKeepsOnlyMatchingFiles() throws IOException {
        shard("c.bin", 2, 40);
        shard("a.bin", 0, 40);
        shard("b.bin", 1, 40);
        shard("a.other", 5, 40);
        Files.createDirectory(dir.resolve("d.bin"));   // a directory is not a shard
        String pattern = dir.resolve("*.bin").toString();
        List<Path> expected = List.of(dir.resolve("a.bin"), dir.resolve("b.bin"), dir.resolve("c.bin"));
        assertEquals(expected, DataLoader.glob(pattern));
        try (DataLoader l = new DataLoader(pattern, B, T, 0, 1, V)) {
            assertEquals(expected, l.files());
            assertEquals(token(0, 0), next(l)[0][0]);   // a.bin first although written second
        }
    }

    @Test
    void patternMatchingNothingNamesThePattern() {
        makeShards();
        String pattern = dir.resolve("val_*.bin").toString();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DataLoader.glob(pattern));
        assertTrue(e.getMessage().contains(pattern) && e.getMessage().contains("no files match"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new DataLoader(pattern, B, T, 0, 1, V));
    }

    @Test
    void wildcardInTheDirectoryIsRefused() throws IOException {
        Files.createDirectory(dir.resolve("sub1"));
        shard("sub1/x.bin", 0, 40);
        String pattern = dir.resolve("sub*").resolve("x.bin").toString();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DataLoader.glob(pattern));
        assertTrue(e.getMessage().contains(pattern) && e.getMessage().contains("file name only"), e.getMessage());
    }

    @Test
    void shardShorterThanOneGlobalBatchIsRefused() {
        makeShards();
        // world 3 needs 2*3*3 + 1 = 19 tokens: train_1 has exactly that, so one fewer fails
        new DataLoader(dir.resolve("train_*.bin").toString(), B, T, 0, 3, V).close();
        Path small = shard("train_3.bin", 3, 18);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new DataLoader(dir.resolve("train_*.bin").toString(), B, T, 2, 3, V));
        String m = e.getMessage();
        assertTrue(m.contains(small.toString()) && m.contains("18 tokens")
                && m.contains("2 x 3 x 3 ranks + 1 = 19"), m);
    }

    @Test
    void rankOutsideTheWorldIsRefused() {
        String pattern = makeShards();
        for (int[] rw : new int[][]{{2, 2}, {3, 2}, {-1, 2}, {0, 0}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new DataLoader(pattern, B, T, rw[0], rw[1], V));
            assertTrue(e.getMessage().contains("rank " + rw[0]) && e.getMessage().contains("world size " + rw[1]),
                    e.getMessage());
        }
    }

    @Test
    void tokenOutsideTheVocabularyNamesTheFileWhenRead() {
        int[] t = new int[40];
        for (int i = 0; i < t.length; i++) t[i] = i;
        t[17] = 50300;
        Path f = dir.resolve("bad.bin");
        ShardWriter.write(f, TokenShard.MAGIC_SEED, t, 0, t.length);
        try (DataLoader l = new DataLoader(f.toString(), B, T, 0, 1, V)) {   // opening does not scan tokens
            next(l);
            next(l);                                                          // tokens 0..12
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> next(l));
            String m = e.getMessage();
            assertTrue(m.contains(f.toString()) && m.contains("token id 50300") && m.contains("index 17"), m);
        }
        try (DataLoader wide = new DataLoader(f.toString(), B, T, 0, 1, 50301)) {
            for (int i = 0; i < 3; i++) next(wide);
        }
    }
}
