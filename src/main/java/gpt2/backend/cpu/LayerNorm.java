package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.S;
import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.load;
import static gpt2.backend.cpu.F32.set;
import static gpt2.backend.cpu.F32.store;

/**
 * LayerNorm over the last dimension, and RMSNorm with scale (1 + w) or none (weight null). Rows are
 * split over threads for the activations, channels for the parameter gradients (so their sums over
 * rows are repeatable); each row's reductions add float lanes, then the lanes in a fixed order.
 * Vector lanes and scalar tails do the same operations per element.
 */
final class LayerNorm {
    private LayerNorm() {
    }

    private static final int L = S.length();

    /** out (N,C) = (inp - mean) * rstd * weight + bias; mean (N), rstd (N) saved. bias may be null. */
    static void forward(Parallel par, MemorySegment out, MemorySegment mean, MemorySegment rstd, MemorySegment inp,
                        MemorySegment weight, MemorySegment bias, int N, int C, float eps) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) forwardRow(out, mean, rstd, inp, weight, bias, n, C, eps);
        });
    }

    private static void forwardRow(MemorySegment out, MemorySegment mean, MemorySegment rstd, MemorySegment inp,
                                   MemorySegment weight, MemorySegment bias, long n, int C, float eps) {
        long row = n * C;
        float m = F32.sumRow(inp, row, C) / C;
        float r = (float) (1.0 / Math.sqrt(squaredDeviations(inp, row, C, m) / C + eps));
        int c = 0;
        for (int bound = S.loopBound(C); c < bound; c += L) {
            FloatVector norm = load(inp, row + c).sub(m).mul(r);
            FloatVector y = norm.mul(load(weight, c));
            store(bias == null ? y : y.add(load(bias, c)), out, row + c);
        }
        for (; c < C; c++) {
            float norm = (get(inp, row + c) - m) * r;
            float y = norm * get(weight, c);
            set(out, row + c, bias == null ? y : y + get(bias, c));
        }
        set(mean, n, m);
        set(rstd, n, r);
    }

    /**
     * The residual add fused with the next LayerNorm (RMSNorm when mean is null): each row of
     * res = a + b is normalized while it is in cache.
     */
    static void residualForward(Parallel par, MemorySegment res, MemorySegment out, MemorySegment mean, MemorySegment rstd,
                                MemorySegment a, MemorySegment b, MemorySegment weight, MemorySegment bias, int N, int C,
                                float eps) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) {
                F32.add(a, b, res, n * C, C);
                if (mean != null) forwardRow(out, mean, rstd, res, weight, bias, n, C, eps);
                else rmsForwardRow(out, rstd, res, weight, n, C, eps);
            }
        });
    }

    /** The sum of (x - m)^2 over a row. */
    private static float squaredDeviations(MemorySegment x, long row, int C, float m) {
        FloatVector acc = FloatVector.zero(S);
        int c = 0;
        for (int bound = S.loopBound(C); c < bound; c += L) {
            FloatVector d = load(x, row + c).sub(m);
            acc = d.fma(d, acc);
        }
        float sum = F32.sum(acc);
        for (; c < C; c++) {
            float d = get(x, row + c) - m;
            sum += d * d;
        }
        return sum;
    }

    /** dinp (N,C) +=, dweight (C) +=, dbias (C) += (bias may be null). */
    static void backward(Parallel par, MemorySegment dinp, MemorySegment dweight, MemorySegment dbias,
                         MemorySegment dout, MemorySegment inp, MemorySegment weight, MemorySegment mean,
                         MemorySegment rstd, int N, int C) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) backwardRow(dinp, dout, inp, weight, get(mean, n), get(rstd, n), n * C, C);
        });
        // parameter gradients: threads own channel ranges so the sums over rows are repeatable
        par.forRange(C, 8, (c0, c1) -> {
            for (long n = 0; n < N; n++) {
                parameterRow(dweight, dbias, dout, inp, get(mean, n), get(rstd, n), n * C, (int) c0, (int) c1);
            }
        });
    }

    /** One row of dinp: the chain rule through the mean and the variance. */
    private static void backwardRow(MemorySegment dinp, MemorySegment dout, MemorySegment inp, MemorySegment weight,
                                    float m, float r, long row, int C) {
        // the two reductions: mean(dnorm), mean(dnorm * norm)
        FloatVector a = FloatVector.zero(S), b = a;
        int c = 0, bound = S.loopBound(C);
        for (; c < bound; c += L) {
            FloatVector norm = load(inp, row + c).sub(m).mul(r);
            FloatVector dnorm = load(weight, c).mul(load(dout, row + c));
            a = a.add(dnorm);
            b = dnorm.fma(norm, b);
        }
        float dnormMean = F32.sum(a), dnormNormMean = F32.sum(b);
        for (; c < C; c++) {
            float norm = (get(inp, row + c) - m) * r;
            float dnorm = get(weight, c) * get(dout, row + c);
            dnormMean += dnorm;
            dnormNormMean += dnorm * norm;
        }
        dnormMean /= C;
        dnormNormMean /= C;
        for (c = 0; c < bound; c += L) {
            FloatVector norm = load(inp, row + c).sub(m).mul(r);
            FloatVector dnorm = load(weight, c).mul(load(dout, row + c));
            FloatVector d = dnorm.sub(dnormMean).sub(norm.mul(dnormNormMean)).mul(r);
            store(load(dinp, row + c).add(d), dinp, row + c);
        }
        for (; c < C; c++) {
            float norm = (get(inp, row + c) - m) * r;
            float dnorm = get(weight, c) * get(dout, row + c);
            float d = (dnorm - dnormMean - norm * dnormNormMean) * r;
            set(dinp, row + c, get(dinp, row + c) + d);
        }
    }

    /** One row's share of dweight (and dbias) over channels [c0, c1). */
    private static void parameterRow(MemorySegment dweight, MemorySegment dbias, MemorySegment dout, MemorySegment inp,
                                     float m, float r, long row, int c0, int c1) {
        int c = c0;
        for (int bound = c0 + (c1 - c0) / L * L; c < bound; c += L) {
            FloatVector d = load(dout, row + c);
            FloatVector norm = load(inp, row + c).sub(m).mul(r);
            store(load(dweight, c).add(norm.mul(d)), dweight, c);
            if (dbias != null) store(load(dbias, c).add(d), dbias, c);
        }
        for (; c < c1; c++) {
            float d = get(dout, row + c);
            float norm = (get(inp, row + c) - m) * r;
            set(dweight, c, get(dweight, c) + norm * d);
            if (dbias != null) set(dbias, c, get(dbias, c) + d);
        }
    }

    /** out (N,C) = inp * rstd * (1 + weight), rstd = 1/sqrt(mean(inp^2) + eps) saved (N). */
    static void rmsForward(Parallel par, MemorySegment out, MemorySegment rstd, MemorySegment inp,
                           MemorySegment weight, int N, int C, float eps) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) rmsForwardRow(out, rstd, inp, weight, n, C, eps);
        });
    }

    private static void rmsForwardRow(MemorySegment out, MemorySegment rstd, MemorySegment inp, MemorySegment weight,
                                      long n, int C, float eps) {
        long row = n * C;
        float r = (float) (1.0 / Math.sqrt(squaredDeviations(inp, row, C, 0f) / C + eps));
        int c = 0;
        for (int bound = S.loopBound(C); c < bound; c += L) {
            FloatVector y = load(inp, row + c).mul(r);
            store(weight == null ? y : y.mul(load(weight, c).add(1f)), out, row + c);
        }
        for (; c < C; c++) {
            float y = get(inp, row + c) * r;
            set(out, row + c, weight == null ? y : y * (get(weight, c) + 1f));
        }
        set(rstd, n, r);
    }

    /**
     * dinp (N,C) +=, dweight (C) +=. With dn = (1+w) * dout:
     * dinp = rstd * (dn - x * rstd^2 * mean(dn * x)).
     */
    static void rmsBackward(Parallel par, MemorySegment dinp, MemorySegment dweight, MemorySegment dout,
                            MemorySegment inp, MemorySegment weight, MemorySegment rstd, int N, int C) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) rmsBackwardRow(dinp, dout, inp, weight, get(rstd, n), n * C, C);
        });
        if (dweight == null) return; // parameter-free
        par.forRange(C, 8, (c0, c1) -> {
            for (long n = 0; n < N; n++) rmsParameterRow(dweight, dout, inp, get(rstd, n), n * C, (int) c0, (int) c1);
        });
    }

    private static void rmsBackwardRow(MemorySegment dinp, MemorySegment dout, MemorySegment inp, MemorySegment weight,
                                       float r, long row, int C) {
        FloatVector acc = FloatVector.zero(S);
        int c = 0, bound = S.loopBound(C);
        for (; c < bound; c += L) {
            FloatVector dn = weight == null ? load(dout, row + c) : load(weight, c).add(1f).mul(load(dout, row + c));
            acc = dn.fma(load(inp, row + c), acc);
        }
        float dot = F32.sum(acc);
        for (; c < C; c++) dot += (weight == null ? 1f : get(weight, c) + 1f) * get(dout, row + c) * get(inp, row + c);
        float k = r * r * dot / C;
        for (c = 0; c < bound; c += L) {
            FloatVector dn = weight == null ? load(dout, row + c) : load(weight, c).add(1f).mul(load(dout, row + c));
            FloatVector d = dn.sub(load(inp, row + c).mul(k)).mul(r);
            store(load(dinp, row + c).add(d), dinp, row + c);
        }
        for (; c < C; c++) {
            float dn = (weight == null ? 1f : get(weight, c) + 1f) * get(dout, row + c);
            float d = (dn - get(inp, row + c) * k) * r;
            set(dinp, row + c, get(dinp, row + c) + d);
        }
    }

    private static void rmsParameterRow(MemorySegment dweight, MemorySegment dout, MemorySegment inp, float r, long row,
                                        int c0, int c1) {
        int c = c0;
        for (int bound = c0 + (c1 - c0) / L * L; c < bound; c += L) {
            store(load(dweight, c).add(load(inp, row + c).mul(r).mul(load(dout, row + c))), dweight, c);
        }
        for (; c < c1; c++) set(dweight, c, get(dweight, c) + get(inp, row + c) * r * get(dout, row + c));
    }
}
