package gpt2.parallel;

import gpt2.backend.Backend;
import gpt2.backend.cuda.CudaBackend;
import gpt2.backend.cuda.NcclCommunicator;

import java.time.Duration;

/**
 * The one place a run's ranks become a {@link Communicator}: NCCL over the GPUs when the run was
 * launched as one rank of several processes (scripts/launch.sh, torchrun's environment) on CUDA,
 * otherwise the single-process one. (Tests build {@link InProcessCommunicator}s themselves.)
 */
public final class Communicators {
    private Communicators() {
    }

    /**
     * @param launched whether this process is a rank of a launched group (RANK was set)
     * @param masterAddr where rank 0 serves the NCCL unique id (MASTER_ADDR)
     */
    public static Communicator create(Backend backend, boolean launched, int rank, int world, String masterAddr,
                                      int masterPort, Duration timeout) {
        if (launched && backend instanceof CudaBackend cuda) {
            return new NcclCommunicator(cuda, rank, world, masterAddr, masterPort, timeout);
        }
        check(world, false);
        return Communicator.single();
    }

    /** Refuses several processes without CUDA (callers check it early, before anything slow). */
    public static void check(int world, boolean cuda) {
        if (world > 1 && !cuda) {
            throw new IllegalArgumentException("WORLD_SIZE " + world + ": data parallelism across processes runs over NCCL, "
                    + "so it needs --device cuda (one GPU per rank)");
        }
    }
}
