package gpt2.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 serve`'s refusals, each one line with exit code 2, before anything listens. */
class ServeCommandTest {

    private static void refused(String want, String... args) {
        String[] r = InfoCommandTest.run(args);
        assertEquals("2", r[0], r[1] + r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertTrue(r[2].startsWith("serve: error: ") && r[2].contains(want), r[2]);
    }

    @Test
    void badFlagsAreOneLineErrors(@TempDir Path dir) throws Exception {
        refused("--runs " + dir.resolve("nope") + ": no such folder", "serve", "--runs", dir.resolve("nope").toString(), "--port", "0");
        refused("--host 0.0.0.0 is not the loopback: give a --token", "serve", "--runs", dir.toString(), "--host", "0.0.0.0",
                "--port", "0");
        refused("--token: at least 16 characters", "serve", "--runs", dir.toString(), "--token", "short", "--port", "0");
        refused("--max_queue must be >= 0", "serve", "--runs", dir.toString(), "--max_queue", "-1", "--port", "0");
        refused("--poll_ms must be >= 50", "serve", "--runs", dir.toString(), "--poll_ms", "1", "--port", "0");
        try (ServerSocket busy = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            refused("--port " + busy.getLocalPort() + ": cannot listen on 127.0.0.1", "serve", "--runs", dir.toString(), "--port",
                    String.valueOf(busy.getLocalPort()));
        }
    }
}
