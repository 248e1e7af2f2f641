package gpt2.backend.cpu;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static gpt2.backend.cpu.OpTestSupport.assertClose;
import static gpt2.backend.cpu.OpTestSupport.dot;
import static gpt2.backend.cpu.OpTestSupport.download;
import static gpt2.backend.cpu.OpTestSupport.filled;
import static gpt2.backend.cpu.OpTestSupport.numericGrad;
import static gpt2.backend.cpu.OpTestSupport.plus;
import static gpt2.backend.cpu.OpTestSupport.randn;
import static gpt2.backend.cpu.OpTestSupport.toDouble;
import static gpt2.backend.cpu.OpTestSupport.upload;

/** Token + position embedding against a double reference; gradients by finite differences. */
class EncoderTest {

    // B*T = 39 rows (more than the 2 threads and over the 16-row chunk), C = 37 (not a power of 2),
    // tokens drawn from a small vocabulary so that repeated tokens must add up in dwte
    static final int B = 3, T = 13, C = 37, Vp = 11, MAX_T = 16;

    private final Backend be = new CpuBackend(2);

    @AfterEach
    void close() {
        be.close();
    }

    /** out (B,T,C) = wte[tokens] + wpe[t]. */
    static double[] reference(double[] wte, double[] wpe, int[] tokens) {
        double[] out = new double[B * T * C];
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                int bt = b * T + t;
                for (int c = 0; c < C; c++) out[bt * C + c] = wte[tokens[bt] * C + c] + wpe[t * C + c];
            }
        }
        return out;
    }

    static int[] tokens(Random r) {
        int[] tok = new int[B * T];
        for (int i = 0; i < tok.length; i++) tok[i] = r.nextInt(Vp);
        tok[0] = Vp - 1;   // the last row of wte is reachable
        return tok;
    }

    @Test
    void forwardMatchesReference() {
        Random r = new Random(1);
        float[] wte = randn(r, Vp * C, 1), wpe = randn(r, MAX_T * C, 1);
        int[] tok = tokens(r);
        Buffer out = upload(be, filled(B * T * C, Float.NaN), "out");
        be.encoderForward(out, upload(be, tok, "tokens"), upload(be, wte, "wte"), upload(be, wpe, "wpe"), B, T, C);
        assertClose("encoderForward", "out", reference(toDouble(wte), toDouble(wpe), tok), download(be, out),
                1e-6, 1e-7);
    }

    @Test
    void backwardMatchesFiniteDifferencesAndAccumulates() {
        Random r = new Random(2);
        float[] wte = randn(r, Vp * C, 1), wpe = randn(r, MAX_T * C, 1), dout = randn(r, B * T * C, 1);
        int[] tok = tokens(r);
        // parameter gradients accumulate: start from known nonzero values
        float[] dwte0 = randn(r, Vp * C, 1), dwpe0 = randn(r, MAX_T * C, 1);
        Buffer dwte = upload(be, dwte0, "dwte"), dwpe = upload(be, dwpe0, "dwpe");
        be.encoderBackward(dwte, dwpe, upload(be, dout, "dout"), upload(be, tok, "tokens"), B, T, C);

        double[] wteD = toDouble(wte), wpeD = toDouble(wpe), doutD = toDouble(dout);
        double[] gWte = numericGrad(wteD, () -> dot(doutD, reference(wteD, wpeD, tok)));
        double[] gWpe = numericGrad(wpeD, () -> dot(doutD, reference(wteD, wpeD, tok)));
        assertClose("encoderBackward", "dwte", plus(dwte0, gWte), download(be, dwte), 1e-5, 1e-5);
        // rows t >= T of wpe get no gradient: they keep their old values (the FD says 0 there)
        assertClose("encoderBackward", "dwpe", plus(dwpe0, gWpe), download(be, dwpe), 1e-5, 1e-5);
    }

    @Test
    void twoBackwardCallsAddUp() {
        // micro-batches: two calls on the same grads equal one call with the summed dout
        Random r = new Random(3);
        int[] tok = tokens(r);
        float[] d1 = randn(r, B * T * C, 1), d2 = randn(r, B * T * C, 1);
        Buffer dwte = be.allocate(DType.F32, Vp * C, "dwte");
        Buffer dwpe = be.allocate(DType.F32, MAX_T * C, "dwpe");
        Buffer tokens = upload(be, tok, "tokens");
        be.encoderBackward(dwte, dwpe, upload(be, d1, "d1"), tokens, B, T, C);
        be.encoderBackward(dwte, dwpe, upload(be, d2, "d2"), tokens, B, T, C);

        double[] expWte = new double[Vp * C], expWpe = new double[MAX_T * C];
        for (int bt = 0; bt < B * T; bt++) {
            for (int c = 0; c < C; c++) {
                double d = (double) d1[bt * C + c] + d2[bt * C + c];
                expWte[tok[bt] * C + c] += d;
                expWpe[(bt % T) * C + c] += d;
            }
        }
        assertClose("encoderBackward x2", "dwte", expWte, download(be, dwte), 1e-5, 1e-6);
        assertClose("encoderBackward x2", "dwpe", expWpe, download(be, dwpe), 1e-5, 1e-6);
    }
}
