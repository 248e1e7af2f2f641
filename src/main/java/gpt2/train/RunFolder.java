package gpt2.train;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * An {@code --output_dir} and what it holds: a run is its logs ({@code main.log},
 * {@code metrics.jsonl}, {@code samples.txt}, {@code loss.png}, {@code run.json}) or its checkpoint directories.
 * A new run never writes into a folder that holds one unless told to continue it ({@code --resume})
 * or to move it aside ({@code --overwrite 1}: renamed to {@code DIR.old-N}, nothing deleted).
 */
public final class RunFolder {
    private RunFolder() {
    }

    /** The files whose presence means a run wrote here. */
    public static final List<String> RUN_FILES = List.of(RunLog.MAIN_LOG, RunLog.METRICS, RunLog.SAMPLES, LossPlot.FILE,
            RunStatus.FILE);

    /** Refuses an output folder that is a file; a folder that does not exist yet is fine. */
    public static void checkNotAFile(Path dir) {
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--output_dir " + dir + ": is a file");
        }
    }

    /** Whether dir holds a run: any run file or checkpoint directory. */
    public static boolean holdsRun(Path dir) {
        if (!Files.isDirectory(dir)) return false;
        for (String f : RUN_FILES) if (Files.exists(dir.resolve(f))) return true;
        return !Checkpoint.directories(dir).isEmpty();
    }

    /** "last checkpoint: step N", or why there is none. */
    public static String describe(Path dir) {
        int dirs = Checkpoint.directories(dir).size();
        return Checkpoint.newestValid(dir, f -> { }).map(f -> "last checkpoint: step " + f.step())
                .orElse(dirs == 0 ? "logs, no checkpoint" : dirs + " checkpoint(s), none valid");
    }

    /**
     * The refusal of a new run in a folder that holds one, or null when the run may write there
     * ({@code continuing}: --resume, or a checkpoint inside it; {@code overwrite}: it will be moved aside).
     */
    public static String refusal(Path dir, boolean continuing, boolean overwrite) {
        if (continuing || overwrite || !holdsRun(dir)) return null;
        return dir + " already holds a run (" + describe(dir) + "); continue it with --resume, or choose another "
                + "--output_dir (--overwrite 1 moves it aside to " + dir.getFileName() + ".old-N)";
    }

    /** Renames dir to the first free dir.old-N (N from 1) and returns that path; nothing is deleted. */
    public static Path moveAside(Path dir) {
        for (int n = 1; ; n++) {
            Path target = dir.resolveSibling(dir.getFileName() + ".old-" + n);
            if (Files.exists(target)) continue;
            try {
                return Files.move(dir, target);
            } catch (IOException e) {
                throw new IllegalArgumentException("--overwrite 1: cannot move " + dir + " to " + target + " (" + e.getMessage() + ")");
            }
        }
    }

    /**
     * Free space for the run's checkpoints, checked before training: refused when not even one fits
     * (one is always saved at the end), a note when the run's peak does not: a checkpoint is written
     * whole before --keep_last prunes older ones, so with --keep_last K the folder holds K + 1 at a
     * save (all of them with K = 0). {@code bytes}: one checkpoint; {@code saves}: how many the run
     * makes. The free space can be set for tests (system property gpt2.test.usableBytes).
     */
    public static String checkSpace(Path dir, long bytes, int saves, int keepLast) {
        long free;
        try {
            free = Long.getLong("gpt2.test.usableBytes", Files.getFileStore(dir).getUsableSpace());
        } catch (IOException e) {
            return null; // no file store to ask: the save itself will say what is wrong
        }
        int kept = Checkpoint.directories(dir).size();
        int peak = keepLast > 0 ? Math.max(0, Math.min(saves, keepLast + 1 - kept)) : saves;
        if (free < bytes) {
            throw new IllegalArgumentException("--output_dir " + dir + ": " + mb(free) + " free, a checkpoint of this model needs "
                    + mb(bytes) + "; free some space or choose another --output_dir");
        }
        if (free < bytes * peak) {
            return "--output_dir " + dir + " has " + mb(free) + " free; this run's checkpoints need up to " + mb(bytes * peak)
                    + " at once (" + peak + " x " + mb(bytes) + (keepLast > 0 ? ": a checkpoint is written whole before --keep_last "
                    + keepLast + " prunes the older one" : ", all kept: --keep_last K prunes") + ")";
        }
        return null;
    }

    private static String mb(long bytes) {
        return String.format(java.util.Locale.ROOT, "%,.0f MB", bytes / 1e6);
    }

    /** Creates dir if needed and checks that files can be created in it. */
    public static void checkWritable(Path dir) {
        checkNotAFile(dir);
        try {
            Files.createDirectories(dir);
            Path probe = Files.createTempFile(dir, ".write-check", ".tmp");
            Files.delete(probe);
        } catch (IOException | SecurityException e) {
            throw new IllegalArgumentException("--output_dir " + dir + ": not writable (" + e.getMessage() + ")");
        }
    }
}
