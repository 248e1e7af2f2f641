package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;

import java.util.Arrays;
import java.util.Random;
import java.util.function.DoubleSupplier;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Shared helpers of the op tests: random data, buffer upload/download, central finite
 * differences on double-precision references, and element-wise comparisons whose failure message
 * names the op, the tensor and the index.
 *
 * <p>Every op test follows one pattern: a plain double-precision reference of the forward pass is
 * written in the test; its gradient of L = sum(dout * out) is taken by central differences
 * ({@link #numericGrad}) and compared with the backend's float32 backward pass.
 */
public final class OpTestSupport {
    private OpTestSupport() {
    }

    /** Step of the central differences; the references are double, so rounding stays ~1e-9. */
    static final double H = 1e-6;

    // ------------------------------------------------------------------ data

    static float[] randn(Random r, int n, double std) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextGaussian() * std);
        return x;
    }

    static float[] uniform(Random r, int n, double lo, double hi) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return x;
    }

    static float[] filled(int n, float value) {
        float[] x = new float[n];
        Arrays.fill(x, value);
        return x;
    }

    public static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) d[i] = x[i];
        return d;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    static double[] plus(float[] a, double[] b) {
        double[] s = new double[a.length];
        for (int i = 0; i < a.length; i++) s[i] = a[i] + b[i];
        return s;
    }

    // ------------------------------------------------------------------ buffers

    static Buffer upload(Backend be, float[] x, String what) {
        Buffer b = be.allocate(DType.F32, x.length, what);
        be.write(b, x);
        return b;
    }

    static Buffer upload(Backend be, int[] x, String what) {
        Buffer b = be.allocate(DType.I32, x.length, what);
        be.write(b, x);
        return b;
    }

    static float[] download(Backend be, Buffer b) {
        float[] x = new float[(int) b.length()];
        be.read(b, x);
        return x;
    }

    // ------------------------------------------------------------------ finite differences

    /**
     * dL/dx by central differences: each element of {@code x} is moved by +-h in place and
     * {@code loss} (which reads x) re-evaluated; x is restored afterwards.
     */
    static double[] numericGrad(double[] x, DoubleSupplier loss) {
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double old = x[i];
            x[i] = old + H;
            double lp = loss.getAsDouble();
            x[i] = old - H;
            double lm = loss.getAsDouble();
            x[i] = old;
            g[i] = (lp - lm) / (2 * H);
        }
        return g;
    }

    // ------------------------------------------------------------------ comparisons

    /**
     * |actual - expected| <= rtol * |expected| + atol * scale at every index, where scale is the
     * largest |expected| of the tensor (1 if it is all zeros): float32 sums lose precision
     * relative to the tensor's magnitude, not to each small element.
     */
    static void assertClose(String op, String tensor, double[] expected, float[] actual, double rtol, double atol) {
        if (expected.length != actual.length) {
            fail(op + " " + tensor + ": length " + actual.length + ", expected " + expected.length);
        }
        double scale = 0;
        for (double e : expected) scale = Math.max(scale, Math.abs(e));
        if (scale == 0) scale = 1;
        int bad = -1, count = 0;
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            double tol = rtol * Math.abs(expected[i]) + atol * scale;
            if (!(err <= tol)) {   // also catches NaN
                count++;
                if (bad < 0 || Double.isNaN(err) || err / tol > worst) {
                    bad = i;
                    worst = Double.isNaN(err) ? Double.POSITIVE_INFINITY : err / tol;
                }
            }
        }
        if (bad >= 0) {
            fail(String.format("%s %s[%d]: got %.9g, expected %.9g (|err| %.3g > tol, rtol %.1g, atol %.1g x %.3g);"
                            + " %d of %d elements out of tolerance", op, tensor, bad, actual[bad], expected[bad],
                    Math.abs(actual[bad] - expected[bad]), rtol, atol, scale, count, expected.length));
        }
    }

    static void assertClose(String op, String tensor, double[] expected, float[] actual, double tol) {
        assertClose(op, tensor, expected, actual, tol, tol);
    }

    /** Exact equality, 0 == -0 (for values that must be untouched, or exactly zero). */
    static void assertExact(String op, String tensor, float[] expected, float[] actual) {
        if (expected.length != actual.length) {
            fail(op + " " + tensor + ": length " + actual.length + ", expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            if (!(expected[i] == actual[i]) && !(Float.isNaN(expected[i]) && Float.isNaN(actual[i]))) {
                fail(op + " " + tensor + "[" + i + "]: got " + actual[i] + ", expected exactly " + expected[i]);
            }
        }
    }
}
