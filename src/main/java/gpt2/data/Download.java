package gpt2.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;

/** Fetches a URL to a file: streamed to a temporary name with a progress bar, then renamed. */
public final class Download {
    private Download() {
    }

    public static void fetch(URI url, Path target) {
        Path tmp = target.resolveSibling(target.getFileName() + ".part");
        try {
            HttpResponse<InputStream> r = client().send(HttpRequest.newBuilder(url).GET().build(),
                    HttpResponse.BodyHandlers.ofInputStream());
            if (r.statusCode() != 200) {
                r.body().close();
                throw new IllegalStateException("download of " + url + " failed: HTTP " + r.statusCode());
            }
            // the folder only once there is something to put in it: a failed first run leaves none behind
            if (target.getParent() != null) Files.createDirectories(target.getParent());
            try (OutputStream out = Files.newOutputStream(tmp)) {
                copy(r, out);
            }
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new UncheckedIOException("download of " + url + " failed: " + gpt2.io.Hub.describe(e, url.toString())
                    + " (no network? pass a local copy with --input FILE)", e);
        } catch (InterruptedException e) {
            deleteQuietly(tmp);
            Thread.currentThread().interrupt();
            throw new IllegalStateException("download of " + url + " interrupted");
        } catch (RuntimeException e) {
            deleteQuietly(tmp);
            throw e;
        }
    }

    /**
     * As {@link #fetch}, continuing an interrupted download: what arrived stays in TARGET.part, and
     * the next call asks for the rest (Range: bytes=N-); a server that answers with the whole file
     * starts it over. Returns the .part file once complete: the caller checks it and moves it into
     * place (a part that fails its check is the caller's to delete).
     */
    public static Path fetchResumable(URI url, Path target) {
        Path part = target.resolveSibling(target.getFileName() + ".part");
        try {
            long have = Files.isRegularFile(part) ? Files.size(part) : 0;
            HttpRequest.Builder b = HttpRequest.newBuilder(url).GET();
            if (have > 0) b.header("Range", "bytes=" + have + "-");
            HttpResponse<InputStream> r = client().send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
            if (r.statusCode() == 416 && have > 0) { // nothing after what we have: it is complete
                r.body().close();
                return part;
            }
            if (r.statusCode() != 200 && r.statusCode() != 206) {
                r.body().close();
                throw new IllegalStateException("download of " + url + " failed: HTTP " + r.statusCode());
            }
            boolean append = have > 0 && r.statusCode() == 206;
            if (target.getParent() != null) Files.createDirectories(target.getParent());
            try (OutputStream out = Files.newOutputStream(part, java.nio.file.StandardOpenOption.CREATE,
                    append ? java.nio.file.StandardOpenOption.APPEND : java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
                copy(r, out);
            }
            return part;
        } catch (IOException e) {
            long kept = 0;
            try {
                kept = Files.isRegularFile(part) ? Files.size(part) : 0;
            } catch (IOException ignored) {
                // nothing kept
            }
            throw new UncheckedIOException("download of " + url + " failed: " + gpt2.io.Hub.describe(e, url.toString())
                    + (kept > 0 ? "; rerun to continue from the " + kept + " bytes in " + part
                    : " (no network? pass a local copy with --input FILE)"), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("download of " + url + " interrupted; rerun to continue from " + part);
        }
    }

    private static HttpClient client() {
        return HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NORMAL).connectTimeout(Duration.ofSeconds(30)).build();
    }

    /** The response's body into out, with a progress bar over its content-length. */
    private static void copy(HttpResponse<InputStream> r, OutputStream out) throws IOException {
        long length = r.headers().firstValueAsLong("content-length").orElse(-1);
        try (InputStream in = r.body(); Progress bar = new Progress("download", length, "B")) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
                bar.step(n);
            }
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // a .part file never passes for the real one
        }
    }
}
