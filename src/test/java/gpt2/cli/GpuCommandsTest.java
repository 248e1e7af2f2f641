package gpt2.cli;

import gpt2.backend.cuda.CudaStandins;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The commands a user runs, on the CUDA device, as child JVMs: training with a resume that must
 * repeat the uninterrupted run's steps exactly (float32; bf16 with tensor-core flash attention;
 * that again with CUDA graphs, which must change nothing), bench with and without graphs (graphs
 * must replay), and launch.sh with NCCL at world size 1 against the plain run. Tag gpu: on a GPU
 * (gpu-check), and in {@code mvn verify} on the CUDA library stand-ins.
 */
@Tag("gpu")
class GpuCommandsTest {

    /** hs 64 (the tensor-core flash kernels' size), vocab 512, 2 layers: small enough for the emulator. */
    static final String[] MODEL = {"--model", "seed-d12", "--n_layer", "2", "--n_head", "2", "--n_embd", "128",
            "--block_size", "64", "--vocab_size", "512"};

    @BeforeAll
    static void device() {
        String reason = CudaStandins.gpuUnavailableReason();
        if (reason != null) System.out.println("SKIPPED (GpuCommandsTest): " + reason);
        Assumptions.assumeTrue(reason == null, reason);
    }

    /** gpt2 ARGS in a child JVM on this JVM's device; {exit code, output}. */
    static String[] gpt2(Map<String, String> env, List<String> args) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(ReliabilityTest.gpt2Command(CudaStandins.childJvmProperties(), args));
        pb.environment().remove("GPT2_CUDA_GRAPHS");
        pb.environment().putAll(env);
        Process p = pb.redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(600, TimeUnit.SECONDS), "gpt2 " + args + " timed out");
        return new String[]{String.valueOf(p.exitValue()), out};
    }

    static List<String> train(Path data, Path out, String... more) {
        List<String> a = new ArrayList<>(List.of("train", "--device", "cuda", "--input_train_bin", data.resolve("toy_train_*.bin").toString(),
                "--input_val_bin", data.resolve("toy_val_*.bin").toString(), "--output_dir", out.toString(),
                "--batch_size", "4", "--sequence_length", "64", "--total_batch_size", "512", "--num_iterations", "6",
                "--learning_rate", "1e-3", "--val_loss_every", "3", "--val_max_steps", "2", "--sample_every", "3",
                "--save_every_niter", "3", "--overfit_single_batch", "0"));
        if (!List.of(more).contains("--model")) a.addAll(List.of(MODEL));
        a.addAll(List.of(more));
        return a;
    }

    /** The modern recipe at MODEL's size (hs 64), trained with Muon on a warmup-constant-warmdown schedule. */
    static final String[] MODERN = {"--model", "d4-modern", "--n_layer", "2", "--n_head", "2", "--n_embd", "128",
            "--block_size", "64", "--vocab_size", "512", "--optimizer", "muon", "--lr_schedule", "wsd", "--warmdown_frac", "0.5",
            "--weight_decay", "0"};

    /** The step lines after step {@code after}: "N loss ... | norm ... | lr ...". */
    static List<String> steps(String out, int after) {
        return ReliabilityTest.steps(out.replaceAll("(?m)^\\[rank 0] ", ""), after);
    }

    /** 6 steps with a checkpoint at 3, then steps 4-6 again from it: equal lines, or the failure. */
    private List<String> trainAndResume(Path dir, String name, Map<String, String> env, String... more) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        String[] full = gpt2(env, train(data, dir.resolve(name), more));
        assertEquals("0", full[0], full[1]);
        List<String> a = new ArrayList<>(List.of(more));
        a.addAll(List.of("--load_chkpoint_file", dir.resolve(name).resolve("checkpoint_00000003").toString()));
        String[] resumed = gpt2(env, train(data, dir.resolve(name + "-resumed"), a.toArray(String[]::new)));
        assertEquals("0", resumed[0], resumed[1]);
        if ("1".equals(env.get("GPT2_CUDA_GRAPHS"))) {
            assertGraphsReplayed(full[1]);
            assertGraphsReplayed(resumed[1]);
        }
        List<String> s = steps(full[1], 3);
        assertEquals(3, s.size(), full[1]);
        assertEquals(s, steps(resumed[1], 3), name + ": steps 4-6 after a resume from step 3\n" + resumed[1]);
        System.out.println("  " + name + ": steps 4-6 identical after the resume: " + s.getLast());
        return s;
    }

    /**
     * A run with GPT2_CUDA_GRAPHS=1 replayed graphs (the summary counts them), not silently plain
     * launches, and no segment missed its graph once it had one.
     */
    static void assertGraphsReplayed(String out) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(
                "CUDA graphs: (\\d+) graph launches ran (\\d+) kernel launches and GEMM calls; (\\d+) segments missed").matcher(out);
        assertTrue(m.find() && Long.parseLong(m.group(1)) > 0 && Long.parseLong(m.group(2)) > Long.parseLong(m.group(1)),
                "no CUDA graph was launched:\n" + out);
        assertEquals(0, Long.parseLong(m.group(3)), "graph misses:\n" + out);
        assertFalse(out.contains("CUDA graphs off"), out);
    }

    @Test
    void float32TrainingResumesBitForBit(@TempDir Path dir) throws Exception {
        trainAndResume(dir, "fp32", Map.of());
    }

    @Test
    void bf16FlashTrainingResumesBitForBitAndGraphsChangeNothing(@TempDir Path dir) throws Exception {
        List<String> plain = trainAndResume(dir, "bf16-flash", Map.of(), "--dtype", "bfloat16", "--flash", "1");
        List<String> graphs = trainAndResume(dir, "bf16-flash-graphs", Map.of("GPT2_CUDA_GRAPHS", "1"), "--dtype", "bfloat16",
                "--flash", "1");
        assertEquals(plain, graphs, "steps 4-6 with CUDA graphs against the run without");
    }

    /** Issue 23: the modern architecture with Muon on CUDA resumes bit for bit and follows the CPU backend. */
    @Test
    void modernRecipeWithMuonResumesBitForBitAndFollowsTheCpu(@TempDir Path dir) throws Exception {
        List<String> cuda = trainAndResume(dir, "modern-fp32", Map.of(), MODERN);
        List<String> more = new ArrayList<>(List.of(MODERN));
        more.addAll(List.of("--dtype", "bfloat16", "--flash", "1"));
        List<String> bf16 = trainAndResume(dir, "modern-bf16-graphs", Map.of("GPT2_CUDA_GRAPHS", "1"), more.toArray(String[]::new));
        // the same run on the CPU backend: every step's loss within float32 noise of CUDA's, bf16 within its rounding
        Path data = dir.resolve("data");
        List<String> cpuArgs = train(data, dir.resolve("modern-cpu"), MODERN);
        cpuArgs.set(cpuArgs.indexOf("cuda"), "cpu");
        String[] cpu = gpt2(Map.of(), cpuArgs);
        assertEquals("0", cpu[0], cpu[1]);
        List<String> c = steps(cpu[1], 3);
        for (int i = 0; i < 3; i++) {
            double want = loss(c.get(i));
            assertEquals(want, loss(cuda.get(i)), 1e-4 * want, "float32 CUDA vs CPU, " + cuda.get(i) + " vs " + c.get(i));
            assertEquals(want, loss(bf16.get(i)), 2e-2 * want, "bf16 CUDA vs CPU, " + bf16.get(i) + " vs " + c.get(i));
        }
    }

    private static double loss(String stepLine) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("loss ([0-9.]+)").matcher(stepLine);
        assertTrue(m.find(), stepLine);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void launchedWorldOfOneEqualsThePlainRun(@TempDir Path dir) throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(dir.resolve("data")));
        String[] plain = gpt2(Map.of(), train(data, dir.resolve("plain")));
        assertEquals("0", plain[0], plain[1]);
        List<String> args = new ArrayList<>(List.of("--nproc_per_node=1", "--master_port=" + LaunchTest.freePort()));
        args.addAll(train(data, dir.resolve("launched")));
        String[] launched = launch(Map.of(), args);
        assertEquals("0", launched[0], launched[1]);
        assertEquals(steps(plain[1], 0), steps(launched[1], 0), "launch.sh + NCCL (world 1) against the plain run");
    }

    /** Defect 3 of issue 21: bench synchronized inside the graphed segment, so no graph ever replayed. */
    @Test
    void benchReplaysCudaGraphs() throws Exception {
        List<String> bench = List.of("bench", "--device", "cuda", "--model", "d2", "--batch_size", "2", "--sequence_length", "64",
                "--steps", "3", "--json");
        String[] on = gpt2(Map.of("GPT2_CUDA_GRAPHS", "1"), bench);
        assertEquals("0", on[0], on[1]);
        assertTrue(on[1].contains("CUDA graphs"), on[1]);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("CUDA graphs: ([0-9.]+) graph launches per step").matcher(on[1]);
        assertTrue(m.find(), "bench with GPT2_CUDA_GRAPHS=1 printed no graph launches:\n" + on[1]);
        assertTrue(Double.parseDouble(m.group(1)) >= 1, on[1]);
        assertTrue(on[1].contains("forward + backward"), on[1]);
        String[] off = gpt2(Map.of(), bench);
        assertEquals("0", off[0], off[1]);
        assertFalse(off[1].contains("CUDA graphs:"), off[1]);
        assertTrue(off[1].contains("\"graph_launches\":0.0"), off[1]);
    }

    /** scripts/launch.sh ARGS with this JVM's classes and device; {exit code, output}. */
    static String[] launch(Map<String, String> env, List<String> args) throws Exception {
        Map<String, String> e = new java.util.HashMap<>(env);
        e.put("GPT2_JAVA_OPTS", String.join(" ", CudaStandins.childJvmProperties()));
        Process p = LaunchTest.launch(null, e, args.toArray(String[]::new));
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(600, TimeUnit.SECONDS), "launch.sh " + args + " timed out");
        return new String[]{String.valueOf(p.exitValue()), out};
    }
}
