package gpt2.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.train.Checkpoint;
import gpt2.train.RunFolder;
import gpt2.train.RunLog;
import gpt2.train.RunStatus;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The run folders under {@code --runs}, read-only. A run is named by its path relative to the root
 * ("d12", "sweep/lr3e-4"); requests name runs and files by those names only, looked up in a fresh
 * listing, never by a path taken from the request. The listing walks real folders only (symbolic
 * links are not followed), and every file read is checked to lie under the root once its links are
 * resolved, so nothing outside {@code --runs} can be read. Files being written are expected: a
 * last line without its newline is left for the next read, an unreadable line is counted and said.
 */
final class RunStore {
    /** How deep under the root run folders are looked for (runs/, runs/sweep/, runs/sweep/a/). */
    private static final int DEPTH = 3;
    /** Metrics read per request at most (a client asks again from the offset it got). */
    static final int MAX_RECORDS = 20_000;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern SAMPLE_HEADER = Pattern.compile("^--- step (\\d+) ---$");

    private final Path root;

    RunStore(Path root) {
        if (!Files.isDirectory(root)) throw new IllegalArgumentException("--runs " + root + ": no such folder");
        try {
            this.root = root.toRealPath();
        } catch (IOException e) {
            throw new IllegalArgumentException("--runs " + root + ": " + e.getMessage());
        }
    }

    Path root() {
        return root;
    }

    /** Run name to folder, sorted by name: the folders under the root that hold a run. */
    Map<String, Path> runs() {
        Map<String, Path> found = new TreeMap<>();
        try {
            Files.walkFileTree(root, EnumSet.noneOf(java.nio.file.FileVisitOption.class), DEPTH, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) {
                    if (!dir.equals(root) && dir.getFileName().toString().startsWith(".")) return FileVisitResult.SKIP_SUBTREE;
                    if (!dir.equals(root) && RunFolder.holdsRun(dir)) {
                        found.put(name(dir), dir);
                        return FileVisitResult.SKIP_SUBTREE; // its checkpoints are its own
                    }
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFileFailed(Path file, IOException e) {
                    return FileVisitResult.CONTINUE; // a folder deleted or unreadable while listing
                }
            });
            if (RunFolder.holdsRun(root)) found.put(".", root); // --runs pointing at one run folder
        } catch (IOException e) {
            throw new IllegalStateException("cannot list " + root + ": " + e.getMessage(), e);
        }
        return found;
    }

    private String name(Path dir) {
        return root.relativize(dir).toString().replace(java.io.File.separatorChar, '/');
    }

    /** The run of that name, or null. */
    Path run(String name) {
        return name == null ? null : runs().get(name);
    }

    /**
     * A file of a run for reading: a regular file whose real path lies under the root (a link
     * leading elsewhere is refused), or null when there is none.
     */
    Path file(Path runDir, String relative) {
        Path f = runDir.resolve(relative).normalize();
        if (!f.startsWith(runDir)) return null;
        try {
            if (!Files.exists(f, LinkOption.NOFOLLOW_LINKS)) return null;
            Path real = f.toRealPath();
            if (!real.startsWith(root) || !Files.isRegularFile(real)) return null;
            return real;
        } catch (IOException e) {
            return null;
        }
    }

    /** The run's checkpoints, newest first: name, step, size, and the HellaSwag and CORE results written beside them. */
    ArrayNode checkpoints(Path runDir) {
        ArrayNode out = JsonNodeFactory.instance.arrayNode();
        for (Path d : Checkpoint.directories(runDir)) {
            if (Files.isSymbolicLink(d)) continue;
            Path model = file(d, Checkpoint.MODEL);
            if (model == null) continue; // being written, or deleted
            ObjectNode c = out.addObject();
            c.put("name", d.getFileName().toString());
            c.put("step", stepOf(d.getFileName().toString()));
            try {
                c.put("bytes", Files.size(model));
            } catch (IOException e) {
                c.put("bytes", -1);
            }
            Path core = file(d, "core_eval.json"); // gpt2 eval's CORE result for this checkpoint
            if (core != null) {
                try {
                    JsonNode n = JSON.readTree(core.toFile());
                    if (n.has("core")) c.put("core", n.get("core").asDouble());
                } catch (IOException e) {
                    c.put("core_problem", "core_eval.json unreadable: " + e.getMessage());
                }
            }
            Path hs = file(d, "hellaswag.json");
            if (hs != null) {
                try {
                    c.set("hellaswag", JSON.readTree(hs.toFile()));
                } catch (IOException e) {
                    c.put("hellaswag_problem", "hellaswag.json unreadable: " + e.getMessage());
                }
            }
        }
        return out;
    }

    private static int stepOf(String checkpointName) {
        Matcher m = Pattern.compile("(\\d+)$").matcher(checkpointName);
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    /** Metrics read from a byte offset: the records, where to read next, and what could not be read. */
    record Metrics(List<JsonNode> records, long next, boolean reset, int unreadable, boolean partialLast) {
    }

    /**
     * metrics.jsonl from byte {@code from}: whole lines only (a last line still being written is left
     * for the next read); a line that is not a JSON object is counted, not fatal. A file now shorter
     * than {@code from} was rewritten (a resumed run drops the entries it will write again): read
     * from the start, with {@code reset} set.
     */
    Metrics metrics(Path runDir, long from) {
        Path f = file(runDir, RunLog.METRICS);
        List<JsonNode> records = new ArrayList<>();
        if (f == null) return new Metrics(records, 0, from > 0, 0, false);
        byte[] bytes;
        try (InputStream in = Files.newInputStream(f)) {
            long size = Files.size(f);
            boolean reset = from > size;
            long start = reset ? 0 : Math.max(0, from);
            in.skipNBytes(start);
            bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, size - start));
            int unreadable = 0, lineStart = 0;
            boolean partial = false;
            for (int i = 0; i < bytes.length && records.size() < MAX_RECORDS; i++) {
                if (bytes[i] != '\n') continue;
                String line = new String(bytes, lineStart, i - lineStart, StandardCharsets.UTF_8).strip();
                lineStart = i + 1;
                if (line.isEmpty()) continue;
                try {
                    JsonNode n = JSON.readTree(line);
                    if (n != null && n.isObject() && n.has("step")) records.add(n);
                    else unreadable++;
                } catch (IOException e) {
                    unreadable++;
                }
            }
            if (lineStart < bytes.length && records.size() < MAX_RECORDS) partial = true;
            return new Metrics(records, start + lineStart, reset, unreadable, partial);
        } catch (IOException e) {
            return new Metrics(records, from, false, 0, false); // deleted while reading: the next poll says so
        }
    }

    /** What a run's summary needs of its metrics.jsonl: the last training and validation records, and the lines unreadable. */
    private static final class Tail {
        long next;
        JsonNode lastTrain, lastVal;
        int unreadable;
    }

    /** Each run's tail, kept between looks: a look reads only the lines written since the last one. */
    private final Map<Path, Tail> tails = new java.util.HashMap<>();

    /** The run's tail brought up to date (read on from where the last look stopped; from the start when rewritten). */
    private synchronized Tail tail(Path dir) {
        Tail t = tails.computeIfAbsent(dir, d -> new Tail());
        while (true) {
            Metrics m = metrics(dir, t.next);
            if (m.reset()) tails.put(dir, t = new Tail());
            for (JsonNode r : m.records()) {
                if (r.has("loss")) t.lastTrain = r;
                if (r.has("val_loss")) t.lastVal = r;
            }
            t.unreadable += m.unreadable();
            t.next = m.next();
            if (m.records().size() < MAX_RECORDS) return t;
        }
    }

    /** The last {@code max} samples written during training: step and text. */
    ArrayNode samples(Path runDir, int max) {
        ArrayNode out = JsonNodeFactory.instance.arrayNode();
        Path f = file(runDir, RunLog.SAMPLES);
        if (f == null) return out;
        List<String> lines;
        try {
            lines = Files.readAllLines(f, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return out;
        }
        List<ObjectNode> all = new ArrayList<>();
        StringBuilder text = null;
        for (String l : lines) {
            Matcher m = SAMPLE_HEADER.matcher(l);
            if (m.matches()) {
                if (text != null) all.getLast().put("text", text.toString().strip());
                ObjectNode s = JsonNodeFactory.instance.objectNode().put("step", Integer.parseInt(m.group(1)));
                all.add(s);
                text = new StringBuilder();
            } else if (text != null) {
                text.append(l).append('\n');
            }
        }
        if (text != null) all.getLast().put("text", text.toString().strip());
        for (int i = Math.max(0, all.size() - max); i < all.size(); i++) out.add(all.get(i));
        return out;
    }

    /**
     * One run's line in the list: model, state, steps, last losses, checkpoints, flags, and a
     * signature of its files (sizes and times) by which a watcher sees that it changed.
     */
    ObjectNode summary(String name, Path dir) {
        ObjectNode s = JsonNodeFactory.instance.objectNode();
        s.put("name", name);
        JsonNode status = null;
        Path sf = file(dir, RunStatus.FILE);
        if (sf != null) {
            try {
                status = JSON.readTree(sf.toFile());
            } catch (IOException e) {
                s.put("problem", RunStatus.FILE + " unreadable (being written?)");
            }
        }
        Tail m = tail(dir);
        JsonNode lastTrain = m.lastTrain, lastVal = m.lastVal;
        ArrayNode checkpoints = checkpoints(dir);
        int numIterations = status != null ? status.path("num_iterations").asInt(-1) : -1;
        JsonNode args = status != null ? status.get("args") : null;
        if (args == null && !checkpoints.isEmpty()) {
            try {
                ObjectNode state = Checkpoint.readState(dir.resolve(checkpoints.get(0).get("name").asText()));
                args = state.get("args");
                if (numIterations < 0 && args != null) numIterations = args.path("num_iterations").asInt(-1);
            } catch (RuntimeException e) {
                s.put("problem", "newest checkpoint unreadable: " + e.getMessage());
            }
        }
        String model = status != null ? status.path("model").asText(null) : null;
        if (model == null && args != null) model = args.path("model").asText(null);
        s.put("model", model);
        int step = lastTrain != null ? lastTrain.path("step").asInt() : 0;
        if (!checkpoints.isEmpty()) step = Math.max(step, checkpoints.get(0).path("step").asInt());
        s.put("step", step);
        s.put("num_iterations", numIterations);
        if (lastTrain != null) {
            s.put("loss", lastTrain.path("loss").asDouble());
            if (lastTrain.has("tok_s")) s.put("tok_s", lastTrain.path("tok_s").asDouble());
            if (lastTrain.has("tokens")) s.put("tokens", lastTrain.path("tokens").asLong());
        }
        if (lastVal != null) s.put("val_loss", lastVal.path("val_loss").asDouble());
        s.put("state", state(status, step, numIterations, dir));
        if (status != null && status.has("error")) s.put("error", status.get("error").asText());
        if (status != null && status.has("started")) s.put("started", status.get("started").asText());
        if (m.unreadable > 0) s.put("unreadable_lines", m.unreadable);
        s.set("checkpoints", checkpoints);
        if (args != null) s.set("args", args);
        s.put("signature", signature(dir));
        return s;
    }

    /**
     * running / stopped / finished / failed, from run.json; "running" whose process is gone (same
     * host) is "killed"; without run.json (runs from before it): finished when the last step is the
     * run's step count, else stopped.
     */
    private static String state(JsonNode status, int step, int numIterations, Path dir) {
        if (status == null) return numIterations > 0 && step >= numIterations ? RunStatus.FINISHED : RunStatus.STOPPED;
        String st = status.path("state").asText("unknown");
        if (RunStatus.RUNNING.equals(st) && RunStatus.host().equals(status.path("host").asText())) {
            long pid = status.path("pid").asLong(-1);
            boolean alive = pid > 0 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
            if (!alive) return "killed";
        }
        return st;
    }

    /** Sizes and modification times of the files a run writes (a change means: read again). */
    String signature(Path dir) {
        StringBuilder sig = new StringBuilder();
        for (String f : new String[]{RunLog.METRICS, RunLog.SAMPLES, RunStatus.FILE}) {
            Path p = dir.resolve(f);
            try {
                sig.append(Files.size(p)).append(':').append(Files.getLastModifiedTime(p).toMillis()).append(';');
            } catch (IOException e) {
                sig.append("-;");
            }
        }
        for (Path c : Checkpoint.directories(dir)) sig.append(c.getFileName()).append(';');
        return sig.toString();
    }
}
