package gpt2.backend.cpu;

import gpt2.backend.Dropout;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.set;

/** Element-wise ops: GELU, residual add, dropout. */
final class Pointwise {
    private Pointwise() {
    }

    private static final long CHUNK = 4096;
    private static final float GELU_K = (float) Math.sqrt(2.0 / Math.PI);

    /** out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    static void geluForward(Parallel par, MemorySegment out, MemorySegment inp, long N) {
        par.forRange(N, CHUNK, (s, e) -> {
            for (long i = s; i < e; i++) {
                float x = get(inp, i);
                float u = GELU_K * (x + 0.044715f * x * x * x);
                set(out, i, 0.5f * x * (1f + (float) Math.tanh(u)));
            }
        });
    }

    /** dinp = gelu'(inp) * dout (dinp may alias dout). */
    static void geluBackward(Parallel par, MemorySegment dinp, MemorySegment inp, MemorySegment dout, long N) {
        par.forRange(N, CHUNK, (s, e) -> {
            for (long i = s; i < e; i++) {
                float x = get(inp, i);
                float u = GELU_K * (x + 0.044715f * x * x * x);
                float th = (float) Math.tanh(u);
                float sech2 = 1f - th * th;
                float grad = 0.5f * (1f + th) + 0.5f * x * sech2 * GELU_K * (1f + 3f * 0.044715f * x * x);
                set(dinp, i, grad * get(dout, i));
            }
        });
    }

    static void residualForward(Parallel par, MemorySegment out, MemorySegment a, MemorySegment b, long N) {
        par.forRange(N, CHUNK, (s, e) -> {
            for (long i = s; i < e; i++) set(out, i, get(a, i) + get(b, i));
        });
    }

    /** x *= mask / (1 - p), in place; forward and backward alike. */
    static void dropout(Parallel par, MemorySegment x, long N, Dropout d) {
        if (d == null || d.isOff()) return;
        par.forRange(N, CHUNK, (s, e) -> {
            for (long i = s; i < e; i++) set(x, i, get(x, i) * d.scale(i));
        });
    }
}
