package gpt2.backend.cuda;

import gpt2.backend.DType;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

import static gpt2.backend.cuda.Cuda.checkBlas;

/**
 * The descriptors of one cuBLASLt matmul with an epilogue (llm.c's matmul_cublaslt): the
 * operation (float32 accumulation, TF32 when asked for float32 inputs; transpositions; bias and
 * GELU epilogue with its pointers) and the layouts of A, B and C (= D); made once per shape and
 * kept, with only the pointers set per call. Host-side objects only:
 * building them needs no GPU, which a test checks on CI machines.
 */
final class LtGemm implements AutoCloseable {
    final cublasLtMatmulDescOpaque_t desc;
    final cublasLtMatrixLayoutOpaque_t a, b, c;

    LtGemm(Executor.Gemm g, boolean tf32) {
        if (g.batch() != 1 || g.accumulate()) throw new IllegalArgumentException("cuBLASLt epilogue GEMMs are single and overwrite C");
        int compute = g.in() == DType.F32 && tf32 ? cublas.CUBLAS_COMPUTE_32F_FAST_TF32 : cublas.CUBLAS_COMPUTE_32F;
        PointerPointer<Pointer> handle = new PointerPointer<>(1);
        checkBlas(cublas.cublasLtMatmulDescCreate(handle, compute, cudart.CUDA_R_32F), "cublasLtMatmulDescCreate");
        desc = new cublasLtMatmulDescOpaque_t(handle.get(0));
        handle.close();
        setInt(cublas.CUBLASLT_MATMUL_DESC_TRANSA, g.transA() ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N, "TRANSA");
        setInt(cublas.CUBLASLT_MATMUL_DESC_TRANSB, g.transB() ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N, "TRANSB");
        setInt(cublas.CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue(g), "EPILOGUE");
        if (g.bias() != 0) setInt(cublas.CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, type(g.out()), "BIAS_DATA_TYPE");
        if (g.gelu()) setLong(cublas.CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, g.ldc(), "EPILOGUE_AUX_LD");
        pointers(g);
        a = layout(type(g.in()), g.transA() ? g.k() : g.m(), g.transA() ? g.m() : g.k(), g.lda());
        b = layout(type(g.in()), g.transB() ? g.n() : g.k(), g.transB() ? g.k() : g.n(), g.ldb());
        c = layout(type(g.out()), g.m(), g.n(), g.ldc());
    }

    /**
     * Points the epilogue at this call's bias and pre-activation buffers (the rest of the descriptor
     * depends only on the shape, so one descriptor serves every call of that shape).
     */
    void pointers(Executor.Gemm g) {
        if (g.bias() != 0) setLong(cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias(), "BIAS_POINTER");
        if (g.gelu()) setLong(cublas.CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, g.pre(), "EPILOGUE_AUX_POINTER");
    }

    /** GELU_AUX(_BIAS) keeps the pre-activation for the backward pass; BIAS adds the bias only. */
    static int epilogue(Executor.Gemm g) {
        if (g.gelu()) return g.bias() != 0 ? cublas.CUBLASLT_EPILOGUE_GELU_AUX_BIAS : cublas.CUBLASLT_EPILOGUE_GELU_AUX;
        return g.bias() != 0 ? cublas.CUBLASLT_EPILOGUE_BIAS : cublas.CUBLASLT_EPILOGUE_DEFAULT;
    }

    static int type(DType t) {
        return switch (t) {
            case F32 -> cudart.CUDA_R_32F;
            case BF16 -> cudart.CUDA_R_16BF;
            default -> throw new IllegalArgumentException("cuBLASLt GEMM of " + t);
        };
    }

    private void setInt(int attribute, int value, String name) {
        try (IntPointer v = new IntPointer(1).put(value)) {
            checkBlas(cublas.cublasLtMatmulDescSetAttribute(desc, attribute, v, 4), "cublasLtMatmulDescSetAttribute(" + name + ")");
        }
    }

    private void setLong(int attribute, long value, String name) {
        try (LongPointer v = new LongPointer(1).put(value)) {
            checkBlas(cublas.cublasLtMatmulDescSetAttribute(desc, attribute, v, 8), "cublasLtMatmulDescSetAttribute(" + name + ")");
        }
    }

    private static cublasLtMatrixLayoutOpaque_t layout(int type, long rows, long cols, long ld) {
        PointerPointer<Pointer> handle = new PointerPointer<>(1);
        checkBlas(cublas.cublasLtMatrixLayoutCreate(handle, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
        cublasLtMatrixLayoutOpaque_t layout = new cublasLtMatrixLayoutOpaque_t(handle.get(0));
        handle.close();
        return layout;
    }

    @Override
    public void close() {
        cublas.cublasLtMatrixLayoutDestroy(a);
        cublas.cublasLtMatrixLayoutDestroy(b);
        cublas.cublasLtMatrixLayoutDestroy(c);
        cublas.cublasLtMatmulDescDestroy(desc);
    }
}
