package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.filled;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;

/**
 * Every attention test again with the attention as OpenBLAS GEMMs per head at every sequence length
 * (the backend's choice from {@link CpuBackend#ATTENTION_GEMM_MIN_T} on; dropout stays on the Java kernels).
 */
class GemmAttentionTest extends AttentionTest {

    @Override
    Backend backend() {
        Assumptions.assumeTrue(CpuBackend.blasAvailable(), "OpenBLAS not loaded: the GEMM attention cannot run");
        return new CpuBackend(2, true, 1);
    }

    /**
     * The GEMM backward over several row blocks (T = 150 > 128) against the Java kernels' backward,
     * which the finite-difference tests check at short lengths.
     */
    @Test
    void backwardOverSeveralRowBlocksMatchesTheJavaKernels() {
        int B = 2, T = 150, C = 24, NH = 2;
        Random r = new Random(150);
        float[] qkv = randn(r, B * T * 3 * C, 1), dout = randn(r, B * T * C, 1);
        float[][] grads = new float[2][];
        for (int path = 0; path < 2; path++) {
            try (Backend be = path == 0 ? new CpuBackend(2, true, Integer.MAX_VALUE) : new CpuBackend(2, true, 1)) {
                Buffer q = upload(be, qkv, "qkv"), att = upload(be, filled(B * NH * T * T, Float.NaN), "att");
                be.attentionForward(upload(be, filled(B * T * C, Float.NaN), "out"), att, q, B, T, C, NH, null);
                Buffer dq = upload(be, filled(B * T * 3 * C, Float.NaN), "dqkv");
                be.attentionBackward(dq, upload(be, dout, "dout"), q, att, B, T, C, NH, null);
                grads[path] = download(be, dq);
            }
        }
        assertClose("attentionBackward by GEMMs (T=150)", "dqkv", toDouble(grads[0]), grads[1], 1e-4, 1e-5);
    }
}
