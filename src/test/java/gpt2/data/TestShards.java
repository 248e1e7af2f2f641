package gpt2.data;

import java.nio.file.Path;
import java.util.Random;

/** Token shards for tests. */
public final class TestShards {
    private TestShards() {
    }

    /** {@code count} uniform random token ids below {@code vocab} (Random(seed)) as an llm.c shard at {@code file}. */
    public static Path random(Path file, int count, int vocab, long seed) {
        Random r = new Random(seed);
        int[] t = new int[count];
        for (int i = 0; i < t.length; i++) t[i] = r.nextInt(vocab);
        ShardWriter.write(file, TokenShard.MAGIC_LLMC, t, 0, t.length);
        return file;
    }
}
