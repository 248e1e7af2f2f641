package gpt2.cli;

import gpt2.backend.cpu.CpuBackend;
import gpt2.data.BatchSource;
import gpt2.data.DataLoader;
import gpt2.data.TextBatches;
import gpt2.data.Tokenizer;
import gpt2.model.GptConfig;
import gpt2.model.Gpt2;
import gpt2.train.AdamW;
import gpt2.train.LrSchedule;
import gpt2.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train a model on the CPU (flags and defaults as llm.c's train_gpt2.py).")
final class TrainCommand implements Callable<Integer> {

    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"--input_train_bin", "--input-train-bin"}, paramLabel = "PATTERN",
            description = "Training token shards: a file or a glob in the file name, e.g. "
                    + "data/fineweb-edu/*_train_*.bin (made by 'gpt2 prepare').")
    String inputTrainBin;

    @Option(names = {"--input_text", "--input-text"}, paramLabel = "FILE",
            description = "Or: a UTF-8 text file, tokenized with the GPT-2 tokenizer, to train on.")
    Path inputText;

    @Option(names = {"--batch_size", "--batch-size"}, defaultValue = "4", paramLabel = "B",
            description = "Sequences per micro-batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = {"--sequence_length", "--sequence-length"}, defaultValue = "64", paramLabel = "T",
            description = "Tokens per sequence (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Option(names = {"--total_batch_size", "--total-batch-size"}, defaultValue = "-1", paramLabel = "TOKENS",
            description = "Tokens per optimizer step; a multiple of B*T, the rest is gradient accumulation "
                    + "(default: B*T).")
    int totalBatchSize;

    @Option(names = {"--num_iterations", "--num-iterations"}, defaultValue = "10", paramLabel = "N",
            description = "Optimizer steps (default: ${DEFAULT-VALUE}).")
    int numIterations;

    @Option(names = {"--learning_rate", "--learning-rate"}, defaultValue = "1e-4", paramLabel = "LR",
            description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    float learningRate;

    @Option(names = {"--warmup_iters", "--warmup-iters"}, defaultValue = "0", paramLabel = "N",
            description = "Linear warmup steps (default: ${DEFAULT-VALUE}).")
    int warmupIters;

    @Option(names = {"--learning_rate_decay_frac", "--learning-rate-decay-frac"}, defaultValue = "1.0",
            paramLabel = "F", description = "Cosine decay floor as a fraction of the peak (default: ${DEFAULT-VALUE}).")
    float decayFrac;

    @Option(names = {"--weight_decay", "--weight-decay"}, defaultValue = "0.0", paramLabel = "WD",
            description = "AdamW weight decay on matrices and embeddings (default: ${DEFAULT-VALUE}).")
    float weightDecay;

    @Option(names = {"--grad_clip", "--grad-clip"}, defaultValue = "1.0", paramLabel = "NORM",
            description = "Clip the global gradient norm to this; 0 turns clipping off (default: ${DEFAULT-VALUE}).")
    float gradClip;

    @Option(names = "--beta1", defaultValue = "0.9", description = "AdamW beta1 (default: ${DEFAULT-VALUE}).")
    float beta1;

    @Option(names = "--beta2", defaultValue = "0.95", description = "AdamW beta2 (default: ${DEFAULT-VALUE}).")
    float beta2;

    @Option(names = {"--adam_eps", "--adam-eps"}, defaultValue = "1e-8", description = "AdamW epsilon (default: ${DEFAULT-VALUE}).")
    float adamEps;

    @Option(names = "--seed", defaultValue = "42", description = "Seed of the initialization and dropout (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEVICE",
            description = "cpu (the only backend so far; default: ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--threads", defaultValue = "0", paramLabel = "N",
            description = "CPU threads; 0 means one per core (default: ${DEFAULT-VALUE}).")
    int threads;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (!device.equals("cpu")) {
            throw new IllegalArgumentException("--device " + device + ": only the cpu backend exists so far");
        }
        GptConfig config = modelOptions.config();
        if (seqLen > config.maxSeqLen()) {
            throw new IllegalArgumentException("--sequence_length " + seqLen + " exceeds the model's block_size "
                    + config.maxSeqLen());
        }
        long tokensPerMicro = (long) batchSize * seqLen;
        long total = totalBatchSize == -1 ? tokensPerMicro : totalBatchSize;
        if (total <= 0 || total % tokensPerMicro != 0) {
            throw new IllegalArgumentException("--total_batch_size " + total + " is not a positive multiple of "
                    + "--batch_size " + batchSize + " x --sequence_length " + seqLen + " = " + tokensPerMicro);
        }
        int gradAccum = (int) (total / tokensPerMicro);
        if ((inputText == null) == (inputTrainBin == null)) {
            throw new IllegalArgumentException("give exactly one of --input_train_bin PATTERN and --input_text FILE");
        }
        if (config.vocabSize() < Tokenizer.VOCAB_SIZE) {
            throw new IllegalArgumentException("--vocab_size " + config.vocabSize()
                    + " is smaller than the GPT-2 tokenizer's " + Tokenizer.VOCAB_SIZE);
        }
        BatchSource batches;
        String dataLine;
        if (inputText != null) {
            int[] tokens = tokenize(inputText);
            batches = new TextBatches(tokens, batchSize, seqLen);
            dataLine = String.format("data %s: %,d tokens", inputText, tokens.length);
        } else {
            DataLoader loader = new DataLoader(inputTrainBin, batchSize, seqLen, 0, 1, config.vocabSize());
            batches = loader;
            dataLine = String.format("data %s: %d shard%s", inputTrainBin, loader.files().size(),
                    loader.files().size() == 1 ? "" : "s");
        }
        LrSchedule schedule = new LrSchedule(learningRate, warmupIters, numIterations, decayFrac);
        Trainer.Options options = new Trainer.Options(numIterations, batchSize, seqLen, gradAccum, gradClip, seed);

        try (CpuBackend backend = threads > 0 ? new CpuBackend(threads) : new CpuBackend();
             Gpt2 model = new Gpt2(config, backend);
             AdamW optimizer = new AdamW(model, beta1, beta2, adamEps, weightDecay)) {
            model.initialize(seed);
            out.printf("model %s: %,d parameters | backend %s%n", config.name(), config.parameterCount(), backend.name());
            out.printf("%s | B %d x T %d x %d micro-batches = %,d tokens per step%n",
                    dataLine, batchSize, seqLen, gradAccum, total);
            out.flush();
            PrintStream log = new PrintStream(new WriterStream(out), true, StandardCharsets.UTF_8);
            new Trainer(model, optimizer, schedule, batches, options, log).run();
            log.flush();
        } finally {
            if (batches instanceof DataLoader l) l.close();
        }
        return 0;
    }

    private static int[] tokenize(Path file) {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("--input_text " + file + ": no such file");
        try {
            String text = Files.readString(file, StandardCharsets.UTF_8);
            return Tokenizer.gpt2().encode(text);
        } catch (java.nio.charset.MalformedInputException e) {
            throw new IllegalArgumentException("--input_text " + file + ": not valid UTF-8");
        } catch (IOException e) {
            throw new UncheckedIOException("--input_text " + file + ": " + e.getMessage(), e);
        }
    }
}
