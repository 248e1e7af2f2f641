package gpt2.backend;

import gpt2.backend.cpu.CpuBackend;
import gpt2.backend.cuda.CudaBackend;

/** The one place a --device string becomes a backend. */
public final class Backends {
    private Backends() {
    }

    /**
     * @param device     "" (the best available: CUDA when a GPU is present, else CPU), "cpu", "cuda" or "cuda:N"
     * @param threads    CPU threads (0: one per core)
     * @param tensorcores TF32 tensor cores for CUDA GEMMs
     */
    public static Backend create(String device, int threads, boolean tensorcores) {
        return create(device, threads, tensorcores, false);
    }

    /** As above; {@code bf16}: bf16 mixed precision on CUDA (refused on the CPU). */
    public static Backend create(String device, int threads, boolean tensorcores, boolean bf16) {
        String d = device == null ? "" : device;
        if (d.isEmpty()) d = cudaUnavailableReason() == null ? "cuda" : "cpu";
        if (d.equals("cpu")) {
            if (bf16) throw new IllegalArgumentException("--dtype bfloat16: the CPU backend computes in float32");
            return threads > 0 ? new CpuBackend(threads) : new CpuBackend();
        }
        if (d.equals("cuda") || d.startsWith("cuda:")) {
            int index = 0;
            if (d.startsWith("cuda:")) {
                try {
                    index = Integer.parseInt(d.substring(5));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("--device " + device + ": expected cuda:N");
                }
            }
            return new CudaBackend(index, tensorcores, bf16);
        }
        throw new IllegalArgumentException("--device " + device + ": expected cpu, cuda or cuda:N");
    }

    /**
     * The CUDA backend's dry run: no GPU and no CUDA library; every launch and GEMM checked and
     * counted in its {@link Profile}, nothing computed (reads return zeros).
     */
    public static Backend dryRun(boolean bf16) {
        return CudaBackend.dryRun(bf16);
    }

    /** Why no GPU can be used here, or null when one can (the default --device's choice). */
    public static String cudaUnavailableReason() {
        return CudaBackend.unavailableReason();
    }

    public static boolean isCuda(Backend b) {
        return b instanceof CudaBackend;
    }
}
