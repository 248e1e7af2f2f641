package gpt2.cli;

import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * benchmarks/recipe.sh end to end at 3 steps: both recipes' flags are accepted, both runs train and
 * validate, and the comparison and its chart come out; an existing --out is refused. The numbers
 * themselves are the benchmark's (README), not this test's.
 */
class RecipeScriptTest {

    private static String[] script(Path dir, String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("bash", "benchmarks/recipe.sh"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        pb.environment().put("GPT2_CLASSPATH", System.getProperty("java.class.path"));
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(600, TimeUnit.SECONDS), "recipe.sh timed out");
        return new String[]{String.valueOf(p.exitValue()), out};
    }

    @Test
    void runsBothRecipesAndComparesThem(@TempDir Path dir) throws Exception {
        Random r = new Random(5);
        int[] stream = new int[12_000];
        for (int i = 0; i < stream.length; i++) stream[i] = r.nextInt(20) == 0 ? r.nextInt(50_000) : (i * 7) % 300;
        Path train = dir.resolve("toy_train_000001.bin"), val = dir.resolve("toy_val_000000.bin");
        ShardWriter.write(val, TokenShard.MAGIC_LLMC, stream, 0, 2_100);
        ShardWriter.write(train, TokenShard.MAGIC_LLMC, stream, 2_100, stream.length);
        Path out = dir.resolve("recipe");
        String[] res = script(dir, "--steps", "3", "--threads", "2", "--train", train.toString(), "--val", val.toString(),
                "--out", out.toString());
        assertEquals("0", res[0], res[1]);
        for (String run : List.of("gpt2", "modern")) {
            assertTrue(Files.isRegularFile(out.resolve(run).resolve("metrics.jsonl")), run + "\n" + res[1]);
            assertTrue(Files.readString(out.resolve(run + ".log")).contains("step    3/3 | val loss"), run);
        }
        String cmp = Files.readString(out.resolve("comparison.txt"));
        assertTrue(cmp.contains("tokens |         gpt2 |       modern") && cmp.contains("       3,072 |"), cmp);
        assertTrue(cmp.contains("modern reaches gpt2's final val loss") || cmp.contains("modern does not reach"), cmp);
        assertTrue(Files.size(out.resolve("recipe.png")) > 10_000);

        String[] again = script(dir, "--steps", "3", "--train", train.toString(), "--val", val.toString(), "--out", out.toString());
        assertEquals("2", again[0], again[1]);
        assertTrue(again[1].contains("--out " + out + " already exists"), again[1]);
    }
}
