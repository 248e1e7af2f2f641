package gpt2.cli;

import org.junit.jupiter.api.Test;

import java.io.File;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** scripts/launch.sh: one process per rank, prefixed output, a failing rank stops the run. */
class LaunchTest {

    static Process launch(String failRank, String... args) throws Exception {
        ProcessBuilder pb = new ProcessBuilder();
        pb.command().add("bash");
        pb.command().add(Path.of("scripts", "launch.sh").toString());
        pb.command().addAll(List.of(args));
        pb.environment().put("GPT2_CLASSPATH", System.getProperty("java.class.path"));
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        if (failRank != null) pb.environment().put("GPT2_TEST_FAIL_RANK", failRank);
        return pb.redirectErrorStream(true).start();
    }

    @Test
    void everyRankRunsWithItsPrefix() throws Exception {
        Process p = launch(null, "--nproc_per_node=2", "info", "--model", "d2");
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("[rank 0] model: d2") && out.contains("[rank 1] model: d2"), out);
    }

    @Test
    void aFailingRankBringsTheRunDownAndIsNamed() throws Exception {
        long start = System.nanoTime();
        // rank 0 would sample for a long time; rank 1 fails at once
        Process p = launch("1", "--nproc_per_node=2", "sample", "--model", "d2", "--max_new_tokens", "100000", "--device", "cpu");
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(3, p.exitValue(), out);
        assertTrue(out.contains("launch: rank 1 exited with code 3; stopping the other ranks"), out);
        assertTrue((System.nanoTime() - start) / 1e9 < 90, "the other rank was not stopped");
    }

    @Test
    void cpuDataParallelismAcrossProcessesIsRefused() throws Exception {
        Process p = launch(null, "--nproc_per_node=2", "train", "--device", "cpu", "--model", "d2");
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue(), out);
        assertTrue(out.contains("WORLD_SIZE 2: data parallelism across processes runs over NCCL"), out);
        assertTrue(new File("scripts/launch.sh").canExecute());
    }
}
