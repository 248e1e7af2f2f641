package gpt2.eval;

import gpt2.backend.cpu.CpuBackend;
import gpt2.data.Tokenizer;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HellaSwagTest {

    @Test
    void renderingAppendsSpacePlusEndingAndMasksIt() {
        // "Hello" -> [15496]; " world" -> [995]; " World" -> [2159]; " you" -> [345] (tiktoken's gpt2)
        HellaSwag.Example e = new HellaSwag.Example("Hello", List.of("world", "World", "you", "world"), 2);
        HellaSwag.Rendered r = HellaSwag.render(e, Tokenizer.gpt2());
        assertArrayEquals(new int[]{15496, 995}, r.tokens()[0]);
        assertArrayEquals(new int[]{15496, 2159}, r.tokens()[1]);
        assertArrayEquals(new int[]{15496, 345}, r.tokens()[2]);
        assertArrayEquals(new int[]{0, 1}, r.mask()[0]);
        assertEquals(2, r.label());
        // a longer ending: " How are you doing?" -> [1374, 389, 345, 1804, 30]
        HellaSwag.Rendered r2 = HellaSwag.render(new HellaSwag.Example("Hello", List.of("How are you doing?", "a", "b", "c"), 0),
                Tokenizer.gpt2());
        assertArrayEquals(new int[]{0, 1, 1, 1, 1, 1}, r2.mask()[0]);
        assertEquals(6, r2.tokens()[0].length);
    }

    /** Examples whose right ending the test teaches a tiny model; the wrong ones are other examples' endings. */
    static List<HellaSwag.Example> examples(int n, Random r) {
        String[] words = {"apple", "river", "candle", "mountain", "violin", "harbor", "pepper", "rocket", "garden",
                "silver", "window", "tiger", "cloud", "marble", "lantern", "forest", "engine", "meadow", "anchor", "copper"};
        List<HellaSwag.Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int label = r.nextInt(4);
            List<String> endings = new ArrayList<>();
            for (int e = 0; e < 4; e++) endings.add(e == label ? words[i] + " " + words[(i + 7) % n] : words[(i + 3 * e + 5) % n] + " " + words[(i + e + 1) % n]);
            out.add(new HellaSwag.Example("Item " + i + " is", endings, label));
        }
        return out;
    }

    @Test
    void aModelTaughtTheRightEndingsScoresOneAndChanceOnShuffledLabels() {
        Random r = new Random(3);
        List<HellaSwag.Example> ex = examples(20, r);
        GptConfig cfg = GptConfig.preset("d2").with(b -> b.numLayers(1).channels(48).numHeads(2).maxSeqLen(32));
        try (CpuBackend be = new CpuBackend(2); Gpt2 m = new Gpt2(cfg, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0f)) {
            m.initialize(5);
            // teach: context + right ending, loss on the ending's tokens (what HellaSwag scores)
            int T = 0;
            List<HellaSwag.Rendered> rows = new ArrayList<>();
            for (HellaSwag.Example e : ex) {
                HellaSwag.Rendered rr = HellaSwag.render(e, Tokenizer.gpt2());
                rows.add(rr);
                T = Math.max(T, rr.tokens()[e.label()].length - 1);
            }
            int B = rows.size();
            int[] in = new int[B * T], tg = new int[B * T];
            java.util.Arrays.fill(tg, -1);
            for (int b = 0; b < B; b++) {
                int label = ex.get(b).label();
                int[] t = rows.get(b).tokens()[label], mask = rows.get(b).mask()[label];
                for (int j = 0; j + 1 < t.length; j++) {
                    in[b * T + j] = t[j];
                    if (mask[j + 1] == 1) tg[b * T + j] = t[j + 1];
                }
            }
            float loss = 0;
            for (int step = 0; step < 80; step++) {
                m.zeroGrad();
                loss = m.forward(in, tg, B, T, -1);
                m.backward(1f);
                opt.step(m.params(), m.grads(), 1e-2f, AdamW.normAndClipScale(be, m.grads(), 1f)[1]);
            }
            assertTrue(loss < 0.3f, "the tiny model did not learn its endings: loss " + loss);
            HellaSwag.Result right = HellaSwag.evaluate(m, ex, 3, 0, null);
            assertEquals(20, right.examples());
            assertEquals(1.0, right.acc(), "acc: " + right.line());
            assertEquals(1.0, right.accNorm(), "acc_norm: " + right.line());
            // the same endings with labels moved: the model still picks what it learned, so only the
            // labels that did not move count; with 4 choices that is about a quarter
            List<HellaSwag.Example> shuffled = new ArrayList<>();
            int same = 0;
            for (HellaSwag.Example e : ex) {
                int label = r.nextInt(4);
                if (label == e.label()) same++;
                shuffled.add(new HellaSwag.Example(e.ctx(), e.endings(), label));
            }
            HellaSwag.Result chance = HellaSwag.evaluate(m, shuffled, 20, 0, null);
            assertEquals(same / 20.0, chance.accNorm(), 1e-9, "acc_norm on shuffled labels: " + chance.line());
            assertTrue(chance.accNorm() < 0.5, chance.line());
        }
    }

    @Test
    void malformedLinesNameTheirNumber(@TempDir Path dir) throws Exception {
        String good = "{\"ctx\": \"A man\", \"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 1}";
        Path f = Files.writeString(dir.resolve("h.jsonl"), good + "\n" + good + "\n{\"ctx\": \"x\", \"label\": 1}\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HellaSwag.load(f, 0));
        assertTrue(e.getMessage().contains("h.jsonl: line 3: missing array 'endings'"), e.getMessage());
        assertEquals(2, HellaSwag.load(f, 2).size(), "--limit stops before the bad line");
    }

    @Test
    void argminPrefersTheFirstOfEqualLosses() {
        assertEquals(1, HellaSwag.argmin(new double[]{3, 1, 1, 2}));
    }
}
