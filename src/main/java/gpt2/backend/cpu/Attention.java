package gpt2.backend.cpu;

import gpt2.backend.Dropout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.S;
import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/**
 * Causal multi-head self-attention with the T x T weights materialized.
 *
 * <pre>
 * qkv (B,T,3C) --q.k/sqrt(hs), causal--> preatt --softmax--> att (B,NH,T,T, saved)
 *   --dropout(key, index ((b*NH+h)*T+t)*T+t2)--> att' --@ v--> out (B,T,C)
 * </pre>
 * Work is split over (b, h) pairs: a pair reads and writes only its own head's slices. Each pair
 * copies its head's q, k and v into arrays of its own, rows padded to whole vectors with zeros and
 * k (and in backward v) also transposed, so that a row of scores is built by whole-vector
 * multiply-adds along the keys ({@code s[t2..] += q[t][i] * kT[i][t2..]}) and each output row is
 * a sum of v rows held in registers; no lane-by-lane reductions in the inner loops.
 */
final class Attention {
    private Attention() {
    }

    private static final int L = S.length();

    private static int pad(int n) {
        return (n + L - 1) / L * L;
    }

    /** One thread's arrays for one head, reused across the heads it takes. */
    private static final class Head {
        final int T, hs, hp, tp;
        final float[] q, k, v, kt, vt, s, d, dq, dk, dv;

        Head(int T, int hs, boolean backward) {
            this.T = T;
            this.hs = hs;
            this.hp = pad(hs);
            this.tp = pad(T);
            q = new float[T * hp];
            k = backward ? new float[T * hp] : null;
            v = new float[T * hp];
            kt = new float[hs * tp];
            vt = backward ? new float[hs * tp] : null;
            s = new float[tp];
            d = backward ? new float[T * hp] : null; // dout
            dq = backward ? new float[hp] : null;
            dk = backward ? new float[T * hp] : null;
            dv = backward ? new float[T * hp] : null;
        }

        /** Rows t of the part (0 q, 1 k, 2 v) of head h of sequence b into dst (T x hp), and transposed into dstT. */
        void gather(MemorySegment qkv, long b, int h, int C, int part, float[] dst, float[] dstT) {
            for (int t = 0; t < T; t++) {
                long src = ((b * T + t) * 3 * C + (long) part * C + (long) h * hs) * 4;
                MemorySegment.copy(qkv, F32.FLOAT, src, dst, t * hp, hs);
                if (dstT != null) for (int i = 0; i < hs; i++) dstT[i * tp + t] = dst[t * hp + i];
            }
        }

        /** s[0 .. t] = row t of a (T x hp) times the columns of bT (hs x tp), times scale; up to the next whole vector. */
        void scores(float[] a, float[] bT, int t, float scale) {
            int end = pad(t + 1);
            for (int j = 0; j < end; j += L) {
                FloatVector acc = FloatVector.zero(S);
                for (int i = 0; i < hs; i++) {
                    acc = FloatVector.fromArray(S, bT, i * tp + j).fma(FloatVector.broadcast(S, a[t * hp + i]), acc);
                }
                acc.mul(scale).intoArray(s, j);
            }
        }
    }

    static void forward(Parallel par, MemorySegment out, MemorySegment att, MemorySegment qkv,
                        int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        float scale = (float) (1.0 / Math.sqrt(hs));
        boolean drop = dropout != null && !dropout.isOff();
        par.forRange((long) B * NH, 1, (s0, e0) -> {
            Head w = new Head(T, hs, false);
            float[] s = w.s, o = new float[w.hp];
            for (long bh = s0; bh < e0; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                w.gather(qkv, b, h, C, 0, w.q, null);
                w.gather(qkv, b, h, C, 1, w.v, w.kt); // k, transposed (v's array as scratch: v comes next)
                w.gather(qkv, b, h, C, 2, w.v, null);
                for (int t = 0; t < T; t++) {
                    w.scores(w.q, w.kt, t, scale);
                    float inv = softmax(s, t);
                    long a = (bh * T + t) * T;
                    // the saved weights (before dropout), zero above the diagonal
                    for (int t2 = 0; t2 <= t; t2++) s[t2] *= inv;
                    MemorySegment.copy(s, 0, att, F32.FLOAT, a * 4, t + 1);
                    if (t + 1 < T) att.asSlice((a + t + 1) * 4, 4L * (T - t - 1)).fill((byte) 0);
                    if (drop) for (int t2 = 0; t2 <= t; t2++) s[t2] *= dropout.scale(a + t2);
                    weightedRows(s, t, w.v, w.hp, o);
                    MemorySegment.copy(o, 0, out, F32.FLOAT, ((b * T + t) * C + (long) h * hs) * 4, hs);
                }
            }
        });
    }

    /**
     * In place over s[0..t]: exp(s - max), with the lanes past t left at zero; returns 1 / sum.
     * The sum adds whole vectors, then the lanes in a fixed order.
     */
    private static float softmax(float[] s, int t) {
        int end = pad(t + 1);
        for (int t2 = t + 1; t2 < end; t2++) s[t2] = Float.NEGATIVE_INFINITY;
        FloatVector mx = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < end; j += L) mx = mx.max(FloatVector.fromArray(S, s, j));
        float max = mx.reduceLanes(VectorOperators.MAX);
        FloatVector sum = FloatVector.zero(S);
        for (int j = 0; j < end; j += L) {
            FloatVector e = FastMath.exp(FloatVector.fromArray(S, s, j).sub(max));
            if (j + L > t + 1) e = e.blend(0f, S.indexInRange(j, t + 1).not()); // past the diagonal
            e.intoArray(s, j);
            sum = sum.add(e);
        }
        return 1f / F32.sum(sum);
    }

    /** o (hp) = sum over t2 <= t of w[t2] * rows[t2] (rows T x hp). */
    private static void weightedRows(float[] w, int t, float[] rows, int hp, float[] o) {
        for (int j = 0; j < hp; j += L) {
            FloatVector acc = FloatVector.zero(S);
            for (int t2 = 0; t2 <= t; t2++) {
                acc = FloatVector.fromArray(S, rows, t2 * hp + j).fma(FloatVector.broadcast(S, w[t2]), acc);
            }
            acc.intoArray(o, j);
        }
    }

    /** rows[t2] (T x hp) += c[t2] * x[xi ..] for t2 <= t. (Each vector loop is a method of its own: see CrossEntropy.) */
    private static void addOuter(float[] c, int t, float[] x, int xi, float[] rows, int hp) {
        for (int t2 = 0; t2 <= t; t2++) {
            float ct = c[t2];
            if (ct == 0f) continue;
            FloatVector vc = FloatVector.broadcast(S, ct);
            for (int j = 0; j < hp; j += L) {
                FloatVector.fromArray(S, x, xi + j).fma(vc, FloatVector.fromArray(S, rows, t2 * hp + j)).intoArray(rows, t2 * hp + j);
            }
        }
    }

    /** In place over datt[0 .. end): att * (datt - sum(att * datt)) * scale, the sum in a fixed order. */
    private static void softmaxBackward(float[] att, float[] datt, int end, float scale) {
        FloatVector dotv = FloatVector.zero(S);
        for (int j = 0; j < end; j += L) dotv = FloatVector.fromArray(S, att, j).fma(FloatVector.fromArray(S, datt, j), dotv);
        float dot = F32.sum(dotv);
        for (int j = 0; j < end; j += L) {
            FloatVector.fromArray(S, datt, j).sub(dot).mul(FloatVector.fromArray(S, att, j)).mul(scale).intoArray(datt, j);
        }
    }

    /** dqkv (B,T,3C) = gradient of out w.r.t. qkv, given dout (B,T,C) and the saved att. */
    static void backward(Parallel par, MemorySegment dqkv, MemorySegment dout, MemorySegment qkv,
                         MemorySegment att, int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        float scale = (float) (1.0 / Math.sqrt(hs));
        boolean drop = dropout != null && !dropout.isOff();
        par.forRange((long) B * NH, 1, (s0, e0) -> {
            Head w = new Head(T, hs, true);
            int hp = w.hp;
            float[] datt = w.s, p = new float[w.tp], pm = new float[w.tp], dq = w.dq, dk = w.dk, dv = w.dv, d = w.d;
            for (long bh = s0; bh < e0; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                w.gather(qkv, b, h, C, 0, w.q, null);
                w.gather(qkv, b, h, C, 1, w.k, null);
                w.gather(qkv, b, h, C, 2, w.v, w.vt);
                for (int t = 0; t < T; t++) {
                    MemorySegment.copy(dout, F32.FLOAT, ((b * T + t) * C + (long) h * hs) * 4, d, t * hp, hs);
                }
                java.util.Arrays.fill(dk, 0f);
                java.util.Arrays.fill(dv, 0f);
                for (int t = 0; t < T; t++) {
                    long a = (bh * T + t) * T;
                    int end = pad(t + 1);
                    MemorySegment.copy(att, F32.FLOAT, a * 4, p, 0, t + 1);
                    java.util.Arrays.fill(p, t + 1, end, 0f);
                    // pm: the weights as applied (after dropout); datt' = dout . v, then through dropout
                    System.arraycopy(p, 0, pm, 0, end);
                    w.scores(d, w.vt, t, 1f);
                    if (drop) {
                        for (int t2 = 0; t2 <= t; t2++) {
                            float m = dropout.scale(a + t2);
                            pm[t2] *= m;
                            datt[t2] *= m;
                        }
                    }
                    addOuter(pm, t, d, t * hp, dv, hp); // dv[t2] += pm[t2] * dout[t]
                    softmaxBackward(p, datt, end, scale); // dpre = att * (datt - sum(att * datt)) * scale
                    // dq[t] = sum dpre[t2] k[t2]; dk[t2] += dpre[t2] q[t]
                    weightedRows(datt, t, w.k, hp, dq);
                    MemorySegment.copy(dq, 0, dqkv, F32.FLOAT, ((b * T + t) * 3 * C + (long) h * hs) * 4, hs);
                    addOuter(datt, t, w.q, t * hp, dk, hp);
                }
                for (int t = 0; t < T; t++) {
                    long base = ((b * T + t) * 3 * C + (long) h * hs) * 4;
                    MemorySegment.copy(dk, t * hp, dqkv, F32.FLOAT, base + 4L * C, hs);
                    MemorySegment.copy(dv, t * hp, dqkv, F32.FLOAT, base + 8L * C, hs);
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
            float[] w = new float[pad(pos + 1)];
            for (long bh = s; bh < e; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                long q = b * 3L * C + (long) h * hs;
                long cache = bh * maxT * hs;
                for (int i = 0; i < hs; i++) {
                    set(kc, cache + (long) pos * hs + i, get(qkv, q + C + i));
                    set(vc, cache + (long) pos * hs + i, get(qkv, q + 2L * C + i));
                }
                for (int t = 0; t <= pos; t++) w[t] = F32.dot(qkv, q, kc, cache + (long) t * hs, hs) * scale;
                float inv = softmax(w, pos);
                long o = b * C + (long) h * hs;
                for (int i = 0; i < hs; i++) set(out, o + i, 0f);
                for (int t = 0; t <= pos; t++) F32.axpy(w[t] * inv, vc, cache + (long) t * hs, out, o, hs);
            }
        });
    }
}
