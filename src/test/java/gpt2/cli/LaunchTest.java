package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.File;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** scripts/launch.sh: one process per rank, prefixed output, a failing rank stops the run. */
class LaunchTest {

    static Process launch(String failRank, String... args) throws Exception {
        return launch(failRank, java.util.Map.of(), args);
    }

    /** scripts/launch.sh with extra environment variables (a SLURM allocation's, set by the test). */
    static Process launch(String failRank, java.util.Map<String, String> env, String... args) throws Exception {
        ProcessBuilder pb = new ProcessBuilder();
        pb.command().add("bash");
        pb.command().add(Path.of("scripts", "launch.sh").toString());
        pb.command().addAll(List.of(args));
        pb.environment().put("GPT2_CLASSPATH", System.getProperty("java.class.path"));
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        for (String v : List.of("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "GPT2_CUDA_GRAPHS", "SLURM_PROCID",
                "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES", "SLURM_NODEID", "SLURM_JOB_NODELIST", "SLURM_NODELIST")) {
            pb.environment().remove(v); // the test's own allocation, if any, must not leak in
        }
        pb.environment().putAll(env);
        if (failRank != null) pb.environment().put("GPT2_TEST_FAIL_RANK", failRank);
        return pb.redirectErrorStream(true).start();
    }

    static int freePort() throws Exception {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String finish(Process p) throws Exception {
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    /** Two launchers on 127.0.0.1, node ranks 0 and 1, one rank each: they meet as two nodes. */
    @Test
    void twoNodesRendezvous() throws Exception {
        String port = String.valueOf(freePort());
        Process n1 = launch(null, "--nproc_per_node=1", "--nnodes=2", "--node_rank=1", "--master_addr=127.0.0.1",
                "--master_port=" + port, "rendezvous", "--timeout", "60");
        Process n0 = launch(null, "--nproc_per_node=1", "--nnodes=2", "--node_rank=0", "--master_addr=127.0.0.1",
                "--master_port=" + port, "rendezvous", "--timeout", "60");
        String out0 = finish(n0), out1 = finish(n1);
        assertTrue(out0.contains("[rank 0] rank 0 of 2 (local rank 0, from torchrun): every rank reached 127.0.0.1:" + port), out0);
        assertTrue(out1.contains("[rank 1] rank 1 of 2 (local rank 0, from torchrun): reached rank 0 of 2 at 127.0.0.1:" + port), out1);
    }

    /** srun with one task per GPU, simulated: each task runs launch.sh with SLURM's variables only. */
    @Test
    void srunTasksBecomeRanks() throws Exception {
        String port = String.valueOf(freePort());
        java.util.Map<String, String> common = java.util.Map.of("SLURM_NTASKS", "2", "SLURM_JOB_NODELIST", "127.0.0.1",
                "MASTER_PORT", port);
        java.util.Map<String, String> t0 = new java.util.HashMap<>(common), t1 = new java.util.HashMap<>(common);
        t0.put("SLURM_PROCID", "0");
        t0.put("SLURM_LOCALID", "0");
        t1.put("SLURM_PROCID", "1");
        t1.put("SLURM_LOCALID", "1");
        Process p1 = launch(null, t1, "rendezvous", "--timeout", "60");
        Process p0 = launch(null, t0, "rendezvous", "--timeout", "60");
        String out0 = finish(p0), out1 = finish(p1);
        assertTrue(out0.contains("rank 0 of 2 (local rank 0, from torchrun): every rank reached 127.0.0.1:" + port), out0);
        assertTrue(out1.contains("rank 1 of 2 (local rank 1, from torchrun): reached rank 0 of 2"), out1);
    }

    @Test
    void everyRankRunsWithItsPrefix() throws Exception {
        Process p = launch(null, "--nproc_per_node=2", "info", "--model", "d2");
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("[rank 0] model: d2") && out.contains("[rank 1] model: d2"), out);
    }

    /** torchrun's kebab-case spellings, and values after a space, start the same ranks. */
    @Test
    void torchrunSpellingsAndSeparateValuesAreAccepted() throws Exception {
        String port = String.valueOf(freePort());
        Process p = launch(null, "--standalone", "--nproc-per-node", "2", "--nnodes", "1", "--node-rank=0",
                "--master-addr", "127.0.0.1", "--master-port", port, "info", "--model", "d2");
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("[rank 0] model: d2") && out.contains("[rank 1] model: d2"), out);
    }

    /** Bad launcher options: exit 2 with one line naming the flag as typed, before any JVM starts. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--nproc_per_node=0 info | launch: --nproc_per_node must be a whole number of at least 1, got '0'",
            "--nproc-per-node 0 info | launch: --nproc-per-node must be a whole number of at least 1, got '0'",
            "--nproc_per_node=two info | launch: --nproc_per_node must be a whole number of at least 1, got 'two'",
            "--nnodes=0 info | launch: --nnodes must be a whole number of at least 1, got '0'",
            "--nnodes=2 --node-rank=2 info | launch: --node-rank must be a whole number from 0 to 1 (--nnodes is 2), got '2'",
            "--master-port=70000 info | launch: --master-port must be a port number from 1 to 65535, got '70000'",
            "--master_port x info | launch: --master_port must be a port number from 1 to 65535, got 'x'",
            "--nproc_per_node | launch: --nproc_per_node needs a value (--nproc_per_node=VALUE or --nproc_per_node VALUE)",
            "--master-addr --nnodes=1 info | launch: --master-addr needs a value (--master-addr=VALUE or --master-addr VALUE)",
            "--nproc_per_node=1 | launch: no command (e.g. train ...)",
            "--nprocs=2 info | launch: unknown option --nprocs (launch options: --nproc_per_node, --nnodes, --node_rank, --master_addr, --master_port, --standalone)",
    })
    void badOptionsAreOneLineNamingTheFlag(String args, String expected) throws Exception {
        Process p = launch(null, args.trim().split(" +"));
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue(), out);
        assertEquals(expected.trim(), out.strip(), "one line naming the flag");
    }

    /** A port from MASTER_PORT that is not a port is named as that variable, not as a flag. */
    @Test
    void aBadMasterPortVariableIsNamed() throws Exception {
        Process p = launch(null, java.util.Map.of("MASTER_PORT", "0"), "--nproc_per_node=1", "info");
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue(), out);
        assertEquals("launch: MASTER_PORT must be a port number from 1 to 65535, got '0'", out.strip());
    }

    /** A library message that names the command already ("rendezvous: rank 0 ...") gets the prefix once. */
    @Test
    void anErrorIsPrefixedWithTheCommandOnce() throws Exception {
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            int port = taken.getLocalPort();
            Process p = launch(null, "--nproc_per_node=1", "--nnodes=2", "--node_rank=0", "--master_port=" + port,
                    "rendezvous", "--timeout", "5");
            String out = new String(p.getInputStream().readAllBytes());
            assertTrue(p.waitFor(120, TimeUnit.SECONDS));
            assertEquals(1, p.exitValue(), out);
            assertTrue(out.contains("[rank 0] rendezvous: error: rank 0 cannot listen on 127.0.0.1:" + port), out);
            assertFalse(out.contains("rendezvous: error: rendezvous:"), out);
        }
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

    /** The checked-in sbatch file: 2 nodes x 8 tasks, srun over the run script, valid bash. */
    @Test
    void theSbatchFileRunsTheOriginalsRunOnTwoNodes() throws Exception {
        Path sbatch = Path.of("scripts", "slurm", "train_gpt2_124M.sbatch");
        String text = java.nio.file.Files.readString(sbatch);
        assertTrue(text.contains("#SBATCH --nodes=2") && text.contains("#SBATCH --ntasks-per-node=8")
                && text.contains("#SBATCH --gpus-per-node=8"), text);
        assertTrue(text.contains("srun --label --kill-on-bad-exit=1 scripts/run_gpt2_124M.sh"), text);
        assertTrue(new File("scripts/run_gpt2_124M.sh").canExecute());
        assertTrue(java.nio.file.Files.readString(Path.of("scripts", "run_gpt2_124M.sh")).contains("exec scripts/launch.sh train"));
        Process p = new ProcessBuilder("bash", "-n", sbatch.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
    }
}
