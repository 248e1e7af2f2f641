package gpt2.cli;

import org.junit.jupiter.api.Test;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
        assertTrue(out.contains("classifier_fused") && out.contains("gemm linear dweight"), out);
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
        assertEquals(1.0, field(json, "host_syncs"), json);
        assertTrue(field(json, "launches") > 20 && field(json, "gemms") > 10, json);
        assertTrue(field(json, "device_bytes") > 1e6, json);
        assertTrue(json.contains("\"family\":\"adamw\""), json);
    }

    @Test
    void profileAndDryRunAreRefusedWhereTheyMeanNothing() {
        String[] r = InfoCommandTest.run("bench", "--model", "d2", "--vocab_size", "512", "--device", "cpu", "--profile", "1",
                "--steps", "1");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--profile 1"), r[2]);
        r = InfoCommandTest.run("bench", "--model", "d2", "--device", "cpu", "--dry_run", "1");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--dry_run 1"), r[2]);
    }

    /**
     * The budget of "GPU step, part 1", counted without a GPU: GPT-2 124M (d12), B=16, T=1024, bf16,
     * one step: at most 350 kernel launches + GEMM calls and exactly one host synchronization, with
     * the materialized attention as with flash attention.
     */
    @Test
    void theD12StepFitsItsLaunchBudget() {
        for (String flash : new String[]{"0", "1"}) {
            String[] r = InfoCommandTest.run("bench", "--model", "d12", "--batch_size", "16", "--sequence_length", "1024",
                    "--device", "cuda", "--dtype", "bfloat16", "--dry_run", "1", "--flash", flash, "--json");
            assertEquals("0", r[0], r[2]);
            String json = r[1].lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow();
            double calls = field(json, "launches") + field(json, "gemms");
            assertTrue(calls <= 350, "--flash " + flash + ": " + calls + " launches + GEMM calls per step");
            assertEquals(1.0, field(json, "host_syncs"), json);
        }
    }
}
