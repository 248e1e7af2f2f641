package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.Dropout;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.H;
import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.assertExact;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.filled;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.upload;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Element-wise ops: GELU (tanh approximation), residual add, dropout.
 *
 * <p>For a pointwise op dL/dx_i of L = sum(dout * out) is dout_i * dout_i/dx_i, so the finite
 * difference of L in x_i is taken on out_i alone (the other terms of the sum cancel exactly);
 * this keeps the check linear in N, so N can span several parallel chunks of 4096.
 */
class PointwiseTest {

    private final Backend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    /** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    static double gelu(double x) {
        return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    }

    /** Inputs covering the interesting range of GELU, including large |x| and exact zero. */
    static float[] geluInput(Random r, int n) {
        float[] x = randn(r, n, 2);
        x[0] = 0f;
        x[1] = -8f;
        x[2] = 8f;
        x[3] = -30f;
        return x;
    }

    // ------------------------------------------------------------------ gelu

    @ParameterizedTest(name = "N={0}")
    @ValueSource(ints = {37, 4096 * 2 + 19})
    void geluForwardMatchesReference(int N) {
        float[] x = geluInput(new Random(N), N);
        Buffer out = upload(be, filled(N, Float.NaN), "out");
        be.geluForward(out, upload(be, x, "inp"), N);
        double[] ref = new double[N];
        for (int i = 0; i < N; i++) ref[i] = gelu(x[i]);
        assertClose("geluForward", "out", ref, download(be, out), 1e-5, 1e-6);
    }

    /** dL/dx of L = sum(dout * gelu(x)), element by element by central differences. */
    static double[] geluGrad(float[] x, float[] dout) {
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            g[i] = dout[i] * (gelu(x[i] + H) - gelu(x[i] - H)) / (2 * H);
        }
        return g;
    }

    @ParameterizedTest(name = "N={0}")
    @ValueSource(ints = {37, 4096 * 2 + 19})
    void geluBackwardOverwritesDinp(int N) {
        Random r = new Random(N + 1);
        float[] x = geluInput(r, N), dout = randn(r, N, 1);
        Buffer dinp = upload(be, filled(N, Float.NaN), "dinp");
        be.geluBackward(dinp, upload(be, x, "inp"), upload(be, dout, "dout"), N);
        assertClose("geluBackward", "dinp", geluGrad(x, dout), download(be, dinp), 1e-5, 1e-6);
    }

    @ParameterizedTest(name = "N={0}")
    @ValueSource(ints = {37, 4096 * 2 + 19})
    void geluBackwardInPlaceOverDout(int N) {
        Random r = new Random(N + 2);
        float[] x = geluInput(r, N), dout = randn(r, N, 1);
        Buffer d = upload(be, dout, "dout/dinp");
        be.geluBackward(d, upload(be, x, "inp"), d, N);
        assertClose("geluBackward(dinp == dout)", "dinp", geluGrad(x, dout), download(be, d), 1e-5, 1e-6);
    }

    @Test
    void geluLeavesElementsBeyondNUntouched() {
        int N = 37;
        float[] x = randn(new Random(4), N + 5, 1);
        Buffer out = upload(be, filled(N + 5, 7f), "out");
        be.geluForward(out, upload(be, x, "inp"), N);
        float[] got = download(be, out);
        for (int i = N; i < N + 5; i++) assertEquals(7f, got[i], "geluForward wrote out[" + i + "] beyond N");
    }

    // ------------------------------------------------------------------ residual

    @ParameterizedTest(name = "N={0}")
    @ValueSource(ints = {37, 4096 * 3 + 5})
    void residualForwardIsExactSum(int N) {
        Random r = new Random(N + 3);
        float[] a = randn(r, N, 1), b = randn(r, N, 3);
        Buffer out = upload(be, filled(N, Float.NaN), "out");
        be.residualForward(out, upload(be, a, "inp1"), upload(be, b, "inp2"), N);
        // a float sum is correctly rounded, so the float32 result must equal the rounded double sum
        float[] ref = new float[N];
        for (int i = 0; i < N; i++) ref[i] = (float) ((double) a[i] + b[i]);
        assertExact("residualForward", "out", ref, download(be, out));
    }

    // ------------------------------------------------------------------ dropout

    static final long KEY = 0xD209L;

    @ParameterizedTest(name = "N={0}")
    @ValueSource(ints = {37, 4096 * 3 + 5})
    void dropoutForwardAppliesTheKeyedMask(int N) {
        Dropout d = new Dropout(0.3f, KEY);
        float[] x = randn(new Random(N + 4), N, 1);
        Buffer buf = upload(be, x, "x");
        be.dropout(buf, N, d);
        // reference: element i kept (scaled by 1/(1-p)) or zeroed as the mask function says
        double[] ref = new double[N];
        int dropped = 0;
        for (int i = 0; i < N; i++) {
            ref[i] = d.keep(i) ? x[i] / (1 - (double) d.p()) : 0;
            if (!d.keep(i)) dropped++;
        }
        assertClose("dropout", "x", ref, download(be, buf), 1e-6, 0);
        // sanity of the test itself: about p of the elements drop
        assertEquals(0.3, dropped / (double) N, N > 1000 ? 0.03 : 0.3, "fraction dropped");
    }

    @Test
    void dropoutBackwardMatchesFiniteDifferences() {
        // the backward pass is the same call on the gradient: dL/dx = dout * mask / (1 - p)
        int N = 4096 * 2 + 37;
        Dropout d = new Dropout(0.3f, KEY);
        Random r = new Random(5);
        float[] x = randn(r, N, 1), dout = randn(r, N, 1);
        double[] g = new double[N];
        for (int i = 0; i < N; i++) {
            double m = d.keep(i) ? 1 / (1 - (double) d.p()) : 0;
            g[i] = dout[i] * ((x[i] + H) * m - (x[i] - H) * m) / (2 * H);
        }
        Buffer grad = upload(be, dout, "dout");
        be.dropout(grad, N, d);
        assertClose("dropout(backward)", "dx", g, download(be, grad), 1e-6, 1e-7);
    }

    @Test
    void dropoutIsReproducibleAndKeyed() {
        int N = 4096 + 37;
        float[] x = randn(new Random(6), N, 1);
        Buffer a = upload(be, x, "a"), b = upload(be, x, "b"), c = upload(be, x, "c");
        be.dropout(a, N, new Dropout(0.5f, KEY));
        be.dropout(b, N, new Dropout(0.5f, KEY));
        be.dropout(c, N, new Dropout(0.5f, KEY + 1));
        float[] fa = download(be, a), fc = download(be, c);
        assertExact("dropout(same key)", "x", fa, download(be, b));
        int same = 0;
        for (int i = 0; i < N; i++) if ((fa[i] == 0f) == (fc[i] == 0f)) same++;
        assertEquals(0.5, same / (double) N, 0.05, "a different key must give an independent mask");
    }

    @Test
    void dropoutOffChangesNothing() {
        int N = 4096 + 37;
        float[] x = randn(new Random(7), N, 1);
        Buffer a = upload(be, x, "a"), b = upload(be, x, "b");
        be.dropout(a, N, new Dropout(0f, KEY));
        be.dropout(b, N, null);
        assertExact("dropout(p=0)", "x", x, download(be, a));
        assertExact("dropout(null)", "x", x, download(be, b));
    }

    @Test
    void dropoutTouchesOnlyTheFirstNElements() {
        int N = 37;
        float[] x = filled(N + 9, 1f);
        Buffer buf = upload(be, x, "x");
        be.dropout(buf, N, new Dropout(0.9f, KEY));
        float[] got = download(be, buf);
        for (int i = N; i < N + 9; i++) assertEquals(1f, got[i], "dropout changed x[" + i + "] beyond N");
        double[] ref = new double[N + 9];
        Dropout d = new Dropout(0.9f, KEY);
        for (int i = 0; i < N + 9; i++) ref[i] = i >= N ? 1 : d.keep(i) ? 1 / (1 - (double) 0.9f) : 0;
        assertClose("dropout(p=0.9)", "x", ref, got, 1e-6, 0);
    }
}
