package gpt2.backend.cuda;

import java.util.Arrays;

/**
 * The token embedding's backward plan: the positions of a batch grouped by token, so that one
 * block per distinct token can add its positions' gradients in order (deterministic, no atomics;
 * see encoder.cu). Layout, all int: [U, starts (U+1), tokens (U), positions (N)], positions
 * ascending within each token's group. Made every micro-batch into arrays kept between calls.
 */
final class EncoderPlan {
    private long[] keyed = new long[0];
    private int[] plan = new int[0];

    /** The plan of the first N tokens; valid until the next call, {@link #length} ints of it used. */
    int[] of(int[] tokens, int N) {
        if (keyed.length < N) {
            keyed = new long[N];
            plan = new int[2 + 3 * N]; // U <= N
        }
        for (int i = 0; i < N; i++) {
            if (tokens[i] < 0) throw new IllegalArgumentException("encoder backward: token " + tokens[i] + " at position " + i);
            keyed[i] = (long) tokens[i] << 32 | i;
        }
        Arrays.sort(keyed, 0, N); // by token, then by position
        int U = 0;
        for (int i = 0; i < N; i++) if (i == 0 || keyed[i] >>> 32 != keyed[i - 1] >>> 32) U++;
        plan[0] = U;
        int starts = 1, toks = 2 + U, positions = 2 + 2 * U, u = 0;
        for (int i = 0; i < N; i++) {
            int token = (int) (keyed[i] >>> 32);
            if (i == 0 || token != (int) (keyed[i - 1] >>> 32)) {
                plan[starts + u] = i;
                plan[toks + u] = token;
                u++;
            }
            plan[positions + i] = (int) keyed[i];
        }
        plan[starts + U] = N;
        return plan;
    }

    /** Ints of a plan in use: 2 + 2U + N. */
    static int length(int[] plan) {
        return 2 + 2 * plan[0] + (plan[1 + plan[0]]); // starts[U] = N
    }
}
