package gpt2.model;

import gpt2.backend.cpu.CpuBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Decoding with the KV cache gives the logits of the full forward pass, position by position. */
class KvCacheTest {

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "seed", "modern"})
    void cachedDecodingMatchesTheFullForward(String arch) {
        // modern: RoPE rotates each new position by its own angle, so a wrong pos0 shows here
        GptConfig c = switch (arch) {
            case "gpt2" -> TinyConfigs.gpt2(0f);
            case "seed" -> TinyConfigs.seed(0.1f);
            default -> TinyConfigs.modern();
        };
        int B = 2, T = 16; // the whole block
        Random r = new Random(4);
        int[] tokens = new int[B * T];
        for (int i = 0; i < tokens.length; i++) tokens[i] = r.nextInt(c.vocabSize());
        try (CpuBackend be = new CpuBackend(2); Gpt2 m = new Gpt2(c, be); Gpt2.KvCache cache = m.newKvCache(B)) {
            m.initialize(8);
            if (c.zeroInitProjections()) { // zero projections and head would make every logit 0
                float[] p = new float[(int) m.layout().totalSize()];
                be.read(m.params(), p);
                for (int i = 0; i < p.length; i++) p[i] += (float) (r.nextGaussian() * 0.3);
                be.write(m.params(), p);
            }
            m.forward(tokens, null, B, T, -1);
            double worst = 0;
            float[][] full = new float[B * T][];
            for (int b = 0; b < B; b++) for (int t = 0; t < T; t++) full[b * T + t] = m.logits(b, t);
            for (int t = 0; t < T; t++) {
                int[] step = {tokens[t], tokens[T + t]};
                float[][] got = m.decode(step, t, cache);
                for (int b = 0; b < B; b++) {
                    float[] want = full[b * T + t];
                    float max = 0;
                    for (float x : want) max = Math.max(max, Math.abs(x));
                    for (int v = 0; v < want.length; v++) worst = Math.max(worst, Math.abs(want[v] - got[b][v]) / max);
                }
            }
            // float32 sums in another order: a few ulps of the largest logit
            assertTrue(worst < 1e-5, "cached logits differ from the full forward by " + worst + " of the largest");
            // the full-forward activations are untouched by decoding
            assertTrue(Arrays.equals(full[3], m.logits(0, 3)), "decode clobbered the forward pass");
        }
    }
}
