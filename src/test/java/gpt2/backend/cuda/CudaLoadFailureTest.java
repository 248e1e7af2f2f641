package gpt2.backend.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 29: `--device cuda` on a machine without a GPU printed JavaCPP's UnsatisfiedLinkError.
 * The message now says what the user needs to know: no GPU/driver, or a driver without the runtime.
 */
class CudaLoadFailureTest {

    private static final UnsatisfiedLinkError JAVACPP = new UnsatisfiedLinkError("no jnicudart in java.library.path: /usr/lib");

    @Test
    void noDriverSaysThereIsNoGpu(@TempDir Path root) {
        String m = CudaBackend.loadFailure(JAVACPP, root);
        assertTrue(m.startsWith("no NVIDIA GPU or driver found on this machine") && m.contains("use --device cpu"), m);
        assertTrue(m.contains("(detail: UnsatisfiedLinkError: no jnicudart"), m);
    }

    @Test
    void aDriverWithoutTheRuntimeSaysWhatToInstall(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("proc/driver/nvidia"));
        Files.writeString(root.resolve("proc/driver/nvidia/version"), "NVRM version: 580.0");
        String m = CudaBackend.loadFailure(JAVACPP, root);
        assertTrue(m.startsWith("an NVIDIA driver is present but the CUDA 13 runtime cannot be loaded"), m);
        assertTrue(m.contains("LD_LIBRARY_PATH"), m);

        Path dev = Files.createDirectories(root.resolve("other"));
        Files.createDirectories(dev.resolve("dev"));
        Files.writeString(dev.resolve("dev/nvidia0"), "");
        assertTrue(CudaBackend.loadFailure(JAVACPP, dev).startsWith("an NVIDIA driver is present"), "a device node is a driver too");
    }
}
