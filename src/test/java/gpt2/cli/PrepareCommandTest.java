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
        assertTrue(r[2].startsWith("tinyshakespeare: error: no local input.txt"), "the prefix once: " + r[2]);
        // it says where it looked for a local copy and how to name one
        assertTrue(r[2].contains("looked at $GPT2_TINYSHAKESPEARE") && r[2].contains(dir.resolve("input.txt") + ": absent")
                && r[2].contains("set GPT2_TINYSHAKESPEARE=FILE or pass --input FILE"), r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertFalse(Files.exists(dir.resolve("input.txt")));
        assertFalse(Files.exists(dir.resolve("input.txt.part")));
    }

    /** Issue 22.12: an offline first run left an empty data/tinyshakespeare/ and said only "ConnectException". */
    @Test
    void anUnreachableHostIsNamedAndLeavesNoFolder(@TempDir Path dir) throws Exception {
        withoutLocalCopyVariable();
        int port;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort(); // closed again: nothing listens there
        }
        Path out = dir.resolve("data").resolve("tinyshakespeare");
        String[] r = InfoCommandTest.run("prepare", "tinyshakespeare", "--output_dir", out.toString(), "--url",
                "http://127.0.0.1:" + port + "/input.txt");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("connection refused by 127.0.0.1:" + port) && r[2].contains("pass --input FILE"), r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertFalse(Files.exists(out), "no empty folder left behind");
    }

    @Test
    void hellaswagDownloadsAndChecks(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("prepare", "hellaswag", "--output_dir", dir.toString(), "--url", base + "/hellaswag.jsonl");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("hellaswag: 3 examples checked in "), r[1]);
        assertTrue(r[1].contains("wrote " + dir.resolve("hellaswag_val.jsonl")), r[1]);
        assertFalse(r[1].contains("tokens"), "nothing is tokenized here: " + r[1]);
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

    /** Issue 22.10: a plainly named command for one's own corpus: `prepare text --input DIR_OR_FILE`. */
    @Test
    void yourOwnTextIntoNamedShardsThatTrainReads(@TempDir Path dir) throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        Files.writeString(corpus.resolve("a.txt"), "first document<|endoftext|>second document<|endoftext|>");
        Files.writeString(corpus.resolve("b.txt"), "third document");
        Path out = dir.resolve("mine");
        String[] r = InfoCommandTest.run("prepare", "text", "--input", corpus.toString(), "--name", "mine", "--output_dir",
                out.toString(), "--shard_size", "4");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("mine: 3 documents, 9 tokens, 3 files"), r[1]);
        assertTrue(Files.exists(out.resolve("mine_val_000000.bin")) && Files.exists(out.resolve("mine_train_000001.bin")), r[1]);
        assertTrue(Files.readString(out.resolve("prepare.json")).replace(" ", "").contains("\"dataset\":\"mine\""));
        // the same command again: nothing to do; into a folder holding another set: refused
        r = InfoCommandTest.run("prepare", "text", "--input", corpus.toString(), "--name", "mine", "--output_dir", out.toString(),
                "--shard_size", "4");
        assertEquals("0", r[0], r[2]);
        r = InfoCommandTest.run("prepare", "fineweb-edu", corpus.toString(), "--output_dir", out.toString(), "--shard_size", "4");
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("holds the mine set (prepare.json); prepare fineweb-edu into another folder"), r[2]);
        r = InfoCommandTest.run("prepare", "text", "--output_dir", out.toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--input: name the files or folders to tokenize"), r[2]);
        r = InfoCommandTest.run("prepare", "text", "--input", corpus.toString(), "--name", "../evil");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--name ../evil: letters, digits"), r[2]);
    }

    /**
     * Issue 29: `prepare text` on a corpus smaller than one shard wrote a validation shard only, and
     * `train` had nothing to train on. The split is made and said, and train reads it.
     */
    @Test
    void aSmallCorpusGetsATrainingShardThatTrainReads(@TempDir Path dir) throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 40; i++) text.append("Document ").append(i).append(": the river ran to the sea.<|endoftext|>");
        Files.writeString(corpus.resolve("a.txt"), text);
        Path out = dir.resolve("small");
        String[] r = InfoCommandTest.run("prepare", "text", "--input", corpus.toString(), "--name", "small", "--output_dir",
                out.toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("2 files") && r[1].contains("note: the corpus (") && r[1].contains("small_val_000000.bin holds its "
                + "first tenth"), r[1]);
        String[] t = InfoCommandTest.run("train", "--input_train_bin", out.resolve("small_train_*.bin").toString(),
                "--input_val_bin", out.resolve("small_val_*.bin").toString(), "--model", "seed-d12", "--n_layer", "1",
                "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--threads", "2", "--batch_size", "2",
                "--sequence_length", "8", "--total_batch_size", "16", "--num_iterations", "2", "--val_loss_every", "2",
                "--val_max_steps", "1", "--sample_every", "0");
        assertEquals("0", t[0], t[2]);
        assertTrue(t[1].contains("step    2/2") && t[1].contains("val loss"), t[1]);
    }

    @Test
    void badInputsAreOneLineErrors(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("prepare", "fineweb-edu", dir.resolve("nope").toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("nope: no such file or folder"), r[2]);
        r = InfoCommandTest.run("prepare", "fineweb-edu", "--downloads", "0", "--output_dir", dir.toString());
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--downloads must be >= 1"), r[2]);
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

    /** Parquet files of FineWeb-Edu's shape (a text column) made with DuckDB. */
    static byte[] parquet(Path dir, String name, int first, int count) throws Exception {
        Path f = dir.resolve(name);
        try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:duckdb:"); java.sql.Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t (id INTEGER, text VARCHAR)");
            for (int i = first; i < first + count; i++) {
                st.execute("INSERT INTO t VALUES (" + i + ", 'Document number " + i + " is about the sea and the " + (i % 7) + " ships.')");
            }
            st.execute("COPY (SELECT * FROM t ORDER BY id) TO '" + f.toString().replace("'", "''") + "' (FORMAT parquet)");
        }
        return Files.readAllBytes(f);
    }

    /**
     * With no inputs: the subset from the Hub (here one on 127.0.0.1, in a child JVM's HF_ENDPOINT),
     * a transfer cut and resumed, the shards byte for byte those of the same files prepared locally;
     * offline, a rerun uses the downloaded files and keeps the shards.
     */
    @Test
    void finewebFromTheHub(@TempDir Path dir) throws Exception {
        Path made = Files.createDirectories(dir.resolve("made"));
        byte[] p0 = parquet(made, "000_00000.parquet", 0, 40), p1 = parquet(made, "001_00000.parquet", 40, 30);
        try (gpt2.io.FakeHub hub = new gpt2.io.FakeHub()) {
            hub.add("datasets", "test/fineweb", false, java.util.Map.of("sample/10BT/000_00000.parquet", p0,
                    "sample/10BT/001_00000.parquet", p1, "sample/100BT/000_00000.parquet", p1, "README.md", new byte[3]));
            hub.cutOnce.add("sample/10BT/000_00000.parquet");
            Path raw = dir.resolve("raw"), out = dir.resolve("out");
            String[] r = DownloadCommandTest.child(java.util.Map.of("HF_ENDPOINT", hub.url()), "prepare", "fineweb-edu",
                    "--repo", "test/fineweb", "--raw_dir", raw.toString(), "--output_dir", out.toString(), "--shard_size", "300",
                    "--threads", "1", "--downloads", "2");
            assertEquals("0", r[0], r[1]);
            assertTrue(r[1].contains("fineweb-edu: 2 parquet files, " + gpt2.data.Progress.size(p0.length + p1.length)
                    + ", from test/fineweb/sample/10BT"), r[1]);
            assertTrue(r[1].matches("(?s).*fineweb-edu: 2 parquet files, \\d+\\.\\d KB, from.*"), "a few KB in KB: " + r[1]);
            assertFalse(r[1].contains("0.00 GB"), r[1]);
            assertTrue(java.util.Arrays.equals(p0, Files.readAllBytes(raw.resolve("sample/10BT/000_00000.parquet"))));
            assertTrue(hub.log.stream().anyMatch(l -> l.contains("000_00000.parquet range=bytes=")), "resumed with Range: " + hub.log);
            // the same files prepared from local inputs give the same shards
            String[] local = InfoCommandTest.run("prepare", "fineweb-edu", made.toString(), "--output_dir", dir.resolve("local").toString(),
                    "--shard_size", "300", "--threads", "1");
            assertEquals("0", local[0], local[2]);
            java.util.List<Path> shards;
            try (var s = Files.list(out)) {
                shards = s.filter(f -> f.toString().endsWith(".bin")).sorted().toList();
            }
            assertTrue(shards.size() >= 2, "shards: " + shards);
            for (Path f : shards) {
                assertTrue(java.util.Arrays.equals(Files.readAllBytes(f), Files.readAllBytes(dir.resolve("local").resolve(f.getFileName()))),
                        f.getFileName() + " differs from the locally prepared one");
            }
            // offline: nothing reaches the Hub, the prepared shards are kept
            int requests = hub.log.size();
            r = DownloadCommandTest.child(java.util.Map.of("HF_ENDPOINT", hub.url(), "HF_HUB_OFFLINE", "1"), "prepare", "fineweb-edu",
                    "--repo", "test/fineweb", "--raw_dir", raw.toString(), "--output_dir", out.toString(), "--shard_size", "300",
                    "--threads", "1");
            assertEquals("0", r[0], r[1]);
            assertEquals(requests, hub.log.size());
        }
    }
}
