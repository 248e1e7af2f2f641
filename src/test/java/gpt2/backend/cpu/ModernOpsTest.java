package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.assertExact;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.numericGrad;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;

/**
 * The modern recipe's ops against double-precision references, gradients by central finite
 * differences of those references: QK-norm + RoPE, ReLU², logit soft-capping through the
 * classifier, parameter-free RMSNorm.
 */
public class ModernOpsTest {

    private final Backend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    // ------------------------------------------------------------------ qk-norm + rope

    /**
     * The double reference: q and k of each head normed (optional) then rotated (optional); a new
     * array. Also the whole-model reference's (gpt2.model.ReferenceGpt2).
     */
    public static double[] qkNormRope(double[] qkv, int B, int T, int C, int NH, int pos0, double theta, boolean norm, double eps) {
        double[] out = qkv.clone();
        int hs = C / NH, half = hs / 2;
        for (int bt = 0; bt < B * T; bt++) {
            int pos = pos0 + bt % T;
            for (int part = 0; part < 2; part++) {
                for (int h = 0; h < NH; h++) {
                    int base = bt * 3 * C + part * C + h * hs;
                    if (norm) {
                        double ms = 0;
                        for (int i = 0; i < hs; i++) ms += out[base + i] * out[base + i];
                        double r = 1 / Math.sqrt(ms / hs + eps);
                        for (int i = 0; i < hs; i++) out[base + i] *= r;
                    }
                    if (theta > 0) {
                        for (int j = 0; j < half; j++) {
                            double a = pos * Math.exp(-2.0 * j / hs * Math.log(theta));
                            double x1 = out[base + j], x2 = out[base + j + half];
                            out[base + j] = x1 * Math.cos(a) + x2 * Math.sin(a);
                            out[base + j + half] = x2 * Math.cos(a) - x1 * Math.sin(a);
                        }
                    }
                }
            }
        }
        return out;
    }

    // head sizes 8 (scalar tails only), 64 and 96 (whole vectors of the halves, with and without a tail)
    @ParameterizedTest(name = "norm {0}, theta {1}, pos0 {2}, C {3}, NH {4}")
    @CsvSource({"true, 10000, 0, 24, 3", "true, 0, 0, 24, 3", "false, 50000, 0, 24, 3", "true, 100, 5, 24, 3",
            "false, 10, 3, 24, 3", "true, 10000, 2, 128, 2", "true, 500, 0, 96, 1", "false, 10000, 0, 136, 2"})
    void qkNormRopeForwardAndBackwardMatchReference(boolean norm, float theta, int pos0, int C, int NH) {
        int B = 2, T = 5;
        float eps = 1e-6f;
        Random r = new Random(7);
        float[] x = randn(r, B * T * 3 * C, 1.5);
        float[] dy = randn(r, x.length, 1);
        Buffer qkv = upload(be, x, "qkv");
        Buffer rstd = norm ? be.allocate(DType.F32, (long) B * T * 2 * NH, "rstd") : null;
        be.qkNormRopeForward(qkv, rstd, B, T, C, NH, pos0, theta, eps);
        float[] y = download(be, qkv);
        double[] want = qkNormRope(toDouble(x), B, T, C, NH, pos0, theta, norm, eps);
        assertClose("qkNormRopeForward", "qkv", want, y, 1e-5, 1e-6);
        for (int bt = 0; bt < B * T; bt++) { // v is untouched
            for (int i = 2 * C; i < 3 * C; i++) {
                if (Float.floatToIntBits(y[bt * 3 * C + i]) != Float.floatToIntBits(x[bt * 3 * C + i])) {
                    throw new AssertionError("qkNormRopeForward changed v at " + bt + "," + i);
                }
            }
        }
        if (pos0 != 0) return; // backward is taken for training passes, which start at position 0
        Buffer d = upload(be, dy, "dqkv");
        be.qkNormRopeBackward(d, qkv, rstd, B, T, C, NH, theta);
        double[] xd = toDouble(x), dyd = toDouble(dy);
        double[] grad = numericGrad(xd, () -> OpTestSupport.dot(qkNormRope(xd, B, T, C, NH, 0, theta, norm, eps), dyd));
        assertClose("qkNormRopeBackward", "dqkv", grad, download(be, d), 1e-4, 1e-5);
    }

    // ------------------------------------------------------------------ relu^2

    @Test
    void reluSquaredMatchesReferenceAndItsDerivative() {
        int N = 4096 * 2 + 13;
        Random r = new Random(3);
        float[] x = randn(r, N, 2), dout = randn(r, N, 1);
        x[0] = 0f;
        x[1] = -0f;
        Buffer in = upload(be, x, "inp"), out = be.allocate(DType.F32, N, "out");
        be.reluSquaredForward(out, in, N);
        double[] want = new double[N], dwant = new double[N];
        for (int i = 0; i < N; i++) {
            double v = Math.max(x[i], 0);
            want[i] = v * v;
            dwant[i] = 2 * v * dout[i];
            // a central difference away from the kink at 0
            if (Math.abs(x[i]) > 1e-3) {
                double h = 1e-6, p = Math.max(x[i] + h, 0), m = Math.max(x[i] - h, 0);
                double fd = (p * p - m * m) / (2 * h) * dout[i];
                if (Math.abs(fd - dwant[i]) > 1e-6 * (1 + Math.abs(fd))) throw new AssertionError("reference derivative at " + i);
            }
        }
        assertClose("reluSquaredForward", "out", want, download(be, out), 1e-6, 0);
        Buffer d = upload(be, dout, "dout");
        be.reluSquaredBackward(d, in, d, N); // in place, as the model calls it
        assertClose("reluSquaredBackward", "dinp", dwant, download(be, d), 1e-6, 0);
    }

    // ------------------------------------------------------------------ soft cap + classifier

    /** Mean cross-entropy of capped logits over the first V columns (targets -1 ignored). */
    static double cappedLoss(double[] z, int[] targets, int N, int V, int Vp, double cap, double dloss) {
        double total = 0;
        for (int n = 0; n < N; n++) {
            if (targets[n] < 0) continue;
            double max = Double.NEGATIVE_INFINITY;
            double[] c = new double[V];
            for (int v = 0; v < V; v++) {
                c[v] = cap * Math.tanh(z[n * Vp + v] / cap);
                max = Math.max(max, c[v]);
            }
            double sum = 0;
            for (int v = 0; v < V; v++) sum += Math.exp(c[v] - max);
            total += (Math.log(sum) + max - c[targets[n]]) * dloss;
        }
        return total;
    }

    @Test
    void softcapForwardAndClassifierGradientThroughTheCap() {
        int N = 5, V = 37, Vp = 48;
        float cap = 4f, dloss = 0.3f;
        Random r = new Random(11);
        float[] z = randn(r, N * Vp, 4); // some beyond the cap
        z[0] = 40f;
        z[1] = -40f;
        int[] targets = {3, -1, 36, 0, 17};
        Buffer logits = upload(be, z, "logits");
        be.softcapForward(logits, (long) N * Vp, cap);
        float[] c = download(be, logits);
        double[] want = new double[z.length];
        for (int i = 0; i < z.length; i++) want[i] = cap * Math.tanh(z[i] / (double) cap);
        assertClose("softcapForward", "logits", want, c, 2e-6, 1e-6);

        Buffer losses = be.allocate(DType.F32, N, "losses"), t = upload(be, targets, "targets");
        be.crossEntropyFused(losses, logits, t, dloss, N, V, Vp, cap);
        double[] zd = toDouble(z);
        double[] grad = numericGrad(zd, () -> cappedLoss(zd, targets, N, V, Vp, cap, dloss));
        assertClose("crossEntropyFused(softcap)", "dlogits", grad, download(be, logits), 1e-4, 1e-6);
        float[] padded = new float[Vp - V], got = download(be, logits);
        for (int n = 0; n < N; n++) {
            float[] row = java.util.Arrays.copyOfRange(got, n * Vp + V, n * Vp + Vp);
            assertExact("crossEntropyFused(softcap)", "padded columns of row " + n, padded, row);
        }
    }

    // ------------------------------------------------------------------ parameter-free rmsnorm

    @Test
    void parameterFreeRmsNormMatchesReference() {
        int N = 6, C = 20;
        float eps = 1e-6f;
        Random r = new Random(5);
        float[] x = randn(r, N * C, 2), dout = randn(r, N * C, 1), prior = randn(r, N * C, 1);
        Buffer in = upload(be, x, "inp"), out = be.allocate(DType.F32, (long) N * C, "out");
        Buffer rstd = be.allocate(DType.F32, N, "rstd");
        be.rmsNormForward(out, rstd, in, null, N, C, eps);
        double[] xd = toDouble(x), dd = toDouble(dout);
        java.util.function.Function<double[], double[]> ref = v -> {
            double[] o = new double[N * C];
            for (int n = 0; n < N; n++) {
                double ms = 0;
                for (int i = 0; i < C; i++) ms += v[n * C + i] * v[n * C + i];
                double k = 1 / Math.sqrt(ms / C + eps);
                for (int i = 0; i < C; i++) o[n * C + i] = v[n * C + i] * k;
            }
            return o;
        };
        assertClose("rmsNormForward(no weight)", "out", ref.apply(xd), download(be, out), 1e-6, 1e-7);
        Buffer dinp = upload(be, prior, "dinp");
        be.rmsNormBackward(dinp, null, upload(be, dout, "dout"), in, null, rstd, N, C);
        double[] grad = numericGrad(xd, () -> OpTestSupport.dot(ref.apply(xd), dd));
        double[] expected = OpTestSupport.plus(prior, grad); // the residual stream accumulates
        assertClose("rmsNormBackward(no weight)", "dinp", expected, download(be, dinp), 1e-4, 1e-6);
    }
}
