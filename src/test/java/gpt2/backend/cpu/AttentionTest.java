package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.Dropout;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.assertExact;
import static gpt2.backend.cpu.OpTestSupport.dot;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.filled;
import static gpt2.backend.cpu.OpTestSupport.numericGrad;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Causal self-attention against a double reference, without and with dropout on the attention
 * weights (the reference applies the same mask, element ((b*NH+h)*T+t)*T+t2, before @ v).
 */
class AttentionTest {

    static final long KEY = 0x5EEDL;

    /** The backend under test; {@link GemmAttentionTest} runs every test with the attention as OpenBLAS GEMMs. */
    Backend backend() {
        return new CpuBackend(2, CpuBackend.blasAvailable(), Integer.MAX_VALUE); // the Java kernels at every length
    }

    private final Backend be = backend();

    @AfterEach
    void close() {
        be.close();
    }

    /** Returns out (B,T,C) and att (B,NH,T,T) (softmax before dropout, 0 above the diagonal). */
    static double[][] reference(double[] qkv, int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        double[] out = new double[B * T * C], att = new double[B * NH * T * T];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int t = 0; t < T; t++) {
                    double[] pre = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int t2 = 0; t2 <= t; t2++) {
                        double s = 0;
                        for (int i = 0; i < hs; i++) {
                            s += qkv[(b * T + t) * 3 * C + h * hs + i] * qkv[(b * T + t2) * 3 * C + C + h * hs + i];
                        }
                        pre[t2] = s / Math.sqrt(hs);
                        max = Math.max(max, pre[t2]);
                    }
                    double sum = 0;
                    for (int t2 = 0; t2 <= t; t2++) sum += Math.exp(pre[t2] - max);
                    for (int t2 = 0; t2 <= t; t2++) {
                        int a = ((b * NH + h) * T + t) * T + t2;
                        att[a] = Math.exp(pre[t2] - max) / sum;
                        double m = dropout == null ? 1 : dropout.keep(a) ? 1 / (1 - (double) dropout.p()) : 0;
                        for (int i = 0; i < hs; i++) {
                            out[(b * T + t) * C + h * hs + i] += att[a] * m * qkv[(b * T + t2) * 3 * C + 2 * C + h * hs + i];
                        }
                    }
                }
            }
        }
        return new double[][] {out, att};
    }

    /** Runs the backend forward; returns out, then att. */
    private float[][] forward(float[] qkv, int B, int T, int C, int NH, Dropout dropout) {
        Buffer out = upload(be, filled(B * T * C, Float.NaN), "out");
        Buffer att = upload(be, filled(B * NH * T * T, Float.NaN), "att");
        be.attentionForward(out, att, upload(be, qkv, "qkv"), B, T, C, NH, dropout);
        return new float[][] {download(be, out), download(be, att)};
    }

    private static Dropout dropout(boolean on) {
        return on ? new Dropout(0.3f, KEY) : null;
    }

    // (B, T, C, NH): head size 19 (vector loop + scalar tail), 16 (vector only), 3 (tail only);
    // B*NH (head pairs, the unit of parallel work) always above the 2 threads
    @ParameterizedTest(name = "B={0} T={1} C={2} NH={3} dropout={4}")
    @CsvSource({
            "2, 7, 57, 3, false", "2, 7, 57, 3, true",
            "2, 5, 32, 2, false", "2, 5, 32, 2, true",
            "3, 4, 12, 4, false", "3, 4, 12, 4, true",
            "1, 150, 24, 2, false"}) // longer than a row block of the GEMM path (128): two blocks
    void forwardMatchesReference(int B, int T, int C, int NH, boolean drop) {
        Random r = new Random(B * 100 + T * 10 + NH);
        float[] qkv = randn(r, B * T * 3 * C, 1);
        Dropout d = dropout(drop);
        float[][] got = forward(qkv, B, T, C, NH, d);
        double[][] ref = reference(toDouble(qkv), B, T, C, NH, d);
        String op = "attentionForward(B=" + B + ",T=" + T + ",C=" + C + ",NH=" + NH + ",dropout=" + drop + ")";
        assertClose(op, "out", ref[0], got[0], 1e-5, 1e-6);
        assertClose(op, "att", ref[1], got[1], 1e-5, 1e-6);

        // att: exact zeros above the diagonal, rows summing to 1 (softmax saved before dropout)
        for (int bh = 0; bh < B * NH; bh++) {
            for (int t = 0; t < T; t++) {
                double sum = 0;
                for (int t2 = 0; t2 < T; t2++) {
                    float a = got[1][(bh * T + t) * T + t2];
                    if (t2 > t) assertEquals(0f, a, op + " att above the diagonal at bh=" + bh + " t=" + t + " t2=" + t2);
                    sum += a;
                }
                assertEquals(1.0, sum, 1e-5, op + " att row sum at bh=" + bh + " t=" + t);
            }
        }
        if (drop) {
            // the mask must actually drop some weights on the causal triangle, or this test proves nothing
            int dropped = 0;
            for (int bh = 0; bh < B * NH; bh++) {
                for (int t = 0; t < T; t++) {
                    for (int t2 = 0; t2 <= t; t2++) if (!d.keep(((long) bh * T + t) * T + t2)) dropped++;
                }
            }
            assertTrue(dropped > 0, "dropout mask dropped nothing on the causal triangle");
        }
    }

    @ParameterizedTest(name = "B={0} T={1} C={2} NH={3}")
    @CsvSource({"2, 7, 57, 3", "3, 4, 12, 4"})
    void dropoutWithZeroProbabilityEqualsNoDropout(int B, int T, int C, int NH) {
        float[] qkv = randn(new Random(3), B * T * 3 * C, 1);
        float[][] none = forward(qkv, B, T, C, NH, null);
        float[][] zero = forward(qkv, B, T, C, NH, new Dropout(0f, KEY));
        assertExact("attentionForward(p=0)", "out", none[0], zero[0]);
        assertExact("attentionForward(p=0)", "att", none[1], zero[1]);
    }

    @ParameterizedTest(name = "B={0} T={1} C={2} NH={3} dropout={4}")
    @CsvSource({
            "2, 7, 57, 3, false", "2, 7, 57, 3, true",
            "2, 5, 32, 2, false", "2, 5, 32, 2, true",
            "3, 4, 12, 4, false", "3, 4, 12, 4, true"})
    void backwardMatchesFiniteDifferences(int B, int T, int C, int NH, boolean drop) {
        Random r = new Random(B * 100 + T * 10 + NH + 7);
        float[] qkv = randn(r, B * T * 3 * C, 1), dout = randn(r, B * T * C, 1);
        Dropout d = dropout(drop);
        Buffer qkvB = upload(be, qkv, "qkv");
        Buffer out = upload(be, new float[B * T * C], "out"), att = upload(be, new float[B * NH * T * T], "att");
        be.attentionForward(out, att, qkvB, B, T, C, NH, d);
        // dqkv is an activation gradient: overwritten, so NaN garbage before must not leak through
        Buffer dqkv = upload(be, filled(B * T * 3 * C, Float.NaN), "dqkv");
        be.attentionBackward(dqkv, upload(be, dout, "dout"), qkvB, att, B, T, C, NH, d);

        double[] x = toDouble(qkv), dd = toDouble(dout);
        double[] g = numericGrad(x, () -> dot(dd, reference(x, B, T, C, NH, d)[0]));
        String op = "attentionBackward(B=" + B + ",T=" + T + ",C=" + C + ",NH=" + NH + ",dropout=" + drop + ")";
        assertClose(op, "dqkv", g, download(be, dqkv), 1e-5, 1e-6);
    }

    @ParameterizedTest(name = "dropout={0}")
    @CsvSource({"false", "true"})
    void futureTokensDoNotInfluenceEarlierOutputs(boolean drop) {
        int B = 2, T = 7, C = 57, NH = 3, tStar = 4;
        Random r = new Random(11);
        float[] qkv = randn(r, B * T * 3 * C, 1);
        Dropout d = dropout(drop);
        float[][] before = forward(qkv, B, T, C, NH, d);
        // replace q, k and v of every position t >= tStar in batch 0
        float[] changed = qkv.clone();
        for (int t = tStar; t < T; t++) {
            for (int i = 0; i < 3 * C; i++) changed[t * 3 * C + i] = (float) (3 * r.nextGaussian());
        }
        float[][] after = forward(changed, B, T, C, NH, d);
        String op = "attentionForward(causal, dropout=" + drop + ")";
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                boolean unchanged = b == 1 || t < tStar;
                for (int c = 0; c < C; c++) {
                    int i = (b * T + t) * C + c;
                    if (unchanged) {
                        assertEquals(before[0][i], after[0][i], op + " out[b=" + b + ",t=" + t + ",c=" + c + "]");
                    }
                }
                for (int h = 0; h < NH && unchanged; h++) {
                    for (int t2 = 0; t2 < T; t2++) {
                        int a = ((b * NH + h) * T + t) * T + t2;
                        assertEquals(before[1][a], after[1][a], op + " att[b=" + b + ",h=" + h + ",t=" + t + ",t2=" + t2 + "]");
                    }
                }
            }
        }
        // and the change is visible from tStar on (the perturbation is not a no-op)
        boolean differs = false;
        for (int c = 0; c < C; c++) differs |= before[0][tStar * C + c] != after[0][tStar * C + c];
        assertTrue(differs, "perturbing position " + tStar + " changed nothing at " + tStar);
    }

    @ParameterizedTest(name = "dropout={0}")
    @CsvSource({"false", "true"})
    void pastOutputsSendNoGradientToFuturePositions(boolean drop) {
        // dout nonzero only at t < tStar: q, k, v of positions >= tStar must get exactly zero gradient
        int B = 2, T = 7, C = 57, NH = 3, tStar = 4;
        Random r = new Random(12);
        float[] qkv = randn(r, B * T * 3 * C, 1), dout = randn(r, B * T * C, 1);
        for (int b = 0; b < B; b++) {
            for (int t = tStar; t < T; t++) {
                for (int c = 0; c < C; c++) dout[(b * T + t) * C + c] = 0f;
            }
        }
        Dropout d = dropout(drop);
        Buffer qkvB = upload(be, qkv, "qkv");
        Buffer out = upload(be, new float[B * T * C], "out"), att = upload(be, new float[B * NH * T * T], "att");
        be.attentionForward(out, att, qkvB, B, T, C, NH, d);
        Buffer dqkv = upload(be, filled(B * T * 3 * C, Float.NaN), "dqkv");
        be.attentionBackward(dqkv, upload(be, dout, "dout"), qkvB, att, B, T, C, NH, d);
        float[] g = download(be, dqkv);
        for (int b = 0; b < B; b++) {
            for (int t = tStar; t < T; t++) {
                for (int i = 0; i < 3 * C; i++) {
                    assertEquals(0f, g[(b * T + t) * 3 * C + i],
                            "attentionBackward dqkv[b=" + b + ",t=" + t + ",i=" + i + "] from future-only dout");
                }
            }
        }
    }
}
