package gpt2.parallel;

import gpt2.backend.cpu.CpuBackend;
import gpt2.data.TestShards;
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
        return TestShards.random(dir.resolve("train.bin"), 4000, 128, 5);
    }

    record Result(List<Trainer.StepResult> steps, float[] params) {
    }

    static Result run(Path shard, int B, int rank, int world, Communicator comm) {
        return run(shard, B, rank, world, comm, false, null, 4, 0, null);
    }

    static Result run(Path shard, int B, int rank, int world, Communicator comm, boolean zero, Path out, int steps,
                      int saveEvery, Path resumeFrom) {
        return run(shard, B, rank, world, comm, zero, out, steps, saveEvery, resumeFrom, 1);
    }

    static Result run(Path shard, int B, int rank, int world, Communicator comm, boolean zero, Path out, int steps,
                      int saveEvery, Path resumeFrom, int accum) {
        return run(shard, B, rank, world, comm, zero, out, steps, saveEvery, resumeFrom, accum, null);
    }

    /** With {@code muon} non-null, --optimizer muon and --lr_schedule wsd. */
    static Result run(Path shard, int B, int rank, int world, Communicator comm, boolean zero, Path out, int steps,
                      int saveEvery, Path resumeFrom, int accum, AdamW.MuonSettings muon) {
        TrainConfig cfg = new TrainConfig(shard.toString(), null, out, B, 8, (long) B * 8 * world * accum, steps, false, 1e-3f, 0, 1f,
                0.1f, 1f, 0.9f, 0.95f, 1e-8f, 0, 1, 0, false, saveEvery, 1, rank, world, 0f, 0f, 10, 0, 0,
                muon == null ? gpt2.train.LrSchedule.Kind.COSINE : gpt2.train.LrSchedule.Kind.WSD, 0.5f);
        try (CpuBackend be = new CpuBackend(1); Gpt2 model = new Gpt2(TINY, be)) {
            long total = model.layout().totalSize();
            long[] sh = zero ? Communicator.shard(total, rank, world) : new long[]{0, total};
            try (AdamW opt = new AdamW(model, 0.9f, 0.95f, 1e-8f, 0.1f, sh[0], sh[1], cfg.learningRate(), muon)) {
                model.initialize(rank == 0 ? 9 : 1234); // other ranks start elsewhere: the broadcast must fix that
                Trainer t = new Trainer(model, opt, cfg, new PrintStream(new ByteArrayOutputStream()), null);
                if (comm != null) t.withCommunicator(comm);
                if (zero) {
                    t.zeroStage1();
                    assertEquals(sh[1] - sh[0], opt.m().length(), "each rank keeps only its shard of m");
                }
                if (resumeFrom != null) t.resumeFrom(resumeFrom);
                List<Trainer.StepResult> stepResults = t.run();
                float[] p = new float[(int) total];
                be.read(model.params(), p);
                return new Result(stepResults, p);
            }
        }
    }

    static Result[] ranks(int world, java.util.function.IntFunction<Result> body) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(world);
        try {
            List<Future<Result>> f = new ArrayList<>();
            for (int r = 0; r < world; r++) {
                int rank = r;
                f.add(pool.submit(() -> body.apply(rank)));
            }
            Result[] out = new Result[world];
            for (int r = 0; r < world; r++) out[r] = f.get(r).get();
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
        return d;
    }

    /** With gradient accumulation the per-layer buckets are reduced on the last micro-batch only. */
    @Test
    void bucketedAllReduceWithAccumulationMatchesOneRank(@TempDir Path dir) throws Exception {
        Path shard = shard(dir);
        Result single = run(shard, 4, 0, 1, null, false, null, 4, 0, null, 2);
        InProcessCommunicator w = new InProcessCommunicator(2);
        Result[] two = ranks(2, r -> run(shard, 2, r, 2, w.rank(r), false, null, 4, 0, null, 2));
        for (int i = 0; i < 4; i++) {
            assertEquals(single.steps().get(i).loss(), two[0].steps().get(i).loss(), 1e-5f, "loss of step " + i);
        }
        assertTrue(maxDiff(single.params(), two[0].params()) < 2e-6, "weights differ by " + maxDiff(single.params(), two[0].params()));
    }

    /** ZeRO-1 gives the training of plain data parallelism, with half the optimizer state per rank. */
    @Test
    void zeroStage1EqualsZeroStage0(@TempDir Path dir) throws Exception {
        Path shard = shard(dir);
        InProcessCommunicator w0 = new InProcessCommunicator(2), w1 = new InProcessCommunicator(2);
        Result[] plain = ranks(2, r -> run(shard, 2, r, 2, w0.rank(r)));
        Result[] zero = ranks(2, r -> run(shard, 2, r, 2, w1.rank(r), true, null, 4, 0, null));
        for (int i = 0; i < 4; i++) {
            assertEquals(plain[0].steps().get(i).loss(), zero[0].steps().get(i).loss(), 1e-6f, "loss of step " + i);
            assertEquals(plain[0].steps().get(i).norm(), zero[0].steps().get(i).norm(), 1e-5f * plain[0].steps().get(i).norm(), "norm");
        }
        assertTrue(maxDiff(plain[0].params(), zero[0].params()) < 1e-6, "ZeRO-1 vs plain: " + maxDiff(plain[0].params(), zero[0].params()));
        assertEquals(0.0, maxDiff(zero[0].params(), zero[1].params()), "ranks hold identical weights after the all-gather");
    }

    /** A 2-rank ZeRO-1 run saves the gathered optimizer state; 1 rank resumes from it. */
    @Test
    void aTwoRankZeroRunResumesWithOneRank(@TempDir Path dir) throws Exception {
        Path shard = shard(dir);
        InProcessCommunicator w = new InProcessCommunicator(2);
        Path out = dir.resolve("run");
        Result[] full = ranks(2, r -> run(shard, 2, r, 2, w.rank(r), true, out, 6, 3, null));
        Result resumed = run(shard, 4, 0, 1, null, false, dir.resolve("single"), 6, 0, out.resolve("checkpoint_00000003"));
        assertEquals(3, resumed.steps().size());
        for (int i = 0; i < 3; i++) {
            assertEquals(full[0].steps().get(3 + i).loss(), resumed.steps().get(i).loss(), 1e-5f, "loss of step " + (4 + i));
        }
        assertTrue(maxDiff(full[0].params(), resumed.params()) < 2e-6, "resumed with 1 rank: " + maxDiff(full[0].params(), resumed.params()));
    }

    /**
     * --optimizer muon: 2 ranks (plain data parallelism, and ZeRO-1 with the momentum on each rank's
     * shard and the gradients all-gathered before Newton–Schulz) train as 1 rank with twice the batch,
     * as tightly as AdamW; ZeRO-1 keeps half of m (Muon's momentum included) per rank.
     */
    @Test
    void muonWithTwoRanksAndZeroStage1EqualsOneRank(@TempDir Path dir) throws Exception {
        Path shard = shard(dir);
        AdamW.MuonSettings muon = new AdamW.MuonSettings(0.02f, 0.95f, 5, 0.2f, 0.004f);
        Result single = run(shard, 4, 0, 1, null, false, null, 4, 0, null, 1, muon);
        InProcessCommunicator w0 = new InProcessCommunicator(2), w1 = new InProcessCommunicator(2);
        Result[] plain = ranks(2, r -> run(shard, 2, r, 2, w0.rank(r), false, null, 4, 0, null, 1, muon));
        Result[] zero = ranks(2, r -> run(shard, 2, r, 2, w1.rank(r), true, null, 4, 0, null, 1, muon));
        for (int i = 0; i < 4; i++) {
            assertEquals(single.steps().get(i).loss(), plain[0].steps().get(i).loss(), 1e-5f, "DDP loss of step " + i);
            assertEquals(single.steps().get(i).loss(), zero[0].steps().get(i).loss(), 1e-5f, "ZeRO-1 loss of step " + i);
            assertEquals(plain[0].steps().get(i).loss(), zero[0].steps().get(i).loss(), 1e-6f, "ZeRO-1 vs DDP loss of step " + i);
        }
        // the weights to 1e-5 rather than AdamW's 2e-6: Muon's lr (0.02) and wte's (0.2) are 20-200x the
        // AdamW test's 1e-3, and both updates are normalised, so gradient rounding moves them further
        assertTrue(maxDiff(single.params(), plain[0].params()) < 1e-5, "DDP vs 1 rank: " + maxDiff(single.params(), plain[0].params()));
        assertTrue(maxDiff(plain[0].params(), zero[0].params()) < 1e-6, "ZeRO-1 vs DDP: " + maxDiff(plain[0].params(), zero[0].params()));
        assertEquals(0.0, maxDiff(plain[0].params(), plain[1].params()), "DDP ranks hold identical weights");
        assertEquals(0.0, maxDiff(zero[0].params(), zero[1].params()), "ZeRO-1 ranks hold identical weights");
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
