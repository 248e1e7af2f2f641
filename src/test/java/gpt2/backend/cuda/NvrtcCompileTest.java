package gpt2.backend.cuda;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every kernel family compiles through the same NVRTC path the GPU run uses, for sm_80 and sm_90,
 * with floatX = float and = bf16,
 * on a machine without a GPU: NVRTC and cudart come from cuda-redist (test scope), and a child JVM
 * loads an empty stand-in libcuda.so.1 first. The stand-in never enters this JVM, which may run
 * GPU tests.
 */
class NvrtcCompileTest {

    @Test
    void everyFamilyCompilesForA100AndH100(@TempDir Path dir) throws Exception {
        Path gcc = Path.of("/usr/bin/gcc");
        boolean redist = classpathHasRedist();
        if (!Files.isExecutable(gcc) || !redist) {
            System.out.println("SKIPPED: needs gcc and org.bytedeco:cuda-redist on the test class path");
        }
        Assumptions.assumeTrue(Files.isExecutable(gcc) && redist, "gcc or cuda-redist missing");
        Path stub = dir.resolve("libcuda.so.1");
        Process cc = new ProcessBuilder(gcc.toString(), "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-x", "c",
                "/dev/null", "-o", stub.toString()).redirectErrorStream(true).start();
        String ccLog = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(60, TimeUnit.SECONDS) && cc.exitValue() == 0, "gcc failed: " + ccLog);

        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "--enable-native-access=ALL-UNNAMED",
                "-Dorg.bytedeco.javacpp.cachedir=" + System.getProperty("user.home") + "/.javacpp/cache",
                "-cp", System.getProperty("java.class.path"), NvrtcCheck.class.getName(), stub.toString(), "sm_80", "sm_90"))
                .redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "NVRTC child timed out");
        System.out.println(log.strip());
        assertEquals(0, p.exitValue(), "NVRTC child failed:\n" + log);
        long compiled = log.lines().filter(l -> l.startsWith("compiled ")).count();
        assertEquals(2L * 2 * KernelCompiler.FAMILIES.size(), compiled, log); // 2 architectures x 2 precisions
    }

    private static boolean classpathHasRedist() {
        try {
            Class.forName("org.bytedeco.cuda.presets.cudart");
        } catch (ClassNotFoundException e) {
            return false;
        }
        return System.getProperty("java.class.path").contains("cuda-redist")
                || NvrtcCompileTest.class.getClassLoader().getResource("org/bytedeco/cuda/linux-x86_64/libnvrtc.so.13") != null;
    }
}
