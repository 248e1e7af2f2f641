package gpt2.data;

import java.io.PrintStream;
import java.util.Locale;

/**
 * Progress of long work (preparation, downloads, evaluation) on stderr, so stdout stays parseable.
 * On a terminal one line redrawn in place at most twice a second, laid out to the terminal's width
 * (COLUMNS, else 100): the task, percent, a bar that shrinks first, counts, rate, time left, and the
 * extra text last, cut to fit; never wider than the terminal, so it does not wrap. In a pipe or a
 * file, a whole line every 10 seconds and one at the end, without carriage returns.
 *
 * <pre>
 * hellaswag  42% [#########.............] 4210/10042 examples | 31.2 examples/s | 0:03:07 left | acc_norm 0.2950
 * </pre>
 */
public final class Progress implements AutoCloseable {

    private final String task, unit;
    private final long total;
    private final PrintStream out;
    private final boolean terminal;
    private final int width;
    private final long start = System.nanoTime(), intervalNanos;
    private long done, lastDraw;
    private String extra = "";

    /** A bar of {@code total} units, or an open-ended counter when total < 0. */
    public Progress(String task, long total, String unit) {
        this(task, total, unit, System.err, System.console() != null, terminalWidth());
    }

    /** For tests: where to draw, whether it is a terminal, and its width. */
    Progress(String task, long total, String unit, PrintStream out, boolean terminal, int width) {
        this.task = task;
        this.total = total;
        this.unit = unit;
        this.out = out;
        this.terminal = terminal;
        this.width = Math.max(40, width);
        this.intervalNanos = terminal ? 500_000_000L : 10_000_000_000L;
        this.lastDraw = start;
    }

    private static int terminalWidth() {
        try {
            return Integer.parseInt(System.getenv().getOrDefault("COLUMNS", "100").trim());
        } catch (NumberFormatException e) {
            return 100;
        }
    }

    public synchronized void step(long n) {
        done += n;
        long now = System.nanoTime();
        if (now - lastDraw >= intervalNanos) {
            lastDraw = now;
            draw(now);
        }
    }

    /** Text shown after the numbers (e.g. a running accuracy). */
    public synchronized void extra(String message) {
        extra = message == null ? "" : message;
    }

    @Override
    public synchronized void close() {
        draw(System.nanoTime());
        if (terminal) out.println();
        out.flush();
    }

    private void draw(long now) {
        String line = line(now);
        if (terminal) {
            out.print('\r' + line + " ".repeat(Math.max(0, width - 1 - line.length())));
        } else {
            out.println(line);
        }
        out.flush();
    }

    /** The line for the state at {@code now}, at most width - 1 characters. */
    String line(long now) {
        double seconds = Math.max(1e-9, (now - start) / 1e9);
        double rate = done / seconds;
        StringBuilder tail = new StringBuilder();
        tail.append(total >= 0 ? count(done) + "/" + count(total) : count(done)).append(' ').append(unit);
        tail.append(" | ").append(rate(rate)).append(' ').append(unit).append("/s");
        if (total > 0 && done < total && rate > 0) tail.append(" | ").append(time((total - done) / rate)).append(" left");
        else tail.append(" | ").append(time(seconds));
        String head = task + (total > 0 ? String.format(Locale.ROOT, " %3d%%", (int) (100.0 * Math.min(done, total) / total)) : "");
        String more = extra.isEmpty() ? "" : " | " + extra;
        // the bar gives way first, then the extra text is cut: the numbers always show
        int room = width - 1 - head.length() - 1 - tail.length() - Math.min(more.length(), 12);
        String bar = "";
        if (total > 0 && room >= 13) {
            int cells = Math.min(40, room - 3);
            int full = (int) ((long) cells * Math.min(done, total) / total);
            bar = " [" + "#".repeat(full) + ".".repeat(cells - full) + "]";
        }
        String line = head + bar + " " + tail + more;
        return line.length() <= width - 1 ? line : line.substring(0, width - 2) + "~";
    }

    /**
     * A size in bytes as people read it, in decimal units: "28.31 GB", "912.4 MB", "3.2 KB",
     * "512 bytes" (a small download is not "0.00 GB").
     */
    public static String size(long bytes) {
        if (bytes >= 1_000_000_000L) return String.format(Locale.ROOT, "%.2f GB", bytes / 1e9);
        if (bytes >= 1_000_000L) return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
        if (bytes >= 1_000L) return String.format(Locale.ROOT, "%.1f KB", bytes / 1e3);
        return bytes + (bytes == 1 ? " byte" : " bytes");
    }

    private static String count(long n) {
        if (n >= 10_000_000_000L) return String.format(Locale.ROOT, "%.1fG", n / 1e9);
        if (n >= 10_000_000L) return String.format(Locale.ROOT, "%.1fM", n / 1e6);
        return Long.toString(n);
    }

    private static String rate(double r) {
        if (r >= 1e9) return String.format(Locale.ROOT, "%.1fG", r / 1e9);
        if (r >= 1e6) return String.format(Locale.ROOT, "%.1fM", r / 1e6);
        if (r >= 1e4) return String.format(Locale.ROOT, "%.1fk", r / 1e3);
        return String.format(Locale.ROOT, "%.1f", r);
    }

    private static String time(double s) {
        long t = (long) s;
        return String.format(Locale.ROOT, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    }
}
