package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.data.StreamDecoder;
import gpt2.data.Tokenizer;
import gpt2.eval.Sampler;
import gpt2.model.Gpt2;
import gpt2.train.Rng;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

@Command(name = "sample", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate text from a checkpoint, streamed as it is generated (KV cache).",
                "Example: gpt2 sample --model runs/d12/checkpoint_00010000 --prompt \"As I went to the Mars, \""})
final class SampleCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, paramLabel = "CKPT", description = "A checkpoint directory (or a preset: untrained weights).")
    String model;

    @Option(names = "--prompt", defaultValue = "", description = "Text to continue; an end-of-text token goes first, as the original did (default: none).")
    String prompt;

    @Option(names = {"--prompt_file", "--prompt-file"}, paramLabel = "FILE",
            description = "Read the text to continue from FILE (UTF-8, taken as it is, newlines included); instead of --prompt.")
    java.nio.file.Path promptFile;

    @Option(names = {"--max_new_tokens", "--max-new-tokens"}, defaultValue = "128", paramLabel = "N", description = "Tokens to generate (default: ${DEFAULT-VALUE}).")
    int maxNew;

    @Option(names = "--temperature", defaultValue = "1.0", description = "Softmax temperature; 0 is greedy (default: ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = {"--top_k", "--top-k"}, defaultValue = "40", paramLabel = "K", description = "Keep the K most likely tokens; 0 = all (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = {"--top_p", "--top-p"}, defaultValue = "1.0", paramLabel = "P", description = "Nucleus sampling; 1 = off (default: ${DEFAULT-VALUE}).")
    float topP;

    @Option(names = "--seed", defaultValue = "1337", description = "Same seed, same text (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = {"--num_samples", "--num-samples"}, defaultValue = "1", paramLabel = "N", description = "Samples to draw (default: ${DEFAULT-VALUE}).")
    int numSamples;

    @Mixin
    DeviceOptions dev;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        // stdout carries the text only (gpt2 sample ... > out.txt); notes and timings go to stderr
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        if (numSamples < 1) throw new IllegalArgumentException("--num_samples must be >= 1, got " + numSamples);
        Sampler.Options opts = new Sampler.Options(maxNew, temperature, topK, topP);
        Tokenizer tok = Tokenizer.gpt2();
        if (promptFile != null) {
            if (!prompt.isEmpty()) throw new IllegalArgumentException("give --prompt or --prompt_file, not both");
            try {
                prompt = java.nio.file.Files.readString(promptFile);
            } catch (java.nio.charset.MalformedInputException e) {
                throw new IllegalArgumentException("--prompt_file " + promptFile + ": not UTF-8 text");
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("--prompt_file " + promptFile + ": cannot read it (" + e.getMessage() + ")");
            }
        }
        int[] body = tok.encode(prompt);
        int[] promptTokens = new int[body.length + 1];
        promptTokens[0] = Tokenizer.EOT;
        System.arraycopy(body, 0, promptTokens, 1, body.length);
        try (Backend be = dev.backend(false); Gpt2 m = ModelSource.load(model, be, err)) {
            if (Tokenizer.EOT >= m.config().vocabSize()) {
                // a model with a vocabulary smaller than GPT-2's (toy data) has no end-of-text token: start from 0, as the trainer's samples
                err.printf("note: the model's vocabulary (%d) has no end-of-text token; starting from token 0%n", m.config().vocabSize());
                promptTokens[0] = 0;
            }
            if (promptTokens.length > m.config().maxSeqLen()) {
                throw new IllegalArgumentException((promptFile != null ? "--prompt_file " + promptFile : "--prompt") + " is "
                        + promptTokens.length + " tokens, more than the block size "
                        + m.config().maxSeqLen());
            }
            Rng rng = new Rng(seed);
            long generated = 0, start = System.nanoTime();
            for (int s = 0; s < numSamples; s++) {
                if (numSamples > 1) out.printf("--- sample %d%n", s + 1);
                out.print(prompt);
                out.flush();
                StreamDecoder dec = tok.streamDecoder();
                Sampler.generate(m, promptTokens, opts, rng, t -> {
                    out.print(t < Tokenizer.VOCAB_SIZE ? dec.push(t) : "<" + t + ">");
                    out.flush();
                });
                out.println(dec.flush());
                generated += maxNew;
            }
            double sec = (System.nanoTime() - start) / 1e9;
            // each prompt and new position was one decode step reading the weights and the cache
            int positions = Math.min(promptTokens.length + maxNew, m.config().maxSeqLen());
            double bytes = numSamples * Sampler.bytesForPositions(m.config(), 1, positions);
            double readGBs = be.readBandwidth(1L << 28), gbs = bytes / sec / 1e9;
            String rate = Double.isNaN(readGBs) ? "" : String.format(java.util.Locale.ROOT,
                    "; weights and cache read at %.1f GB/s = %.0f%% of this machine's read bandwidth, %.1f GB/s", gbs,
                    100 * gbs / readGBs, readGBs);
            err.printf("%d tokens in %.2f s (%.1f tokens/s%s) on %s%n", generated, sec, generated / sec, rate, be.name());
            err.flush();
        }
        return 0;
    }
}
