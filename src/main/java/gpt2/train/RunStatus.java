package gpt2.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;

/**
 * {@code run.json} in a run folder: what a run is and where it stands, for {@code gpt2 serve}'s list
 * of runs (and anyone reading the folder). Written by rank 0 when training starts ({@code state}
 * "running", with the model, the step count, the flags, the process id and host) and rewritten when
 * it ends: "finished" (the last step done), "stopped" (a stop signal; resumable) or "failed" (with
 * the error). A run whose process is gone while it still says "running" was killed. Written whole
 * (a temporary file moved into place), so a reader never sees half of it.
 */
public final class RunStatus {
    public static final String FILE = "run.json";
    public static final String RUNNING = "running", FINISHED = "finished", STOPPED = "stopped", FAILED = "failed";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final ObjectNode node;

    private RunStatus(Path dir, ObjectNode node) {
        this.dir = dir;
        this.node = node;
    }

    /** Records the start of a run in dir (resumed runs too: the state goes back to running). */
    public static RunStatus start(Path dir, String model, int numIterations, int startStep, ObjectNode args) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("state", RUNNING);
        n.put("model", model);
        n.put("num_iterations", numIterations);
        n.put("start_step", startStep);
        n.put("started", Instant.now().toString());
        n.put("pid", ProcessHandle.current().pid());
        n.put("host", host());
        n.set("args", args.deepCopy());
        RunStatus s = new RunStatus(dir, n);
        s.write();
        return s;
    }

    /** Records the end: state, the last step done (-1: not known), and for a failure its message. */
    public void end(String state, int step, String error) {
        node.put("state", state);
        if (step >= 0) node.put("step", step);
        node.put("ended", Instant.now().toString());
        if (error != null) node.put("error", error);
        write();
    }

    private void write() {
        try {
            Files.createDirectories(dir);
            Path tmp = dir.resolve(FILE + ".tmp");
            Files.writeString(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(node));
            Files.move(tmp, dir.resolve(FILE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            // the run's status is for watching it; training goes on without it
            System.err.println("note: cannot write " + dir.resolve(FILE) + ": " + e.getMessage());
        }
    }

    /** This machine's name (the pid is only meaningful on it). */
    public static String host() {
        String h = System.getenv("HOSTNAME");
        if (h != null && !h.isBlank()) return h;
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown";
        }
    }
}
