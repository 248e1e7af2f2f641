package gpt2.train;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class LrScheduleTest {

    private final LrSchedule s = new LrSchedule(6e-4f, 10, 110, 0.1f);

    @Test
    void warmupIsLinearFromLrOverWarmup() {
        assertEquals(6e-4 / 10, s.lr(0), 1e-9);          // first step: lr * 1 / warmup
        assertEquals(6e-4 * 5 / 10, s.lr(4), 1e-9);
        assertEquals(6e-4, s.lr(9), 1e-9);                // last warmup step reaches the peak
    }

    @Test
    void cosineDecayToTheFloor() {
        assertEquals(6e-4, s.lr(10), 1e-9);               // decay starts at the peak
        // halfway through the decay the cosine factor is 1/2: min + (max - min) / 2
        assertEquals(6e-5 + 0.5 * (6e-4 - 6e-5), s.lr(60), 1e-9);
        // a quarter of the way: 0.5 * (1 + cos(pi/4))
        assertEquals(6e-5 + 0.5 * (1 + Math.cos(Math.PI / 4)) * (6e-4 - 6e-5), s.lr(35), 1e-9);
        // the last step is just above the floor
        double ratio = 99.0 / 100.0;
        assertEquals(6e-5 + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (6e-4 - 6e-5), s.lr(109), 1e-9);
    }

    @Test
    void constantAtTheFloorAfterTheEnd() {
        assertEquals(6e-5, s.lr(110), 1e-9);
        assertEquals(6e-5, s.lr(100_000), 1e-9);
    }

    @Test
    void noWarmupAndNoDecay() {
        LrSchedule flat = new LrSchedule(1e-4f, 0, 10, 1.0f);
        for (int i = 0; i < 20; i++) assertEquals(1e-4, flat.lr(i), 1e-10);
    }

    @Test
    void rejectsBadFractions() {
        assertThrows(IllegalArgumentException.class, () -> new LrSchedule(1e-4f, 0, 10, 1.5f));
        assertThrows(IllegalArgumentException.class, () -> new LrSchedule(1e-4f, -1, 10, 0.5f));
    }
}
