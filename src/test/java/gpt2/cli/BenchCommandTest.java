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
}
