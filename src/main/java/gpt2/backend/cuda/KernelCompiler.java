package gpt2.backend.cuda;

import org.bytedeco.cuda.global.nvrtc;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Compiles the CUDA C kernels in {@code src/main/resources/kernels/} with NVRTC to CUBIN for one
 * GPU architecture (the driver cannot JIT PTX from an NVRTC newer than itself), cached on disk by
 * the hash of source, architecture, options and NVRTC version.
 *
 * <pre>
 * kernels/common.cuh + kernels/FAMILY.cu --NVRTC(--gpu-architecture=sm_XY)--> CUBIN
 *   --> ~/.cache/gpt2-java/kernels/FAMILY-sm_XY-HASH.cubin
 * </pre>
 */
public final class KernelCompiler {
    private KernelCompiler() {
    }

    /** One file per op family, forward and backward side by side. */
    public static final List<String> FAMILIES = List.of("encoder", "norm", "matmul", "attention", "pointwise", "loss");
    private static final List<String> OPTIONS = List.of("--std=c++17", "-lineinfo");
    private static final Pattern KERNEL = Pattern.compile("extern \"C\" __global__ void (\\w+)\\(");

    /** The source NVRTC compiles for a family: the shared helpers, then the family's file. */
    public static String source(String family) {
        return resource("common.cuh") + "\n" + resource(family + ".cu");
    }

    /** The kernel names a family defines. */
    public static List<String> kernelNames(String family) {
        List<String> out = new ArrayList<>();
        Matcher m = KERNEL.matcher(resource(family + ".cu"));
        while (m.find()) out.add(m.group(1));
        return out;
    }

    private static String resource(String name) {
        try (InputStream in = KernelCompiler.class.getResourceAsStream("/kernels/" + name)) {
            if (in == null) throw new IllegalStateException("kernel source /kernels/" + name + " missing from the jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static Path defaultCacheDir() {
        String env = System.getenv("GPT2_KERNEL_CACHE");
        if (env != null && !env.isEmpty()) return Path.of(env);
        return Path.of(System.getProperty("user.home"), ".cache", "gpt2-java", "kernels");
    }

    /** CUBIN of a family for an architecture such as "sm_90", from the cache or NVRTC. */
    public static byte[] cubin(String family, String arch, Path cacheDir) {
        String src = source(family);
        String key = sha256(src + "|" + arch + "|" + OPTIONS + "|" + nvrtcVersion()).substring(0, 16);
        Path cached = cacheDir == null ? null : cacheDir.resolve(family + "-" + arch + "-" + key + ".cubin");
        if (cached != null && Files.isRegularFile(cached)) {
            try {
                return Files.readAllBytes(cached);
            } catch (IOException e) {
                // unreadable cache entry: compile again
            }
        }
        byte[] bin = compile(family, src, arch);
        if (cached != null) {
            try {
                Files.createDirectories(cacheDir);
                Path tmp = Files.createTempFile(cacheDir, family, ".tmp");
                Files.write(tmp, bin);
                Files.move(tmp, cached, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                System.err.println("warning: cannot cache kernels in " + cacheDir + ": " + e.getMessage());
            }
        }
        return bin;
    }

    static String nvrtcVersion() {
        int[] major = new int[1], minor = new int[1];
        Cuda.checkNvrtc(nvrtc.nvrtcVersion(major, minor), "nvrtcVersion");
        return major[0] + "." + minor[0];
    }

    /** NVRTC to CUBIN; a compile error throws with NVRTC's log. */
    static byte[] compile(String family, String src, String arch) {
        _nvrtcProgram prog = new _nvrtcProgram();
        Cuda.checkNvrtc(nvrtc.nvrtcCreateProgram(prog, new BytePointer(src), new BytePointer(family + ".cu"), 0,
                (PointerPointer<?>) null, (PointerPointer<?>) null), "nvrtcCreateProgram(" + family + ")");
        try {
            List<String> opts = new ArrayList<>(OPTIONS);
            opts.add("--gpu-architecture=" + arch);
            PointerPointer<BytePointer> o = new PointerPointer<>(opts.size());
            for (int i = 0; i < opts.size(); i++) o.put(i, new BytePointer(opts.get(i)));
            int status = nvrtc.nvrtcCompileProgram(prog, opts.size(), o);
            if (status != nvrtc.NVRTC_SUCCESS) {
                SizeTPointer logSize = new SizeTPointer(1);
                nvrtc.nvrtcGetProgramLogSize(prog, logSize);
                BytePointer log = new BytePointer(logSize.get());
                nvrtc.nvrtcGetProgramLog(prog, log);
                throw new Cuda.CudaException("NVRTC could not compile kernels/" + family + ".cu for " + arch + ":\n"
                        + log.getString());
            }
            SizeTPointer size = new SizeTPointer(1);
            Cuda.checkNvrtc(nvrtc.nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
            byte[] bin = new byte[(int) size.get()];
            Cuda.checkNvrtc(nvrtc.nvrtcGetCUBIN(prog, bin), "nvrtcGetCUBIN");
            return bin;
        } finally {
            nvrtc.nvrtcDestroyProgram(prog);
        }
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
