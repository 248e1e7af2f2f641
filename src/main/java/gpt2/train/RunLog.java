package gpt2.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The run's files on rank 0: {@code main.log} in the original's format ({@code s:%d trl:%f},
 * {@code s:%d vloss:%f}), {@code metrics.jsonl} (one JSON object per step, one per validation) and
 * {@code samples.txt}. Steps are numbered by the updates done (the console's "step s/N"). A resumed
 * run first drops the entries it will write again.
 */
public final class RunLog implements AutoCloseable {

    public static final String MAIN_LOG = "main.log", METRICS = "metrics.jsonl", SAMPLES = "samples.txt";
    private static final Pattern LOG_STEP = Pattern.compile("^s:(\\d+) ");
    private static final Pattern JSON_STEP = Pattern.compile("\"step\"\\s*:\\s*(\\d+)");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final BufferedWriter main, metrics, samples;

    private RunLog(BufferedWriter main, BufferedWriter metrics, BufferedWriter samples) {
        this.main = main;
        this.metrics = metrics;
        this.samples = samples;
    }

    /** A log that writes nothing (other ranks, or no output dir). */
    public static RunLog none() {
        return new RunLog(null, null, null);
    }

    /** Opens the files in dir, keeping only entries of steps before {@code fromStep}. */
    public static RunLog open(Path dir, int fromStep) {
        try {
            Files.createDirectories(dir);
            keepBefore(dir.resolve(MAIN_LOG), LOG_STEP, " trl:", fromStep);
            keepBefore(dir.resolve(METRICS), JSON_STEP, "\"loss\":", fromStep);
            keepSamplesBefore(dir.resolve(SAMPLES), fromStep);
            return new RunLog(append(dir.resolve(MAIN_LOG)), append(dir.resolve(METRICS)), append(dir.resolve(SAMPLES)));
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot open run logs: " + e.getMessage(), e);
        }
    }

    private static BufferedWriter append(Path f) throws IOException {
        return Files.newBufferedWriter(f, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    /**
     * Keeps what a run resumed after {@code fromStep} updates will not write again: the training
     * entries (lines containing {@code trainMark}) of steps up to fromStep, the validation entries of
     * steps before it (the resumed run validates at fromStep again).
     */
    private static void keepBefore(Path f, Pattern step, String trainMark, int fromStep) throws IOException {
        if (!Files.exists(f)) return;
        List<String> kept = Files.readAllLines(f, StandardCharsets.UTF_8).stream().filter(l -> {
            Matcher m = step.matcher(l);
            if (!m.find()) return false;
            long s = Long.parseLong(m.group(1));
            return l.contains(trainMark) ? s <= fromStep : s < fromStep;
        }).toList();
        Files.write(f, kept, StandardCharsets.UTF_8);
    }

    /** samples.txt is blocks of "--- step N ---" and the text; keeps the blocks of earlier steps. */
    private static void keepSamplesBefore(Path f, int fromStep) throws IOException {
        if (!Files.exists(f)) return;
        Pattern header = Pattern.compile("^--- step (\\d+) ---$");
        List<String> kept = new java.util.ArrayList<>();
        boolean keep = false;
        for (String l : Files.readAllLines(f, StandardCharsets.UTF_8)) {
            Matcher m = header.matcher(l);
            if (m.matches()) keep = Long.parseLong(m.group(1)) < fromStep;
            if (keep) kept.add(l);
        }
        Files.write(f, kept, StandardCharsets.UTF_8);
    }

    public void train(int step, float loss) {
        line(main, String.format("s:%d trl:%f", step, loss));
    }

    public void val(int step, float loss) {
        line(main, String.format("s:%d vloss:%f", step, loss));
    }

    public void metrics(ObjectNode record) {
        try {
            line(metrics, JSON.writeValueAsString(record));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public void sample(int step, String text) {
        line(samples, "--- step " + step + " ---\n" + text);
    }

    private static void line(BufferedWriter w, String s) {
        if (w == null) return;
        try {
            w.write(s);
            w.newLine();
            w.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write run log: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        for (BufferedWriter w : new BufferedWriter[]{main, metrics, samples}) {
            if (w == null) continue;
            try {
                w.close();
            } catch (IOException ignored) {
                // each line was flushed when written
            }
        }
    }
}
