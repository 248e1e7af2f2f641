package gpt2.cli;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 29: `--device cuda` on a machine without a GPU: one line saying so, exit 1, no link-error text first. */
class CudaMissingCommandTest {

    @Test
    void sampleOnCudaWithoutAGpuSaysSo() {
        Assumptions.assumeTrue(!Files.exists(Path.of("/proc/driver/nvidia/version")) && !Files.exists(Path.of("/dev/nvidia0")),
                "this machine has an NVIDIA driver: the no-GPU message cannot be seen here");
        Assumptions.assumeTrue(gpt2.backend.Backends.cudaUnavailableReason() != null, "CUDA (or its stand-ins) loads in this JVM");
        String[] r = InfoCommandTest.run("sample", "--model", "d2", "--device", "cuda", "--max_new_tokens", "2");
        assertEquals("1", r[0], r[1] + r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertTrue(r[2].startsWith("sample: error: --device cuda: no NVIDIA GPU or driver found on this machine"), r[2]);
    }
}
