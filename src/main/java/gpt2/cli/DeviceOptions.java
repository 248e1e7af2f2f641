package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.backend.Backends;
import picocli.CommandLine.Option;

/** --device, --threads and --dtype, shared by the commands that run a model outside training. */
final class DeviceOptions {

    @Option(names = "--device", defaultValue = "", description = "cpu, cuda or cuda:N (default: cuda when present).")
    String device;

    @Option(names = "--threads", defaultValue = "0", description = "CPU threads (0: one per core).")
    int threads;

    @Option(names = "--dtype", defaultValue = "float32", paramLabel = "TYPE",
            description = "float32, or bfloat16 (mixed precision, CUDA only) (default: ${DEFAULT-VALUE}).")
    String dtype;

    /** Refuses a bad --dtype before anything slow happens. */
    void check() {
        if (!dtype.equals("float32") && !dtype.equals("bfloat16")) {
            throw new IllegalArgumentException("--dtype " + dtype + ": expected float32 or bfloat16");
        }
    }

    /** The backend these options name; {@code tensorcores}: TF32 for CUDA's float32 GEMMs. */
    Backend backend(boolean tensorcores) {
        check();
        return Backends.create(device, threads, tensorcores, dtype.equals("bfloat16"));
    }
}
