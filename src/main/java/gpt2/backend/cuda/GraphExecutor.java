package gpt2.backend.cuda;

import gpt2.backend.Profile;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * CUDA graphs for the work a training step repeats. Between {@link #begin} and {@link #end} (the
 * model marks a micro-batch's forward and backward as one segment) the calls are captured into a
 * graph the second time a key is seen (the first runs as usual: it makes the allocations and
 * uploads that only happen once), and on later segments with that key they are replayed:
 *
 * <pre>
 * segment, key seen once before:  calls --capture--> graph --instantiate--> launch
 * segment, key has a graph:       each call compared with the captured one, not run;
 *                                 kernel args or grid differ (dropout keys, token counts) -> that node updated;
 *                                 at the end: updates applied, the graph launched (one call for hundreds)
 * anything else differs, or another device operation inside the segment (a copy, a read, a
 * synchronization, an allocation, a timing mark): the calls held back run now, in order, and the
 * rest of the segment runs without a graph; after two such misses a key is no longer graphed.
 * </pre>
 *
 * So every segment computes exactly what its calls compute without graphs: the same kernels, in the
 * same order, with the same arguments. Where the executor has no graphs of its own (the dry run,
 * the tests' emulator) a graph is the list of calls, replayed one by one: the logic above runs
 * unchanged in CI. A failure of the GPU's graph calls runs the held-back calls, turns graphs off
 * for the run and says so on stderr once.
 */
final class GraphExecutor implements Executor {

    /** A device call a segment may hold: kernel launch, GEMM, memset, device-to-device copy. */
    sealed interface Call permits Launch, GemmCall, Zero, Copy {
        void run(Executor e);
    }

    record Launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args)
            implements Call {
        public void run(Executor e) {
            e.launch(kernel, signature, grid, gridY, block, args);
        }

        /** Same kernel and block size: a node that new arguments and grid can update. */
        boolean sameNode(Launch o) {
            return kernel.equals(o.kernel) && block == o.block;
        }

        boolean sameParameters(Launch o) {
            return grid == o.grid && gridY == o.gridY && Arrays.equals(args, o.args);
        }
    }

    record GemmCall(Gemm g) implements Call {
        public void run(Executor e) {
            e.gemm(g);
        }
    }

    record Zero(long address, long bytes) implements Call {
        public void run(Executor e) {
            e.zero(address, bytes);
        }
    }

    record Copy(long dst, long src, long bytes) implements Call {
        public void run(Executor e) {
            e.copyOnDevice(dst, src, bytes);
        }
    }

    /** A captured segment: its calls as its graph's nodes now hold them, and the graph to launch. */
    private record Captured(List<Call> calls, Graph graph) {
    }

    /** A graph of calls replayed one by one, for executors without graphs of their own. */
    private static final class ListGraph implements Graph {
        private final Executor exec;
        private final List<Call> calls;
        private final List<Integer> launchAt = new ArrayList<>(); // index in calls of the i-th launch

        ListGraph(Executor exec, List<Call> calls) {
            this.exec = exec;
            this.calls = new ArrayList<>(calls);
            for (int i = 0; i < calls.size(); i++) if (calls.get(i) instanceof Launch) launchAt.add(i);
        }

        @Override
        public void update(int launch, int grid, int gridY, Object[] args) {
            int at = launchAt.get(launch);
            Launch l = (Launch) calls.get(at);
            calls.set(at, new Launch(l.kernel(), l.signature(), grid, gridY, l.block(), args));
        }

        @Override
        public void launch() {
            for (Call c : calls) c.run(exec);
        }

        @Override
        public void close() {
        }
    }

    private final Executor inner;
    private final Profile profile;
    private boolean enabled = true;

    private final Map<String, Captured> graphs = new HashMap<>();
    private final Set<String> seen = new HashSet<>();
    private final Map<String, Integer> misses = new HashMap<>();

    // the open segment: its key, the calls so far (captured, or held back while replaying)
    private String key;
    private boolean capturing, nativeCapture;
    private Captured replaying;
    private final List<Call> held = new ArrayList<>();

    /** Graph launches, and the calls they stand for, are counted in {@code profile}. */
    GraphExecutor(Executor inner, Profile profile) {
        this.inner = inner;
        this.profile = profile;
    }

    /** Opens a segment of repeatable work named {@code key} (shapes and settings that fix its calls). */
    void begin(String key) {
        interrupt();
        // the first segment of a key runs call by call (its one-time allocations and uploads)
        if (!enabled || misses.getOrDefault(key, 0) >= 2 || seen.add(key)) return;
        Captured g = graphs.get(key);
        if (g != null) {
            this.key = key;
            replaying = g;
            return;
        }
        boolean nativeGraph = guard(inner::beginCapture, false);
        if (!enabled) return;
        this.key = key;
        capturing = true;
        nativeCapture = nativeGraph;
    }

    /** Closes the segment: the captured graph or the replay is launched. */
    void end() {
        if (key == null) return;
        if (capturing) {
            List<Call> calls = List.copyOf(held);
            Graph g = nativeCapture ? guard(inner::endCapture, null) : new ListGraph(inner, calls);
            if (g == null) {          // the capture failed: nothing of it ran
                miss();
                return;
            }
            if (calls.isEmpty()) {
                close(g);
            } else {
                graphs.put(key, new Captured(calls, g));
                launch(g, calls.size());
            }
        } else {
            List<Call> want = replaying.calls();
            if (held.size() != want.size()) {
                miss();
                return;
            }
            Graph g = replaying.graph();
            // the kernels whose grid or arguments changed get them in the graph (the i-th launch, its node)
            boolean updated = guard(() -> {
                int launch = 0;
                for (int i = 0; i < held.size(); i++) {
                    if (!(held.get(i) instanceof Launch l)) continue;
                    if (!l.sameParameters((Launch) want.get(i))) g.update(launch, l.grid(), l.gridY(), l.args());
                    launch++;
                }
                return true;
            }, false);
            if (updated) {
                // what the graph's nodes hold now: the next segment is compared with this
                graphs.put(key, new Captured(List.copyOf(held), g));
                launch(g, held.size());
            } else {
                runHeld();
            }
        }
        reset();
    }

    private void launch(Graph g, int calls) {
        if (guard(() -> { g.launch(); return true; }, false)) {
            profile.graphLaunch(calls);
        } else {
            runHeld();
        }
    }

    /** A call inside the segment: captured, compared (replay), or passed on. */
    private void call(Call c) {
        if (key == null) {
            c.run(inner);
            return;
        }
        if (capturing) {
            held.add(c);
            // a capture that breaks (nothing of it ran) is dropped; its calls run one by one
            if (nativeCapture && !guard(() -> { c.run(inner); return true; }, false)) interrupt();
            return;
        }
        Call w = held.size() < replaying.calls().size() ? replaying.calls().get(held.size()) : null;
        if (c instanceof Launch l ? w instanceof Launch wl && l.sameNode(wl) : c.equals(w)) {
            held.add(c);
        } else {
            miss();
            c.run(inner);
        }
    }

    /** Any other device operation: the open segment ends here (a capture is dropped, held calls run). */
    private void interrupt() {
        if (key == null) return;
        if (capturing && nativeCapture) {
            Graph g = guard(inner::endCapture, null);
            if (g != null) close(g);
        }
        miss();
    }

    /** The segment does not fit its graph: held-back calls run now, the segment goes on without one. */
    private void miss() {
        misses.merge(key, 1, Integer::sum);
        profile.graphMiss();
        Captured g = graphs.remove(key);
        if (g != null) close(g.graph());
        runHeld();
        reset();
    }

    private void close(Graph g) {
        guard(() -> { g.close(); return true; }, false);
    }

    private void runHeld() {
        List<Call> calls = List.copyOf(held);
        held.clear();
        for (Call c : calls) c.run(inner);
    }

    private void reset() {
        key = null;
        capturing = nativeCapture = false;
        replaying = null;
        held.clear();
    }

    private interface Action<T> {
        T run();
    }

    /** A graph call of the executor; on failure graphs go off for the run, said once on stderr. */
    private <T> T guard(Action<T> a, T failed) {
        try {
            return a.run();
        } catch (RuntimeException e) {
            if (enabled) {
                System.err.println("note: CUDA graphs off for this run (" + e.getMessage() + "); the same calls run one by one");
            }
            enabled = false;
            return failed;
        }
    }

    // ---------------------------------------------------------------- the executor's calls

    @Override
    public void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args) {
        call(new Launch(kernel, signature, grid, gridY, block, args.clone()));
    }

    @Override
    public void gemm(Gemm g) {
        call(new GemmCall(g));
    }

    @Override
    public void zero(long address, long bytes) {
        call(new Zero(address, bytes));
    }

    @Override
    public void copyOnDevice(long dst, long src, long bytes) {
        call(new Copy(dst, src, bytes));
    }

    @Override
    public void sharedMemory(String kernel, int bytes) {
        interrupt();
        inner.sharedMemory(kernel, bytes);
    }

    @Override public String deviceName() { return inner.deviceName(); }
    @Override public String arch() { return inner.arch(); }
    @Override public boolean epilogueAvailable(Gemm g) { return inner.epilogueAvailable(g); }

    // any other device operation ends the open segment first (see interrupt)
    @Override public long allocate(long bytes, String what) { interrupt(); return inner.allocate(bytes, what); }
    @Override public void free(long address) { interrupt(); inner.free(address); }
    @Override public void copyToDevice(long dst, MemorySegment src) { interrupt(); inner.copyToDevice(dst, src); }
    @Override public void copyToHost(MemorySegment dst, long src) { interrupt(); inner.copyToHost(dst, src); }
    @Override public void synchronize() { interrupt(); inner.synchronize(); }
    @Override public MemorySegment allocateHost(long bytes) { interrupt(); return inner.allocateHost(bytes); }
    @Override public void freeHost(MemorySegment host) { interrupt(); inner.freeHost(host); }
    @Override public void copyToDeviceAsync(long dst, MemorySegment src) { interrupt(); inner.copyToDeviceAsync(dst, src); }
    @Override public int mark() { interrupt(); return inner.mark(); }
    @Override public double elapsedMs(int from, int to) { interrupt(); return inner.elapsedMs(from, to); }
    @Override public void clearMarks() { inner.clearMarks(); }
    @Override public long[] memoryInfo() { return inner.memoryInfo(); }

    @Override
    public void close() {
        interrupt();
        for (Captured c : graphs.values()) close(c.graph());
        graphs.clear();
        inner.close();
    }
}
