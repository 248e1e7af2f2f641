package gpt2.cli;

import com.sun.net.httpserver.HttpServer;
import gpt2.data.TokenShard;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `gpt2 prepare`, with downloads served by a test HTTP server on 127.0.0.1. */
class PrepareCommandTest {

    private HttpServer server;
    private final AtomicInteger requests = new AtomicInteger();
    private String base;

    @BeforeEach
    void start() throws Exception {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/shakespeare.txt", ex -> {
            requests.incrementAndGet();
            byte[] body = shakespeareLike().getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        server.createContext("/hellaswag.jsonl", ex -> {
            byte[] body = (HellaSwagLine.GOOD + "\n").repeat(3).getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        server.createContext("/missing", ex -> {
            ex.sendResponseHeaders(404, -1);
            ex.close();
        });
        server.start();
        base = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    /** Enough blank-line-separated dialogue for more than 32,768 tokens. */
    static String shakespeareLike() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 3000; i++) {
            sb.append("Citizen ").append(i % 7).append(":\nWe are accounted poor citizens, the patricians good.\n\n");
        }
        return sb.toString();
    }

    /** These tests need prepare to look for input.txt itself, not at a copy the environment names. */
    private static void withoutLocalCopyVariable() {
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getenv("GPT2_TINYSHAKESPEARE") == null,
                "GPT2_TINYSHAKESPEARE is set in this environment");
    }

    @Test
    void tinyShakespeareDownloadsOnceThenUsesTheLocalCopy(@TempDir Path dir) throws Exception {
        withoutLocalCopyVariable();
        String[] r = InfoCommandTest.run("prepare", "tinyshakespeare", "--output_dir", dir.toString(),
                "--url", base + "/shakespeare.txt");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("tinyshakespeare: 3,001 documents"), r[1]);
        try (TokenShard val = TokenShard.open(dir.resolve("tiny_shakespeare_val.bin"))) {
            assertEquals(32_768, val.size());
            assertEquals(TokenShard.MAGIC_LLMC, val.magic());
        }
        r = InfoCommandTest.run("prepare", "tinyshakespeare", "--output_dir", dir.toString(),
                "--url", base + "/shakespeare.txt", "--magic", "20250211");
        assertEquals("0", r[0], r[2]);
        assertEquals(1, requests.get(), "the second run must use input.txt already in the folder");
        try (TokenShard val = TokenShard.open(dir.resolve("tiny_shakespeare_val.bin"))) {
            assertEquals(TokenShard.MAGIC_SEED, val.magic());
        }
        // offline, with the shards there: nothing is fetched, nothing is rewritten
        Files.delete(dir.resolve("input.txt"));
        long modified = Files.getLastModifiedTime(dir.resolve("tiny_shakespeare_train.bin")).toMillis();
        r = InfoCommandTest.run("prepare", "tinyshakespeare", "--output_dir", dir.toString(), "--url", base + "/missing",
                "--magic", "20250211");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("the shards are already in " + dir), r[1]);
        assertEquals(modified, Files.getLastModifiedTime(dir.resolve("tiny_shakespeare_train.bin")).toMillis());
    }

    @Test
    void failedDownloadIsAnErrorAndLeavesNothing(@TempDir Path dir) {
        withoutLocalCopyVariable();
        String[] r = InfoCommandTest.run("prepare", "tinyshakespeare", "--output_dir", dir.toString(), "--url", base + "/missing");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("HTTP 404"), r[2]);
        // it says where it looked for a local copy and how to name one
        assertTrue(r[2].contains("looked at $GPT2_TINYSHAKESPEARE") && r[2].contains(dir.resolve("input.txt") + ": absent")
                && r[2].contains("set GPT2_TINYSHAKESPEARE=FILE or pass --input FILE"), r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertFalse(Files.exists(dir.resolve("input.txt")));
        assertFalse(Files.exists(dir.resolve("input.txt.part")));
    }

    @Test
    void hellaswagDownloadsAndChecks(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("prepare", "hellaswag", "--output_dir", dir.toString(), "--url", base + "/hellaswag.jsonl");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("hellaswag: 3 documents"), r[1]);
        assertTrue(Files.exists(dir.resolve("hellaswag_val.jsonl")));
    }

    @Test
    void finewebFromAFolder(@TempDir Path dir) throws Exception {
        Path raw = Files.createDirectories(dir.resolve("raw"));
        Files.writeString(raw.resolve("a.txt"), "first document<|endoftext|>second document<|endoftext|>");
        Files.writeString(raw.resolve("b.txt"), "third document");
        String[] r = InfoCommandTest.run("prepare", "fineweb-edu", raw.toString(), "--output_dir", dir.resolve("out").toString(),
                "--shard_size", "4");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("fineweb-edu: 3 documents, 9 tokens, 3 files"), r[1]);
    }

    @Test
    void badInputsAreOneLineErrors(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("prepare", "fineweb-edu", "--output_dir", dir.toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("needs local input files"), r[2]);
        r = InfoCommandTest.run("prepare", "fineweb-edu", dir.resolve("nope").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("nope: no such file or folder"), r[2]);
        r = InfoCommandTest.run("prepare", "tinyshakespeare", "--magic", "7", "--output_dir", dir.toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--magic 7"), r[2]);
        r = InfoCommandTest.run("prepare", "cifar10");
        assertEquals("2", r[0]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
    }

    /** One valid HellaSwag example. */
    static final class HellaSwagLine {
        static final String GOOD = "{\"ctx\": \"A man is sitting on a roof. he\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 3}";
    }
}
