package gpt2.eval;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Python's {@code random.Random} as far as CORE needs it, bit for bit: the Mersenne Twister
 * (MT19937) seeded from a non-negative integer the way CPython seeds it (init_by_array over the
 * integer's 32-bit words, least significant first), {@code getrandbits(k)} for k <= 32, and
 * {@code shuffle} and {@code sample} with CPython's algorithms (rejection sampling below n; sample's
 * pool or set method chosen by CPython's rule). nanochat shuffles each task's data with seed 1337
 * and draws example i's few-shot examples with seed 1234 + i; doing the same draws the same
 * examples, so scores compare with nanochat's.
 */
public final class PyRandom {
    private static final int N = 624, M = 397;
    private final int[] mt = new int[N];
    private int mti;

    public PyRandom(long seed) {
        if (seed < 0) throw new IllegalArgumentException("seed must be >= 0, got " + seed);
        int[] key = seed >>> 32 == 0 ? new int[]{(int) seed} : new int[]{(int) seed, (int) (seed >>> 32)};
        initByArray(key);
    }

    private void initGenrand(int s) {
        mt[0] = s;
        for (mti = 1; mti < N; mti++) {
            mt[mti] = 1812433253 * (mt[mti - 1] ^ (mt[mti - 1] >>> 30)) + mti;
        }
    }

    private void initByArray(int[] key) {
        initGenrand(19650218);
        int i = 1, j = 0;
        for (int k = Math.max(N, key.length); k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1664525)) + key[j] + j;
            i++;
            j++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if (j >= key.length) j = 0;
        }
        for (int k = N - 1; k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1566083941)) - i;
            i++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x80000000;
        mti = N;
    }

    /** The next 32-bit output, as an unsigned value. */
    long genrandUint32() {
        if (mti >= N) {
            for (int k = 0; k < N; k++) {
                int y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff);
                mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? 0x9908b0df : 0);
            }
            mti = 0;
        }
        int y = mt[mti++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    /** getrandbits(k), 1 <= k <= 32. */
    public long getrandbits(int k) {
        if (k < 1 || k > 32) throw new IllegalArgumentException("k must be in [1, 32], got " + k);
        return genrandUint32() >>> (32 - k);
    }

    /** _randbelow(n): uniform in [0, n) by rejection on n's bit length, as CPython. */
    public int randbelow(int n) {
        if (n <= 0) throw new IllegalArgumentException("n must be > 0, got " + n);
        int k = 32 - Integer.numberOfLeadingZeros(n);
        long r = getrandbits(k);
        while (r >= n) r = getrandbits(k);
        return (int) r;
    }

    /** random.shuffle, in place. */
    public <T> void shuffle(List<T> x) {
        for (int i = x.size() - 1; i > 0; i--) {
            int j = randbelow(i + 1);
            T t = x.get(i);
            x.set(i, x.get(j));
            x.set(j, t);
        }
    }

    /** random.sample(population, k): k distinct elements in selection order. */
    public <T> List<T> sample(List<T> population, int k) {
        int n = population.size();
        if (k < 0 || k > n) throw new IllegalArgumentException("sample larger than population or is negative: " + k + " of " + n);
        List<T> result = new ArrayList<>(k);
        int setsize = 21;
        if (k > 5) setsize += (int) Math.pow(4, Math.ceil(Math.log(k * 3) / Math.log(4)));
        if (n <= setsize) {
            List<T> pool = new ArrayList<>(population);
            for (int i = 0; i < k; i++) {
                int j = randbelow(n - i);
                result.add(pool.get(j));
                pool.set(j, pool.get(n - i - 1));
            }
        } else {
            Set<Integer> selected = new HashSet<>();
            for (int i = 0; i < k; i++) {
                int j = randbelow(n);
                while (selected.contains(j)) j = randbelow(n);
                selected.add(j);
                result.add(population.get(j));
            }
        }
        return result;
    }
}
