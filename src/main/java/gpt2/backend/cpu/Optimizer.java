package gpt2.backend.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/** AdamW's update, Muon's momentum, axpy, and the sum of squares behind the global gradient norm. */
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
        par.forBlocks(n, 4096, (s, e) -> adamw(params, grads, m, v, s, e, lr, beta1, beta2, eps, weightDecay, gradScale,
                bc1, bc2));
    }

    /** One block of AdamW (see {@link Parallel#forBlocks} on why blocks). */
    private static void adamw(MemorySegment params, MemorySegment grads, MemorySegment m, MemorySegment v, long s, long e,
                              float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale, float bc1,
                              float bc2) {
        int n = (int) (e - s), k = 0, L = F32.S.length();
        // vectorized with the same operations in the same order as the scalar tail, so every
        // element gets the same bits either way (and in every JIT tier: no reductions, no FMA)
        FloatVector vb1 = FloatVector.broadcast(F32.S, beta1), vb2 = FloatVector.broadcast(F32.S, beta2);
        FloatVector v1b1 = FloatVector.broadcast(F32.S, 1f - beta1), v1b2 = FloatVector.broadcast(F32.S, 1f - beta2);
        FloatVector vs = FloatVector.broadcast(F32.S, gradScale), vbc1 = FloatVector.broadcast(F32.S, bc1);
        FloatVector vbc2 = FloatVector.broadcast(F32.S, bc2), veps = FloatVector.broadcast(F32.S, eps);
        FloatVector vlr = FloatVector.broadcast(F32.S, lr), vwd = FloatVector.broadcast(F32.S, weightDecay);
        for (int bound = n / L * L; k < bound; k += L) { // int-counted: the JIT's fast loop form
            long i = s + k;
            FloatVector g = F32.load(grads, i).mul(vs);
            FloatVector mi = vb1.mul(F32.load(m, i)).add(v1b1.mul(g));
            FloatVector vi = vb2.mul(F32.load(v, i)).add(v1b2.mul(g).mul(g));
            FloatVector mHat = mi.div(vbc1), vHat = vi.div(vbc2);
            FloatVector p = F32.load(params, i);
            F32.store(mi, m, i);
            F32.store(vi, v, i);
            FloatVector upd = mHat.div(vHat.lanewise(VectorOperators.SQRT).add(veps)).add(vwd.mul(p));
            F32.store(p.sub(vlr.mul(upd)), params, i);
        }
        for (long i = s + k; i < e; i++) {
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
    }

    /** buf = mu buf + (1 - mu) g, then grads = (1 - mu) g + mu buf, with g = grads * gradScale. */
    static void muonMomentum(Parallel par, MemorySegment grads, MemorySegment buf, long n, float mu, float gradScale) {
        par.forBlocks(n, 4096, (s, e) -> {
            for (long i = s; i < e; i++) {
                float g = get(grads, i) * gradScale;
                float b = mu * get(buf, i) + (1f - mu) * g;
                set(buf, i, b);
                set(grads, i, (1f - mu) * g + mu * b);
            }
        });
    }

    /** y += alpha x. */
    static void axpy(Parallel par, MemorySegment y, MemorySegment x, float alpha, long n) {
        par.forBlocks(n, 4096, (s, e) -> {
            for (long i = s; i < e; i++) set(y, i, get(y, i) + alpha * get(x, i));
        });
    }

    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;

    /**
     * Sum of x[i]^2 over [s, e) in double: each float vector widened to two double vectors, their
     * squares (exact in double) added lane-wise, the lanes in a fixed order; the rest one by one.
     */
    private static double sumSquares(MemorySegment x, long s, long e) {
        int L = F32.S.length();
        if (D.length() * 2 != L) return sumSquaresScalar(x, s, e);
        DoubleVector a0 = DoubleVector.zero(D), a1 = a0;
        int n = (int) (e - s), k = 0;
        for (int bound = n / L * L; k < bound; k += L) {
            FloatVector v = F32.load(x, s + k);
            DoubleVector lo = (DoubleVector) v.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector hi = (DoubleVector) v.convertShape(VectorOperators.F2D, D, 1);
            a0 = lo.fma(lo, a0);
            a1 = hi.fma(hi, a1);
        }
        double[] lanes = a0.add(a1).toArray();
        double sum = 0;
        for (double l : lanes) sum += l;
        return sum + sumSquaresScalar(x, s + k, e);
    }

    private static double sumSquaresScalar(MemorySegment x, long s, long e) {
        double sum = 0;
        for (long i = s; i < e; i++) {
            double g = get(x, i);
            sum += g * g;
        }
        return sum;
    }

    static double sumOfSquares(Parallel par, MemorySegment x, long n) {
        int chunks = (int) ((n + SUM_CHUNK - 1) / SUM_CHUNK);
        double[] partial = new double[chunks];
        par.forRange(chunks, 1, (c0, c1) -> {
            for (long c = c0; c < c1; c++) {
                long s = c * SUM_CHUNK, e = Math.min(n, s + SUM_CHUNK);
                partial[(int) c] = sumSquares(x, s, e);
            }
        });
        double total = 0;
        for (double p : partial) total += p;
        return total;
    }
}
