package gpt2.backend.cpu;

import gpt2.backend.Dropout;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/** Element-wise ops: GELU, ReLU², logit soft-capping, residual add, dropout. */
final class Pointwise {
    private Pointwise() {
    }

    private static final long CHUNK = 4096;
    private static final float GELU_K = (float) Math.sqrt(2.0 / Math.PI);

    /**
     * out = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as x * s with
     * s = (1 + tanh u) / 2 = 1 / (1 + exp(-2u)): no cancellation where tanh is near -1. Vector
     * lanes and the scalar tail do the same float operations in the same order.
     */
    static void geluForward(Parallel par, MemorySegment out, MemorySegment inp, long N) {
        par.forBlocks(N, CHUNK, (s, e) -> geluForward(out, inp, s, e));
    }

    /**
     * One thread's range. Every vector loop of the backend sits in a small method of its own: a large
     * method (a lambda with several loops) runs out of the JIT's inlining budget and its vector
     * operations fall back to objects, several times slower.
     */
    private static void geluForward(MemorySegment out, MemorySegment inp, long s, long e) {
        int L = F32.S.length(), n = (int) (e - s), k = 0;
        for (int bound = n / L * L; k < bound; k += L) { // int-counted: the JIT's fast loop form
            long i = s + k;
            FloatVector x = F32.load(inp, i);
            FloatVector u = x.mul(x).mul(x).mul(0.044715f).add(x).mul(GELU_K);
            FloatVector sig = FastMath.exp(u.mul(-2f)).add(1f);
            F32.store(x.div(sig), out, i);
        }
        for (long i = s + k; i < e; i++) {
            float x = get(inp, i);
            float u = (x * x * x * 0.044715f + x) * GELU_K;
            set(out, i, x / (FastMath.exp(u * -2f) + 1f));
        }
    }

    /**
     * dinp = gelu'(inp) * dout (dinp may alias dout). With s = 1 / (1 + e), e = exp(-2u):
     * (1 + tanh u) / 2 = s and 1 - tanh^2 u = 4 s (1 - s) = 4 s (e s), so
     * gelu'(x) = s + 2 x s (e s) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
     */
    static void geluBackward(Parallel par, MemorySegment dinp, MemorySegment inp, MemorySegment dout, long N) {
        par.forBlocks(N, CHUNK, (s, e) -> geluBackward(dinp, inp, dout, s, e));
    }

    private static void geluBackward(MemorySegment dinp, MemorySegment inp, MemorySegment dout, long s, long e) {
        int L = F32.S.length(), n = (int) (e - s), k = 0;
        for (int bound = n / L * L; k < bound; k += L) { // int-counted: the JIT's fast loop form
            long i = s + k;
            FloatVector x = F32.load(inp, i);
            FloatVector u = x.mul(x).mul(x).mul(0.044715f).add(x).mul(GELU_K);
            FloatVector ex = FastMath.exp(u.mul(-2f));
            FloatVector sg = FloatVector.broadcast(F32.S, 1f).div(ex.add(1f));
            FloatVector d = x.mul(x).mul(3f * 0.044715f).add(1f).mul(GELU_K);
            FloatVector grad = sg.add(x.mul(2f).mul(sg).mul(ex.mul(sg)).mul(d));
            F32.store(grad.mul(F32.load(dout, i)), dinp, i);
        }
        for (long i = s + k; i < e; i++) {
            float x = get(inp, i);
            float u = (x * x * x * 0.044715f + x) * GELU_K;
            float ex = FastMath.exp(u * -2f);
            float sg = 1f / (ex + 1f);
            float d = (x * x * (3f * 0.044715f) + 1f) * GELU_K;
            float grad = sg + x * 2f * sg * (ex * sg) * d;
            set(dinp, i, grad * get(dout, i));
        }
    }

    /** out = relu(x)^2. */
    static void reluSquaredForward(Parallel par, MemorySegment out, MemorySegment inp, long N) {
        par.forBlocks(N, CHUNK, (s, e) -> reluSquared(out, inp, s, e));
    }

    private static void reluSquared(MemorySegment out, MemorySegment inp, long s, long e) {
        int L = F32.S.length(), n = (int) (e - s), k = 0;
        for (int bound = n / L * L; k < bound; k += L) { // int-counted: the JIT's fast loop form
            long i = s + k;
            FloatVector x = F32.load(inp, i).max(0f);
            F32.store(x.mul(x), out, i);
        }
        for (long i = s + k; i < e; i++) {
            float x = Math.max(get(inp, i), 0f);
            set(out, i, x * x);
        }
    }

    /** dinp = 2 relu(x) * dout (dinp may alias dout). */
    static void reluSquaredBackward(Parallel par, MemorySegment dinp, MemorySegment inp, MemorySegment dout, long N) {
        par.forBlocks(N, CHUNK, (s, e) -> reluSquaredBackward(dinp, inp, dout, s, e));
    }

    private static void reluSquaredBackward(MemorySegment dinp, MemorySegment inp, MemorySegment dout, long s, long e) {
        int L = F32.S.length(), n = (int) (e - s), k = 0;
        for (int bound = n / L * L; k < bound; k += L) { // int-counted: the JIT's fast loop form
            long i = s + k;
            F32.store(F32.load(inp, i).max(0f).mul(2f).mul(F32.load(dout, i)), dinp, i);
        }
        for (long i = s + k; i < e; i++) set(dinp, i, 2f * Math.max(get(inp, i), 0f) * get(dout, i));
    }

    /**
     * x = cap * tanh(x / cap) in place, tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|) (no
     * overflow for any u); vector lanes and the scalar tail compute the same bits.
     */
    static void softcapForward(Parallel par, MemorySegment x, long N, float cap) {
        par.forBlocks(N, CHUNK, (s, e) -> softcap(x, s, e, cap));
    }

    /** x = cap tanh(x / cap) over [s, e). */
    static void softcap(MemorySegment x, long s, long e, float cap) {
        float inv = 1f / cap;
        int L = F32.S.length(), n = (int) (e - s), k = 0;
        for (int bound = n / L * L; k < bound; k += L) { // int-counted: the JIT's fast loop form
            long i = s + k;
            FloatVector u = F32.load(x, i).mul(inv);
            FloatVector ex = FastMath.expNonPositive(u.abs().mul(-2f));
            FloatVector t = FloatVector.broadcast(F32.S, 1f).sub(ex).div(ex.add(1f)).mul(cap);
            F32.store(t.blend(t.neg(), u.compare(jdk.incubator.vector.VectorOperators.LT, 0f)), x, i);
        }
        for (long i = s + k; i < e; i++) {
            float u = get(x, i) * inv;
            float ex = FastMath.exp(Math.abs(u) * -2f);
            float t = (1f - ex) / (ex + 1f) * cap;
            set(x, i, u < 0f ? -t : t);
        }
    }

    static void residualForward(Parallel par, MemorySegment out, MemorySegment a, MemorySegment b, long N) {
        par.forBlocks(N, CHUNK, (s, e) -> F32.add(a, b, out, s, (int) (e - s)));
    }

    /** x *= mask / (1 - p), in place; forward and backward alike. */
    static void dropout(Parallel par, MemorySegment x, long N, Dropout d) {
        if (d == null || d.isOff()) return;
        par.forBlocks(N, CHUNK, (s, e) -> {
            for (long i = s; i < e; i++) set(x, i, get(x, i) * d.scale(i));
        });
    }
}
