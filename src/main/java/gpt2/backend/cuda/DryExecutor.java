package gpt2.backend.cuda;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * No GPU and no CUDA library: made-up addresses, no data moved (reads leave zeros), and each
 * launch and GEMM only recorded, after {@link CudaBackend} has checked it.
 */
final class DryExecutor implements Executor {
    private final List<String> trace = new ArrayList<>();
    private long next = 1L << 32;
    /** Whether GEMM epilogues "have an algorithm" (false: as a cuBLASLt without one). */
    private final boolean epilogues;

    DryExecutor() {
        this(true);
    }

    DryExecutor(boolean epilogues) {
        this.epilogues = epilogues;
    }

    @Override
    public boolean epilogueAvailable(Gemm g) {
        return epilogues;
    }

    List<String> trace() {
        return trace;
    }

    @Override public String deviceName() { return "dry run"; }
    @Override public String arch() { return "sm_90"; }

    @Override
    public long allocate(long bytes, String what) {
        long a = next;
        next += (bytes + 255) / 256 * 256;
        return a;
    }

    @Override public void free(long address) { }
    @Override public void zero(long address, long bytes) { }
    @Override public void copyToDevice(long dst, MemorySegment src) { }
    @Override public void copyToHost(MemorySegment dst, long src) { dst.fill((byte) 0); }
    @Override public void copyOnDevice(long dst, long src, long bytes) { }

    /** An H100's and H200's limit on a block's shared memory. */
    static final int MAX_SHARED = 227 * 1024;

    @Override
    public void sharedMemory(String kernel, int bytes) {
        if (bytes > MAX_SHARED) {
            throw new IllegalArgumentException(kernel + ": " + bytes + " bytes of shared memory, more than sm_90's " + MAX_SHARED);
        }
    }

    @Override
    public void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args) {
        trace.add("kernel " + kernel);
    }

    @Override
    public void gemm(Gemm g) {
        trace.add("gemm " + g.in() + "->" + g.out() + " " + g.m() + "x" + g.n() + "x" + g.k()
                + (g.batch() > 1 ? " batch " + g.batch() : "") + (g.pointerArrays() ? " by pointers" : "")
                + (g.bias() != 0 ? " +bias" : "") + (g.gelu() ? " +gelu" : ""));
    }

    @Override public void synchronize() { }
    @Override public MemorySegment allocateHost(long bytes) { return java.lang.foreign.Arena.ofAuto().allocate(bytes, 64); }
    @Override public void freeHost(MemorySegment host) { }
    @Override public void copyToDeviceAsync(long dst, MemorySegment src) { }
    @Override public void close() { }
}
