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
        PrintWriter out = spec.commandLine().getOut();
        ModelSource.Resolved model = ModelSource.resolve(modelOptions.model, out);
        GptConfig c = model.config(modelOptions);
        out.printf("model: %s%n", c.name());
        if (model.weights() != null) describeWeights(model.weights(), out);
        out.printf("  n_layer %d | n_head %d | n_embd %d | head size %d | block_size %d%n",
                c.numLayers(), c.numHeads(), c.channels(), c.headSize(), c.maxSeqLen());
        out.printf("  vocab_size %d (padded to %d)%n", c.vocabSize(), c.paddedVocabSize());
        out.printf("  norm %s (eps %s) | linear bias %s | qkv bias %s | output head %s | dropout %s%n",
                c.norm().name().toLowerCase(), c.normEps(), yes(c.bias()), yes(c.qkvBias()),
                c.tiedEmbeddings() ? "tied to wte" : "untied, no bias", c.dropout());
        out.printf("  init: normal(0, 0.02)%s%n", c.zeroInitProjections() ? ", residual projections and untied head zero"
                : c.scaledResidualInit() ? ", residual projections 0.02/sqrt(2L)" : " for every matrix");
        if (c.modern()) {
            out.printf("  positions %s | qk-norm %s | mlp %s | norm weights %s | logit softcap %s%n",
                    c.rope() ? "rope (theta " + c.ropeTheta() + ")" : "learned (wpe)", yes(c.qkNorm()),
                    c.activation().name().toLowerCase(), c.parameterFreeNorm() ? "none" : "yes",
                    c.logitSoftcap() > 0 ? Float.toString(c.logitSoftcap()) : "off");
        }
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

    /** Where the weights are, and for one of our checkpoints its step and the flags its run recorded. */
    private static void describeWeights(gpt2.train.ModelFiles.Source w, PrintWriter out) {
        out.printf("  weights: %s (%s)%n", w.path(), w.format());
        com.fasterxml.jackson.databind.node.ObjectNode state = w.state(); // verified when it was opened
        if (state == null) return;
        out.printf("  step %d%s%n", state.path("step").asInt(), state.has("train_loader") ? ""
                : " (weights only: a converted model, no training state)");
        com.fasterxml.jackson.databind.JsonNode args = state.get("args");
        if (args != null && args.isObject() && !args.isEmpty()) {
            StringBuilder flags = new StringBuilder();
            args.properties().forEach(e -> {
                if (!e.getValue().isNull() && !e.getValue().asText().isEmpty()) flags.append(" --").append(e.getKey()).append(' ').append(e.getValue().asText());
            });
            out.printf("  recorded flags:%s%n", flags);
        }
    }

    private static String yes(boolean b) {
        return b ? "yes" : "no";
    }
}
