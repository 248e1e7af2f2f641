package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The second stage of the parameter-gradient reductions, batched. Kernels that already pass over a
 * matrix (norm backward, GELU backward, bias_partial) leave per-chunk column sums in a scratch slot;
 * the sums into the gradients wait here as groups and are added by one launch of sum_partials over
 * a table of groups at {@link #flush}: the model flushes after each layer (so a layer's gradients
 * are final before its all-reduce), and the backend before anything reads gradients or memory.
 *
 * <pre>
 * norm_backward  -> slot: [dw | db | colsum(dinp)] per chunk  -> group dweight, group dbias
 *                                                               (colsum claimable by the next bias)
 * matmulBackward -> claims colsum of its dout (else bias_partial -> slot) -> group dbias
 * flush          -> sum_partials(table of {out, partial, width, stride, chunks}) : one launch
 * </pre>
 * The column sums of the matrix a kernel just wrote stay claimable only until the next launch.
 */
final class GradientSums {

    /** What the backend does for this class: allocate, upload a table, launch. */
    interface Host {
        CudaBuffer allocate(DType dtype, long n, String what);

        void uploadAsync(CudaBuffer dst, long[] values);

        void launch(String kernel, long bytes, int grid, int gridY, int block, Object... args);
    }

    /** width gradients at out += the sums over chunks of partial[offset + chunk * stride + c]. */
    private record Group(Buffer out, CudaBuffer partial, long offset, int width, int stride, int chunks) {
    }

    /** Column sums of a (rows, cols) matrix at address, in partial from offset, [chunk][stride]. */
    record ColumnSums(long address, int rows, int cols, CudaBuffer partial, long offset, int stride, int chunks) {
    }

    private static final int MAX_SLOTS = 16;

    private final Host host;
    private final List<Group> pending = new ArrayList<>();
    private final List<CudaBuffer> slots = new ArrayList<>();
    private final List<Boolean> inUse = new ArrayList<>();
    /** Uploaded tables by content (a long[] compared by value). */
    private record TableKey(long[] values) {
        @Override
        public boolean equals(Object o) {
            return o instanceof TableKey k && java.util.Arrays.equals(values, k.values);
        }

        @Override
        public int hashCode() {
            return java.util.Arrays.hashCode(values);
        }
    }

    private final Map<TableKey, CudaBuffer> tables = new HashMap<>();
    private ColumnSums claimable;

    GradientSums(Host host) {
        this.host = host;
    }

    /** A scratch slot of at least n floats that no pending group or claimable sum reads. */
    CudaBuffer slot(long n) {
        if (slots.size() >= MAX_SLOTS && !inUse.contains(false)) flush();
        for (int i = 0; i < slots.size(); i++) {
            if (!inUse.get(i) && slots.get(i).length() >= n) {
                inUse.set(i, true);
                return slots.get(i);
            }
        }
        CudaBuffer b = host.allocate(DType.F32, n, "gradient partial sums");
        slots.add(b);
        inUse.add(true);
        return b;
    }

    /** Queues out (width) += the column sums in partial. */
    void add(Buffer out, CudaBuffer partial, long offset, int width, int stride, int chunks) {
        if (out != null) pending.add(new Group(out, partial, offset, width, stride, chunks));
    }

    /** The column sums of the matrix just written, for the next linear layer's bias. */
    void offer(ColumnSums sums) {
        claimable = sums;
    }

    /** The column sums of (address, rows, cols) if they are still the latest, else null; either way gone after. */
    ColumnSums claim(long address, int rows, int cols) {
        ColumnSums c = claimable;
        claimable = null;
        return c != null && c.address() == address && c.rows() == rows && c.cols() == cols ? c : null;
    }

    /** Another launch ran: the offered column sums may no longer describe their matrix. */
    void forget() {
        claimable = null;
    }

    /** Adds every queued group into its gradients with one launch; frees the slots nothing still reads. */
    void flush() {
        if (!pending.isEmpty()) {
            long[] table = new long[5 * pending.size()];
            int maxWidth = 0;
            long bytes = 0;
            for (int g = 0; g < pending.size(); g++) {
                Group p = pending.get(g);
                table[5 * g] = Launcher.addr(p.out());
                table[5 * g + 1] = p.partial().address() + 4L * p.offset();
                table[5 * g + 2] = p.width();
                table[5 * g + 3] = p.stride();
                table[5 * g + 4] = p.chunks();
                maxWidth = Math.max(maxWidth, p.width());
                bytes += 4L * p.chunks() * p.width() + 8L * p.width();
            }
            TableKey key = new TableKey(table);
            CudaBuffer device = tables.get(key);
            if (device == null) { // the same groups come back every step: uploaded once
                device = host.allocate(DType.I64, table.length, "gradient sum table");
                host.uploadAsync(device, table);
                tables.put(key, device);
            }
            host.launch("sum_partials", bytes, Launcher.blocks(maxWidth, 128), pending.size(), 128, device, pending.size());
            pending.clear();
        }
        for (int i = 0; i < slots.size(); i++) inUse.set(i, claimable != null && claimable.partial() == slots.get(i));
    }

    /** Every allocation, for the backend to free at close. */
    List<CudaBuffer> allocations() {
        List<CudaBuffer> all = new ArrayList<>(slots);
        all.addAll(tables.values());
        return all;
    }
}
