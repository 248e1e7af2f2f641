package gpt2.backend.cuda;

import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import gpt2.train.TrainConfig;
import gpt2.train.Trainer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The trainer on the CUDA backend in bf16 mixed precision with flash attention, on the CPU
 * emulator: 6 steps with validation and a checkpoint at step 3, then a fresh model resumed from
 * that checkpoint must repeat steps 4 to 6 bit for bit (the bf16 weight copy is rebuilt from the
 * float32 master weights the checkpoint holds; every kernel is deterministic), the resumed run with
 * its micro-batches replayed as CUDA graphs.
 */
class CudaEmulatorTrainingTest {

    static final GptConfig TINY = GptConfig.preset("d2").with(b -> b.vocabSize(128).channels(32).numHeads(2)
            .maxSeqLen(32).dropout(0.1f));

    @Test
    void bf16FlashTrainingResumesBitForBit(@TempDir Path dir) {
        String reason = EmulatedExecutor.unavailableReason();
        if (reason != null) System.out.println("SKIPPED: " + reason);
        Assumptions.assumeTrue(reason == null, reason);
        Random r = new Random(5);
        int[] t = new int[6000];   // a learnable stream: runs of counting with random restarts
        for (int i = 0; i < t.length; i++) t[i] = i % 40 == 0 ? r.nextInt(128) : (t[i - 1] + 1) % 128;
        Path shard = dir.resolve("train.bin");
        ShardWriter.write(shard, TokenShard.MAGIC_LLMC, t, 0, t.length);

        List<Trainer.StepResult> full = run(shard, dir.resolve("full"), null, false);
        Path ckpt = dir.resolve("full").resolve("checkpoint_00000003");
        assertTrue(ckpt.toFile().isDirectory(), "no checkpoint at step 3");
        List<Trainer.StepResult> resumed = run(shard, dir.resolve("resumed"), ckpt, true);
        System.out.println("  emulated bf16 + flash: " + full.stream().map(s -> s.step() + ":" + s.loss()).toList());
        assertTrue(full.getLast().loss() < full.getFirst().loss(), "the loss falls: " + full);
        int compared = 0;
        for (Trainer.StepResult a : resumed) {
            for (Trainer.StepResult b : full) {
                if (a.step() == b.step()) {
                    assertEquals(b.loss(), a.loss(), 0f, "loss of step " + a.step());
                    assertEquals(b.norm(), a.norm(), 0f, "norm of step " + a.step());
                    compared++;
                }
            }
        }
        assertTrue(compared >= 3, "steps compared: " + compared + " of " + resumed);
    }

    private static List<Trainer.StepResult> run(Path shard, Path out, Path resumeFrom, boolean graphs) {
        TrainConfig cfg = new TrainConfig(shard.toString(), shard.toString(), out, 2, 32, 128, 6, false, 3e-3f, 1, 0.1f,
                0.1f, 1f, 0.9f, 0.95f, 1e-8f, 3, 1, 0, false, 3, 7, 0, 1);
        try (CudaBackend be = new CudaBackend(-1, false, true, true, new EmulatedExecutor(true), graphs);
             Gpt2 model = new Gpt2(TINY, be); AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.setFlashAttention(true);
            model.initialize(9);
            Trainer tr = new Trainer(model, opt, cfg, new PrintStream(new ByteArrayOutputStream()), null);
            if (resumeFrom != null) tr.resumeFrom(resumeFrom);
            List<Trainer.StepResult> steps = tr.run();
            if (graphs) assertTrue(be.profile().graphLaunches() > 0, "the micro-batches ran as CUDA graphs");
            return steps;
        }
    }
}
