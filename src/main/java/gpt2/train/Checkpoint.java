package gpt2.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.io.Safetensors;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A checkpoint is one directory per step, {@code checkpoint_00001000/}:
 * <pre>
 * model.safetensors      every parameter tensor by name (float32, padded vocabulary rows included)
 * optimizer.safetensors  AdamW's m and v ("m.NAME", "v.NAME"); with --optimizer muon, m of the
 *                        Muon matrices is Muon's momentum buffer and their v is zero
 * state.json             step, config, arguments, loader position, RNG state, optimizer kind
 *                        ("optimizer": adamw or muon; absent = adamw) and step ("adamw_t"),
 *                        last losses, and the CRC32C of the two tensor files
 * </pre>
 * It is written into {@code .checkpoint_00001000.tmp/}, every file forced to disk, then renamed,
 * so a directory under the final name is always complete.
 */
public final class Checkpoint {
    private Checkpoint() {
    }

    public static final String MODEL = "model.safetensors";
    public static final String OPTIMIZER = "optimizer.safetensors";
    public static final String STATE = "state.json";
    public static final String FORMAT = "gpt2-java checkpoint v1";
    private static final Pattern NAME = Pattern.compile("checkpoint_(\\d{8})");
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public static Path dirFor(Path outputDir, int step) {
        return outputDir.resolve(String.format("checkpoint_%08d", step));
    }

    /**
     * Writes a checkpoint; {@code state} gets "format", "config", "files" and the optimizer step
     * added. Returns the final directory.
     */
    public static Path save(Path outputDir, int step, Gpt2 model, AdamW optimizer, ObjectNode state) {
        return saveDir(dirFor(outputDir, step), step, model, optimizer, state);
    }

    /** As above with the whole optimizer state given as full-size m and v (ZeRO-1 gathers them first). */
    public static Path save(Path outputDir, int step, Gpt2 model, Buffer fullM, Buffer fullV, int t, ObjectNode state) {
        return saveDir(dirFor(outputDir, step), step, model, new Buffer[]{fullM, fullV}, t, state);
    }

    /** Writes a checkpoint into the directory {@code dir} itself (temporary sibling, then renamed). */
    public static Path saveDir(Path dir, int step, Gpt2 model, AdamW optimizer, ObjectNode state) {
        if (optimizer != null && optimizer.sharded()) {
            throw new IllegalArgumentException("a sharded optimizer must be gathered before saving");
        }
        return saveDir(dir, step, model, optimizer == null ? null : new Buffer[]{optimizer.m(), optimizer.v()},
                optimizer == null ? 0 : optimizer.stepCount(), state);
    }

    private static Path saveDir(Path dir, int step, Gpt2 model, Buffer[] moments, int t, ObjectNode state) {
        Path outputDir = dir.toAbsolutePath().getParent();
        Path tmp = outputDir.resolve("." + dir.getFileName() + ".tmp");
        try {
            Files.createDirectories(outputDir);
            deleteTree(tmp);
            Files.createDirectories(tmp);
            ParameterLayout layout = model.layout();
            Map<String, String> meta = Map.of("format", FORMAT, "step", Integer.toString(step));
            writeTensors(tmp.resolve(MODEL), model.backend(), layout, List.of(""), List.of(model.params()), meta);
            if (moments != null) {
                writeTensors(tmp.resolve(OPTIMIZER), model.backend(), layout, List.of("m.", "v."),
                        List.of(moments[0], moments[1]), meta);
                state.put("adamw_t", t);
            }
            state.put("format", FORMAT);
            state.put("step", step);
            state.set("config", JSON.valueToTree(model.config()));
            ObjectNode files = state.putObject("files");
            files.put(MODEL, crc32c(tmp.resolve(MODEL)));
            if (moments != null) files.put(OPTIMIZER, crc32c(tmp.resolve(OPTIMIZER)));
            Path st = tmp.resolve(STATE);
            JSON.writeValue(st.toFile(), state);
            force(st);
            force(tmp);
            if (Files.exists(dir)) deleteTree(dir);
            Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
            force(outputDir);
            return dir;
        } catch (IOException | UncheckedIOException e) {
            try {
                deleteTree(tmp); // a half-written checkpoint never stays, under any name
            } catch (IOException ignored) {
                // the .tmp name is never taken for a checkpoint
            }
            IOException cause = e instanceof IOException io ? io : ((UncheckedIOException) e).getCause();
            throw new UncheckedIOException("cannot write checkpoint " + dir + ": " + cause.getMessage(), cause);
        }
    }

    /**
     * Deletes old checkpoints of a run directory, keeping the newest {@code keepLast} (0: keep all)
     * and every one whose step is a multiple of {@code keepEvery} (0: none).
     */
    public static void prune(Path outputDir, int keepLast, int keepEvery) {
        if (keepLast <= 0) return;
        List<Path> dirs = newestFirst(outputDir);
        for (int i = keepLast; i < dirs.size(); i++) {
            int st = step(dirs.get(i));
            if (keepEvery > 0 && st % keepEvery == 0) continue;
            try {
                deleteTree(dirs.get(i));
            } catch (IOException e) {
                System.err.println("warning: could not delete old checkpoint " + dirs.get(i) + ": " + e.getMessage());
            }
        }
    }

    private static void writeTensors(Path file, Backend backend, ParameterLayout layout, List<String> prefixes,
                                     List<Buffer> buffers, Map<String, String> meta) {
        try (Arena arena = Arena.ofConfined()) {
            List<Safetensors.Entry> entries = new ArrayList<>();
            for (int i = 0; i < buffers.size(); i++) {
                MemorySegment host = arena.allocate(layout.totalSize() * 4, 64);
                backend.copyToHost(buffers.get(i), host);
                for (TensorSpec t : layout.tensors()) {
                    entries.add(new Safetensors.Entry(prefixes.get(i) + t.name(), t.shape(),
                            host.asSlice(t.offset() * 4, t.size() * 4)));
                }
            }
            Safetensors.write(file, entries, meta);
        }
    }

    /** A checkpoint's state.json, after its files' checksums are verified. */
    public static ObjectNode readState(Path dir) {
        Path st = dir.resolve(STATE);
        if (!Files.isRegularFile(st)) throw new IllegalArgumentException(dir + ": not a checkpoint (no " + STATE + ")");
        ObjectNode state;
        try {
            state = (ObjectNode) JSON.readTree(st.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            var at = e.getLocation();
            throw new IllegalArgumentException(st + ": invalid JSON" + (at == null ? "" : " at line " + at.getLineNr()
                    + " column " + at.getColumnNr()));
        } catch (IOException e) {
            throw new IllegalArgumentException(st + ": unreadable (" + e.getMessage() + ")");
        } catch (ClassCastException e) {
            throw new IllegalArgumentException(st + ": not a JSON object");
        }
        if (!FORMAT.equals(state.path("format").asText())) {
            throw new IllegalArgumentException(st + ": not a " + FORMAT + " file");
        }
        if (!state.path("files").isObject() || !state.path("files").has(MODEL)) {
            throw new IllegalArgumentException(st + ": no checksums of the checkpoint's files");
        }
        state.path("files").fields().forEachRemaining(f -> {
            Path file = dir.resolve(f.getKey());
            if (!Files.isRegularFile(file)) throw new IllegalArgumentException(file + ": missing from the checkpoint");
            String actual = crc32c(file);
            if (!actual.equals(f.getValue().asText())) {
                throw new IllegalArgumentException(file + ": checksum mismatch (corrupt checkpoint)");
            }
        });
        return state;
    }

    public static GptConfig config(ObjectNode state) {
        if (!state.path("config").isObject()) throw new IllegalArgumentException("checkpoint state has no model config");
        try {
            return JSON.treeToValue(state.get("config"), GptConfig.class);
        } catch (IOException | IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint config unreadable: " + e.getMessage());
        }
    }

    /** Loads the weights of a checkpoint into a model of the checkpoint's config. */
    public static void loadModel(Path dir, Gpt2 model) {
        readInto(dir.resolve(MODEL), model.backend(), model.layout(), "", model.params());
    }

    /** Loads m and v (of the optimizer's shard only, when sharded) and the step count. */
    public static void loadOptimizer(Path dir, AdamW optimizer, ParameterLayout layout, Backend backend, int t) {
        long lo = optimizer.shardStart(), hi = optimizer.shardEnd();
        readInto(dir.resolve(OPTIMIZER), backend, layout, "m.", optimizer.m(), lo, hi);
        readInto(dir.resolve(OPTIMIZER), backend, layout, "v.", optimizer.v(), lo, hi);
        optimizer.setStepCount(t);
    }

    private static void readInto(Path file, Backend backend, ParameterLayout layout, String prefix, Buffer dst) {
        readInto(file, backend, layout, prefix, dst, 0, layout.totalSize());
    }

    private static void readInto(Path file, Backend backend, ParameterLayout layout, String prefix, Buffer dst,
                                 long lo, long hi) {
        try (Safetensors.Reader r = new Safetensors.Reader(file); Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(layout.totalSize() * 4, 64);
            for (TensorSpec t : layout.tensors()) {
                r.readFloats(prefix + t.name(), t.shape(), host.asSlice(t.offset() * 4, t.size() * 4));
            }
            backend.copyFromHost(dst, host.asSlice(lo * 4, (hi - lo) * 4));
        }
    }

    /** The checkpoint directories of a run directory, highest step first. */
    private static List<Path> newestFirst(Path outputDir) {
        List<Path> dirs = new ArrayList<>();
        try (Stream<Path> s = Files.list(outputDir)) {
            s.filter(p -> NAME.matcher(p.getFileName().toString()).matches() && Files.isDirectory(p)).forEach(dirs::add);
        } catch (IOException e) {
            throw new UncheckedIOException(outputDir + ": " + e.getMessage(), e);
        }
        dirs.sort((a, b) -> Integer.compare(step(b), step(a)));
        return dirs;
    }

    /** A checkpoint directory with its verified state.json, or (state null) what is wrong with it. */
    public record Found(Path dir, int step, ObjectNode state, String problem) {
        public boolean valid() {
            return problem == null;
        }
    }

    /** A run directory's checkpoint directories, highest step first, not verified (none when it is no directory). */
    public static List<Path> directories(Path outputDir) {
        return Files.isDirectory(outputDir) ? newestFirst(outputDir) : List.of();
    }

    /** Verifies one checkpoint directory (its files' checksums): its state, or the problem. */
    public static Found verify(Path dir) {
        try {
            return new Found(dir, step(dir), readState(dir), null);
        } catch (IllegalArgumentException | UncheckedIOException e) {
            return new Found(dir, step(dir), null, e.getMessage());
        }
    }

    /**
     * The newest checkpoint of a run directory whose files verify: checked from the highest step
     * down, stopping at the first good one (a checkpoint's checksums read all its bytes); those
     * that failed on the way go to {@code skipped}. Empty when none verifies.
     */
    public static Optional<Found> newestValid(Path outputDir, Consumer<Found> skipped) {
        return newest(outputDir, skipped, false);
    }

    /**
     * As {@link #newestValid}, for continuing a run: a checkpoint that holds weights only (written by
     * {@code gpt2 convert}, without the training state) is skipped like a damaged one, so --resume
     * falls back to the run's previous checkpoint.
     */
    public static Optional<Found> newestResumable(Path outputDir, Consumer<Found> skipped) {
        return newest(outputDir, skipped, true);
    }

    private static Optional<Found> newest(Path outputDir, Consumer<Found> skipped, boolean training) {
        for (Path d : directories(outputDir)) {
            Found f = verify(d);
            if (training && f.valid() && !f.state().has("train_loader")) {
                f = new Found(d, f.step(), null, "holds weights only (a converted model), no training state");
            }
            if (f.valid()) return Optional.of(f);
            skipped.accept(f);
        }
        return Optional.empty();
    }

    /** "checkpoint_N (what is wrong); ..." for checkpoints that failed to verify, for one-line errors. */
    public static String problems(List<Found> bad) {
        StringBuilder s = new StringBuilder();
        for (Found b : bad) s.append(s.isEmpty() ? "" : "; ").append(b.dir().getFileName()).append(" (").append(b.problem()).append(')');
        return s.toString();
    }

    /** The checkpoint of the highest step in a run directory whose files verify (skipped ones said on stderr). */
    public static Optional<Path> latest(Path outputDir) {
        return newestValid(outputDir, f -> System.err.println("warning: skipping " + f.dir() + ": " + f.problem()))
                .map(Found::dir);
    }

    static int step(Path dir) {
        Matcher m = NAME.matcher(dir.getFileName().toString());
        return m.matches() ? Integer.parseInt(m.group(1)) : -1;
    }

    /** CRC32C of a file (hardware-accelerated), as 8 hex digits. */
    static String crc32c(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
            byte[] buf = new byte[1 << 20];
            int n;
            while ((n = in.read(buf)) > 0) crc.update(buf, 0, n);
            return String.format("%08x", crc.getValue());
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": " + e.getMessage(), e);
        }
    }

    private static void force(Path p) {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException e) {
            // directories cannot be opened for fsync on every file system; the rename is still atomic
        }
    }

    /** Deletes a tree this program wrote (a temporary checkpoint); Files.walk does not follow links. */
    public static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path f : s.sorted((a, b) -> b.getNameCount() - a.getNameCount()).toList()) Files.delete(f);
        }
    }

}
