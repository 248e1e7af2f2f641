package gpt2.cli;

import gpt2.train.LossPlot;
import gpt2.train.RunComparison;
import picocli.CommandLine.Option;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "plot", mixinStandardHelpOptions = true,
        description = {"Draw train and validation loss against step from RUN_DIR/metrics.jsonl into RUN_DIR/loss.png.",
                "With several RUN_DIRs: every run's curves against tokens in one PNG (--out), and for each run after "
                        + "the first, the tokens it needs to reach the first run's final validation loss."})
final class PlotCommand implements Callable<Integer> {

    @Parameters(paramLabel = "RUN_DIR", arity = "1..*", description = "Run directories made by 'gpt2 train --output_dir'.")
    List<Path> runDirs;

    @Option(names = "--out", paramLabel = "PNG",
            description = "With several runs: the chart to write (default: compare.png beside the first run).")
    Path out;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        for (Path runDir : runDirs) {
            if (!Files.isDirectory(runDir)) throw new IllegalArgumentException(runDir + ": no such run directory");
        }
        var stdout = spec.commandLine().getOut();
        if (runDirs.size() == 1) {
            if (out != null) throw new IllegalArgumentException("--out: one run's plot is always RUN_DIR/loss.png");
            stdout.println("wrote " + LossPlot.draw(runDirs.getFirst()));
            return 0;
        }
        List<RunComparison.Curves> curves = runDirs.stream().map(RunComparison::read).toList();
        Path png = out != null ? out : runDirs.getFirst().toAbsolutePath().normalize().resolveSibling("compare.png");
        if (!png.getFileName().toString().endsWith(".png")) throw new IllegalArgumentException("--out " + png + ": must end in .png");
        if (png.getParent() != null && !Files.isDirectory(png.getParent())) {
            throw new IllegalArgumentException("--out " + png + ": no such folder " + png.getParent());
        }
        stdout.print(RunComparison.table(curves));
        for (RunComparison.Curves c : curves.subList(1, curves.size())) {
            stdout.println(RunComparison.describe(curves.getFirst(), c));
        }
        stdout.println("wrote " + LossPlot.drawComparison(curves, png, "validation loss vs tokens"));
        return 0;
    }
}
