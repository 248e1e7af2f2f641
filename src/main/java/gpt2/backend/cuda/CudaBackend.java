package gpt2.backend.cuda;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Dropout;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static gpt2.backend.RawPointer.at;
import static gpt2.backend.cuda.Cuda.check;
import static gpt2.backend.cuda.Cuda.checkBlas;
import static gpt2.backend.cuda.Cuda.checkDriver;
import static gpt2.backend.RawPointer.floats;

/**
 * The CUDA backend: float32 device memory, kernels from {@code kernels/*.cu} compiled by NVRTC for
 * this GPU's architecture, GEMMs and the attention's batched GEMMs through cuBLAS (TF32 tensor
 * cores with --tensorcores 1, strict FP32 otherwise). Every call is checked; GPT2_CUDA_SYNC=1
 * synchronizes after each launch so an asynchronous error names its kernel.
 *
 * <pre>
 * attention forward:  qkv -permute-> q,k,v (B,NH,T,hs) -GEMM q.k^T-> preatt -softmax-> att (saved)
 *                     -[dropout copy]-> att' -GEMM att'.v-> y (B,NH,T,hs) -unpermute-> out (B,T,C)
 * </pre>
 */
public final class CudaBackend implements Backend {

    private final int device;
    private final String deviceName;
    private final String arch;
    private final cublasContext blas = new cublasContext();
    private final Map<String, CUfunc_st> kernels = new HashMap<>();
    private final Map<String, CudaBuffer> scratch = new HashMap<>();
    private final boolean syncEachLaunch = System.getenv("GPT2_CUDA_SYNC") != null;
    private final FloatPointer one = new FloatPointer(1f), zero = new FloatPointer(0f);
    private final boolean tf32;
    private final boolean bf16;

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
            return "the CUDA runtime cannot be loaded (" + t.getClass().getSimpleName() + ": " + t.getMessage()
                    + "); it comes from the machine's CUDA 13 toolkit or NVIDIA's pip wheels on LD_LIBRARY_PATH";
        }
    }

    public CudaBackend(int device, boolean tf32) {
        this(device, tf32, false);
    }

    /**
     * @param tf32 TF32 tensor cores for the float32 GEMMs
     * @param bf16 the linear layers' GEMMs take bfloat16 inputs (converted on the fly) and
     *             accumulate in float32 on the tensor cores; weights, optimizer state, activations
     *             and every other op stay float32
     */
    public CudaBackend(int device, boolean tf32, boolean bf16) {
        String reason = unavailableReason();
        if (reason != null) throw new Cuda.CudaException("--device cuda: " + reason);
        this.device = device;
        this.tf32 = tf32;
        this.bf16 = bf16;
        check(cudart.cudaSetDevice(device), "cudaSetDevice(" + device + ")");
        check(cudart.cudaFree(null), "cudaFree(null) (context creation)");
        cudaDeviceProp prop = new cudaDeviceProp();
        check(cudart.cudaGetDeviceProperties(prop, device), "cudaGetDeviceProperties");
        deviceName = prop.name().getString();
        arch = "sm_" + prop.major() + prop.minor();
        checkBlas(cublas.cublasCreate_v2(blas), "cublasCreate");
        checkBlas(cublas.cublasSetMathMode(blas, tf32 ? cublas.CUBLAS_TF32_TENSOR_OP_MATH : cublas.CUBLAS_PEDANTIC_MATH),
                "cublasSetMathMode");
        for (String family : KernelCompiler.FAMILIES) {
            byte[] bin = KernelCompiler.cubin(family, arch, KernelCompiler.defaultCacheDir());
            CUmod_st module = new CUmod_st();
            checkDriver(cudart.cuModuleLoadData(module, new BytePointer(bin)), "cuModuleLoadData(" + family + ")");
            for (String name : KernelCompiler.kernelNames(family)) {
                CUfunc_st f = new CUfunc_st();
                checkDriver(cudart.cuModuleGetFunction(f, module, name), "cuModuleGetFunction(" + name + ")");
                kernels.put(name, f);
            }
        }
    }

    @Override
    public String name() {
        return "cuda:" + device + " (" + deviceName + ", " + arch + (bf16 ? ", BF16 linear GEMMs" : "")
                + (tf32 ? ", TF32 GEMMs" : ", FP32 GEMMs") + ")";
    }

    public String deviceName() {
        return deviceName;
    }

    /**
     * The GPU's dense bf16 tensor-core peak in FLOP/s (the denominator of MFU, as llm.c), or NaN
     * when the device is not in the table.
     */
    public double bf16PeakFlops() {
        return peakFor(deviceName);
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
        if (b == null) return 0L;
        if (!(b instanceof CudaBuffer cb)) throw new IllegalArgumentException("buffer of another backend passed to CUDA: " + b);
        return cb.address();
    }

    @Override
    public Buffer allocate(DType dtype, long length, String what) {
        long bytes = Math.max(4, length * dtype.bytes());
        Pointer p = new Pointer();
        int status = cudart.cudaMalloc(p, bytes);
        if (status == cudart.cudaErrorMemoryAllocation) {
            cudart.cudaGetLastError();
            throw new Cuda.CudaException("out of GPU memory allocating " + what + " (" + (bytes >> 20)
                    + " MiB); try a smaller --batch_size");
        }
        check(status, "cudaMalloc(" + what + ", " + bytes + " bytes)");
        check(cudart.cudaMemset(p, 0, bytes), "cudaMemset(" + what + ")");
        return new CudaBuffer(p.address(), dtype, length, true);
    }

    @Override
    public void free(Buffer buffer) {
        if (!(buffer instanceof CudaBuffer cb) || !cb.owner()) {
            throw new IllegalArgumentException("free: not an allocation of this backend (a slice?)");
        }
        check(cudart.cudaFree(at(cb.address())), "cudaFree");
    }

    @Override
    public void write(Buffer dst, float[] src) {
        check(cudart.cudaMemcpy(at(addr(dst)), new FloatPointer(src), 4L * src.length, cudart.cudaMemcpyHostToDevice),
                "cudaMemcpy(host to device)");
    }

    @Override
    public void write(Buffer dst, int[] src) {
        check(cudart.cudaMemcpy(at(addr(dst)), new IntPointer(src), 4L * src.length, cudart.cudaMemcpyHostToDevice),
                "cudaMemcpy(host to device)");
    }

    @Override
    public void read(Buffer src, float[] dst) {
        FloatPointer host = new FloatPointer(dst.length);
        check(cudart.cudaMemcpy(host, at(addr(src)), 4L * dst.length, cudart.cudaMemcpyDeviceToHost),
                "cudaMemcpy(device to host)");
        host.get(dst);
        host.close();
    }

    @Override
    public void copyToHost(Buffer src, MemorySegment dst) {
        check(cudart.cudaMemcpy(at(dst.address()), at(addr(src)), dst.byteSize(), cudart.cudaMemcpyDeviceToHost),
                "cudaMemcpy(device to host)");
    }

    @Override
    public void copyFromHost(Buffer dst, MemorySegment src) {
        check(cudart.cudaMemcpy(at(addr(dst)), at(src.address()), src.byteSize(), cudart.cudaMemcpyHostToDevice),
                "cudaMemcpy(host to device)");
    }

    @Override
    public void zero(Buffer buffer) {
        check(cudart.cudaMemset(at(addr(buffer)), 0, ((CudaBuffer) buffer).bytes()), "cudaMemset");
    }

    @Override
    public void copy(Buffer dst, Buffer src) {
        check(cudart.cudaMemcpy(at(addr(dst)), at(addr(src)), ((CudaBuffer) src).bytes(), cudart.cudaMemcpyDeviceToDevice),
                "cudaMemcpy(device to device)");
    }

    /** A scratch buffer of at least n floats, reused between calls. */
    private CudaBuffer scratch(String name, long n) {
        CudaBuffer b = scratch.get(name);
        if (b == null || b.length() < n) {
            if (b != null) free(b);
            b = (CudaBuffer) allocate(DType.F32, n, "scratch " + name);
            scratch.put(name, b);
        }
        return b;
    }

    // ------------------------------------------------------------------ launches

    private static int blocks(long n, int threads) {
        long b = (n + threads - 1) / threads;
        if (b > Integer.MAX_VALUE) throw new IllegalArgumentException("grid too large: " + n + " elements");
        return (int) Math.max(1, b);
    }

    /** Launches a kernel; arguments are Long (pointers, i64), Integer or Float, in the kernel's order. */
    private void launch(String kernel, int grid, int block, Object... args) {
        launch2(kernel, grid, 1, block, args);
    }

    /** A launch with a (gridX, gridY) grid. */
    private void launch2(String kernel, int grid, int gridY, int block, Object... args) {
        CUfunc_st f = kernels.get(kernel);
        if (f == null) throw new IllegalStateException("no kernel " + kernel);
        PointerPointer<Pointer> params = new PointerPointer<>(args.length);
        Pointer[] keep = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            keep[i] = switch (a) {
                case Long l -> new LongPointer(1).put(l);
                case Integer n -> new IntPointer(1).put(n);
                case Float x -> new FloatPointer(1).put(x);
                default -> throw new IllegalArgumentException(kernel + ": unsupported argument " + a);
            };
            params.put(i, keep[i]);
        }
        checkDriver(cudart.cuLaunchKernel(f, grid, gridY, 1, block, 1, 1, 0, (CUstream_st) null, params, null),
                "cuLaunchKernel(" + kernel + ")");
        if (syncEachLaunch) check(cudart.cudaDeviceSynchronize(), "kernel " + kernel);
        for (Pointer p : keep) p.close();
        params.close();
    }

    /**
     * Row-major C (m,n) = op(A) op(B) (+ C when accumulate), written as cuBLAS's column-major call.
     * See the callers for the transposition tricks (as llm.c).
     */
    private void sgemm(int opA, int opB, int m, int n, int k, long A, int lda, long B, int ldb, long C, int ldc,
                       boolean accumulate) {
        checkBlas(cublas.cublasSgemm_v2(blas, opA, opB, m, n, k, one, floats(A), lda, floats(B), ldb,
                accumulate ? one : zero, floats(C), ldc), "cublasSgemm");
    }

    private void sgemmBatched(int opA, int opB, int m, int n, int k, long A, int lda, long strideA, long B, int ldb,
                              long strideB, long C, int ldc, long strideC, int batch) {
        checkBlas(cublas.cublasSgemmStridedBatched(blas, opA, opB, m, n, k, one, floats(A), lda, strideA, floats(B), ldb,
                strideB, zero, floats(C), ldc, strideC, batch), "cublasSgemmStridedBatched");
    }

    // ------------------------------------------------------------------ ops

    @Override
    public void encoderForward(Buffer out, Buffer tokens, Buffer wte, Buffer wpe, int B, int T, int C) {
        launch("encoder_forward", blocks((long) B * T * C, 256), 256, addr(out), addr(tokens), addr(wte), addr(wpe), B, T, C);
    }

    @Override
    public void encoderBackward(Buffer dwte, Buffer dwpe, Buffer dout, Buffer tokens, int B, int T, int C) {
        launch("encoder_backward", blocks(C, 128), 128, addr(dwte), addr(dwpe), addr(dout), addr(tokens), B, T, C);
    }

    @Override
    public void layerNormForward(Buffer out, Buffer mean, Buffer rstd, Buffer inp, Buffer weight, Buffer bias,
                                 int N, int C, float eps) {
        launch("layernorm_forward", blocks(N, 8), 256, addr(out), addr(mean), addr(rstd), addr(inp), addr(weight),
                addr(bias), N, C, eps);
    }

    @Override
    public void layerNormBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                                  Buffer mean, Buffer rstd, int N, int C) {
        launch("layernorm_backward_dinp", blocks(N, 8), 256, addr(dinp), addr(dout), addr(inp), addr(weight),
                addr(mean), addr(rstd), N, C);
        paramGrads(dweight, dbias, dout, inp, mean, rstd, N, C);
    }

    @Override
    public void rmsNormForward(Buffer out, Buffer rstd, Buffer inp, Buffer weight, int N, int C, float eps) {
        launch("rmsnorm_forward", blocks(N, 8), 256, addr(out), addr(rstd), addr(inp), addr(weight), N, C, eps);
    }

    @Override
    public void rmsNormBackward(Buffer dinp, Buffer dweight, Buffer dout, Buffer inp, Buffer weight, Buffer rstd,
                                int N, int C) {
        launch("rmsnorm_backward_dinp", blocks(N, 8), 256, addr(dinp), addr(dout), addr(inp), addr(weight), addr(rstd), N, C);
        paramGrads(dweight, null, dout, inp, null, rstd, N, C);
    }

    /** The same GEMM as {@link #sgemm} with bf16 copies of A and B, accumulated in float32. */
    private void gemmBf16(int opA, int opB, int m, int n, int k, long A, long aLen, int lda, long B, long bLen, int ldb,
                          long C, int ldc, boolean accumulate) {
        CudaBuffer a16 = scratch("bf16_a", (aLen + 1) / 2), b16 = scratch("bf16_b", (bLen + 1) / 2);
        launch("to_bf16", blocks(aLen, 256), 256, a16.address(), A, aLen);
        launch("to_bf16", blocks(bLen, 256), 256, b16.address(), B, bLen);
        checkBlas(cublas.cublasGemmEx(blas, opA, opB, m, n, k, one, at(a16.address()), cudart.CUDA_R_16BF, lda,
                at(b16.address()), cudart.CUDA_R_16BF, ldb, accumulate ? one : zero, at(C), cudart.CUDA_R_32F, ldc,
                cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT), "cublasGemmEx(bf16)");
    }

    private static final int ROWS_PER_CHUNK = 256;

    /** Norm weight (and bias) gradients +=, in two deterministic stages over chunks of rows. */
    private void paramGrads(Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer mean, Buffer rstd, int N, int C) {
        int chunks = (N + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
        CudaBuffer pw = scratch("partial_w", (long) chunks * C), pb = scratch("partial_b", (long) chunks * C);
        launch2("layernorm_params_partial", blocks(C, 128), chunks, 128, pw.address(), dbias == null ? 0L : pb.address(),
                addr(dout), addr(inp), addr(mean), addr(rstd), N, C, ROWS_PER_CHUNK);
        launch("sum_partials", blocks(C, 128), 128, addr(dweight), pw.address(), chunks, C);
        if (dbias != null) launch("sum_partials", blocks(C, 128), 128, addr(dbias), pb.address(), chunks, C);
    }

    @Override
    public void matmulForward(Buffer out, Buffer inp, Buffer weight, Buffer bias, int N, int C, int OC) {
        // column-major: out^T (OC,N) = W (OC,C) [stored (C,OC), op T] x inp^T (C,N)
        if (bf16) {
            gemmBf16(cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, OC, N, C, addr(weight), (long) OC * C, C, addr(inp),
                    (long) N * C, C, addr(out), OC, false);
        } else {
            sgemm(cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, OC, N, C, addr(weight), C, addr(inp), C, addr(out), OC, false);
        }
        if (bias != null) launch("add_bias", blocks((long) N * OC, 256), 256, addr(out), addr(bias), N, OC);
    }

    @Override
    public void matmulBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                               int N, int C, int OC) {
        if (bf16) {
            gemmBf16(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, C, N, OC, addr(weight), (long) OC * C, C, addr(dout),
                    (long) N * OC, OC, addr(dinp), C, false);
            gemmBf16(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T, C, OC, N, addr(inp), (long) N * C, C, addr(dout),
                    (long) N * OC, OC, addr(dweight), C, true);
        } else {
            // dinp^T (C,N) = W^T (C,OC) x dout^T (OC,N)
            sgemm(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, C, N, OC, addr(weight), C, addr(dout), OC, addr(dinp), C, false);
            // dW^T (C,OC) += inp^T (C,N) x dout (N,OC)
            sgemm(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T, C, OC, N, addr(inp), C, addr(dout), OC, addr(dweight), C, true);
        }
        if (dbias != null) {
            int chunks = (N + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
            CudaBuffer pw = scratch("partial_w", (long) chunks * OC);
            launch2("bias_partial", blocks(OC, 128), chunks, 128, pw.address(), addr(dout), N, OC, ROWS_PER_CHUNK);
            launch("sum_partials", blocks(OC, 128), 128, addr(dbias), pw.address(), chunks, OC);
        }
    }

    @Override
    public void attentionForward(Buffer out, Buffer att, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        long n = (long) B * T * C, tt = (long) B * NH * T * T;
        CudaBuffer q = scratch("q", n), k = scratch("k", n), v = scratch("v", n), y = scratch("y", n);
        CudaBuffer pre = scratch("preatt", tt);
        launch("permute_qkv", blocks(n, 256), 256, q.address(), k.address(), v.address(), addr(qkv), B, T, NH, hs);
        // preatt[t][t2] = q_t . k_t2 (llm.c's layout)
        sgemmBatched(cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, T, T, hs, k.address(), hs, (long) T * hs, q.address(), hs,
                (long) T * hs, pre.address(), T, (long) T * T, B * NH);
        launch("softmax_forward", blocks((long) B * NH * T, 8), 256, addr(att), pre.address(), B * NH * T, T,
                (float) (1.0 / Math.sqrt(hs)));
        long attUsed = addr(att);
        if (dropout != null && !dropout.isOff()) {
            CudaBuffer dropped = scratch("att_dropped", tt);
            launch("dropout_copy", blocks(tt, 256), 256, dropped.address(), addr(att), tt, dropout.p(), dropout.key());
            attUsed = dropped.address();
        }
        // y (T,hs) = att' (T,T) v (T,hs)
        sgemmBatched(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, hs, T, T, v.address(), hs, (long) T * hs, attUsed, T,
                (long) T * T, y.address(), hs, (long) T * hs, B * NH);
        launch("unpermute", blocks(n, 256), 256, addr(out), y.address(), B, T, NH, hs, 0);
    }

    @Override
    public void attentionBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer att, int B, int T, int C, int NH,
                                  Dropout dropout) {
        int hs = C / NH;
        long n = (long) B * T * C, tt = (long) B * NH * T * T;
        CudaBuffer q = scratch("q", n), k = scratch("k", n), v = scratch("v", n), dy = scratch("y", n);
        CudaBuffer datt = scratch("datt", tt), dpre = scratch("preatt", tt);
        CudaBuffer dq = scratch("dq", n), dk = scratch("dk", n), dv = scratch("dv", n);
        launch("permute_qkv", blocks(n, 256), 256, q.address(), k.address(), v.address(), addr(qkv), B, T, NH, hs);
        launch("unpermute", blocks(n, 256), 256, addr(dout), dy.address(), B, T, NH, hs, 1);
        boolean drop = dropout != null && !dropout.isOff();
        long attUsed = addr(att);
        if (drop) {
            CudaBuffer dropped = scratch("att_dropped", tt);
            launch("dropout_copy", blocks(tt, 256), 256, dropped.address(), addr(att), tt, dropout.p(), dropout.key());
            attUsed = dropped.address();
        }
        // datt'[t][t2] = dy_t . v_t2 ; dv = att'^T dy
        sgemmBatched(cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, T, T, hs, v.address(), hs, (long) T * hs, dy.address(), hs,
                (long) T * hs, datt.address(), T, (long) T * T, B * NH);
        sgemmBatched(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T, hs, T, T, dy.address(), hs, (long) T * hs, attUsed, T,
                (long) T * T, dv.address(), hs, (long) T * hs, B * NH);
        if (drop) launch("dropout", blocks(tt, 256), 256, datt.address(), tt, dropout.p(), dropout.key());
        launch("softmax_backward", blocks((long) B * NH * T, 8), 256, dpre.address(), datt.address(), addr(att),
                B * NH * T, T, (float) (1.0 / Math.sqrt(hs)));
        // dq = dpre k ; dk = dpre^T q
        sgemmBatched(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, hs, T, T, k.address(), hs, (long) T * hs, dpre.address(), T,
                (long) T * T, dq.address(), hs, (long) T * hs, B * NH);
        sgemmBatched(cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T, hs, T, T, q.address(), hs, (long) T * hs, dpre.address(), T,
                (long) T * T, dk.address(), hs, (long) T * hs, B * NH);
        launch("permute_qkv_backward", blocks(n, 256), 256, addr(dqkv), dq.address(), dk.address(), dv.address(), B, T, NH, hs);
    }

    @Override
    public void attentionDecode(Buffer out, Buffer qkv, Buffer kcache, Buffer vcache, int B, int pos, int maxT, int C,
                                int NH) {
        if (pos >= 2048) throw new IllegalArgumentException("attention_decode supports positions < 2048, got " + pos);
        launch("attention_decode", B * NH, 32, addr(out), addr(qkv), addr(kcache), addr(vcache), B, pos, maxT, C, NH);
    }

    @Override
    public void geluForward(Buffer out, Buffer inp, long N) {
        launch("gelu_forward", blocks(N, 256), 256, addr(out), addr(inp), N);
    }

    @Override
    public void geluBackward(Buffer dinp, Buffer inp, Buffer dout, long N) {
        launch("gelu_backward", blocks(N, 256), 256, addr(dinp), addr(inp), addr(dout), N);
    }

    @Override
    public void residualForward(Buffer out, Buffer inp1, Buffer inp2, long N) {
        launch("residual_forward", blocks(N, 256), 256, addr(out), addr(inp1), addr(inp2), N);
    }

    @Override
    public void dropout(Buffer x, long N, Dropout d) {
        if (d == null || d.isOff()) return;
        launch("dropout", blocks(N, 256), 256, addr(x), N, d.p(), d.key());
    }

    @Override
    public void crossEntropyForward(Buffer losses, Buffer logits, Buffer targets, int N, int V, int Vp) {
        launch("crossentropy_forward", N, 256, addr(losses), addr(logits), addr(targets), N, V, Vp);
    }

    @Override
    public void crossEntropyBackward(Buffer logits, Buffer targets, float dloss, int N, int V, int Vp) {
        launch("crossentropy_backward", N, 256, addr(logits), addr(targets), dloss, N, V, Vp);
    }

    private static final int SUM_BLOCKS = 256;

    @Override
    public double sumOfSquares(Buffer x) {
        CudaBuffer partial = scratch("sum_partial", 2L * SUM_BLOCKS); // doubles: two floats each
        launch("sum_squares", SUM_BLOCKS, 512, partial.address(), addr(x), x.length());
        DoublePointer host = new DoublePointer(SUM_BLOCKS);
        check(cudart.cudaMemcpy(host, at(partial.address()), 8L * SUM_BLOCKS, cudart.cudaMemcpyDeviceToHost),
                "cudaMemcpy(partial sums)");
        double total = 0;
        for (int i = 0; i < SUM_BLOCKS; i++) total += host.get(i);
        host.close();
        return total;
    }

    @Override
    public void adamw(Buffer params, Buffer grads, Buffer m, Buffer v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, float gradScale, int t) {
        float bc1 = 1f - (float) Math.pow(beta1, t), bc2 = 1f - (float) Math.pow(beta2, t);
        long n = params.length();
        launch("adamw", blocks(n, 256), 256, addr(params), addr(grads), addr(m), addr(v), n, lr, beta1, beta2, eps,
                weightDecay, gradScale, bc1, bc2);
    }

    /** Waits for the GPU (for timing). */
    public void synchronize() {
        check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }

    @Override
    public void close() {
        for (CudaBuffer b : scratch.values()) cudart.cudaFree(at(b.address()));
        scratch.clear();
        cublas.cublasDestroy_v2(blas);
    }
}
