package gpt2.backend.cpu;

import gpt2.backend.Buffer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.upload;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Muon's Newton–Schulz orthogonalisation against the SVD: for wide, tall and square matrices, random
 * and ill-conditioned, the output is close to U V^T of the input's SVD (a one-sided Jacobi SVD in
 * double below) with singular values in about [0.6, 1.25]; and the float32 op equals a
 * double-precision run of the same five quintic steps. Both GEMM paths: OpenBLAS and pure Java.
 * Public for {@link #newtonSchulz}, the double reference the Muon optimizer test uses too.
 */
public class NewtonSchulzTest {

    /** rows x cols of the shapes checked: wide, tall, square. */
    private static final int[][] SHAPES = {{24, 80}, {80, 24}, {48, 48}};

    @ParameterizedTest(name = "openblas={0}")
    @ValueSource(booleans = {true, false})
    void approximatesThePolarFactorAndMatchesADoubleRun(boolean blas) {
        if (blas) Assumptions.assumeTrue(Blas.available(), "OpenBLAS not loadable here: " + Blas.unavailableReason());
        Random r = new Random(7);
        try (CpuBackend be = new CpuBackend(2, blas)) {
            for (int[] shape : SHAPES) {
                int rows = shape[0], cols = shape[1];
                for (boolean illConditioned : new boolean[]{false, true}) {
                    String what = rows + "x" + cols + (illConditioned ? " ill-conditioned" : " random");
                    double[] x = illConditioned ? conditioned(r, rows, cols, 30) : gaussian(r, rows * cols);
                    float[] xf = new float[x.length];
                    for (int i = 0; i < x.length; i++) xf[i] = (float) x[i];
                    Buffer b = upload(be, xf, "x");
                    be.newtonSchulz(b, rows, cols, 5);
                    float[] out = download(be, b);

                    // the same five steps in double, from the same float32 input
                    double[] ref = newtonSchulz(toDouble(xf), rows, cols, 5);
                    double maxDiff = 0, maxRef = 0;
                    for (int i = 0; i < ref.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(out[i] - ref[i]));
                        maxRef = Math.max(maxRef, Math.abs(ref[i]));
                    }
                    // measured ~6e-7 on elements up to ~0.45 (both GEMM paths)
                    assertTrue(maxDiff < 2e-5, what + ": float32 vs double NS differ by " + maxDiff);

                    // close to the polar factor U V^T, singular values pushed into about [0.7, 1.2]
                    double[] polar = polar(toDouble(xf), rows, cols);
                    double err = 0, norm = 0;
                    for (int i = 0; i < polar.length; i++) {
                        err += (out[i] - polar[i]) * (out[i] - polar[i]);
                        norm += polar[i] * polar[i];
                    }
                    double rel = Math.sqrt(err / norm);
                    // measured 0.19-0.23: five quintic steps leave singular values in ~[0.65, 1.14], not at 1
                    assertTrue(rel < 0.3, what + ": ||NS(x) - U V^T|| / ||U V^T|| = " + rel);
                    double[] sv = singularValues(toDouble(out), rows, cols);
                    for (double s : sv) assertTrue(s > 0.6 && s < 1.25, what + ": singular value " + s + " of NS(x)");
                    be.free(b);
                }
            }
        }
    }

    // ------------------------------------------------------------------ references in double

    static double[] gaussian(Random r, int n) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) x[i] = r.nextGaussian();
        return x;
    }

    /** rows x cols = Q1 diag(s) Q2 with orthonormal Q1, Q2 and s log-spaced from 1 down to 1/cond. */
    static double[] conditioned(Random r, int rows, int cols, double cond) {
        int k = Math.min(rows, cols);
        double[] q1 = orthonormalColumns(gaussian(r, rows * k), rows, k); // (rows, k)
        double[] q2 = orthonormalColumns(gaussian(r, cols * k), cols, k); // (cols, k)
        double[] x = new double[rows * cols];
        for (int j = 0; j < k; j++) {
            double s = Math.pow(cond, -(double) j / (k - 1));
            for (int i = 0; i < rows; i++) {
                for (int c = 0; c < cols; c++) x[i * cols + c] += q1[i * k + j] * s * q2[c * k + j];
            }
        }
        return x;
    }

    /** Gram–Schmidt on the columns of a (m, k) row-major matrix. */
    static double[] orthonormalColumns(double[] a, int m, int k) {
        for (int j = 0; j < k; j++) {
            for (int p = 0; p < j; p++) {
                double d = 0;
                for (int i = 0; i < m; i++) d += a[i * k + j] * a[i * k + p];
                for (int i = 0; i < m; i++) a[i * k + j] -= d * a[i * k + p];
            }
            double n = 0;
            for (int i = 0; i < m; i++) n += a[i * k + j] * a[i * k + j];
            n = Math.sqrt(n);
            for (int i = 0; i < m; i++) a[i * k + j] /= n;
        }
        return a;
    }

    /** Muon's quintic iteration in double: X = x/||x||_F on the wide orientation; A = X X^T; X = a X + (b A + c A A) X. */
    public static double[] newtonSchulz(double[] x, int rows, int cols, int steps) {
        boolean tall = rows > cols;
        int r = tall ? cols : rows, c = tall ? rows : cols;
        double ss = 0;
        for (double v : x) ss += v * v;
        double inv = 1.0 / (Math.sqrt(ss) + 1e-7);
        double[] X = new double[r * c];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) X[tall ? j * rows + i : i * cols + j] = x[i * cols + j] * inv;
        }
        double a = 3.4445, b = -4.7750, cc = 2.0315;
        for (int s = 0; s < steps; s++) {
            double[] A = new double[r * r];
            for (int i = 0; i < r; i++) {
                for (int j = 0; j < r; j++) {
                    double d = 0;
                    for (int k = 0; k < c; k++) d += X[i * c + k] * X[j * c + k];
                    A[i * r + j] = d;
                }
            }
            double[] B = new double[r * r];
            for (int i = 0; i < r; i++) {
                for (int j = 0; j < r; j++) {
                    double d = 0;
                    for (int k = 0; k < r; k++) d += A[i * r + k] * A[k * r + j];
                    B[i * r + j] = b * A[i * r + j] + cc * d;
                }
            }
            double[] Xn = new double[r * c];
            for (int i = 0; i < r; i++) {
                for (int j = 0; j < c; j++) {
                    double d = 0;
                    for (int k = 0; k < r; k++) d += B[i * r + k] * X[k * c + j];
                    Xn[i * c + j] = a * X[i * c + j] + d;
                }
            }
            X = Xn;
        }
        double[] out = new double[rows * cols];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) out[i * cols + j] = X[tall ? j * rows + i : i * cols + j];
        }
        return out;
    }

    /** One-sided Jacobi SVD of a (m, n) row-major matrix with m >= n: {U (m,n), s (n), V (n,n)}, A = U diag(s) V^T. */
    static double[][] jacobiSvd(double[] a, int m, int n) {
        double[] u = a.clone(), v = new double[n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1;
        for (int sweep = 0; sweep < 60; sweep++) {
            double off = 0;
            for (int p = 0; p < n - 1; p++) {
                for (int q = p + 1; q < n; q++) {
                    double alpha = 0, beta = 0, gamma = 0;
                    for (int i = 0; i < m; i++) {
                        alpha += u[i * n + p] * u[i * n + p];
                        beta += u[i * n + q] * u[i * n + q];
                        gamma += u[i * n + p] * u[i * n + q];
                    }
                    if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
                    off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
                    double zeta = (beta - alpha) / (2 * gamma);
                    double t = Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
                    if (zeta == 0) t = 1;
                    double c = 1 / Math.sqrt(1 + t * t), s = c * t;
                    for (int i = 0; i < m; i++) {
                        double up = u[i * n + p], uq = u[i * n + q];
                        u[i * n + p] = c * up - s * uq;
                        u[i * n + q] = s * up + c * uq;
                    }
                    for (int i = 0; i < n; i++) {
                        double vp = v[i * n + p], vq = v[i * n + q];
                        v[i * n + p] = c * vp - s * vq;
                        v[i * n + q] = s * vp + c * vq;
                    }
                }
            }
            if (off < 1e-14) break;
        }
        double[] s = new double[n];
        for (int j = 0; j < n; j++) {
            double nn = 0;
            for (int i = 0; i < m; i++) nn += u[i * n + j] * u[i * n + j];
            s[j] = Math.sqrt(nn);
            for (int i = 0; i < m; i++) u[i * n + j] /= s[j];
        }
        return new double[][]{u, s, v};
    }

    static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[a.length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
        return t;
    }

    /** U V^T of the SVD of a (rows, cols) matrix (the nearest semi-orthogonal matrix). */
    static double[] polar(double[] x, int rows, int cols) {
        boolean wide = rows < cols;
        int m = wide ? cols : rows, n = wide ? rows : cols;
        double[][] svd = jacobiSvd(wide ? transpose(x, rows, cols) : x, m, n);
        double[] u = svd[0], v = svd[2], q = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int k = 0; k < n; k++) d += u[i * n + k] * v[j * n + k];
                q[i * n + j] = d;
            }
        }
        return wide ? transpose(q, m, n) : q;
    }

    static double[] singularValues(double[] x, int rows, int cols) {
        boolean wide = rows < cols;
        return jacobiSvd(wide ? transpose(x, rows, cols) : x, wide ? cols : rows, wide ? rows : cols)[1];
    }

    /** The Jacobi SVD itself: it reconstructs its input and its U V^T is orthogonal (so the checks above mean something). */
    @org.junit.jupiter.api.Test
    void jacobiSvdReconstructsAndIsOrthogonal() {
        Random r = new Random(3);
        int m = 20, n = 12;
        double[] a = conditioned(r, m, n, 100);
        double[][] svd = jacobiSvd(a, m, n);
        double[] u = svd[0], s = svd[1], v = svd[2];
        double maxErr = 0;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int k = 0; k < n; k++) d += u[i * n + k] * s[k] * v[j * n + k];
                maxErr = Math.max(maxErr, Math.abs(d - a[i * n + j]));
            }
        }
        assertTrue(maxErr < 1e-10, "U S V^T differs from A by " + maxErr);
        java.util.Arrays.sort(s);
        assertTrue(Math.abs(s[n - 1] - 1) < 1e-9 && Math.abs(s[0] - 0.01) < 1e-9, "singular values " + java.util.Arrays.toString(s));
        double[] q = polar(a, m, n);
        for (double sv : singularValues(q, m, n)) assertTrue(Math.abs(sv - 1) < 1e-9, "U V^T has singular value " + sv);
    }
}
