package gpt2.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.function.Consumer;

/**
 * A path a command writes whole (a converted model: a file or a folder), written so that nothing it
 * did not make is ever deleted: an existing file or non-empty folder is refused unless
 * {@code --overwrite 1}, which moves it aside to PATH.old-N (as train does with a run folder) only
 * after the new one is complete; the new one is written under a temporary sibling name and renamed
 * into place, so a failure leaves the old one as it was and no half-written one behind.
 */
final class OutputPath {
    private final Path target;
    private final boolean overwrite;
    private Path movedAside;

    private OutputPath(Path target, boolean overwrite) {
        this.target = target;
        this.overwrite = overwrite;
    }

    /**
     * Checks {@code path} (given as {@code flag}) before any work: refused when it holds the working
     * folder or {@code source} (no --overwrite moves those), or exists and is not an empty folder
     * unless {@code overwrite}.
     */
    static OutputPath check(String flag, Path path, Path source, boolean overwrite) {
        Path abs = path.toAbsolutePath().normalize();
        Path cwd = Path.of("").toAbsolutePath().normalize();
        if (cwd.startsWith(abs)) {
            throw new IllegalArgumentException(flag + " " + path + ": is the working folder or holds it; write to a new path");
        }
        if (source != null && source.toAbsolutePath().normalize().startsWith(abs)) {
            throw new IllegalArgumentException(flag + " " + path + ": holds the model being read (" + source + "); write to a new path");
        }
        if (Files.exists(abs) && !emptyFolder(abs) && !overwrite) {
            String what = Files.isDirectory(abs) ? "a folder that is not empty" : "a file";
            throw new IllegalArgumentException(flag + " " + path + ": already exists (" + what + "); choose a new path, or "
                    + "--overwrite 1 moves it aside to " + abs.getFileName() + ".old-N (nothing is deleted)");
        }
        return new OutputPath(abs, overwrite);
    }

    private static boolean emptyFolder(Path p) {
        if (!Files.isDirectory(p)) return false;
        try (var s = Files.list(p)) {
            return s.findAny().isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    /** Runs {@code writer} on a temporary sibling, then puts the result at the target (moving an old one aside). */
    void write(Consumer<Path> writer) {
        Path tmp = target.resolveSibling("." + target.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        boolean keep = false; // the temporary copy stays only when it is the one good result
        try {
            Files.createDirectories(target.getParent());
            gpt2.train.Checkpoint.deleteTree(tmp); // a leftover of this name can only be an earlier failed write of ours
            writer.accept(tmp);
            if (Files.exists(target)) {
                if (emptyFolder(target)) {
                    Files.delete(target);
                } else if (overwrite) {
                    movedAside = gpt2.train.RunFolder.moveAside(target);
                } else {
                    keep = true;
                    throw new IllegalArgumentException(target + ": appeared while writing; the new one is at " + tmp);
                }
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            keep = true;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (!keep) cleanUp(tmp);
        }
    }

    /** Where --overwrite 1 moved the old one, or null. */
    Path movedAside() {
        return movedAside;
    }

    private static void cleanUp(Path tmp) {
        try {
            gpt2.train.Checkpoint.deleteTree(tmp);
        } catch (IOException ignored) {
            // the temporary name is ours alone; a leftover is harmless and replaced by the next write
        }
    }
}
