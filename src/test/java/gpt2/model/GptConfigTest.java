package gpt2.model;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GptConfigTest {

    @Test
    void seedD12HasTheOriginalsParameterCount() {
        // the count the original PyTorch project printed
        assertEquals(162_990_336L, GptConfig.preset("seed-d12").parameterCount());
    }

    @Test
    void gpt2HasOpenAisParameterCount() {
        // GPT-2 small as published by Hugging Face (tied head counted once)
        assertEquals(124_439_808L, GptConfig.preset("gpt2").parameterCount());
        // padding adds (50304 - 50257) rows of 768 to the one embedding
        assertEquals(124_439_808L + 47L * 768, GptConfig.preset("gpt2").paddedParameterCount());
    }

    @Test
    void largerPresetsMatchGpt2Sizes() {
        // Hugging Face's gpt2-medium / -large / -xl parameter counts
        assertEquals(354_823_168L, GptConfig.preset("d24").parameterCount());
        assertEquals(774_030_080L, GptConfig.preset("d36").parameterCount());
        assertEquals(1_557_611_200L, GptConfig.preset("d48").parameterCount());
    }

    @Test
    void gpt2VocabularyIsPaddedTo50304() {
        GptConfig c = GptConfig.preset("gpt2");
        assertEquals(50257, c.vocabSize());
        assertEquals(50304, c.paddedVocabSize());
    }

    @Test
    void seedArchitectureSwitches() {
        GptConfig c = GptConfig.preset("seed-d12");
        assertEquals(GptConfig.NormType.RMSNORM, c.norm());
        assertEquals(1e-6f, c.normEps());
        assertTrue(!c.qkvBias() && c.bias() && !c.tiedEmbeddings());
        assertEquals(0.1f, c.dropout());
        ParameterLayout l = ParameterLayout.of(c);
        assertNull(l.layer(0).qkvb());
        assertNull(l.layer(0).ln1b());
        assertTrue(l.lmHead() != l.wte());
    }

    @Test
    void layoutIsContiguousWithoutOverlap() {
        for (String name : GptConfig.presetNames()) {
            ParameterLayout l = ParameterLayout.of(GptConfig.preset(name));
            long next = 0;
            for (TensorSpec t : l.tensors()) {
                assertEquals(next, t.offset(), name + ": " + t.name() + " does not follow its predecessor");
                next = t.end();
            }
            assertEquals(next, l.totalSize(), name);
            for (ParameterLayout.Layer layer : l.layers()) {
                TensorSpec first = layer.ln1w() != null ? layer.ln1w() : layer.qkvw(); // parameter-free norms have no weight
                assertEquals(first.offset(), layer.start(), name + " layer start");
                assertEquals(layer.fcprojb() != null ? layer.fcprojb().end() : layer.fcprojw().end(), layer.end());
            }
        }
    }

    @Test
    void tiedHeadIsTheEmbedding() {
        ParameterLayout l = ParameterLayout.of(GptConfig.preset("gpt2"));
        assertSame(l.wte(), l.lmHead());
        assertEquals(List.of(50304L, 768L), List.of(l.wte().dim(0), l.wte().dim(1)));
    }

    @Test
    void overridesAndValidation() {
        GptConfig c = GptConfig.preset("d12").with(b -> b.numLayers(3).vocabSize(100));
        assertEquals(3, c.numLayers());
        assertEquals(128, c.paddedVocabSize());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GptConfig.preset("d12").with(b -> b.numHeads(5)));
        assertTrue(e.getMessage().contains("n_embd 768 must be divisible by n_head 5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GptConfig.preset("gpt3"));
        assertTrue(e.getMessage().contains("unknown model preset 'gpt3'"), e.getMessage());
    }
}
