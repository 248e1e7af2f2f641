package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.S;
import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.load;
import static gpt2.backend.cpu.F32.set;

/**
 * Linear layer: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC). Pure Java with the Vector
 * API; blocks keep a slice of the weight in cache while rows stream past it.
 */
final class Matmul {
    private Matmul() {
    }

    /** Output channels per block: a block of weight rows stays in L2 while every input row passes. */
    private static final int OC_BLOCK = 32;
    /** Input rows per tile: each loaded weight vector is used for this many rows at once. */
    private static final int ROW_TILE = 4;

    /** Rows up to which {@link #forwardFew} (each weight read once, as decoding does) beats a GEMM. */
    static final int FEW_ROWS = 4;

    /**
     * out = inp @ W^T + bias for at most {@link #FEW_ROWS} rows (decoding: one row per sequence): a
     * matrix-vector product bound by reading the weights, each weight row read once from memory for
     * all rows, the output channels split over threads in blocks.
     */
    static void forwardFew(Parallel par, MemorySegment out, MemorySegment inp, MemorySegment weight,
                           MemorySegment bias, int N, int C, int OC) {
        int groups = (OC + 3) / 4;
        par.forRange(groups, 64, (g0, g1) -> {
            for (long g = g0; g < g1; g++) {
                int o = (int) g * 4;
                if (o + 4 <= OC) {
                    for (int n = 0; n < N; n++) dot4Weights(out, inp, weight, bias, n, o, C, OC);
                } else {
                    for (; o < OC; o++) {
                        for (int n = 0; n < N; n++) {
                            float b = bias == null ? 0f : get(bias, o);
                            set(out, (long) n * OC + o, b + F32.dot(inp, (long) n * C, weight, (long) o * C, C));
                        }
                    }
                }
            }
        });
    }

    /** Row n times weight rows o..o+3 (each input vector loaded once for four weight rows). */
    private static void dot4Weights(MemorySegment out, MemorySegment inp, MemorySegment weight, MemorySegment bias,
                                    int n, int o, int C, int OC) {
        long x = (long) n * C, w0 = (long) o * C, w1 = w0 + C, w2 = w1 + C, w3 = w2 + C;
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int c = 0, bound = S.loopBound(C);
        for (; c < bound; c += S.length()) {
            FloatVector xv = load(inp, x + c);
            a0 = load(weight, w0 + c).fma(xv, a0);
            a1 = load(weight, w1 + c).fma(xv, a1);
            a2 = load(weight, w2 + c).fma(xv, a2);
            a3 = load(weight, w3 + c).fma(xv, a3);
        }
        float s0 = F32.sum(a0), s1 = F32.sum(a1), s2 = F32.sum(a2), s3 = F32.sum(a3);
        for (; c < C; c++) {
            float xc = get(inp, x + c);
            s0 += get(weight, w0 + c) * xc;
            s1 += get(weight, w1 + c) * xc;
            s2 += get(weight, w2 + c) * xc;
            s3 += get(weight, w3 + c) * xc;
        }
        long r = (long) n * OC + o;
        set(out, r, s0 + (bias == null ? 0f : get(bias, o)));
        set(out, r + 1, s1 + (bias == null ? 0f : get(bias, o + 1)));
        set(out, r + 2, s2 + (bias == null ? 0f : get(bias, o + 2)));
        set(out, r + 3, s3 + (bias == null ? 0f : get(bias, o + 3)));
    }

    /** With OpenBLAS: out = inp @ W^T by sgemm, then the bias. */
    static void forwardBlas(Parallel par, MemorySegment out, MemorySegment inp, MemorySegment weight,
                            MemorySegment bias, int N, int C, int OC) {
        Blas.sgemm(false, true, N, OC, C, 1f, inp, C, weight, C, 0f, out, OC);
        if (bias == null) return;
        par.forRange(N, 4, (n0, n1) -> {
            for (long n = n0; n < n1; n++) F32.axpy(1f, bias, 0, out, n * OC, OC);
        });
    }

    /** With OpenBLAS: dinp = dout @ W, dW += dout^T @ inp, dbias += column sums (Java). */
    static void backwardBlas(Parallel par, MemorySegment dinp, MemorySegment dweight, MemorySegment dbias,
                             MemorySegment dout, MemorySegment inp, MemorySegment weight, int N, int C, int OC) {
        Blas.sgemm(false, false, N, C, OC, 1f, dout, OC, weight, C, 0f, dinp, C);
        Blas.sgemm(true, false, OC, C, N, 1f, dout, OC, inp, C, 1f, dweight, C);
        if (dbias == null) return;
        int groups = (OC + 255) / 256;
        par.forRange(groups, 1, (g0, g1) -> {
            for (long g = g0; g < g1; g++) {
                int o0 = (int) g * 256, o1 = Math.min(OC, o0 + 256);
                for (long n = 0; n < N; n++) F32.axpy(1f, dout, n * OC + o0, dbias, o0, o1 - o0);
            }
        });
    }

    static void forward(Parallel par, MemorySegment out, MemorySegment inp, MemorySegment weight,
                        MemorySegment bias, int N, int C, int OC) {
        int blocks = (OC + OC_BLOCK - 1) / OC_BLOCK;
        par.forRange(blocks, 1, (b0, b1) -> {
            for (long blk = b0; blk < b1; blk++) {
                int o0 = (int) blk * OC_BLOCK, o1 = Math.min(OC, o0 + OC_BLOCK);
                int n = 0;
                for (; n + ROW_TILE <= N; n += ROW_TILE) {
                    for (int o = o0; o < o1; o++) dot4(out, inp, weight, bias, n, o, C, OC);
                }
                for (; n < N; n++) {
                    for (int o = o0; o < o1; o++) {
                        float b = bias == null ? 0f : get(bias, o);
                        set(out, (long) n * OC + o, b + F32.dot(inp, (long) n * C, weight, (long) o * C, C));
                    }
                }
            }
        });
    }

    /** Four rows n..n+3 times weight row o. */
    private static void dot4(MemorySegment out, MemorySegment inp, MemorySegment weight, MemorySegment bias,
                             int n, int o, int C, int OC) {
        long w = (long) o * C, i0 = (long) n * C, i1 = i0 + C, i2 = i1 + C, i3 = i2 + C;
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int c = 0, bound = S.loopBound(C);
        for (; c < bound; c += S.length()) {
            FloatVector wv = load(weight, w + c);
            a0 = load(inp, i0 + c).fma(wv, a0);
            a1 = load(inp, i1 + c).fma(wv, a1);
            a2 = load(inp, i2 + c).fma(wv, a2);
            a3 = load(inp, i3 + c).fma(wv, a3);
        }
        float s0 = F32.sum(a0), s1 = F32.sum(a1), s2 = F32.sum(a2), s3 = F32.sum(a3);
        for (; c < C; c++) {
            float wc = get(weight, w + c);
            s0 += get(inp, i0 + c) * wc;
            s1 += get(inp, i1 + c) * wc;
            s2 += get(inp, i2 + c) * wc;
            s3 += get(inp, i3 + c) * wc;
        }
        float b = bias == null ? 0f : get(bias, o);
        set(out, (long) n * OC + o, s0 + b);
        set(out, (long) (n + 1) * OC + o, s1 + b);
        set(out, (long) (n + 2) * OC + o, s2 + b);
        set(out, (long) (n + 3) * OC + o, s3 + b);
    }

    /** dinp (N,C) = dout @ weight; dweight (OC,C) += dout^T @ inp; dbias (OC) += column sums of dout. */
    static void backward(Parallel par, MemorySegment dinp, MemorySegment dweight, MemorySegment dbias,
                         MemorySegment dout, MemorySegment inp, MemorySegment weight, int N, int C, int OC) {
        // dinp: threads own rows; weight blocks stay in cache across the rows of a thread
        par.forRange(N, 1, (n0, n1) -> {
            for (long n = n0; n < n1; n++) {
                for (int c = 0; c < C; c++) set(dinp, n * C + c, 0f);
            }
            for (int o0 = 0; o0 < OC; o0 += OC_BLOCK) {
                int o1 = Math.min(OC, o0 + OC_BLOCK);
                for (long n = n0; n < n1; n++) {
                    for (int o = o0; o < o1; o++) {
                        F32.axpy(get(dout, n * OC + o), weight, (long) o * C, dinp, n * C, C);
                    }
                }
            }
        });
        // dweight, dbias: threads own output channels; each input row is loaded once per 4 channels
        int groups = (OC + 3) / 4;
        par.forRange(groups, 1, (g0, g1) -> {
            for (long g = g0; g < g1; g++) {
                int o0 = (int) g * 4, o1 = Math.min(OC, o0 + 4);
                for (long n = 0; n < N; n++) {
                    for (int o = o0; o < o1; o++) {
                        float d = get(dout, n * OC + o);
                        if (d != 0f) F32.axpy(d, inp, n * C, dweight, (long) o * C, C);
                    }
                }
                if (dbias != null) {
                    for (int o = o0; o < o1; o++) {
                        float sum = 0;
                        for (long n = 0; n < N; n++) sum += get(dout, n * OC + o);
                        set(dbias, o, get(dbias, o) + sum);
                    }
                }
            }
        });
    }
}
