package gpt2.cli;

import gpt2.backend.cpu.CpuBackend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.ModelFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BenchCommandTest {

    private static double field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":([0-9.]+)").matcher(json);
        assertTrue(m.find(), name + " missing from " + json);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void dryRunPrintsTheStepPlanWithoutAGpu() {
        String[] r = InfoCommandTest.run("bench", "--model", "d2", "--vocab_size", "512", "--batch_size", "2",
                "--sequence_length", "32", "--device", "cuda", "--dtype", "bfloat16", "--dry_run", "1", "--json");
        assertEquals("0", r[0], r[2]);
        String out = r[1];
        assertTrue(out.contains("step plan (dry run"), out);
        // the header names the dry run, not a device -1
        assertTrue(out.contains(" on cuda dry run (no GPU, checked as sm_90, bf16 mixed precision"), out);
        assertFalse(out.contains("cuda:-1"), out);
        assertTrue(out.contains("classifier_fused") && out.contains("gemm linear dweight"), out);
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
        assertEquals(1.0, field(json, "host_syncs"), json);
        assertTrue(field(json, "launches") > 20 && field(json, "gemms") > 10, json);
        assertTrue(field(json, "device_bytes") > 1e6, json);
        assertTrue(json.contains("\"family\":\"adamw\""), json);
    }

    /** The modern preset's plan (RoPE, QK-norm, ReLU², soft cap) on the CUDA backend, without a GPU. */
    @Test
    void dryRunPlansTheModernPreset() {
        String[] r = InfoCommandTest.run("bench", "--model", "d12-modern", "--batch_size", "2", "--sequence_length", "64",
                "--device", "cuda", "--dtype", "bfloat16", "--dry_run", "1");
        assertEquals("0", r[0], r[2]);
        String out = r[1];
        assertTrue(out.contains("step plan (dry run"), out);
        for (String k : new String[]{"qknorm_rope_forward", "qknorm_rope_backward", "relu2_forward", "relu2_backward",
                "softcap_forward", "classifier_fused"}) {
            assertTrue(out.contains(k), k + " missing from the plan:\n" + out);
        }
        assertFalse(out.contains("gelu") || out.contains("encoder_backward_wpe"), out);
    }

    @Test
    void dryRunIsRefusedWhereItMeansNothing() {
        String[] r = InfoCommandTest.run("bench", "--model", "d2", "--device", "cpu", "--dry_run", "1");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--dry_run 1"), r[2]);
    }

    /**
     * In a child JVM with OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU: one note line naming the
     * variable, and bench naming the kernel set OpenBLAS runs (Haswell, as told); without the
     * variable, no note. Skipped on a CPU without AVX-512 (nothing is held back there).
     */
    @Test
    void openBlasHeldBackByOpenblasCoretypeSaysSoOnce(@TempDir Path dir) throws Exception {
        String flags;
        try {
            flags = java.nio.file.Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("flags"))
                    .findFirst().orElse("");
        } catch (java.io.IOException e) {
            flags = "";
        }
        if (!flags.contains("avx512f")) {
            System.out.println("skipped: this CPU has no AVX-512, so OPENBLAS_CORETYPE=Haswell holds nothing back");
            return;
        }
        java.util.List<String> args = java.util.List.of("bench", "--model", "d2", "--vocab_size", "512", "--device", "cpu",
                "--threads", "1", "--steps", "1", "--warmup", "0", "--batch_size", "1", "--sequence_length", "8");
        for (String coretype : new String[]{"Haswell", null}) {
            ProcessBuilder pb = new ProcessBuilder(ReliabilityTest.gpt2Command(java.util.List.of(), args));
            pb.environment().remove("OPENBLAS_CORETYPE");
            pb.environment().remove("OPENBLAS_L2_SIZE");
            if (coretype != null) pb.environment().put("OPENBLAS_CORETYPE", coretype);
            Path log = dir.resolve("bench-" + coretype + ".log");
            Process p = pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
            assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS), "bench did not finish");
            String out = java.nio.file.Files.readString(log);
            assertEquals(0, p.exitValue(), out);
            long notes = out.lines().filter(l -> l.startsWith("note: OPENBLAS_CORETYPE=")).count();
            if (coretype != null) {
                assertEquals(1, notes, out);
                assertTrue(out.contains("GEMM: OpenBLAS, Haswell kernels (OPENBLAS_CORETYPE=Haswell)"), out);
            } else {
                assertEquals(0, notes, out);
                assertTrue(out.contains("(its choice for this CPU)") && !out.contains("Haswell kernels"), out);
            }
        }
    }

    /** --decode 1: the median per position, tokens/s, and the bytes read as a share of the read bandwidth. */
    @Test
    void decodeReportsTokensPerSecondAndTheBandwidthShare() {
        String[] r = InfoCommandTest.run("bench", "--model", "d2", "--vocab_size", "512", "--batch_size", "2",
                "--sequence_length", "16", "--device", "cpu", "--threads", "2", "--decode", "1", "--json");
        assertEquals("0", r[0], r[2]);
        String out = r[1];
        assertTrue(out.contains("GEMM: "), out);
        Matcher m = Pattern.compile("decode: median ([0-9.]+) ms per position \\(positions 0\\.\\.15, 2 sequences\\) \\| "
                + "([0-9.]+) tokens/s \\| ([0-9]+) MB read per position at least .* = ([0-9.]+) GB/s = ([0-9]+)% of this "
                + "machine's read bandwidth").matcher(out);
        assertTrue(m.find(), out);
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
        assertEquals(2 / (field(json, "decode_median_ms") / 1e3), field(json, "tokens_per_s"), 0.01 * field(json, "tokens_per_s"), json);
        // d2 with V = 512: every parameter but 15 of the 16 rows... of wpe, plus the cache, in float32
        GptConfig cfg = GptConfig.preset("d2");
        int C = cfg.channels();
        double weights = cfg.numLayers() * (12.0 * C * C + 13.0 * C) + 512.0 * C + 2 * C + C;
        double cache = 2.0 * cfg.numLayers() * 2 * C * (1 + 16) / 2.0; // mean over positions 0..15
        assertEquals(4 * (weights + cache), field(json, "bytes_per_position"), 1e-6 * 4 * (weights + cache), json);
        r = InfoCommandTest.run("bench", "--model", "d2", "--device", "cpu", "--decode", "1", "--sequence_length", "2048");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--sequence_length 2048") && r[2].contains("block size"), r[2]);
    }

    /**
     * The CPU profile: every op family of the step with its calls, and the matmul rows' FLOPs adding
     * up to 6 N x (the weights of the linear layers), the GEMM work a step must do.
     */
    @Test
    void cpuProfileListsEveryOpFamilyBesideItsFloors() {
        String[] r = InfoCommandTest.run("bench", "--model", "d2", "--vocab_size", "512", "--batch_size", "2",
                "--sequence_length", "32", "--device", "cpu", "--threads", "2", "--profile", "1", "--steps", "2", "--json");
        assertEquals("0", r[0], r[2]);
        String out = r[1];
        assertTrue(out.contains("per-op profile over 2 steps"), out);
        assertTrue(out.contains("GEMM floor") && out.contains("mem floor") && out.contains("x floor"), out);
        for (String family : new String[]{"matmul forward (qkv)", "matmul backward (qkv)", "matmul forward (mlp fc)",
                "matmul backward (mlp proj)", "matmul forward (attention proj)", "matmul forward (classifier)",
                "matmul backward (classifier)", "attention forward", "attention backward", "classifier loss + gradient",
                "residual + layernorm forward", "layernorm backward", "gelu forward", "gelu backward", "adamw",
                "gradient norm", "encoder forward", "encoder backward"}) {
            String row = out.lines().filter(l -> l.startsWith(family + " ")).findFirst()
                    .orElseThrow(() -> new AssertionError(family + " missing from the profile:\n" + out));
            double calls = Double.parseDouble(row.substring(family.length()).trim().split(" +")[0]);
            if (family.contains("(qkv)") || family.startsWith("attention")) assertEquals(2.0, calls, row); // one per layer
        }
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
        assertTrue(json.contains("\"family\":\"adamw\"") && json.contains("\"ms\":") && field(json, "copy_gbs") > 0, json);
        Matcher m = Pattern.compile("\\{\"family\":\"matmul [^\"]*\",\"gemm\":true,\"calls\":[0-9.]+,\"bytes\":[0-9]+,"
                + "\"flops\":([0-9]+)").matcher(json);
        double flops = 0;
        while (m.find()) flops += Double.parseDouble(m.group(1));
        GptConfig cfg = GptConfig.preset("d2"); // with a vocabulary of 512 (a multiple of 128: no padding)
        int C = cfg.channels();
        double expected = 6.0 * 2 * 32 * (cfg.numLayers() * 12.0 * C * C + (double) C * 512);
        assertEquals(expected, flops, 1e-9 * expected, json);
    }

    /**
     * The budget of "GPU step, part 1", counted without a GPU: GPT-2 124M (d12), B=16, T=1024, bf16,
     * one step: at most 350 kernel launches + GEMM calls and exactly one host synchronization, with
     * the materialized attention as with flash attention.
     */
    /**
     * The d12 step (B=16, T=1024, bf16) within 350 launches + GEMM calls and one host sync, with and
     * without flash attention; with it, the tensor-core kernels run and the plan's peak device memory
     * is at least 35% below the materialized attention's.
     */
    @Test
    void theD12StepFitsItsLaunchBudget() {
        double[] peak = new double[2];
        for (String flash : new String[]{"0", "1"}) {
            String[] r = InfoCommandTest.run("bench", "--model", "d12", "--batch_size", "16", "--sequence_length", "1024",
                    "--device", "cuda", "--dtype", "bfloat16", "--dry_run", "1", "--flash", flash, "--json");
            assertEquals("0", r[0], r[2]);
            String json = r[1].lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
            double calls = field(json, "launches") + field(json, "gemms");
            assertTrue(calls <= 350, "--flash " + flash + ": " + calls + " launches + GEMM calls per step");
            assertEquals(1.0, field(json, "host_syncs"), json);
            peak[Integer.parseInt(flash)] = field(json, "peak_device_bytes");
            if (flash.equals("1")) {
                for (String k : new String[]{"flash_tc_forward_64", "flash_tc_backward_dq_64", "flash_tc_backward_dkdv_64"}) {
                    assertTrue(json.contains("\"family\":\"" + k + "\""), k + " missing from " + json);
                }
            }
        }
        assertTrue(peak[1] <= 0.65 * peak[0], "flash peak " + peak[1] + " vs materialized " + peak[0]);
    }

    /** The attention line of a profiled bench: its families' time and the rate on FlashAttention-2's FLOP count. */
    @Test
    void theAttentionLineAddsTheAttentionFamilies() {
        gpt2.backend.Profile p = new gpt2.backend.Profile();
        for (int step = 0; step < 2; step++) {
            p.kernel("flash_tc_forward_64", 100, 1e9);
            p.time("flash_tc_forward_64", 2.0);
            p.kernel("flash_tc_backward_dkdv_64", 100, 1e9);
            p.time("flash_tc_backward_dkdv_64", 3.0);
            p.kernel("norm_forward", 100);
            p.time("norm_forward", 7.0);
        }
        gpt2.model.GptConfig d12 = gpt2.model.GptConfig.preset("d12");
        String line = BenchCommand.attentionLine(p, 2, d12, 16, 1024);
        // 7 products x 2 FLOPs x 12 layers x 16 x 12 heads x 524,800 pairs x 64 = 1.083 TFLOP in 5 ms
        assertEquals("attention: 5.00 ms per step = 216.7 TFLOP/s on its 1.08 TFLOP (causal, forward + backward, "
                + "FlashAttention-2's count)", line);
    }

    /** A small GPT-2 as an llm.c model file. */
    static Path llmcFile(Path dir) {
        GptConfig c = GptConfig.preset("gpt2").with(b -> b.name("tiny").numLayers(1).numHeads(2).channels(16)
                .maxSeqLen(32).vocabSize(64));
        Path file = dir.resolve("tiny.bin");
        try (CpuBackend be = new CpuBackend(1); Gpt2 m = new Gpt2(c, be)) {
            m.initialize(5);
            ModelFiles.export(m, file, ModelFiles.Format.LLMC, false);
        }
        return file;
    }

    /** A model on disk is timed with its weights, unless --random_weights 1 asks for fresh ones. */
    @Test
    void aModelFileIsBenchedWithItsWeights(@TempDir Path dir) {
        Path file = llmcFile(dir);
        String[] r = InfoCommandTest.run("bench", "--model", file.toString(), "--device", "cpu", "--threads", "1",
                "--batch_size", "2", "--sequence_length", "8", "--steps", "1");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("weights: read from " + file), r[1]);
        r = InfoCommandTest.run("bench", "--model", file.toString(), "--device", "cpu", "--threads", "1",
                "--batch_size", "2", "--sequence_length", "8", "--steps", "1", "--random_weights", "1");
        assertEquals("0", r[0], r[2]);
        assertTrue(!r[1].contains("weights: read from") && r[1].contains("median step"), r[1]);
        r = InfoCommandTest.run("bench", "--model", file.toString(), "--device", "cpu", "--n_layer", "2", "--steps", "1");
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--random_weights 1"), r[2]);
    }

    /**
     * --compare_fresh 1 benches the file's model and a fresh one of its configuration, each in a
     * child JVM, and prints the ratio of their medians (its value is the benchmark's, not asserted).
     */
    @Test
    void compareFreshTimesTheLoadedAndAFreshModelAndPrintsTheRatio(@TempDir Path dir) {
        Path file = llmcFile(dir);
        String[] r = InfoCommandTest.run("bench", "--model", file.toString(), "--device", "cpu", "--threads", "1",
                "--batch_size", "2", "--sequence_length", "8", "--steps", "2", "--compare_fresh", "1", "--json");
        assertEquals("0", r[0], r[1] + r[2]);
        String out = r[1];
        assertTrue(out.contains("[loaded] weights: read from " + file), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("[fresh ] median step")), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("[loaded] median step")), out);
        assertTrue(out.lines().filter(l -> l.startsWith("[fresh ]")).noneMatch(l -> l.contains("weights: read")), out);
        Matcher m = Pattern.compile("loaded/fresh step time: ([0-9.]+) \\(loaded ([0-9.]+) ms, fresh ([0-9.]+) ms; "
                + "medians of 2 steps each\\)").matcher(out);
        assertTrue(m.find(), out);
        double ratio = Double.parseDouble(m.group(1)), loaded = Double.parseDouble(m.group(2)), fresh = Double.parseDouble(m.group(3));
        assertTrue(loaded > 0 && fresh > 0, out);
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
        // the JSON's medians have 3 decimals (the line's 1 would not give the quotient of a 1 ms step)
        double q = field(json, "loaded_median_ms") / field(json, "fresh_median_ms");
        assertEquals(q, field(json, "loaded_over_fresh"), 1e-3 * q, "the ratio is the two medians' quotient: " + json);
        assertEquals(field(json, "loaded_over_fresh"), ratio, 0.006, json);
        assertEquals(loaded, field(json, "loaded_median_ms"), 0.051, json);

        r = InfoCommandTest.run("bench", "--model", "d2", "--device", "cpu", "--compare_fresh", "1");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("is a preset"), r[2]);
    }
}
