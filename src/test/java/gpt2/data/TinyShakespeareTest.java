package gpt2.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class TinyShakespeareTest {

    @Test
    void sectionsFollowPythonsSplit() {
        // "a\n\nb\n\n\nc".split("\n\n") == ["a", "b", "\nc"]; empty pieces are kept
        assertEquals(List.of("a", "b", "\nc"), TinyShakespeare.sections("a\n\nb\n\n\nc"));
        assertEquals(List.of("only"), TinyShakespeare.sections("only"));
        assertEquals(List.of("x", ""), TinyShakespeare.sections("x\n\n"));
    }

    @Test
    void eachSectionStartsWithEndOfText() {
        int[] t = TinyShakespeare.tokenize("Hello world\n\nHello world");
        assertArrayEquals(new int[]{50256, 15496, 995, 50256, 15496, 995}, t);
    }

    /** Token for token the original project's shards (CI only: needs ../shared/data). */
    @Test
    void reproducesTheOriginalShards(@TempDir Path dir) throws Exception {
        Path input = SharedData.require("tinyshakespeare/input.txt");
        Path seedVal = SharedData.require("tinyshakespeare/seed_tiny_shakespeare_val.bin");
        Path seedTrain = SharedData.require("tinyshakespeare/seed_tiny_shakespeare_train.bin");
        TinyShakespeare.writeShards(Files.readString(input), dir, TokenShard.MAGIC_SEED);
        try (TokenShard ours = TokenShard.open(dir.resolve(TinyShakespeare.VAL_FILE));
             TokenShard theirs = TokenShard.open(seedVal)) {
            assertEquals(32_768, ours.size());
            assertArrayEquals(theirs.readAll(), ours.readAll(), "validation split");
        }
        try (TokenShard ours = TokenShard.open(dir.resolve(TinyShakespeare.TRAIN_FILE));
             TokenShard theirs = TokenShard.open(seedTrain)) {
            assertEquals(298_039, ours.size());
            assertArrayEquals(theirs.readAll(), ours.readAll(), "training split");
        }
        // with the original's magic, the files are byte for byte the same
        assertArrayEquals(Files.readAllBytes(seedVal), Files.readAllBytes(dir.resolve(TinyShakespeare.VAL_FILE)));
        assertArrayEquals(Files.readAllBytes(seedTrain), Files.readAllBytes(dir.resolve(TinyShakespeare.TRAIN_FILE)));
    }
}
