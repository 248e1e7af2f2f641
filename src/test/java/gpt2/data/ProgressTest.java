package gpt2.data;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProgressTest {

    @Test
    void everyLineFitsTheTerminalAndKeepsItsFieldsApart() {
        for (int width : new int[]{40, 60, 80, 100, 200}) {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            Progress p = new Progress("hellaswag", 10042, "examples", new PrintStream(bytes, true, StandardCharsets.UTF_8), true, width);
            p.step(4210);
            p.extra("acc_norm 0.2950 and a long remark that would wrap a narrow terminal");
            String line = p.line(System.nanoTime() + 1_000_000_000L);
            assertTrue(line.length() <= width - 1, width + ": " + line.length() + " chars: " + line);
            assertTrue(line.startsWith("hellaswag  41%"), line);
            assertFalse(line.contains("/sacc"), "the extra text runs into the rate: " + line);
            if (width >= 80) assertTrue(line.contains("4210/10042 examples | ") && line.contains("examples/s | "), "the numbers show: " + line);
            if (width >= 200) assertTrue(line.contains(" | acc_norm 0.2950 and a long remark"), line);
            if (width >= 100) assertTrue(line.matches(".*\\[#+\\.+\\].*"), "a bar with room for it: " + line);
            p.close();
        }
    }

    @Test
    void inAPipeItWritesWholeLinesWithoutCarriageReturns() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (Progress p = new Progress("tinyshakespeare", 78, "docs", new PrintStream(bytes, true, StandardCharsets.UTF_8), false, 100)) {
            for (int i = 0; i < 78; i++) p.step(1);
        }
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertFalse(out.contains("\r"), out);
        assertEquals(1, out.lines().count(), "one line at the end of a short task: " + out);
        assertTrue(out.startsWith("tinyshakespeare 100% [") && out.contains("78/78 docs"), out);
    }

    @Test
    void anOpenEndedCounterHasNoBar() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Progress p = new Progress("hellaswag", -1, "lines", new PrintStream(bytes, true, StandardCharsets.UTF_8), false, 100);
        p.step(12_345_678);
        String line = p.line(System.nanoTime() + 2_000_000_000L);
        assertTrue(line.startsWith("hellaswag 12.3M lines | "), line);
        assertFalse(line.contains("["), line);
    }

    /** Sizes in the unit that fits: a small download is KB or MB, not "0.00 GB". */
    @Test
    void sizesUseTheUnitThatFits() {
        assertEquals("0 bytes", Progress.size(0));
        assertEquals("1 byte", Progress.size(1));
        assertEquals("999 bytes", Progress.size(999));
        assertEquals("4.2 KB", Progress.size(4_200));
        assertEquals("12.3 MB", Progress.size(12_345_678));
        assertEquals("28.31 GB", Progress.size(28_310_000_000L));
    }
}
