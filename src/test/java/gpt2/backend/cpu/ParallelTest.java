package gpt2.backend.cpu;

import org.junit.jupiter.api.Test;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CPU backend's hand-off: every item once, in the documented chunks, failures and nesting handled. */
class ParallelTest {

    @Test
    void everyItemRunsOnceInTheDocumentedChunks() {
        try (Parallel par = new Parallel(3)) {
            for (int rep = 0; rep < 200; rep++) { // many calls in a row: workers spinning, then parked
                long n = 1000 + rep;
                int[] seen = new int[(int) n];
                ConcurrentHashMap<Long, Long> chunks = new ConcurrentHashMap<>();
                par.forRange(n, 1, (s, e) -> {
                    chunks.put(s, e);
                    for (long i = s; i < e; i++) seen[(int) i]++;
                });
                for (int i = 0; i < n; i++) assertEquals(1, seen[i], "item " + i + " of " + n);
                assertEquals(3, chunks.size());
                for (int c = 0; c < 3; c++) assertEquals(n * (c + 1) / 3, chunks.get(n * c / 3));
                if (rep % 50 == 0) sleep(5); // past the spin: the workers park and must be woken
            }
        }
    }

    @Test
    void aFailureInAWorkersChunkReachesTheCaller() {
        try (Parallel par = new Parallel(2)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> par.forRange(10, 1, (s, x) -> {
                if (s > 0) throw new IllegalStateException("chunk " + s);
            }));
            assertEquals("chunk 5", e.getMessage());
            AtomicLong sum = new AtomicLong(); // and the next call still runs
            par.forRange(10, 1, (s, x) -> sum.addAndGet(x - s));
            assertEquals(10, sum.get());
        }
    }

    @Test
    void aNestedCallRunsOnTheCallingThreadAndCallsFromTwoThreadsTakeTurns() throws Exception {
        try (Parallel par = new Parallel(2)) {
            AtomicLong nested = new AtomicLong();
            par.forRange(4, 1, (s, e) -> par.forRange(10, 1, (a, b) -> nested.addAndGet(b - a)));
            assertEquals(20, nested.get(), "each of the two chunks ran the nested range whole");
            AtomicLong total = new AtomicLong();
            Thread other = new Thread(() -> {
                for (int i = 0; i < 500; i++) par.forRange(100, 1, (s, e) -> total.addAndGet(e - s));
            });
            other.start();
            for (int i = 0; i < 500; i++) par.forRange(100, 1, (s, e) -> total.addAndGet(e - s));
            other.join(30_000);
            assertTrue(!other.isAlive(), "the other caller finished");
            assertEquals(100_000, total.get());
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
