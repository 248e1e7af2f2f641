package gpt2.cli;

import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 30: `gpt2 prepare core` from a server on 127.0.0.1 (with Range requests), from a local file, and offline. */
class PrepareCoreTest {
    private HttpServer server;
    private final List<String> ranges = new CopyOnWriteArrayList<>();
    private byte[] good, bad;
    private String base;

    @BeforeEach
    void start(@TempDir Path dir) throws Exception {
        good = Files.readAllBytes(gpt2.eval.CoreTestBundles.zip(Files.createDirectories(dir.resolve("good"))));
        // a bundle whose task list names a file the archive lacks
        Path b = Files.createDirectories(dir.resolve("bad"));
        try (var in = new java.util.zip.ZipInputStream(new java.io.ByteArrayInputStream(good));
             var out = new java.util.zip.ZipOutputStream(Files.newOutputStream(b.resolve("bad.zip")))) {
            for (java.util.zip.ZipEntry e; (e = in.getNextEntry()) != null; ) {
                if (e.getName().endsWith("lm.jsonl")) continue;
                out.putNextEntry(new java.util.zip.ZipEntry(e.getName()));
                out.write(in.readAllBytes());
                out.closeEntry();
            }
        }
        bad = Files.readAllBytes(b.resolve("bad.zip"));
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        for (String name : new String[]{"/good.zip", "/bad.zip"}) {
            server.createContext(name, ex -> {
                byte[] body = name.equals("/good.zip") ? good : bad;
                String range = ex.getRequestHeaders().getFirst("Range");
                ranges.add(range == null ? "-" : range);
                if (range != null && range.startsWith("bytes=")) {
                    int from = Integer.parseInt(range.substring(6, range.length() - 1));
                    byte[] rest = java.util.Arrays.copyOfRange(body, from, body.length);
                    ex.getResponseHeaders().set("Content-Range", "bytes " + from + "-" + (body.length - 1) + "/" + body.length);
                    ex.sendResponseHeaders(206, rest.length);
                    ex.getResponseBody().write(rest);
                } else {
                    ex.sendResponseHeaders(200, body.length);
                    ex.getResponseBody().write(body);
                }
                ex.close();
            });
        }
        server.start();
        base = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    @Test
    void downloadsChecksAndResumes(@TempDir Path dir) throws Exception {
        String[] r = InfoCommandTest.run("prepare", "core", "--output_dir", dir.toString(), "--url", base + "/good.zip");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("core: 3 tasks, 16 examples checked in ") && r[1].contains("wrote " + dir.resolve("eval_bundle.zip")), r[1]);
        assertArrayEquals(good, Files.readAllBytes(dir.resolve("eval_bundle.zip")));
        assertEquals(List.of("-"), ranges);

        // an interrupted download: half of it in eval_bundle.zip.part; the rerun asks for the rest
        Path other = Files.createDirectories(dir.resolve("other"));
        Files.write(other.resolve("eval_bundle.zip.part"), java.util.Arrays.copyOf(good, good.length / 2));
        r = InfoCommandTest.run("prepare", "core", "--output_dir", other.toString(), "--url", base + "/good.zip");
        assertEquals("0", r[0], r[2]);
        assertEquals("bytes=" + good.length / 2 + "-", ranges.getLast());
        assertArrayEquals(good, Files.readAllBytes(other.resolve("eval_bundle.zip")));
        assertFalse(Files.exists(other.resolve("eval_bundle.zip.part")));

        // the bundle then serves gpt2 eval by --bundle
        String[] list = InfoCommandTest.run("eval", "--tasks", "list", "--bundle", other.resolve("eval_bundle.zip").toString());
        assertEquals("0", list[0], list[2]);
    }

    @Test
    void aBrokenArchiveIsRefusedAndNothingIsKept(@TempDir Path dir) {
        String[] r = InfoCommandTest.run("prepare", "core", "--output_dir", dir.toString(), "--url", base + "/bad.zip");
        assertEquals("2", r[0], r[1]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertTrue(r[2].contains("the downloaded bundle from " + base + "/bad.zip is not usable: 1 problem(s) in the eval bundle"), r[2]);
        assertFalse(Files.exists(dir.resolve("eval_bundle.zip")));
        assertFalse(Files.exists(dir.resolve("eval_bundle.zip.part")));
    }

    @Test
    void aLocalFileOrNoNetwork(@TempDir Path dir) throws Exception {
        Path local = gpt2.eval.CoreTestBundles.zip(Files.createDirectories(dir.resolve("local")));
        Path out = dir.resolve("data");
        String[] r = InfoCommandTest.run("prepare", "core", "--output_dir", out.toString(), "--input", local.toString());
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("core: 3 tasks") && r[1].contains("wrote " + out.resolve("eval_bundle.zip")), r[1]);
        r = InfoCommandTest.run("prepare", "core", "--input", dir.resolve("nope.zip").toString());
        assertEquals("2", r[0], r[1]);
        assertTrue(r[2].contains("--input " + dir.resolve("nope.zip") + ": no such file or folder"), r[2]);
        int closed;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        String url = "http://127.0.0.1:" + closed + "/eval_bundle.zip";
        r = InfoCommandTest.run("prepare", "core", "--output_dir", dir.resolve("offline").toString(), "--url", url);
        assertEquals("1", r[0], r[1]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
        assertTrue(r[2].contains("download of " + url + " failed") && r[2].contains("--input FILE"), r[2]);
        assertFalse(Files.exists(dir.resolve("offline")), "no folder left behind");
    }
}
