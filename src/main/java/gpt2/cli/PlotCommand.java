package gpt2.cli;

import gpt2.train.LossPlot;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "plot", mixinStandardHelpOptions = true,
        description = "Draw train and validation loss against step from RUN_DIR/metrics.jsonl into RUN_DIR/loss.png.")
final class PlotCommand implements Callable<Integer> {

    @Parameters(paramLabel = "RUN_DIR", description = "A run directory made by 'gpt2 train --output_dir'.")
    Path runDir;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        if (!Files.isDirectory(runDir)) throw new IllegalArgumentException(runDir + ": no such run directory");
        spec.commandLine().getOut().println("wrote " + LossPlot.draw(runDir));
        return 0;
    }
}
