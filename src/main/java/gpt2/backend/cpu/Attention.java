package gpt2.backend.cpu;

import gpt2.backend.Dropout;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/**
 * Causal multi-head self-attention with the T x T weights materialized.
 *
 * <pre>
 * qkv (B,T,3C) --q.k/sqrt(hs), causal--> preatt --softmax--> att (B,NH,T,T, saved)
 *   --dropout(key, index ((b*NH+h)*T+t)*T+t2)--> att' --@ v--> out (B,T,C)
 * </pre>
 * Work is split over (b, h) pairs: a pair reads and writes only its own head's slices, so the
 * backward pass accumulates dk and dv without races.
 */
final class Attention {
    private Attention() {
    }

    static void forward(Parallel par, MemorySegment out, MemorySegment att, MemorySegment qkv,
                        int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        int C3 = 3 * C;
        float scale = (float) (1.0 / Math.sqrt(hs));
        boolean drop = dropout != null && !dropout.isOff();
        par.forRange((long) B * NH, 1, (s, e) -> {
            float[] row = new float[T];
            for (long bh = s; bh < e; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                for (int t = 0; t < T; t++) {
                    long q = (b * T + t) * C3 + (long) h * hs;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int t2 = 0; t2 <= t; t2++) {
                        long k = (b * T + t2) * C3 + C + (long) h * hs;
                        row[t2] = F32.dot(qkv, q, qkv, k, hs) * scale;
                        max = Math.max(max, row[t2]);
                    }
                    float sum = 0;
                    for (int t2 = 0; t2 <= t; t2++) {
                        row[t2] = (float) Math.exp(row[t2] - max);
                        sum += row[t2];
                    }
                    float inv = 1f / sum;
                    long a = (bh * T + t) * T;
                    long o = (b * T + t) * C + (long) h * hs;
                    for (int i = 0; i < hs; i++) set(out, o + i, 0f);
                    for (int t2 = 0; t2 < T; t2++) {
                        float w = t2 <= t ? row[t2] * inv : 0f;
                        set(att, a + t2, w);
                        if (t2 > t) continue;
                        if (drop) w *= dropout.scale(a + t2);
                        long v = (b * T + t2) * C3 + 2L * C + (long) h * hs;
                        if (w != 0f) F32.axpy(w, qkv, v, out, o, hs);
                    }
                }
            }
        });
    }

    /** dqkv (B,T,3C) = gradient of out w.r.t. qkv, given dout (B,T,C) and the saved att. */
    static void backward(Parallel par, MemorySegment dqkv, MemorySegment dout, MemorySegment qkv,
                         MemorySegment att, int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        int C3 = 3 * C;
        float scale = (float) (1.0 / Math.sqrt(hs));
        boolean drop = dropout != null && !dropout.isOff();
        par.forRange((long) B * NH, 1, (s, e) -> {
            float[] datt = new float[T];
            for (long bh = s; bh < e; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                for (int t = 0; t < T; t++) {
                    long base = (b * T + t) * C3 + (long) h * hs;
                    for (int i = 0; i < hs; i++) {
                        set(dqkv, base + i, 0f);
                        set(dqkv, base + C + i, 0f);
                        set(dqkv, base + 2L * C + i, 0f);
                    }
                }
                for (int t = 0; t < T; t++) {
                    long a = (bh * T + t) * T;
                    long o = (b * T + t) * C + (long) h * hs;
                    long q = (b * T + t) * C3 + (long) h * hs;
                    // through att' @ v: datt' = dout . v, dv += att' * dout; then through dropout
                    float dot = 0;
                    for (int t2 = 0; t2 <= t; t2++) {
                        long v = (b * T + t2) * C3 + 2L * C + (long) h * hs;
                        float m = drop ? dropout.scale(a + t2) : 1f;
                        float w = get(att, a + t2);
                        datt[t2] = F32.dot(dout, o, qkv, v, hs) * m;
                        if (w * m != 0f) F32.axpy(w * m, dout, o, dqkv, v, hs);
                        dot += w * datt[t2];
                    }
                    // through softmax: dpreatt = att * (datt - sum(att * datt)); then q.k * scale
                    for (int t2 = 0; t2 <= t; t2++) {
                        float dpre = get(att, a + t2) * (datt[t2] - dot) * scale;
                        if (dpre == 0f) continue;
                        long k = (b * T + t2) * C3 + C + (long) h * hs;
                        F32.axpy(dpre, qkv, k, dqkv, q, hs);
                        F32.axpy(dpre, qkv, q, dqkv, k, hs);
                    }
                }
            }
        });
    }

    /** One position per sequence against the KV cache (see Backend.attentionDecode). */
    static void decode(Parallel par, MemorySegment out, MemorySegment qkv, MemorySegment kc, MemorySegment vc,
                       int B, int pos, int maxT, int C, int NH) {
        int hs = C / NH;
        float scale = (float) (1.0 / Math.sqrt(hs));
        par.forRange((long) B * NH, 1, (s, e) -> {
            float[] w = new float[pos + 1];
            for (long bh = s; bh < e; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                long q = b * 3L * C + (long) h * hs;
                long cache = bh * maxT * hs;
                for (int i = 0; i < hs; i++) {
                    set(kc, cache + (long) pos * hs + i, get(qkv, q + C + i));
                    set(vc, cache + (long) pos * hs + i, get(qkv, q + 2L * C + i));
                }
                float max = Float.NEGATIVE_INFINITY;
                for (int t = 0; t <= pos; t++) {
                    w[t] = F32.dot(qkv, q, kc, cache + (long) t * hs, hs) * scale;
                    max = Math.max(max, w[t]);
                }
                float sum = 0;
                for (int t = 0; t <= pos; t++) {
                    w[t] = (float) Math.exp(w[t] - max);
                    sum += w[t];
                }
                long o = b * C + (long) h * hs;
                for (int i = 0; i < hs; i++) set(out, o + i, 0f);
                for (int t = 0; t <= pos; t++) F32.axpy(w[t] / sum, vc, cache + (long) t * hs, out, o, hs);
            }
        });
    }
}
