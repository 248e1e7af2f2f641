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
 * The angles, as every backend computes them: inv_freq[j] = theta^(-2j/hs) and
 * angle = pos * inv_freq[j] in double, cos and sin in double, then rounded to float.
 * Backward (in place over dqkv): the rotation's transpose, then the norm's
 * dx = rstd (dn - n mean(dn n)), with n recovered from y by the inverse rotation.
 */
final class QkNormRope {
    private QkNormRope() {
    }

    /** (T, hs/2) cos and sin of positions pos0.., or null without RoPE. */
    static float[][] angles(int T, int hs, int pos0, float theta) {
        if (theta <= 0) return null;
        int half = hs / 2;
        float[] cos = new float[T * half], sin = new float[T * half];
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < half; j++) {
                double a = (double) (pos0 + t) * Math.pow(theta, -2.0 * j / hs);
                cos[t * half + j] = (float) Math.cos(a);
                sin[t * half + j] = (float) Math.sin(a);
            }
        }
        return new float[][]{cos, sin};
    }

    /** qkv (B,T,3C) in place; rstd (B,T,2NH) written, or null for no norm; theta 0 for no rotation. */
    static void forward(Parallel par, MemorySegment qkv, MemorySegment rstd, int B, int T, int C, int NH, int pos0,
                        float theta, float eps) {
        int hs = C / NH, half = hs / 2;
        float[][] cs = angles(T, hs, pos0, theta);
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
                                float c = cs[0][t * half + j], sn = cs[1][t * half + j];
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

    /** dqkv (B,T,3C) in place (q and k parts); qkv the forward's outputs; rstd or null; theta 0 for none. */
    static void backward(Parallel par, MemorySegment dqkv, MemorySegment qkv, MemorySegment rstd, int B, int T, int C,
                         int NH, float theta) {
        int hs = C / NH, half = hs / 2;
        float[][] cs = angles(T, hs, 0, theta);
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
                                float c = cs[0][t * half + j], sn = cs[1][t * half + j];
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
