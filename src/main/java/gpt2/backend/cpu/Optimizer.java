package gpt2.backend.cpu;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/** AdamW's update and the sum of squares behind the global gradient norm. */
final class Optimizer {
    private Optimizer() {
    }

    /** Elements per partial sum: fixed, so the norm does not depend on the thread count. */
    private static final long SUM_CHUNK = 1 << 16;

    static void adamw(Parallel par, MemorySegment params, MemorySegment grads, MemorySegment m, MemorySegment v,
                      long n, float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale,
                      int t) {
        float bc1 = 1f - (float) Math.pow(beta1, t);
        float bc2 = 1f - (float) Math.pow(beta2, t);
        par.forRange(n, 4096, (s, e) -> {
            for (long i = s; i < e; i++) {
                float g = get(grads, i) * gradScale;
                float mi = beta1 * get(m, i) + (1f - beta1) * g;
                float vi = beta2 * get(v, i) + (1f - beta2) * g * g;
                float mHat = mi / bc1;
                float vHat = vi / bc2;
                float p = get(params, i);
                set(m, i, mi);
                set(v, i, vi);
                set(params, i, p - lr * (mHat / ((float) Math.sqrt(vHat) + eps) + weightDecay * p));
            }
        });
    }

    static double sumOfSquares(Parallel par, MemorySegment x, long n) {
        int chunks = (int) ((n + SUM_CHUNK - 1) / SUM_CHUNK);
        double[] partial = new double[chunks];
        par.forRange(chunks, 1, (c0, c1) -> {
            for (long c = c0; c < c1; c++) {
                long s = c * SUM_CHUNK, e = Math.min(n, s + SUM_CHUNK);
                double sum = 0;
                for (long i = s; i < e; i++) {
                    double g = get(x, i);
                    sum += g * g;
                }
                partial[(int) c] = sum;
            }
        });
        double total = 0;
        for (double p : partial) total += p;
        return total;
    }
}
