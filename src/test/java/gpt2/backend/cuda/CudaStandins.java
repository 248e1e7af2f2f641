package gpt2.backend.cuda;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Builds the CPU stand-ins of the CUDA libraries (src/test/native/cuda-standins) with the system's
 * C compiler: libcuda.so.1, libcudart.so.13, libcublas.so.13, libcublasLt.so.13 and libnccl.so.2,
 * with NVIDIA's sonames and symbol versions, so that JavaCPP's own JNI libraries bind to them and
 * the project's {@link GpuExecutor}, {@code LtGemm} and {@link NcclCommunicator} make their real
 * calls on a machine without a GPU; beside them the emulated kernels (libkernels_{f32,bf16}.so:
 * the {@link EmulatedExecutor}'s build plus each kernel's parameter kinds) that the stand-in driver
 * runs for cuLaunchKernel. NVRTC stays NVIDIA's (it needs no GPU).
 *
 * <pre>
 * src/test/native/cuda-standins/*.c --gcc--> DIR/lib*.so*      (rebuilt when a source changed)
 * kernels/*.cu + emulator            --g++--> DIR/libkernels_*.so
 * a JVM with -Djava.library.path=DIR -Dorg.bytedeco.javacpp.pathsFirst=true (and LD_LIBRARY_PATH=DIR)
 *   loads these instead of any installed CUDA: see the cuda-standins execution in pom.xml
 * </pre>
 * Run by Maven before the tests ({@code main(DIR, SOURCES)}); where no C compiler exists it writes
 * DIR/UNAVAILABLE with the reason, which the stand-in tests print when they skip.
 */
public final class CudaStandins {
    private CudaStandins() {
    }

    /** The libraries a stand-in JVM loads in place of NVIDIA's: file, soname's version script (or null). */
    static final Map<String, String> LIBRARIES = Map.of(
            "libcuda.so.1", "core.c",
            "libcudart.so.13", "cudart.c",
            "libcublas.so.13", "cublas.c",
            "libcublasLt.so.13", "cublasLt.c",
            "libnccl.so.2", "nccl.c");

    /** What libcuda.so.1 is built from besides core.c: the race detector and the CUBIN reader. */
    static final List<String> CORE_SOURCES = List.of("order.c", "cubin.c");

    /**
     * How the emulated kernels are instrumented: every load and store the compiler emits becomes a
     * call to cuda_emu.h's callbacks (ThreadSanitizer's instrumentation, compiled with it and linked
     * without its runtime), which check it against the launch's buffer views.
     */
    static final List<String> INSTRUMENTATION = List.of("-DEMU_CHECK_ACCESS", "-fsanitize=thread",
            "--param", "tsan-instrument-func-entry-exit=0");

    /** The system property a stand-in JVM carries: the stand-ins' folder. */
    static final String PROPERTY = "gpt2.cuda.standins";

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]), sources = Path.of(args[1]);
        long start = System.nanoTime();
        String reason = build(dir, sources);
        if (reason != null) {
            System.out.println("cuda-standins: not built: " + reason);
        } else {
            System.out.printf("cuda-standins: %s ready (%.1f s)%n", dir, (System.nanoTime() - start) / 1e9);
        }
    }

    /** Builds what is missing or stale in dir; returns why nothing could be built, or null. */
    static String build(Path dir, Path sources) throws IOException, InterruptedException {
        dir = dir.toAbsolutePath();
        sources = sources.toAbsolutePath();
        Files.createDirectories(dir);
        Path unavailable = dir.resolve("UNAVAILABLE");
        Files.deleteIfExists(unavailable);
        for (String cc : List.of("/usr/bin/gcc", "/usr/bin/g++")) {
            if (!Files.isExecutable(Path.of(cc))) {
                String reason = cc + " not found: the CUDA library stand-ins need a C and C++ compiler";
                Files.writeString(unavailable, reason + "\n");
                return reason;
            }
        }
        StringBuilder all = new StringBuilder();
        try (var files = Files.list(sources)) {
            for (Path f : files.sorted().toList()) all.append(f.getFileName()).append('\n').append(Files.readString(f));
        }
        String kernels = kernelSource();
        String stamp = sha256(all + "\n" + kernels + "\n" + INSTRUMENTATION);
        Path stampFile = dir.resolve("BUILT");
        if (Files.exists(stampFile) && Files.readString(stampFile).strip().equals(stamp)) return null;

        List<String> common = List.of("-O3", "-ffp-contract=off", "-g", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter");
        // the emulated kernels first (they take longest): both precisions at once
        Path src = Files.writeString(dir.resolve("kernels.cpp"), kernels);
        List<Process> emu = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (boolean bf16 : new boolean[]{false, true}) {
            // compiled instrumented, then linked without the sanitizer's runtime (the callbacks are the emulator's)
            List<String> cmd = new ArrayList<>(List.of("/usr/bin/g++", "-O2", "-std=c++17", "-c", "-fPIC", "-w",
                    "-U_FORTIFY_SOURCE", "-o", dir.resolve("kernels_" + (bf16 ? "bf16" : "f32") + ".o").toString(),
                    src.toString()));
            cmd.addAll(INSTRUMENTATION);
            cmd.addAll(KernelCompiler.precisionOptions(bf16));
            Path log = dir.resolve("kernels-" + (bf16 ? "bf16" : "f32") + ".log");
            logs.add(log);
            emu.add(new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start());
        }
        try {
            Path core = dir.resolve("libcuda.so.1");
            List<String> driver = new ArrayList<>(cc(common, "libcuda.so.1", null, sources.resolve("core.c"), null, dir));
            for (String more : CORE_SOURCES) driver.add(sources.resolve(more).toString());
            run(dir, driver, "-ldl", "-lpthread", "-lm");
            for (var e : LIBRARIES.entrySet()) {
                if (e.getKey().equals("libcuda.so.1")) continue;
                String c = e.getValue();
                Path map = sources.resolve(c.replace(".c", ".map"));
                run(dir, cc(common, e.getKey(), Files.exists(map) ? map : null, sources.resolve(c), core, dir), "-lrt");
            }
            for (int i = 0; i < emu.size(); i++) {
                Process p = emu.get(i);
                if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
                    throw new IllegalStateException("cuda-standins: g++ could not compile the emulated kernels:\n"
                            + Files.readString(logs.get(i)));
                }
                Files.delete(logs.get(i));
                String name = i == 0 ? "f32" : "bf16";
                Path object = dir.resolve("kernels_" + name + ".o");
                run(dir, List.of("/usr/bin/g++", "-shared", "-Wl,--no-undefined", "-o", dir.resolve("libkernels_" + name + ".so").toString(),
                        object.toString()));
                Files.delete(object);
            }
        } finally {
            for (Process p : emu) p.destroyForcibly();
        }
        Files.delete(src);
        Files.writeString(stampFile, stamp + "\n");
        return null;
    }

    private static List<String> cc(List<String> common, String soname, Path versionScript, Path source, Path core, Path dir) {
        List<String> cmd = new ArrayList<>(List.of("/usr/bin/gcc"));
        cmd.addAll(common);
        cmd.add("-Wl,-soname," + soname);
        if (versionScript != null) cmd.add("-Wl,--version-script=" + versionScript);
        cmd.add("-Wl,-rpath,$ORIGIN");
        cmd.addAll(List.of("-o", dir.resolve(soname).toString(), source.toString()));
        if (core != null) cmd.add(core.toString());
        return cmd;
    }

    private static void run(Path dir, List<String> cmd, String... libs) throws IOException, InterruptedException {
        List<String> full = new ArrayList<>(cmd);
        full.addAll(List.of(libs));
        Process p = new ProcessBuilder(full).directory(dir.toFile()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("cuda-standins: " + String.join(" ", full) + " failed:\n" + log);
        }
    }

    /**
     * The emulator's kernel source with, per kernel, its parameter kinds as a string the stand-in
     * driver reads to copy kernelParams: p pointer, P pointer to a table of device addresses, i int,
     * l i64, f float.
     */
    static String kernelSource() {
        StringBuilder s = new StringBuilder(EmulatedExecutor.source());
        for (String family : KernelCompiler.FAMILIES) {
            for (var k : KernelCompiler.signatures(family).entrySet()) {
                StringBuilder sig = new StringBuilder();
                for (KernelCompiler.Param p : k.getValue()) {
                    // P: a table of device addresses the kernel reads through (GradientSums' i64*)
                    sig.append(p == KernelCompiler.Param.I64_PTR ? 'P' : p.isPointer() ? 'p' : switch (p) {
                        case INT -> 'i';
                        case I64 -> 'l';
                        case FLOAT -> 'f';
                        default -> throw new IllegalStateException(p.toString());
                    });
                }
                s.append("extern \"C\" const char emu_signature_").append(k.getKey()).append("[] = \"").append(sig).append("\";\n");
            }
        }
        return s.toString();
    }

    /** The stand-ins' folder of this JVM (set by the cuda-standins test execution), or null. */
    public static Path directory() {
        String d = System.getProperty(PROPERTY);
        return d == null || d.isEmpty() ? null : Path.of(d);
    }

    /**
     * The system properties a child JVM needs to reach the same device as this one: the stand-ins'
     * (in a stand-in JVM) or where the CUDA libraries are (java.library.path, on a GPU machine).
     */
    public static List<String> childJvmProperties() {
        List<String> props = new ArrayList<>();
        for (String p : List.of(PROPERTY, "java.library.path", "org.bytedeco.javacpp.platform.linkpath", "org.bytedeco.javacpp.pathsFirst")) {
            String v = System.getProperty(p);
            if (v != null && !v.isEmpty()) props.add("-D" + p + "=" + v);
        }
        return props;
    }

    /** Why this JVM cannot run on the stand-ins (not a stand-in JVM, or they could not be built), or null. */
    public static String unavailableReason() {
        Path dir = directory();
        if (dir == null) return "not a stand-in JVM (-D" + PROPERTY + " unset; mvn verify's cuda-standins execution sets it)";
        Path why = dir.resolve("UNAVAILABLE");
        try {
            if (Files.exists(why)) return Files.readString(why).strip();
        } catch (IOException e) {
            return e.toString();
        }
        for (String lib : LIBRARIES.keySet()) if (!Files.exists(dir.resolve(lib))) return dir.resolve(lib) + " missing";
        return null;
    }

    /** Skips the calling test (printing why) unless this JVM runs on built stand-ins. */
    public static void assumeStandins(String test) {
        String reason = directory() == null ? "not a stand-in JVM" : unavailableReason();
        if (reason != null) System.out.println("SKIPPED (" + test + "): " + reason);
        org.junit.jupiter.api.Assumptions.assumeTrue(reason == null, reason);
    }

    /**
     * Why the gpu-tagged tests cannot run in this JVM, or null: in a stand-in JVM, the stand-ins'
     * state (never an installed CUDA in their place); elsewhere whether a GPU is usable.
     */
    public static String gpuUnavailableReason() {
        if (directory() != null) {
            String reason = unavailableReason();
            return reason == null ? null : "CUDA stand-ins unavailable: " + reason;
        }
        String reason = CudaBackend.unavailableReason();
        return reason == null ? null : "no usable GPU: " + reason;
    }

    /** Fails unless the device is what this JVM is for: the stand-ins in a stand-in JVM, a real GPU elsewhere. */
    public static void assertExpectedDevice(String deviceName) {
        boolean standin = deviceName.contains("stand-in");
        if (standin != (directory() != null)) {
            throw new AssertionError(directory() != null
                    ? "a stand-in JVM reached a real device (" + deviceName + "): JavaCPP found another CUDA before the stand-ins"
                    : "the CUDA stand-ins answered (" + deviceName + ") in a JVM meant for a real GPU");
        }
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
