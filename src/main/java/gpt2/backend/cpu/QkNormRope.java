package gpt2.backend.cpu;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/**
 * The modern attention's preprocessing of q and k, in place over qkv (B,T,3C): per head of
 * hs = C/NH, an optional RMS norm without weights, then an optional rotary embedding.
 * <pre>
 * q, k (each head) --rms norm (rstd saved)--> n --rotate pairs (j, j+hs/2) by pos * inv_freq[j]--> y
 * </pre>
 * The rotations come as a table {@link gpt2.backend.Backend#ropeCosSin} (cos, sin per position and
 * pair, as every backend uses them), which the backend keeps between calls.
 * Backward (in place over dqkv): the rotation's transpose, then the norm's
 * dx = rstd (dn - n mean(dn n)), with n recovered from y by the inverse rotation.
 */
final class QkNormRope {
    private QkNormRope() {
    }

    /**
     * qkv (B,T,3C) in place; rstd (B,T,2NH) written, or null for no norm; cs the rotations of
     * positions 0..pos0+T-1 at least, or null for none.
     */
    static void forward(Parallel par, MemorySegment qkv, MemorySegment rstd, int B, int T, int C, int NH, int pos0,
                        float[] cs, float eps) {
        int hs = C / NH, half = hs / 2;
        par.forRange((long) B * T, 4, (s, e) -> {
            for (long bt = s; bt < e; bt++) {
                int t = (int) (bt % T);
                for (int part = 0; part < 2; part++) {
                    for (int h = 0; h < NH; h++) {
                        long base = bt * 3 * C + (long) part * C + (long) h * hs;
                        if (rstd != null) {
                            double ss = 0;
                            for (int i = 0; i < hs; i++) {
                                float x = get(qkv, base + i);
                                ss += x * x;
                            }
                            float r = (float) (1.0 / Math.sqrt(ss / hs + eps));
                            for (int i = 0; i < hs; i++) set(qkv, base + i, get(qkv, base + i) * r);
                            set(rstd, bt * 2 * NH + (long) part * NH + h, r);
                        }
                        if (cs != null) {
                            for (int j = 0; j < half; j++) {
                                int k = 2 * ((pos0 + t) * half + j);
                                float c = cs[k], sn = cs[k + 1];
                                float x1 = get(qkv, base + j), x2 = get(qkv, base + j + half);
                                set(qkv, base + j, x1 * c + x2 * sn);
                                set(qkv, base + j + half, x2 * c - x1 * sn);
                            }
                        }
                    }
                }
            }
        });
    }

    /** dqkv (B,T,3C) in place (q and k parts); qkv the forward's outputs; rstd or null; cs as forward's, or null. */
    static void backward(Parallel par, MemorySegment dqkv, MemorySegment qkv, MemorySegment rstd, int B, int T, int C,
                         int NH, float[] cs) {
        int hs = C / NH, half = hs / 2;
        par.forRange((long) B * T, 4, (s, e) -> {
            float[] dn = new float[hs], n = new float[hs];
            for (long bt = s; bt < e; bt++) {
                int t = (int) (bt % T);
                for (int part = 0; part < 2; part++) {
                    for (int h = 0; h < NH; h++) {
                        long base = bt * 3 * C + (long) part * C + (long) h * hs;
                        for (int i = 0; i < hs; i++) {
                            dn[i] = get(dqkv, base + i);
                            n[i] = get(qkv, base + i);
                        }
                        if (cs != null) { // the transpose of the rotation, on the gradient and the values
                            for (int j = 0; j < half; j++) {
                                float c = cs[2 * (t * half + j)], sn = cs[2 * (t * half + j) + 1];
                                float d1 = dn[j], d2 = dn[j + half], y1 = n[j], y2 = n[j + half];
                                dn[j] = d1 * c - d2 * sn;
                                dn[j + half] = d1 * sn + d2 * c;
                                n[j] = y1 * c - y2 * sn;
                                n[j + half] = y1 * sn + y2 * c;
                            }
                        }
                        if (rstd != null) {
                            float r = get(rstd, bt * 2 * NH + (long) part * NH + h);
                            double dot = 0;
                            for (int i = 0; i < hs; i++) dot += dn[i] * n[i];
                            float mean = (float) (dot / hs);
                            for (int i = 0; i < hs; i++) dn[i] = r * (dn[i] - n[i] * mean);
                        }
                        for (int i = 0; i < hs; i++) set(dqkv, base + i, dn[i]);
                    }
                }
            }
        });
    }
}
