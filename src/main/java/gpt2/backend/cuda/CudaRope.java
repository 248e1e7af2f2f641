package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The modern attention's q/k preprocessing on the GPU (kernels/rope.cu): QK-norm and RoPE, in
 * place over qkv, and their backward in place over dqkv. The rotation angles come from a device
 * table of (cos, sin) pairs per position, {@link gpt2.backend.Backend#ropeCosSin} as the CPU
 * backend's, so both backends rotate by the same numbers.
 *
 * <pre>
 * (hs, theta) -> table (P, hs/2) of float (cos, sin), positions 0..P-1: uploaded once, grown (doubled)
 *                when a call reaches past P (decoding); older tables stay allocated until close, so a
 *                captured CUDA graph never points at freed memory
 * forward:  qkv (B,T,3C) -qknorm_rope_forward (one warp per row, q or k, head)-> qkv, rstd (B,T,2NH)
 * backward: dqkv, qkv, rstd -qknorm_rope_backward-> dqkv
 * </pre>
 */
final class CudaRope {

    private final CudaBackend be;

    private record Key(int hs, float theta) {
    }

    private record Table(CudaBuffer device, int positions) {
    }

    private final Map<Key, Table> tables = new HashMap<>();
    private final List<CudaBuffer> allocations = new ArrayList<>();

    CudaRope(CudaBackend backend) {
        this.be = backend;
    }

    /** Warps per block of the kernels (256 threads). */
    private static final int WARPS = 8;

    void forward(Buffer qkv, Buffer rstd, int B, int T, int C, int NH, int pos0, float theta, float eps) {
        int hs = check(qkv, rstd, B, T, C, NH, theta);
        if (rstd == null && theta <= 0) return;
        CudaBuffer table = table(hs, theta, pos0 + T);
        long heads = 2L * B * T * NH;
        be.launch("qknorm_rope_forward", 2L * B * T * 2 * C * be.x() + (rstd == null ? 0 : 4 * heads)
                        + (table == null ? 0 : 4L * T * hs), CudaBackend.blocks(heads, WARPS), 32 * WARPS,
                qkv, rstd, table, B * T, T, C, NH, pos0, eps);
    }

    void backward(Buffer dqkv, Buffer qkv, Buffer rstd, int B, int T, int C, int NH, float theta) {
        int hs = check(dqkv, rstd, B, T, C, NH, theta);
        CudaBackend.expect(qkv, be.computeType(), 3L * B * T * C, "qk-norm/rope backward qkv");
        if (rstd == null && theta <= 0) return;
        CudaBuffer table = table(hs, theta, T);
        long heads = 2L * B * T * NH;
        be.launch("qknorm_rope_backward", 3L * B * T * 2 * C * be.x() + (rstd == null ? 0 : 4 * heads)
                        + (table == null ? 0 : 4L * T * hs), CudaBackend.blocks(heads, WARPS), 32 * WARPS,
                dqkv, qkv, rstd, table, B * T, T, C, NH);
    }

    private int check(Buffer qkv, Buffer rstd, int B, int T, int C, int NH, float theta) {
        if (NH <= 0 || C % NH != 0) throw new IllegalArgumentException("qk-norm/rope: C " + C + " is no multiple of NH " + NH);
        int hs = C / NH;
        if (theta > 0 && hs % 2 != 0) throw new IllegalArgumentException("rope needs an even head size, got " + hs);
        CudaBackend.expect(qkv, be.computeType(), 3L * B * T * C, "qk-norm/rope qkv");
        if (rstd != null) CudaBackend.expect(rstd, DType.F32, 2L * B * T * NH, "qk-norm rstd (statistics are float32)");
        return hs;
    }

    /** The device table of (hs, theta) covering positions 0..positions-1, or null without rotation. */
    private CudaBuffer table(int hs, float theta, int positions) {
        if (theta <= 0) return null;
        Key key = new Key(hs, theta);
        Table t = tables.get(key);
        if (t != null && t.positions() >= positions) return t.device();
        int P = Math.max(positions, t == null ? 0 : 2 * t.positions());
        float[] cs = gpt2.backend.Backend.ropeCosSin(P, hs, theta);
        CudaBuffer device = (CudaBuffer) be.allocate(DType.F32, cs.length, "rope table");
        be.uploadAsync(device, cs);
        allocations.add(device);
        tables.put(key, new Table(device, P));
        return device;
    }

    /** Every allocation, for the backend to free at close. */
    List<CudaBuffer> allocations() {
        return allocations;
    }
}
