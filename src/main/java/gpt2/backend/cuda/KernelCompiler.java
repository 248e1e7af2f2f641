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
 * kernels/common.cuh + kernels/FAMILY.cu --NVRTC(--gpu-architecture=sm_XY [-DGPT2_BF16])--> CUBIN
 *   --> ~/.cache/gpt2-java/kernels/FAMILY-sm_XY[-bf16]-HASH.cubin
 * </pre>
 * Each family is built for a storage type {@code floatX} (see common.cuh): float, or bfloat16 for
 * mixed precision. {@link #signatures} reads every kernel's parameter list from the source, so a
 * launch can be checked against it (argument count, scalar types, and each pointer's element type
 * against the buffer passed).
 */
public final class KernelCompiler {
    private KernelCompiler() {
    }

    /** One file per op family, forward and backward side by side. */
    public static final List<String> FAMILIES = List.of("encoder", "norm", "matmul", "attention", "flash", "pointwise", "loss",
            "rope", "muon");
    private static final List<String> OPTIONS = List.of("--std=c++17", "-lineinfo");
    private static final Pattern SIGNATURE = Pattern.compile("extern \"C\" __global__ void (\\w+)\\(([^)]*)\\)");

    /** The type of a kernel parameter, as the launch must supply it. */
    public enum Param {
        /** floatX*: a buffer of the compute type (F32, or BF16 in the bf16 build). */
        FLOATX_PTR,
        F32_PTR, BF16_PTR, F64_PTR, I32_PTR, I64_PTR,
        INT, I64, FLOAT;

        static Param of(String declaration, String kernel) {
            String d = declaration.replace("const ", "").trim();
            int split = Math.max(d.lastIndexOf(' '), d.lastIndexOf('*'));
            String type = d.substring(0, split + 1).replace(" ", "");
            return switch (type) {
                case "floatX*" -> FLOATX_PTR;
                case "float*" -> F32_PTR;
                case "bf16_t*" -> BF16_PTR;
                case "double*" -> F64_PTR;
                case "int*" -> I32_PTR;
                case "i64*" -> I64_PTR;
                case "int" -> INT;
                case "i64" -> I64;
                case "float" -> FLOAT;
                default -> throw new IllegalStateException("kernel " + kernel + ": parameter type '" + type
                        + "' unknown to the launcher");
            };
        }

        public boolean isPointer() {
            return ordinal() <= I64_PTR.ordinal();
        }
    }

    /** The source NVRTC compiles for a family: the shared helpers, then the family's file. */
    public static String source(String family) {
        return resource("common.cuh") + "\n" + resource(family + ".cu");
    }

    /** The kernel names a family defines. */
    public static List<String> kernelNames(String family) {
        return new ArrayList<>(signatures(family).keySet());
    }

    /** Every kernel of a family with its parameter types, in declaration order. */
    public static java.util.Map<String, List<Param>> signatures(String family) {
        java.util.Map<String, List<Param>> out = new java.util.LinkedHashMap<>();
        Matcher m = SIGNATURE.matcher(expanded(family));
        while (m.find()) {
            List<Param> ps = new ArrayList<>();
            for (String decl : m.group(2).split(",")) {
                if (!decl.isBlank()) ps.add(Param.of(decl.replaceAll("\\s+", " "), m.group(1)));
            }
            out.put(m.group(1), List.copyOf(ps));
        }
        return out;
    }

    private static final Pattern MACRO = Pattern.compile("#define (\\w+)\\((\\w+)\\)(.*)");
    private static final Pattern USE = Pattern.compile("(\\w+)\\((\\w+)\\)\\s*");

    /**
     * A family's file with its kernel-defining macros expanded: a one-argument {@code #define}
     * whose body declares {@code __global__} kernels (flash.cu instantiates one per head size),
     * used at the start of a line. What the signature parser (and the tests' emulator) read;
     * NVRTC compiles the original.
     */
    static String expanded(String family) {
        java.util.Map<String, String[]> macros = new java.util.HashMap<>(); // name -> {argument, body}
        StringBuilder out = new StringBuilder();
        List<String> lines = resource(family + ".cu").lines().toList();
        for (int i = 0; i < lines.size(); i++) {
            Matcher def = MACRO.matcher(lines.get(i));
            if (def.matches()) {
                int start = i;
                StringBuilder body = new StringBuilder();
                String line = def.group(3);
                while (line.endsWith("\\")) {
                    body.append(line, 0, line.length() - 1).append('\n');
                    line = lines.get(++i);
                }
                body.append(line).append('\n');
                if (body.indexOf("__global__") >= 0) {
                    macros.put(def.group(1), new String[]{def.group(2), body.toString()});
                } else {
                    for (int k = start; k <= i; k++) out.append(lines.get(k)).append('\n');
                }
                continue;
            }
            Matcher use = USE.matcher(lines.get(i));
            String[] macro = use.matches() ? macros.get(use.group(1)) : null;
            if (macro != null) {
                out.append(macro[1].replace("##" + macro[0], use.group(2))
                        .replaceAll("\\b" + macro[0] + "\\b", use.group(2)));
            } else {
                out.append(lines.get(i)).append('\n');
            }
        }
        return out.toString();
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

    /** The compile options that select the storage type: none for float, -DGPT2_BF16 for bf16. */
    static List<String> precisionOptions(boolean bf16) {
        return bf16 ? List.of("-DGPT2_BF16") : List.of();
    }

    /**
     * CUBIN of a family for an architecture such as "sm_90" with floatX = bf16 or float, from the
     * cache or NVRTC.
     */
    public static byte[] cubin(String family, String arch, boolean bf16, Path cacheDir) {
        String src = source(family);
        List<String> extra = precisionOptions(bf16);
        String key = sha256(src + "|" + arch + "|" + OPTIONS + extra + "|" + nvrtcVersion()).substring(0, 16);
        String name = family + "-" + arch + (bf16 ? "-bf16" : "");
        Path cached = cacheDir == null ? null : cacheDir.resolve(name + "-" + key + ".cubin");
        if (cached != null && Files.isRegularFile(cached)) {
            try {
                return Files.readAllBytes(cached);
            } catch (IOException e) {
                // unreadable cache entry: compile again
            }
        }
        byte[] bin = compile(family, src, arch, extra);
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
    static byte[] compile(String family, String src, String arch, List<String> extraOptions) {
        _nvrtcProgram prog = new _nvrtcProgram();
        Cuda.checkNvrtc(nvrtc.nvrtcCreateProgram(prog, new BytePointer(src), new BytePointer(family + ".cu"), 0,
                (PointerPointer<?>) null, (PointerPointer<?>) null), "nvrtcCreateProgram(" + family + ")");
        try {
            List<String> opts = new ArrayList<>(OPTIONS);
            opts.addAll(extraOptions);
            opts.add("--gpu-architecture=" + arch);
            PointerPointer<BytePointer> o = new PointerPointer<>(opts.size());
            for (int i = 0; i < opts.size(); i++) o.put(i, new BytePointer(opts.get(i)));
            int status = nvrtc.nvrtcCompileProgram(prog, opts.size(), o);
            if (status != nvrtc.NVRTC_SUCCESS) {
                SizeTPointer logSize = new SizeTPointer(1);
                nvrtc.nvrtcGetProgramLogSize(prog, logSize);
                BytePointer log = new BytePointer(logSize.get());
                nvrtc.nvrtcGetProgramLog(prog, log);
                throw new Cuda.CudaException("NVRTC could not compile kernels/" + family + ".cu for " + arch + " "
                        + extraOptions + ":\n"
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
