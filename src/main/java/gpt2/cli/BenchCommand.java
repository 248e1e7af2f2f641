package gpt2.cli;

import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.backend.cuda.CudaBackend;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.Callable;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time whole training steps (forward, backward, AdamW) on random tokens: median ms, tokens/s.")
final class BenchCommand implements Callable<Integer> {

    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"--batch_size", "--batch-size"}, defaultValue = "4", paramLabel = "B")
    int batchSize;

    @Option(names = {"--sequence_length", "--sequence-length"}, defaultValue = "64", paramLabel = "T")
    int seqLen;

    @Option(names = "--steps", defaultValue = "10", description = "Timed steps after 2 warm-up steps (default: ${DEFAULT-VALUE}).")
    int steps;

    @Mixin
    DeviceOptions dev;

    @Option(names = "--tensorcores", defaultValue = "0", paramLabel = "0|1", description = "TF32 GEMMs on CUDA.")
    int tensorcores;


    @Option(names = "--dtype", defaultValue = "float32", description = "float32, or bfloat16 GEMM inputs on CUDA.")
    String dtype;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        GptConfig cfg = modelOptions.config();
        if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1");
        int B = batchSize, T = seqLen;
        Random r = new Random(1);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(cfg.vocabSize()); tg[i] = r.nextInt(cfg.vocabSize()); }
        if (!dtype.equals("float32") && !dtype.equals("bfloat16")) {
            throw new IllegalArgumentException("--dtype " + dtype + ": expected float32 or bfloat16");
        }
        try (Backend be = Backends.create(dev.device, dev.threads, ModelOptions.flag("--tensorcores", tensorcores),
                dtype.equals("bfloat16"));
             Gpt2 m = new Gpt2(cfg, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            m.initialize(1);
            out.printf("bench %s (%,d parameters) B=%d T=%d on %s%n", cfg.name(), cfg.parameterCount(), B, T, be.name());
            out.flush();
            double[] ms = new double[steps];
            for (int s = -2; s < steps; s++) {
                long t0 = System.nanoTime();
                m.zeroGrad();
                m.forward(in, tg, B, T, s + 2);
                m.backward(1f);
                float[] ns = AdamW.normAndClipScale(be, m.grads(), 1f);
                opt.step(m.params(), m.grads(), 1e-4f, ns[1]);
                if (be instanceof CudaBackend cb) cb.synchronize();
                double t = (System.nanoTime() - t0) / 1e6;
                if (s >= 0) ms[s] = t;
            }
            double[] sorted = ms.clone();
            Arrays.sort(sorted);
            double median = sorted[steps / 2];
            double flops = cfg.trainingFlopsPerToken(T) * B * T;
            double achieved = flops / (median / 1000);
            String mfu = be instanceof CudaBackend cb && !Double.isNaN(cb.bf16PeakFlops())
                    ? String.format(" | MFU %.1f%% of the %s's bf16 peak", 100 * achieved / cb.bf16PeakFlops(), cb.deviceName())
                    : "";
            out.printf("median step %.1f ms | %.0f tokens/s | %.1f TFLOP/s (6N + 12LCT per token)%s%n",
                    median, B * T / (median / 1000), achieved / 1e12, mfu);
        }
        return 0;
    }
}
