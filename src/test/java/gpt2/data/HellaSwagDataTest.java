package gpt2.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HellaSwagDataTest {

    static final String GOOD = "{\"ind\": 24, \"ctx\": \"A man is sitting on a roof. he\", \"activity_label\": \"Roof shingle removal\", "
            + "\"endings\": [\"is using wrap to wrap a pair of skis.\", \"is ripping level tiles off.\", "
            + "\"is holding a rubik's cube.\", \"starts pulling up roofing on a roof.\"], \"label\": 3}";

    @Test
    void validFileIsInstalled(@TempDir Path dir) throws Exception {
        Path in = Files.writeString(dir.resolve("in.jsonl"), GOOD + "\n" + GOOD + "\n");
        assertEquals(2, HellaSwagData.install(in, dir.resolve("out")));
        assertEquals(Files.readString(in), Files.readString(dir.resolve("out").resolve(HellaSwagData.FILE)));
    }

    @Test
    void badLinesAreReportedByNumberAndNothingIsWritten(@TempDir Path dir) throws Exception {
        String threeEndings = GOOD.replace("\"is holding a rubik's cube.\", ", "");
        String badLabel = GOOD.replace("\"label\": 3", "\"label\": 7");
        Path in = Files.writeString(dir.resolve("in.jsonl"), GOOD + "\n" + threeEndings + "\n{oops\n" + badLabel + "\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HellaSwagData.install(in, dir.resolve("out")));
        String m = e.getMessage();
        assertTrue(m.contains("3 bad lines"), m);
        assertTrue(m.contains("line 2: 'endings' has 3 items, expected 4"), m);
        assertTrue(m.contains("line 3: not valid JSON"), m);
        assertTrue(m.contains("line 4: 'label' 7 is not 0..3"), m);
        assertFalse(Files.exists(dir.resolve("out").resolve(HellaSwagData.FILE)));
    }
}
