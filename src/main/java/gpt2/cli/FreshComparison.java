package gpt2.cli;

import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code bench --compare_fresh 1}: the step of a model read from disk against a fresh model of the
 * same configuration, each timed by the same bench in a JVM of its own, one after the other.
 * <pre>
 *   this JVM --(same java, JVM options, class path, bench flags)--> child 1: --random_weights 1 (fresh)
 *                                                                --> child 2: weights read from --model
 *   parse each child's JSON median --> "loaded/fresh step time: R"
 * </pre>
 * Separate JVMs because what a JVM has run decides how its JIT compiles the step: a loader that
 * ran its own loop before the first step could slow every later step, the fresh model's in the
 * same JVM included, and one JVM would hide that.
 */
final class FreshComparison {
    private FreshComparison() {
    }

    private static final Pattern MEDIAN = Pattern.compile("\"median_ms\":([0-9.]+)");
    /** Flags the children must not inherit: the comparison itself, and --json (each child gets its own). */
    private static final Set<String> NOT_PASSED = Set.of("--compare_fresh", "--json", "--random_weights");

    /** Runs both children, prints their output prefixed and the ratio; returns {loaded ms, fresh ms}. */
    static double[] run(CommandSpec bench, PrintWriter out) {
        List<String> args = benchArgs(bench);
        out.println("compare_fresh: each model timed in a JVM of its own, one after the other "
                + "(what ran before the first step decides how the JIT compiles it)");
        out.flush();
        List<String> fresh = new ArrayList<>(args);
        fresh.addAll(List.of("--random_weights", "1"));
        double freshMs = child("fresh ", fresh, out);
        double loadedMs = child("loaded", args, out);
        return new double[]{loadedMs, freshMs};
    }

    /** The bench flags as given, less the comparison's, plus --json for the median. */
    static List<String> benchArgs(CommandSpec bench) {
        List<String> a = new ArrayList<>(List.of("bench"));
        for (OptionSpec o : bench.commandLine().getParseResult().matchedOptions()) {
            if (NOT_PASSED.contains(o.longestName()) || o.usageHelp() || o.versionHelp()) continue;
            if (o.arity().max() == 0) {
                a.add(o.longestName());
            } else {
                for (String v : o.originalStringValues()) {
                    a.add(o.longestName());
                    a.add(v);
                }
            }
        }
        a.add("--json");
        return a;
    }

    /** This JVM's java, options and class path running gpt2 with {@code args}. */
    static List<String> javaCommand(List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        for (String o : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (o.startsWith("-agentlib:jdwp") || o.startsWith("-Xrunjdwp")) continue; // a debugger's port is taken
            cmd.add(o);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "gpt2.cli.Main"));
        cmd.addAll(args);
        return cmd;
    }

    private static double child(String label, List<String> args, PrintWriter out) {
        Process p;
        try {
            p = new ProcessBuilder(javaCommand(args)).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new UncheckedIOException("--compare_fresh: cannot start a JVM (" + e.getMessage() + ")", e);
        }
        double median = Double.NaN;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.startsWith("WARNING: Using incubator modules")) continue;
                Matcher m = MEDIAN.matcher(line);
                if (line.startsWith("{") && m.find()) {
                    median = Double.parseDouble(m.group(1));
                    continue;
                }
                out.println("[" + label + "] " + line);
                out.flush();
            }
            int code = p.waitFor();
            if (code != 0) {
                throw new IllegalStateException("--compare_fresh: the " + label.strip() + " model's bench failed (exit "
                        + code + "); its output is above");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("--compare_fresh: interrupted");
        }
        if (Double.isNaN(median)) throw new IllegalStateException("--compare_fresh: the " + label.strip() + " model's bench printed no median");
        return median;
    }

    static String ratioLine(double loadedMs, double freshMs, int steps) {
        return String.format(Locale.ROOT, "loaded/fresh step time: %.2f (loaded %.1f ms, fresh %.1f ms; medians of %d steps each)",
                loadedMs / freshMs, loadedMs, freshMs, steps);
    }
}
