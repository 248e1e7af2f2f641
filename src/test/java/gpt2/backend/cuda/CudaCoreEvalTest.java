package gpt2.backend.cuda;

import gpt2.backend.Backend;
import gpt2.backend.Backends;
import gpt2.eval.Core;
import gpt2.eval.CoreBundle;
import gpt2.model.GptConfig;
import gpt2.model.Gpt2;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Issue 30: CORE on the CUDA backend (its kernels on the CPU emulator) scores the tiny bundle's
 * three task types as the CPU backend does, with the same weights.
 */
class CudaCoreEvalTest {

    @Test
    void coreOnCudaAgreesWithTheCpu(@TempDir Path dir) throws Exception {
        String reason = EmulatedExecutor.unavailableReason();
        if (reason != null) System.out.println("SKIPPED: " + reason);
        Assumptions.assumeTrue(reason == null, reason);
        List<Core.Task> tasks = CoreBundle.load(gpt2.eval.CoreTestBundles.zip(dir));
        GptConfig cfg = GptConfig.preset("d2").with(b -> b.channels(32).numHeads(2).maxSeqLen(128));
        try (Backend cpu = Backends.create("cpu", 2, false, false); Gpt2 a = new Gpt2(cfg, cpu);
             CudaBackend gpu = new CudaBackend(-1, false, false, false, new EmulatedExecutor(false), false);
             Gpt2 b = new Gpt2(cfg, gpu)) {
            a.initialize(11);
            b.initialize(11);
            for (Core.Task t : tasks) {
                Core.Result onCpu = Core.evaluate(a, t, -1, 8, null), onCuda = Core.evaluate(b, t, -1, 8, null);
                System.out.printf("  %s: cpu %d/%d, cuda (emulated) %d/%d%n", t.label(), onCpu.correct(), onCpu.examples(),
                        onCuda.correct(), onCuda.examples());
                assertEquals(onCpu.examples(), onCuda.examples());
                assertEquals(onCpu.correct(), onCuda.correct(), t.label());
                // and the numbers under the counts: the losses of one example's rows, position by position
                List<com.fasterxml.jackson.databind.JsonNode> data = Core.examples(t, -1);
                Core.Rows rows = Core.rows(t.type(), Core.prompts(t.type(), t.delimiter(), data.get(0), Core.fewshot(data, 0, t.shots())),
                        data.get(0).path("gold").asInt(0), gpt2.data.Tokenizer.gpt2());
                int B = rows.tokens().length, T = 0;
                for (int[] row : rows.tokens()) T = Math.max(T, row.length - 1);
                int[] in = new int[B * T], tg = new int[B * T];
                java.util.Arrays.fill(tg, -1);
                for (int i = 0; i < B; i++) {
                    System.arraycopy(rows.tokens()[i], 0, in, i * T, rows.tokens()[i].length - 1);
                    for (int j = 0; j + 1 < rows.tokens()[i].length; j++) tg[i * T + j] = rows.tokens()[i][j + 1];
                }
                a.forward(in, tg, B, T, -1);
                b.forward(in, tg, B, T, -1);
                float[] la = a.positionLosses(), lb = b.positionLosses();
                for (int i = 0; i < la.length; i++) assertEquals(la[i], lb[i], 1e-4f, t.label() + " position " + i);
            }
        }
    }
}
