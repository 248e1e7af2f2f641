package gpt2.backend.cuda;

import gpt2.backend.DType;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Where the CUDA backend's memory operations, kernel launches and GEMMs go: the GPU
 * ({@link GpuExecutor}: the CUDA runtime and driver, cuBLAS), or a stand-in for machines without
 * one ({@link DryExecutor}, and the tests' emulator that runs the kernels on the CPU).
 * {@link CudaBackend} checks every call before it gets here.
 */
interface Executor extends AutoCloseable {

    String deviceName();

    /** The architecture the kernels are built for, e.g. "sm_90". */
    String arch();

    /** A zero-filled allocation; {@code what} names it in out-of-memory errors. */
    long allocate(long bytes, String what);

    void free(long address);

    void zero(long address, long bytes);

    void copyToDevice(long dst, MemorySegment src);

    void copyToHost(MemorySegment dst, long src);

    void copyOnDevice(long dst, long src, long bytes);

    /**
     * Launches a kernel on a (grid, gridY) grid of blocks of {@code block} threads. Arguments
     * follow the signature: Long device addresses for pointers (0 for null), Integer, Long, Float.
     */
    void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args);

    /**
     * Column-major C = op(A) op(B) (+ C when accumulate), batched with element strides (as
     * cublasGemmStridedBatchedEx); A and B of type {@code in}, C of type {@code out}, float32
     * accumulation. With an epilogue (cuBLASLt's; batch 1, no accumulate): {@code bias} (address
     * of m elements of type out, or 0) is added to every column, then with {@code gelu} C =
     * GELU(that) and the pre-activation goes to {@code pre} (same shape and ld as C).
     */
    record Gemm(boolean transA, boolean transB, int m, int n, int k, long a, int lda, long strideA, long b, int ldb,
                long strideB, long c, int ldc, long strideC, int batch, DType in, DType out, boolean accumulate,
                long bias, boolean gelu, long pre) {

        boolean hasEpilogue() {
            return bias != 0 || gelu;
        }
    }

    void gemm(Gemm g);

    void synchronize();

    @Override
    void close();
}
