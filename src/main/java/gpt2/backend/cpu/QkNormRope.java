package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.S;
import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.load;
import static gpt2.backend.cpu.F32.set;
import static gpt2.backend.cpu.F32.store;

/**
 * The modern attention's preprocessing of q and k, in place over qkv (B,T,3C): per head of
 * hs = C/NH, an optional RMS norm without weights, then an optional rotary embedding.
 * <pre>
 * q, k (each head) --rms norm (rstd saved)--> n --rotate pairs (j, j+hs/2) by pos * inv_freq[j]--> y
 * </pre>
 * The rotations come as a table {@link gpt2.backend.Backend#ropeCosSin} (cos, sin per position and
 * pair, as every backend uses them), which the backend keeps between calls; each call splits the
 * positions it needs into a cos and a sin table so that the halves (j, j + hs/2) rotate a vector
 * at a time. Backward (in place over dqkv): the rotation's transpose, then the norm's
 * dx = rstd (dn - n mean(dn n)), with n recovered from y by the inverse rotation. Vector lanes
 * and the scalar tails do the same operations per element.
 */
final class QkNormRope {
    private QkNormRope() {
    }

    private static final int L = S.length();

    /** cos (or sin, {@code part} 1) of positions [p0, p0 + n) from the interleaved table: [p][j]. */
    private static float[] split(float[] cs, int p0, int n, int half, int part) {
        if (cs == null) return null;
        float[] out = new float[n * half];
        for (int p = 0; p < n; p++) {
            for (int j = 0; j < half; j++) out[p * half + j] = cs[2 * ((p0 + p) * half + j) + part];
        }
        return out;
    }

    /**
     * qkv (B,T,3C) in place; rstd (B,T,2NH) written, or null for no norm; cs the rotations of
     * positions 0..pos0+T-1 at least, or null for none.
     */
    static void forward(Parallel par, MemorySegment qkv, MemorySegment rstd, int B, int T, int C, int NH, int pos0,
                        float[] cs, float eps) {
        int hs = C / NH, half = hs / 2;
        float[] cos = split(cs, pos0, T, half, 0), sin = split(cs, pos0, T, half, 1);
        par.forRange((long) B * T, 4, (s, e) -> {
            for (long bt = s; bt < e; bt++) {
                int t = (int) (bt % T);
                for (int part = 0; part < 2; part++) {
                    for (int h = 0; h < NH; h++) {
                        long base = bt * 3 * C + (long) part * C + (long) h * hs;
                        if (rstd != null) set(rstd, bt * 2 * NH + (long) part * NH + h, normalize(qkv, base, hs, eps));
                        if (cos != null) rotate(qkv, base, half, cos, sin, t * half);
                    }
                }
            }
        });
    }

    /** x /= rms(x) over one head in place; returns rstd. */
    private static float normalize(MemorySegment x, long base, int hs, float eps) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, bound = S.loopBound(hs);
        for (; i < bound; i += L) {
            FloatVector v = load(x, base + i);
            acc = v.fma(v, acc);
        }
        float ss = F32.sum(acc);
        for (; i < hs; i++) {
            float v = get(x, base + i);
            ss += v * v;
        }
        float r = (float) (1.0 / Math.sqrt(ss / hs + eps));
        for (i = 0; i < bound; i += L) store(load(x, base + i).mul(r), x, base + i);
        for (; i < hs; i++) set(x, base + i, get(x, base + i) * r);
        return r;
    }

    /** (x1, x2) = (x1 c + x2 s, x2 c - x1 s) over the halves of one head, in place. */
    private static void rotate(MemorySegment x, long base, int half, float[] cos, float[] sin, int ci) {
        int j = 0;
        for (int bound = S.loopBound(half); j < bound; j += L) {
            FloatVector c = FloatVector.fromArray(S, cos, ci + j), sn = FloatVector.fromArray(S, sin, ci + j);
            FloatVector x1 = load(x, base + j), x2 = load(x, base + j + half);
            store(x1.mul(c).add(x2.mul(sn)), x, base + j);
            store(x2.mul(c).sub(x1.mul(sn)), x, base + j + half);
        }
        for (; j < half; j++) {
            float c = cos[ci + j], sn = sin[ci + j];
            float x1 = get(x, base + j), x2 = get(x, base + j + half);
            set(x, base + j, x1 * c + x2 * sn);
            set(x, base + j + half, x2 * c - x1 * sn);
        }
    }

    /** dqkv (B,T,3C) in place (q and k parts); qkv the forward's outputs; rstd or null; cs as forward's, or null. */
    static void backward(Parallel par, MemorySegment dqkv, MemorySegment qkv, MemorySegment rstd, int B, int T, int C,
                         int NH, float[] cs) {
        int hs = C / NH, half = hs / 2;
        float[] cos = split(cs, 0, T, half, 0), sin = split(cs, 0, T, half, 1);
        par.forRange((long) B * T, 4, (s, e) -> {
            float[] dn = new float[hs], n = new float[hs];
            for (long bt = s; bt < e; bt++) {
                int t = (int) (bt % T);
                for (int part = 0; part < 2; part++) {
                    for (int h = 0; h < NH; h++) {
                        long base = bt * 3 * C + (long) part * C + (long) h * hs;
                        MemorySegment.copy(dqkv, F32.FLOAT, base * 4, dn, 0, hs);
                        MemorySegment.copy(qkv, F32.FLOAT, base * 4, n, 0, hs);
                        if (cos != null) { // the transpose of the rotation, on the gradient and the values
                            unrotate(dn, half, cos, sin, t * half);
                            unrotate(n, half, cos, sin, t * half);
                        }
                        if (rstd != null) normBackward(dn, n, hs, get(rstd, bt * 2 * NH + (long) part * NH + h));
                        MemorySegment.copy(dn, 0, dqkv, F32.FLOAT, base * 4, hs);
                    }
                }
            }
        });
    }

    /** (y1, y2) = (y1 c - y2 s, y1 s + y2 c) in place: the inverse (transpose) rotation. */
    private static void unrotate(float[] y, int half, float[] cos, float[] sin, int ci) {
        int j = 0;
        for (int bound = S.loopBound(half); j < bound; j += L) {
            FloatVector c = FloatVector.fromArray(S, cos, ci + j), sn = FloatVector.fromArray(S, sin, ci + j);
            FloatVector y1 = FloatVector.fromArray(S, y, j), y2 = FloatVector.fromArray(S, y, j + half);
            y1.mul(c).sub(y2.mul(sn)).intoArray(y, j);
            y1.mul(sn).add(y2.mul(c)).intoArray(y, j + half);
        }
        for (; j < half; j++) {
            float c = cos[ci + j], sn = sin[ci + j], y1 = y[j], y2 = y[j + half];
            y[j] = y1 * c - y2 * sn;
            y[j + half] = y1 * sn + y2 * c;
        }
    }

    /** dn = r (dn - n mean(dn n)) in place over one head. */
    private static void normBackward(float[] dn, float[] n, int hs, float r) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, bound = S.loopBound(hs);
        for (; i < bound; i += L) acc = FloatVector.fromArray(S, dn, i).fma(FloatVector.fromArray(S, n, i), acc);
        float dot = F32.sum(acc);
        for (; i < hs; i++) dot += dn[i] * n[i];
        float mean = dot / hs;
        for (i = 0; i < bound; i += L) {
            FloatVector.fromArray(S, dn, i).sub(FloatVector.fromArray(S, n, i).mul(mean)).mul(r).intoArray(dn, i);
        }
        for (; i < hs; i++) dn[i] = (dn[i] - n[i] * mean) * r;
    }
}
