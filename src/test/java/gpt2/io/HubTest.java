package gpt2.io;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Hub client against a Hub on 127.0.0.1 (FakeHub): listing, resumable checked downloads, retries, tokens, offline. */
class HubTest {

    private FakeHub hub;
    private byte[] a, b;

    @BeforeEach
    void start() throws Exception {
        hub = new FakeHub();
        Random r = new Random(3);
        a = new byte[300_000];
        b = new byte[123_457];
        r.nextBytes(a);
        r.nextBytes(b);
        hub.add("datasets", "org/corpus", false, Map.of("sample/10BT/000_00000.parquet", a, "sample/10BT/001_00000.parquet", b,
                "README.md", "hello".getBytes()));
        hub.add("models", "org/gated", true, Map.of("config.json", "{}".getBytes()));
    }

    @AfterEach
    void stop() {
        hub.close();
    }

    private Hub client(String token, boolean offline) {
        return new Hub(hub.url(), token, offline, 4, 10);
    }

    @Test
    void listsEveryPageOfADirectory() {
        List<Hub.RepoFile> files = client(null, false).list("datasets", "org/corpus", "main", "sample/10BT");
        assertEquals(List.of("sample/10BT/000_00000.parquet", "sample/10BT/001_00000.parquet"),
                files.stream().map(Hub.RepoFile::path).sorted().toList());
        assertEquals(a.length, files.stream().filter(f -> f.path().startsWith("sample/10BT/000")).findFirst().orElseThrow().size());
        assertTrue(files.stream().allMatch(f -> f.sha256() != null && f.sha256().length() == 64));
    }

    @Test
    void aDatasetDownloadsWithOneTransferCutAndResumed(@TempDir Path dir) throws Exception {
        Hub c = client(null, false);
        List<Hub.RepoFile> files = new ArrayList<>(c.list("datasets", "org/corpus", "main", "sample/10BT"));
        files.sort((x, y) -> x.path().compareTo(y.path()));
        hub.cutOnce.add("sample/10BT/000_00000.parquet");
        List<Path> targets = files.stream().map(f -> dir.resolve(f.path())).toList();
        Hub.Counter bytes = new Hub.Counter();
        List<Integer> done = Collections.synchronizedList(new ArrayList<>());
        c.downloadAll("datasets", "org/corpus", "main", files, targets, 2, bytes, done::add);
        assertArrayEquals(a, Files.readAllBytes(targets.get(0)));
        assertArrayEquals(b, Files.readAllBytes(targets.get(1)));
        assertEquals(2, done.size());
        assertEquals(a.length + b.length, bytes.get(), "bytes counted once each");
        // the cut transfer was continued with a Range request, not restarted
        // (from wherever the cut left it: what arrived before the connection closed, not the whole file again)
        assertTrue(hub.log.stream().anyMatch(l -> l.matches(".*/cdn/datasets/org/corpus/sample/10BT/000_00000\\.parquet range=bytes=[1-9]\\d*- .*")),
                hub.log.toString());
        assertFalse(Files.exists(dir.resolve("sample/10BT/000_00000.parquet.incomplete")));
        // a second run finds the files in place and asks for nothing but the listing
        int requests = hub.log.size();
        c.downloadAll("datasets", "org/corpus", "main", files, targets, 2, new Hub.Counter(), i -> { });
        assertEquals(requests, hub.log.size());
    }

    /** Issue 22.5: an unreachable Hub was 33 s of silence, then "...: null". */
    @Test
    void aHostThatRefusesIsNamedAndEachRetryIsSaid() {
        String url = hub.url();
        hub.close(); // nothing listens on its port now
        List<String> notices = Collections.synchronizedList(new ArrayList<>());
        Hub c = new Hub(url, null, false, 3, 10).withNotices(notices::add);
        var e = assertThrows(IllegalStateException.class, () -> c.list("datasets", "org/corpus", "main", ""));
        String port = url.replaceAll(".*:(\\d+).*", "$1");
        assertTrue(e.getMessage().contains("connection refused by 127.0.0.1:" + port + " (3 tries)") && !e.getMessage().contains("null"),
                e.getMessage());
        assertEquals(2, notices.size(), notices.toString());
        assertTrue(notices.get(0).contains("connection refused by 127.0.0.1:" + port + "; try 2 of 3 in 10 ms"), notices.toString());
    }

    /** Issue 22.5: a transfer cut for good says how much arrived and that a rerun continues from there. */
    @Test
    void aCutTransferThatCannotBeResumedSaysHowToContinue(@TempDir Path dir) {
        Hub.RepoFile f = client(null, false).list("datasets", "org/corpus", "main", "sample/10BT").stream()
                .filter(x -> x.path().endsWith("000_00000.parquet")).findFirst().orElseThrow();
        hub.cutOnce.add(f.path());
        List<String> notices = Collections.synchronizedList(new ArrayList<>());
        Hub c = new Hub(hub.url(), null, false, 3, 10).withNotices(m -> {
            notices.add(m);
            hub.close(); // the Hub goes away after the cut
        });
        Path target = dir.resolve("x.parquet");
        var e = assertThrows(IllegalStateException.class, () -> c.download("datasets", "org/corpus", "main", f, target, n -> { }));
        assertTrue(notices.getFirst().contains("cut before the answer was complete after ") && notices.getFirst().contains("try 2 of 3"),
                notices.toString());
        Path part = dir.resolve("x.parquet.incomplete");
        assertTrue(Files.exists(part), "what arrived is kept");
        long have = part.toFile().length();
        assertTrue(have > 0 && have < a.length, "partly there: " + have);
        assertTrue(e.getMessage().contains("connection refused by 127.0.0.1") && e.getMessage().contains(
                "rerun to continue from the " + have + " bytes already in " + part), e.getMessage());
    }

    @Test
    void aCorruptedFileIsRefusedByItsHash(@TempDir Path dir) {
        Hub c = client(null, false);
        Hub.RepoFile f = c.list("datasets", "org/corpus", "main", "sample/10BT").getFirst();
        hub.corrupt.add(f.path());
        var e = assertThrows(IllegalStateException.class, () -> c.download("datasets", "org/corpus", "main", f,
                dir.resolve("x.parquet"), n -> { }));
        assertTrue(e.getMessage().contains("checksum mismatch (SHA-256") && e.getMessage().contains("/resolve/main/"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("x.parquet")));
        assertFalse(Files.exists(dir.resolve("x.parquet.incomplete")));
    }

    @Test
    void tooManyRequestsAreRetried() {
        hub.tooManyRequests.set(2);
        assertEquals(3, client(null, false).list("datasets", "org/corpus", "main", "").size());
        assertEquals(3, hub.log.stream().filter(l -> l.startsWith("GET /api/")).count() - 2, hub.log.toString());
    }

    @Test
    void aGatedRepoNeedsTheTokenWhichNeverShows(@TempDir Path dir) {
        var e = assertThrows(IllegalStateException.class, () -> client(null, false).list("models", "org/gated", "main", ""));
        assertTrue(e.getMessage().contains("HTTP 401") && e.getMessage().contains("set HF_TOKEN or run huggingface-cli login"),
                e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
        Hub c = client(FakeHub.TOKEN, false);
        Hub.RepoFile f = c.list("models", "org/gated", "main", "").getFirst();
        c.download("models", "org/gated", "main", f, dir.resolve("config.json"), n -> { });
        assertTrue(Files.exists(dir.resolve("config.json")));
        // the token went to the Hub's host, and is in no message
        var wrong = assertThrows(IllegalStateException.class, () -> client("hf_wrong", false).list("models", "org/gated", "main", ""));
        assertFalse(wrong.getMessage().contains("hf_wrong") || wrong.getMessage().contains(FakeHub.TOKEN), wrong.getMessage());
    }

    @Test
    void offlineUsesOnlyWhatIsThere(@TempDir Path dir) throws Exception {
        Hub c = client(null, true);
        assertThrows(IllegalStateException.class, () -> c.list("datasets", "org/corpus", "main", ""));
        Files.write(dir.resolve("have.bin"), new byte[10]);
        assertEquals(dir.resolve("have.bin"), c.download("datasets", "org/corpus", "main",
                new Hub.RepoFile("x", 10, null, null), dir.resolve("have.bin"), n -> { }));
        var e = assertThrows(IllegalStateException.class, () -> c.download("datasets", "org/corpus", "main",
                new Hub.RepoFile("y", 10, null, null), dir.resolve("missing.bin"), n -> { }));
        assertTrue(e.getMessage().contains("HF_HUB_OFFLINE=1") && e.getMessage().contains("missing.bin"), e.getMessage());
        assertTrue(hub.log.isEmpty(), "offline, nothing reaches the network: " + hub.log);
    }

    @Test
    void theEnvironmentConfiguresTheClient(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("token"), FakeHub.TOKEN + "\n");
        Hub h = Hub.fromEnvironment(Map.of("HF_ENDPOINT", hub.url(), "HF_HOME", dir.toString()));
        assertEquals(hub.url(), h.endpoint());
        assertEquals(1, h.list("models", "org/gated", "main", "").size(), "the token file of huggingface-cli login is used");
        assertTrue(Hub.fromEnvironment(Map.of("HF_HUB_OFFLINE", "1")).offline());
        assertEquals("https://huggingface.co", Hub.fromEnvironment(Map.of()).endpoint());
        var e = assertThrows(IllegalStateException.class, () -> client(null, false).list("datasets", "org/none", "main", ""));
        assertTrue(e.getMessage().contains("HTTP 404") && e.getMessage().contains("/api/datasets/org/none/tree/main"), e.getMessage());
    }
}
