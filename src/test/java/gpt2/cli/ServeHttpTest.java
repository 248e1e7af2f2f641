package gpt2.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.model.Gpt2;
import gpt2.serve.Server;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 29: {@code gpt2 serve} over HTTP on 127.0.0.1, as a program would use it: every endpoint,
 * bad input, the token, traversal and links out of --runs refused, streaming, the queue's bound,
 * models evicted least recently used, and run folders changing underneath.
 */
class ServeHttpTest {

    @TempDir
    static Path tmp;
    static Path runs;
    static Backend backend;
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newHttpClient();

    /** A trained run ("trained": 4 steps, checkpoints at 2 and 4), and a secret outside --runs. */
    @BeforeAll
    static void trainARun() throws Exception {
        Path data = TrainCommandTest.shards(Files.createDirectories(tmp.resolve("data")));
        runs = Files.createDirectories(tmp.resolve("runs"));
        String[] r = InfoCommandTest.run(TrainCommandTest.args(data, runs.resolve("trained"), "--num_iterations", "4",
                "--save_every_niter", "2", "--val_loss_every", "2", "--sample_every", "2", "--vocab_size", "50257"));
        assertEquals("0", r[0], r[2]);
        Files.writeString(tmp.resolve("secret.txt"), "not for the web");
        backend = Backends.create("cpu", 2, false, false);
    }

    @AfterAll
    static void closeBackend() {
        if (backend != null) backend.close();
    }

    static Function<Path, Gpt2> loader() {
        return dir -> ModelSource.load(dir.toString(), backend, new PrintWriter(new StringWriter()));
    }

    static Server server(String token, int maxModels, int maxQueue, Function<Path, Gpt2> loader) throws Exception {
        return new Server(new Server.Options(runs, "127.0.0.1", 0, token, maxModels, maxQueue, 64, 4, 100), loader);
    }

    static HttpResponse<String> get(Server s, String path, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(s.url() + path.substring(1)));
        if (headers.length > 0) b.headers(headers);
        return HTTP.send(b.GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> post(Server s, String path, String body, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(s.url() + path.substring(1)))
                .header("Content-Type", "application/json");
        if (headers.length > 0) b.headers(headers);
        return HTTP.send(b.POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode json(HttpResponse<String> r) throws Exception {
        return JSON.readTree(r.body());
    }

    static String error(HttpResponse<String> r) throws Exception {
        return json(r).path("error").path("message").asText();
    }

    @Test
    void runsMetricsSamplesCheckpointsAndThePage() throws Exception {
        try (Server s = server(null, 2, 2, loader())) {
            assertTrue(s.url().startsWith("http://127.0.0.1:"), s.url());
            JsonNode list = json(get(s, "/api/runs")).get("runs");
            JsonNode run = null;
            for (JsonNode r : list) if (r.get("name").asText().equals("trained")) run = r;
            assertNotNull(run, list.toString());
            assertEquals("finished", run.get("state").asText());
            assertEquals(4, run.get("step").asInt());
            assertEquals(4, run.get("num_iterations").asInt());
            assertEquals("seed-d12", run.get("model").asText());
            assertTrue(run.get("loss").asDouble() > 0 && run.get("val_loss").asDouble() > 0, run.toString());
            assertEquals(List.of("checkpoint_00000004", "checkpoint_00000002"),
                    run.get("checkpoints").findValuesAsText("name"));
            assertEquals("4", run.get("args").get("num_iterations").asText());

            JsonNode m = json(get(s, "/api/runs/trained/metrics?from=0"));
            List<JsonNode> records = new ArrayList<>();
            m.get("records").forEach(records::add);
            assertEquals(4, records.stream().filter(x -> x.has("loss")).count());
            assertEquals(3, records.stream().filter(x -> x.has("val_loss")).count(), "validations at 0, 2 and 4");
            long next = m.get("next").asLong();
            assertEquals(Files.size(runs.resolve("trained/metrics.jsonl")), next);
            assertEquals(0, json(get(s, "/api/runs/trained/metrics?from=" + next)).get("records").size(), "nothing new");

            JsonNode samples = json(get(s, "/api/runs/trained/samples"));
            assertEquals(List.of(0, 2, 4), samples.findValues("step").stream().map(JsonNode::asInt).toList());
            assertEquals(2, json(get(s, "/api/runs/trained/checkpoints")).size());
            // results written beside a checkpoint by gpt2 hellaswag and gpt2 eval are shown with it
            Path ck = runs.resolve("trained/checkpoint_00000002");
            Files.writeString(ck.resolve("hellaswag.json"), "{\"acc_norm\": 0.25}");
            Files.writeString(ck.resolve("core_eval.json"), "{\"core\": 0.0123}");
            try {
                JsonNode c = json(get(s, "/api/runs/trained/checkpoints")).get(1);
                assertEquals(0.25, c.get("hellaswag").get("acc_norm").asDouble());
                assertEquals(0.0123, c.get("core").asDouble());
            } finally {
                Files.delete(ck.resolve("hellaswag.json"));
                Files.delete(ck.resolve("core_eval.json"));
            }

            HttpResponse<String> page = get(s, "/");
            assertEquals(200, page.statusCode());
            assertTrue(page.body().contains("<title>gpt2 serve</title>") && page.body().contains("/static/uPlot.iife.min.js"));
            for (String f : List.of("/static/app.js", "/static/app.css", "/static/uPlot.iife.min.js", "/static/uPlot.min.css")) {
                HttpResponse<String> r = get(s, f);
                assertEquals(200, r.statusCode(), f);
                assertTrue(r.body().length() > 500, f);
            }
            assertTrue(get(s, "/static/uPlot.iife.min.js").body().contains("uPlot"), "the webjar's file, from the class path");
            assertEquals(404, get(s, "/static/../../pom.xml").statusCode());
            assertEquals(404, get(s, "/nope").statusCode());
            assertEquals(405, post(s, "/api/runs", "{}").statusCode());
            assertEquals(405, get(s, "/v1/completions").statusCode());
        }
    }

    @Test
    void modelsAndCompletionsPlainAndStreamed() throws Exception {
        try (Server s = server(null, 2, 2, loader())) {
            JsonNode models = json(get(s, "/v1/models"));
            assertEquals("list", models.get("object").asText());
            List<String> ids = models.get("data").findValuesAsText("id");
            assertTrue(ids.containsAll(List.of("trained/checkpoint_00000004", "trained/checkpoint_00000002")), ids.toString());

            String req = "{\"model\": \"trained\", \"prompt\": \"Hello\", \"max_tokens\": 5, \"temperature\": 0.8, \"seed\": 7}";
            HttpResponse<String> plain = post(s, "/v1/completions", req);
            assertEquals(200, plain.statusCode(), plain.body());
            JsonNode c = json(plain);
            assertEquals("text_completion", c.get("object").asText());
            String text = c.get("choices").get(0).get("text").asText();
            assertFalse(text.isEmpty(), c.toString());
            assertEquals(5, c.get("usage").get("completion_tokens").asInt(), c.toString());
            assertEquals("length", c.get("choices").get(0).get("finish_reason").asText());
            // the same seed, the same text; streamed, the pieces make the same text, then [DONE]
            assertEquals(text, json(post(s, "/v1/completions", req)).get("choices").get(0).get("text").asText());
            HttpResponse<String> streamed = post(s, "/v1/completions", req.replace("}", ", \"stream\": true}"));
            assertEquals(200, streamed.statusCode(), streamed.body());
            assertTrue(streamed.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
            StringBuilder joined = new StringBuilder();
            List<String> events = streamed.body().lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
            assertEquals("[DONE]", events.getLast());
            for (String e : events.subList(0, events.size() - 1)) joined.append(JSON.readTree(e).get("choices").get(0).get("text").asText());
            assertEquals(text, joined.toString());
            assertFalse(JSON.readTree(events.get(events.size() - 2)).get("choices").get(0).get("finish_reason").isNull(),
                    "the last chunk says why it ended");
            // a named checkpoint works too
            assertEquals(200, post(s, "/v1/completions", req.replace("\"trained\"", "\"trained/checkpoint_00000002\"")).statusCode());
        }
    }

    @Test
    void badRequestsAreRefusedWithAReason() throws Exception {
        try (Server s = server(null, 2, 2, loader())) {
            HttpResponse<String> r = post(s, "/v1/completions", "{\"model\": \"trained\", \"max_tokens\": 65}");
            assertEquals(400, r.statusCode());
            assertTrue(error(r).contains("max_tokens: 1 to 64 (--max_tokens), got 65"), r.body());
            r = post(s, "/v1/completions", "not json");
            assertEquals(400, r.statusCode());
            assertTrue(error(r).startsWith("the body is not JSON"), r.body());
            r = post(s, "/v1/completions", "{\"prompt\": \"x\"}");
            assertEquals(400, r.statusCode());
            assertTrue(error(r).startsWith("model: required"), r.body());
            r = post(s, "/v1/completions", "{\"model\": \"trained\", \"temperature\": 5}");
            assertTrue(r.statusCode() == 400 && error(r).startsWith("temperature: 0 to 2"), r.body());
            r = post(s, "/v1/completions", "{\"model\": \"trained\", \"top_p\": 0}");
            assertTrue(r.statusCode() == 400 && error(r).startsWith("top_p"), r.body());
            r = post(s, "/v1/completions", "{\"model\": \"trained\", \"max_tokens\": \"many\"}");
            assertTrue(r.statusCode() == 400 && error(r).startsWith("max_tokens: an integer"), r.body());
            r = post(s, "/v1/completions", "{\"model\": \"nope\"}");
            assertEquals(404, r.statusCode());
            assertEquals("model_not_found", json(r).get("error").get("type").asText());
            r = post(s, "/v1/completions", "{\"model\": \"trained\", \"prompt\": \"" + "x".repeat(70_000) + "\"}");
            assertEquals(413, r.statusCode(), "the body is bounded");
            r = post(s, "/v1/completions", "{\"model\": \"trained\", \"prompt\": \"" + "word ".repeat(40) + "\"}");
            assertEquals(400, r.statusCode());
            assertTrue(error(r).contains("this model's block size is 32"), r.body());
            r = get(s, "/api/runs/trained/metrics?from=abc");
            assertTrue(r.statusCode() == 400 && error(r).startsWith("from: a byte offset"), r.body());
        }
    }

    @Test
    void nothingOutsideTheRunsFolderIsReadable() throws Exception {
        Path evil = Files.createDirectories(runs.resolve("evil"));
        Files.createSymbolicLink(evil.resolve("metrics.jsonl"), tmp.resolve("secret.txt"));
        Files.createSymbolicLink(runs.resolve("linked"), Files.createDirectories(tmp.resolve("outside-run")));
        Files.writeString(tmp.resolve("outside-run/metrics.jsonl"), "{\"step\": 1, \"loss\": 1.0}\n");
        try (Server s = server(null, 2, 2, loader())) {
            for (String path : List.of("/api/runs/..%2Fsecret.txt/metrics", "/api/runs/../secret.txt", "/api/runs/%2E%2E/metrics",
                    "/api/runs/linked/metrics", "/api/runs/" + tmp.toString().replace("/", "%2F") + "%2Foutside-run/metrics")) {
                HttpResponse<String> r = get(s, path);
                assertEquals(404, r.statusCode(), path + ": " + r.body());
                assertFalse(r.body().contains("not for the web"), path);
            }
            // a run whose metrics.jsonl links out of --runs: listed (it has other files? no) or not, its content never served
            HttpResponse<String> r = get(s, "/api/runs/evil/metrics?from=0");
            assertFalse(r.body().contains("not for the web"), r.body());
            assertFalse(get(s, "/api/runs").body().contains("outside-run"), "a linked folder is not followed");
            assertFalse(get(s, "/api/runs").body().contains("\"linked\""), "a linked folder is not followed");
        } finally {
            Files.delete(evil.resolve("metrics.jsonl"));
            Files.delete(evil);
            Files.delete(runs.resolve("linked"));
        }
    }

    @Test
    void theTokenIsCheckedOnEveryRequestAndOtherHostsNeedOne() throws Exception {
        String token = "s3cret-token-0123456789";
        try (Server s = server(token, 2, 2, loader())) {
            for (String path : List.of("/", "/static/app.js", "/api/runs", "/api/events", "/v1/models")) {
                HttpResponse<String> r = get(s, path);
                assertEquals(401, r.statusCode(), path);
                assertEquals(401, get(s, path, "Authorization", "Bearer wrong-token-0123456789").statusCode(), path);
            }
            assertEquals(401, post(s, "/v1/completions", "{\"model\": \"trained\"}").statusCode());
            assertEquals(200, get(s, "/api/runs", "Authorization", "Bearer " + token).statusCode());
            // ?token= once: a cookie for the page's later requests
            HttpResponse<String> page = get(s, "/?token=" + token);
            assertEquals(200, page.statusCode());
            String cookie = page.headers().firstValue("Set-Cookie").orElse("");
            assertTrue(cookie.startsWith("gpt2_token=" + token) && cookie.contains("HttpOnly"), cookie);
            assertEquals(200, get(s, "/static/app.js", "Cookie", cookie.split(";")[0]).statusCode());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () ->
                new Server(new Server.Options(runs, "0.0.0.0", 0, null, 1, 1, 8, 1, 100), loader()));
        assertTrue(e.getMessage().contains("--host 0.0.0.0 is not the loopback: give a --token"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> server("short", 1, 1, loader()));
        assertTrue(e.getMessage().contains("--token: at least 16 characters"), e.getMessage());
        try (Server s = server(null, 2, 2, loader())) {
            // java.net.http will not set Host: a raw request, as a browser tricked by DNS rebinding would send it
            java.net.URI u = java.net.URI.create(s.url());
            try (java.net.Socket sock = new java.net.Socket("127.0.0.1", u.getPort())) {
                sock.getOutputStream().write("GET /api/runs HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII));
                String answer = new String(sock.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(answer.startsWith("HTTP/1.1 403"), "no token: only loopback names in the Host header: " + answer);
                assertFalse(answer.contains("trained"), answer);
            }
        }
    }

    @Test
    void generationsQueueWithABoundAndModelsAreEvictedLeastRecentlyUsed() throws Exception {
        CountDownLatch release = new CountDownLatch(1), loading = new CountDownLatch(1);
        AtomicInteger loads = new AtomicInteger();
        List<Gpt2> loaded = new ArrayList<>();
        Function<Path, Gpt2> slow = dir -> {
            loads.incrementAndGet();
            if (dir.getFileName().toString().equals("checkpoint_00000002") && release.getCount() > 0) {
                loading.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
            Gpt2 m = loader().apply(dir);
            synchronized (loaded) {
                loaded.add(m);
            }
            return m;
        };
        try (Server s = server(null, 1, 0, slow)) {
            String two = "{\"model\": \"trained/checkpoint_00000002\", \"max_tokens\": 2, \"seed\": 1}";
            String four = "{\"model\": \"trained/checkpoint_00000004\", \"max_tokens\": 2, \"seed\": 1}";
            CompletableFuture<HttpResponse<String>> first = CompletableFuture.supplyAsync(() -> {
                try {
                    return post(s, "/v1/completions", two);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            assertTrue(loading.await(30, TimeUnit.SECONDS));
            HttpResponse<String> busy = post(s, "/v1/completions", four); // --max_queue 0: nobody may wait
            assertEquals(429, busy.statusCode(), busy.body());
            assertTrue(error(busy).contains("the generation queue is full") && busy.headers().firstValue("Retry-After").isPresent());
            release.countDown();
            assertEquals(200, first.get(60, TimeUnit.SECONDS).statusCode());
            // --max_models 1: 2 is loaded; 4 evicts it; 2 again loads it again
            assertEquals(200, post(s, "/v1/completions", four).statusCode());
            assertEquals(200, post(s, "/v1/completions", four).statusCode());
            assertEquals(200, post(s, "/v1/completions", two).statusCode());
            assertEquals(3, loads.get(), "loaded: 2, 4 (evicting 2), 2 again (evicting 4); 4's second use was cached");
        }
    }

    @Test
    void runFoldersChangingUnderneath(@TempDir Path dir) throws Exception {
        Path live = Files.createDirectories(runs.resolve("changing"));
        Path metrics = live.resolve("metrics.jsonl");
        Files.writeString(metrics, "{\"step\": 1, \"loss\": 5.0, \"tokens\": 128}\n{\"step\": 2, \"loss\": 4.5, \"tok");
        try (Server s = server(null, 2, 2, loader())) {
            JsonNode m = json(get(s, "/api/runs/changing/metrics?from=0"));
            assertEquals(1, m.get("records").size(), "a half-written last line waits for its newline");
            assertTrue(m.get("partial").asBoolean());
            long next = m.get("next").asLong();
            Files.writeString(metrics, "ens\": 256}\nnot json at all\n{\"step\": 3, \"loss\": 4.0}\n", StandardOpenOption.APPEND);
            m = json(get(s, "/api/runs/changing/metrics?from=" + next));
            assertEquals(List.of(2, 3), m.get("records").findValues("step").stream().map(JsonNode::asInt).toList());
            assertEquals(1, m.get("unreadable").asInt(), "a broken line is counted, not fatal");
            JsonNode summary = null;
            for (JsonNode r : json(get(s, "/api/runs")).get("runs")) if (r.get("name").asText().equals("changing")) summary = r;
            assertNotNull(summary);
            assertEquals(1, summary.get("unreadable_lines").asInt());
            // rewritten shorter (a resumed run drops what it will write again): read again from the start
            Files.writeString(metrics, "{\"step\": 1, \"loss\": 5.0}\n");
            m = json(get(s, "/api/runs/changing/metrics?from=" + Files.size(metrics) * 5));
            assertTrue(m.get("reset").asBoolean());
            assertEquals(1, m.get("records").size());
            // a checkpoint deleted under the server: the model is gone, the rest keeps working
            Path copy = runs.resolve("changing/checkpoint_00000004");
            copyTree(runs.resolve("trained/checkpoint_00000004"), copy);
            assertEquals(200, post(s, "/v1/completions", "{\"model\": \"changing\", \"max_tokens\": 1}").statusCode());
            deleteTree(copy);
            HttpResponse<String> gone = post(s, "/v1/completions", "{\"model\": \"changing/checkpoint_00000004\", \"max_tokens\": 1}");
            assertEquals(404, gone.statusCode(), gone.body());
            assertEquals(200, get(s, "/api/runs").statusCode());
            // run folders are never written by serve
            try (var files = Files.list(live)) {
                assertEquals(List.of("metrics.jsonl"), files.map(p -> p.getFileName().toString()).toList());
            }
        } finally {
            deleteTree(live);
        }
    }

    /** A long run's summary comes from its last lines, past the page size of one metrics read. */
    @Test
    void aLongRunsSummaryHasItsLastLoss() throws Exception {
        Path longRun = Files.createDirectories(runs.resolve("long"));
        StringBuilder lines = new StringBuilder();
        for (int s = 1; s <= 25_000; s++) lines.append("{\"step\": ").append(s).append(", \"loss\": ").append(s / 1000.0).append("}\n");
        Files.writeString(longRun.resolve("metrics.jsonl"), lines);
        try (Server s = server(null, 2, 2, loader())) {
            for (int round = 0; round < 2; round++) {
                JsonNode summary = null;
                for (JsonNode r : json(get(s, "/api/runs")).get("runs")) if (r.get("name").asText().equals("long")) summary = r;
                assertNotNull(summary);
                assertEquals(25_000 + round, summary.get("step").asInt(), summary.toString());
                assertEquals((25_000 + round) / 1000.0, summary.get("loss").asDouble(), 1e-9);
                Files.writeString(longRun.resolve("metrics.jsonl"), "{\"step\": 25001, \"loss\": 25.001}\n", StandardOpenOption.APPEND);
            }
        } finally {
            deleteTree(longRun);
        }
    }

    static void copyTree(Path from, Path to) throws Exception {
        try (var walk = Files.walk(from)) {
            for (Path p : walk.toList()) Files.copy(p, to.resolve(from.relativize(p).toString()));
        }
    }

    static void deleteTree(Path p) throws Exception {
        if (!Files.exists(p)) return;
        try (var walk = Files.walk(p)) {
            for (Path q : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }

    @Test
    void theEventStreamSaysWhenARunChanges() throws Exception {
        try (Server s = server(null, 2, 2, loader())) {
            HttpRequest req = HttpRequest.newBuilder(URI.create(s.url() + "api/events")).GET().build();
            HttpResponse<java.io.InputStream> r = HTTP.send(req, HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, r.statusCode());
            try (var in = new java.io.BufferedReader(new java.io.InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                assertTrue(readEvent(in).contains("\"trained\""), "the runs at once");
                Path late = Files.createDirectories(runs.resolve("late"));
                try {
                    Files.writeString(late.resolve("metrics.jsonl"), "{\"step\": 1, \"loss\": 3.0}\n");
                    assertTrue(readEvent(in).contains("\"late\""), "a new run appears by itself");
                } finally {
                    deleteTree(late);
                }
            }
        }
    }

    private static String readEvent(java.io.BufferedReader in) throws Exception {
        for (String line; (line = in.readLine()) != null; ) {
            if (line.startsWith("data: ")) return line;
        }
        throw new AssertionError("the stream ended");
    }
}
