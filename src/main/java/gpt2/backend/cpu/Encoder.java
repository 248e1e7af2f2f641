package gpt2.backend.cpu;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.getInt;
import static gpt2.backend.cpu.F32.set;

/** Token + position embedding. */
final class Encoder {
    private Encoder() {
    }

    /** out (B,T,C) = wte (Vp,C)[tokens (B,T)] + wpe (maxT,C)[t] (wpe null: no position term, RoPE). */
    static void forward(Parallel par, MemorySegment out, MemorySegment tokens, MemorySegment wte, MemorySegment wpe,
                        int B, int T, int C) {
        par.forRange((long) B * T, 16, (s, e) -> {
            for (long bt = s; bt < e; bt++) {
                long t = bt % T;
                long ix = getInt(tokens, bt);
                for (int c = 0; c < C; c++) {
                    set(out, bt * C + c, get(wte, ix * C + c) + (wpe == null ? 0f : get(wpe, t * C + c)));
                }
            }
        });
    }

    /**
     * dwte +=, dwpe += from dout (B,T,C). Threads own disjoint channel ranges, so repeated tokens
     * never race and the sums are repeatable.
     */
    static void backward(Parallel par, MemorySegment dwte, MemorySegment dwpe, MemorySegment dout,
                         MemorySegment tokens, int B, int T, int C) {
        par.forRange(C, 8, (c0, c1) -> {
            for (long bt = 0; bt < (long) B * T; bt++) {
                long t = bt % T;
                long ix = getInt(tokens, bt);
                for (long c = c0; c < c1; c++) {
                    float d = get(dout, bt * C + c);
                    set(dwte, ix * C + c, get(dwte, ix * C + c) + d);
                    if (dwpe != null) set(dwpe, t * C + c, get(dwpe, t * C + c) + d);
                }
            }
        });
    }
}
