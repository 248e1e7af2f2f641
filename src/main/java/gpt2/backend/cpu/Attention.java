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

    /**
     * One thread's arrays for one head, reused across the heads it takes and kept between calls (one
     * per thread, remade when T or the head size changes).
     */
    private static final class Head {
        final int T, hs, hp, tp;
        final float[] q, k, v, kt, vt, s, d, dq, dk, dv, o, p, pm;
        /** A tile's rows: scores (or datt), outputs (or dq), the weights and the weights as applied. */
        final float[][] x, ox, ps, pms;

        private static final ThreadLocal<Head> KEPT = new ThreadLocal<>();

        static Head of(int T, int hs) {
            Head h = KEPT.get();
            if (h == null || h.T != T || h.hs != hs) KEPT.set(h = new Head(T, hs));
            return h;
        }

        private Head(int T, int hs) {
            this.T = T;
            this.hs = hs;
            this.hp = pad(hs);
            this.tp = pad(T);
            q = new float[T * hp];
            k = new float[T * hp];
            v = new float[T * hp];
            kt = new float[hs * tp];
            vt = new float[hs * tp];
            s = new float[tp];
            d = new float[T * hp]; // dout
            dq = new float[hp];
            dk = new float[T * hp];
            dv = new float[T * hp];
            o = new float[hp];
            p = new float[tp];
            pm = new float[tp];
            x = new float[TILE][tp];
            ox = new float[TILE][hp];
            ps = new float[TILE][tp];
            pms = new float[TILE][tp];
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

    /** Query rows per tile: each loaded vector of keys (values) serves four rows at once. */
    private static final int TILE = 4;

    /**
     * Rows t0..t0+3 of a (T x hp) times the columns of bT (hs x tp), times scale, into s0..s3 up to
     * pad(t0 + 4): each row gets the bits {@link Head#scores} gives it (the same multiply-adds in the
     * same order).
     */
    private static void scores4(Head w, float[] a, float[] bT, int t0, float scale, float[] s0, float[] s1, float[] s2,
                                float[] s3) {
        int end = pad(t0 + TILE), hp = w.hp, tp = w.tp, hs = w.hs;
        int a0 = t0 * hp, a1 = a0 + hp, a2 = a1 + hp, a3 = a2 + hp;
        for (int j = 0; j < end; j += L) {
            FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
            for (int i = 0; i < hs; i++) {
                FloatVector kv = FloatVector.fromArray(S, bT, i * tp + j);
                c0 = kv.fma(FloatVector.broadcast(S, a[a0 + i]), c0);
                c1 = kv.fma(FloatVector.broadcast(S, a[a1 + i]), c1);
                c2 = kv.fma(FloatVector.broadcast(S, a[a2 + i]), c2);
                c3 = kv.fma(FloatVector.broadcast(S, a[a3 + i]), c3);
            }
            c0.mul(scale).intoArray(s0, j);
            c1.mul(scale).intoArray(s1, j);
            c2.mul(scale).intoArray(s2, j);
            c3.mul(scale).intoArray(s3, j);
        }
    }

    /** o_r (hp) = sum over t2 <= t of w_r[t2] * rows[t2], four rows r at once (w_r zero past its own row). */
    private static void weightedRows4(float[] w0, float[] w1, float[] w2, float[] w3, int t, float[] rows, int hp,
                                      float[] o0, float[] o1, float[] o2, float[] o3) {
        for (int j = 0; j < hp; j += L) {
            FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
            for (int t2 = 0; t2 <= t; t2++) {
                FloatVector v = FloatVector.fromArray(S, rows, t2 * hp + j);
                c0 = v.fma(FloatVector.broadcast(S, w0[t2]), c0);
                c1 = v.fma(FloatVector.broadcast(S, w1[t2]), c1);
                c2 = v.fma(FloatVector.broadcast(S, w2[t2]), c2);
                c3 = v.fma(FloatVector.broadcast(S, w3[t2]), c3);
            }
            c0.intoArray(o0, j);
            c1.intoArray(o1, j);
            c2.intoArray(o2, j);
            c3.intoArray(o3, j);
        }
    }

    /** rows[t2] += c_r[t2] * x[xi + r hp ..] for r = 0..3 in turn (each row's bits as {@link #addOuter}'s). */
    private static void addOuter4(float[] c0, float[] c1, float[] c2, float[] c3, int t, float[] x, int xi, float[] rows,
                                  int hp) {
        for (int t2 = 0; t2 <= t; t2++) {
            FloatVector b0 = FloatVector.broadcast(S, c0[t2]), b1 = FloatVector.broadcast(S, c1[t2]);
            FloatVector b2 = FloatVector.broadcast(S, c2[t2]), b3 = FloatVector.broadcast(S, c3[t2]);
            for (int j = 0; j < hp; j += L) {
                FloatVector acc = FloatVector.fromArray(S, rows, t2 * hp + j);
                acc = FloatVector.fromArray(S, x, xi + j).fma(b0, acc);
                acc = FloatVector.fromArray(S, x, xi + hp + j).fma(b1, acc);
                acc = FloatVector.fromArray(S, x, xi + 2 * hp + j).fma(b2, acc);
                acc = FloatVector.fromArray(S, x, xi + 3 * hp + j).fma(b3, acc);
                acc.intoArray(rows, t2 * hp + j);
            }
        }
    }

    /**
     * Row t of the forward after its scores: the softmax, the saved weights (zero above the
     * diagonal), dropout; s zero from t + 1 to {@code zeroTo} for the tile's weighted sums.
     */
    private static void finishRow(float[] s, int t, int zeroTo, MemorySegment att, long a, int T, Dropout dropout) {
        float inv = softmax(s, t);
        for (int t2 = 0; t2 <= t; t2++) s[t2] *= inv;
        MemorySegment.copy(s, 0, att, F32.FLOAT, a * 4, t + 1);
        if (t + 1 < T) att.asSlice((a + t + 1) * 4, 4L * (T - t - 1)).fill((byte) 0);
        if (dropout != null) for (int t2 = 0; t2 <= t; t2++) s[t2] *= dropout.scale(a + t2);
        if (zeroTo > t + 1) java.util.Arrays.fill(s, t + 1, zeroTo, 0f);
    }

    static void forward(Parallel par, MemorySegment out, MemorySegment att, MemorySegment qkv,
                        int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        float scale = (float) (1.0 / Math.sqrt(hs));
        boolean drop = dropout != null && !dropout.isOff();
        par.forRange((long) B * NH, 1, (s0, e0) -> {
            Head w = Head.of(T, hs);
            float[] s = w.s, o = w.o;
            float[][] x = w.x, ox = w.ox;
            for (long bh = s0; bh < e0; bh++) {
                long b = bh / NH;
                int h = (int) (bh % NH);
                w.gather(qkv, b, h, C, 0, w.q, null);
                w.gather(qkv, b, h, C, 1, w.v, w.kt); // k, transposed (v's array as scratch: v comes next)
                w.gather(qkv, b, h, C, 2, w.v, null);
                int t = 0;
                for (; t + TILE <= T; t += TILE) {
                    scores4(w, w.q, w.kt, t, scale, x[0], x[1], x[2], x[3]);
                    for (int r = 0; r < TILE; r++) finishRow(x[r], t + r, t + TILE, att, (bh * T + t + r) * T, T, drop ? dropout : null);
                    weightedRows4(x[0], x[1], x[2], x[3], t + TILE - 1, w.v, w.hp, ox[0], ox[1], ox[2], ox[3]);
                    for (int r = 0; r < TILE; r++) {
                        MemorySegment.copy(ox[r], 0, out, F32.FLOAT, ((b * T + t + r) * C + (long) h * hs) * 4, hs);
                    }
                }
                for (; t < T; t++) {
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
            FloatVector e = FastMath.expNonPositive(FloatVector.fromArray(S, s, j).sub(max));
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
            Head w = Head.of(T, hs);
            int hp = w.hp;
            float[] datt = w.s, p = w.p, pm = w.pm, dq = w.dq, dk = w.dk, dv = w.dv, d = w.d;
            float[][] x = w.x, ps = w.ps, pms = w.pms, ox = w.ox;
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
                int t = 0;
                for (; t + TILE <= T; t += TILE) {
                    int end = pad(t + TILE);
                    scores4(w, d, w.vt, t, 1f, x[0], x[1], x[2], x[3]); // datt' = dout . v
                    for (int r = 0; r < TILE; r++) {
                        long a = (bh * T + t + r) * T;
                        float[] pr = ps[r], pmr = pms[r];
                        MemorySegment.copy(att, F32.FLOAT, a * 4, pr, 0, t + r + 1);
                        java.util.Arrays.fill(pr, t + r + 1, end, 0f);
                        System.arraycopy(pr, 0, pmr, 0, end);
                        if (drop) {
                            for (int t2 = 0; t2 <= t + r; t2++) {
                                float m = dropout.scale(a + t2);
                                pmr[t2] *= m;
                                x[r][t2] *= m;
                            }
                        }
                    }
                    addOuter4(pms[0], pms[1], pms[2], pms[3], t + TILE - 1, d, t * hp, dv, hp);
                    for (int r = 0; r < TILE; r++) softmaxBackward(ps[r], x[r], end, scale);
                    weightedRows4(x[0], x[1], x[2], x[3], t + TILE - 1, w.k, hp, ox[0], ox[1], ox[2], ox[3]);
                    for (int r = 0; r < TILE; r++) {
                        MemorySegment.copy(ox[r], 0, dqkv, F32.FLOAT, ((b * T + t + r) * 3 * C + (long) h * hs) * 4, hs);
                    }
                    addOuter4(x[0], x[1], x[2], x[3], t + TILE - 1, w.q, t * hp, dk, hp);
                }
                for (; t < T; t++) {
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
                for (int t2 = 0; t2 < T; t2++) {
                    long base = ((b * T + t2) * 3 * C + (long) h * hs) * 4;
                    MemorySegment.copy(dk, t2 * hp, dqkv, F32.FLOAT, base + 4L * C, hs);
                    MemorySegment.copy(dv, t2 * hp, dqkv, F32.FLOAT, base + 8L * C, hs);
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

    // ------------------------------------------------------------------ through OpenBLAS

    /** Query rows per block of the GEMM path: keys past a block's last row are not multiplied. */
    private static final int ROWS = 128;

    /** Where head bh = b NH + h starts, in floats: its q, k, v in qkv (B,T,3C), its att (B,NH,T,T), its out (B,T,C). */
    private record HeadAt(long q, long k, long v, long att, long out) {
        static HeadAt of(long bh, int T, int C, int NH) {
            long b = bh / NH, h = bh % NH, hs = C / NH, q = b * T * 3L * C + h * hs;
            return new HeadAt(q, q + C, q + 2L * C, bh * T * T, b * T * C + h * hs);
        }
    }

    private static MemorySegment at(MemorySegment s, long floats) {
        return s.asSlice(floats * 4);
    }

    /**
     * The forward pass with each head's two products as OpenBLAS GEMMs (no dropout): att = scale q k^T
     * a block of query rows at a time (keys up to the block's last row only), the causal softmax in
     * place row by row (threads over rows), then out = att v. Within float rounding of {@link #forward}.
     */
    static void forwardBlas(Parallel par, MemorySegment out, MemorySegment att, MemorySegment qkv,
                            int B, int T, int C, int NH) {
        int hs = C / NH, C3 = 3 * C;
        float scale = (float) (1.0 / Math.sqrt(hs));
        for (long bh = 0; bh < (long) B * NH; bh++) {
            HeadAt head = HeadAt.of(bh, T, C, NH);
            long q = head.q, k = head.k, v = head.v, a = head.att, o = head.out;
            for (int r0 = 0; r0 < T; r0 += ROWS) {
                int r1 = Math.min(T, r0 + ROWS);
                Blas.sgemm(false, true, r1 - r0, r1, hs, scale, at(qkv, q + (long) r0 * C3), C3, at(qkv, k), C3, 0f,
                        at(att, a + (long) r0 * T), T);
            }
            par.forRange(T, 8, (t0, t1) -> {
                for (long t = t0; t < t1; t++) causalSoftmaxRow(att, a + t * T, (int) t, T);
            });
            for (int r0 = 0; r0 < T; r0 += ROWS) {
                int r1 = Math.min(T, r0 + ROWS);
                Blas.sgemm(false, false, r1 - r0, hs, r1, 1f, at(att, a + (long) r0 * T), T, at(qkv, v), C3, 0f,
                        at(out, o + (long) r0 * C), C);
            }
        }
    }

    /** Row t of att in place: softmax over [0, t], zero after (the GEMM left scores or nothing there). */
    private static void causalSoftmaxRow(MemorySegment att, long row, int t, int T) {
        int n = t + 1, k = 0;
        FloatVector mx = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int bound = S.loopBound(n); k < bound; k += L) mx = mx.max(F32.load(att, row + k));
        float max = mx.reduceLanes(VectorOperators.MAX);
        for (; k < n; k++) max = Math.max(max, get(att, row + k));
        FloatVector sv = FloatVector.zero(S);
        k = 0;
        for (int bound = S.loopBound(n); k < bound; k += L) {
            FloatVector e = FastMath.expNonPositive(F32.load(att, row + k).sub(max));
            F32.store(e, att, row + k);
            sv = sv.add(e);
        }
        float sum = F32.sum(sv);
        for (; k < n; k++) {
            float e = FastMath.exp(get(att, row + k) - max);
            set(att, row + k, e);
            sum += e;
        }
        float inv = 1f / sum;
        k = 0;
        for (int bound = S.loopBound(n); k < bound; k += L) F32.store(F32.load(att, row + k).mul(inv), att, row + k);
        for (; k < n; k++) set(att, row + k, get(att, row + k) * inv);
        if (n < T) att.asSlice((row + n) * 4, 4L * (T - n)).fill((byte) 0);
    }

    /**
     * The backward pass as OpenBLAS GEMMs (no dropout), per head with {@code scratch} (T x T floats):
     * datt = dout v^T; dv = att^T dout; dpre = att (datt - rowsum(att datt)) scale, in place; dq = dpre k;
     * dk = dpre^T q. Blocks of query rows skip what the causal mask makes zero. dqkv is overwritten.
     */
    static void backwardBlas(Parallel par, MemorySegment dqkv, MemorySegment dout, MemorySegment qkv, MemorySegment att,
                             MemorySegment scratch, int B, int T, int C, int NH) {
        int hs = C / NH, C3 = 3 * C;
        float scale = (float) (1.0 / Math.sqrt(hs));
        for (long bh = 0; bh < (long) B * NH; bh++) {
            HeadAt head = HeadAt.of(bh, T, C, NH);
            long q = head.q, k = head.k, v = head.v, a = head.att, o = head.out;
            for (int r0 = 0; r0 < T; r0 += ROWS) {
                int r1 = Math.min(T, r0 + ROWS);
                // datt rows [r0, r1), keys [0, r1)
                Blas.sgemm(false, true, r1 - r0, r1, hs, 1f, at(dout, o + (long) r0 * C), C, at(qkv, v), C3, 0f,
                        at(scratch, (long) r0 * T), T);
                // dv rows [r0, r1): the queries t >= r0 that see them
                Blas.sgemm(true, false, r1 - r0, hs, T - r0, 1f, at(att, a + (long) r0 * T + r0), T,
                        at(dout, o + (long) r0 * C), C, 0f, at(dqkv, v + (long) r0 * C3), C3);
            }
            par.forRange(T, 8, (t0, t1) -> {
                for (long t = t0; t < t1; t++) softmaxBackwardRow(att, a + t * T, scratch, t * T, (int) t, T, scale);
            });
            for (int r0 = 0; r0 < T; r0 += ROWS) {
                int r1 = Math.min(T, r0 + ROWS);
                Blas.sgemm(false, false, r1 - r0, hs, r1, 1f, at(scratch, (long) r0 * T), T, at(qkv, k), C3, 0f,
                        at(dqkv, q + (long) r0 * C3), C3);
                Blas.sgemm(true, false, r1 - r0, hs, T - r0, 1f, at(scratch, (long) r0 * T + r0), T,
                        at(qkv, q + (long) r0 * C3), C3, 0f, at(dqkv, k + (long) r0 * C3), C3);
            }
        }
    }

    /** Row t of d in place: att (d - sum(att d)) scale over [0, t], zero after. */
    private static void softmaxBackwardRow(MemorySegment att, long arow, MemorySegment d, long drow, int t, int T,
                                           float scale) {
        int n = t + 1, k = 0;
        FloatVector acc = FloatVector.zero(S);
        for (int bound = S.loopBound(n); k < bound; k += L) acc = F32.load(att, arow + k).fma(F32.load(d, drow + k), acc);
        float dot = F32.sum(acc);
        for (; k < n; k++) dot += get(att, arow + k) * get(d, drow + k);
        k = 0;
        for (int bound = S.loopBound(n); k < bound; k += L) {
            F32.store(F32.load(d, drow + k).sub(dot).mul(F32.load(att, arow + k)).mul(scale), d, drow + k);
        }
        for (; k < n; k++) set(d, drow + k, (get(d, drow + k) - dot) * get(att, arow + k) * scale);
        if (n < T) d.asSlice((drow + n) * 4, 4L * (T - n)).fill((byte) 0);
    }
}
