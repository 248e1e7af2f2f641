package gpt2.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.LongConsumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The Hugging Face Hub as its own clients reach it: {@code HF_ENDPOINT} (default
 * https://huggingface.co) for mirrors; {@code HF_TOKEN}, else the token file
 * {@code huggingface-cli login} writes ({@code HF_TOKEN_PATH}, {@code $HF_HOME/token},
 * {@code ~/.cache/huggingface/token}) for gated repos, sent to the endpoint's host only and never
 * printed; {@code HF_HUB_OFFLINE=1} to use only what is already downloaded.
 *
 * <pre>
 * list:     GET {endpoint}/api/{datasets|models}/{repo}/tree/{revision}/{dir}?recursive=true  (Link: next pages)
 * download: GET {endpoint}/[datasets/]{repo}/resolve/{revision}/{path}  --redirects--> CDN
 *           -> FILE.incomplete (Range: bytes=N- after an interruption) -> size, SHA-256 (LFS) or git
 *           blob SHA-1 checked -> renamed to FILE
 * </pre>
 * 429 and 5xx answers and cut transfers are retried with exponential backoff (Retry-After
 * honoured); any other failure is one line naming the URL and the status.
 */
public final class Hub {

    /** A file of a repository as the tree API lists it; sha256 for LFS files, gitOid (blob SHA-1) for others. */
    public record RepoFile(String path, long size, String sha256, String gitOid) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern NEXT = Pattern.compile("<([^>]+)>\\s*;\\s*rel=\"next\"");

    private final URI endpoint;
    private final String token;
    private final boolean offline;
    private final int attempts;
    private final long backoffMillis;
    private final HttpClient http = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER)
            .connectTimeout(Duration.ofSeconds(30)).build();
    /** Where each retry is said as it happens (stderr unless a caller listens). */
    private java.util.function.Consumer<String> notices = m -> System.err.println("note: " + m);

    /** Sends the retry notices to {@code to} instead of stderr. */
    public Hub withNotices(java.util.function.Consumer<String> to) {
        this.notices = to;
        return this;
    }

    /**
     * What went wrong with a request, in words: refused, timed out, reset or cut, with the host and
     * port (an IOException's own message is often null or says neither).
     */
    public static String describe(Throwable e, String url) {
        URI u = URI.create(url);
        int port = u.getPort() > 0 ? u.getPort() : "https".equalsIgnoreCase(u.getScheme()) ? 443 : 80;
        String at = u.getHost() + ":" + port;
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage() == null ? "" : t.getMessage().toLowerCase(java.util.Locale.ROOT);
            if (t instanceof java.net.http.HttpConnectTimeoutException) return "timed out connecting to " + at;
            if (t instanceof java.net.UnknownHostException) return "unknown host " + u.getHost() + " (no network, or a wrong HF_ENDPOINT?)";
            if (t instanceof java.net.ConnectException) {
                return (m.contains("timed out") ? "timed out connecting to " : "connection refused by ") + at;
            }
            if (t instanceof java.net.http.HttpTimeoutException) return "no answer from " + at + " in time";
            if (m.contains("reset")) return "connection reset by " + at;
            if (t instanceof java.io.EOFException || m.contains("closed") || m.contains("eof")) {
                return "connection to " + at + " cut before the answer was complete";
            }
        }
        return (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()) + " (" + at + ")";
    }

    /**
     * @param endpoint      the Hub's base URL
     * @param token         a token for gated or private repos, or null
     * @param attempts      tries per request (429, 5xx and cut transfers are retried)
     * @param backoffMillis the first retry's wait, doubled each time
     */
    public Hub(String endpoint, String token, boolean offline, int attempts, long backoffMillis) {
        this.endpoint = URI.create(endpoint.endsWith("/") ? endpoint.substring(0, endpoint.length() - 1) : endpoint);
        this.token = token == null || token.isBlank() ? null : token.strip();
        this.offline = offline;
        this.attempts = Math.max(1, attempts);
        this.backoffMillis = backoffMillis;
    }

    /** The Hub as the environment configures it (see the class comment). */
    public static Hub fromEnvironment() {
        return fromEnvironment(System.getenv());
    }

    public static Hub fromEnvironment(Map<String, String> env) {
        String endpoint = env.getOrDefault("HF_ENDPOINT", "https://huggingface.co");
        String token = env.get("HF_TOKEN");
        if (token == null || token.isBlank()) token = tokenFile(env).map(Hub::readQuietly).orElse(null);
        String off = env.getOrDefault("HF_HUB_OFFLINE", "");
        return new Hub(endpoint.isBlank() ? "https://huggingface.co" : endpoint, token,
                off.equals("1") || off.equalsIgnoreCase("true"), 6, 1000);
    }

    private static Optional<Path> tokenFile(Map<String, String> env) {
        if (env.get("HF_TOKEN_PATH") != null) return Optional.of(Path.of(env.get("HF_TOKEN_PATH")));
        if (env.get("HF_HOME") != null) return Optional.of(Path.of(env.get("HF_HOME"), "token"));
        String home = env.getOrDefault("HOME", System.getProperty("user.home"));
        return Optional.of(Path.of(home, ".cache", "huggingface", "token"));
    }

    private static String readQuietly(Path p) {
        try {
            return Files.isRegularFile(p) ? Files.readString(p).strip() : null;
        } catch (IOException e) {
            return null;
        }
    }

    public boolean offline() {
        return offline;
    }

    public String endpoint() {
        return endpoint.toString();
    }

    // ------------------------------------------------------------------ listing

    /**
     * The files of a repository under {@code dir} ("" for all), in the tree API's order.
     *
     * @param kind "datasets" or "models"
     */
    public List<RepoFile> list(String kind, String repo, String revision, String dir) {
        if (offline) throw new IllegalStateException("HF_HUB_OFFLINE=1: cannot list " + repo + " (use files already downloaded)");
        String url = endpoint + "/api/" + kind + "/" + repo + "/tree/" + encode(revision)
                + (dir.isEmpty() ? "" : "/" + encodePath(dir)) + "?recursive=true";
        List<RepoFile> out = new ArrayList<>();
        while (url != null) {
            HttpResponse<byte[]> r = send(url, null, HttpResponse.BodyHandlers.ofByteArray());
            try {
                for (JsonNode n : JSON.readTree(r.body())) {
                    if (!"file".equals(n.path("type").asText())) continue;
                    JsonNode lfs = n.path("lfs");
                    out.add(new RepoFile(n.path("path").asText(), n.path("size").asLong(),
                            lfs.isObject() ? lfs.path("oid").asText(null) : null, n.path("oid").asText(null)));
                }
            } catch (IOException e) {
                throw new IllegalStateException("GET " + url + ": not a JSON file list (" + e.getMessage() + ")");
            }
            url = r.headers().firstValue("link").map(l -> {
                Matcher m = NEXT.matcher(l);
                return m.find() ? m.group(1) : null;
            }).orElse(null);
        }
        return out;
    }

    /**
     * {@link #list}, or with HF_HUB_OFFLINE=1 the files an earlier download left under
     * {@code localRoot}/{@code dir} (paths relative to localRoot, sizes; no hashes to check).
     */
    public List<RepoFile> listOrLocal(String kind, String repo, String revision, String dir, Path localRoot) {
        if (!offline) return list(kind, repo, revision, dir);
        Path base = localRoot.resolve(dir);
        if (!Files.isDirectory(base)) throw new IllegalStateException("HF_HUB_OFFLINE=1: nothing downloaded yet in " + base);
        List<RepoFile> out = new ArrayList<>();
        try (java.util.stream.Stream<Path> s = Files.walk(base)) {
            for (Path f : s.filter(Files::isRegularFile).filter(f -> !f.toString().endsWith(".incomplete")).sorted().toList()) {
                out.add(new RepoFile(localRoot.relativize(f).toString().replace('\\', '/'), Files.size(f), null, null));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(base + ": " + e.getMessage(), e);
        }
        return out;
    }

    /** The resolve URL of a file. */
    public String fileUrl(String kind, String repo, String revision, String path) {
        return endpoint + (kind.equals("datasets") ? "/datasets/" : "/") + repo + "/resolve/" + encode(revision) + "/" + encodePath(path);
    }

    // ------------------------------------------------------------------ downloads

    /**
     * Downloads one file to {@code target} (kept when already there with the listed size), resuming
     * a {@code .incomplete} file left by an interruption, retrying cut transfers, then checking size
     * and hash before renaming it into place. {@code progress} gets the bytes as they arrive.
     */
    public Path download(String kind, String repo, String revision, RepoFile f, Path target, LongConsumer progress) {
        try {
            if (Files.isRegularFile(target) && Files.size(target) == f.size()) {
                progress.accept(f.size());
                return target;
            }
            if (offline) throw new IllegalStateException("HF_HUB_OFFLINE=1: " + target + " is not downloaded yet");
            Files.createDirectories(target.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": " + e.getMessage(), e);
        }
        String url = fileUrl(kind, repo, revision, f.path());
        Path part = target.resolveSibling(target.getFileName() + ".incomplete");
        for (int attempt = 1; attempt <= attempts; attempt++) {
            try {
                long have = Files.isRegularFile(part) ? Files.size(part) : 0;
                if (have > f.size()) {
                    Files.delete(part);
                    have = 0;
                }
                if (have < f.size() || f.size() == 0) fetchInto(url, part, have, progress);
                break;
            } catch (IllegalStateException e) {
                // the host unreachable for all of send's own tries: what arrived stays for a rerun
                long have = sizeOf(part);
                if (!(e.getCause() instanceof IOException) || have == 0) throw e;
                throw new IllegalStateException(e.getMessage() + "; rerun to continue from the " + have + " bytes already in " + part, e);
            } catch (IOException e) {
                // a cut transfer: keep what arrived and ask for the rest
                String why = describe(e, url);
                if (attempt == attempts) {
                    throw new IllegalStateException("GET " + url + ": " + why + ", " + attempts + " tries; rerun to continue from the "
                            + sizeOf(part) + " bytes already in " + part);
                }
                retry("GET " + url + ": " + why + " after " + sizeOf(part) + " bytes", attempt, backoffMillis << (attempt - 1));
            }
        }
        verify(url, part, f);
        try {
            return Files.move(part, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": " + e.getMessage(), e);
        }
    }

    /**
     * Downloads several files at once (at most {@code parallel}); {@code done} is called with each
     * file's index as it completes, in completion order. The first failure is thrown once every
     * started download has stopped.
     */
    public void downloadAll(String kind, String repo, String revision, List<RepoFile> files, List<Path> targets,
                            int parallel, LongConsumer progress, Consumer<Integer> done) {
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, parallel), r -> {
            Thread t = new Thread(r, "hub-download");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int i = 0; i < files.size(); i++) {
                int index = i;
                futures.add(pool.submit(() -> {
                    download(kind, repo, revision, files.get(index), targets.get(index), progress);
                    done.accept(index);
                }));
            }
            RuntimeException first = null;
            for (Future<?> fu : futures) {
                try {
                    fu.get();
                } catch (java.util.concurrent.ExecutionException e) {
                    if (first == null) {
                        first = e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("download interrupted");
                }
            }
            if (first != null) throw first;
        } finally {
            pool.shutdownNow();
        }
    }

    private static long sizeOf(Path p) {
        try {
            return Files.isRegularFile(p) ? Files.size(p) : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    /** GET url from byte {@code from} on, appended to part (a full answer replaces it). */
    private void fetchInto(String url, Path part, long from, LongConsumer progress) throws IOException {
        HttpResponse<InputStream> r = send(url, from > 0 ? "bytes=" + from + "-" : null, HttpResponse.BodyHandlers.ofInputStream());
        boolean append = from > 0 && r.statusCode() == 206;
        if (from > 0 && !append) progress.accept(-from); // the server sent the whole file again
        try (InputStream in = r.body(); OutputStream out = Files.newOutputStream(part, StandardOpenOption.CREATE,
                append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
                progress.accept(n);
            }
        }
    }

    /** Size, then SHA-256 (LFS files) or the git blob SHA-1 the listing gives; a mismatch removes the file. */
    private static void verify(String url, Path part, RepoFile f) {
        try {
            long size = Files.size(part);
            String problem = null;
            if (size != f.size()) {
                problem = "size " + size + " bytes, the Hub lists " + f.size();
            } else if (f.sha256() != null) {
                String got = digest(part, "SHA-256", null);
                if (!got.equalsIgnoreCase(f.sha256())) problem = "SHA-256 " + got + ", the Hub lists " + f.sha256();
            } else if (f.gitOid() != null && f.gitOid().length() == 40) {
                String got = digest(part, "SHA-1", ("blob " + size + "\0").getBytes(StandardCharsets.UTF_8));
                if (!got.equalsIgnoreCase(f.gitOid())) problem = "git SHA-1 " + got + ", the Hub lists " + f.gitOid();
            }
            if (problem != null) {
                Files.deleteIfExists(part);
                throw new IllegalStateException("GET " + url + ": checksum mismatch (" + problem + "); the file was removed");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(part + ": " + e.getMessage(), e);
        }
    }

    static String digest(Path file, String algorithm, byte[] prefix) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance(algorithm);
            if (prefix != null) md.update(prefix);
            try (InputStream in = Files.newInputStream(file)) {
                byte[] buf = new byte[1 << 20];
                int n;
                while ((n = in.read(buf)) > 0) md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    // ------------------------------------------------------------------ HTTP

    /**
     * One GET with redirects followed by hand (the token goes to the endpoint's host only), 429 and
     * 5xx retried with backoff; a 2xx answer is returned, anything else is a one-line error.
     */
    private <T> HttpResponse<T> send(String url, String range, HttpResponse.BodyHandler<T> body) {
        String at = url;
        for (int attempt = 1; ; attempt++) {
            HttpResponse<T> r = null;
            try {
                for (int hop = 0; hop <= 10; hop++) {
                    URI uri = URI.create(at);
                    HttpRequest.Builder b = HttpRequest.newBuilder(uri).timeout(Duration.ofMinutes(10)).GET()
                            .header("User-Agent", "gpt2-java");
                    if (range != null) b.header("Range", range);
                    if (token != null && sameHost(uri, endpoint)) b.header("Authorization", "Bearer " + token);
                    r = http.send(b.build(), body);
                    int s = r.statusCode();
                    if (s >= 300 && s < 400 && r.headers().firstValue("location").isPresent()) {
                        close(r);
                        at = uri.resolve(r.headers().firstValue("location").get()).toString();
                        continue;
                    }
                    break;
                }
            } catch (IOException e) {
                String why = describe(e, at);
                if (attempt >= attempts) throw new IllegalStateException("GET " + url + ": " + why + " (" + attempts + " tries)", e);
                retry("GET " + url + ": " + why, attempt, backoffMillis << (attempt - 1));
                continue;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("GET " + url + ": interrupted");
            }
            int s = r.statusCode();
            if (s >= 200 && s < 300) return r;
            close(r);
            if ((s == 429 || s >= 500) && attempt < attempts) {
                long after = r.headers().firstValueAsLong("retry-after").orElse(-1) * 1000;
                retry("GET " + url + ": HTTP " + s, attempt, after > 0 ? Math.min(after, 60_000) : backoffMillis << (attempt - 1));
                continue;
            }
            String hint = s == 401 || s == 403 ? (token == null
                    ? " (a gated or private repo: set HF_TOKEN or run huggingface-cli login)"
                    : " (the token has no access: accept the repo's terms on the Hub, or use another token)")
                    : s == 404 ? " (no such repo, revision or file)" : "";
            throw new IllegalStateException("GET " + url + ": HTTP " + s + hint);
        }
    }

    /** Says what failed and when the next try comes (as it happens), then waits for it. */
    private void retry(String what, int attempt, long waitMs) {
        notices.accept(what + "; try " + (attempt + 1) + " of " + attempts + " in "
                + (waitMs < 1000 ? waitMs + " ms" : waitMs / 1000 + " s"));
        sleep(waitMs);
    }

    private static boolean sameHost(URI a, URI b) {
        return a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost()) && a.getPort() == b.getPort();
    }

    private static void close(HttpResponse<?> r) {
        if (r.body() instanceof InputStream in) {
            try {
                in.close();
            } catch (IOException ignored) {
                // the answer is not used
            }
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted");
        }
    }

    private static String encode(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    private static String encodePath(String path) {
        StringBuilder sb = new StringBuilder();
        for (String part : path.split("/")) {
            if (!sb.isEmpty()) sb.append('/');
            sb.append(encode(part));
        }
        return sb.toString();
    }

    /** Bytes received so far by a group of downloads (for one progress bar). */
    public static final class Counter implements LongConsumer {
        private final AtomicLong bytes = new AtomicLong();

        @Override
        public void accept(long n) {
            bytes.addAndGet(n);
        }

        public long get() {
            return bytes.get();
        }
    }
}
