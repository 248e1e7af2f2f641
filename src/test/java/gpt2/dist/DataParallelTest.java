package gpt2.dist;

import gpt2.backend.cpu.CpuBackend;
import gpt2.data.ShardWriter;
import gpt2.data.TokenShard;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import gpt2.train.TrainConfig;
import gpt2.train.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Data parallelism on the CPU with ranks as threads (the in-process communicator). */
class DataParallelTest {

    static final GptConfig TINY = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(128).channels(32)
            .numHeads(2).maxSeqLen(16).dropout(0f));

    static Path shard(Path dir) {
        Random r = new Random(5);
        int[] t = new int[4000];
        for (int i = 0; i < t.length; i++) t[i] = r.nextInt(128);
        Path f = dir.resolve("train.bin");
        ShardWriter.write(f, TokenShard.MAGIC_LLMC, t, 0, t.length);
        return f;
    }

    record Result(List<Trainer.StepResult> steps, float[] params) {
    }

    static Result run(Path shard, int B, int rank, int world, Communicator comm) {
        TrainConfig cfg = new TrainConfig(shard.toString(), null, null, B, 8, (long) B * 8 * world, 4, false, 1e-3f, 0, 1f,
                0.1f, 1f, 0.9f, 0.95f, 1e-8f, 0, 1, 0, false, 0, 1, rank, world);
        try (CpuBackend be = new CpuBackend(1); Gpt2 model = new Gpt2(TINY, be);
             AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            model.initialize(rank == 0 ? 9 : 1234); // other ranks start elsewhere: the broadcast must fix that
            Trainer t = new Trainer(model, opt, cfg, new PrintStream(new ByteArrayOutputStream()), null);
            if (comm != null) t.withCommunicator(comm);
            List<Trainer.StepResult> steps = t.run();
            float[] p = new float[(int) model.layout().totalSize()];
            be.read(model.params(), p);
            return new Result(steps, p);
        }
    }

    /** 2 ranks of B sequences give the same training as 1 rank of 2B sequences. */
    @Test
    void twoRanksEqualOneRankWithTwiceTheBatch(@TempDir Path dir) throws Exception {
        Path shard = shard(dir);
        Result single = run(shard, 4, 0, 1, null);
        InProcessCommunicator world = new InProcessCommunicator(2);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<Result>> ranks = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                ranks.add(pool.submit(() -> run(shard, 2, rank, 2, world.rank(rank))));
            }
            Result r0 = ranks.get(0).get(), r1 = ranks.get(1).get();
            for (int i = 0; i < 4; i++) {
                assertEquals(single.steps().get(i).loss(), r0.steps().get(i).loss(), 1e-5f, "loss of step " + i);
                assertEquals(r0.steps().get(i).loss(), r1.steps().get(i).loss(), 0f, "ranks log the same loss");
            }
            double maxDiff = 0;
            for (int i = 0; i < single.params().length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(single.params()[i] - r0.params()[i]));
                assertEquals(r0.params()[i], r1.params()[i], 0f, "ranks hold identical weights");
            }
            assertTrue(maxDiff < 2e-6, "2 ranks vs 1 rank: weights differ by " + maxDiff);
        } finally {
            pool.shutdownNow();
        }
    }
}
