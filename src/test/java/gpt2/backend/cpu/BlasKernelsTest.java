package gpt2.backend.cpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** When OPENBLAS_CORETYPE holds OpenBLAS below the CPU, one note says so; otherwise nothing. */
class BlasKernelsTest {

    private static final String AVX512 = "fpu sse sse2 avx fma avx2 avx512f avx512dq avx512bw avx512vl";
    private static final String AVX2 = "fpu sse sse2 avx fma avx2";

    @Test
    void anOlderKernelSetThanTheCpuGetsANoteNamingTheVariable() {
        String note = Blas.heldBackNote("Haswell", AVX512);
        assertTrue(note != null && note.startsWith("note: OPENBLAS_CORETYPE=Haswell") && note.contains("AVX2 kernels")
                && note.contains("AVX-512") && !note.contains("\n"), String.valueOf(note));
        assertTrue(Blas.heldBackNote("sandybridge", AVX2).contains("AVX kernels on a CPU with AVX2"));
    }

    @Test
    void theCpusOwnSetAnUnknownNameOrNoVariableGetNone() {
        assertNull(Blas.heldBackNote("SkylakeX", AVX512));
        assertNull(Blas.heldBackNote("Haswell", AVX2));
        assertNull(Blas.heldBackNote("Zen", AVX2));
        assertNull(Blas.heldBackNote("NoSuchCore", AVX512));
        assertNull(Blas.heldBackNote(null, AVX512));
        assertNull(Blas.heldBackNote("", AVX512));
        assertNull(Blas.heldBackNote("Haswell", null)); // not Linux: the CPU's level unknown
    }

    @Test
    void levelsFollowTheInstructionSets() {
        assertEquals(4, Blas.cpuLevel(AVX512));
        assertEquals(3, Blas.cpuLevel(AVX2));
        assertEquals(4, Blas.kernelLevel("Cooperlake"));
        assertEquals(3, Blas.kernelLevel("ZEN"));
        assertEquals(1, Blas.kernelLevel("Nehalem"));
    }

    /** The kernel set OpenBLAS reports is one this code knows the level of (so the note can compare). */
    @Test
    void openBlasNamesAKnownKernelSet() {
        if (!Blas.available()) {
            System.out.println("skipped: OpenBLAS not loaded (" + Blas.unavailableReason() + ")");
            return;
        }
        String core = Blas.coreName();
        assertTrue(core != null && Blas.kernelLevel(core) > 0, "openblas_get_corename: " + core);
        String forced = System.getenv("OPENBLAS_CORETYPE");
        if (forced != null && Blas.kernelLevel(forced) > 0) {
            assertEquals(forced.trim().toLowerCase(), core.toLowerCase(), "OpenBLAS obeys OPENBLAS_CORETYPE");
        }
    }
}
