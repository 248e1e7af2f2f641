package gpt2;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The layering docs/ARCHITECTURE.md's Layout section describes, checked on the sources. */
class ArchitectureTest {

    private static final Path MAIN = Path.of("src/main/java/gpt2");

    private static List<String> offenders(Path dir, Pattern forbidden) throws Exception {
        List<String> out = new ArrayList<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path f : s.filter(p -> p.toString().endsWith(".java")).toList()) {
                // code only: comments may name what a class works with
                String code = Files.readString(f).replaceAll("(?s)/\\*.*?\\*/", "").replaceAll("//[^\\n]*", "");
                if (forbidden.matcher(code).find()) out.add(f.toString());
            }
        }
        return out;
    }

    @Test
    void theCliAsksTheFactoriesForBackendsAndCommunicators() throws Exception {
        assertTrue(Files.isDirectory(MAIN), "run from the project root");
        List<String> bad = offenders(MAIN.resolve("cli"), Pattern.compile("\\b(CudaBackend|CpuBackend|NcclCommunicator)\\b"));
        assertTrue(bad.isEmpty(), "cli/ names a backend or communicator class: " + bad);
    }

    @Test
    void theBackendLayerDoesNotImportTheModel() throws Exception {
        List<String> bad = offenders(MAIN.resolve("backend"), Pattern.compile("\\bgpt2\\.model\\b"));
        assertTrue(bad.isEmpty(), "backend/ depends on model/: " + bad);
    }

    @Test
    void noPackageIsNamedDist() {
        assertFalse(Files.exists(MAIN.resolve("dist")));
        assertFalse(Files.exists(Path.of("src/test/java/gpt2/dist")));
    }
}
