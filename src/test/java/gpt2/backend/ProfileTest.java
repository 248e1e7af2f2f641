package gpt2.backend;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProfileTest {

    @Test
    void countsBytesAndRatesPerFamily() {
        Profile p = new Profile();
        p.allocated(3000);
        p.allocated(-1000);
        p.allocated(500);
        for (int step = 0; step < 2; step++) {
            p.kernel("norm", 1_000_000_000L);
            p.time("norm", 1.0);                       // 1 GB in 1 ms: 1000 GB/s
            p.gemm("linear", 10, 2e12);
            p.time("linear", 4.0);                     // 2 TFLOP in 4 ms: 500 TFLOP/s
            p.hostSync();
        }
        assertEquals(2, p.launches());
        assertEquals(2, p.gemms());
        assertEquals(2, p.hostSyncs());
        assertEquals(2500, p.deviceBytes());
        assertEquals(3000, p.peakDeviceBytes());
        assertEquals("linear", p.rows().get(0).family(), "most time first");
        String t = p.table(2, 2000);
        assertTrue(t.contains("1000.0") && t.contains("50%"), t);     // norm: 1000 GB/s, half the copy bandwidth
        assertTrue(t.contains("500.0") && t.contains("80.0%"), t);    // linear: 500 TFLOP/s, 4 of 5 ms
        assertTrue(t.contains("per step: 1.0 kernel launches + 1.0 GEMM calls = 2.0; 1.0 host synchronizations"), t);
        String json = p.jsonFields(2);
        assertTrue(json.contains("\"launches\":1.0,\"gemms\":1.0,\"host_syncs\":1.0,\"device_bytes\":2500"), json);
        assertTrue(json.contains("{\"family\":\"norm\",\"gemm\":false,\"calls\":1.0,\"bytes\":1000000000,\"flops\":0,\"ms\":1.0000}"), json);
        p.reset();
        assertEquals(0, p.launches());
        assertFalse(p.timed());
        assertEquals(2500, p.deviceBytes(), "memory is not a per-step count");
    }
}
