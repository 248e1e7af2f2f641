package gpt2.backend.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The one parallelism helper of the CPU backend: splits a range of work items into contiguous
 * chunks, one per thread of a fixed set of workers, with the calling thread taking the first chunk.
 * Chunk boundaries depend only on the range and the thread count, so results are repeatable.
 *
 * <p>A hand-off is a volatile write of the job that the workers, spinning briefly after their last
 * chunk, see at once; a worker that found nothing for {@link #SPIN_NANOS} parks and is unparked.
 * (An executor's submit and future, parking every time, cost about 44 microseconds a call on this
 * project's 2-core machine: several milliseconds per decoded token, which makes ~100 calls.) The
 * caller likewise spins, then parks, until the other chunks are done. Calls from several threads
 * take turns; a call from inside a chunk (nesting) runs its whole range on the calling thread.
 */
final class Parallel implements AutoCloseable {

    @FunctionalInterface
    interface Range {
        void run(long start, long end);
    }

    /** How long an idle worker (or a waiting caller) spins before it parks. */
    private static final long SPIN_NANOS = 50_000;

    /** One call's work: chunk i of {@code chunks} is [n i / chunks, n (i+1) / chunks). */
    private static final class Job {
        final Range body;
        final long n;
        final int chunks;
        final Thread caller;
        final AtomicInteger remaining;
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Job(Range body, long n, int chunks, Thread caller) {
            this.body = body;
            this.n = n;
            this.chunks = chunks;
            this.caller = caller;
            this.remaining = new AtomicInteger(chunks - 1);
        }

        void run(int i) {
            body.run(n * i / chunks, n * (i + 1) / chunks);
        }
    }

    private final int threads;
    private final Thread[] workers;
    private final ReentrantLock turn = new ReentrantLock();
    private volatile Job job;
    private volatile boolean closed;

    Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int w = 0; w < workers.length; w++) {
            int chunk = w + 1;
            Thread t = new Thread(() -> work(chunk), "gpt2-cpu-worker-" + chunk);
            t.setDaemon(true);
            workers[w] = t;
            t.start();
        }
    }

    int threads() {
        return threads;
    }

    /** A worker's loop: wait for a job newer than the last, run its chunk (if it has one), repeat. */
    private void work(int chunk) {
        Job last = null;
        while (!closed) {
            Job j = job;
            if (j == last) {
                long spinUntil = System.nanoTime() + SPIN_NANOS;
                while ((j = job) == last && !closed && System.nanoTime() < spinUntil) Thread.onSpinWait();
                if (j == last) {
                    LockSupport.park(this);
                    continue;
                }
            }
            last = j;
            if (chunk < j.chunks) {
                try {
                    j.run(chunk);
                } catch (Throwable t) {
                    j.failure.compareAndSet(null, t);
                }
                if (j.remaining.decrementAndGet() == 0) LockSupport.unpark(j.caller);
            }
        }
    }

    /**
     * Runs body over [0, n) in up to {@code threads} chunks of at least {@code minChunk} items.
     */
    void forRange(long n, long minChunk, Range body) {
        if (n <= 0) return;
        int chunks = (int) Math.max(1, Math.min(threads, n / Math.max(1, minChunk)));
        if (chunks == 1 || turn.isHeldByCurrentThread() || isWorker()) { // one chunk, or a nested call: all here
            body.run(0, n);
            return;
        }
        turn.lock();
        try {
            Job j = new Job(body, n, chunks, Thread.currentThread());
            job = j;
            for (int w = 0; w < chunks - 1; w++) LockSupport.unpark(workers[w]);
            Throwable failure = null;
            try {
                j.run(0);
            } catch (Throwable t) {
                failure = t;
            }
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            while (j.remaining.get() > 0) {
                if (System.nanoTime() < spinUntil) Thread.onSpinWait();
                else LockSupport.parkNanos(this, 100_000);
            }
            if (failure == null) failure = j.failure.get();
            if (failure instanceof RuntimeException re) throw re;
            if (failure instanceof Error err) throw err;
            if (failure != null) throw new IllegalStateException(failure);
        } finally {
            turn.unlock();
        }
    }

    private boolean isWorker() {
        Thread me = Thread.currentThread();
        for (Thread w : workers) if (w == me) return true;
        return false;
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
        closed = true;
        for (Thread w : workers) LockSupport.unpark(w);
    }
}
