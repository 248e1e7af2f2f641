package gpt2.backend;

import org.junit.jupiter.api.Test;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** GPT2_INJECT_FAULT: unset in real runs (nothing put in), a list of known faults, a misspelt one refused. */
class FaultsTest {

    @Test
    void namesAreParsedAndUnknownOnesRefused() {
        assertEquals(Set.of(), Faults.parse(null));
        assertEquals(Set.of(), Faults.parse(" "));
        assertEquals(Set.of("no-comm-wait", "skip-bucket"), Faults.parse("no-comm-wait, skip-bucket"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Faults.parse("no-comm-wiat"));
        assertTrue(e.getMessage().startsWith("GPT2_INJECT_FAULT: unknown fault 'no-comm-wiat'"), e.getMessage());
    }

    @Test
    void nothingIsPutInWithoutTheVariable() {
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getenv("GPT2_INJECT_FAULT") == null);
        for (String f : new String[]{"no-comm-wait", "no-pending-wait", "nonblocking-stream", "skip-bucket"}) assertFalse(Faults.on(f), f);
    }
}
