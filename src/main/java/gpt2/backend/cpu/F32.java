package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
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
        float sum = acc.reduceLanes(VectorOperators.ADD);
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
}
