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

    /** wsd over 100 steps: warmup 10, constant, warmdown over the last 20 to 10% of the peak. */
    @Test
    void wsdWarmsUpHoldsAndWarmsDownLinearly() {
        LrSchedule w = new LrSchedule(LrSchedule.Kind.WSD, 1e-3f, 10, 100, 0.1f, 0.2f);
        assertEquals(20, w.warmdownSteps());
        assertEquals(1e-4, w.lr(0), 1e-10);                  // (0+1)/10
        assertEquals(5e-4, w.lr(4), 1e-10);
        assertEquals(1e-3, w.lr(9), 1e-10);                  // warmup reaches the peak
        assertEquals(1e-3, w.lr(10), 1e-10);
        assertEquals(1e-3, w.lr(50), 1e-10);
        assertEquals(1e-3, w.lr(80), 1e-10);                 // the warmdown starts after step N - 20
        assertEquals(1e-3 * (0.1 + 0.9 * 19 / 20.0), w.lr(81), 1e-10);
        assertEquals(1e-3 * (0.1 + 0.9 * 10 / 20.0), w.lr(90), 1e-10); // halfway down: 0.55 of the peak
        assertEquals(1e-3 * (0.1 + 0.9 / 20.0), w.lr(99), 1e-10);      // the last step is just above the floor
        assertEquals(1e-4, w.lr(100), 1e-10);
        assertEquals(1e-4, w.lr(1000), 1e-10);
        assertEquals(0.55, w.multiplier(90), 1e-8); // 0.1f is 0.10000000149
        // no warmdown: constant after the warmup
        LrSchedule flat = new LrSchedule(LrSchedule.Kind.WSD, 1e-3f, 0, 10, 0f, 0f);
        for (int i = 0; i < 10; i++) assertEquals(1e-3, flat.lr(i), 1e-10);
        assertThrows(IllegalArgumentException.class, () -> new LrSchedule(LrSchedule.Kind.WSD, 1e-3f, 0, 10, 0f, 1.5f));
        assertEquals("--lr_schedule foo: must be cosine or wsd",
                assertThrows(IllegalArgumentException.class, () -> LrSchedule.Kind.parse("foo")).getMessage());
    }

    /** The cosine schedule's multiplier is its lr over the peak (every group scales by it). */
    @Test
    void cosineMultiplierIsTheLrOverThePeak() {
        for (int step : new int[]{0, 5, 9, 10, 35, 60, 109, 110, 500}) {
            assertEquals(s.lr(step) / 6e-4, s.multiplier(step), 1e-6, "step " + step);
        }
    }
}
