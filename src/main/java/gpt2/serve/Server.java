package gpt2.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import gpt2.train.Checkpoint;
import gpt2.train.RunComparison;
import gpt2.train.RunLog;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code gpt2 serve}: one page over the run folders under {@code --runs} (the runs, live charts,
 * samples, checkpoints, a generation panel) and an OpenAI-style completions API over their
 * checkpoints. The JDK's HTTP server; JSON by Jackson; the page's chart library (uPlot) comes from
 * its webjar in the jar, nothing from elsewhere.
 *
 * <p>Safe by default: loopback unless told otherwise, and then only with a token, checked on every
 * request (the page, its files, the API, the event stream): {@code Authorization: Bearer TOKEN}, or
 * {@code ?token=TOKEN} once, which sets a cookie the page's later requests carry. Without a token
 * the Host header must name the loopback (a page elsewhere cannot reach this server through DNS
 * rebinding). Runs and their files are named by the listing, never by a path from the request; a
 * file whose real path leaves {@code --runs} is not read ({@link RunStore}). Request bodies, tokens
 * per completion, waiting generations and watchers are bounded; nothing is ever written.
 */
public final class Server implements AutoCloseable {

    /** What the command line sets. */
    public record Options(Path runs, String host, int port, String token, int maxModels, int maxQueue, int maxTokens,
                          int maxWatchers, long pollMillis) {
    }

    static final int MAX_BODY = 64 * 1024;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String COOKIE = "gpt2_token";
    private static final String UPLOT = "META-INF/resources/webjars/uplot/1.6.30/dist/";
    /** The page's files: the only names served from the class path. */
    private static final Map<String, String[]> STATIC = Map.of(
            "/", new String[]{"gpt2/serve/index.html", "text/html; charset=utf-8"},
            "/static/app.js", new String[]{"gpt2/serve/app.js", "text/javascript; charset=utf-8"},
            "/static/app.css", new String[]{"gpt2/serve/app.css", "text/css; charset=utf-8"},
            "/static/uPlot.iife.min.js", new String[]{UPLOT + "uPlot.iife.min.js", "text/javascript; charset=utf-8"},
            "/static/uPlot.min.css", new String[]{UPLOT + "uPlot.min.css", "text/css; charset=utf-8"});

    private final Options o;
    private final RunStore store;
    private final Generator generator;
    private final HttpServer http;
    private final ExecutorService pool;
    private final Semaphore watchers;
    private final AtomicLong ids = new AtomicLong();
    private final byte[] token;
    private final boolean loopback;
    /** Run summaries by name with the signature they were made at: recomputed only when it changes. */
    private final Map<String, ObjectNode> summaries = new HashMap<>();
    private volatile boolean closed;

    public Server(Options o, java.util.function.Function<Path, gpt2.model.Gpt2> loader) throws IOException {
        this.o = o;
        InetAddress addr = InetAddress.getByName(o.host());
        this.loopback = addr.isLoopbackAddress();
        if (!loopback && (o.token() == null || o.token().isEmpty())) {
            throw new IllegalArgumentException("--host " + o.host() + " is not the loopback: give a --token (or GPT2_SERVE_TOKEN) "
                    + "that every request must carry");
        }
        if (o.token() != null && !o.token().isEmpty() && o.token().length() < 16) {
            throw new IllegalArgumentException("--token: at least 16 characters, got " + o.token().length());
        }
        if (o.maxTokens() < 1) throw new IllegalArgumentException("--max_tokens must be >= 1, got " + o.maxTokens());
        this.token = o.token() == null || o.token().isEmpty() ? null : o.token().getBytes(StandardCharsets.UTF_8);
        this.store = new RunStore(o.runs());
        this.generator = new Generator(loader, o.maxModels(), o.maxQueue());
        this.watchers = new Semaphore(o.maxWatchers());
        this.pool = Executors.newFixedThreadPool(o.maxWatchers() + o.maxQueue() + 8, r -> {
            Thread t = new Thread(r, "gpt2-serve");
            t.setDaemon(true);
            return t;
        });
        try {
            this.http = HttpServer.create(new InetSocketAddress(addr, o.port()), 64);
        } catch (java.net.BindException e) {
            generator.close();
            pool.shutdownNow();
            throw new IllegalArgumentException("--port " + o.port() + ": cannot listen on " + o.host() + " (" + e.getMessage()
                    + "; is another server using it?)");
        }
        http.setExecutor(pool);
        http.createContext("/", this::handle);
        http.start();
    }

    /** The address it listens on (the port chosen when --port 0). */
    public String url() {
        InetSocketAddress a = http.getAddress();
        String host = a.getAddress() instanceof java.net.Inet6Address ? "[" + a.getAddress().getHostAddress() + "]"
                : a.getAddress().getHostAddress();
        return "http://" + host + ":" + a.getPort() + "/";
    }

    public Path runs() {
        return store.root();
    }

    // ------------------------------------------------------------------ dispatch

    private void handle(HttpExchange ex) {
        try (ex) { // closed after the answer, errors included (a resource closes before a catch clause runs)
            route(ex);
        }
    }

    private void route(HttpExchange ex) {
        try {
            Refusal refused = refusal(ex);
            if (refused != null) {
                error(ex, refused.status(), refused.type(), refused.message());
                return;
            }
            String path = ex.getRequestURI().getRawPath();
            String method = ex.getRequestMethod();
            if (STATIC.containsKey(path)) {
                if (!method.equals("GET") && !method.equals("HEAD")) {
                    error(ex, 405, "method_not_allowed", method + " " + path + ": use GET");
                    return;
                }
                resource(ex, STATIC.get(path));
            } else if (path.equals("/v1/completions")) {
                if (!method.equals("POST")) {
                    error(ex, 405, "method_not_allowed", method + " " + path + ": use POST");
                    return;
                }
                completions(ex);
            } else if (!method.equals("GET")) {
                error(ex, 405, "method_not_allowed", method + " " + path + ": use GET");
            } else if (path.equals("/v1/models")) {
                json(ex, 200, models());
            } else if (path.equals("/api/runs")) {
                json(ex, 200, JsonNodeFactory.instance.objectNode().put("root", store.root().toString()).set("runs", runList()));
            } else if (path.equals("/api/events")) {
                events(ex);
            } else if (path.equals("/api/compare")) {
                compare(ex);
            } else if (path.startsWith("/api/runs/")) {
                runResource(ex, path.substring("/api/runs/".length()));
            } else {
                error(ex, 404, "not_found", path + ": no such page or API");
            }
        } catch (IllegalArgumentException e) {
            error(ex, 400, "invalid_request_error", e.getMessage());
        } catch (IOException e) {
            // the client went away mid-answer: nothing to tell it
        } catch (RuntimeException e) {
            error(ex, 500, "server_error", e.getMessage() != null ? e.getMessage() : e.toString());
        }
    }

    /** Why a request is not served, in the answer's terms. */
    private record Refusal(int status, String type, String message) {
    }

    /** Why this request may not be served (token or Host header), or null. */
    private Refusal refusal(HttpExchange ex) {
        if (token == null) {
            String host = ex.getRequestHeaders().getFirst("Host");
            String name = host == null ? "" : host.replaceFirst(":\\d+$", "").toLowerCase(java.util.Locale.ROOT);
            if (!(name.equals("localhost") || name.equals("127.0.0.1") || name.equals("[::1]"))) {
                return new Refusal(403, "forbidden", "Host " + host + " refused: this server answers to localhost only (start "
                        + "it with --host and --token to serve other names)");
            }
            return null;
        }
        String given = null, auth = ex.getRequestHeaders().getFirst("Authorization");
        if (auth != null && auth.startsWith("Bearer ")) given = auth.substring(7).strip();
        String q = query(ex).get("token");
        boolean fromQuery = false;
        if (given == null && q != null) {
            given = q;
            fromQuery = true;
        }
        if (given == null) given = cookie(ex, COOKIE);
        if (given == null || !MessageDigest.isEqual(token, given.getBytes(StandardCharsets.UTF_8))) {
            return new Refusal(401, "unauthorized",
                    "missing or wrong token: send 'Authorization: Bearer TOKEN', or open the page once as /?token=TOKEN");
        }
        if (fromQuery) {
            ex.getResponseHeaders().add("Set-Cookie", COOKIE + "=" + given + "; Path=/; HttpOnly; SameSite=Strict");
        }
        return null;
    }

    private static String cookie(HttpExchange ex, String name) {
        for (String header : ex.getRequestHeaders().getOrDefault("Cookie", List.of())) {
            for (String part : header.split(";")) {
                String[] kv = part.strip().split("=", 2);
                if (kv.length == 2 && kv[0].equals(name)) return kv[1];
            }
        }
        return null;
    }

    private static Map<String, String> query(HttpExchange ex) {
        Map<String, String> q = new HashMap<>();
        String raw = ex.getRequestURI().getRawQuery();
        if (raw == null) return q;
        for (String part : raw.split("&")) {
            String[] kv = part.split("=", 2);
            q.put(URLDecoder.decode(kv[0], StandardCharsets.UTF_8), kv.length > 1 ? URLDecoder.decode(kv[1], StandardCharsets.UTF_8) : "");
        }
        return q;
    }

    // ------------------------------------------------------------------ the page's files

    private void resource(HttpExchange ex, String[] r) throws IOException {
        byte[] body;
        try (InputStream in = Server.class.getClassLoader().getResourceAsStream(r[0])) {
            if (in == null) {
                error(ex, 500, "server_error", r[0] + " is missing from the jar (rebuild it)");
                return;
            }
            body = in.readAllBytes();
        }
        ex.getResponseHeaders().set("Content-Type", r[1]);
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.getResponseHeaders().set("X-Content-Type-Options", "nosniff");
        ex.getResponseHeaders().set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'");
        send(ex, 200, body, ex.getRequestMethod().equals("HEAD"));
    }

    // ------------------------------------------------------------------ runs

    /** Every run's summary, recomputed for the runs whose files changed since the last call. */
    private ArrayNode runList() {
        Map<String, Path> runs = store.runs();
        ArrayNode out = JsonNodeFactory.instance.arrayNode();
        synchronized (summaries) {
            summaries.keySet().retainAll(runs.keySet());
            for (Map.Entry<String, Path> e : runs.entrySet()) {
                ObjectNode s = summaries.get(e.getKey());
                if (s == null || !s.path("signature").asText().equals(store.signature(e.getValue()))) {
                    s = store.summary(e.getKey(), e.getValue());
                    summaries.put(e.getKey(), s);
                }
                out.add(s);
            }
        }
        return out;
    }

    private void runResource(HttpExchange ex, String rest) throws IOException {
        int slash = rest.lastIndexOf('/');
        String name = slash < 0 ? "" : URLDecoder.decode(rest.substring(0, slash), StandardCharsets.UTF_8);
        String what = slash < 0 ? rest : rest.substring(slash + 1);
        Path dir = store.run(name);
        if (dir == null) {
            error(ex, 404, "not_found", "no run named '" + name + "' under " + store.root());
            return;
        }
        switch (what) {
            case "metrics" -> {
                long from;
                try {
                    from = Long.parseLong(query(ex).getOrDefault("from", "0"));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("from: a byte offset, got " + query(ex).get("from"));
                }
                RunStore.Metrics m = store.metrics(dir, from);
                ObjectNode n = JsonNodeFactory.instance.objectNode();
                n.put("run", name);
                n.set("records", JSON.valueToTree(m.records()));
                n.put("next", m.next());
                n.put("reset", m.reset());
                n.put("unreadable", m.unreadable());
                n.put("partial", m.partialLast());
                json(ex, 200, n);
            }
            case "samples" -> json(ex, 200, store.samples(dir, 50));
            case "checkpoints" -> json(ex, 200, store.checkpoints(dir));
            default -> error(ex, 404, "not_found", "runs have metrics, samples and checkpoints; not '" + what + "'");
        }
    }

    /** {@code ?runs=a,b,c}: how many tokens each run needs for the first one's final val loss (as gpt2 plot prints). */
    private void compare(HttpExchange ex) throws IOException {
        String[] names = query(ex).getOrDefault("runs", "").split(",");
        ArrayNode lines = JsonNodeFactory.instance.arrayNode();
        List<RunComparison.Curves> curves = new java.util.ArrayList<>();
        for (String n : names) {
            if (n.isBlank()) continue;
            Path dir = store.run(n);
            if (dir == null || store.file(dir, RunLog.METRICS) == null) {
                error(ex, 404, "not_found", "no run named '" + n + "' with metrics under " + store.root());
                return;
            }
            try {
                curves.add(RunComparison.read(dir));
            } catch (RuntimeException e) {
                lines.add(n + ": " + e.getMessage());
            }
        }
        for (int i = 1; i < curves.size(); i++) lines.add(RunComparison.describe(curves.getFirst(), curves.get(i)));
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        out.set("lines", lines);
        if (curves.size() > 1) out.put("table", RunComparison.table(curves));
        json(ex, 200, out);
    }

    /**
     * Server-sent events: a "runs" event with every run's summary now, and again whenever a run's
     * files change (a new run appears, a line is appended, a checkpoint is written or deleted); a
     * comment every 15 s keeps proxies from closing the stream.
     */
    private void events(HttpExchange ex) throws IOException {
        if (!watchers.tryAcquire()) {
            error(ex, 503, "too_many_watchers", "already " + o.maxWatchers() + " pages watching (--max_watchers); close one");
            return;
        }
        try {
            ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
            ex.getResponseHeaders().set("Cache-Control", "no-cache");
            ex.sendResponseHeaders(200, 0);
            OutputStream out = ex.getResponseBody();
            String last = null;
            long lastWrite = 0;
            while (!closed) {
                ArrayNode runs = runList();
                StringBuilder sig = new StringBuilder();
                for (JsonNode r : runs) sig.append(r.path("name").asText()).append('=').append(r.path("signature").asText()).append('\n');
                long now = System.currentTimeMillis();
                if (!sig.toString().equals(last)) {
                    out.write(("event: runs\ndata: " + JSON.writeValueAsString(runs) + "\n\n").getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    last = sig.toString();
                    lastWrite = now;
                } else if (now - lastWrite > 15_000) {
                    out.write(": keep-alive\n\n".getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    lastWrite = now;
                }
                Thread.sleep(o.pollMillis());
            }
        } catch (IOException e) {
            // the page went away
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            watchers.release();
        }
    }

    // ------------------------------------------------------------------ models and completions

    /** Every checkpoint of every run as a model id "RUN/checkpoint_NNNNNNNN", newest first per run. */
    private ObjectNode models() {
        ObjectNode out = JsonNodeFactory.instance.objectNode().put("object", "list");
        ArrayNode data = out.putArray("data");
        for (Map.Entry<String, Path> e : store.runs().entrySet()) {
            for (JsonNode c : store.checkpoints(e.getValue())) {
                ObjectNode m = data.addObject();
                m.put("id", e.getKey() + "/" + c.get("name").asText());
                m.put("object", "model");
                m.put("created", modified(e.getValue().resolve(c.get("name").asText())));
                m.put("owned_by", "gpt2-java");
                m.put("run", e.getKey());
                m.put("step", c.get("step").asInt());
            }
        }
        return out;
    }

    private static long modified(Path p) {
        try {
            return Files.getLastModifiedTime(p).toMillis() / 1000;
        } catch (IOException e) {
            return 0;
        }
    }

    /**
     * A model id to its checkpoint folder: "RUN/checkpoint_NNNNNNNN", or "RUN" for the run's newest
     * checkpoint whose files verify. Null when there is no such checkpoint (any more).
     */
    private Path checkpointOf(String id) {
        Path run = store.run(id);
        if (run != null) {
            // the newest checkpoint, verified (its checksums read every byte) unless its model is loaded already
            List<Path> dirs = Checkpoint.directories(run);
            if (!dirs.isEmpty() && generator.isLoaded(dirs.getFirst()) && store.file(dirs.getFirst(), Checkpoint.MODEL) != null) {
                return dirs.getFirst();
            }
            return Checkpoint.newestValid(run, f -> { }).map(Checkpoint.Found::dir).orElse(null);
        }
        int slash = id.lastIndexOf('/');
        if (slash < 0) return null;
        run = store.run(id.substring(0, slash));
        if (run == null) return null;
        String name = id.substring(slash + 1);
        for (Path d : Checkpoint.directories(run)) {
            if (d.getFileName().toString().equals(name) && store.file(d, Checkpoint.MODEL) != null) return d;
        }
        return null;
    }

    private void completions(HttpExchange ex) throws IOException {
        byte[] body = ex.getRequestBody().readNBytes(MAX_BODY + 1);
        if (body.length > MAX_BODY) {
            // read a bounded amount more so the client, still sending, gets the answer instead of a reset
            ex.getRequestBody().skip(16L * MAX_BODY);
            error(ex, 413, "invalid_request_error", "request body over " + MAX_BODY + " bytes");
            return;
        }
        JsonNode req;
        try {
            req = JSON.readTree(body);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("the body is not JSON: " + e.getOriginalMessage());
        }
        if (req == null || !req.isObject()) throw new IllegalArgumentException("the body must be a JSON object");
        String model = text(req, "model", null);
        if (model == null) throw new IllegalArgumentException("model: required (GET /v1/models lists them; a run's name means its newest checkpoint)");
        JsonNode p = req.get("prompt");
        String prompt;
        if (p == null) prompt = "";
        else if (p.isTextual()) prompt = p.asText();
        else if (p.isArray() && p.size() == 1 && p.get(0).isTextual()) prompt = p.get(0).asText();
        else throw new IllegalArgumentException("prompt: a string (or an array of one string)");
        int maxTokens = integer(req, "max_tokens", 16);
        if (maxTokens < 1 || maxTokens > o.maxTokens()) {
            throw new IllegalArgumentException("max_tokens: 1 to " + o.maxTokens() + " (--max_tokens), got " + maxTokens);
        }
        float temperature = (float) number(req, "temperature", 1.0);
        if (!(temperature >= 0 && temperature <= 2)) throw new IllegalArgumentException("temperature: 0 to 2, got " + temperature);
        float topP = (float) number(req, "top_p", 1.0);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top_p: greater than 0 and at most 1, got " + topP);
        int topK = integer(req, "top_k", 0);
        if (topK < 0) throw new IllegalArgumentException("top_k: 0 (all) or more, got " + topK);
        long seed = req.has("seed") ? integer(req, "seed", 0) : System.nanoTime();
        boolean stream = req.path("stream").asBoolean(false);
        if (req.has("n") && req.get("n").asInt(1) != 1) throw new IllegalArgumentException("n: only 1 completion per request");
        Path dir = checkpointOf(model);
        if (dir == null) {
            error(ex, 404, "model_not_found", "model '" + model + "': no such checkpoint under " + store.root() + " (any more)");
            return;
        }
        String id = "cmpl-" + ids.incrementAndGet();
        long created = Instant.now().getEpochSecond();
        Generator.Request r = new Generator.Request(prompt, maxTokens, temperature, topK, topP, seed);
        try {
            if (stream) {
                streamCompletion(ex, dir, model, id, created, r);
            } else {
                StringBuilder text = new StringBuilder();
                Generator.Result res = generator.generate(dir, r, text::append);
                ObjectNode out = completion(id, created, model, text.toString(), res.finishReason());
                out.putObject("usage").put("prompt_tokens", res.promptTokens()).put("completion_tokens", res.completionTokens())
                        .put("total_tokens", res.promptTokens() + res.completionTokens());
                json(ex, 200, out);
            }
        } catch (Generator.Busy e) {
            ex.getResponseHeaders().set("Retry-After", "5");
            error(ex, 429, "queue_full", e.getMessage());
        } catch (Generator.NoModel e) {
            error(ex, 404, "model_not_found", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            error(ex, 503, "server_error", "the server is stopping");
        }
    }

    /** Streams a completion as server-sent events, OpenAI's way: one chunk per piece, then [DONE]. */
    private void streamCompletion(HttpExchange ex, Path dir, String model, String id, long created, Generator.Request r)
            throws IOException, InterruptedException {
        boolean[] started = {false};
        OutputStream out = ex.getResponseBody();
        Generator.Sink sink = piece -> {
            try {
                if (!started[0]) {
                    startStream(ex);
                    started[0] = true;
                }
                chunk(out, completion(id, created, model, piece, null));
            } catch (IOException e) {
                throw new Generator.Stop(); // the client went away: stop generating for it
            }
        };
        try {
            Generator.Result res = generator.generate(dir, r, sink);
            if (!started[0]) startStream(ex);
            chunk(out, completion(id, created, model, "", res.finishReason()));
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.flush();
        } catch (RuntimeException e) {
            if (!started[0]) throw e; // answered as JSON with its status
            ObjectNode err = JsonNodeFactory.instance.objectNode();
            err.putObject("error").put("message", e.getMessage()).put("type", "server_error");
            chunk(out, err);
        }
    }

    private static void startStream(HttpExchange ex) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0);
    }

    private static void chunk(OutputStream out, JsonNode n) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(n) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static ObjectNode completion(String id, long created, String model, String text, String finish) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("id", id).put("object", "text_completion").put("created", created).put("model", model);
        ObjectNode c = n.putArray("choices").addObject();
        c.put("text", text).put("index", 0).putNull("logprobs");
        if (finish == null) c.putNull("finish_reason");
        else c.put("finish_reason", finish);
        return n;
    }

    private static String text(JsonNode req, String field, String dflt) {
        JsonNode n = req.get(field);
        if (n == null || n.isNull()) return dflt;
        if (!n.isTextual()) throw new IllegalArgumentException(field + ": a string");
        return n.asText();
    }

    private static int integer(JsonNode req, String field, int dflt) {
        JsonNode n = req.get(field);
        if (n == null || n.isNull()) return dflt;
        if (!n.isIntegralNumber() || !n.canConvertToInt()) throw new IllegalArgumentException(field + ": an integer, got " + n);
        return n.asInt();
    }

    private static double number(JsonNode req, String field, double dflt) {
        JsonNode n = req.get(field);
        if (n == null || n.isNull()) return dflt;
        if (!n.isNumber()) throw new IllegalArgumentException(field + ": a number, got " + n);
        return n.asDouble();
    }

    // ------------------------------------------------------------------ responses

    private static void json(HttpExchange ex, int status, JsonNode n) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "application/json; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        send(ex, status, JSON.writeValueAsBytes(n), false);
    }

    /** An error as OpenAI's API words it: {"error": {"message", "type"}}. */
    private static void error(HttpExchange ex, int status, String type, String message) {
        try {
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            n.putObject("error").put("message", message).put("type", type);
            json(ex, status, n);
        } catch (IOException | IllegalStateException e) {
            // headers already sent (a stream) or the client gone: nothing more to say
        }
    }

    private static void send(HttpExchange ex, int status, byte[] body, boolean headOnly) throws IOException {
        ex.sendResponseHeaders(status, headOnly ? -1 : body.length == 0 ? -1 : body.length);
        if (!headOnly && body.length > 0) ex.getResponseBody().write(body);
    }

    @Override
    public void close() {
        closed = true;
        http.stop(0);
        pool.shutdownNow();
        generator.close();
    }
}
