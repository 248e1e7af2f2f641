package gpt2.backend.cuda;

import gpt2.backend.DType;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cudart.CUDA_KERNEL_NODE_PARAMS_v2;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraphNode_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static gpt2.backend.RawPointer.at;
import static gpt2.backend.RawPointer.floats;
import static gpt2.backend.RawPointer.table;
import static gpt2.backend.cuda.Cuda.check;
import static gpt2.backend.cuda.Cuda.checkBlas;
import static gpt2.backend.cuda.Cuda.checkDriver;

/**
 * The GPU: device memory through the CUDA runtime, kernels (NVRTC-built CUBIN for this GPU's
 * architecture, floatX = float or bf16) through the driver API, GEMMs through cuBLAS (cuBLASLt for
 * those with a bias or GELU epilogue). Every call
 * is checked; GPT2_CUDA_SYNC=1 synchronizes after each launch so an asynchronous error names its
 * kernel. All work goes to one stream of ours (a blocking one, so the synchronous copies on the
 * legacy default stream still wait for it and it for them), which a stream capture can record
 * into a CUDA graph ({@link #beginCapture}).
 */
final class GpuExecutor implements Executor {
    private final String deviceName, arch;
    private final cublasContext blas = new cublasContext();
    private final Map<String, CUfunc_st> kernels = new HashMap<>();
    private final FloatPointer one = new FloatPointer(1f), zero = new FloatPointer(0f);
    private final boolean syncEachLaunch = System.getenv("GPT2_CUDA_SYNC") != null;
    private final boolean tf32;
    private final cublasLtContext lt = new cublasLtContext();
    private static final long LT_WORKSPACE = 32L << 20;
    private long ltWorkspace, blasWorkspace;
    private final CUstream_st stream = new CUstream_st();

    GpuExecutor(int device, boolean tf32, boolean bf16) {
        this.tf32 = tf32;
        check(cudart.cudaSetDevice(device), "cudaSetDevice(" + device + ")");
        check(cudart.cudaFree(null), "cudaFree(null) (context creation)");
        cudaDeviceProp prop = new cudaDeviceProp();
        check(cudart.cudaGetDeviceProperties(prop, device), "cudaGetDeviceProperties");
        deviceName = prop.name().getString();
        arch = "sm_" + prop.major() + prop.minor();
        checkBlas(cublas.cublasCreate_v2(blas), "cublasCreate");
        // pedantic math keeps float32 GEMMs strictly FP32 but would also keep bf16 GEMMs off the tensor
        // cores; the default mode uses them for bf16 and never lowers float32 to TF32
        int mathMode = tf32 ? cublas.CUBLAS_TF32_TENSOR_OP_MATH : bf16 ? cublas.CUBLAS_DEFAULT_MATH : cublas.CUBLAS_PEDANTIC_MATH;
        checkBlas(cublas.cublasSetMathMode(blas, mathMode), "cublasSetMathMode");
        checkBlas(cublas.cublasLtCreate(lt), "cublasLtCreate");
        ltWorkspace = allocate(LT_WORKSPACE, "cuBLASLt workspace");
        int flags = gpt2.backend.Faults.on("nonblocking-stream") ? cudart.cudaStreamNonBlocking : cudart.cudaStreamDefault;
        check(cudart.cudaStreamCreateWithFlags(stream, flags), "cudaStreamCreateWithFlags");
        checkBlas(cublas.cublasSetStream_v2(blas, stream), "cublasSetStream");
        // a workspace of our own (set after the stream, which resets it): nothing allocated while capturing
        blasWorkspace = allocate(LT_WORKSPACE, "cuBLAS workspace");
        checkBlas(cublas.cublasSetWorkspace_v2(blas, at(blasWorkspace), LT_WORKSPACE), "cublasSetWorkspace");
        for (String family : KernelCompiler.FAMILIES) {
            byte[] bin = KernelCompiler.cubin(family, arch, bf16, KernelCompiler.defaultCacheDir());
            CUmod_st module = new CUmod_st();
            checkDriver(cudart.cuModuleLoadData(module, new BytePointer(bin)), "cuModuleLoadData(" + family + ")");
            for (String name : KernelCompiler.kernelNames(family)) {
                CUfunc_st f = new CUfunc_st();
                checkDriver(cudart.cuModuleGetFunction(f, module, name), "cuModuleGetFunction(" + name + ")");
                kernels.put(name, f);
            }
        }
    }

    @Override public String deviceName() { return deviceName; }
    @Override public String arch() { return arch; }

    @Override
    public long allocate(long bytes, String what) {
        Pointer p = new Pointer();
        int status = cudart.cudaMalloc(p, bytes);
        if (status == cudart.cudaErrorMemoryAllocation) {
            cudart.cudaGetLastError();
            throw new Cuda.CudaException("out of GPU memory allocating " + what + " (" + (bytes >> 20)
                    + " MiB); try a smaller --batch_size");
        }
        check(status, "cudaMalloc(" + what + ", " + bytes + " bytes)");
        check(cudart.cudaMemset(p, 0, bytes), "cudaMemset(" + what + ")");
        return p.address();
    }

    @Override
    public void free(long address) {
        check(cudart.cudaFree(at(address)), "cudaFree");
    }

    @Override
    public void zero(long address, long bytes) {
        check(cudart.cudaMemsetAsync(at(address), 0, bytes, stream), "cudaMemsetAsync");
    }

    @Override
    public void copyToDevice(long dst, MemorySegment src) {
        check(cudart.cudaMemcpy(at(dst), at(src.address()), src.byteSize(), cudart.cudaMemcpyHostToDevice),
                "cudaMemcpy(host to device)");
    }

    @Override
    public void copyToHost(MemorySegment dst, long src) {
        check(cudart.cudaMemcpy(at(dst.address()), at(src), dst.byteSize(), cudart.cudaMemcpyDeviceToHost),
                "cudaMemcpy(device to host)");
    }

    @Override
    public void copyOnDevice(long dst, long src, long bytes) {
        check(cudart.cudaMemcpyAsync(at(dst), at(src), bytes, cudart.cudaMemcpyDeviceToDevice, stream),
                "cudaMemcpyAsync(device to device)");
    }

    /**
     * cuLaunchKernel's argument array, made once: slot i (8 bytes) holds argument i, and params[i]
     * points at slot i. A 4-byte int or float sits in the slot's first bytes (little-endian), which
     * is where the driver reads it. (Allocating them per launch cost native allocations on every
     * one of a step's hundreds of launches.)
     */
    private static final int MAX_ARGS = 16;
    private final LongPointer argSlots = new LongPointer(MAX_ARGS);
    private final PointerPointer<Pointer> argPointers = new PointerPointer<>(MAX_ARGS);

    {
        for (int i = 0; i < MAX_ARGS; i++) argPointers.put(i, at(argSlots.address() + 8L * i));
    }

    /** The stand-ins' view hook when they are the CUDA here, else null (see {@link StandinViews}). */
    private final StandinViews views = StandinViews.find();

    /** Puts a launch's arguments into the argument slots (and tells the stand-ins its buffer views). */
    private void arguments(String kernel, Object[] args) {
        if (args.length > MAX_ARGS) throw new IllegalArgumentException(kernel + ": more than " + MAX_ARGS + " arguments");
        for (int i = 0; i < args.length; i++) {
            argSlots.put(i, switch (args[i]) {
                case DevicePointer p -> p.address();
                case Long l -> l;
                case Integer n -> n & 0xffffffffL;
                case Float x -> Float.floatToRawIntBits(x) & 0xffffffffL;
                default -> throw new IllegalArgumentException(kernel + ": unsupported argument " + args[i]);
            });
        }
        if (views != null) views.next(args);
    }

    /** Dynamic shared memory per kernel (absent: none). */
    private final Map<String, Integer> shared = new HashMap<>();

    @Override
    public void sharedMemory(String kernel, int bytes) {
        if (bytes > 48 * 1024) {
            checkDriver(cudart.cuFuncSetAttribute(kernels.get(kernel), cudart.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    bytes), "cuFuncSetAttribute(" + kernel + ", " + bytes + " bytes of shared memory)");
        }
        shared.put(kernel, bytes);
    }

    @Override
    public void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args) {
        arguments(kernel, args);
        checkDriver(cudart.cuLaunchKernel(kernels.get(kernel), grid, gridY, 1, block, 1, 1, shared.getOrDefault(kernel, 0),
                stream, argPointers, null), "cuLaunchKernel(" + kernel + ")");
        if (capture != null) capture.add(new CapturedLaunch(kernel, block, lastCapturedNode()));
        synchronizeIfAsked("kernel " + kernel);
    }

    /** With GPT2_CUDA_SYNC set, waits for the call just queued so an asynchronous error names it (not while capturing). */
    private void synchronizeIfAsked(String what) {
        if (syncEachLaunch && capture == null) check(cudart.cudaDeviceSynchronize(), what);
    }

    // ---------------------------------------------------------------- CUDA graphs

    /** A kernel launch in a capture: its node, to update its arguments later. */
    private record CapturedLaunch(String kernel, int block, CUgraphNode_st node) {
    }

    /** The launches of the capture in progress, or null. */
    private List<CapturedLaunch> capture;

    @Override
    public boolean beginCapture() {
        checkDriver(cudart.cuStreamBeginCapture(stream, cudart.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
        capture = new java.util.ArrayList<>();
        return true;
    }

    /** The node the last call added to the capture (in a one-stream capture, the stream's one dependency). */
    private CUgraphNode_st lastCapturedNode() {
        try (PointerPointer<Pointer> deps = new PointerPointer<>(1); SizeTPointer n = new SizeTPointer(1);
             IntPointer status = new IntPointer(1)) {
            checkDriver(cudart.cuStreamGetCaptureInfo(stream, status, (LongPointer) null, (CUgraph_st) null, deps,
                    (PointerPointer<?>) null, n), "cuStreamGetCaptureInfo");
            if (n.get() != 1) throw new Cuda.CudaException("stream capture: " + n.get() + " dependencies after a launch, expected 1");
            // dependencies_out is @ByPtrPtr: JavaCPP passes the address of a pointer and then points deps
            // itself at what the driver wrote there, the array of nodes; its first entry is the node
            return new CUgraphNode_st(deps.get(0));
        }
    }

    @Override
    public Graph endCapture() {
        List<CapturedLaunch> launches = capture;
        capture = null;
        CUgraph_st graph = new CUgraph_st();
        int status = cudart.cuStreamEndCapture(stream, graph);
        if (status != 0) {
            cudart.cudaGetLastError();
            checkDriver(status, "cuStreamEndCapture");
        }
        CUgraphExec_st instance = new CUgraphExec_st();
        int inst = cudart.cuGraphInstantiate(instance, graph, 0);
        if (inst != 0) {
            cudart.cuGraphDestroy(graph);
            checkDriver(inst, "cuGraphInstantiate");
        }
        return new Graph() {
            private final CUDA_KERNEL_NODE_PARAMS_v2 params = new CUDA_KERNEL_NODE_PARAMS_v2();

            @Override
            public void update(int launch, int grid, int gridY, Object[] args) {
                CapturedLaunch l = launches.get(launch);
                arguments(l.kernel(), args);
                params.func(kernels.get(l.kernel())).gridDimX(grid).gridDimY(gridY).gridDimZ(1)
                        .blockDimX(l.block()).blockDimY(1).blockDimZ(1).sharedMemBytes(shared.getOrDefault(l.kernel(), 0))
                        .kernelParams(argPointers).extra((PointerPointer<?>) null).kern(null).ctx(null);
                checkDriver(cudart.cuGraphExecKernelNodeSetParams(instance, l.node(), params),
                        "cuGraphExecKernelNodeSetParams(" + l.kernel() + ")");
            }

            @Override
            public void launch() {
                checkDriver(cudart.cuGraphLaunch(instance, stream), "cuGraphLaunch");
                synchronizeIfAsked("CUDA graph");
            }

            @Override
            public void close() {
                cudart.cuGraphExecDestroy(instance);
                cudart.cuGraphDestroy(graph);
                params.close();
            }
        };
    }

    @Override
    public void gemm(Gemm g) {
        if (g.hasEpilogue()) {
            gemmLt(g);
            return;
        }
        int opA = g.transA() ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N, opB = g.transB() ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N;
        FloatPointer beta = g.accumulate() ? one : zero;
        if (g.pointerArrays()) {
            // a, b, c: device arrays of device pointers (the matrices lie anywhere, e.g. heads inside qkv)
            // (the PointerPointer overloads: they pass the tables' device addresses as the arrays)
            if (g.in() == DType.F32) {
                checkBlas(cublas.cublasSgemmBatched(blas, opA, opB, g.m(), g.n(), g.k(), one, table(g.a()), g.lda(),
                        table(g.b()), g.ldb(), beta, table(g.c()), g.ldc(), g.batch()), "cublasSgemmBatched");
            } else {
                int ct = g.out() == DType.BF16 ? cudart.CUDA_R_16BF : cudart.CUDA_R_32F;
                checkBlas(cublas.cublasGemmBatchedEx(blas, opA, opB, g.m(), g.n(), g.k(), one, table(g.a()), cudart.CUDA_R_16BF,
                        g.lda(), table(g.b()), cudart.CUDA_R_16BF, g.ldb(), beta, table(g.c()), ct, g.ldc(), g.batch(),
                        cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT), "cublasGemmBatchedEx(bf16)");
            }
            synchronizeIfAsked("batched GEMM");
            return;
        }
        if (g.in() == DType.F32) {
            if (g.batch() == 1) {
                checkBlas(cublas.cublasSgemm_v2(blas, opA, opB, g.m(), g.n(), g.k(), one, floats(g.a()), g.lda(),
                        floats(g.b()), g.ldb(), beta, floats(g.c()), g.ldc()), "cublasSgemm");
            } else {
                checkBlas(cublas.cublasSgemmStridedBatched(blas, opA, opB, g.m(), g.n(), g.k(), one, floats(g.a()), g.lda(),
                        g.strideA(), floats(g.b()), g.ldb(), g.strideB(), beta, floats(g.c()), g.ldc(), g.strideC(),
                        g.batch()), "cublasSgemmStridedBatched");
            }
            return;
        }
        int ct = g.out() == DType.BF16 ? cudart.CUDA_R_16BF : cudart.CUDA_R_32F;
        if (g.batch() == 1) {
            checkBlas(cublas.cublasGemmEx(blas, opA, opB, g.m(), g.n(), g.k(), one, at(g.a()), cudart.CUDA_R_16BF, g.lda(),
                    at(g.b()), cudart.CUDA_R_16BF, g.ldb(), beta, at(g.c()), ct, g.ldc(),
                    cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT), "cublasGemmEx(bf16)");
        } else {
            checkBlas(cublas.cublasGemmStridedBatchedEx(blas, opA, opB, g.m(), g.n(), g.k(), one, at(g.a()),
                    cudart.CUDA_R_16BF, g.lda(), g.strideA(), at(g.b()), cudart.CUDA_R_16BF, g.ldb(), g.strideB(), beta,
                    at(g.c()), ct, g.ldc(), g.strideC(), g.batch(), cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT),
                    "cublasGemmStridedBatchedEx(bf16)");
        }
    }

    /** A cuBLASLt GEMM shape's descriptors and algorithm (null: cuBLASLt offers none), made once. */
    private record LtPlan(LtGemm desc, cublasLtMatmulHeuristicResult_t algo) {
    }

    /** What a cuBLASLt plan depends on: shape, types, epilogue, leading dimensions, pointer alignment. */
    private record LtKey(boolean transA, boolean transB, int m, int n, int k, DType in, DType out, int epilogue, int lda,
                         int ldb, int ldc, int alignA, int alignB, int alignC) {
        LtKey(Gemm g) {
            this(g.transA(), g.transB(), g.m(), g.n(), g.k(), g.in(), g.out(), LtGemm.epilogue(g), g.lda(), g.ldb(), g.ldc(),
                    alignment(g.a()), alignment(g.b()), alignment(g.c()));
        }
    }

    private final Map<LtKey, LtPlan> ltPlans = new HashMap<>();

    /** This shape's plan: descriptors built and the algorithm searched on first use, then reused. */
    private LtPlan ltPlan(Gemm g) {
        LtKey key = new LtKey(g);
        LtPlan plan = ltPlans.get(key);
        if (plan == null) {
            LtGemm d = new LtGemm(g, tf32);
            cublasLtMatmulPreferenceOpaque_t pref = preference(key.alignA(), key.alignB(), key.alignC());
            cublasLtMatmulHeuristicResult_t algo = new cublasLtMatmulHeuristicResult_t();
            int[] found = new int[1];
            int status = cublas.cublasLtMatmulAlgoGetHeuristic(lt, d.desc, d.a, d.b, d.c, d.c, pref, 1, algo, found);
            cublas.cublasLtMatmulPreferenceDestroy(pref);
            boolean ok = status == cublas.CUBLAS_STATUS_SUCCESS && found[0] > 0;
            if (!ok) {
                System.err.println("note: cuBLASLt has no algorithm for a " + g.m() + "x" + g.n() + "x" + g.k() + " "
                        + g.in() + " GEMM with epilogue " + LtGemm.epilogue(g) + " (status " + status
                        + "); this shape runs as a GEMM plus separate bias/GELU kernels");
            }
            plan = new LtPlan(d, ok ? algo : null);
            ltPlans.put(key, plan);
        }
        return plan;
    }

    @Override
    public boolean epilogueAvailable(Gemm g) {
        return ltPlan(g).algo() != null;
    }

    /** A GEMM with a bias (and GELU) epilogue through cuBLASLt (as llm.c's matmul_cublaslt). */
    private void gemmLt(Gemm g) {
        LtPlan plan = ltPlan(g);
        if (plan.algo() == null) throw new IllegalStateException("cuBLASLt epilogue GEMM without an algorithm (the backend asks first)");
        LtGemm d = plan.desc();
        d.pointers(g);
        checkBlas(cublas.cublasLtMatmul(lt, d.desc, one, at(g.a()), d.a, at(g.b()), d.b, zero, at(g.c()), d.c,
                at(g.c()), d.c, plan.algo().algo(), at(ltWorkspace), LT_WORKSPACE, stream), "cublasLtMatmul");
        synchronizeIfAsked("cublasLtMatmul");
    }

    /** The largest power of two up to 256 dividing an address: what cuBLASLt may assume of it. */
    static int alignment(long address) {
        return (int) Math.min(256, Long.lowestOneBit(address == 0 ? 256 : address));
    }

    /**
     * The algorithm search's limits: the workspace, and the pointers' actual alignment (cuBLASLt
     * otherwise assumes 256 bytes, and an algorithm chosen on that assumption can fail on
     * parameter slices that are only 16-byte aligned).
     */
    private static cublasLtMatmulPreferenceOpaque_t preference(int alignA, int alignB, int alignC) {
        PointerPointer<Pointer> handle = new PointerPointer<>(1);
        checkBlas(cublas.cublasLtMatmulPreferenceCreate(handle), "cublasLtMatmulPreferenceCreate");
        cublasLtMatmulPreferenceOpaque_t pref = new cublasLtMatmulPreferenceOpaque_t(handle.get(0));
        handle.close();
        try (LongPointer size = new LongPointer(1).put(LT_WORKSPACE)) {
            checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    size, 8), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
        }
        int[][] aligns = {{cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignA},
                {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignB},
                {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignC},
                {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignC}};
        for (int[] a : aligns) {
            try (IntPointer v = new IntPointer(1).put(a[1])) {
                checkBlas(cublas.cublasLtMatmulPreferenceSetAttribute(pref, a[0], v, 4),
                        "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
            }
        }
        return pref;
    }

    @Override
    public void synchronize() {
        check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }

    @Override
    public MemorySegment allocateHost(long bytes) {
        Pointer p = new Pointer();
        check(cudart.cudaMallocHost(p, bytes), "cudaMallocHost(" + bytes + " bytes)");
        return MemorySegment.ofAddress(p.address()).reinterpret(bytes);
    }

    @Override
    public void freeHost(MemorySegment host) {
        check(cudart.cudaFreeHost(at(host.address())), "cudaFreeHost");
    }

    @Override
    public void copyToDeviceAsync(long dst, MemorySegment src) {
        check(cudart.cudaMemcpyAsync(at(dst), at(src.address()), src.byteSize(), cudart.cudaMemcpyHostToDevice,
                stream), "cudaMemcpyAsync(host to device)");
    }

    /** Timing events, created on first use and reused after {@link #clearMarks}. */
    private final List<CUevent_st> events = new java.util.ArrayList<>();
    private int nextEvent;

    @Override
    public int mark() {
        if (nextEvent == events.size()) {
            CUevent_st e = new CUevent_st();
            check(cudart.cudaEventCreate(e), "cudaEventCreate");
            events.add(e);
        }
        check(cudart.cudaEventRecord(events.get(nextEvent), stream), "cudaEventRecord");
        return nextEvent++;
    }

    private final float[] elapsed = new float[1];

    @Override
    public double elapsedMs(int from, int to) {
        check(cudart.cudaEventSynchronize(events.get(to)), "cudaEventSynchronize");
        check(cudart.cudaEventElapsedTime(elapsed, events.get(from), events.get(to)), "cudaEventElapsedTime");
        return elapsed[0];
    }

    @Override
    public void clearMarks() {
        nextEvent = 0;
    }

    @Override
    public long[] memoryInfo() {
        try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
            check(cudart.cudaMemGetInfo(free, total), "cudaMemGetInfo");
            return new long[]{free.get(), total.get()};
        }
    }

    @Override
    public void close() {
        for (CUevent_st e : events) cudart.cudaEventDestroy(e);
        for (LtPlan p : ltPlans.values()) p.desc().close();
        free(ltWorkspace);
        free(blasWorkspace);
        cublas.cublasLtDestroy(lt);
        cublas.cublasDestroy_v2(blas);
        cudart.cudaStreamDestroy(stream);
    }

    /** The stream all work goes to (NCCL's buckets wait for it). */
    CUstream_st stream() {
        return stream;
    }
}
