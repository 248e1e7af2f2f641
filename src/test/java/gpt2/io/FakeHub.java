package gpt2.io;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A Hugging Face Hub on 127.0.0.1 for tests: the tree API (one file per page, pages linked with a
 * Link header), resolve URLs that redirect to a "CDN" path serving Range requests, gated repos that
 * want a token, and faults on demand: a transfer cut in the middle, a 429 answer, a corrupted file.
 */
public final class FakeHub implements AutoCloseable {

    /** A repo's files by path (listed in insertion order), and whether it wants the token. */
    private record Repo(Map<String, byte[]> files, boolean gated) {
    }

    public static final String TOKEN = "hf_test_secret_token_1234";

    private final HttpServer server;
    private final Map<String, Repo> repos = new ConcurrentHashMap<>();
    /** Paths whose next full transfer stops half way. */
    public final Set<String> cutOnce = ConcurrentHashMap.newKeySet();
    /** Paths served with one byte flipped (the listing keeps the true hash). */
    public final Set<String> corrupt = ConcurrentHashMap.newKeySet();
    /** Tree requests to answer with 429 first. */
    public final AtomicInteger tooManyRequests = new AtomicInteger();
    /** Every request: "METHOD path range=... auth=yes|no". */
    public final List<String> log = Collections.synchronizedList(new ArrayList<>());

    public FakeHub() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::handle);
        server.setExecutor(java.util.concurrent.Executors.newFixedThreadPool(4));
        server.start();
    }

    public String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    /** kind "datasets" or "models". */
    public void add(String kind, String repo, boolean gated, Map<String, byte[]> files) {
        repos.put(kind + "/" + repo, new Repo(new LinkedHashMap<>(files), gated));
    }

    private void handle(HttpExchange ex) throws IOException {
        String path = URLDecoder.decode(ex.getRequestURI().getRawPath(), StandardCharsets.UTF_8);
        String auth = ex.getRequestHeaders().getFirst("Authorization");
        String range = ex.getRequestHeaders().getFirst("Range");
        log.add("GET " + path + " range=" + range + " auth=" + (auth != null ? "yes" : "no"));
        try {
            if (path.startsWith("/api/")) tree(ex, path.substring(5), auth);
            else if (path.startsWith("/cdn/")) cdn(ex, path.substring(5), range);
            else resolve(ex, path, auth);
        } finally {
            ex.close();
        }
    }

    private boolean denied(Repo r, String auth) {
        return r.gated && !("Bearer " + TOKEN).equals(auth);
    }

    /** /api/{kind}/{owner}/{name}/tree/{rev}[/dir]?recursive=true[&cursor=i] */
    private void tree(HttpExchange ex, String rest, String auth) throws IOException {
        String[] p = rest.split("/", 6);
        Repo r = repos.get(p[0] + "/" + p[1] + "/" + p[2]);
        if (r == null) { ex.sendResponseHeaders(404, -1); return; }
        if (denied(r, auth)) { ex.sendResponseHeaders(401, -1); return; }
        if (tooManyRequests.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
            ex.getResponseHeaders().add("Retry-After", "0");
            ex.sendResponseHeaders(429, -1);
            return;
        }
        String dir = p.length > 5 ? p[5] : "";
        List<String> paths = r.files.keySet().stream().filter(f -> dir.isEmpty() || f.startsWith(dir + "/")).toList();
        String query = ex.getRequestURI().getRawQuery();
        int cursor = query != null && query.contains("cursor=") ? Integer.parseInt(query.replaceAll(".*cursor=(\\d+).*", "$1")) : 0;
        StringBuilder json = new StringBuilder("[");
        if (cursor < paths.size()) {
            String f = paths.get(cursor);
            byte[] b = r.files.get(f);
            json.append(String.format("{\"type\":\"directory\",\"oid\":\"x\",\"size\":0,\"path\":\"%s\"},", f.contains("/") ? f.substring(0, f.lastIndexOf('/')) : "."));
            json.append(String.format("{\"type\":\"file\",\"oid\":\"%s\",\"size\":%d,\"path\":\"%s\",\"lfs\":{\"oid\":\"%s\",\"size\":%d}}",
                    hash("SHA-1", b), b.length, f, hash("SHA-256", b), b.length));
        }
        json.append(']');
        if (cursor + 1 < paths.size()) {
            String next = url() + ex.getRequestURI().getRawPath() + "?recursive=true&cursor=" + (cursor + 1);
            ex.getResponseHeaders().add("Link", "<" + next + ">; rel=\"next\"");
        }
        byte[] body = json.toString().getBytes(StandardCharsets.UTF_8);
        ex.sendResponseHeaders(200, body.length);
        ex.getResponseBody().write(body);
    }

    /** /[datasets/]{owner}/{name}/resolve/{rev}/{path} -> 302 /cdn/{kind}/{owner}/{name}/{path} */
    private void resolve(HttpExchange ex, String path, String auth) throws IOException {
        String kind = path.startsWith("/datasets/") ? "datasets" : "models";
        String rest = kind.equals("datasets") ? path.substring("/datasets/".length()) : path.substring(1);
        String[] p = rest.split("/", 5);
        if (p.length < 5 || !p[2].equals("resolve")) { ex.sendResponseHeaders(404, -1); return; }
        Repo r = repos.get(kind + "/" + p[0] + "/" + p[1]);
        if (r == null || !r.files.containsKey(p[4])) { ex.sendResponseHeaders(404, -1); return; }
        if (denied(r, auth)) { ex.sendResponseHeaders(401, -1); return; }
        ex.getResponseHeaders().add("Location", "/cdn/" + kind + "/" + p[0] + "/" + p[1] + "/" + p[4]);
        ex.sendResponseHeaders(302, -1);
    }

    private void cdn(HttpExchange ex, String rest, String range) throws IOException {
        String[] p = rest.split("/", 4);
        Repo r = repos.get(p[0] + "/" + p[1] + "/" + p[2]);
        byte[] b = r == null ? null : r.files.get(p[3]);
        if (b == null) { ex.sendResponseHeaders(404, -1); return; }
        if (corrupt.contains(p[3])) {
            b = b.clone();
            b[b.length / 2] ^= 1;
        }
        int from = range == null ? 0 : Integer.parseInt(range.replaceAll("bytes=(\\d+)-.*", "$1"));
        OutputStream out = ex.getResponseBody();
        if (from > 0) {
            ex.getResponseHeaders().add("Content-Range", "bytes " + from + "-" + (b.length - 1) + "/" + b.length);
            ex.sendResponseHeaders(206, b.length - from);
        } else {
            ex.sendResponseHeaders(200, b.length);
        }
        if (from == 0 && cutOnce.remove(p[3])) {
            out.write(b, 0, b.length / 2); // and the connection ends: a cut transfer
            out.flush();
            throw new IOException("cut on purpose");
        }
        out.write(b, from, b.length - from);
    }

    public static String hash(String algorithm, byte[] b) {
        try {
            MessageDigest md = MessageDigest.getInstance(algorithm);
            if (algorithm.equals("SHA-1")) md.update(("blob " + b.length + "\0").getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(md.digest(b));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
