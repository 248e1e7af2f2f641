package gpt2.parallel;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;

/**
 * Collective operations among the ranks of a data-parallel run. Every rank calls the same
 * operations in the same order with buffers of the same length.
 */
public interface Communicator extends AutoCloseable {

    int rank();

    int worldSize();

    /** In place: every rank's buffer becomes the element-wise mean over ranks. */
    void allReduceAverage(Backend backend, Buffer buffer);

    /**
     * Starts averaging one bucket (a slice of the gradients) while the caller goes on with the
     * backward pass; the result is guaranteed only after {@link #finishPending}. By default it is
     * synchronous.
     */
    default void allReduceAverageAsync(Backend backend, Buffer bucket) {
        allReduceAverage(backend, bucket);
    }

    /** Waits until every bucket started by {@link #allReduceAverageAsync} is done. */
    default void finishPending() {
    }

    /** The sum over ranks of one number per rank (losses, squared norms), the same on every rank. */
    double allReduceSum(double value);

    /**
     * In place: afterwards elements [shard(n, rank, world)) of every rank's buffer hold the mean over
     * ranks (the rest is unspecified). ZeRO-1's gradient step.
     */
    void reduceScatterAverage(Backend backend, Buffer buffer);

    /** In place: every rank's shard [shard(n, rank, world)) is copied into every rank's buffer. */
    void allGather(Backend backend, Buffer buffer);

    /** Rank r's shard [lo, hi) of n elements: contiguous, sizes differing by at most one. */
    static long[] shard(long n, int rank, int world) {
        return new long[]{n * rank / world, n * (rank + 1) / world};
    }

    /** In place: rank 0's buffer is copied to every rank. */
    void broadcast(Backend backend, Buffer buffer);

    void barrier();

    @Override
    default void close() {
    }

    /** A world of one: every collective is the identity. */
    static Communicator single() {
        return new Communicator() {
            public int rank() { return 0; }
            public int worldSize() { return 1; }
            public void allReduceAverage(Backend backend, Buffer buffer) { }
            public double allReduceSum(double value) { return value; }
            public void broadcast(Backend backend, Buffer buffer) { }
            public void reduceScatterAverage(Backend backend, Buffer buffer) { }
            public void allGather(Backend backend, Buffer buffer) { }
            public void barrier() { }
        };
    }
}
