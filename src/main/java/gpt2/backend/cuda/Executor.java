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
     * follow the signature: a {@link DevicePointer} for each pointer, Integer, Long, Float.
     */
    void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args);

    /**
     * {@code kernel} launches from now on with {@code bytes} of dynamic shared memory (its
     * DYNAMIC_SHARED area; over 48 KB the kernel's limit is raised first).
     */
    default void sharedMemory(String kernel, int bytes) {
    }

    /**
     * Column-major C = op(A) op(B) (+ C when accumulate), batched with element strides (as
     * cublasGemmStridedBatchedEx) or, with {@code pointerArrays}, a, b and c the device addresses of
     * arrays of {@code batch} device pointers, one matrix each (as cublasGemmBatchedEx; strides
     * unused); A and B of type {@code in}, C of type {@code out}, float32
     * accumulation. With an epilogue (cuBLASLt's; batch 1, no accumulate): {@code bias} (address
     * of m elements of type out, or 0) is added to every column, then with {@code gelu} C =
     * GELU(that) and the pre-activation goes to {@code pre} (same shape and ld as C).
     */
    record Gemm(boolean transA, boolean transB, int m, int n, int k, long a, int lda, long strideA, long b, int ldb,
                long strideB, long c, int ldc, long strideC, int batch, DType in, DType out, boolean accumulate,
                long bias, boolean gelu, long pre, boolean pointerArrays) {

        boolean hasEpilogue() {
            return bias != 0 || gelu;
        }
    }

    void gemm(Gemm g);

    /**
     * Whether a GEMM with an epilogue can run here (cuBLASLt has an algorithm for its shape, types
     * and alignment); when not, the backend runs a plain GEMM and the bias and GELU as kernels.
     */
    default boolean epilogueAvailable(Gemm g) {
        return true;
    }

    void synchronize();

    /**
     * Host memory the device can copy from asynchronously (pinned on a GPU); freed with
     * {@link #freeHost}. Elsewhere ordinary memory.
     */
    MemorySegment allocateHost(long bytes);

    void freeHost(MemorySegment host);

    /**
     * Queues a copy from host memory of {@link #allocateHost} to the device and returns at once; the
     * host memory must stay unchanged until the device has passed this point in its queue (the next
     * {@link #synchronize} or device-to-host copy).
     */
    void copyToDeviceAsync(long dst, MemorySegment src);

    /**
     * Records a timing mark in the device's queue and returns its handle, or -1 where nothing is
     * timed (dry run, emulator).
     */
    default int mark() {
        return -1;
    }

    /** Milliseconds between two marks (waits for the later one); NaN where nothing is timed. */
    default double elapsedMs(int from, int to) {
        return Double.NaN;
    }

    /** Forgets every mark, so their events can be reused. */
    default void clearMarks() {
    }

    /**
     * From now on launches, GEMMs, memsets and device copies are captured into a graph instead of
     * run (a CUDA stream capture), until {@link #endCapture}; no other call may come in between.
     * False where this executor has no graphs of its own ({@link GraphExecutor} then keeps the calls
     * in a list).
     */
    default boolean beginCapture() {
        return false;
    }

    /** Ends the capture: the graph of the calls since {@link #beginCapture}, instantiated; none of them ran. */
    default Graph endCapture() {
        throw new UnsupportedOperationException("no graphs here");
    }

    /** A captured graph, launched as one call; its kernel nodes can take new arguments and grids. */
    interface Graph {
        /** The {@code launch}-th kernel launch of the capture runs with this grid and these arguments from now on. */
        void update(int launch, int grid, int gridY, Object[] args);

        /** Queues the whole graph on the device. */
        void launch();

        void close();
    }

    /** {free, total} bytes of device memory as the driver reports them (cudaMemGetInfo), or null. */
    default long[] memoryInfo() {
        return null;
    }

    @Override
    void close();
}
