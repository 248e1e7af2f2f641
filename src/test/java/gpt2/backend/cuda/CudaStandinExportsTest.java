package gpt2.backend.cuda;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The stand-ins export every CUDA function the project reaches, under the symbol and version
 * JavaCPP's JNI library binds it to: each call from the main classes (read from the bytecode) is
 * followed into its JNI function in libjni{cudart,cublas,nccl}.so (named as JNI names it), whose
 * calls through the PLT are the C symbols (cuStreamGetCaptureInfo_v3, cuGraphInstantiateWithFlags,
 * ...); each must be exported by the stand-in that carries its soname, with the symbol version the
 * JNI library asks for. A call the stand-ins lack fails here, not in the middle of a training run.
 */
@Tag("standin")
class CudaStandinExportsTest {

    /** JNI library of a preset, and which stand-in exports a symbol (by prefix). */
    private static final Map<String, String> JNI = Map.of("cudart", "libjnicudart.so", "cublas", "libjnicublas.so", "nccl", "libjninccl.so");

    static String standinOf(String symbol) {
        if (symbol.startsWith("cublasLt")) return "libcublasLt.so.13";
        if (symbol.startsWith("cublas")) return "libcublas.so.13";
        if (symbol.startsWith("cuda")) return "libcudart.so.13";
        if (symbol.startsWith("nccl")) return "libnccl.so.2";
        return "libcuda.so.1";
    }

    @BeforeAll
    static void tools() {
        CudaStandins.assumeStandins("CudaStandinExportsTest");
        boolean objdump = Files.isExecutable(Path.of("/usr/bin/objdump"));
        if (!objdump) System.out.println("SKIPPED (CudaStandinExportsTest): objdump (binutils) not found");
        Assumptions.assumeTrue(objdump, "objdump (binutils) not found");
    }

    private static String run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0, String.join(" ", cmd) + " failed:\n" + out);
        return out;
    }

    /** The JNI library from the cuda jar, copied out. */
    private static Path jni(String file, Path dir) throws IOException {
        Path out = dir.resolve(file);
        if (Files.exists(out)) return out;
        try (InputStream in = CudaStandinExportsTest.class.getResourceAsStream("/org/bytedeco/cuda/linux-x86_64/" + file)) {
            if (in == null) throw new IllegalStateException(file + " not on the class path");
            Files.copy(in, out);
        }
        return out;
    }

    /** symbol -> version node ("" when unversioned) of a library's dynamic symbols, defined or undefined. */
    private static Map<String, String> symbols(Path lib, boolean defined) throws Exception {
        Map<String, String> out = new HashMap<>();
        Pattern line = Pattern.compile("\\s(\\*UND\\*|\\.text)\\s+[0-9a-f]+\\s+(?:\\(?([\\w.]+)\\)?\\s+)?(\\w+)$");
        for (String l : run("objdump", "-T", lib.toString()).lines().toList()) {
            Matcher m = line.matcher(l);
            if (!m.find() || m.group(1).equals("*UND*") == defined) continue;
            String version = m.group(2) == null || m.group(2).equals("Base") ? "" : m.group(2);
            out.put(m.group(3), version);
        }
        return out;
    }

    /** JNI's escape of a name or descriptor part. */
    static String mangle(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            switch (c) {
                case '/' -> b.append('_');
                case '_' -> b.append("_1");
                case ';' -> b.append("_2");
                case '[' -> b.append("_3");
                default -> {
                    if (c < 128 && Character.isLetterOrDigit(c)) b.append(c);
                    else b.append(String.format("_0%04x", (int) c));
                }
            }
        }
        return b.toString();
    }

    /** Function name -> the cu / cuda / cublas / nccl symbols it calls through the PLT. */
    private static Map<String, Set<String>> pltCalls(Path lib) throws Exception {
        Map<String, Set<String>> out = new HashMap<>();
        Pattern fn = Pattern.compile("^[0-9a-f]+ <(Java_\\w+?)(?:@@?[\\w.]+)?>:$"), call = Pattern.compile("<((?:cu|nccl)\\w+)@plt>");
        Set<String> current = null;
        for (String l : run("objdump", "-d", "--no-show-raw-insn", lib.toString()).lines().toList()) {
            Matcher f = fn.matcher(l);
            if (f.matches()) {
                current = new TreeSet<>();
                out.put(f.group(1), current);
                continue;
            }
            if (current != null) {
                Matcher c = call.matcher(l);
                if (c.find()) current.add(c.group(1));
            }
        }
        return out;
    }

    @Test
    void everyFunctionTheProjectReachesIsExportedWithItsVersion() throws Exception {
        Path dir = Files.createTempDirectory("gpt2-jni");
        try {
            Map<String, Map<String, Set<String>>> calls = new HashMap<>();
            Map<String, Map<String, String>> imports = new HashMap<>();
            for (var e : JNI.entrySet()) {
                Path lib = jni(e.getValue(), dir);
                calls.put(e.getKey(), pltCalls(lib));
                imports.put(e.getKey(), symbols(lib, false));
            }
            Map<String, Map<String, String>> exports = new HashMap<>();
            for (String lib : CudaStandins.LIBRARIES.keySet()) exports.put(lib, symbols(CudaStandins.directory().resolve(lib), true));

            Map<String, String> reached = new TreeMap<>(); // C symbol -> the Java call that reaches it
            List<String> problems = new ArrayList<>();
            List<PresetCalls.Call> all = PresetCalls.all();
            assertTrue(all.size() > 60, "found only " + all.size() + " calls into the presets in " + PresetCalls.mainClasses());
            for (PresetCalls.Call c : all) {
                if (c.preset().equals("nvrtc")) continue; // NVRTC stays NVIDIA's
                String prefix = "Java_org_bytedeco_cuda_global_" + c.preset() + "_" + mangle(c.name());
                String args = c.descriptor().substring(1, c.descriptor().indexOf(')'));
                Map<String, Set<String>> fns = calls.get(c.preset());
                Set<String> targets = fns.containsKey(prefix) ? fns.get(prefix) : fns.get(prefix + "__" + mangle(args));
                if (targets == null || targets.isEmpty()) {
                    problems.add(c.key() + ": no JNI function calling a CUDA symbol found (" + prefix + ")");
                    continue;
                }
                for (String sym : targets) {
                    reached.put(sym, c.preset() + "." + c.name());
                    String lib = standinOf(sym);
                    String want = imports.get(c.preset()).getOrDefault(sym, "");
                    String have = exports.get(lib).get(sym);
                    if (have == null) problems.add(sym + " (for " + c.key() + "): not exported by the stand-in " + lib);
                    else if (!have.equals(want)) problems.add(sym + ": " + lib + " exports version '" + have + "', JNI wants '" + want + "'");
                }
            }
            System.out.println("  the project reaches " + reached.size() + " CUDA/cuBLAS/NCCL functions (NVRTC aside): " + reached.keySet());
            assertTrue(problems.isEmpty(), String.join("\n", problems));
            assertTrue(reached.size() > 60, "too few functions found: " + reached);
        } finally {
            try (var files = Files.list(dir)) {
                for (Path f : files.toList()) Files.delete(f);
            }
            Files.delete(dir);
        }
    }
}
