package gpt2.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.function.Predicate;

/**
 * Debian's Chromium, headless, driven by Debian's chromedriver over the W3C WebDriver protocol
 * (JSON over HTTP on 127.0.0.1): open a page, run a script in it, wait for a condition, take a
 * screenshot. {@link #unavailable()} says why it cannot run here (the tests skip with it).
 */
final class HeadlessChrome implements AutoCloseable {
    static final Path CHROMIUM = Path.of("/usr/bin/chromium"), DRIVER = Path.of("/usr/bin/chromedriver");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Process driver;
    private final String base;
    private final String session;
    private final HttpClient http = HttpClient.newHttpClient();

    /** Why no headless Chromium can be driven here, or null. */
    static String unavailable() {
        if (!Files.isExecutable(CHROMIUM) || !Files.isExecutable(DRIVER)) {
            return "no " + CHROMIUM + " and " + DRIVER + " (Debian's chromium and chromium-driver; .ci/run installs them)";
        }
        return null;
    }

    HeadlessChrome(Path log) throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        driver = new ProcessBuilder(DRIVER.toString(), "--port=" + port, "--allowed-ips=127.0.0.1")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        base = "http://127.0.0.1:" + port;
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (true) {
            try {
                if (call("GET", "/status", null).path("value").path("ready").asBoolean()) break;
            } catch (IOException e) {
                // not listening yet
            }
            if (System.nanoTime() > deadline || !driver.isAlive()) {
                driver.destroyForcibly();
                throw new IllegalStateException("chromedriver did not start: " + Files.readString(log));
            }
            Thread.sleep(100);
        }
        ObjectNode caps = JsonNodeFactory.instance.objectNode();
        ObjectNode chrome = caps.putObject("capabilities").putObject("alwaysMatch").put("browserName", "chrome")
                .putObject("goog:chromeOptions").put("binary", CHROMIUM.toString());
        ArrayNode args = chrome.putArray("args");
        for (String a : new String[]{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1800", "--no-first-run", "--no-default-browser-check"}) {
            args.add(a);
        }
        JsonNode r = call("POST", "/session", caps);
        session = r.path("value").path("sessionId").asText(null);
        if (session == null) {
            driver.destroyForcibly();
            throw new IllegalStateException("chromedriver refused a session: " + r);
        }
    }

    void open(String url) throws Exception {
        call("POST", "/session/" + session + "/url", JsonNodeFactory.instance.objectNode().put("url", url));
    }

    /** Runs a script in the page ("return ..." gives a value) and returns its value. */
    JsonNode script(String js) throws Exception {
        ObjectNode body = JsonNodeFactory.instance.objectNode().put("script", js);
        body.putArray("args");
        JsonNode r = call("POST", "/session/" + session + "/execute/sync", body);
        if (r.path("value").has("error")) throw new IllegalStateException("script failed: " + r.path("value"));
        return r.path("value");
    }

    /** Polls a script until its value passes the test; the last value in the failure otherwise. */
    JsonNode await(String js, Predicate<JsonNode> ok, Duration timeout, String what) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        JsonNode v = null;
        while (System.nanoTime() < deadline) {
            v = script(js);
            if (ok.test(v)) return v;
            Thread.sleep(100);
        }
        throw new AssertionError("timed out after " + timeout.toSeconds() + " s waiting for " + what + "; last value: " + v);
    }

    void screenshot(Path png) throws Exception {
        JsonNode r = call("GET", "/session/" + session + "/screenshot", null);
        Files.write(png, Base64.getDecoder().decode(r.path("value").asText()));
    }

    private JsonNode call(String method, String path, JsonNode body) throws IOException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(60));
        b = switch (method) {
            case "GET" -> b.GET();
            case "DELETE" -> b.DELETE();
            default -> b.header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)));
        };
        try {
            return JSON.readTree(http.send(b.build(), HttpResponse.BodyHandlers.ofString()).body());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    @Override
    public void close() {
        try {
            if (session != null) call("DELETE", "/session/" + session, null);
        } catch (IOException e) {
            // the browser goes with the driver below
        } finally {
            driver.destroy();
            try {
                if (!driver.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) driver.destroyForcibly();
            } catch (InterruptedException e) {
                driver.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
