package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;
import java.util.function.DoubleSupplier;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.dot;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.filled;
import static gpt2.backend.cpu.OpTestSupport.numericGrad;
import static gpt2.backend.cpu.OpTestSupport.plus;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;

/**
 * LayerNorm and RMSNorm (scale 1 + w) against double references. Their backward passes
 * accumulate into dinp (the residual stream) as well as into the parameter gradients.
 */
class LayerNormTest {

    static final int N = 11;          // more rows than threads, not a multiple of the 4-row chunk
    static final float EPS = 1e-5f;

    private final Backend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    /** out (N,C) = (x - mean) / sqrt(var + eps) * w + b; returns out, then mean (N) and rstd (N). */
    static double[][] layerNorm(double[] x, double[] w, double[] bias, int C) {
        double[] out = new double[N * C], mean = new double[N], rstd = new double[N];
        for (int n = 0; n < N; n++) {
            double m = 0;
            for (int c = 0; c < C; c++) m += x[n * C + c];
            m /= C;
            double var = 0;
            for (int c = 0; c < C; c++) var += (x[n * C + c] - m) * (x[n * C + c] - m);
            var /= C;
            double rs = 1 / Math.sqrt(var + EPS);
            for (int c = 0; c < C; c++) {
                out[n * C + c] = (x[n * C + c] - m) * rs * w[c] + (bias == null ? 0 : bias[c]);
            }
            mean[n] = m;
            rstd[n] = rs;
        }
        return new double[][] {out, mean, rstd};
    }

    /** out (N,C) = x / sqrt(mean(x^2) + eps) * (1 + w); returns out, then rstd (N). */
    static double[][] rmsNorm(double[] x, double[] w, int C) {
        double[] out = new double[N * C], rstd = new double[N];
        for (int n = 0; n < N; n++) {
            double ss = 0;
            for (int c = 0; c < C; c++) ss += x[n * C + c] * x[n * C + c];
            double rs = 1 / Math.sqrt(ss / C + EPS);
            for (int c = 0; c < C; c++) out[n * C + c] = x[n * C + c] * rs * (1 + w[c]);
            rstd[n] = rs;
        }
        return new double[][] {out, rstd};
    }

    /** Input rows with a nonzero mean and differing scales, so mean and variance both matter. */
    static float[] input(Random r, int C) {
        float[] x = new float[N * C];
        for (int n = 0; n < N; n++) {
            double shift = r.nextGaussian(), scale = 0.5 + r.nextDouble() * 2;
            for (int c = 0; c < C; c++) x[n * C + c] = (float) (shift + scale * r.nextGaussian());
        }
        return x;
    }

    // ------------------------------------------------------------------ layernorm

    @ParameterizedTest(name = "C={0}")
    @ValueSource(ints = {19, 37, 64})
    void layerNormForwardMatchesReference(int C) {
        for (boolean withBias : new boolean[] {true, false}) {
            Random r = new Random(10 + C);
            float[] x = input(r, C), w = randn(r, C, 1), b = randn(r, C, 1);
            Buffer out = upload(be, filled(N * C, Float.NaN), "out");
            Buffer mean = upload(be, filled(N, Float.NaN), "mean"), rstd = upload(be, filled(N, Float.NaN), "rstd");
            be.layerNormForward(out, mean, rstd, upload(be, x, "inp"), upload(be, w, "weight"),
                    withBias ? upload(be, b, "bias") : null, N, C, EPS);
            double[][] ref = layerNorm(toDouble(x), toDouble(w), withBias ? toDouble(b) : null, C);
            String op = "layerNormForward(bias=" + withBias + ", C=" + C + ")";
            assertClose(op, "out", ref[0], download(be, out), 1e-5, 1e-6);
            assertClose(op, "mean", ref[1], download(be, mean), 1e-5, 1e-6);
            assertClose(op, "rstd", ref[2], download(be, rstd), 1e-5, 1e-6);
        }
    }

    @ParameterizedTest(name = "C={0}")
    @ValueSource(ints = {19, 37, 64})
    void layerNormBackwardMatchesFiniteDifferences(int C) {
        for (boolean withBias : new boolean[] {true, false}) {
            Random r = new Random(20 + C);
            float[] x = input(r, C), w = randn(r, C, 1), b = randn(r, C, 1), dout = randn(r, N * C, 1);
            Buffer inp = upload(be, x, "inp"), weight = upload(be, w, "weight");
            Buffer bias = withBias ? upload(be, b, "bias") : null;
            Buffer out = upload(be, new float[N * C], "out");
            Buffer mean = upload(be, new float[N], "mean"), rstd = upload(be, new float[N], "rstd");
            be.layerNormForward(out, mean, rstd, inp, weight, bias, N, C, EPS);

            // every gradient here accumulates (dinp is the residual stream): pre-fill known values
            float[] dinp0 = randn(r, N * C, 1), dw0 = randn(r, C, 1), db0 = randn(r, C, 1);
            Buffer dinp = upload(be, dinp0, "dinp"), dweight = upload(be, dw0, "dweight");
            Buffer dbias = withBias ? upload(be, db0, "dbias") : null;
            be.layerNormBackward(dinp, dweight, dbias, upload(be, dout, "dout"), inp, weight, mean, rstd, N, C);

            double[] xd = toDouble(x), wd = toDouble(w), bd = withBias ? toDouble(b) : null, dd = toDouble(dout);
            DoubleSupplier loss = () -> dot(dd, layerNorm(xd, wd, bd, C)[0]);
            String op = "layerNormBackward(bias=" + withBias + ", C=" + C + ")";
            assertClose(op, "dinp", plus(dinp0, numericGrad(xd, loss)), download(be, dinp), 1e-5, 1e-6);
            assertClose(op, "dweight", plus(dw0, numericGrad(wd, loss)), download(be, dweight), 1e-5, 1e-6);
            if (withBias) {
                assertClose(op, "dbias", plus(db0, numericGrad(bd, loss)), download(be, dbias), 1e-5, 1e-6);
            }
        }
    }

    // ------------------------------------------------------------------ rmsnorm

    @ParameterizedTest(name = "C={0}")
    @ValueSource(ints = {19, 37, 64})
    void rmsNormForwardMatchesReference(int C) {
        Random r = new Random(30 + C);
        // w around 0: the scale is (1 + w), so w = 0 is the identity scale
        float[] x = input(r, C), w = randn(r, C, 0.5);
        Buffer out = upload(be, filled(N * C, Float.NaN), "out"), rstd = upload(be, filled(N, Float.NaN), "rstd");
        be.rmsNormForward(out, rstd, upload(be, x, "inp"), upload(be, w, "weight"), N, C, EPS);
        double[][] ref = rmsNorm(toDouble(x), toDouble(w), C);
        assertClose("rmsNormForward(C=" + C + ")", "out", ref[0], download(be, out), 1e-5, 1e-6);
        assertClose("rmsNormForward(C=" + C + ")", "rstd", ref[1], download(be, rstd), 1e-5, 1e-6);
    }

    @ParameterizedTest(name = "C={0}")
    @ValueSource(ints = {19, 37, 64})
    void rmsNormWithZeroWeightIsPlainNormalization(int C) {
        Random r = new Random(35 + C);
        float[] x = input(r, C);
        Buffer out = upload(be, new float[N * C], "out"), rstd = upload(be, new float[N], "rstd");
        be.rmsNormForward(out, rstd, upload(be, x, "inp"), upload(be, new float[C], "weight"), N, C, EPS);
        float[] y = download(be, out);
        for (int n = 0; n < N; n++) {
            double ms = 0;
            for (int c = 0; c < C; c++) ms += (double) y[n * C + c] * y[n * C + c];
            ms /= C;
            // mean(y^2) = mean(x^2) / (mean(x^2) + eps), just under 1
            double msx = 0;
            for (int c = 0; c < C; c++) msx += (double) x[n * C + c] * x[n * C + c];
            msx /= C;
            assertClose("rmsNormForward(w=0)", "mean(out^2) row " + n, new double[] {msx / (msx + EPS)},
                    new float[] {(float) ms}, 1e-5, 0);
        }
    }

    @ParameterizedTest(name = "C={0}")
    @ValueSource(ints = {19, 37, 64})
    void rmsNormBackwardMatchesFiniteDifferences(int C) {
        Random r = new Random(40 + C);
        float[] x = input(r, C), w = randn(r, C, 0.5), dout = randn(r, N * C, 1);
        Buffer inp = upload(be, x, "inp"), weight = upload(be, w, "weight");
        Buffer out = upload(be, new float[N * C], "out"), rstd = upload(be, new float[N], "rstd");
        be.rmsNormForward(out, rstd, inp, weight, N, C, EPS);

        float[] dinp0 = randn(r, N * C, 1), dw0 = randn(r, C, 1);
        Buffer dinp = upload(be, dinp0, "dinp"), dweight = upload(be, dw0, "dweight");
        be.rmsNormBackward(dinp, dweight, upload(be, dout, "dout"), inp, weight, rstd, N, C);

        double[] xd = toDouble(x), wd = toDouble(w), dd = toDouble(dout);
        DoubleSupplier loss = () -> dot(dd, rmsNorm(xd, wd, C)[0]);
        String op = "rmsNormBackward(C=" + C + ")";
        assertClose(op, "dinp", plus(dinp0, numericGrad(xd, loss)), download(be, dinp), 1e-5, 1e-6);
        assertClose(op, "dweight", plus(dw0, numericGrad(wd, loss)), download(be, dweight), 1e-5, 1e-6);
    }
}
