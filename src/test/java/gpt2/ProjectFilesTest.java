package gpt2;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a user's clone must hold on its own: the README points only at files in the repository,
 * the architecture document names every package, the scripts parse, and the scripts that check
 * their environment say what is missing.
 */
class ProjectFilesTest {

    private static String read(String p) throws IOException {
        return Files.readString(Path.of(p));
    }

    /** Runs a command in {@code dir} with {@code env} added to this process's environment; {exit code, output}. */
    static String[] run(Path dir, Map<String, String> env, String... cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), String.join(" ", cmd) + " did not finish");
        return new String[]{String.valueOf(p.exitValue()), out};
    }

    @Test
    void theReadmePointsOnlyAtFilesOfTheRepository() throws Exception {
        String readme = read("README.md");
        assertFalse(readme.contains("../shared"), "README refers to the team checkout's ../shared");
        for (String f : List.of("docs/ARCHITECTURE.md", "scripts/gpu-bundle.sh", "scripts/gpu-check.sh")) {
            assertTrue(readme.contains(f), "README does not point at " + f);
            assertTrue(Files.isRegularFile(Path.of(f)), f + " is missing");
        }
        assertTrue(Files.isExecutable(Path.of("scripts/gpu-bundle.sh")));
        for (String script : List.of("scripts/gpu-check.sh", "scripts/gpu-bundle.sh")) {
            assertFalse(read(script).contains("../shared"), script + " refers to ../shared");
        }
    }

    /**
     * Issue 29: a README a newcomer reads in five minutes (at most 20 KB), the rest in docs/ pages,
     * each reachable from the README; every relative link in them leads to a file of the repository.
     */
    @Test
    void theReadmeIsShortAndEveryDocsPageIsReachableAndEveryLinkResolves() throws Exception {
        String readme = read("README.md");
        assertTrue(readme.getBytes(java.nio.charset.StandardCharsets.UTF_8).length <= 20 * 1024,
                "README.md is " + readme.length() + " bytes; the rest belongs in docs/");
        List<Path> pages;
        try (Stream<Path> s = Files.list(Path.of("docs"))) {
            pages = s.filter(p -> p.toString().endsWith(".md")).sorted().toList();
        }
        assertTrue(pages.size() >= 8, pages.toString());
        List<String> problems = new ArrayList<>();
        for (Path page : pages) {
            if (!readme.contains("](docs/" + page.getFileName() + ")")) problems.add("README does not link " + page);
        }
        java.util.regex.Pattern link = java.util.regex.Pattern.compile("\\]\\(([^)\\s]+)\\)");
        List<Path> all = new ArrayList<>(pages);
        all.add(Path.of("README.md"));
        for (Path f : all) {
            String text = Files.readString(f);
            if (text.contains("../shared")) problems.add(f + " refers to the team checkout's ../shared");
            java.util.regex.Matcher m = link.matcher(text);
            while (m.find()) {
                String target = m.group(1);
                if (target.matches("^(https?:|mailto:|#).*")) continue;
                Path resolved = (f.getParent() == null ? Path.of("") : f.getParent()).resolve(target.replaceFirst("#.*$", "")).normalize();
                if (!Files.exists(resolved)) problems.add(f + " links " + target + ", which does not exist");
            }
        }
        assertTrue(problems.isEmpty(), String.join("\n", problems));
    }

    @Test
    void theArchitectureDocumentNamesEveryPackage() throws Exception {
        String doc = read("docs/ARCHITECTURE.md");
        Path main = Path.of("src/main/java/gpt2");
        List<String> missing = new ArrayList<>();
        try (Stream<Path> s = Files.walk(main)) {
            for (Path d : s.filter(Files::isDirectory).filter(d -> !d.equals(main)).toList()) {
                String pkg = main.relativize(d).toString().replace('\\', '/') + "/";
                if (!doc.contains(pkg)) missing.add(pkg);
            }
        }
        assertTrue(missing.isEmpty(), "docs/ARCHITECTURE.md does not name " + missing);
    }

    @Test
    void everyScriptParses() throws Exception {
        List<String> scripts = new ArrayList<>(List.of("scripts/gpt2", "scripts/slurm/train_gpt2_124M.sbatch"));
        try (Stream<Path> s = Files.list(Path.of("scripts"))) {
            s.filter(p -> p.toString().endsWith(".sh")).forEach(p -> scripts.add(p.toString()));
        }
        assertTrue(scripts.contains("scripts/gpu-bundle.sh"), scripts.toString());
        for (String f : scripts) {
            String[] r = run(Path.of("."), Map.of(), "bash", "-n", f);
            assertEquals("0", r[0], f + ": " + r[1]);
        }
    }

    /** gpu-check.sh sources .gpu-bundle/env.sh and runs the JUnit console jar the bundle names so. */
    @Test
    void theBundleGivesWhatGpuCheckExpects() throws Exception {
        String bundle = read("scripts/gpu-bundle.sh"), check = read("scripts/gpu-check.sh");
        assertTrue(check.contains(".gpu-bundle/env.sh") && check.contains(".gpu-bundle/lib/junit-platform-console-standalone-*.jar"), check);
        for (String v : List.of("export GPT2_JRE JAVA=", "export CP=", "export JAVA_OPTS=")) {
            assertTrue(bundle.contains(v), "env.sh does not set " + v);
        }
        assertTrue(bundle.contains("$out/lib/junit-platform-console-standalone-$version.jar"), bundle);
        assertTrue(read(".gitignore").lines().anyMatch(".gpu-bundle/"::equals), ".gpu-bundle/ must be git-ignored");
    }

    @Test
    void theBundleScriptWithoutABuildSaysToBuildFirst(@TempDir Path dir) throws Exception {
        Path scripts = Files.createDirectories(dir.resolve("scripts"));
        Files.copy(Path.of("scripts/gpu-bundle.sh"), scripts.resolve("gpu-bundle.sh"));
        Files.writeString(dir.resolve("pom.xml"), "<project/>");
        String[] r = run(dir, Map.of(), "bash", "scripts/gpu-bundle.sh");
        assertEquals("2", r[0], r[1]);
        assertEquals(1, r[1].strip().lines().count(), r[1]);
        assertTrue(r[1].contains("build first: mvn -B -q package -DskipTests"), r[1]);
        assertFalse(Files.exists(dir.resolve(".gpu-bundle")), "nothing written");
    }

    /** The sbatch file checks JAVA_HOME and the CUDA libraries before srun, and names what is missing in one line. */
    @Test
    void theSbatchFileSaysWhatIsMissingBeforeStartingTasks(@TempDir Path dir) throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path srun = bin.resolve("srun");
        Files.writeString(srun, "#!/bin/sh\necho \"srun called: $*\"\n");
        assertTrue(srun.toFile().setExecutable(true));
        Path root = Path.of("").toAbsolutePath();
        String path = bin + ":" + System.getenv("PATH");
        String sbatch = root.resolve("scripts/slurm/train_gpt2_124M.sbatch").toString();

        String[] r = run(dir, Map.of("PATH", path, "SLURM_SUBMIT_DIR", root.toString()),
                "bash", "-c", "unset JAVA_HOME; exec bash \"$0\"", sbatch);
        assertEquals("1", r[0], r[1]);
        assertEquals(1, r[1].strip().lines().count(), "one line: " + r[1]);
        assertTrue(r[1].startsWith("train_gpt2_124M.sbatch: missing: JAVA_HOME is not set"), r[1]);
        assertFalse(r[1].contains("srun called"), r[1]);

        Path libs = Files.createDirectories(dir.resolve("cuda"));
        for (String l : List.of("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libnvrtc.so.13", "libnccl.so.2")) {
            Files.writeString(libs.resolve(l), "");
        }
        r = run(dir, Map.of("PATH", path, "SLURM_SUBMIT_DIR", root.toString(), "JAVA_HOME", System.getProperty("java.home"),
                "LD_LIBRARY_PATH", libs.toString()), "bash", sbatch);
        assertEquals("0", r[0], r[1]);
        assertTrue(r[1].contains("srun called: --label --kill-on-bad-exit=1 scripts/run_gpt2_124M.sh"), r[1]);

        r = run(dir, Map.of("PATH", path, "SLURM_SUBMIT_DIR", root.toString(), "JAVA_HOME", dir.toString(),
                "LD_LIBRARY_PATH", libs.toString()), "bash", sbatch);
        assertEquals("1", r[0], r[1]);
        assertTrue(r[1].contains("JAVA_HOME=" + dir + " has no bin/java"), r[1]);
    }

    /** The run script's header says where flash attention runs as the README does. */
    @Test
    void theRunScriptSaysFlashRunsOnTensorCores() throws Exception {
        String header = read("scripts/run_gpt2_124M.sh").lines().takeWhile(l -> l.startsWith("#")).reduce("", (a, b) -> a + b + "\n");
        assertFalse(header.contains("CUDA cores"), header);
        assertTrue(header.contains("tensor cores in bf16 for head sizes 64"), header);
        assertTrue(read("README.md").contains("**On tensor cores** in bf16 for head sizes 64 (GPT-2's) and 128"));
        assertTrue(read("docs/gpus.md").contains("**On tensor cores** in bf16 for head sizes 64 (GPT-2's) and 128"));
    }
}
