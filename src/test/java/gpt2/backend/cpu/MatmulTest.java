package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

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

/** Linear layer out = inp @ W^T + b against a double reference, with and without bias. */
class MatmulTest {

    /** The GEMM under test; {@link JavaGemmMatmulTest} runs every test on the pure-Java GEMM too. */
    CpuBackend backend() {
        return new CpuBackend(2);
    }


    private final Backend be = backend();

    @AfterEach
    void close() {
        be.close();
    }

    /** out (N,OC) = inp (N,C) @ w (OC,C)^T + bias (OC, or null). */
    static double[] reference(double[] inp, double[] w, double[] bias, int N, int C, int OC) {
        double[] out = new double[N * OC];
        for (int n = 0; n < N; n++) {
            for (int o = 0; o < OC; o++) {
                double s = bias == null ? 0 : bias[o];
                for (int c = 0; c < C; c++) s += inp[n * C + c] * w[o * C + c];
                out[n * OC + o] = s;
            }
        }
        return out;
    }

    // shapes: row tiles of 4 with a tail (N = 11, 5), output blocks of 32 with a tail (OC = 45, 70),
    // vector loops with a scalar tail (C = 37, 19) and without (C = 64), fewer rows than threads (N = 1)
    @ParameterizedTest(name = "N={0} C={1} OC={2} bias={3}")
    @CsvSource({
            "11, 37, 45, true", "11, 37, 45, false",
            "5, 19, 70, true", "5, 19, 70, false",
            "8, 64, 32, true", "1, 37, 3, false",
            // decoding's rows (N <= 4: each weight row read once): groups of 4 weight rows with a tail
            "1, 64, 1030, true", "3, 37, 70, true", "4, 768, 45, false"})
    void forwardMatchesReference(int N, int C, int OC, boolean withBias) {
        Random r = new Random(N * 1000 + C * 10 + OC);
        float[] x = randn(r, N * C, 1), w = randn(r, OC * C, 1), b = randn(r, OC, 1);
        Buffer out = upload(be, filled(N * OC, Float.NaN), "out");
        be.matmulForward(out, upload(be, x, "inp"), upload(be, w, "weight"), withBias ? upload(be, b, "bias") : null,
                N, C, OC);
        double[] ref = reference(toDouble(x), toDouble(w), withBias ? toDouble(b) : null, N, C, OC);
        assertClose("matmulForward(" + N + "," + C + "," + OC + ",bias=" + withBias + ")", "out", ref,
                download(be, out), 1e-5, 1e-6);
    }

    @ParameterizedTest(name = "N={0} C={1} OC={2} bias={3}")
    @CsvSource({
            "11, 37, 45, true", "11, 37, 45, false",
            "5, 19, 70, true", "5, 19, 70, false",
            "8, 64, 32, true", "1, 37, 3, false"})
    void backwardMatchesFiniteDifferences(int N, int C, int OC, boolean withBias) {
        Random r = new Random(N * 1000 + C * 10 + OC + 1);
        float[] x = randn(r, N * C, 1), w = randn(r, OC * C, 1), b = randn(r, OC, 1), dout = randn(r, N * OC, 1);
        // dinp is an activation gradient: overwritten, so garbage (NaN) before must not matter;
        // dweight and dbias are parameter gradients: they accumulate onto known values
        float[] dw0 = randn(r, OC * C, 1), db0 = randn(r, OC, 1);
        Buffer dinp = upload(be, filled(N * C, Float.NaN), "dinp");
        Buffer dweight = upload(be, dw0, "dweight");
        Buffer dbias = withBias ? upload(be, db0, "dbias") : null;
        be.matmulBackward(dinp, dweight, dbias, upload(be, dout, "dout"), upload(be, x, "inp"),
                upload(be, w, "weight"), N, C, OC);

        double[] xd = toDouble(x), wd = toDouble(w), bd = withBias ? toDouble(b) : null, dd = toDouble(dout);
        DoubleSupplier loss = () -> dot(dd, reference(xd, wd, bd, N, C, OC));
        String op = "matmulBackward(" + N + "," + C + "," + OC + ",bias=" + withBias + ")";
        assertClose(op, "dinp", numericGrad(xd, loss), download(be, dinp), 1e-5, 1e-6);
        assertClose(op, "dweight", plus(dw0, numericGrad(wd, loss)), download(be, dweight), 1e-5, 1e-6);
        if (withBias) assertClose(op, "dbias", plus(db0, numericGrad(bd, loss)), download(be, dbias), 1e-5, 1e-6);
    }

    @Test
    void zeroRowsOfDoutStillOverwriteDinp() {
        // rows whose dout is all zero (e.g. ignored targets) must come out as 0, not as leftovers
        int N = 6, C = 37, OC = 45;
        Random r = new Random(5);
        float[] x = randn(r, N * C, 1), w = randn(r, OC * C, 1), dout = new float[N * OC];
        for (int o = 0; o < OC; o++) dout[2 * OC + o] = (float) r.nextGaussian();
        Buffer dinp = upload(be, filled(N * C, 123f), "dinp");
        be.matmulBackward(dinp, upload(be, new float[OC * C], "dweight"), null, upload(be, dout, "dout"),
                upload(be, x, "inp"), upload(be, w, "weight"), N, C, OC);
        double[] ref = new double[N * C];
        for (int c = 0; c < C; c++) {
            for (int o = 0; o < OC; o++) ref[2 * C + c] += (double) dout[2 * OC + o] * w[o * C + c];
        }
        assertClose("matmulBackward(zero dout rows)", "dinp", ref, download(be, dinp), 1e-5, 1e-6);
    }

    /** --threads N bounds OpenBLAS's own pool too (it is process-wide and kept its default before). */
    @Test
    void theBackendsThreadCountBoundsOpenBlas() {
        org.junit.jupiter.api.Assumptions.assumeTrue(Blas.available(), "OpenBLAS not loadable here: " + Blas.unavailableReason());
        try (CpuBackend one = new CpuBackend(1)) {
            org.junit.jupiter.api.Assertions.assertEquals(1, Blas.threads());
        }
        try (CpuBackend three = new CpuBackend(3)) {
            org.junit.jupiter.api.Assertions.assertEquals(3, Blas.threads());
        }
    }
}
