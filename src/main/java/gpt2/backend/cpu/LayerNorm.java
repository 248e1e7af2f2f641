package gpt2.backend.cpu;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/** LayerNorm over the last dimension, and RMSNorm with scale (1 + w) or none (weight null). */
final class LayerNorm {
    private LayerNorm() {
    }

    /** out (N,C) = (inp - mean) * rstd * weight + bias; mean (N), rstd (N) saved. bias may be null. */
    static void forward(Parallel par, MemorySegment out, MemorySegment mean, MemorySegment rstd, MemorySegment inp,
                        MemorySegment weight, MemorySegment bias, int N, int C, float eps) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) {
                long row = n * C;
                double sum = 0;
                for (int c = 0; c < C; c++) sum += get(inp, row + c);
                float m = (float) (sum / C);
                double var = 0;
                for (int c = 0; c < C; c++) {
                    float d = get(inp, row + c) - m;
                    var += d * d;
                }
                float r = (float) (1.0 / Math.sqrt(var / C + eps));
                for (int c = 0; c < C; c++) {
                    float norm = (get(inp, row + c) - m) * r;
                    float b = bias == null ? 0f : get(bias, c);
                    set(out, row + c, norm * get(weight, c) + b);
                }
                set(mean, n, m);
                set(rstd, n, r);
            }
        });
    }

    /** dinp (N,C) +=, dweight (C) +=, dbias (C) += (bias may be null). */
    static void backward(Parallel par, MemorySegment dinp, MemorySegment dweight, MemorySegment dbias,
                         MemorySegment dout, MemorySegment inp, MemorySegment weight, MemorySegment mean,
                         MemorySegment rstd, int N, int C) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) {
                long row = n * C;
                float m = get(mean, n), r = get(rstd, n);
                // the two reductions of the chain rule through mean and variance
                float dnormMean = 0, dnormNormMean = 0;
                for (int c = 0; c < C; c++) {
                    float norm = (get(inp, row + c) - m) * r;
                    float dnorm = get(weight, c) * get(dout, row + c);
                    dnormMean += dnorm;
                    dnormNormMean += dnorm * norm;
                }
                dnormMean /= C;
                dnormNormMean /= C;
                for (int c = 0; c < C; c++) {
                    float norm = (get(inp, row + c) - m) * r;
                    float dnorm = get(weight, c) * get(dout, row + c);
                    float d = (dnorm - dnormMean - norm * dnormNormMean) * r;
                    set(dinp, row + c, get(dinp, row + c) + d);
                }
            }
        });
        // parameter gradients: threads own channel ranges so the sums over rows are repeatable
        par.forRange(C, 8, (c0, c1) -> {
            for (long n = 0; n < N; n++) {
                long row = n * C;
                float m = get(mean, n), r = get(rstd, n);
                for (long c = c0; c < c1; c++) {
                    float d = get(dout, row + c);
                    float norm = (get(inp, row + c) - m) * r;
                    set(dweight, c, get(dweight, c) + norm * d);
                    if (dbias != null) set(dbias, c, get(dbias, c) + d);
                }
            }
        });
    }

    /** out (N,C) = inp * rstd * (1 + weight), rstd = 1/sqrt(mean(inp^2) + eps) saved (N). */
    static void rmsForward(Parallel par, MemorySegment out, MemorySegment rstd, MemorySegment inp,
                           MemorySegment weight, int N, int C, float eps) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) {
                long row = n * C;
                double ss = 0;
                for (int c = 0; c < C; c++) {
                    float x = get(inp, row + c);
                    ss += x * x;
                }
                float r = (float) (1.0 / Math.sqrt(ss / C + eps));
                for (int c = 0; c < C; c++) {
                    set(out, row + c, get(inp, row + c) * r * (weight == null ? 1f : 1f + get(weight, c)));
                }
                set(rstd, n, r);
            }
        });
    }

    /**
     * dinp (N,C) +=, dweight (C) +=. With dn = (1+w) * dout:
     * dinp = rstd * (dn - x * rstd^2 * mean(dn * x)).
     */
    static void rmsBackward(Parallel par, MemorySegment dinp, MemorySegment dweight, MemorySegment dout,
                            MemorySegment inp, MemorySegment weight, MemorySegment rstd, int N, int C) {
        par.forRange(N, 4, (s, e) -> {
            for (long n = s; n < e; n++) {
                long row = n * C;
                float r = get(rstd, n);
                float dot = 0;
                for (int c = 0; c < C; c++) {
                    dot += (weight == null ? 1f : 1f + get(weight, c)) * get(dout, row + c) * get(inp, row + c);
                }
                float k = r * r * dot / C;
                for (int c = 0; c < C; c++) {
                    float dn = (weight == null ? 1f : 1f + get(weight, c)) * get(dout, row + c);
                    float d = r * (dn - get(inp, row + c) * k);
                    set(dinp, row + c, get(dinp, row + c) + d);
                }
            }
        });
        if (dweight == null) return; // parameter-free
        par.forRange(C, 8, (c0, c1) -> {
            for (long n = 0; n < N; n++) {
                long row = n * C;
                float r = get(rstd, n);
                for (long c = c0; c < c1; c++) {
                    set(dweight, c, get(dweight, c) + get(inp, row + c) * r * get(dout, row + c));
                }
            }
        });
    }
}
