package gpt2.backend.cuda;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * scripts/gpu-check.sh, the one script a lent GPU runs: its list of gpu-tagged test classes is the
 * project's, and (on the CUDA library stand-ins, with a stand-in nvidia-smi and GPU_CHECK_TINY=1)
 * it runs its quick mode through: benches with the profile, the CUDA-graphs bench must replay
 * graphs, and each test class in its own JVM, so a failing one costs one summary line while the
 * next still runs.
 */
class GpuCheckScriptTest {

    @Test
    void theScriptRunsEveryGpuTaggedClass() throws Exception {
        TreeSet<String> tagged = new TreeSet<>();
        Path classes = Path.of(GpuCheckScriptTest.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        try (var files = Files.walk(classes)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".class") && !p.toString().contains("$")).toList()) {
                String name = classes.relativize(f).toString().replace('/', '.').replaceAll("\\.class$", "");
                Class<?> c = Class.forName(name, false, getClass().getClassLoader());
                if (Modifier.isAbstract(c.getModifiers())) continue;
                Tag t = c.getAnnotation(Tag.class); // @Tag is inherited
                if (t != null && t.value().equals("gpu")) tagged.add(name);
            }
        }
        TreeSet<String> listed = new TreeSet<>();
        Matcher m = Pattern.compile("test_classes\\+?=\\(([^)]*)\\)").matcher(Files.readString(Path.of("scripts", "gpu-check.sh")));
        while (m.find()) listed.addAll(List.of(m.group(1).trim().split("\\s+")));
        assertTrue(tagged.size() >= 3, "gpu-tagged classes: " + tagged);
        assertEquals(tagged, listed, "scripts/gpu-check.sh's test_classes against the gpu-tagged classes");
    }

    @Test
    @Tag("standin")
    void quickModeRunsOnTheStandInsAndAFailingClassCostsOneLine(@TempDir Path dir) throws Exception {
        CudaStandins.assumeStandins("GpuCheckScriptTest");
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path smi = Files.writeString(bin.resolve("nvidia-smi"), """
                #!/usr/bin/env bash
                case "${1:-}" in
                  -L) echo "GPU 0: CUDA stand-in (CPU emulator)";;
                  --query-gpu=*) echo "CUDA stand-in (CPU emulator), 16384 MiB, stand-in";;
                  *) echo "CUDA stand-in (CPU emulator)";;
                esac
                """);
        assertTrue(smi.toFile().setExecutable(true));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("java.class.path");
        String opts = "--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED " + String.join(" ", CudaStandins.childJvmProperties());
        Path out = dir.resolve("out");
        ProcessBuilder pb = new ProcessBuilder("bash", "scripts/gpu-check.sh", "--quick");
        Map<String, String> env = pb.environment();
        env.put("PATH", bin + ":" + env.get("PATH"));
        env.put("JAVA", java);
        env.put("CP", cp);
        env.put("JAVA_OPTS", opts);
        env.put("LD_LIBRARY_PATH", CudaStandins.directory().toString());
        env.put("GPU_CHECK_OUT", out.toString());
        env.put("GPU_CHECK_TINY", "1");
        env.put("GPU_CHECK_JUNIT", java + " " + opts + " -cp " + cp + " org.junit.platform.console.ConsoleLauncher");
        env.put("GPU_CHECK_TEST_CLASSES", "gpt2.cli.NoSuchTest gpt2.cli.GpuCommandsTest#benchReplaysCudaGraphs");
        env.put("GPT2_KERNEL_CACHE", dir.resolve("kernels").toString());
        Process p = pb.redirectErrorStream(true).redirectOutput(dir.resolve("gpu-check.log").toFile()).start();
        assertTrue(p.waitFor(600, TimeUnit.SECONDS), "gpu-check timed out");
        String summary = Files.readString(out.resolve("summary.txt"));
        System.out.println(summary.lines().filter(l -> !l.startsWith(" ") && !l.matches("^[a-z_]+ +[0-9].*")).reduce("", (a, b) -> a + "  " + b + "\n"));
        assertEquals(1, p.exitValue(), summary);
        assertTrue(summary.contains("gpu: CUDA stand-in (CPU emulator)"), summary);
        assertTrue(summary.contains("bench-bf16-b16-flash-profile: median step"), summary);
        assertTrue(summary.contains("per-kernel profile"), summary);
        assertTrue(summary.contains("bench-bf16-b16-flash-graphs: CUDA graphs: 1.0 graph launches per step"), summary);
        assertTrue(summary.contains("gpu-tests-NoSuchTest: FAIL"), summary);
        assertTrue(summary.contains("gpu-tests-GpuCommandsTest-benchReplaysCudaGraphs: PASS (1 of 1 passed"), summary);
        assertTrue(summary.contains("with 1 failure(s)"), summary);
    }
}
