package gpt2.backend.cuda;

import gpt2.backend.BFloat16;
import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Dropout;
import gpt2.backend.Profile;
import org.bytedeco.cuda.global.cudart;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The CUDA backend: the ops as kernels from {@code kernels/*.cu} (compiled by NVRTC for this
 * GPU's architecture) and GEMMs (the linear layers and the attention's batched GEMMs through
 * cuBLAS). This class decides what runs and checks it; an {@link Executor} runs it: the GPU
 * ({@link GpuExecutor}), a dry run, or the tests' emulator that runs the kernels on the CPU.
 *
 * <p>Precision: float32 (cuBLAS's strict FP32, or TF32 tensor cores with --tensorcores 1), or
 * llm.c's bf16 mixed precision ({@code bf16}): activations, their gradients and the weights' compute
 * copy in bf16 (the kernels built with floatX = bf16, the GEMMs on bf16 tensor cores with float32
 * accumulation), and float32 master weights, parameter gradients, AdamW state, norm statistics,
 * losses and the gradient norm.
 *
 * <p>Every launch is checked against the kernel's parameter list read from its source
 * ({@link KernelCompiler#signatures}): the argument count, each scalar's type, and each pointer's
 * element type against the buffer passed; every GEMM checks its operands' types and extents. A
 * dry run ({@link #dryRun}) makes no CUDA call at all and runs only those checks, so the plumbing
 * of both precisions is tested on machines without a GPU; the tests' emulator runs the same kernel
 * sources compiled for the CPU against the CPU backend.
 *
 * <pre>
 * attention forward:  qkv (B,T,3C) -GEMM q.k^T, q and k read in place by pointer-> preatt -softmax-> att (saved)
 *                     -[dropout copy]-> att' -GEMM att'.v, v read in place-> out (B,T,C), each head into its columns
 * </pre>
 */
public final class CudaBackend implements Backend {

    private final int device;
    /** Where every call goes: the executor, or the graph layer over it. */
    private final Executor exec;
    private final Executor base;
    private final GraphExecutor graphs;
    private final boolean tf32;
    private final DType floatX;
    /** cuBLASLt epilogues: bias (and GELU) fused into the linear layers' GEMMs. */
    private final boolean fuseEpilogues;
    private final Launcher launcher;
    private final Profile profile;
    private final Map<String, CudaBuffer> scratch = new HashMap<>();
    /** Bytes of each allocation, for the profile's device-memory count. */
    private final Map<Long, Long> allocations = new HashMap<>();

    /** Why no GPU can be used here, or null when one can. */
    public static String unavailableReason() {
        try {
            int[] n = new int[1];
            int status = cudart.cudaGetDeviceCount(n);
            if (status != cudart.cudaSuccess) {
                return "cudaGetDeviceCount: " + cudart.cudaGetErrorString(status).getString();
            }
            return n[0] > 0 ? null : "no CUDA device found";
        } catch (Throwable t) {
            return loadFailure(t, java.nio.file.Path.of("/"));
        }
    }

    /**
     * Why the CUDA runtime could not be loaded, in the user's terms: on a machine with no NVIDIA
     * driver (no /proc/driver/nvidia, no /dev/nvidia0) that there is no GPU to use; with a driver,
     * that the CUDA 13 runtime library is missing and where it comes from. JavaCPP's own text follows
     * as the detail. {@code root}: the file system's root (a folder of its own in tests).
     */
    static String loadFailure(Throwable t, java.nio.file.Path root) {
        String detail = t.getClass().getSimpleName() + ": " + t.getMessage();
        boolean driver = java.nio.file.Files.exists(root.resolve("proc/driver/nvidia/version"))
                || java.nio.file.Files.exists(root.resolve("dev/nvidia0"));
        if (!driver) {
            return "no NVIDIA GPU or driver found on this machine (no /proc/driver/nvidia/version, no /dev/nvidia0); "
                    + "use --device cpu (detail: " + detail + ")";
        }
        return "an NVIDIA driver is present but the CUDA 13 runtime cannot be loaded; install the CUDA 13 toolkit, or put "
                + "the lib folders of NVIDIA's pip wheels (nvidia-cuda-runtime, nvidia-cublas, ...) on LD_LIBRARY_PATH "
                + "(detail: " + detail + ")";
    }

    public CudaBackend(int device, boolean tf32) {
        this(device, tf32, false);
    }

    /**
     * @param tf32 TF32 tensor cores for the float32 GEMMs
     * @param bf16 bf16 mixed precision (see the class comment); float32 throughout otherwise
     */
    public CudaBackend(int device, boolean tf32, boolean bf16) {
        this(device, tf32, bf16, "1".equals(System.getenv("GPT2_CUBLASLT")), gpu(device, tf32, bf16),
                "1".equals(System.getenv("GPT2_CUDA_GRAPHS")));
    }

    private static Executor gpu(int device, boolean tf32, boolean bf16) {
        String reason = unavailableReason();
        if (reason != null) throw new Cuda.CudaException("--device cuda: " + reason);
        return new GpuExecutor(device, tf32, bf16);
    }

    /**
     * A backend over an executor (the GPU, a dry run, the tests' CPU emulator); {@code fuseEpilogues}:
     * the linear layers' bias and the MLP's GELU in cuBLASLt's GEMM epilogues instead of separate
     * kernels. On a GPU they are opt-in (GPT2_CUBLASLT=1) until a GPU run has verified them: so far
     * only the CPU emulator and a dry run have.
     */
    CudaBackend(int device, boolean tf32, boolean bf16, boolean fuseEpilogues, Executor exec) {
        this(device, tf32, bf16, fuseEpilogues, exec, false);
    }

    /**
     * As above; {@code graphs}: training micro-batches captured into CUDA graphs and replayed
     * ({@link GraphExecutor}). On a GPU opt-in (GPT2_CUDA_GRAPHS=1) until a GPU run has verified it.
     */
    CudaBackend(int device, boolean tf32, boolean bf16, boolean fuseEpilogues, Executor exec, boolean graphs) {
        this.device = device;
        this.tf32 = tf32;
        this.fuseEpilogues = fuseEpilogues;
        this.floatX = bf16 ? DType.BF16 : DType.F32;
        this.base = exec;
        this.profile = new Profile();
        this.graphs = graphs ? new GraphExecutor(exec, profile) : null;
        this.exec = graphs ? this.graphs : exec;
        this.launcher = new Launcher(this.exec, floatX, profile);
    }

    /**
     * A backend that touches no GPU and loads no CUDA library: allocations get made-up addresses,
     * data is not moved (reads return zeros), and every launch and GEMM is checked as on a GPU and
     * then only recorded in {@link #trace()}. For testing the model's and this backend's plumbing.
     */
    public static CudaBackend dryRun(boolean bf16) {
        return new CudaBackend(-1, false, bf16, true, new DryExecutor(), "1".equals(System.getenv("GPT2_CUDA_GRAPHS")));
    }

    /** Dry run: the launches and GEMMs so far, in order ("kernel NAME" / "gemm TYPES ..."). */
    List<String> trace() {
        return ((DryExecutor) base).trace();
    }

    @Override
    public String name() {
        // a dry run has no device: it is named as what it is (the tests' emulator has none either, but runs)
        return (base instanceof DryExecutor ? "cuda dry run (no GPU, checked as " + exec.arch()
                : (device < 0 ? "cuda" : "cuda:" + device) + " (" + exec.deviceName() + ", " + exec.arch())
                + (floatX == DType.BF16 ? ", bf16 mixed precision" : ", float32")
                + (tf32 ? ", TF32 GEMMs" : floatX == DType.BF16 ? "" : ", FP32 GEMMs")
                + (fuseEpilogues ? ", cuBLASLt epilogues" : "") + (graphs != null ? ", CUDA graphs" : "") + ")";
    }

    /**
     * Whether the kernels may use bf16 mma.sync and ldmatrix: an sm_80 or newer GPU, or the CPU
     * emulator (arch "host"), which implements them.
     */
    boolean hasBf16Mma() {
        String arch = exec.arch();
        if (arch.equals("host")) return true;
        return arch.startsWith("sm_") && Integer.parseInt(arch.substring(3).replaceAll("\\D.*", "")) >= 80;
    }

    @Override
    public DType computeType() {
        return floatX;
    }

    @Override
    public String deviceName() {
        return exec.deviceName();
    }

    /**
     * The GPU's dense bf16 tensor-core peak in FLOP/s (the denominator of MFU, as llm.c), or NaN
     * when the device is not in the table.
     */
    @Override
    public double bf16PeakFlops() {
        return peakFor(exec.deviceName());
    }

    static double peakFor(String name) {
        String n = name.toUpperCase();
        if (n.contains("H100") || n.contains("H200") || n.contains("GH200")) {
            return n.contains("PCIE") ? 756e12 : 989e12;
        }
        if (n.contains("A100")) return 312e12;
        if (n.contains("L40S")) return 362e12;
        if (n.contains("A10G") || n.contains("A10 ")) return 125e12;
        return Double.NaN;
    }

    // ------------------------------------------------------------------ memory

    static long addr(Buffer b) {
        return Launcher.addr(b);
    }

    private static CudaBuffer cuda(Buffer b) {
        return Launcher.cuda(b);
    }

    static CudaBuffer expect(Buffer b, DType dtype, long elements, String what) {
        CudaBuffer cb = cuda(b);
        if (cb.dtype() != dtype || cb.length() < elements) {
            throw new IllegalArgumentException(what + ": a buffer of " + cb.length() + " x " + cb.dtype()
                    + " cannot hold " + elements + " x " + dtype);
        }
        return cb;
    }

    @Override
    public Buffer allocate(DType dtype, long length, String what) {
        long bytes = Math.max(4, length * dtype.bytes());
        long address = exec.allocate(bytes, what);
        allocations.put(address, bytes);
        profile.allocated(bytes);
        return new CudaBuffer(address, dtype, length, true);
    }

    @Override
    public void free(Buffer buffer) {
        settle();
        if (!(buffer instanceof CudaBuffer cb) || !cb.owner()) {
            throw new IllegalArgumentException("free: not an allocation of this backend (a slice?)");
        }
        release(cb.address());
    }

    private void release(long address) {
        Long bytes = allocations.remove(address);
        if (bytes != null) profile.allocated(-bytes);
        tokenMirrors.remove(address);
        TokenPlan plan = encoderPlans.remove(address);
        if (plan != null) release(plan.device.address());
        exec.free(address);
    }

    @Override
    public Profile profile() {
        return profile;
    }

    @Override
    public void setProfiling(boolean on) {
        launcher.setTiming(on);
    }

    /** Two probe allocations straight from the executor: not counted in the step's device memory. */
    @Override
    public double copyBandwidth(long bytes) {
        settle();
        long a = exec.allocate(bytes, "bandwidth probe"), b = exec.allocate(bytes, "bandwidth probe");
        try {
            exec.copyOnDevice(b, a, bytes); // warm-up
            int repeats = 5, m0 = exec.mark();
            for (int i = 0; i < repeats; i++) exec.copyOnDevice(b, a, bytes);
            int m1 = exec.mark();
            double ms = m0 < 0 ? Double.NaN : exec.elapsedMs(m0, m1);
            exec.clearMarks();
            return 2.0 * bytes * repeats / (ms / 1e3) / 1e9;
        } finally {
            hostSynchronize();
            exec.free(a);
            exec.free(b);
        }
    }

    @Override
    public long[] deviceMemoryInfo() {
        return exec.memoryInfo();
    }

    /** Host memory the small synchronous transfers (weights, losses, logits) go through, reused. */
    private Arena stagingArena;
    private MemorySegment staging = MemorySegment.NULL;

    private MemorySegment staging(long bytes) {
        if (staging.byteSize() < bytes) {
            if (stagingArena != null) stagingArena.close();
            stagingArena = Arena.ofShared();
            staging = stagingArena.allocate(Math.max(bytes, 1 << 16), 64);
        }
        return staging.asSlice(0, bytes);
    }

    /**
     * Uploads that must not stop the host (tokens, targets, the encoder's gradient plan) go through
     * a ring of pinned host memory with asynchronous copies. A slot is reused only after the device
     * has passed its copy: every host synchronization (a device-to-host copy, synchronize) empties
     * the ring, and the once-per-step read of the loss is one; a ring that fills up before that
     * waits for the device (counted) and grows, so the next steps fit.
     */
    private MemorySegment ring = MemorySegment.NULL;
    private long ringUsed;
    private static final long RING_MIN = 8L << 20;

    MemorySegment ringSlot(long bytes) {
        long need = (bytes + 255) / 256 * 256;
        if (ringUsed + need > ring.byteSize()) {
            if (ringUsed > 0) hostSynchronize();
            long size = Math.max(RING_MIN, Math.max(2 * ring.byteSize(), 2 * need));
            if (ring.byteSize() > 0) exec.freeHost(ring);
            ring = exec.allocateHost(size);
        }
        MemorySegment slot = ring.asSlice(ringUsed, bytes);
        ringUsed += need;
        return slot;
    }

    /** The host waits for the device: counted, and the upload ring is free again. */
    private void hostSynchronize() {
        exec.synchronize();
        hostSynced();
    }

    private void hostSynced() {
        profile.hostSync();
        ringUsed = 0;
    }

    private void copyToHost(MemorySegment host, long address) {
        exec.copyToHost(host, address);
        hostSynced();
    }

    /** A float32 or bf16 buffer's element type, checked to hold n elements. */
    private static CudaBuffer floats(Buffer b, long n, String what) {
        CudaBuffer cb = cuda(b);
        return expect(cb, cb.dtype() == DType.BF16 ? DType.BF16 : DType.F32, n, what);
    }

    @Override
    public void write(Buffer dst, float[] src) {
        settle();
        CudaBuffer d = floats(dst, src.length, "write");
        MemorySegment host = staging((long) src.length * d.dtype().bytes());
        if (d.dtype() == DType.BF16) {
            for (int i = 0; i < src.length; i++) host.setAtIndex(ValueLayout.JAVA_SHORT, i, BFloat16.fromFloat(src[i]));
        } else {
            MemorySegment.copy(src, 0, host, ValueLayout.JAVA_FLOAT, 0, src.length);
        }
        exec.copyToDevice(d.address(), host);
        hostSynced();
    }

    /** The host's copy of what was last written to each int buffer (tokens): the encoder's backward plan. */
    private final Map<Long, int[]> tokenMirrors = new HashMap<>();
    private final EncoderPlan encoderPlan = new EncoderPlan();

    /** Asynchronous (see the upload ring): tokens and targets go up without stopping the host. */
    @Override
    public void write(Buffer dst, int[] src) {
        settle();
        CudaBuffer d = expect(dst, DType.I32, src.length, "write");
        uploadAsync(d, src, src.length);
        int[] mirror = tokenMirrors.get(d.address());
        if (mirror == null || mirror.length != src.length) tokenMirrors.put(d.address(), mirror = new int[src.length]);
        System.arraycopy(src, 0, mirror, 0, src.length);
        if (encoderPlans.containsKey(d.address())) planEncoderBackward(d.address(), mirror, src.length);
    }

    /** A token buffer's encoder backward plan on the device, and its number of distinct tokens. */
    private static final class TokenPlan {
        CudaBuffer device;
        int n, distinct, length;
    }

    /**
     * Plans of the token buffers the encoder's backward has used: from then on made and uploaded
     * when the tokens are written, so the backward itself only launches (a graph can replay it).
     */
    private final Map<Long, TokenPlan> encoderPlans = new HashMap<>();

    private TokenPlan planEncoderBackward(long tokens, int[] host, int N) {
        TokenPlan t = encoderPlans.computeIfAbsent(tokens, a -> new TokenPlan());
        int[] plan = encoderPlan.of(host, N);
        int length = EncoderPlan.length(plan);
        if (t.device == null || t.device.length() < 3L * N + 2) {
            if (t.device != null) release(t.device.address());
            t.device = (CudaBuffer) allocate(DType.I32, 3L * N + 2, "encoder backward plan");
        }
        uploadAsync(t.device, plan, length);
        t.n = N;
        t.distinct = plan[0];
        t.length = length;
        return t;
    }

    @Override
    public void read(Buffer src, float[] dst) {
        settle();
        CudaBuffer s = floats(src, dst.length, "read");
        MemorySegment host = staging((long) dst.length * s.dtype().bytes());
        copyToHost(host, s.address());
        if (s.dtype() == DType.BF16) {
            for (int i = 0; i < dst.length; i++) dst[i] = BFloat16.toFloat(host.getAtIndex(ValueLayout.JAVA_SHORT, i));
        } else {
            MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, 0, dst, 0, dst.length);
        }
    }

    @Override
    public void copyToHost(Buffer src, MemorySegment dst) {
        settle();
        CudaBuffer s = cuda(src);
        if (dst.byteSize() != s.bytes()) throw new IllegalArgumentException("copyToHost: " + dst.byteSize() + " bytes for " + s.bytes());
        copyToHost(dst, s.address());
    }

    @Override
    public void copyFromHost(Buffer dst, MemorySegment src) {
        settle();
        CudaBuffer d = cuda(dst);
        if (src.byteSize() != d.bytes()) throw new IllegalArgumentException("copyFromHost: " + src.byteSize() + " bytes for " + d.bytes());
        exec.copyToDevice(d.address(), src);
        hostSynced();
    }

    @Override
    public void zero(Buffer buffer) {
        CudaBuffer b = cuda(buffer);
        settle();
        launcher.memoryOp("memset", b.bytes(), () -> exec.zero(b.address(), b.bytes()));
    }

    @Override
    public void copy(Buffer dst, Buffer src) {
        CudaBuffer d = cuda(dst), s = cuda(src);
        if (d.dtype() != s.dtype() || d.length() < s.length()) {
            throw new IllegalArgumentException("copy: " + s.length() + " x " + s.dtype() + " into " + d.length() + " x " + d.dtype());
        }
        settle();
        launcher.memoryOp("memcpy", 2 * s.bytes(), () -> exec.copyOnDevice(d.address(), s.address(), s.bytes()));
    }

    @Override
    public void convert(Buffer dst, Buffer src) {
        settle();
        CudaBuffer d = cuda(dst), s = cuda(src);
        if (s.dtype() == DType.F32 && d.dtype() == DType.F32) {
            copy(d, s);
        } else if (s.dtype() == DType.F32 && d.dtype() == DType.BF16 && d.length() == s.length()) {
            launch("to_bf16", s.length() * 6, blocks(s.length(), 256), 256, d, s, s.length());
        } else {
            throw new IllegalArgumentException("convert: " + s.length() + " x " + s.dtype() + " to " + d.length()
                    + " x " + d.dtype() + " (float32 to float32 or bf16 only)");
        }
    }

    /** A scratch buffer of at least n elements of a type, reused between calls. */
    CudaBuffer scratch(String name, DType dtype, long n) {
        CudaBuffer b = scratch.get(name);
        if (b == null || b.length() < n || b.dtype() != dtype) {
            if (b != null) release(b.address());
            b = (CudaBuffer) allocate(dtype, n, "scratch " + name);
            scratch.put(name, b);
        }
        return b;
    }

    // ------------------------------------------------------------------ launches

    static int blocks(long n, int threads) {
        return Launcher.blocks(n, threads);
    }

    /** Element bytes of the compute type. */
    long x() {
        return floatX.bytes();
    }

    /** Launches a kernel moving {@code bytes} (see {@link Launcher#kernel}). */
    void launch(String kernel, long bytes, int grid, int block, Object... args) {
        launch2(kernel, bytes, grid, 1, block, args);
    }

    /** A launch with a (gridX, gridY) grid. */
    void launch2(String kernel, long bytes, int grid, int gridY, int block, Object... args) {
        launchMatrix(kernel, bytes, 0, grid, gridY, block, args);
    }

    /** {@code kernel} uses {@code bytes} of dynamic shared memory (DYNAMIC_SHARED in its source). */
    void sharedMemory(String kernel, int bytes) {
        launcher.sharedMemory(kernel, bytes);
    }

    /** A launch doing {@code flops} of matrix work on the tensor cores (the profile reports its TFLOP/s). */
    void launchMatrix(String kernel, long bytes, double flops, int grid, int gridY, int block, Object... args) {
        sums.forget(); // a launch may overwrite the matrix whose column sums were offered
        launcher.kernel(kernel, bytes, flops, grid, gridY, block, args);
    }

    private static final boolean NO_T = false, TRANS = true;

    /**
     * Row-major GEMMs written as cuBLAS's column-major calls (see the callers for the
     * transpositions, as llm.c); float32 A and B: cublasSgemm (TF32 per the math mode); bf16:
     * cublasGemmEx on the tensor cores with float32 accumulation into bf16 or float32 C.
     */
    void gemm(String family, boolean transA, boolean transB, int m, int n, int k, Buffer A, int lda, Buffer B,
                      int ldb, Buffer C, int ldc, boolean accumulate) {
        sums.forget();
        launcher.gemm(family, new Launcher.Shape(transA, transB, m, n, k), A, lda, 0, B, ldb, 0, C, ldc, 0, 1, accumulate,
                null, false, null);
    }

    // ------------------------------------------------------------------ ops

    @Override
    public void encoderForward(Buffer out, Buffer tokens, Buffer wte, Buffer wpe, int B, int T, int C) {
        long n = (long) B * T * C;
        launch("encoder_forward", (wpe == null ? 2 : 3) * n * x() + 4L * B * T, blocks((long) B * T * ((C + pack() - 1) / pack()), 256), 256,
                out, tokens, wte, wpe, B, T, C);
    }

    /** Elements of the compute type in one 128-bit pack (the kernels' PACK). */
    int pack() {
        return (int) (16 / x());
    }

    /**
     * dwpe: one thread per (t, c) over the batch; dwte: the positions grouped by token on the host
     * (from the tokens as last written), one block per distinct token adding its positions in order:
     * parallel over tokens and channels, deterministic, no atomics. dwpe null (RoPE): no position table.
     */
    @Override
    public void encoderBackward(Buffer dwte, Buffer dwpe, Buffer dout, Buffer tokens, int B, int T, int C) {
        int N = B * T;
        int[] host = tokenMirrors.get(addr(tokens));
        if (host == null || host.length < N) {
            throw new IllegalStateException("encoder backward: the tokens were not written to this buffer with write(int[])");
        }
        TokenPlan plan = encoderPlans.get(addr(tokens));
        if (plan == null || plan.n != N) plan = planEncoderBackward(addr(tokens), host, N);
        long tc = (long) T * C;
        if (dwpe != null) launch("encoder_backward_wpe", (long) N * C * x() + 8 * tc, blocks(tc, 256), 256, dwpe, dout, B, T, C);
        int U = plan.distinct;
        launch("encoder_backward_wte", (long) N * C * x() + 8L * U * C + 4L * plan.length, U, 256, dwte, dout, plan.device, C);
    }

    @Override
    public void layerNormForward(Buffer out, Buffer mean, Buffer rstd, Buffer inp, Buffer weight, Buffer bias,
                                 int N, int C, float eps) {
        normForward(out, mean, rstd, null, inp, null, weight, bias, N, C, eps);
    }

    @Override
    public void rmsNormForward(Buffer out, Buffer rstd, Buffer inp, Buffer weight, int N, int C, float eps) {
        normForward(out, null, rstd, null, inp, null, weight, null, N, C, eps);
    }

    /** One kernel: res = a + b (when res is given), then the norm of it; one read, the writes once. */
    @Override
    public void residualLayerNormForward(Buffer res, Buffer out, Buffer mean, Buffer rstd, Buffer a, Buffer b,
                                         Buffer weight, Buffer bias, int N, int C, float eps) {
        normForward(out, mean, rstd, res, a, b, weight, bias, N, C, eps);
    }

    @Override
    public void residualRmsNormForward(Buffer res, Buffer out, Buffer rstd, Buffer a, Buffer b, Buffer weight, int N,
                                       int C, float eps) {
        normForward(out, null, rstd, res, a, b, weight, null, N, C, eps);
    }

    private void normForward(Buffer out, Buffer mean, Buffer rstd, Buffer res, Buffer a, Buffer b, Buffer weight,
                             Buffer bias, int N, int C, float eps) {
        long rows = (long) N * C * x();
        launch("norm_forward", (res == null ? 2 : 4) * rows + (weight == null ? 0 : 2L * C * x()) + 8L * N, blocks(N, 8), 256,
                out, mean, rstd, res, a, b, weight, bias, N, C, eps);
    }

    @Override
    public void layerNormBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                                  Buffer mean, Buffer rstd, int N, int C) {
        normBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    }

    @Override
    public void rmsNormBackward(Buffer dinp, Buffer dweight, Buffer dout, Buffer inp, Buffer weight, Buffer rstd,
                                int N, int C) {
        normBackward(dinp, dweight, null, dout, inp, weight, null, rstd, N, C);
    }

    /** Rows per block of the chunked column reductions (NORM_ROWS, GELU_ROWS, BIAS_ROWS in the kernels). */
    private static final int CHUNK_ROWS = 32;

    /** The second stage of the parameter-gradient sums, queued and batched (see {@link GradientSums}). */
    private final GradientSums sums = new GradientSums(new GradientSums.Host() {
        @Override
        public CudaBuffer allocate(DType dtype, long n, String what) {
            return (CudaBuffer) CudaBackend.this.allocate(dtype, n, what);
        }

        @Override
        public void uploadAsync(CudaBuffer dst, long[] values) {
            CudaBackend.this.uploadAsync(dst, values);
        }

        @Override
        public void launch(String kernel, long bytes, int grid, int gridY, int block, Object... args) {
            launcher.kernel(kernel, bytes, grid, gridY, block, args);
        }
    });

    /** Before the host or a memory operation touches what the queued sums write or read. */
    void settle() {
        sums.forget();
        sums.flush();
    }

    /** The queued parameter-gradient sums are added now (the model calls this after each layer's backward). */
    @Override
    public void flush() {
        sums.flush();
    }

    /**
     * dinp +=, and into a slot the chunks' column sums of the weight gradient, the bias gradient and
     * the new dinp, in one kernel over chunks of rows; the first two are queued, the third offered
     * to the next linear layer's bias (it reads dinp as its dout).
     */
    private void normBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                              Buffer mean, Buffer rstd, int N, int C) {
        int chunks = (N + CHUNK_ROWS - 1) / CHUNK_ROWS;
        CudaBuffer partial = sums.slot(3L * chunks * C);
        launch("norm_backward", 4L * N * C * x() + 8L * N + 12L * chunks * C, chunks, 128,
                dinp, partial, dout, inp, weight, mean, rstd, N, C);
        sums.add(dweight, partial, 0, C, 3 * C, chunks);
        sums.add(dbias, partial, C, C, 3 * C, chunks);
        sums.offer(new GradientSums.ColumnSums(addr(dinp), N, C, partial, 2L * C, 3 * C, chunks));
    }

    @Override
    public void matmulForward(Buffer out, Buffer inp, Buffer weight, Buffer bias, int N, int C, int OC) {
        // column-major: out^T (OC,N) = W (OC,C) [stored (C,OC), op T] x inp^T (C,N); bias per row of out^T
        if (bias != null && epilogueGemm(out, null, inp, weight, bias, false, N, C, OC)) return;
        gemm("linear fwd", TRANS, NO_T, OC, N, C, weight, C, inp, C, out, OC, false);
        if (bias != null) launch("add_bias", 2L * N * OC * x() + OC * x(), blocks((long) N * OC, 256 * pack()), 256, out, bias, N, OC);
    }

    /** One GEMM with the bias and GELU in cuBLASLt's epilogue, when it can take these buffers. */
    @Override
    public void matmulGeluForward(Buffer out, Buffer pre, Buffer inp, Buffer weight, Buffer bias, int N, int C, int OC) {
        if (epilogueGemm(out, pre, inp, weight, bias, true, N, C, OC)) return;
        matmulForward(pre, inp, weight, bias, N, C, OC);
        geluForward(out, pre, (long) N * OC);
    }

    /**
     * out (N,OC) = inp @ W^T + bias, with gelu GELU of it (pre-activation into pre), as one GEMM with
     * cuBLASLt's epilogue, when enabled, every pointer is 16-byte aligned, the leading dimensions are
     * multiples of 8 (what cuBLASLt's fast kernels need) and cuBLASLt has an algorithm for the shape;
     * false otherwise, and the caller runs the same arithmetic as a GEMM plus kernels.
     */
    private boolean epilogueGemm(Buffer out, Buffer pre, Buffer inp, Buffer weight, Buffer bias, boolean gelu, int N, int C,
                                 int OC) {
        if (!fuseEpilogues || C % 8 != 0 || OC % 8 != 0) return false;
        for (Buffer b : new Buffer[]{out, inp, weight, bias, pre}) if (b != null && addr(b) % 16 != 0) return false;
        // column-major: out^T (OC,N) = W (OC,C) [stored (C,OC), op T] x inp^T (C,N); bias per row of out^T
        Launcher.Shape shape = new Launcher.Shape(TRANS, NO_T, OC, N, C);
        if (!launcher.epilogueAvailable(shape, weight, C, inp, C, out, OC, bias, gelu, pre)) return false;
        sums.forget();
        launcher.gemm(gelu ? "linear fwd (+bias+gelu)" : "linear fwd (+bias)", shape, weight, C, 0, inp, C, 0, out, OC, 0, 1,
                false, bias, gelu, pre);
        return true;
    }

    @Override
    public void matmulBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                               int N, int C, int OC) {
        // the column sums of dout, when the kernel that wrote it (a norm's or GELU's backward) made them
        GradientSums.ColumnSums cs = sums.claim(addr(dout), N, OC);
        // dinp^T (C,N) = W^T (C,OC) x dout^T (OC,N)
        gemm("linear dinp", NO_T, NO_T, C, N, OC, weight, C, dout, OC, dinp, C, false);
        // dW^T (C,OC) += inp^T (C,N) x dout (N,OC), into the float32 gradient
        expect(dweight, DType.F32, (long) OC * C, "matmul dweight (parameter gradients are float32)");
        gemm("linear dweight", NO_T, TRANS, C, OC, N, inp, C, dout, OC, dweight, C, true);
        if (dbias == null) return;
        if (cs == null) {
            int chunks = (N + CHUNK_ROWS - 1) / CHUNK_ROWS;
            CudaBuffer partial = sums.slot((long) chunks * OC);
            launch("bias_partial", (long) N * OC * x() + 4L * chunks * OC, chunks, 128, partial, dout, N, OC);
            cs = new GradientSums.ColumnSums(addr(dout), N, OC, partial, 0, OC, chunks);
        }
        sums.add(dbias, cs.partial(), cs.offset(), OC, cs.stride(), cs.chunks());
    }

    /**
     * With graphs on and no per-call timing: the segment is captured or replayed (GraphExecutor).
     * Timing needs events around every call, so a profiled step runs its calls one by one.
     */
    @Override
    public void beginReplayable(String key) {
        if (graphs != null && !launcher.timing()) {
            settle();
            graphs.begin(key);
        }
    }

    @Override
    public boolean replaysSegments() {
        return graphs != null;
    }

    @Override
    public void endReplayable() {
        if (graphs != null) {
            settle();
            graphs.end();
        }
    }

    /** The GPU stream all of this backend's work goes to (null without a GPU). */
    org.bytedeco.cuda.cudart.CUstream_st stream() {
        return base instanceof GpuExecutor g ? g.stream() : null;
    }

    /** Attention: materialized (batched GEMMs by pointer + softmax kernels), flash, KV-cache decoding. */
    private final CudaAttention attention = new CudaAttention(this);

    CudaAttention attention() {
        return attention;
    }

    @Override
    public void attentionForward(Buffer out, Buffer att, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        attention.forward(out, att, qkv, B, T, C, NH, dropout);
    }

    @Override
    public void attentionBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer att, int B, int T, int C, int NH,
                                  Dropout dropout) {
        attention.backward(dqkv, dout, qkv, att, B, T, C, NH, dropout);
    }

    @Override
    public boolean hasFlashAttention() {
        return true;
    }

    @Override
    public void flashAttentionForward(Buffer out, Buffer lse, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        attention.flashForward(out, lse, qkv, B, T, C, NH, dropout);
    }

    @Override
    public void flashAttentionBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer out, Buffer lse, int B, int T, int C,
                                       int NH, Dropout dropout) {
        attention.flashBackward(dqkv, dout, qkv, out, lse, B, T, C, NH, dropout);
    }

    @Override
    public void attentionDecode(Buffer out, Buffer qkv, Buffer kcache, Buffer vcache, int B, int pos, int maxT, int C,
                                int NH) {
        attention.decode(out, qkv, kcache, vcache, B, pos, maxT, C, NH);
    }

    /** A batched GEMM over pointer tables (see {@link Launcher#gemmPointers}). */
    void gemmPointers(String family, boolean transA, boolean transB, int m, int n, int k, PointerTable A, int lda,
                      PointerTable B, int ldb, PointerTable C, int ldc) {
        sums.forget();
        launcher.gemmPointers(family, new Launcher.Shape(transA, transB, m, n, k), A, lda, B, ldb, C, ldc);
    }

    /** Copies values to a device buffer without the host waiting (the upload ring). */
    void uploadAsync(CudaBuffer dst, long[] values) {
        MemorySegment slot = ringSlot(8L * values.length);
        MemorySegment.copy(values, 0, slot, ValueLayout.JAVA_LONG, 0, values.length);
        exec.copyToDeviceAsync(dst.address(), slot);
    }

    /** Floats the same way (the rope tables). */
    void uploadAsync(CudaBuffer dst, float[] values) {
        MemorySegment slot = ringSlot(4L * values.length);
        MemorySegment.copy(values, 0, slot, ValueLayout.JAVA_FLOAT, 0, values.length);
        exec.copyToDeviceAsync(dst.address(), slot);
    }

    /** The first n values, the same way. */
    private void uploadAsync(CudaBuffer dst, int[] values, int n) {
        MemorySegment slot = ringSlot(4L * n);
        MemorySegment.copy(values, 0, slot, ValueLayout.JAVA_INT, 0, n);
        exec.copyToDeviceAsync(dst.address(), slot);
    }

    @Override
    public void geluForward(Buffer out, Buffer inp, long N) {
        launch("gelu_forward", 2 * N * x(), blocks(N, 256 * pack()), 256, out, inp, N);
    }

    @Override
    public void geluBackward(Buffer dinp, Buffer inp, Buffer dout, long N) {
        launch("gelu_backward", 3 * N * x(), blocks(N, 256 * pack()), 256, dinp, inp, dout, N);
    }

    /** GELU's backward and the column sums of its output for the next linear layer's bias, in one pass. */
    @Override
    public void geluBackward(Buffer dinp, Buffer inp, Buffer dout, int rows, int cols) {
        int chunks = (rows + CHUNK_ROWS - 1) / CHUNK_ROWS;
        CudaBuffer partial = sums.slot((long) chunks * cols);
        launch("gelu_backward_colsum", 3L * rows * cols * x() + 4L * chunks * cols, chunks, 128, dinp, partial, inp, dout,
                rows, cols);
        sums.offer(new GradientSums.ColumnSums(addr(dinp), rows, cols, partial, 0, cols, chunks));
    }

    @Override
    public void reluSquaredForward(Buffer out, Buffer inp, long N) {
        launch("relu2_forward", 2 * N * x(), blocks(N, 256 * pack()), 256, out, inp, N);
    }

    /**
     * Unlike GELU's, no column sums for the next linear layer's bias: the MLP's bias gradient then
     * takes its own pass (bias_partial), as after any kernel that offers none.
     */
    @Override
    public void reluSquaredBackward(Buffer dinp, Buffer inp, Buffer dout, long N) {
        launch("relu2_backward", 3 * N * x(), blocks(N, 256 * pack()), 256, dinp, inp, dout, N);
    }

    /** QK-norm and RoPE (see {@link CudaRope}). */
    private final CudaRope rope = new CudaRope(this);

    @Override
    public void qkNormRopeForward(Buffer qkv, Buffer rstd, int B, int T, int C, int NH, int pos0, float ropeTheta,
                                  float eps) {
        rope.forward(qkv, rstd, B, T, C, NH, pos0, ropeTheta, eps);
    }

    @Override
    public void qkNormRopeBackward(Buffer dqkv, Buffer qkv, Buffer rstd, int B, int T, int C, int NH, float ropeTheta) {
        rope.backward(dqkv, qkv, rstd, B, T, C, NH, ropeTheta);
    }

    @Override
    public void residualForward(Buffer out, Buffer inp1, Buffer inp2, long N) {
        launch("residual_forward", 3 * N * x(), blocks(N, 256 * pack()), 256, out, inp1, inp2, N);
    }

    @Override
    public void dropout(Buffer x, long N, Dropout d) {
        if (d == null || d.isOff()) return;
        launch("dropout", 2 * N * x(), blocks(N, 256 * pack()), 256, x, x, N, d.p(), d.key());
    }

    /** One block of 1024 threads per row of the logits. */
    private static final int ROW_THREADS = 1024;

    @Override
    public void crossEntropyForward(Buffer losses, Buffer logits, Buffer targets, int N, int V, int Vp) {
        launch("crossentropy_forward", (long) N * V * x() + 8L * N, N, ROW_THREADS, losses, logits, targets, N, V, Vp);
    }

    @Override
    public void crossEntropyBackward(Buffer logits, Buffer targets, float dloss, int N, int V, int Vp, float softcap) {
        crossEntropyFused(scratch("ce_losses", DType.F32, N), logits, targets, dloss, N, V, Vp, softcap);
    }

    @Override
    public void crossEntropyFused(Buffer losses, Buffer logits, Buffer targets, float dloss, int N, int V, int Vp,
                                  float softcap) {
        if (softcap < 0) throw new IllegalArgumentException("softcap must be >= 0 (0 = off), got " + softcap);
        launch("classifier_fused", 2L * N * Vp * x() + 8L * N, N, ROW_THREADS, losses, logits, targets, dloss, N, V, Vp,
                softcap);
    }

    @Override
    public void softcapForward(Buffer logits, long N, float cap) {
        if (!(cap > 0)) throw new IllegalArgumentException("softcap must be > 0, got " + cap);
        launch("softcap_forward", 2 * N * x(), blocks(N, 256 * pack()), 256, logits, N, cap);
    }

    @Override
    public void addSum(Buffer acc, Buffer x, float scale, int n) {
        expect(acc, DType.F32, 1, "addSum accumulator");
        expect(x, DType.F32, n, "addSum input");
        launch("loss_accumulate", 4L * n + 8, 1, ROW_THREADS, acc, x, n, scale);
    }

    private static final int SUM_THREADS = 512, SUM_MAX_BLOCKS = 1024;

    @Override
    public void sumOfSquares(Buffer out, Buffer x) {
        settle(); // the gradients must be whole
        expect(out, DType.F32, 1, "sumOfSquares result");
        long n = expect(x, DType.F32, x.length(), "sumOfSquares input").length();
        int grid = (int) Math.min(SUM_MAX_BLOCKS, Math.max(1, n / (SUM_THREADS * 16L)));
        CudaBuffer partial = scratch("sum_partial", DType.F32, SUM_MAX_BLOCKS);
        launch("sum_squares_partial", 4 * n + 4L * grid, grid, SUM_THREADS, partial, x, n);
        launch("sum_squares_final", 4L * grid + 4, 1, 32, out, partial, grid);
    }

    @Override
    public double sumOfSquares(Buffer x) {
        CudaBuffer out = scratch("sum_out", DType.F32, 1);
        sumOfSquares(out, x);
        float[] r = new float[1];
        read(out, r);
        return r[0];
    }

    /** A device copy of AdamW's runs: made once for the arrays an optimizer passes every step. */
    private record RunTable(long[] ends, boolean[] decay, CudaBuffer device) {
    }

    private final List<RunTable> runTables = new java.util.ArrayList<>();

    /** One launch over every parameter (see loss.cu's adamw), writing the compute copy in the same pass. */
    @Override
    public void adamw(Buffer params, Buffer grads, Buffer m, Buffer v, Buffer copy, long[] runEnds, boolean[] decay,
                      float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale, int t) {
        long n = params.length();
        if (runEnds.length == 0 || runEnds[runEnds.length - 1] != n) {
            throw new IllegalArgumentException("adamw: " + runEnds.length + " runs ending at "
                    + (runEnds.length == 0 ? "-" : runEnds[runEnds.length - 1]) + " for " + n + " parameters (runs must cover them)");
        }
        if (copy != null) expect(copy, floatX, n, "adamw compute copy");
        adamwLaunch(params, grads, m, v, copy, runTable(runEnds, decay), runEnds.length, lr, beta1, beta2, eps, weightDecay,
                gradScale, t);
    }

    /** The device table of these runs (end | decay bit 62), uploaded the first time they are seen. */
    private CudaBuffer runTable(long[] ends, boolean[] decay) {
        for (RunTable r : runTables) {
            if (java.util.Arrays.equals(r.ends(), ends) && java.util.Arrays.equals(r.decay(), decay)) return r.device();
        }
        long[] encoded = new long[ends.length];
        for (int r = 0; r < ends.length; r++) encoded[r] = ends[r] | (decay[r] ? 1L << 62 : 0L);
        CudaBuffer device = (CudaBuffer) allocate(DType.I64, ends.length, "AdamW run table");
        uploadAsync(device, encoded);
        runTables.add(new RunTable(ends.clone(), decay.clone(), device));
        return device;
    }

    @Override
    public void adamw(Buffer params, Buffer grads, Buffer m, Buffer v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, float gradScale, int t) {
        adamwLaunch(params, grads, m, v, null, null, 0, lr, beta1, beta2, eps, weightDecay, gradScale, t);
    }

    private void adamwLaunch(Buffer params, Buffer grads, Buffer m, Buffer v, Buffer copy, Buffer table, int runs, float lr,
                             float beta1, float beta2, float eps, float weightDecay, float gradScale, int t) {
        settle(); // the gradients must be whole
        float bc1 = 1f - (float) Math.pow(beta1, t), bc2 = 1f - (float) Math.pow(beta2, t);
        long n = params.length();
        if (grads.length() != n || m.length() != n || v.length() != n) {
            throw new IllegalArgumentException("adamw: params, grads, m and v differ in length");
        }
        launch("adamw", n * 28 + (copy == null ? 0 : n * x()), blocks(n, 256), 256, params, grads, m, v, copy, table, runs, n,
                lr, beta1, beta2, eps, weightDecay, gradScale, bc1, bc2);
    }

    /** Muon's momentum, Newton–Schulz and axpy (see {@link CudaMuon}). */
    private final CudaMuon muon = new CudaMuon(this);

    @Override
    public void muonMomentum(Buffer grads, Buffer buf, float momentum, float gradScale) {
        muon.momentum(grads, buf, momentum, gradScale);
    }

    @Override
    public void newtonSchulz(Buffer x, int rows, int cols, int steps) {
        muon.newtonSchulz(x, rows, cols, steps);
    }

    @Override
    public void axpy(Buffer y, Buffer x, float alpha, long n) {
        muon.axpy(y, x, alpha, n);
    }

    /** Waits for the GPU (for timing). */
    @Override
    public void synchronize() {
        settle();
        hostSynchronize();
    }

    @Override
    public void close() {
        settle();
        for (CudaBuffer b : sums.allocations()) exec.free(b.address());
        for (CudaBuffer b : scratch.values()) exec.free(b.address());
        for (TokenPlan t : encoderPlans.values()) exec.free(t.device.address());
        for (RunTable r : runTables) exec.free(r.device().address());
        for (CudaBuffer b : attention.allocations()) exec.free(b.address());
        for (CudaBuffer b : rope.allocations()) exec.free(b.address());
        scratch.clear();
        runTables.clear();
        if (stagingArena != null) stagingArena.close();
        if (ring.byteSize() > 0) exec.freeHost(ring);
        exec.close();
    }
}
