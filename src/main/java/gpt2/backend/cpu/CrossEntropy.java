package gpt2.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static gpt2.backend.cpu.F32.get;
import static gpt2.backend.cpu.F32.getInt;
import static gpt2.backend.cpu.F32.set;

/**
 * Softmax + cross-entropy over the first V of Vp logit columns. The padded columns V..Vp-1 take
 * no part in the softmax (so they can never win) and get zero gradient.
 */
final class CrossEntropy {
    private CrossEntropy() {
    }

    static final int IGNORE = -1;

    /** losses (N) = logsumexp(logits[n, :V]) - logits[n, target]; 0 where target is -1. */
    static void forward(Parallel par, MemorySegment losses, MemorySegment logits, MemorySegment targets,
                        int N, int V, int Vp) {
        par.forRange(N, 1, (s, e) -> {
            for (long n = s; n < e; n++) {
                int target = getInt(targets, n);
                if (target == IGNORE) {
                    set(losses, n, 0f);
                    continue;
                }
                checkTarget(target, V, n);
                long row = n * Vp;
                float max = maxOf(logits, row, V);
                double sum = sumExp(logits, row, V, max);
                set(losses, n, (float) (Math.log(sum) + max - get(logits, row + target)));
            }
        });
    }

    /**
     * The fused classifier: losses (N) as {@link #forward} and, in the same visit of each row while it
     * is in cache, the logits overwritten with their gradient as {@link #backward} (the same bits as
     * the two calls: the same maximum, sum and exponentials, each exponential computed once). With
     * {@code capFirst} the logits arrive uncapped and each row's first V are capped (as {@link
     * Pointwise#softcapForward}) when the row is visited.
     */
    static void fused(Parallel par, MemorySegment losses, MemorySegment logits, MemorySegment targets, float dloss,
                      int N, int V, int Vp, float softcap, boolean capFirst) {
        rows(par, losses, logits, targets, dloss, N, V, Vp, softcap, capFirst);
    }

    /**
     * In place: logits (N,Vp) become (softmax - onehot) * dloss; padded columns and ignored rows 0.
     * softcap > 0: the logits c were soft-capped, and each gradient is taken on through the cap,
     * times 1 - (c / softcap)^2.
     */
    static void backward(Parallel par, MemorySegment logits, MemorySegment targets, float dloss,
                         int N, int V, int Vp, float softcap) {
        rows(par, null, logits, targets, dloss, N, V, Vp, softcap, false);
    }

    /** Each thread's row of exponentials, kept between calls (grown to the widest vocabulary seen). */
    private static final ThreadLocal<float[]> EXPONENTIALS = ThreadLocal.withInitial(() -> new float[0]);

    /**
     * The gradient (and with {@code losses} the loss) of each row: its maximum, its exponentials
     * exp(x - max) into a per-thread array with their sum (as {@link #sumExp} sums), then the
     * gradient from them, through the cap when there is one.
     */
    private static void rows(Parallel par, MemorySegment losses, MemorySegment logits, MemorySegment targets, float dloss,
                             int N, int V, int Vp, float softcap, boolean capFirst) {
        par.forRange(N, 1, (s, e) -> {
            float[] ex = EXPONENTIALS.get();
            if (ex.length < V) EXPONENTIALS.set(ex = new float[V]);
            for (long n = s; n < e; n++) {
                int target = getInt(targets, n);
                long row = n * Vp;
                if (target == IGNORE) {
                    if (losses != null) set(losses, n, 0f);
                    logits.asSlice(row * 4, 4L * Vp).fill((byte) 0);
                    continue;
                }
                checkTarget(target, V, n);
                if (capFirst) Pointwise.softcap(logits, row, row + V, softcap);
                float max = maxOf(logits, row, V);
                double sum = expInto(logits, row, V, max, ex);
                if (losses != null) set(losses, n, (float) (Math.log(sum) + max - get(logits, row + target)));
                float inv = (float) (1.0 / sum);
                if (softcap > 0) {
                    throughCap(logits, ex, row, V, target, inv, dloss, softcap);
                } else {
                    scaleInto(ex, logits, row, V, inv, dloss);
                    set(logits, row + target, get(logits, row + target) - dloss);
                }
                logits.asSlice((row + V) * 4, 4L * (Vp - V)).fill((byte) 0);
            }
        });
    }

    /**
     * exp(x - max) of a row into ex, summed as {@link #sumExp} sums (the same lanes, the same order).
     * Each vector loop is a method of its own: in one large method the JIT runs out of inlining budget
     * and the vector operations fall back to objects, several times slower.
     */
    private static double expInto(MemorySegment logits, long row, int V, float max, float[] ex) {
        int v = 0, L = F32.S.length();
        FloatVector acc = FloatVector.zero(F32.S);
        for (int bound = V / L * L; v < bound; v += L) {
            FloatVector x = FastMath.expNonPositive(F32.load(logits, row + v).sub(max));
            acc = acc.add(x);
            x.intoArray(ex, v);
        }
        double sum = F32.sum(acc);
        for (; v < V; v++) {
            ex[v] = FastMath.exp(get(logits, row + v) - max);
            sum += ex[v];
        }
        return sum;
    }

    /**
     * The row's gradient taken on through the soft cap: each capped logit c is read before its
     * gradient (softmax - onehot) * dloss overwrites it, and scales it by 1 - (c / cap)^2. Vector
     * lanes and the scalar tail do the same float operations in the same order.
     */
    private static void throughCap(MemorySegment logits, float[] ex, long row, int V, int target, float inv,
                                   float dloss, float cap) {
        float invCap = 1f / cap;
        float ct = get(logits, row + target), et = ex[target];
        int v = 0, L = F32.S.length();
        for (int bound = V / L * L; v < bound; v += L) {
            FloatVector c = F32.load(logits, row + v);
            FloatVector k = c.mul(invCap);
            FloatVector g = FloatVector.fromArray(F32.S, ex, v).mul(inv).mul(dloss);
            F32.store(g.mul(FloatVector.broadcast(F32.S, 1f).sub(k.mul(k))), logits, row + v);
        }
        for (; v < V; v++) {
            float c = get(logits, row + v), k = c * invCap;
            set(logits, row + v, ex[v] * inv * dloss * (1f - k * k));
        }
        float kt = ct * invCap; // the target's (p - 1) dloss, through the cap
        set(logits, row + target, (et * inv * dloss - dloss) * (1f - kt * kt));
    }

    /** logits row = ex * inv * dloss (the softmax times the loss's scale). */
    private static void scaleInto(float[] ex, MemorySegment logits, long row, int V, float inv, float dloss) {
        int v = 0, L = F32.S.length();
        for (int bound = V / L * L; v < bound; v += L) {
            F32.store(FloatVector.fromArray(F32.S, ex, v).mul(inv).mul(dloss), logits, row + v);
        }
        for (; v < V; v++) set(logits, row + v, ex[v] * inv * dloss);
    }

    /** sum of exp(x - max) over a row: float lanes summed in a fixed order, then in double. */
    private static double sumExp(MemorySegment logits, long row, int V, float max) {
        int v = 0, L = F32.S.length();
        FloatVector acc = FloatVector.zero(F32.S);
        for (int bound = V / L * L; v < bound; v += L) acc = acc.add(FastMath.expNonPositive(F32.load(logits, row + v).sub(max)));
        double sum = F32.sum(acc);
        for (; v < V; v++) sum += FastMath.exp(get(logits, row + v) - max);
        return sum;
    }

    /** The row's maximum (exact in any order: vector lanes, then the tail). */
    private static float maxOf(MemorySegment logits, long row, int V) {
        int v = 0, L = F32.S.length();
        FloatVector acc = FloatVector.broadcast(F32.S, Float.NEGATIVE_INFINITY);
        for (int bound = V / L * L; v < bound; v += L) acc = acc.max(F32.load(logits, row + v));
        float max = acc.reduceLanes(VectorOperators.MAX);
        for (; v < V; v++) max = Math.max(max, get(logits, row + v));
        return max;
    }

    private static void checkTarget(int target, int V, long n) {
        if (target < 0 || target >= V) {
            throw new IllegalArgumentException("target token " + target + " at position " + n
                    + " is outside the vocabulary [0, " + V + ") (use -1 to ignore a position)");
        }
    }
}
