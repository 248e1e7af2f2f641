package gpt2.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/**
 * Muon's orthogonalisation: Newton–Schulz iterations of the quintic that pushes every singular
 * value of X / ||X||_F towards 1 (about U V^T of the SVD), in float32.
 * <pre>
 * X = x / ||x||_F  (transposed first when rows > cols, so X X^T is the small Gram matrix)
 * steps x:  A = X X^T;  B = b A + c A A;  X = a X + B X        a, b, c = 3.4445, -4.7750, 2.0315
 * </pre>
 * GEMMs through OpenBLAS when the backend uses it, else a plain Java loop (same results up to
 * rounding; the tests compare both with a double-precision reference).
 */
final class NewtonSchulz implements AutoCloseable {

    private static final float A = gpt2.backend.Backend.NS_A, B = gpt2.backend.Backend.NS_B, C = gpt2.backend.Backend.NS_C;

    private final Parallel par;
    private final boolean blas;
    /** Scratch X, X', A, B, kept between calls (every Muon step orthogonalises the same shapes), grown when a bigger matrix comes. */
    private Arena arena;
    private long capacity, gramCapacity;
    private MemorySegment x0, x1, gram, poly;

    NewtonSchulz(Parallel par, boolean blas) {
        this.par = par;
        this.blas = blas;
    }

    /** Scratch for n elements of X and r x r of the Gram matrices: shared, since the pure-Java GEMM reads it from the pool threads. */
    private void reserve(long n, long rr) {
        if (arena != null && n <= capacity && rr <= gramCapacity) return;
        if (arena != null) arena.close();
        capacity = Math.max(n, capacity);
        gramCapacity = Math.max(rr, gramCapacity);
        arena = Arena.ofShared();
        x0 = arena.allocate(4 * capacity, 64);
        x1 = arena.allocate(4 * capacity, 64);
        gram = arena.allocate(4 * gramCapacity, 64);
        poly = arena.allocate(4 * gramCapacity, 64);
    }

    synchronized void orthogonalize(MemorySegment x, int rows, int cols, int steps) {
        boolean tall = rows > cols;
        int r = tall ? cols : rows, c = tall ? rows : cols; // X is (r, c), r <= c
        long n = (long) rows * cols;
        reserve(n, (long) r * r);
        MemorySegment X = x0, Xn = x1, Am = gram, Bm = poly;
        double ss = Optimizer.sumOfSquares(par, x, n);
        float inv = (float) (1.0 / (Math.sqrt(ss) + 1e-7));
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                float v = get(x, (long) i * cols + j) * inv;
                set(X, tall ? (long) j * rows + i : (long) i * cols + j, v);
            }
        }
        for (int s = 0; s < steps; s++) {
            gemm(par, blas, false, true, r, r, c, 1f, X, Am, 0f);   // A = X X^T
            MemorySegment.copy(Am, 0, Bm, 0, 4L * r * r);
            gemm(par, blas, false, false, r, r, r, C, Am, Bm, B);   // B = c A A + b A
            MemorySegment.copy(X, 0, Xn, 0, 4 * n);
            gemm(par, blas, false, false, r, c, r, 1f, Bm, X, Xn, A); // X' = B X + a X
            MemorySegment t = X;
            X = Xn;
            Xn = t;
        }
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                set(x, (long) i * cols + j, get(X, tall ? (long) j * rows + i : (long) i * cols + j));
            }
        }
    }

    @Override
    public synchronized void close() {
        if (arena != null) arena.close();
        arena = null;
    }

    /** out (M,N) = alpha a (M,K) a^T (or a a for transB false, a square) + beta out: a Gram or square product. */
    private static void gemm(Parallel par, boolean blas, boolean transA, boolean transB, int M, int N, int K, float alpha,
                             MemorySegment a, MemorySegment out, float beta) {
        gemm(par, blas, transA, transB, M, N, K, alpha, a, a, out, beta);
    }

    /** Row-major out (M,N) = alpha op(a) (M,K) op(b) (K,N) + beta out; transA is always false here. */
    private static void gemm(Parallel par, boolean blas, boolean transA, boolean transB, int M, int N, int K, float alpha,
                             MemorySegment a, MemorySegment b, MemorySegment out, float beta) {
        if (transA) throw new IllegalArgumentException("transA not used");
        if (blas) {
            Blas.sgemm(false, transB, M, N, K, alpha, a, K, b, transB ? K : N, beta, out, N);
            return;
        }
        par.forRange(M, 1, (m0, m1) -> {
            float[] row = new float[N];
            for (long i = m0; i < m1; i++) {
                java.util.Arrays.fill(row, 0f);
                for (int k = 0; k < K; k++) {
                    float aik = get(a, i * K + k);
                    if (transB) {
                        for (int j = 0; j < N; j++) row[j] += aik * get(b, (long) j * K + k);
                    } else {
                        for (int j = 0; j < N; j++) row[j] += aik * get(b, (long) k * N + j);
                    }
                }
                for (int j = 0; j < N; j++) set(out, i * N + j, alpha * row[j] + beta * get(out, i * N + j));
            }
        });
    }
}
