package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Element access and the vectorized inner loops (one species, chosen once). */
final class F32 {
    private F32() {
    }

    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /**
     * Butterfly shuffles (lane i with lane i ^ k, k = L/2 ... 1) for {@link #sum}. reduceLanes(ADD)
     * is not used: its order is unspecified, and HotSpot's compiled code and its interpreter
     * fallback add in different orders, so the same op would give different bits before and
     * after JIT compilation, and a resumed run would drift from an uninterrupted one.
     */
    private static final VectorShuffle<Float>[] BUTTERFLY = butterflies();

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] butterflies() {
        int L = S.length();
        int steps = Integer.numberOfTrailingZeros(L);
        VectorShuffle<Float>[] out = new VectorShuffle[steps];
        for (int s = 0, k = L / 2; k >= 1; s++, k /= 2) {
            int kk = k;
            out[s] = VectorShuffle.fromOp(S, i -> i ^ kk);
        }
        return out;
    }

    /** Sum of the lanes in a fixed order, the same in every JIT tier. */
    static float sum(FloatVector v) {
        for (VectorShuffle<Float> sh : BUTTERFLY) v = v.add(v.rearrange(sh));
        return v.lane(0);
    }

    static float get(MemorySegment s, long i) {
        return s.getAtIndex(FLOAT, i);
    }

    static void set(MemorySegment s, long i, float v) {
        s.setAtIndex(FLOAT, i, v);
    }

    static void add(MemorySegment s, long i, float v) {
        s.setAtIndex(FLOAT, i, s.getAtIndex(FLOAT, i) + v);
    }

    static int getInt(MemorySegment s, long i) {
        return s.getAtIndex(INT, i);
    }

    static FloatVector load(MemorySegment s, long i) {
        return FloatVector.fromMemorySegment(S, s, i * 4, ORDER);
    }

    static void store(FloatVector v, MemorySegment s, long i) {
        v.intoMemorySegment(s, i * 4, ORDER);
    }

    /** sum_k a[ai + k] * b[bi + k] for k < n. */
    static float dot(MemorySegment a, long ai, MemorySegment b, long bi, int n) {
        FloatVector acc = FloatVector.zero(S);
        int k = 0, bound = S.loopBound(n);
        for (; k < bound; k += S.length()) {
            acc = load(a, ai + k).fma(load(b, bi + k), acc);
        }
        float sum = sum(acc);
        for (; k < n; k++) sum += get(a, ai + k) * get(b, bi + k);
        return sum;
    }

    /** y[yi + k] += alpha * x[xi + k] for k < n. */
    static void axpy(float alpha, MemorySegment x, long xi, MemorySegment y, long yi, int n) {
        FloatVector va = FloatVector.broadcast(S, alpha);
        int k = 0, bound = S.loopBound(n);
        for (; k < bound; k += S.length()) {
            store(load(x, xi + k).fma(va, load(y, yi + k)), y, yi + k);
        }
        for (; k < n; k++) set(y, yi + k, get(y, yi + k) + alpha * get(x, xi + k));
    }

    /** Lane-wise sums of n floats from index i (n a multiple of 4 lanes), four independent accumulators. */
    static FloatVector sumRange(MemorySegment s, long i, long n) {
        int L = S.length();
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        for (long k = i, end = i + n; k < end; k += 4L * L) {
            a0 = a0.add(load(s, k));
            a1 = a1.add(load(s, k + L));
            a2 = a2.add(load(s, k + 2L * L));
            a3 = a3.add(load(s, k + 3L * L));
        }
        return a0.add(a1).add(a2.add(a3));
    }

    /** The sum of n floats from index i: whole vectors as lanes, the lanes in a fixed order, then the tail. */
    static float sumRow(MemorySegment s, long i, int n) {
        FloatVector acc = FloatVector.zero(S);
        int k = 0;
        for (int bound = S.loopBound(n); k < bound; k += S.length()) acc = acc.add(load(s, i + k));
        float sum = sum(acc);
        for (; k < n; k++) sum += get(s, i + k);
        return sum;
    }

    /** out[i + k] = a[i + k] + b[i + k] for k < n. */
    static void add(MemorySegment a, MemorySegment b, MemorySegment out, long i, int n) {
        int k = 0;
        for (int bound = S.loopBound(n); k < bound; k += S.length()) store(load(a, i + k).add(load(b, i + k)), out, i + k);
        for (; k < n; k++) set(out, i + k, get(a, i + k) + get(b, i + k));
    }
}
