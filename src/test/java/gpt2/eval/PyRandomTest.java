package gpt2.eval;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * PyRandom against CPython's own random module: the expected values below were printed by
 * CPython 3.11.7 (random.Random(seed).getrandbits(32), .shuffle(list(range(n))),
 * .sample([i for i in range(n) if i != idx], k) with seed 1234 + idx, as nanochat draws few-shot
 * examples), so CORE's examples and few-shot draws are nanochat's.
 */
class PyRandomTest {

    private static List<Integer> range(int n) {
        return new ArrayList<>(IntStream.range(0, n).boxed().toList());
    }

    @Test
    void theTwisterMatchesCPython() {
        PyRandom r = new PyRandom(42);
        long[] want = {2746317213L, 478163327L, 107420369L, 3184935163L, 1181241943L};
        for (long w : want) assertEquals(w, r.getrandbits(32));
        PyRandom big = new PyRandom((1L << 40) + 5); // a seed of two 32-bit words
        for (long w : new long[]{2166296868L, 2220160828L, 1153647273L}) assertEquals(w, big.getrandbits(32));
    }

    @Test
    void shuffleMatchesCPython() {
        List<Integer> ten = range(10);
        new PyRandom(1337).shuffle(ten);
        assertEquals(List.of(0, 3, 7, 2, 1, 6, 4, 5, 8, 9), ten);
        List<Integer> hundred = range(100);
        new PyRandom(1337).shuffle(hundred);
        assertEquals(List.of(83, 17, 10, 9, 89, 52, 7, 32, 37, 77, 61, 34, 78, 55, 56, 63, 69, 22, 75, 66), hundred.subList(0, 20));
    }

    @Test
    void sampleMatchesCPythonWithBothOfItsMethods() {
        // {n, idx, k, expected...}: n <= the set size: the pool method; n = 1000: the set method
        int[][] cases = {
                {30, 0, 10, 25, 15, 4, 1, 3, 19, 2, 22, 29, 27},
                {30, 7, 3, 20, 16, 25},
                {1000, 5, 10, 77, 286, 467, 915, 26, 50, 105, 489, 494, 704},
                {100, 99, 10, 62, 45, 80, 10, 31, 94, 60, 84, 33, 85},
                {12, 3, 10, 2, 7, 5, 4, 1, 11, 9, 6, 8, 10},
        };
        for (int[] c : cases) {
            int n = c[0], idx = c[1], k = c[2];
            List<Integer> available = new ArrayList<>();
            for (int i = 0; i < n; i++) if (i != idx) available.add(i);
            List<Integer> want = new ArrayList<>();
            for (int i = 3; i < c.length; i++) want.add(c[i]);
            assertEquals(want, new PyRandom(1234 + idx).sample(available, k), "n " + n + " idx " + idx + " k " + k);
        }
    }
}
