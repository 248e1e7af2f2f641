package gpt2.cli;

import gpt2.backend.cuda.CudaStandins;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each ordering edge the training code relies on, removed (GPT2_INJECT_FAULT, see Faults) in a run
 * of the real commands on the CUDA library stand-ins, must be reported by them as a GPU would show
 * it (a race, or ranks that disagree) and fail the run; the same runs without the fault pass in
 * DataParallelStandinTest and GpuCommandsTest, under the same checks.
 */
@Tag("standin")
class StandinFaultsTest {

    @BeforeAll
    static void standins() {
        CudaStandins.assumeStandins("StandinFaultsTest");
    }

    /** One step of two ranks with the fault put in: the run must fail, and say why. */
    private static String twoRanksWith(Path dir, String fault) throws Exception {
        Path data = DataParallelStandinTest.data(dir.resolve("data"));
        String[] r = DataParallelStandinTest.launchTwo(data, dir.resolve("out"), Map.of("GPT2_INJECT_FAULT", fault,
                "GPT2_STANDIN_NCCL_TIMEOUT", "60"), "--steps_for_faults");
        assertNotEquals("0", r[0], "the run with " + fault + " passed:\n" + r[1]);
        System.out.println("  " + fault + ": " + r[1].lines().filter(l -> l.contains("cuda-standin: device fault")).findFirst().orElse(""));
        return r[1];
    }

    @Test
    void ncclReducingABucketBackwardIsStillWritingIsARace(@TempDir Path dir) throws Exception {
        String out = twoRanksWith(dir, "no-comm-wait");
        // the latest write to the bucket it names is backward's, a kernel's or a GEMM's
        assertTrue(out.contains("device fault") && out.contains("race: ncclAllReduce") && out.contains("(sendbuff, stream #")
                && out.matches("(?s).*race: ncclAllReduce[^\\n]*which (cuLaunchKernel|cublas)\\w*.*"), out);
    }

    @Test
    void theOptimizerReadingGradientsNcclIsStillReducingIsARace(@TempDir Path dir) throws Exception {
        String out = twoRanksWith(dir, "no-pending-wait");
        assertTrue(out.contains("device fault") && out.contains("race: ") && out.contains("which ncclAllReduce"), out);
    }

    @Test
    void aRankSkippingABucketIsReportedWithEveryRanksCall(@TempDir Path dir) throws Exception {
        String out = twoRanksWith(dir, "skip-bucket");
        assertTrue(out.contains("the ranks disagree on their collective call") && out.contains("rank 0: #")
                && out.contains("rank 1: #"), out);
    }

    /** The backend's stream made non-blocking: the synchronous copies on the legacy stream no longer wait for it. */
    @Test
    void aNonBlockingMainStreamRacesTheSynchronousCopies(@TempDir Path dir) throws Exception {
        Path data = DataParallelStandinTest.data(dir.resolve("data"));
        List<String> args = new ArrayList<>(DataParallelStandinTest.train(data, dir.resolve("out"), "--steps_for_faults"));
        String[] r = GpuCommandsTest.gpt2(Map.of("GPT2_INJECT_FAULT", "nonblocking-stream"), args);
        assertNotEquals("0", r[0], r[1]);
        System.out.println("  nonblocking-stream: " + r[1].lines().filter(l -> l.contains("cuda-standin: device fault")).findFirst().orElse(""));
        assertTrue(r[1].contains("device fault") && r[1].contains("race: ") && r[1].contains("non-blocking"), r[1]);
    }
}
