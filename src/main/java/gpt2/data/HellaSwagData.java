package gpt2.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * HellaSwag's validation set (10,042 examples): each line a JSON object with a context
 * {@code ctx}, four {@code endings} and the {@code label} of the right one. Preparation checks
 * every line and names the bad ones by number before anything is written.
 */
public final class HellaSwagData {
    private HellaSwagData() {
    }

    public static final String URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl";
    public static final String FILE = "hellaswag_val.jsonl";

    /** The problem with one line, or null when it is a valid example. */
    public static String problem(ObjectMapper json, String line) {
        JsonNode n;
        try {
            n = json.readTree(line);
        } catch (IOException e) {
            return "not valid JSON";
        }
        if (n == null || !n.isObject()) return "not a JSON object";
        JsonNode ctx = n.get("ctx"), endings = n.get("endings"), label = n.get("label");
        if (ctx == null || !ctx.isTextual()) return "missing text field 'ctx'";
        if (endings == null || !endings.isArray()) return "missing array 'endings'";
        if (endings.size() != 4) return "'endings' has " + endings.size() + " items, expected 4";
        for (JsonNode e : endings) if (!e.isTextual()) return "an ending is not text";
        if (label == null || !label.canConvertToInt()) return "missing integer 'label'";
        if (label.asInt() < 0 || label.asInt() > 3) return "'label' " + label.asInt() + " is not 0..3";
        return null;
    }

    /** Validates {@code source} and copies it to {@code outDir}; returns the number of examples. */
    public static long install(Path source, Path outDir) {
        ObjectMapper json = new ObjectMapper();
        List<String> bad = new ArrayList<>();
        long examples = 0, number = 0, badCount = 0;
        try (var lines = Files.lines(source, StandardCharsets.UTF_8);
             Progress bar = new Progress("hellaswag", -1, "lines")) {
            for (String line : (Iterable<String>) lines::iterator) {
                number++;
                bar.step(1);
                if (line.isBlank()) continue;
                String p = problem(json, line);
                if (p == null) {
                    examples++;
                } else {
                    badCount++;
                    if (bad.size() < 10) bad.add("line " + number + ": " + p);
                }
            }
        } catch (IOException | UncheckedIOException e) {
            throw new IllegalArgumentException(source + ": cannot read (" + e.getMessage() + ")");
        }
        if (badCount > 0) {
            throw new IllegalArgumentException(source + ": " + badCount + " bad line" + (badCount == 1 ? "" : "s")
                    + " (" + String.join("; ", bad) + (badCount > bad.size() ? "; ..." : "") + ")");
        }
        if (examples == 0) throw new IllegalArgumentException(source + ": no examples");
        Path target = outDir.resolve(FILE);
        try {
            Files.createDirectories(outDir);
            if (!Files.exists(target) || !Files.isSameFile(source, target)) {
                Path tmp = outDir.resolve(FILE + ".tmp");
                Files.copy(source, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": cannot write: " + e.getMessage(), e);
        }
        return examples;
    }
}
