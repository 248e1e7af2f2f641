package gpt2.parallel;

import org.junit.jupiter.api.Test;

import java.net.ServerSocket;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The rendezvous on 127.0.0.1: the payload reaches every rank; missing ranks are named. */
class RendezvousTest {

    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Test
    void everyRankGetsRankZerosPayload() throws Exception {
        int port = freePort();
        byte[] id = new byte[128];
        for (int i = 0; i < id.length; i++) id[i] = (byte) (i * 7);
        ExecutorService pool = Executors.newFixedThreadPool(3); // one thread per rank: each blocks
        try {
            CompletableFuture<Void> server = CompletableFuture.runAsync(() -> Rendezvous.serve("127.0.0.1", port, 3, id, Duration.ofSeconds(20)), pool);
            CompletableFuture<byte[]> r1 = CompletableFuture.supplyAsync(() -> Rendezvous.fetch("127.0.0.1", port, 1, Duration.ofSeconds(20)), pool);
            CompletableFuture<byte[]> r2 = CompletableFuture.supplyAsync(() -> Rendezvous.fetch("127.0.0.1", port, 2, Duration.ofSeconds(20)), pool);
            assertArrayEquals(id, r1.get());
            assertArrayEquals(id, r2.get());
            server.get();
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void ranksThatNeverArriveAreNamed() throws Exception {
        int port = freePort();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            CompletableFuture<byte[]> r1 = CompletableFuture.supplyAsync(() -> Rendezvous.fetch("127.0.0.1", port, 1, Duration.ofSeconds(10)), pool);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> Rendezvous.serve("127.0.0.1", port, 4, new byte[128], Duration.ofSeconds(2)));
            assertTrue(e.getMessage().contains("rendezvous on 127.0.0.1:" + port + " timed out after 2 s: ranks [2, 3] of 4 never arrived"),
                    e.getMessage());
            r1.get();
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void rankZeroThatNeverAnswersIsNamed() throws Exception {
        int port = freePort();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Rendezvous.fetch("127.0.0.1", port, 1, Duration.ofSeconds(1)));
        assertTrue(e.getMessage().contains("rank 1 could not reach rank 0 at 127.0.0.1:" + port + " within 1 s"), e.getMessage());
    }
}
