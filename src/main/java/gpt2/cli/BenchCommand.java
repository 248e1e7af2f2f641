package gpt2.cli;

import gpt2.backend.Backend;
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


    @Option(names = "--flash", defaultValue = "0", paramLabel = "0|1", description = "Flash attention (CUDA only).")
    int flash;

    @Option(names = "--json", description = "Also print one JSON line with the numbers.")
    boolean json;

    @Spec
    CommandSpec spec;

    private static void sync(Backend be) {
        if (be instanceof CudaBackend cb) cb.synchronize();
    }

    private static double median(double[] x) {
        double[] s = x.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        GptConfig cfg = modelOptions.config();
        if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1");
        int B = batchSize, T = seqLen;
        Random r = new Random(1);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(cfg.vocabSize()); tg[i] = r.nextInt(cfg.vocabSize()); }
        try (Backend be = dev.backend(ModelOptions.flag("--tensorcores", tensorcores));
             Gpt2 m = new Gpt2(cfg, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            m.setFlashAttention(ModelOptions.flag("--flash", flash));
            m.initialize(1);
            out.printf("bench %s (%,d parameters) B=%d T=%d on %s%s%n", cfg.name(), cfg.parameterCount(), B, T, be.name(),
                    m.flashAttention() ? ", flash attention" : "");
            out.flush();
            double[] ms = new double[steps], fwd = new double[steps], bwd = new double[steps], optim = new double[steps];
            double[] gemm = new double[steps];
            for (int s = -2; s < steps; s++) {
                if (be instanceof gpt2.backend.cpu.CpuBackend cpu) cpu.resetGemmStats();
                long t0 = System.nanoTime();
                m.zeroGrad();
                m.forward(in, tg, B, T, s + 2);
                sync(be);
                long t1 = System.nanoTime();
                m.backward(1f);
                sync(be);
                long t2 = System.nanoTime();
                float[] ns = AdamW.normAndClipScale(be, m.grads(), 1f);
                opt.step(m.params(), m.grads(), 1e-4f, ns[1]);
                sync(be);
                long t3 = System.nanoTime();
                if (s >= 0) {
                    ms[s] = (t3 - t0) / 1e6;
                    fwd[s] = (t1 - t0) / 1e6;
                    bwd[s] = (t2 - t1) / 1e6;
                    optim[s] = (t3 - t2) / 1e6;
                    if (be instanceof gpt2.backend.cpu.CpuBackend cpu) {
                        long[] g = cpu.gemmStats();
                        gemm[s] = g[1] / (g[0] / 1e9) / 1e9;
                    }
                }
            }
            double median = median(ms);
            out.printf("phases (median ms): forward %.1f | backward %.1f | optimizer %.1f%n", median(fwd), median(bwd), median(optim));
            if (be instanceof gpt2.backend.cpu.CpuBackend cpu) {
                double peak = cpu.measureGemmPeak(1024, 20);
                out.printf("GEMMs in the step: %.1f GFLOP/s median = %.0f%% of this run's sgemm peak (%.1f GFLOP/s, n=1024)%n",
                        median(gemm), 100 * median(gemm) / peak, peak);
            }
            double flops = cfg.trainingFlopsPerToken(T) * B * T;
            double achieved = flops / (median / 1000);
            String mfu = be instanceof CudaBackend cb && !Double.isNaN(cb.bf16PeakFlops())
                    ? String.format(" | MFU %.1f%% of the %s's bf16 peak", 100 * achieved / cb.bf16PeakFlops(), cb.deviceName())
                    : "";
            out.printf("median step %.1f ms | %.0f tokens/s | %.1f GFLOP/s (6N + 12LCT per token)%s | peak memory %s%n",
                    median, B * T / (median / 1000), achieved / 1e9, mfu, gpt2.train.Trainer.peakMemory());
            if (json) {
                out.printf("{\"model\":\"%s\",\"device\":\"%s\",\"batch_size\":%d,\"sequence_length\":%d,\"median_ms\":%.3f,"
                                + "\"forward_ms\":%.3f,\"backward_ms\":%.3f,\"optimizer_ms\":%.3f,\"tokens_per_s\":%.1f,"
                                + "\"gflops\":%.2f,\"peak_rss_mib\":%d}%n",
                        cfg.name(), be.name().replace("\"", "'"), B, T, median, median(fwd), median(bwd), median(optim),
                        B * T / (median / 1000), achieved / 1e9, gpt2.train.Trainer.peakMemoryMiB());
            }
        }
        return 0;
    }
}
