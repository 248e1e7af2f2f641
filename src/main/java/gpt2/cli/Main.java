package gpt2.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** The {@code gpt2} command line: subcommands, and the one place errors become exit codes. */
@Command(name = "gpt2", mixinStandardHelpOptions = true, version = "gpt2-java 0.1.0",
        description = "Pretrain, sample and evaluate GPT-2 models in Java.",
        subcommands = {InfoCommand.class, PrepareCommand.class, TrainCommand.class, SampleCommand.class,
                HellaSwagCommand.class, EvalCommand.class, ConvertCommand.class, PlotCommand.class, BenchCommand.class, RendezvousCommand.class,
                DownloadCommand.class, ServeCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements java.util.concurrent.Callable<Integer> {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** Bare {@code gpt2}: a command is missing, so the usage goes to stderr with exit code 2. */
    @Override
    public Integer call() {
        spec.commandLine().getErr().println("gpt2: error: name a command (gpt2 --help lists them)");
        spec.commandLine().usage(spec.commandLine().getErr());
        return 2;
    }

    public static void main(String[] args) {
        // test hook for scripts/launch.sh's failure handling: this rank fails at once
        String failRank = System.getenv("GPT2_TEST_FAIL_RANK");
        if (failRank != null && failRank.equals(System.getenv("RANK"))) {
            System.err.println("gpt2: GPT2_TEST_FAIL_RANK: rank " + failRank + " fails on purpose");
            System.exit(3);
        }
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs a command line; returns the exit code (0 ok, 1 failure at run time, 2 bad usage). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cli = commandLine();
        cli.setOut(out);
        cli.setErr(err);
        return cli.execute(args);
    }

    static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new Main());
        cli.setOverwrittenOptionsAllowed(true); // a flag given twice: the last one wins, as argparse does
        cli.setParameterExceptionHandler((ex, args) -> {
            CommandLine cmd = ex.getCommandLine();
            String hint = "";
            if (ex instanceof CommandLine.UnmatchedArgumentException u && !u.getSuggestions().isEmpty()) {
                hint = "; did you mean " + String.join(" or ", u.getSuggestions().subList(0, Math.min(3, u.getSuggestions().size()))) + "?";
            }
            cmd.getErr().println(cmd.getCommandName() + ": error: " + ex.getMessage().strip() + hint
                    + " (see '" + cmd.getCommandSpec().qualifiedName() + " --help')");
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
            String what = ex.getMessage() != null && !(ex instanceof NullPointerException) ? ex.getMessage() : ex.toString();
            // a library message may start with the command's name already ("rendezvous: rank 0 ..."): once is enough
            String prefix = cmd.getCommandName() + ": ";
            if (what.startsWith(prefix)) what = what.substring(prefix.length());
            cmd.getErr().println(prefix + "error: " + what);
            if (System.getenv("GPT2_DEBUG") != null) ex.printStackTrace(cmd.getErr());
            return ex instanceof IllegalArgumentException ? 2 : 1;
        });
        return cli;
    }
}
