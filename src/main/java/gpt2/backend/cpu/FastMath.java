package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * float exp from adds and multiplies only (Cephes' expf: range reduction by ln 2 and a
 * degree-6 polynomial, about 1 ulp), in a vector and a scalar form that compute the same bits.
 * Math.exp is a double-precision library call; the Vector API's EXP is a native library whose
 * bits differ from its own Java fallback, so neither would be both fast and the same in every JIT
 * tier.
 */
final class FastMath {
    private FastMath() {
    }

    private static final float LOG2E = 1.44269504088896341f, C1 = 0.693359375f, C2 = -2.12194440e-4f;
    private static final float MAGIC = 12582912f; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    private static final float LO = -87.3f, HI = 88.0f; // 2^n must stay a finite normal float: n in [-126, 127]
    private static final float P0 = 1.9875691500E-4f, P1 = 1.3981999507E-3f, P2 = 8.3334519073E-3f,
            P3 = 4.1665795894E-2f, P4 = 1.6666665459E-1f, P5 = 5.0000001201E-1f;

    static float exp(float x) {
        x = Math.min(Math.max(x, LO), HI);
        float n = (x * LOG2E + MAGIC) - MAGIC;
        float r = x - n * C1;
        r = r - n * C2;
        float p = P0;
        p = p * r + P1;
        p = p * r + P2;
        p = p * r + P3;
        p = p * r + P4;
        p = p * r + P5;
        float y = p * (r * r) + r + 1f;
        return y * Float.intBitsToFloat(((int) n + 127) << 23);
    }

    private static final int MAGIC_BITS = Float.floatToRawIntBits(MAGIC);

    /** The constants as vectors, broadcast once: an operation with a float argument broadcasts it
     * each time, and those extra nodes in the JIT's graph were enough to stop it inlining the rest of
     * a kernel that calls exp (the softcap's vector loop then boxed a vector per iteration, 2x slower). */
    private static final FloatVector V_LO = FloatVector.broadcast(F32.S, LO), V_HI = FloatVector.broadcast(F32.S, HI),
            V_LOG2E = FloatVector.broadcast(F32.S, LOG2E), V_MAGIC = FloatVector.broadcast(F32.S, MAGIC),
            V_C1 = FloatVector.broadcast(F32.S, C1), V_C2 = FloatVector.broadcast(F32.S, C2),
            V_P0 = FloatVector.broadcast(F32.S, P0), V_P1 = FloatVector.broadcast(F32.S, P1),
            V_P2 = FloatVector.broadcast(F32.S, P2), V_P3 = FloatVector.broadcast(F32.S, P3),
            V_P4 = FloatVector.broadcast(F32.S, P4), V_P5 = FloatVector.broadcast(F32.S, P5),
            V_ONE = FloatVector.broadcast(F32.S, 1f);
    private static final IntVector V_BIAS = (IntVector) FloatVector.zero(F32.S).reinterpretAsInts()
            .lanewise(VectorOperators.ADD, MAGIC_BITS - 127);

    /**
     * The same bits as {@link #exp(float)}: the clamp as compare-and-blend (NaN passes through, as
     * Math.max/min let it), and n read from the bits of x log2(e) + MAGIC (an integer in the low
     * mantissa bits) rather than by a float-to-int conversion, which the JIT expands into a long
     * sequence for Java's rounding rules.
     */
    static FloatVector exp(FloatVector x) {
        x = x.blend(V_LO, x.lt(V_LO));
        x = x.blend(V_HI, x.compare(VectorOperators.GT, V_HI));
        return expClamped(x);
    }

    /** As {@link #exp(FloatVector)} for x already in [LO, 0] (no upper clamp: the same bits there). */
    static FloatVector expNonPositive(FloatVector x) {
        return expClamped(x.blend(V_LO, x.lt(V_LO)));
    }

    private static FloatVector expClamped(FloatVector x) {
        FloatVector t = x.mul(V_LOG2E).add(V_MAGIC);
        FloatVector n = t.sub(V_MAGIC);
        FloatVector r = x.sub(n.mul(V_C1));
        r = r.sub(n.mul(V_C2));
        FloatVector p = V_P0;
        p = p.mul(r).add(V_P1);
        p = p.mul(r).add(V_P2);
        p = p.mul(r).add(V_P3);
        p = p.mul(r).add(V_P4);
        p = p.mul(r).add(V_P5);
        FloatVector y = p.mul(r.mul(r)).add(r).add(V_ONE);
        IntVector bits = ((IntVector) t.reinterpretAsInts()).sub(V_BIAS).lanewise(VectorOperators.LSHL, 23);
        return y.mul(bits.reinterpretAsFloats());
    }
}
