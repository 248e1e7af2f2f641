package gpt2.backend;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What a backend did, by kernel family: calls, bytes read and written, floating-point work, and
 * (when timed, on a GPU) milliseconds; with the counts a step is judged by (kernel launches, GEMM
 * calls, host synchronizations) and the device memory allocated. The CUDA backend fills one for
 * every call it makes, in a dry run as on a GPU, so the same table describes a step with or
 * without a GPU ({@code gpt2 bench --profile 1}, {@code --dry_run 1}).
 *
 * <p>Bytes are what a launch must move at least (each input read once, each output written once),
 * from the shapes the backend passes; achieved GB/s is those bytes over the measured time.
 */
public final class Profile {

    /**
     * One kernel family's totals: calls, bytes moved, FLOPs (GEMMs, and kernels doing matrix work on
     * the tensor cores such as flash attention) and milliseconds (NaN: not timed).
     */
    public record Row(String family, boolean gemm, long calls, long bytes, double flops, double ms) {
    }

    private static final class Totals {
        final boolean gemm;
        long calls, bytes;
        double flops, ms;

        Totals(boolean gemm) {
            this.gemm = gemm;
        }
    }

    private final Map<String, Totals> families = new LinkedHashMap<>();
    /** Ops run and timed on the host (the CPU backend): no launches, a floor per family. */
    private final boolean host;

    /** A profile of device work (kernel launches and GEMM calls). */
    public Profile() {
        this(false);
    }

    private Profile(boolean host) {
        this.host = host;
    }

    /** A profile of ops the host runs itself, each timed by the wall clock (the CPU backend). */
    public static Profile host() {
        return new Profile(true);
    }

    /** Whether the ops are the host's own (see {@link #host()}). */
    public boolean isHost() {
        return host;
    }

    /** One op the host ran, with its bytes, FLOPs (GEMMs and matrix work) and wall time. */
    public void hostOp(String family, boolean gemm, long bytes, double flops, double ms) {
        if (gemm) gemms++;
        else launches++;
        add(family, gemm, bytes, flops);
        time(family, ms);
    }
    private long launches, gemms, hostSyncs, graphLaunches, graphCalls, graphMisses;
    private boolean timed;
    private long allocated, peakAllocated;

    /** A kernel launch moving {@code bytes}. */
    public void kernel(String family, long bytes) {
        kernel(family, bytes, 0);
    }

    /** A kernel launch moving {@code bytes} and doing {@code flops} of matrix work (reported as TFLOP/s). */
    public void kernel(String family, long bytes, double flops) {
        launches++;
        add(family, false, bytes, flops);
    }

    /** A GEMM call of {@code flops} moving {@code bytes}. */
    public void gemm(String family, long bytes, double flops) {
        gemms++;
        add(family, true, bytes, flops);
    }

    private void add(String family, boolean gemm, long bytes, double flops) {
        Totals t = families.computeIfAbsent(family, f -> new Totals(gemm));
        t.calls++;
        t.bytes += bytes;
        t.flops += flops;
    }

    /** A CUDA graph was launched in place of {@code calls} launches and GEMM calls (counted above as usual). */
    public void graphLaunch(long calls) {
        graphLaunches++;
        graphCalls += calls;
    }

    /** A segment that had (or was getting) a CUDA graph ran without it: its calls differed, or something came between. */
    public void graphMiss() {
        graphMisses++;
    }

    /** The host waited for the device (a device-to-host copy, a synchronous upload, a synchronize). */
    public void hostSync() {
        hostSyncs++;
    }

    /** Measured time of one call of a family. */
    public void time(String family, double ms) {
        timed = true;
        families.get(family).ms += ms;
    }

    /** Device memory allocated (negative: freed). */
    public void allocated(long bytes) {
        allocated += bytes;
        peakAllocated = Math.max(peakAllocated, allocated);
    }

    /** Forgets the calls and times (not the memory counts): call before the steps to measure. */
    public void reset() {
        families.clear();
        launches = gemms = hostSyncs = graphLaunches = graphCalls = graphMisses = 0;
        timed = false;
    }

    public long launches() { return launches; }
    public long gemms() { return gemms; }
    public long hostSyncs() { return hostSyncs; }
    public long graphLaunches() { return graphLaunches; }
    /** Segments that ran without their graph ({@link #graphMiss}). */
    public long graphMisses() { return graphMisses; }
    /** The launches and GEMM calls the graph launches stood for. */
    public long graphCalls() { return graphCalls; }
    public boolean timed() { return timed; }
    /** Bytes of device memory allocated now. */
    public long deviceBytes() { return allocated; }
    /** The most bytes of device memory allocated at once so far. */
    public long peakDeviceBytes() { return peakAllocated; }

    /** The families, most time first (most bytes first when not timed). */
    public List<Row> rows() {
        List<Row> rows = new ArrayList<>();
        for (Map.Entry<String, Totals> e : families.entrySet()) {
            Totals t = e.getValue();
            rows.add(new Row(e.getKey(), t.gemm, t.calls, t.bytes, t.flops, timed ? t.ms : Double.NaN));
        }
        rows.sort((a, b) -> timed ? Double.compare(b.ms, a.ms) : Long.compare(b.bytes, a.bytes));
        return rows;
    }

    /**
     * The table per step: calls, bytes (MB), and when timed ms, share of the timed work, GB/s
     * (memory-bound kernels) or TFLOP/s (GEMMs and kernels with matrix work).
     */
    public String table(int steps) {
        return table(steps, Double.NaN);
    }

    /** As {@link #table(int)}, with each kernel family's GB/s also as a share of the device's copy bandwidth. */
    public String table(int steps, double copyGBs) {
        boolean share = timed && !Double.isNaN(copyGBs);
        StringBuilder s = new StringBuilder();
        List<Row> rows = rows();
        double totalMs = 0;
        for (Row r : rows) if (timed) totalMs += r.ms;
        s.append(String.format(Locale.ROOT, "%-34s %7s %10s %10s", "family (per step)", "calls", "MB", "GFLOP"));
        if (timed) s.append(String.format(Locale.ROOT, " %9s %6s %9s", "ms", "share", "GB/s|TF/s"));
        if (share) s.append(String.format(Locale.ROOT, " %7s", "of copy"));
        s.append('\n');
        long bytes = 0;
        double flops = 0;
        for (Row r : rows) {
            bytes += r.bytes;
            flops += r.flops;
            s.append(String.format(Locale.ROOT, "%-34s %7.1f %10.1f %10s", (r.gemm ? "gemm " : "") + r.family,
                    (double) r.calls / steps, r.bytes / 1e6 / steps, r.flops > 0 ? String.format(Locale.ROOT, "%.1f", r.flops / 1e9 / steps) : "-"));
            if (timed) {
                double rate = r.flops > 0 ? r.flops / (r.ms / 1e3) / 1e12 : r.bytes / (r.ms / 1e3) / 1e9;
                s.append(String.format(Locale.ROOT, " %9.3f %5.1f%% %9.1f", r.ms / steps, 100 * r.ms / totalMs, rate));
                if (share && r.flops == 0) s.append(String.format(Locale.ROOT, " %6.0f%%", 100 * rate / copyGBs));
            }
            s.append('\n');
        }
        s.append(String.format(Locale.ROOT, "%-34s %7s %10.1f %10.1f", "total", "", bytes / 1e6 / steps, flops / 1e9 / steps));
        if (timed) s.append(String.format(Locale.ROOT, " %9.3f", totalMs / steps));
        s.append('\n');
        s.append(String.format(Locale.ROOT, "per step: %.1f kernel launches + %.1f GEMM calls = %.1f; %.1f host synchronizations; "
                        + "device memory allocated %.1f MiB (peak %.1f MiB)%n",
                (double) launches / steps, (double) gemms / steps, (double) (launches + gemms) / steps,
                (double) hostSyncs / steps, allocated / 1048576.0, peakAllocated / 1048576.0));
        if (graphLaunches > 0) {
            s.append(String.format(Locale.ROOT, "CUDA graphs: %.1f graph launches per step ran %.1f of those calls%n",
                    (double) graphLaunches / steps, (double) graphCalls / steps));
        }
        return s.toString();
    }

    /**
     * The table of a host profile per step: calls, MB, GFLOP, ms, share, and each family's floor:
     * its FLOPs at {@code peakGflops} (the GEMM floor) and its bytes at {@code bandwidthGBs} (the
     * memory-bound floor), with how many times the larger of the two the family takes.
     */
    public String hostTable(int steps, double peakGflops, double bandwidthGBs) {
        StringBuilder s = new StringBuilder();
        List<Row> rows = rows();
        double totalMs = 0, totalFloor = 0;
        for (Row r : rows) totalMs += r.ms;
        s.append(String.format(Locale.ROOT, "%-34s %6s %9s %8s %9s %6s %8s %10s %9s %7s%n", "op family (per step)", "calls",
                "MB", "GFLOP", "ms", "share", "GF/s", "GEMM floor", "mem floor", "x floor"));
        long bytes = 0;
        double flops = 0;
        for (Row r : rows) {
            bytes += r.bytes;
            flops += r.flops;
            double gemmFloor = r.flops / (peakGflops * 1e9) * 1e3 / steps, memFloor = r.bytes / (bandwidthGBs * 1e9) * 1e3 / steps;
            double floor = Math.max(gemmFloor, memFloor), ms = r.ms / steps;
            totalFloor += floor;
            s.append(String.format(Locale.ROOT, "%-34s %6.1f %9.1f %8s %9.2f %5.1f%% %8s %10s %9.2f %7.1f%n", r.family,
                    (double) r.calls / steps, r.bytes / 1e6 / steps,
                    r.flops > 0 ? String.format(Locale.ROOT, "%.2f", r.flops / 1e9 / steps) : "-", ms, 100 * r.ms / totalMs,
                    r.flops > 0 ? String.format(Locale.ROOT, "%.1f", r.flops / (r.ms / 1e3) / 1e9) : "-",
                    r.flops > 0 ? String.format(Locale.ROOT, "%.2f", gemmFloor) : "-", memFloor, ms / floor));
        }
        s.append(String.format(Locale.ROOT, "%-34s %6.1f %9.1f %8.2f %9.2f %6s %8s %10s %9s %7.2f%n", "total",
                (double) (launches + gemms) / steps, bytes / 1e6 / steps, flops / 1e9 / steps, totalMs / steps, "", "",
                String.format(Locale.ROOT, "%.2f", totalFloor), "", totalMs / steps / totalFloor));
        return s.toString();
    }

    /** The counts per step and the families as JSON fields (no braces), for bench's --json line. */
    public String jsonFields(int steps) {
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT, "\"launches\":%.1f,\"gemms\":%.1f,\"host_syncs\":%.1f,\"device_bytes\":%d,"
                        + "\"peak_device_bytes\":%d,\"graph_launches\":%.1f,\"graph_calls\":%.1f,\"families\":[",
                (double) launches / steps, (double) gemms / steps, (double) hostSyncs / steps, allocated, peakAllocated,
                (double) graphLaunches / steps, (double) graphCalls / steps));
        boolean first = true;
        for (Row r : rows()) {
            if (!first) s.append(',');
            first = false;
            s.append(String.format(Locale.ROOT, "{\"family\":\"%s\",\"gemm\":%b,\"calls\":%.1f,\"bytes\":%d,\"flops\":%.0f",
                    r.family, r.gemm, (double) r.calls / steps, r.bytes / steps, r.flops / steps));
            if (timed) s.append(String.format(Locale.ROOT, ",\"ms\":%.4f", r.ms / steps));
            s.append('}');
        }
        return s.append(']').toString();
    }
}
