package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.assertExact;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** AdamW against torch.optim.AdamW's update written out in double, and the sum of squares. */
class OptimizerTest {

    private final Backend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    // ------------------------------------------------------------------ sumOfSquares

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {1, 37, (1 << 16) * 3 + 37})   // the last spans several fixed-size partial sums
    void sumOfSquaresMatchesReference(int n) {
        float[] x = randn(new Random(n), n, 1.5);
        double ref = 0;
        for (float v : x) ref += (double) v * v;
        double got = be.sumOfSquares(upload(be, x, "x"));
        assertEquals(ref, got, 1e-12 * ref, "sumOfSquares(n=" + n + ")");
    }

    @Test
    void sumOfSquaresOfASliceCoversOnlyTheSlice() {
        float[] x = randn(new Random(3), 100, 1);
        Buffer b = upload(be, x, "x");
        double ref = 0;
        for (int i = 10; i < 47; i++) ref += (double) x[i] * x[i];
        assertEquals(ref, be.sumOfSquares(b.slice(10, 37)), 1e-12 * ref, "sumOfSquares of slice [10, 47)");
    }

    @Test
    void sumOfSquaresDoesNotDependOnTheThreadCount() {
        float[] x = randn(new Random(4), (1 << 16) * 5 + 3, 1);
        double two = be.sumOfSquares(upload(be, x, "x"));
        try (Backend one = new CpuBackend(1); Backend three = new CpuBackend(3)) {
            assertEquals(two, one.sumOfSquares(upload(one, x, "x")), 0.0, "sumOfSquares 1 vs 2 threads");
            assertEquals(two, three.sumOfSquares(upload(three, x, "x")), 0.0, "sumOfSquares 3 vs 2 threads");
        }
    }

    // ------------------------------------------------------------------ adamw

    /**
     * One step of torch.optim.AdamW in double, in torch's order: decoupled weight decay
     * p *= 1 - lr*wd first, then p -= lr * mHat / (sqrt(v)/sqrt(1-b2^t) + eps).
     */
    static void adamwReference(double[] p, double[] grads, double[] m, double[] v, double lr, double b1, double b2,
                               double eps, double wd, double gradScale, int t) {
        double bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
        for (int i = 0; i < p.length; i++) {
            double g = grads[i] * gradScale;
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            p[i] *= 1 - lr * wd;
            p[i] -= lr * (m[i] / bc1) / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
        }
    }

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {37, 4096 * 3 + 19})
    void oneAndTwoStepsMatchTorchFormula(int n) {
        float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.7f;
        Random r = new Random(n);
        float[] p0 = randn(r, n, 1), g1 = randn(r, n, 1), g2 = randn(r, n, 1);
        Buffer params = upload(be, p0, "params"), grads = upload(be, g1, "grads");
        Buffer m = upload(be, new float[n], "m"), v = upload(be, new float[n], "v");
        double[] pr = toDouble(p0), mr = new double[n], vr = new double[n];

        be.adamw(params, grads, m, v, lr, b1, b2, eps, wd, scale, 1);
        adamwReference(pr, toDouble(g1), mr, vr, lr, b1, b2, eps, wd, scale, 1);
        assertClose("adamw step 1", "params", pr, download(be, params), 1e-6, 1e-7);
        assertClose("adamw step 1", "m", mr, download(be, m), 1e-5, 1e-7);
        assertClose("adamw step 1", "v", vr, download(be, v), 1e-5, 1e-7);
        assertExact("adamw step 1", "grads (read only)", g1, download(be, grads));

        be.write(grads, g2);
        be.adamw(params, grads, m, v, lr, b1, b2, eps, wd, scale, 2);
        adamwReference(pr, toDouble(g2), mr, vr, lr, b1, b2, eps, wd, scale, 2);
        assertClose("adamw step 2", "params", pr, download(be, params), 1e-6, 1e-7);
        assertClose("adamw step 2", "m", mr, download(be, m), 1e-5, 1e-7);
        assertClose("adamw step 2", "v", vr, download(be, v), 1e-5, 1e-7);
    }

    @Test
    void handComputedTwoSteps() {
        // param 1.0, stored grad 0.25 with gradScale 2 (so g = 0.5), lr 0.1, beta1 0.9, beta2 0.95,
        // eps 1e-8, weight decay 0.1; the same gradient on both steps.
        //
        // step 1: m = 0.1 * 0.5 = 0.05                 v = 0.05 * 0.25 = 0.0125
        //         mHat = 0.05 / (1 - 0.9) = 0.5         vHat = 0.0125 / (1 - 0.95) = 0.25, sqrt = 0.5
        //         mHat / (sqrt(vHat) + eps) = 0.5 / 0.50000001 = 0.99999998
        //         p = 1 - 0.1 * (0.99999998 + 0.1 * 1.0) = 0.890000002
        // step 2: m = 0.9 * 0.05 + 0.1 * 0.5 = 0.095   v = 0.95 * 0.0125 + 0.05 * 0.25 = 0.024375
        //         mHat = 0.095 / (1 - 0.81) = 0.5       vHat = 0.024375 / (1 - 0.9025) = 0.25, sqrt = 0.5
        //         p = 0.890000002 - 0.1 * (0.99999998 + 0.1 * 0.890000002) = 0.7811000040
        Buffer params = upload(be, new float[] {1f}, "params"), grads = upload(be, new float[] {0.25f}, "grads");
        Buffer m = upload(be, new float[1], "m"), v = upload(be, new float[1], "v");

        // float32 holds 0.9f, 0.95f only to ~1e-8, so compare within a relative 1e-6 (a few ulps);
        // weight decay alone moves p by 0.01 and the bias corrections by a factor 10, far outside
        be.adamw(params, grads, m, v, 0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, 2f, 1);
        assertNear(0.05, download(be, m)[0], "m after step 1");
        assertNear(0.0125, download(be, v)[0], "v after step 1");
        assertNear(0.890000002, download(be, params)[0], "param after step 1");

        be.adamw(params, grads, m, v, 0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, 2f, 2);
        assertNear(0.095, download(be, m)[0], "m after step 2");
        assertNear(0.024375, download(be, v)[0], "v after step 2");
        assertNear(0.7811000040, download(be, params)[0], "param after step 2");
    }

    private static void assertNear(double expected, float actual, String what) {
        assertEquals(expected, actual, 1e-6 * Math.abs(expected), "adamw hand example: " + what);
    }

    @Test
    void zeroGradientOnlyDecaysTheWeights() {
        // g = 0 at step 1: m = v = 0, the Adam term is 0 / (0 + eps) = 0, so p = p * (1 - lr * wd)
        float[] p0 = randn(new Random(8), 37, 1);
        Buffer params = upload(be, p0, "params");
        be.adamw(params, upload(be, new float[37], "grads"), upload(be, new float[37], "m"),
                upload(be, new float[37], "v"), 0.01f, 0.9f, 0.95f, 1e-8f, 0.5f, 1f, 1);
        double[] ref = new double[37];
        for (int i = 0; i < 37; i++) ref[i] = p0[i] * (1 - (double) 0.01f * 0.5f);
        assertClose("adamw(zero grad)", "params", ref, download(be, params), 1e-6, 0);
    }
}
