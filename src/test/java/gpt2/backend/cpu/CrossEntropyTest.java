package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.assertExact;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.filled;
import static gpt2.backend.cpu.OpTestSupport.numericGrad;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Softmax cross-entropy over the first V of Vp logit columns, with ignored rows (target -1).
 * The backward pass takes one scalar dloss for every row, so its finite-difference check is on
 * L = dloss * sum(losses).
 */
class CrossEntropyTest {

    static final int N = 11;

    private final Backend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    /** losses (N) = logsumexp(logits[n, :V]) - logits[n, target]; 0 for target -1. */
    static double[] reference(double[] logits, int[] targets, int V, int Vp) {
        double[] losses = new double[N];
        for (int n = 0; n < N; n++) {
            if (targets[n] == -1) continue;
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < V; v++) max = Math.max(max, logits[n * Vp + v]);
            double sum = 0;
            for (int v = 0; v < V; v++) sum += Math.exp(logits[n * Vp + v] - max);
            losses[n] = Math.log(sum) + max - logits[n * Vp + targets[n]];
        }
        return losses;
    }

    /** Targets in [0, V) with rows 3 and N-1 ignored; target V-1 (last real column) appears. */
    static int[] targets(Random r, int V) {
        int[] t = new int[N];
        for (int n = 0; n < N; n++) t[n] = r.nextInt(V);
        t[0] = V - 1;
        t[3] = -1;
        t[N - 1] = -1;
        return t;
    }

    /** Logits (N,Vp) with the padded columns set to {@code pad}; row 5 is shifted by +500. */
    static float[] logits(Random r, int V, int Vp, float pad) {
        float[] x = randn(r, N * Vp, 2);
        for (int n = 0; n < N; n++) {
            for (int v = V; v < Vp; v++) x[n * Vp + v] = pad;
        }
        for (int v = 0; v < V; v++) x[5 * Vp + v] += 500f;   // exp(500) overflows float without the max shift
        return x;
    }

    private float[] forward(float[] logits, int[] targets, int V, int Vp) {
        Buffer losses = upload(be, filled(N, Float.NaN), "losses");
        be.crossEntropyForward(losses, upload(be, logits, "logits"), upload(be, targets, "targets"), N, V, Vp);
        return download(be, losses);
    }

    // (V, Vp): padded vocabularies with vector-unfriendly V, and one without padding
    @ParameterizedTest(name = "V={0} Vp={1}")
    @CsvSource({"37, 48", "19, 32", "64, 64"})
    void forwardMatchesReference(int V, int Vp) {
        Random r = new Random(V * 100 + Vp);
        int[] t = targets(r, V);
        float[] x = logits(r, V, Vp, 0f);
        float[] got = forward(x, t, V, Vp);
        assertClose("crossEntropyForward(V=" + V + ",Vp=" + Vp + ")", "losses", reference(toDouble(x), t, V, Vp), got,
                1e-5, 1e-6);
        assertEquals(0f, got[3], "crossEntropyForward loss of ignored row 3");
        assertEquals(0f, got[N - 1], "crossEntropyForward loss of ignored row " + (N - 1));
    }

    @ParameterizedTest(name = "V={0} Vp={1}")
    @CsvSource({"37, 48", "19, 32"})
    void paddedColumnsDoNotAffectTheLoss(int V, int Vp) {
        Random r = new Random(V * 100 + Vp + 1);
        int[] t = targets(r, V);
        float[] zeroPad = logits(r, V, Vp, 0f);
        float[] hugePad = zeroPad.clone(), negPad = zeroPad.clone();
        for (int n = 0; n < N; n++) {
            for (int v = V; v < Vp; v++) {
                hugePad[n * Vp + v] = 1e30f;
                negPad[n * Vp + v] = -Float.MAX_VALUE;
            }
        }
        float[] base = forward(zeroPad, t, V, Vp);
        assertExact("crossEntropyForward(padding 1e30)", "losses", base, forward(hugePad, t, V, Vp));
        assertExact("crossEntropyForward(padding -MAX)", "losses", base, forward(negPad, t, V, Vp));
    }

    @ParameterizedTest(name = "V={0} Vp={1}")
    @CsvSource({"37, 48", "19, 32", "64, 64"})
    void backwardMatchesFiniteDifferences(int V, int Vp) {
        Random r = new Random(V * 100 + Vp + 2);
        int[] t = targets(r, V);
        // huge padding: it must neither leak into the softmax nor survive as a gradient
        float[] x = logits(r, V, Vp, 1e30f);
        float dloss = 0.37f;
        Buffer buf = upload(be, x, "logits/dlogits");
        be.crossEntropyBackward(buf, upload(be, t, "targets"), dloss, N, V, Vp, 0f);
        float[] got = download(be, buf);

        double[] xd = toDouble(x);
        double[] g = numericGrad(xd, () -> {
            double s = 0;
            for (double l : reference(xd, t, V, Vp)) s += l;
            return dloss * s;
        });
        String op = "crossEntropyBackward(V=" + V + ",Vp=" + Vp + ")";
        assertClose(op, "dlogits", g, got, 1e-5, 1e-6);
        for (int n = 0; n < N; n++) {
            for (int v = 0; v < Vp; v++) {
                if (v >= V || t[n] == -1) {
                    assertEquals(0f, got[n * Vp + v], op + " dlogits[" + n + "," + v + "] must be exactly 0"
                            + (t[n] == -1 ? " (ignored row)" : " (padded column)"));
                }
            }
        }
    }

    @Test
    void backwardRowsSumToZeroAndScaleWithDloss() {
        // softmax - onehot sums to 0 over a row; the gradient is linear in dloss
        int V = 37, Vp = 48;
        Random r = new Random(9);
        int[] t = targets(r, V);
        float[] x = logits(r, V, Vp, 0f);
        Buffer a = upload(be, x, "a"), b = upload(be, x, "b"), targets = upload(be, t, "targets");
        be.crossEntropyBackward(a, targets, 1f, N, V, Vp, 0f);
        be.crossEntropyBackward(b, targets, 0.25f, N, V, Vp, 0f);
        float[] ga = download(be, a), gb = download(be, b);
        double[] quarter = new double[ga.length];
        for (int i = 0; i < ga.length; i++) quarter[i] = 0.25 * ga[i];
        assertClose("crossEntropyBackward(dloss 0.25 vs 1)", "dlogits", quarter, gb, 1e-6, 0);
        for (int n = 0; n < N; n++) {
            double sum = 0;
            for (int v = 0; v < Vp; v++) sum += ga[n * Vp + v];
            assertEquals(0.0, sum, 1e-6, "crossEntropyBackward row " + n + " sum of dlogits");
        }
    }

    /**
     * The soft cap fused with the classifier (logits capped row by row as they are visited) gives the
     * bits of the soft cap followed by the fused classifier, for losses and gradients, with an
     * ignored row among them.
     */
    @Test
    void softcapFusedWithTheClassifierEqualsTheTwoOps() {
        int N = 5, V = 70, Vp = 80;
        float cap = 3f, dloss = 0.2f;
        float[] x = randn(new Random(9), N * Vp, 4);
        int[] t = {3, -1, 69, 0, 41};
        Buffer targets = be.allocate(gpt2.backend.DType.I32, N, "targets");
        be.write(targets, t);
        Buffer a = upload(be, x, "a"), la = upload(be, filled(N, Float.NaN), "la");
        be.softcapForward(a, (long) N * Vp, cap);
        be.crossEntropyFused(la, a, targets, dloss, N, V, Vp, cap);
        Buffer b = upload(be, x, "b"), lb = upload(be, filled(N, Float.NaN), "lb");
        be.softcapCrossEntropyFused(lb, b, targets, dloss, N, V, Vp, cap);
        assertExact("softcapCrossEntropyFused", "losses", download(be, la), download(be, lb));
        assertExact("softcapCrossEntropyFused", "gradients", download(be, a), download(be, b));
    }
}
