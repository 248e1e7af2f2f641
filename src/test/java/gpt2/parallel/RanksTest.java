package gpt2.parallel;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Rank mapping from the environment, SLURM's included, without SLURM (the variables set here). */
class RanksTest {

    @Test
    void torchrunsVariablesComeFirst() {
        Ranks r = Ranks.from(Map.of("RANK", "3", "WORLD_SIZE", "4", "LOCAL_RANK", "1", "MASTER_ADDR", "10.0.0.1",
                "MASTER_PORT", "1234", "SLURM_PROCID", "7", "SLURM_NTASKS", "16"));
        assertEquals(new Ranks(3, 4, 1, "10.0.0.1", 1234, true, "torchrun"), r);
    }

    @Test
    void srunWithOneTaskPerGpu() {
        Map<String, String> env = Map.of("SLURM_PROCID", "9", "SLURM_NTASKS", "16", "SLURM_LOCALID", "1",
                "SLURM_JOB_NODELIST", "gpu[007-008],cpu1");
        assertEquals(new Ranks(9, 16, 1, "gpu007", Ranks.DEFAULT_PORT, true, "slurm"), Ranks.from(env));
        Map<String, String> withMaster = new java.util.HashMap<>(env);
        withMaster.put("MASTER_ADDR", "head");
        withMaster.put("MASTER_PORT", "29611");
        Ranks r = Ranks.from(withMaster);
        assertEquals("head", r.masterAddr());
        assertEquals(29611, r.masterPort());
    }

    @Test
    void aSingleProcessWithoutEither() {
        Ranks r = Ranks.from(Map.of());
        assertFalse(r.launched());
        assertEquals(1, r.world());
        assertEquals(0, r.rank());
    }

    @Test
    void badValuesAreOneLineErrors() {
        var e = assertThrows(IllegalArgumentException.class, () -> Ranks.from(Map.of("RANK", "2", "WORLD_SIZE", "2")));
        assertTrue(e.getMessage().contains("rank 2 of world size 2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Ranks.from(Map.of("SLURM_PROCID", "x", "SLURM_NTASKS", "2",
                "SLURM_JOB_NODELIST", "n1")));
        assertTrue(e.getMessage().contains("SLURM_PROCID=x: not an integer"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Ranks.from(Map.of("SLURM_PROCID", "0", "SLURM_NTASKS", "2")));
        assertTrue(e.getMessage().contains("SLURM_JOB_NODELIST"), e.getMessage());
    }

    @Test
    void theFirstHostOfASlurmHostList() {
        assertEquals("gpu003", Ranks.firstHost("gpu[003-010,012],cpu1"));
        assertEquals("a-node7", Ranks.firstHost("a-node7,b"));
        assertEquals("rack1-n01", Ranks.firstHost("rack[1-2]-n[01-04]"));
        assertEquals("node12", Ranks.firstHost("node[12,3-4]"));
        assertEquals("127.0.0.1", Ranks.firstHost("127.0.0.1"));
    }
}
