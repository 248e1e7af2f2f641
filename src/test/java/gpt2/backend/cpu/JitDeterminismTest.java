package gpt2.backend.cpu;

import gpt2.backend.Dropout;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The ops give the same bits before and after HotSpot compiles them: the first call runs in the
 * interpreter (the Vector API's Java fallback), later calls run C2's intrinsics. Without this, a
 * run resumed in a fresh JVM would drift from the uninterrupted one.
 */
class JitDeterminismTest {

    private static MemorySegment random(Arena ar, long n, Random r, float scale) {
        MemorySegment s = ar.allocate(n * 4, 64);
        for (long i = 0; i < n; i++) F32.set(s, i, (float) r.nextGaussian() * scale);
        return s;
    }

    private static void assertSame(MemorySegment cold, MemorySegment warm, long n, String what) {
        int diffs = 0;
        for (long i = 0; i < n; i++) if (Float.floatToIntBits(F32.get(cold, i)) != Float.floatToIntBits(F32.get(warm, i))) diffs++;
        assertEquals(0, diffs, what + ": elements that changed once JIT-compiled");
    }

    @Test
    void matmulAndAttentionGiveTheSameBitsColdAndCompiled() {
        int N = 16, C = 48, OC = 40, B = 2, T = 8, NH = 3;
        Random r = new Random(1);
        try (Arena ar = Arena.ofConfined(); Parallel par = new Parallel(1)) {
            MemorySegment inp = random(ar, (long) N * C, r, 1f), w = random(ar, (long) OC * C, r, 0.1f);
            MemorySegment b = random(ar, OC, r, 0.1f), dout = random(ar, (long) N * OC, r, 1f);
            MemorySegment qkv = random(ar, (long) B * T * 3 * C, r, 1f), datt = random(ar, (long) B * T * C, r, 1f);
            MemorySegment[] cold = new MemorySegment[6], warm = new MemorySegment[6];
            long[] sizes = {(long) N * OC, (long) N * C, (long) OC * C, (long) B * T * C, (long) B * NH * T * T, (long) B * T * 3 * C};
            for (int i = 0; i < 6; i++) {
                cold[i] = ar.allocate(sizes[i] * 4, 64);
                warm[i] = ar.allocate(sizes[i] * 4, 64);
            }
            Dropout d = new Dropout(0.2f, 77);
            // cold: the first calls of this JVM run interpreted
            Matmul.forward(par, cold[0], inp, w, b, N, C, OC);
            Matmul.backward(par, cold[1], cold[2], null, dout, inp, w, N, C, OC);
            Attention.forward(par, cold[3], cold[4], qkv, B, T, C, NH, d);
            Attention.backward(par, cold[5], datt, qkv, cold[4], B, T, C, NH, d);
            for (int k = 0; k < 20_000; k++) {
                Matmul.forward(par, warm[0], inp, w, b, N, C, OC);
                warm[2].fill((byte) 0);
                Matmul.backward(par, warm[1], warm[2], null, dout, inp, w, N, C, OC);
                Attention.forward(par, warm[3], warm[4], qkv, B, T, C, NH, d);
                Attention.backward(par, warm[5], datt, qkv, warm[4], B, T, C, NH, d);
            }
            String[] names = {"matmul out", "matmul dinp", "matmul dweight", "attention out", "attention att", "attention dqkv"};
            for (int i = 0; i < 6; i++) assertSame(cold[i], warm[i], sizes[i], names[i]);
        }
    }

    @Test
    void geluAndCrossEntropyGiveTheSameBitsColdAndCompiled() {
        int n = 1000 + 7, N = 6, V = 300, Vp = 320;
        Random r = new Random(2);
        try (Arena ar = Arena.ofConfined(); Parallel par = new Parallel(1)) {
            MemorySegment x = random(ar, n, r, 3f), dout = random(ar, n, r, 1f), logits = random(ar, (long) N * Vp, r, 4f);
            MemorySegment targets = ar.allocate(4L * N, 64);
            for (int i = 0; i < N; i++) targets.setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, i, r.nextInt(V));
            MemorySegment[] cold = {ar.allocate(4L * n, 64), ar.allocate(4L * n, 64), ar.allocate(4L * N, 64), ar.allocate(4L * N * Vp, 64)};
            MemorySegment[] warm = {ar.allocate(4L * n, 64), ar.allocate(4L * n, 64), ar.allocate(4L * N, 64), ar.allocate(4L * N * Vp, 64)};
            Pointwise.geluForward(par, cold[0], x, n);
            Pointwise.geluBackward(par, cold[1], x, dout, n);
            CrossEntropy.forward(par, cold[2], logits, targets, N, V, Vp);
            cold[3].copyFrom(logits);
            CrossEntropy.backward(par, cold[3], targets, 0.5f, N, V, Vp, 0f);
            for (int k = 0; k < 20_000; k++) {
                Pointwise.geluForward(par, warm[0], x, n);
                Pointwise.geluBackward(par, warm[1], x, dout, n);
                CrossEntropy.forward(par, warm[2], logits, targets, N, V, Vp);
                warm[3].copyFrom(logits);
                CrossEntropy.backward(par, warm[3], targets, 0.5f, N, V, Vp, 0f);
            }
            long[] sizes = {n, n, N, (long) N * Vp};
            String[] names = {"gelu", "gelu backward", "cross-entropy losses", "cross-entropy dlogits"};
            for (int i = 0; i < 4; i++) assertSame(cold[i], warm[i], sizes[i], names[i]);
        }
    }
}
