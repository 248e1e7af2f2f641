package gpt2.backend.cuda;

import gpt2.backend.BFloat16;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The kernels' float -> bf16 rounding (bf16_bits, f2x/x2f of the bf16 build in kernels/common.cuh)
 * is bit for bit the Java side's ({@link BFloat16}, which writes bf16 checkpoints and uploads bf16
 * buffers): the same common.cuh is compiled for the host with g++ behind a few stand-ins for CUDA
 * intrinsics, and both convert the same float bit patterns: NaNs, infinities, zeros, subnormals,
 * exact ties and random bits. Skipped with a message where g++ is absent.
 */
class Bf16RoundingTest {

    private static final String PRELUDE = """
            #include <cstdio>
            #include <cstring>
            #include <cmath>
            #define __device__
            #define __forceinline__ inline
            #define __align__(n) __attribute__((aligned(n)))
            static inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
            static inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }
            static inline float __shfl_xor_sync(unsigned int, float v, int) { return v; }
            """;

    private static final String MAIN = """
            int main() {
                unsigned int u;
                while (scanf("%x", &u) == 1) {
                    float f = __uint_as_float(u);
                    floatX x = f2x(f);
                    printf("%04x %08x\\n", (unsigned int) bf16_bits(f), __float_as_uint(x2f(x)));
                }
                return 0;
            }
            """;

    @Test
    void kernelRoundingEqualsJavas(@TempDir Path dir) throws Exception {
        Path gpp = Path.of("/usr/bin/g++");
        if (!Files.isExecutable(gpp)) System.out.println("SKIPPED: g++ not found; the kernels' rounding is checked on a GPU only");
        Assumptions.assumeTrue(Files.isExecutable(gpp), "g++ missing");
        String common = new String(KernelCompiler.class.getResourceAsStream("/kernels/common.cuh").readAllBytes(),
                StandardCharsets.UTF_8);
        Path src = Files.writeString(dir.resolve("round.cpp"), PRELUDE + common + MAIN);
        Path exe = dir.resolve("round");
        Process cc = new ProcessBuilder(gpp.toString(), "-O1", "-DGPT2_BF16", "-o", exe.toString(), src.toString())
                .redirectErrorStream(true).start();
        String log = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(120, TimeUnit.SECONDS) && cc.exitValue() == 0, "g++ failed:\n" + log);

        List<Integer> bits = new ArrayList<>(List.of(
                0x00000000, 0x80000000, 0x7f800000, 0xff800000,  // zeros, infinities
                0x7fc00000, 0x7f800001, 0xffffffff, 0x7fbfffff,  // NaNs (quiet, signalling)
                0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff,  // ties to even (down, up), just above, just below
                0x00000001, 0x00400000, 0x007fffff, 0x00008000,  // subnormals
                0x7f7fffff, 0x7f7f8000, 0xff7fffff,              // largest floats round to infinity
                Float.floatToRawIntBits(1f / 3), Float.floatToRawIntBits((float) Math.PI)));
        Random r = new Random(42);
        for (int i = 0; i < 20000; i++) bits.add(r.nextInt());
        for (int i = 0; i < 2000; i++) bits.add(Float.floatToRawIntBits((float) r.nextGaussian()));

        Process p = new ProcessBuilder(exe.toString()).start();
        Thread feeder = Thread.ofVirtual().start(() -> {
            try (Writer w = p.outputWriter()) {
                for (int b : bits) w.write(Integer.toHexString(b) + "\n");
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        List<String> out = new BufferedReader(new InputStreamReader(p.getInputStream())).lines().toList();
        feeder.join();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0);
        assertEquals(bits.size(), out.size());
        for (int i = 0; i < bits.size(); i++) {
            float f = Float.intBitsToFloat(bits.get(i));
            short expected = BFloat16.fromFloat(f);
            String[] got = out.get(i).split(" ");
            assertEquals(expected & 0xffff, Integer.parseInt(got[0], 16),
                    "bf16_bits of 0x" + Integer.toHexString(bits.get(i)) + " (" + f + ")");
            assertEquals(Float.floatToRawIntBits(BFloat16.toFloat(expected)), Integer.parseUnsignedInt(got[1], 16),
                    "x2f(f2x) of 0x" + Integer.toHexString(bits.get(i)));
        }
        System.out.println("  bf16 rounding: " + bits.size() + " float bit patterns, kernel == Java");
    }
}
