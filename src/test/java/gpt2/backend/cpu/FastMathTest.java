package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FastMathTest {

    /** Against double-precision Math.exp over the whole range that softmax and GELU use. */
    @Test
    void expIsAccurateToAFewUlps() {
        double worst = 0;
        for (float x = -87f; x <= 87.9f; x += 0.0137f) {
            double want = Math.exp(x);
            double rel = Math.abs(FastMath.exp(x) - want) / want;
            worst = Math.max(worst, rel);
        }
        assertTrue(worst < 3e-7, "max relative error " + worst); // 2.5 float ulps at most
        assertEquals(1f, FastMath.exp(0f));
        assertTrue(FastMath.exp(-1000f) > 0 && FastMath.exp(-1000f) < 1.3e-38f, "saturates low, no zero or NaN");
        assertTrue(Float.isFinite(FastMath.exp(1000f)), "saturates high at a finite value");
    }

    @Test
    void vectorLanesEqualTheScalarForm() {
        int L = F32.S.length();
        float[] xs = new float[L * 51];
        for (int i = 0; i < L * 50; i++) xs[i] = (i - L * 25) * 0.37f;
        // the edges: the clamps, infinities, NaN, signed zeros (the last L lanes, the rest of them 0)
        float[] edges = {Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, -0f, 0f, -87.3f, -87.30001f, 88f,
                88.00001f, -1e30f, 1e30f, Float.MIN_VALUE, -126.5f, 127.5f};
        System.arraycopy(edges, 0, xs, L * 50, Math.min(L, edges.length));
        for (int i = 0; i < xs.length; i += L) {
            float[] out = new float[L], nonPositive = new float[L];
            FloatVector x = FloatVector.fromArray(F32.S, xs, i);
            FastMath.exp(x).intoArray(out, 0);
            FastMath.expNonPositive(x).intoArray(nonPositive, 0);
            for (int j = 0; j < L; j++) {
                int want = Float.floatToIntBits(FastMath.exp(xs[i + j]));
                assertEquals(want, Float.floatToIntBits(out[j]), "x = " + xs[i + j]);
                // the form without the upper clamp: the same bits wherever its argument is <= 0 (or NaN)
                if (!(xs[i + j] > 0)) assertEquals(want, Float.floatToIntBits(nonPositive[j]), "non-positive x = " + xs[i + j]);
            }
        }
    }
}
