package gpt2.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command line as a whole: usage, unknown flags, and every option described. */
class MainTest {

    @Test
    void bareGpt2IsAUsageErrorOnStderr() {
        String[] r = InfoCommandTest.run();
        assertEquals("2", r[0]);
        assertEquals("", r[1], "nothing on stdout");
        assertTrue(r[2].contains("name a command") && r[2].contains("Usage: gpt2") && r[2].contains("train"), r[2]);
    }

    @Test
    void anUnknownFlagSuggestsTheClosestKnownOne() {
        String[] r = InfoCommandTest.run("train", "--num_iteration", "5");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--num_iteration") && r[2].contains("did you mean --num_iterations"), r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
    }

    @Test
    void everyOptionOfEveryCommandHasADescription() {
        List<String> missing = new ArrayList<>();
        collect(Main.commandLine(), missing);
        assertTrue(missing.isEmpty(), "options without a description: " + missing);
    }

    private static void collect(CommandLine cl, List<String> missing) {
        CommandSpec spec = cl.getCommandSpec();
        for (OptionSpec o : spec.options()) {
            if (String.join("", o.description()).isBlank()) missing.add(spec.qualifiedName() + " " + o.longestName());
        }
        for (PositionalParamSpec p : spec.positionalParameters()) {
            if (String.join("", p.description()).isBlank()) missing.add(spec.qualifiedName() + " " + p.paramLabel());
        }
        for (CommandLine sub : cl.getSubcommands().values()) collect(sub, missing);
    }
}
