package gpt2.backend.cuda;

import gpt2.backend.BFloat16;
import gpt2.backend.DType;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The CUDA backend's executor on the CPU, for tests without a GPU: the very kernel sources NVRTC
 * compiles (common.cuh + every family, with floatX = float or bf16) are compiled by g++ behind
 * emulator/cuda_emu.h (blocks in turn, a block's threads as fibers meeting at barriers and warp
 * shuffles), with one generated launcher per kernel called through the FFM API; "device memory"
 * is host memory; GEMMs are a plain column-major reference in Java (float32 accumulation, bf16
 * inputs and outputs as cuBLAS takes and gives them, cuBLASLt's bias and GELU epilogues computed on
 * the float32 accumulator as cuBLASLt documents them). What it cannot show: cuBLAS itself, real
 * concurrency between blocks, the GPU's expf/tanhf, and anything about speed.
 */
final class EmulatedExecutor implements Executor {

    private static final Map<Boolean, Object> LIBRARIES = new HashMap<>();
    private static final Linker LINKER = Linker.nativeLinker();
    private static final FunctionDescriptor LAUNCHER = FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT,
            ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS);

    private final Map<String, MethodHandle> launchers = new HashMap<>();
    private final Map<Long, Arena> allocations = new HashMap<>();

    /** Why the emulator cannot run here (no g++, or a compile error), or null when it can. */
    static synchronized String unavailableReason() {
        if (!Files.isExecutable(Path.of("/usr/bin/g++"))) return "g++ not found at /usr/bin/g++";
        try {
            library(false);
            library(true);
            return null;
        } catch (RuntimeException e) {
            return e.getMessage();
        }
    }

    EmulatedExecutor(boolean bf16) {
        SymbolLookup lookup = library(bf16);
        for (String family : KernelCompiler.FAMILIES) {
            for (String k : KernelCompiler.kernelNames(family)) {
                MemorySegment fn = lookup.find("emu_launch_" + k)
                        .orElseThrow(() -> new IllegalStateException("emulator: no launcher for " + k));
                launchers.put(k, LINKER.downcallHandle(fn, LAUNCHER));
            }
        }
    }

    /** The kernels for one precision, compiled once per JVM. */
    private static synchronized SymbolLookup library(boolean bf16) {
        Object cached = LIBRARIES.get(bf16);
        if (cached instanceof SymbolLookup l) return l;
        if (cached instanceof RuntimeException e) throw e;
        try {
            Path dir = Files.createTempDirectory("gpt2-emu");
            Path src = Files.writeString(dir.resolve("kernels.cpp"), source());
            Path lib = dir.resolve(bf16 ? "libkernels_bf16.so" : "libkernels.so");
            List<String> cmd = new java.util.ArrayList<>(List.of("/usr/bin/g++", "-O2", "-std=c++17", "-shared", "-fPIC",
                    "-w", "-U_FORTIFY_SOURCE", "-o", lib.toString(), src.toString()));
            cmd.addAll(KernelCompiler.precisionOptions(bf16));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException("emulator: g++ could not compile the kernels (bf16 " + bf16 + "):\n" + log);
            }
            SymbolLookup l = SymbolLookup.libraryLookup(lib, Arena.global());
            LIBRARIES.put(bf16, l);
            // loaded (mapped) now: the files can go, so test runs leave nothing in the temp folder
            try (var files = Files.list(dir)) {
                for (Path f : files.toList()) Files.delete(f);
            }
            Files.delete(dir);
            return l;
        } catch (IOException e) {
            throw new IllegalStateException("emulator: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("emulator: interrupted", e);
        } catch (RuntimeException e) {
            LIBRARIES.put(bf16, e);
            throw e;
        }
    }

    /** The emulator header, the kernel sources as NVRTC sees them, and a launcher per kernel. */
    static String source() {
        StringBuilder s = new StringBuilder(resource("/emulator/cuda_emu.h")).append('\n');
        s.append(resource("/kernels/common.cuh")).append('\n');
        for (String family : KernelCompiler.FAMILIES) s.append(resource("/kernels/" + family + ".cu")).append('\n');
        for (String family : KernelCompiler.FAMILIES) {
            for (Map.Entry<String, List<KernelCompiler.Param>> k : KernelCompiler.signatures(family).entrySet()) {
                s.append("extern \"C\" void emu_launch_").append(k.getKey())
                        .append("(int gx, int gy, int bx, const int64_t* a) {\n")
                        .append("    std::function<void()> body = [&] { ").append(k.getKey()).append('(');
                List<KernelCompiler.Param> ps = k.getValue();
                for (int i = 0; i < ps.size(); i++) {
                    if (i > 0) s.append(", ");
                    s.append(switch (ps.get(i)) {
                        case FLOATX_PTR -> "(floatX*) a[" + i + "]";
                        case F32_PTR -> "(float*) a[" + i + "]";
                        case BF16_PTR -> "(bf16_t*) a[" + i + "]";
                        case F64_PTR -> "(double*) a[" + i + "]";
                        case I32_PTR -> "(int*) a[" + i + "]";
                        case I64_PTR -> "(i64*) a[" + i + "]";
                        case INT -> "(int) a[" + i + "]";
                        case I64 -> "(i64) a[" + i + "]";
                        case FLOAT -> "emu::f32(a[" + i + "])";
                    });
                }
                s.append("); };\n    emu::launch(\"").append(k.getKey()).append("\", ")
                        .append(synchronizes(family, k.getKey())).append(", gx, gy, bx, body);\n}\n");
            }
        }
        return s.toString();
    }

    private static final java.util.regex.Pattern SYNC = java.util.regex.Pattern.compile(
            "__syncthreads|__syncwarp|__shfl|warp_sum|warp_max|block_sum|block_max|mma_bf16|ldmatrix");

    /**
     * Whether a kernel's body synchronizes its threads (directly or through the helpers that do);
     * a wrong "false" aborts at the first barrier with a message, it cannot pass silently.
     */
    static boolean synchronizes(String family, String kernel) {
        String src = KernelCompiler.expanded(family);
        // the family's __device__ functions that synchronize, directly or through one another
        Map<String, String> functions = new HashMap<>();
        java.util.regex.Matcher f = DEVICE_FN.matcher(src);
        while (f.find()) functions.put(f.group(1), body(src, f.start()));
        java.util.Set<String> sync = new java.util.HashSet<>();
        for (boolean grew = true; grew; ) {
            grew = false;
            for (Map.Entry<String, String> e : functions.entrySet()) {
                if (!sync.contains(e.getKey()) && synchronizes(e.getValue(), sync)) grew = sync.add(e.getKey());
            }
        }
        return synchronizes(body(src, src.indexOf("void " + kernel + "(")), sync);
    }

    private static boolean synchronizes(String body, java.util.Set<String> syncFunctions) {
        if (SYNC.matcher(body).find()) return true;
        for (String fn : syncFunctions) if (body.matches("(?s).*\\b" + fn + "\\s*[<(].*")) return true;
        return false;
    }

    private static final java.util.regex.Pattern DEVICE_FN = java.util.regex.Pattern.compile(
            "__device__[^;{(]*?\\b(\\w+)\\s*\\(");

    /** The brace-delimited body of the function declared at {@code at}. */
    private static String body(String src, int at) {
        int open = src.indexOf('{', at), depth = 0, i = open;
        do {
            char c = src.charAt(i++);
            if (c == '{') depth++;
            else if (c == '}') depth--;
        } while (depth > 0);
        return src.substring(open, i);
    }

    private static String resource(String name) {
        try (InputStream in = EmulatedExecutor.class.getResourceAsStream(name)) {
            if (in == null) throw new IllegalStateException("missing resource " + name);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static MemorySegment at(long address, long bytes) {
        return MemorySegment.ofAddress(address).reinterpret(bytes);
    }

    @Override public String deviceName() { return "CPU emulator"; }
    @Override public String arch() { return "host"; }

    @Override
    public long allocate(long bytes, String what) {
        Arena a = Arena.ofShared();
        long address = a.allocate(bytes, 256).address(); // zero-filled
        allocations.put(address, a);
        return address;
    }

    @Override
    public void free(long address) {
        Arena a = allocations.remove(address);
        if (a == null) throw new IllegalArgumentException("emulator: free of an address never allocated");
        a.close();
    }

    @Override
    public void zero(long address, long bytes) {
        at(address, bytes).fill((byte) 0);
    }

    @Override
    public void copyToDevice(long dst, MemorySegment src) {
        at(dst, src.byteSize()).copyFrom(src);
    }

    @Override
    public void copyToHost(MemorySegment dst, long src) {
        dst.copyFrom(at(src, dst.byteSize()));
    }

    @Override
    public void copyOnDevice(long dst, long src, long bytes) {
        MemorySegment.copy(at(src, bytes), 0, at(dst, bytes), 0, bytes);
    }

    /** The emulator's one DYNAMIC_SHARED area (EMU_DYNAMIC_SHARED in cuda_emu.h). */
    private static final int DYNAMIC_SHARED = 96 * 1024;

    @Override
    public void sharedMemory(String kernel, int bytes) {
        if (bytes > DYNAMIC_SHARED) {
            throw new IllegalArgumentException("emulator: " + kernel + " wants " + bytes + " bytes of dynamic shared memory, "
                    + "more than the " + DYNAMIC_SHARED + " it has");
        }
    }

    @Override
    public void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment packed = a.allocate(8L * Math.max(1, args.length), 8);
            for (int i = 0; i < args.length; i++) {
                long v = switch (args[i]) {
                    case DevicePointer p -> p.address();
                    case Long l -> l;
                    case Integer n -> n;
                    case Float f -> Float.floatToRawIntBits(f) & 0xffffffffL;
                    default -> throw new IllegalArgumentException(kernel + ": argument " + args[i]);
                };
                packed.setAtIndex(ValueLayout.JAVA_LONG, i, v);
            }
            launchers.get(kernel).invokeExact(grid, gridY, block, packed);
        } catch (Throwable t) {
            throw new IllegalStateException("emulator: " + kernel + ": " + t, t);
        }
    }

    @Override
    public void gemm(Gemm g) {
        int ein = g.in().bytes(), eout = g.out().bytes();
        for (int bi = 0; bi < g.batch(); bi++) {
            long a = g.a() + (long) bi * g.strideA() * ein, b = g.b() + (long) bi * g.strideB() * ein;
            long c = g.c() + (long) bi * g.strideC() * eout;
            if (g.pointerArrays()) { // the arrays of device pointers live in "device" memory, 8 bytes an entry
                a = at(g.a(), 8L * g.batch()).getAtIndex(ValueLayout.JAVA_LONG, bi);
                b = at(g.b(), 8L * g.batch()).getAtIndex(ValueLayout.JAVA_LONG, bi);
                c = at(g.c(), 8L * g.batch()).getAtIndex(ValueLayout.JAVA_LONG, bi);
            }
            MemorySegment A = at(a, ein * ((long) g.lda() * (g.transA() ? g.m() : g.k()))),
                    B = at(b, ein * ((long) g.ldb() * (g.transB() ? g.k() : g.n()))),
                    C = at(c, eout * ((long) g.ldc() * g.n()));
            for (int j = 0; j < g.n(); j++) {
                for (int i = 0; i < g.m(); i++) {
                    float acc = 0f;
                    for (int p = 0; p < g.k(); p++) {
                        long ai = g.transA() ? p + (long) i * g.lda() : i + (long) p * g.lda();
                        long bj = g.transB() ? j + (long) p * g.ldb() : p + (long) j * g.ldb();
                        acc += get(A, g.in(), ai) * get(B, g.in(), bj);
                    }
                    long ci = i + (long) j * g.ldc();
                    if (g.accumulate()) acc += get(C, g.out(), ci);
                    if (g.bias() != 0) acc += get(at(g.bias(), (long) eout * g.m()), g.out(), i);
                    if (g.gelu()) {
                        set(at(g.pre(), eout * ((long) g.ldc() * g.n())), g.out(), ci, acc);
                        acc = (float) (0.5 * acc * (1 + Math.tanh(0.7978845608028654 * (acc + 0.044715 * acc * acc * acc))));
                    }
                    set(C, g.out(), ci, acc);
                }
            }
        }
    }

    private static void set(MemorySegment s, DType t, long i, float v) {
        if (t == DType.BF16) s.setAtIndex(ValueLayout.JAVA_SHORT, i, BFloat16.fromFloat(v));
        else s.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
    }

    private static float get(MemorySegment s, DType t, long i) {
        return t == DType.BF16 ? BFloat16.toFloat(s.getAtIndex(ValueLayout.JAVA_SHORT, i)) : s.getAtIndex(ValueLayout.JAVA_FLOAT, i);
    }

    @Override public void synchronize() { }

    private final Map<Long, Arena> hostAllocations = new HashMap<>();

    @Override
    public MemorySegment allocateHost(long bytes) {
        Arena a = Arena.ofShared();
        MemorySegment m = a.allocate(bytes, 64);
        hostAllocations.put(m.address(), a);
        return m;
    }

    @Override
    public void freeHost(MemorySegment host) {
        Arena a = hostAllocations.remove(host.address());
        if (a == null) throw new IllegalArgumentException("emulator: freeHost of memory never allocated");
        a.close();
    }

    @Override
    public void copyToDeviceAsync(long dst, MemorySegment src) {
        copyToDevice(dst, src);
    }

    @Override
    public void close() {
        for (Arena a : allocations.values()) a.close();
        allocations.clear();
        for (Arena a : hostAllocations.values()) a.close();
        hostAllocations.clear();
    }
}
