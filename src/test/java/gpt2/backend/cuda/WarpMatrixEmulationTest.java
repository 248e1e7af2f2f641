package gpt2.backend.cuda;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The emulator's warp-level matrix instructions against the PTX ISA's fragment tables, written
 * here element by element as the ISA states them (not register by register as the emulator
 * computes them): one warp fills its fragments from known matrices of small integers (exact in
 * bf16 and in float sums), runs mma.m16n8k16 and ldmatrix.x4 (plain and .trans), and checks every
 * lane's result registers. The tensor-core kernels are checked against the CPU through these
 * instructions, so they must mean on the CPU what they mean on a GPU.
 */
class WarpMatrixEmulationTest {

    private static final String PROGRAM = """
            static float A[16][16], Bm[16][8];
            __shared__ __align__(16) unsigned short tiles[32][16];   // four 8x8 matrices, rows padded to 32 bytes
            static int errors;

            static unsigned short bits(float f) { return (unsigned short) (__float_as_uint(f) >> 16); }
            static float value(unsigned word, int high) { return __uint_as_float((high ? word >> 16 : word & 0xffffu) << 16); }

            static void body() {
                int lane = threadIdx.x, groupID = lane >> 2, threadID_in_group = lane % 4;
                // A: elements a0..a7, two per register; row = groupID for a0, a1, a4, a5 and groupID + 8
                // for a2, a3, a6, a7; col = threadID_in_group * 2 + (i & 1), + 8 for i >= 4
                unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
                for (int i = 0; i < 8; i++) {
                    int row = (i == 2 || i == 3 || i == 6 || i == 7) ? groupID + 8 : groupID;
                    int col = threadID_in_group * 2 + (i & 1) + (i >= 4 ? 8 : 0);
                    a[i / 2] |= (unsigned) bits(A[row][col]) << (16 * (i & 1));
                }
                // B: elements b0..b3; row = threadID_in_group * 2 + (i & 1), + 8 for i >= 2; col = groupID
                for (int i = 0; i < 4; i++) {
                    int row = threadID_in_group * 2 + (i & 1) + (i >= 2 ? 8 : 0);
                    b[i / 2] |= (unsigned) bits(Bm[row][groupID]) << (16 * (i & 1));
                }
                float d[4] = {1.f, 2.f, 3.f, 4.f};   // accumulates into what is there
                mma_bf16_16816(d, a, b);
                // C/D: c0..c3; row = groupID for c0, c1 and groupID + 8 for c2, c3; col = threadID_in_group * 2 + (i & 1)
                for (int i = 0; i < 4; i++) {
                    int row = i < 2 ? groupID : groupID + 8, col = threadID_in_group * 2 + (i & 1);
                    float want = 1.f + i;
                    for (int k = 0; k < 16; k++) want += A[row][k] * Bm[k][col];
                    if (d[i] != want) { errors++; printf("mma lane %d d%d = %g, want %g\\n", lane, i, d[i], want); }
                }
                // ldmatrix .x4: threads 8i..8i+7 give the addresses of matrix i's rows; each thread
                // receives from matrix i the elements (row lane / 4, columns 2 (lane % 4), + 1);
                // with .trans those of (rows 2 (lane % 4), + 1, column lane / 4)
                unsigned r[4], t[4];
                ldmatrix_x4(r, &tiles[lane][0]);
                ldmatrix_x4_trans(t, &tiles[lane][0]);
                for (int m = 0; m < 4; m++) {
                    for (int h = 0; h < 2; h++) {
                        float plain = __uint_as_float((unsigned) tiles[8 * m + lane / 4][2 * (lane % 4) + h] << 16);
                        float trans = __uint_as_float((unsigned) tiles[8 * m + 2 * (lane % 4) + h][lane / 4] << 16);
                        if (value(r[m], h) != plain) { errors++; printf("ldmatrix lane %d r%d.%d\\n", lane, m, h); }
                        if (value(t[m], h) != trans) { errors++; printf("ldmatrix.trans lane %d r%d.%d\\n", lane, m, h); }
                    }
                }
            }

            int main() {
                for (int i = 0; i < 16; i++) for (int k = 0; k < 16; k++) A[i][k] = (float) ((i * 7 + k * 3) % 11 - 5);
                for (int k = 0; k < 16; k++) for (int j = 0; j < 8; j++) Bm[k][j] = (float) ((k * 5 + j * 13) % 9 - 4);
                for (int i = 0; i < 32; i++) for (int j = 0; j < 16; j++) tiles[i][j] = bits((float) (i * 16 + j));
                emu::launch("warp_matrix", true, 1, 1, 32, body);
                printf("%s %d\\n", errors == 0 ? "ok" : "errors", errors);
                return errors != 0;
            }
            """;

    @Test
    void mmaAndLdmatrixFollowThePtxFragmentTables(@TempDir Path dir) throws Exception {
        Path gpp = Path.of("/usr/bin/g++");
        if (!Files.isExecutable(gpp)) System.out.println("SKIPPED: g++ not found at /usr/bin/g++");
        Assumptions.assumeTrue(Files.isExecutable(gpp), "g++ missing");
        String emu;
        try (InputStream in = getClass().getResourceAsStream("/emulator/cuda_emu.h")) {
            emu = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        Path src = Files.writeString(dir.resolve("warp.cpp"), emu + "\n" + PROGRAM);
        Path exe = dir.resolve("warp");
        Process cc = new ProcessBuilder(gpp.toString(), "-O1", "-std=c++17", "-w", "-U_FORTIFY_SOURCE", "-o", exe.toString(),
                src.toString()).redirectErrorStream(true).start();
        String log = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(120, TimeUnit.SECONDS) && cc.exitValue() == 0, "g++ failed:\n" + log);
        Process run = new ProcessBuilder(exe.toString()).redirectErrorStream(true).start();
        String out = new String(run.getInputStream().readAllBytes()).strip();
        assertTrue(run.waitFor(60, TimeUnit.SECONDS));
        assertEquals("ok 0", out.lines().reduce((x, y) -> y).orElse(""), out);
        assertEquals(0, run.exitValue(), out);
    }
}
