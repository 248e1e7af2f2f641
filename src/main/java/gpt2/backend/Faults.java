package gpt2.backend;

import java.util.Set;

/**
 * Faults put in on purpose, so the tests can show the CUDA stand-ins catch what a GPU would get
 * wrong: {@code GPT2_INJECT_FAULT} names them (comma-separated). Each removes one edge the code
 * relies on:
 * <ul>
 *   <li>{@code no-comm-wait}: NCCL's stream does not wait for backward before reducing a bucket;
 *   <li>{@code no-pending-wait}: the optimizer's stream does not wait for the buckets' reductions;
 *   <li>{@code nonblocking-stream}: the backend's stream does not synchronize with the legacy
 *       stream, so the synchronous copies no longer wait for it (nor the upload ring's reuse);
 *   <li>{@code skip-bucket}: rank 1 does not reduce layer 0's bucket.
 * </ul>
 * Unset in every real run; a process with one set says so on stderr.
 */
public final class Faults {
    private static final Set<String> KNOWN = Set.of("no-comm-wait", "no-pending-wait", "nonblocking-stream", "skip-bucket");
    private static volatile Set<String> on;

    private Faults() {
    }

    /** The faults a value of GPT2_INJECT_FAULT names; an unknown one is a one-line error. */
    static Set<String> parse(String value) {
        if (value == null || value.isBlank()) return Set.of();
        Set<String> on = Set.of(value.strip().split("\\s*,\\s*"));
        for (String f : on) {
            if (!KNOWN.contains(f)) throw new IllegalArgumentException("GPT2_INJECT_FAULT: unknown fault '" + f + "' (known: " + KNOWN + ")");
        }
        System.err.println("note: GPT2_INJECT_FAULT=" + value + ": faults put in on purpose (tests of the CUDA stand-ins)");
        return on;
    }

    /** Whether the named fault is put in. */
    public static boolean on(String fault) {
        Set<String> s = on;
        if (s == null) on = s = parse(System.getenv("GPT2_INJECT_FAULT"));
        return s.contains(fault);
    }
}
