package gpt2.cli;

import gpt2.parallel.Ranks;
import gpt2.parallel.Rendezvous;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * Checks a launch before a long job: where this process sits (torchrun's variables or SLURM's) and
 * whether the ranks reach rank 0 at the master address, through the same rendezvous NCCL's id uses.
 */
@Command(name = "rendezvous", mixinStandardHelpOptions = true,
        description = {"Check that the ranks of a launch (scripts/launch.sh, or srun with one task per GPU) find each "
                + "other: prints each rank's place and where it met rank 0. No GPU needed.",
                "Example: srun --ntasks-per-node=8 scripts/gpt2 rendezvous"})
final class RendezvousCommand implements Callable<Integer> {

    @Option(names = "--timeout", defaultValue = "60", paramLabel = "SECONDS",
            description = "Give up after this long, naming the ranks that never arrived (default: ${DEFAULT-VALUE}).")
    int timeout;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        Ranks r = Ranks.fromEnvironment();
        String where = r.masterAddr() + ":" + r.masterPort();
        String place = String.format("rank %d of %d (local rank %d, from %s)", r.rank(), r.world(), r.localRank(), r.source());
        if (r.world() == 1) {
            spec.commandLine().getOut().printf("%s: a single process, nothing to meet%n", place);
            return 0;
        }
        Duration t = Duration.ofSeconds(timeout);
        if (r.rank() == 0) {
            Rendezvous.serve(r.masterAddr(), r.masterPort(), r.world(), ("rank 0 of " + r.world()).getBytes(StandardCharsets.UTF_8), t);
            spec.commandLine().getOut().printf("%s: every rank reached %s%n", place, where);
        } else {
            String got = new String(Rendezvous.fetch(r.masterAddr(), r.masterPort(), r.rank(), t), StandardCharsets.UTF_8);
            spec.commandLine().getOut().printf("%s: reached %s at %s%n", place, got, where);
        }
        return 0;
    }
}
