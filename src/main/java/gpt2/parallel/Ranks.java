package gpt2.parallel;

import java.util.Map;

/**
 * Where this process sits in a data-parallel run, from its environment: torchrun's variables
 * (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; set by scripts/launch.sh), else a SLURM
 * allocation's (under {@code srun} with one task per GPU: SLURM_PROCID, SLURM_NTASKS,
 * SLURM_LOCALID, and the master address from MASTER_ADDR or the first host of SLURM_JOB_NODELIST),
 * else a single process.
 *
 * @param launched whether the process is one rank of a launched group
 * @param source   "torchrun", "slurm" or "single", for messages
 */
public record Ranks(int rank, int world, int localRank, String masterAddr, int masterPort, boolean launched, String source) {

    public static final int DEFAULT_PORT = 29500;

    public static Ranks fromEnvironment() {
        return from(System.getenv());
    }

    public static Ranks from(Map<String, String> env) {
        if (present(env, "RANK")) {
            int rank = integer(env, "RANK", 0), world = integer(env, "WORLD_SIZE", 1);
            return checked(new Ranks(rank, world, integer(env, "LOCAL_RANK", 0), env.getOrDefault("MASTER_ADDR", "127.0.0.1"),
                    integer(env, "MASTER_PORT", DEFAULT_PORT), true, "torchrun"));
        }
        if (present(env, "SLURM_PROCID") && present(env, "SLURM_NTASKS")) {
            String nodes = env.getOrDefault("SLURM_JOB_NODELIST", env.getOrDefault("SLURM_NODELIST", ""));
            String master = present(env, "MASTER_ADDR") ? env.get("MASTER_ADDR") : firstHost(nodes);
            if (master.isEmpty()) {
                throw new IllegalArgumentException("SLURM: neither MASTER_ADDR nor SLURM_JOB_NODELIST names the master host");
            }
            return checked(new Ranks(integer(env, "SLURM_PROCID", 0), integer(env, "SLURM_NTASKS", 1),
                    integer(env, "SLURM_LOCALID", 0), master, integer(env, "MASTER_PORT", DEFAULT_PORT), true, "slurm"));
        }
        return new Ranks(0, 1, 0, "127.0.0.1", DEFAULT_PORT, false, "single");
    }

    private static Ranks checked(Ranks r) {
        if (r.world < 1 || r.rank < 0 || r.rank >= r.world || r.localRank < 0) {
            throw new IllegalArgumentException(r.source + ": rank " + r.rank + " of world size " + r.world + " (local rank "
                    + r.localRank + ") is not a valid position");
        }
        return r;
    }

    private static boolean present(Map<String, String> env, String name) {
        String v = env.get(name);
        return v != null && !v.isEmpty();
    }

    private static int integer(Map<String, String> env, String name, int dflt) {
        String v = env.get(name);
        if (v == null || v.isEmpty()) return dflt;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment " + name + "=" + v + ": not an integer");
        }
    }

    /**
     * The first host of a SLURM host list: "gpu[003-010,012],cpu1" -> "gpu003", "a-node7,b" ->
     * "a-node7", "rack[1-2]-n[01-04]" -> "rack1-n01" (the digits of a range keep their padding).
     */
    public static String firstHost(String list) {
        String s = list.trim();
        int depth = 0, end = s.length();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '[') depth++;
            else if (c == ']') depth--;
            else if (c == ',' && depth == 0) {
                end = i;
                break;
            }
        }
        String first = s.substring(0, end);
        StringBuilder host = new StringBuilder();
        for (int i = 0; i < first.length(); i++) {
            char c = first.charAt(i);
            if (c != '[') {
                host.append(c);
                continue;
            }
            int close = first.indexOf(']', i);
            if (close < 0) throw new IllegalArgumentException("SLURM host list " + list + ": unbalanced [");
            host.append(first.substring(i + 1, close).split("[,-]")[0]); // each range's first value, padding kept
            i = close;
        }
        return host.toString();
    }
}
