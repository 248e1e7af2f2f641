package gpt2.backend.cuda;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;

/**
 * Muon's backend ops on the GPU, in float32: the Nesterov momentum and axpy as element-wise
 * kernels (kernels/muon.cu), and Newton–Schulz orthogonalisation as cuBLAS GEMMs with small
 * kernels between them, the same iteration as gpt2.backend.cpu.NewtonSchulz:
 * <pre>
 * x (rows,cols) -sum of squares-> ss -transpose_scale (transposed when rows > cols)-> X (r,c), r <= c
 * steps x:  A = X X^T (GEMM);  AA = A A (GEMM);  AA = b A + c AA (axpby);  Y = AA X (GEMM);  Y += a X (axpby);  X, Y swap
 * X -transpose_scale (back)-> x
 * </pre>
 * Row-major products as column-major GEMMs: R (m,n) = P (m,k) Q (k,n) is R^T = Q^T P^T, i.e.
 * gemm(n, m, k, Q, P); X X^T is op(X^T)^T X^T with X^T the buffer read column-major.
 */
final class CudaMuon {

    private static final float A = Backend.NS_A, B = Backend.NS_B, C = Backend.NS_C;
    private static final boolean NO_T = false, TRANS = true;

    private final CudaBackend be;

    CudaMuon(CudaBackend backend) {
        this.be = backend;
    }

    void momentum(Buffer grads, Buffer buf, float mu, float gradScale) {
        long n = grads.length();
        if (buf.length() != n) throw new IllegalArgumentException("muonMomentum: grads and buf differ in length");
        CudaBackend.expect(grads, DType.F32, n, "muonMomentum grads");
        CudaBackend.expect(buf, DType.F32, n, "muonMomentum buf");
        be.settle(); // the gradients must be whole
        be.launch("muon_momentum", 20 * n, CudaBackend.blocks(n, 256), 256, grads, buf, n, mu, gradScale);
    }

    void axpy(Buffer y, Buffer x, float alpha, long n) {
        CudaBackend.expect(y, DType.F32, n, "axpy y");
        CudaBackend.expect(x, DType.F32, n, "axpy x");
        be.settle();
        be.launch("axpby", 12 * n, CudaBackend.blocks(n, 256), 256, y, x, alpha, 1f, n);
    }

    void newtonSchulz(Buffer x, int rows, int cols, int steps) {
        long n = (long) rows * cols;
        CudaBackend.expect(x, DType.F32, n, "newtonSchulz x");
        boolean tall = rows > cols;
        int r = tall ? cols : rows, c = tall ? rows : cols; // X is (r, c), r <= c
        CudaBuffer X = be.scratch("ns_x", DType.F32, n), Y = be.scratch("ns_y", DType.F32, n);
        CudaBuffer Am = be.scratch("ns_a", DType.F32, (long) r * r), AA = be.scratch("ns_aa", DType.F32, (long) r * r);
        CudaBuffer ss = be.scratch("ns_ss", DType.F32, 1);
        be.sumOfSquares(ss, x); // settles the queued gradient sums too
        be.launch("transpose_scale", 8 * n + 4, CudaBackend.blocks(n, 256), 256, X, x, ss, rows, cols, tall ? 1 : 0);
        long rr = (long) r * r;
        for (int s = 0; s < steps; s++) {
            be.gemm("newton-schulz", TRANS, NO_T, r, r, c, X, c, X, c, Am, r, false);  // A = X X^T
            be.gemm("newton-schulz", NO_T, NO_T, r, r, r, Am, r, Am, r, AA, r, false); // AA = A A
            be.launch("axpby", 12 * rr, CudaBackend.blocks(rr, 256), 256, AA, Am, B, C, rr); // b A + c A A
            be.gemm("newton-schulz", NO_T, NO_T, c, r, r, X, c, AA, r, Y, c, false);   // Y = (b A + c A A) X
            be.launch("axpby", 12 * n, CudaBackend.blocks(n, 256), 256, Y, X, A, 1f, n); // Y += a X
            CudaBuffer t = X;
            X = Y;
            Y = t;
        }
        be.launch("transpose_scale", 8 * n, CudaBackend.blocks(n, 256), 256, x, X, null, r, c, tall ? 1 : 0);
    }
}
