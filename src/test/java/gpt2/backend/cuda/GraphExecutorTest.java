package gpt2.backend.cuda;

import gpt2.backend.Profile;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The graph layer's bookkeeping against an executor that only writes down what reaches the
 * "device" (and whether through a graph): a replayed segment must run exactly the calls, with the
 * arguments, that the same segment runs without graphs, and whatever breaks a replay must run the
 * held-back calls first, in order.
 */
class GraphExecutorTest {

    /** Writes down every call that would run; graphs of its own when {@code nativeGraphs}. */
    static class Log implements Executor {
        final List<String> ran = new ArrayList<>();
        final boolean nativeGraphs;
        private List<String> capturing;
        int graphLaunches;

        Log(boolean nativeGraphs) {
            this.nativeGraphs = nativeGraphs;
        }

        private void run(String what) {
            if (capturing != null) capturing.add(what);
            else ran.add(what);
        }

        @Override public String deviceName() { return "log"; }
        @Override public String arch() { return "sm_90"; }
        @Override public long allocate(long bytes, String what) { run("allocate"); return 256; }
        @Override public void free(long address) { run("free"); }
        @Override public void zero(long address, long bytes) { run("zero " + address); }
        @Override public void copyToDevice(long dst, MemorySegment src) { run("upload"); }
        @Override public void copyToHost(MemorySegment dst, long src) { run("read"); }
        @Override public void copyOnDevice(long dst, long src, long bytes) { run("copy"); }

        @Override
        public void launch(String kernel, List<KernelCompiler.Param> signature, int grid, int gridY, int block, Object[] args) {
            run(kernel + " grid " + grid + " " + java.util.Arrays.toString(args));
        }

        @Override public void gemm(Gemm g) { run("gemm " + g.m()); }
        @Override public void synchronize() { run("sync"); }
        @Override public MemorySegment allocateHost(long bytes) { return MemorySegment.NULL; }
        @Override public void freeHost(MemorySegment host) { }
        @Override public void copyToDeviceAsync(long dst, MemorySegment src) { run("upload async"); }
        @Override public void close() { }

        @Override
        public boolean beginCapture() {
            if (!nativeGraphs) return false;
            capturing = new ArrayList<>();
            return true;
        }

        @Override
        public Graph endCapture() {
            List<String> calls = capturing;
            capturing = null;
            return new Graph() {
                @Override
                public void update(int launch, int grid, int gridY, Object[] args) {
                    int seen = -1;
                    for (int i = 0; i < calls.size(); i++) {
                        if (!calls.get(i).startsWith("zero") && !calls.get(i).startsWith("gemm") && ++seen == launch) {
                            calls.set(i, calls.get(i).replaceAll(" grid .*", "") + " grid " + grid + " " + java.util.Arrays.toString(args));
                        }
                    }
                }

                @Override
                public void launch() {
                    graphLaunches++;
                    for (String c : calls) ran.add(c + " (graph)");
                }

                @Override
                public void close() {
                }
            };
        }
    }

    /** A segment: zero, kernel a with the key, a GEMM, kernel b with a grid of n. */
    private static void segment(GraphExecutor g, long key, int n) {
        g.begin("k");
        g.zero(16, 4);
        g.launch("a", List.of(), 1, 1, 32, new Object[]{key});
        g.gemm(gemm(64));
        g.launch("b", List.of(), n, 1, 32, new Object[]{7});
        g.end();
    }

    private static Executor.Gemm gemm(int m) {
        return new Executor.Gemm(false, false, m, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, gpt2.backend.DType.F32,
                gpt2.backend.DType.F32, false, 0, false, 0, false);
    }

    private static List<String> plain(List<String> ran) {
        return ran.stream().map(s -> s.replace(" (graph)", "")).toList();
    }

    @Test
    void replaysRunTheSameCallsWithTheNewArguments() {
        for (boolean nativeGraphs : new boolean[]{false, true}) {
            Log eager = new Log(nativeGraphs), graphed = new Log(nativeGraphs);
            Profile profile = new Profile();
            GraphExecutor g = new GraphExecutor(graphed, profile);
            for (int step = 0; step < 4; step++) {
                int n = step == 3 ? 5 : 2;
                segment(g, 100 + step, n);
                eager.zero(16, 4);
                eager.launch("a", List.of(), 1, 1, 32, new Object[]{100L + step});
                eager.gemm(gemm(64));
                eager.launch("b", List.of(), n, 1, 32, new Object[]{7});
            }
            assertEquals(eager.ran, plain(graphed.ran), "native " + nativeGraphs);
            assertEquals(3, profile.graphLaunches(), "segments 2-4 run as a graph");
            assertEquals(12, profile.graphCalls());
            if (nativeGraphs) {
                assertEquals(3, graphed.graphLaunches);
                // the first segment ran call by call, the others through the graph
                assertEquals("a grid 1 [100]", graphed.ran.get(1));
                assertEquals("a grid 1 [101] (graph)", graphed.ran.get(5));
                assertEquals("b grid 5 [7] (graph)", graphed.ran.get(15));
            }
        }
    }

    @Test
    void whatBreaksAReplayRunsAfterTheHeldCalls() {
        Log log = new Log(true);
        Profile profile = new Profile();
        GraphExecutor g = new GraphExecutor(log, profile);
        segment(g, 1, 2);
        segment(g, 2, 2);                       // captured
        log.ran.clear();
        // a read inside the segment: the held calls run first, then the read, then the rest one by one
        g.begin("k");
        g.zero(16, 4);
        g.launch("a", List.of(), 1, 1, 32, new Object[]{3L});
        g.copyToHost(MemorySegment.NULL, 0);
        g.gemm(gemm(64));
        g.launch("b", List.of(), 2, 1, 32, new Object[]{7});
        g.end();
        assertEquals(List.of("zero 16", "a grid 1 [3]", "read", "gemm 64", "b grid 2 [7]"), log.ran);
        segment(g, 9, 2);                       // captured again
        log.ran.clear();
        // a GEMM of another shape: the same, at that call
        g.begin("k");
        g.zero(16, 4);
        g.launch("a", List.of(), 1, 1, 32, new Object[]{4L});
        g.gemm(gemm(32));
        g.launch("b", List.of(), 2, 1, 32, new Object[]{7});
        g.end();
        assertEquals(List.of("zero 16", "a grid 1 [4]", "gemm 32", "b grid 2 [7]"), log.ran);
        // two misses: the key is no longer graphed
        log.ran.clear();
        long before = profile.graphLaunches();
        segment(g, 5, 2);
        segment(g, 6, 2);
        assertEquals(before, profile.graphLaunches());
        assertEquals(8, log.ran.size());
        for (String s : log.ran) assertEquals(-1, s.indexOf("(graph)"), s);
    }

    @Test
    void aFailingGraphCallTurnsGraphsOffAndRunsTheCallsItself() {
        Log log = new Log(true) {
            @Override
            public Graph endCapture() {
                super.endCapture();
                throw new Cuda.CudaException("cuGraphInstantiate failed");
            }
        };
        Profile profile = new Profile();
        GraphExecutor g = new GraphExecutor(log, profile);
        for (int step = 0; step < 3; step++) segment(g, step, 2);
        assertEquals(0, profile.graphLaunches());
        assertEquals(12, log.ran.size(), log.ran.toString());
        assertEquals("a grid 1 [1]", log.ran.get(5));
        // the same when the capture cannot even start
        Log refuses = new Log(true) {
            @Override
            public boolean beginCapture() {
                throw new Cuda.CudaException("cuStreamBeginCapture failed");
            }
        };
        GraphExecutor h = new GraphExecutor(refuses, profile);
        for (int step = 0; step < 3; step++) segment(h, step, 2);
        assertEquals(0, profile.graphLaunches());
        assertEquals(12, refuses.ran.size(), refuses.ran.toString());
        assertEquals("b grid 2 [7]", refuses.ran.get(11));
    }
}
