package gpt2.cli;

import gpt2.model.GptConfig;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.concurrent.Callable;

@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Print a model's configuration and its exact parameter count.")
final class InfoCommand implements Callable<Integer> {

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--tensors", description = "Also list every parameter tensor with its shape and offset.")
    boolean tensors;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        GptConfig c = modelOptions.config();
        PrintWriter out = spec.commandLine().getOut();
        out.printf("model: %s%n", c.name());
        out.printf("  n_layer %d | n_head %d | n_embd %d | head size %d | block_size %d%n",
                c.numLayers(), c.numHeads(), c.channels(), c.headSize(), c.maxSeqLen());
        out.printf("  vocab_size %d (padded to %d)%n", c.vocabSize(), c.paddedVocabSize());
        out.printf("  norm %s (eps %s) | linear bias %s | qkv bias %s | output head %s | dropout %s%n",
                c.norm().name().toLowerCase(), c.normEps(), yes(c.bias()), yes(c.qkvBias()),
                c.tiedEmbeddings() ? "tied to wte" : "untied, no bias", c.dropout());
        out.printf("  init: normal(0, 0.02)%s%n",
                c.scaledResidualInit() ? ", residual projections 0.02/sqrt(2L)" : " for every matrix");
        long exact = c.parameterCount(), padded = c.paddedParameterCount();
        out.printf("parameters: %,d%n", exact);
        if (padded != exact) out.printf("parameters with padded vocabulary: %,d%n", padded);
        if (tensors) {
            ParameterLayout layout = ParameterLayout.of(c);
            for (TensorSpec t : layout.tensors()) {
                out.printf("  %-28s %-16s offset %,d%n", t.name(), Arrays.toString(t.shape()), t.offset());
            }
        }
        return 0;
    }

    private static String yes(boolean b) {
        return b ? "yes" : "no";
    }
}
