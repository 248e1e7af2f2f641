package gpt2.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The one parallelism helper of the CPU backend: splits a range of work items into contiguous
 * chunks, one per thread of a fixed pool, with the calling thread taking the first chunk.
 * Chunk boundaries depend only on the range and the thread count, so results are repeatable.
 * Calls must not nest.
 */
final class Parallel implements AutoCloseable {

    @FunctionalInterface
    interface Range {
        void run(long start, long end);
    }

    private final int threads;
    private final ExecutorService pool;

    Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        this.threads = threads;
        this.pool = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "gpt2-cpu-worker");
            t.setDaemon(true);
            return t;
        });
    }

    int threads() {
        return threads;
    }

    /**
     * Runs body over [0, n) in up to {@code threads} chunks of at least {@code minChunk} items.
     */
    void forRange(long n, long minChunk, Range body) {
        if (n <= 0) return;
        int chunks = (int) Math.max(1, Math.min(threads, n / Math.max(1, minChunk)));
        if (chunks == 1) {
            body.run(0, n);
            return;
        }
        List<Future<?>> futures = new ArrayList<>(chunks - 1);
        for (int i = 1; i < chunks; i++) {
            long s = n * i / chunks, e = n * (i + 1) / chunks;
            futures.add(pool.submit(() -> body.run(s, e)));
        }
        Throwable failure = null;
        try {
            body.run(0, n / chunks);
        } catch (Throwable t) {
            failure = t;
        }
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (ExecutionException e) {
                if (failure == null) failure = e.getCause();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                if (failure == null) failure = e;
            }
        }
        if (failure instanceof RuntimeException re) throw re;
        if (failure instanceof Error err) throw err;
        if (failure != null) throw new IllegalStateException(failure);
    }

    /**
     * As {@link #forRange}, with each thread's chunk handed to body in blocks of at most {@code block}
     * items. A kernel method called once per block is compiled by the JIT as a whole method; one call
     * looping over millions of items is compiled only while it runs (on-stack replacement), where the
     * Vector API's operations were measured several times slower.
     */
    void forBlocks(long n, long block, Range body) {
        forRange(n, block, (s, e) -> {
            for (long b = s; b < e; b += block) body.run(b, Math.min(e, b + block));
        });
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdownNow();
    }
}
