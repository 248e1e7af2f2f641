package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.model.Gpt2;
import gpt2.model.GptConfig;
import gpt2.train.AdamW;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;

import static gpt2.backend.cuda.KernelCompiler.Param.F32_PTR;
import static gpt2.backend.cuda.KernelCompiler.Param.FLOAT;
import static gpt2.backend.cuda.KernelCompiler.Param.FLOATX_PTR;
import static gpt2.backend.cuda.KernelCompiler.Param.INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CUDA backend's plumbing without a GPU: a dry run ({@link CudaBackend#dryRun}) checks every
 * launch against the kernel's parameter list parsed from its source (argument count, scalar types,
 * each pointer's element type against the buffer passed) and every GEMM's operand types and
 * extents, then records it. A whole training step, an optimizer step and KV-cache decoding of both
 * architectures, in float32 and in bf16 mixed precision, must pass those checks. What it cannot
 * show (the kernels' arithmetic) is the GPU tests' part.
 */
class CudaDryRunTest {

    static final GptConfig GPT2 = GptConfig.preset("d2").with(b -> b.vocabSize(500).channels(64).numHeads(4).maxSeqLen(32).dropout(0.1f));
    /** RMSNorm, no q/k/v bias, and here no linear biases at all (GELU epilogue without bias). */
    static final GptConfig SEED = GptConfig.preset("seed-d12").with(b -> b.numLayers(2).vocabSize(500).channels(64)
            .numHeads(4).maxSeqLen(32).bias(false));

    @Test
    void signaturesAreReadFromTheSources() {
        Map<String, List<KernelCompiler.Param>> norm = KernelCompiler.signatures("norm");
        assertEquals(List.of(FLOATX_PTR, F32_PTR, F32_PTR, FLOATX_PTR, FLOATX_PTR, FLOATX_PTR, FLOATX_PTR, FLOATX_PTR, INT,
                INT, FLOAT), norm.get("norm_forward"));
        // flash.cu declares its kernels through a macro, once per head size
        Map<String, List<KernelCompiler.Param>> flash = KernelCompiler.signatures("flash");
        for (int hs : new int[]{16, 32, 64, 128}) {
            assertEquals(List.of(FLOATX_PTR, F32_PTR, FLOATX_PTR, INT, INT, FLOAT, FLOAT, KernelCompiler.Param.I64),
                    flash.get("flash_forward_" + hs));
            assertTrue(flash.containsKey("flash_backward_dq_" + hs) && flash.containsKey("flash_backward_dkdv_" + hs));
        }
        int kernels = 0;
        for (String f : KernelCompiler.FAMILIES) {
            Map<String, List<KernelCompiler.Param>> sigs = KernelCompiler.signatures(f);
            assertFalse(sigs.isEmpty(), f);
            assertEquals(KernelCompiler.kernelNames(f), List.copyOf(sigs.keySet()));
            kernels += sigs.size();
        }
        assertTrue(kernels >= 24, "kernels found: " + kernels);
    }

    @ParameterizedTest(name = "bf16 {0}")
    @ValueSource(booleans = {false, true})
    void trainingStepAndDecodingPassEveryCheck(boolean bf16) {
        CudaBackend be = CudaBackend.dryRun(bf16);
        assertEquals(bf16 ? DType.BF16 : DType.F32, be.computeType());
        for (GptConfig cfg : new GptConfig[]{GPT2, SEED}) {
            Random r = new Random(1);
            int B = 2, T = 32;
            int[] in = new int[B * T], tg = new int[B * T];
            for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
            tg[3] = -1;
            try (Gpt2 m = new Gpt2(cfg, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
                m.initialize(1);
                m.zeroGrad();
                m.forward(in, tg, B, T, 7);   // training pass (dropout on for GPT2)
                m.backward(0.5f);
                float[] ns = AdamW.normAndClipScale(be, m.grads(), 1f);
                opt.step(m.params(), m.grads(), 1e-3f, ns[1]);
                m.zeroGrad();                  // the trainer's step: fused classifier, one read, one AdamW pass
                m.trainForward(in, tg, B, T, 9, 0.5f);
                m.backward(0.5f);
                m.stepStatistics(0, m.layout().totalSize());
                opt.step(m, 1e-3f, 1f);
                m.forward(in, null, B, T, -1); // evaluation pass, logits only
                m.logits(1, 5);
                try (Gpt2.KvCache cache = m.newKvCache(2)) {
                    for (int pos = 0; pos < 3; pos++) m.decode(new int[]{1, 2}, pos, cache);
                }
                m.setFlashAttention(true);     // the same step with flash attention
                m.zeroGrad();
                m.forward(in, tg, B, T, 8);
                m.backward(0.5f);
            }
        }
        Set<String> kernels = new TreeSet<>(), gemms = new TreeSet<>();
        for (String line : be.trace()) {
            if (line.startsWith("kernel ")) kernels.add(line.substring(7));
            else gemms.add(line.split(" ")[1]);
        }
        System.out.println("  dry run, bf16 " + bf16 + ": " + be.trace().size() + " launches/GEMMs; GEMM types " + gemms);
        for (String k : List.of("encoder_forward", "encoder_backward_wpe", "encoder_backward_wte", "norm_forward",
                "norm_backward", "sum_partials", "bias_partial", "softmax_forward",
                "softmax_backward", "attention_decode", "gelu_backward_colsum", "dropout", "flash_forward_16",
                "flash_delta", "flash_backward_dq_16", "flash_backward_dkdv_16",
                "crossentropy_forward", "classifier_fused", "loss_accumulate", "sum_squares_partial", "sum_squares_final",
                "adamw")) {
            assertTrue(kernels.contains(k), k + " never launched");
        }
        if (bf16) {
            assertTrue(kernels.contains("to_bf16"), "the bf16 weight copy is never refreshed");
            assertEquals(Set.of("BF16->BF16", "BF16->F32"), gemms, "GEMM types under mixed precision");
        } else {
            assertFalse(kernels.contains("to_bf16"));
            assertEquals(Set.of("F32->F32"), gemms);
        }
        // cuBLASLt epilogues: the MLP's GELU with and without bias (GPT2 has biases, SEED here none),
        // the other biased linear layers
        assertTrue(be.trace().stream().anyMatch(l -> l.endsWith("+bias +gelu")), "no fused bias+GELU");
        assertTrue(be.trace().stream().anyMatch(l -> l.startsWith("gemm") && !l.contains("+bias") && l.endsWith("+gelu")),
                "no fused GELU without bias");
        assertTrue(be.trace().stream().anyMatch(l -> l.endsWith("+bias")), "no fused bias");
        assertFalse(kernels.contains("add_bias") || kernels.contains("gelu_forward"), "unfused epilogue ops ran: " + kernels);
    }

    /** d4-modern shrunk: RoPE (no wpe), QK-norm, ReLU², parameter-free RMSNorm, no biases, soft-capped logits. */
    static final GptConfig MODERN = GptConfig.preset("d4-modern").with(b -> b.numLayers(2).vocabSize(500).channels(64)
            .numHeads(4).maxSeqLen(32));

    /**
     * The modern recipe's step, evaluation and decoding, and Muon's ops, pass every check in both
     * precisions: its kernels run (QK-norm/RoPE, ReLU², the soft cap; no position table), and the
     * trainer's step still waits for the device once.
     */
    @ParameterizedTest(name = "bf16 {0}")
    @ValueSource(booleans = {false, true})
    void theModernRecipePassesEveryCheck(boolean bf16) {
        CudaBackend be = CudaBackend.dryRun(bf16);
        Random r = new Random(1);
        int B = 2, T = 32;
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = r.nextInt(500); tg[i] = r.nextInt(500); }
        try (Gpt2 m = new Gpt2(MODERN, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            m.initialize(1);
            for (boolean flash : new boolean[]{false, true}) {
                m.setFlashAttention(flash);
                m.zeroGrad();
                m.forward(in, tg, B, T, 7);
                m.backward(0.5f);
            }
            be.profile().reset();
            m.zeroGrad();
            m.trainForward(in, tg, B, T, 9, 0.5f);
            m.backward(0.5f);
            float[] numbers = m.stepStatistics(0, m.layout().totalSize());
            opt.step(m, 1e-3f, AdamW.clipScale((float) Math.sqrt(numbers[1]), 1f));
            assertEquals(1, be.profile().hostSyncs(), "host synchronizations in a modern step");
            m.forward(in, null, B, T, -1);
            try (Gpt2.KvCache cache = m.newKvCache(2)) {
                for (int pos = 0; pos < 3; pos++) m.decode(new int[]{1, 2}, pos, cache);
            }
            // Muon's ops on a matrix of the gradients (tall: Newton-Schulz transposes it), float32 in both precisions
            Buffer g = m.grads(), buf = be.allocate(DType.F32, g.length(), "momentum");
            be.muonMomentum(g, buf, 0.95f, 1f);
            be.newtonSchulz(g.slice(m.layout().layer(0).fcw()), 4 * 64, 64, 5);
            be.axpy(m.params(), g, -1e-3f, g.length());
        }
        Set<String> kernels = new TreeSet<>();
        for (String line : be.trace()) if (line.startsWith("kernel ")) kernels.add(line.substring(7));
        for (String k : List.of("qknorm_rope_forward", "qknorm_rope_backward", "relu2_forward", "relu2_backward",
                "softcap_forward", "classifier_fused", "norm_forward", "norm_backward", "encoder_forward",
                "encoder_backward_wte", "attention_decode", "muon_momentum", "transpose_scale", "axpby")) {
            assertTrue(kernels.contains(k), k + " never launched");
        }
        assertFalse(kernels.contains("encoder_backward_wpe"), "a position-table gradient without a position table");
        assertFalse(kernels.contains("gelu_forward") || kernels.contains("gelu_backward_colsum"), "GELU ran in a ReLU² model");
        assertTrue(be.trace().stream().anyMatch(l -> l.startsWith("gemm F32->F32 ")), "Newton-Schulz's float32 GEMMs");
    }

    /** The bf16 weight copy is remade once per change of the parameters, not once per micro-batch. */
    @Test
    void theWeightCopyIsRemadeOnlyAfterTheParametersChange() {
        CudaBackend be = CudaBackend.dryRun(true);
        int[] in = new int[2 * 32];
        try (Gpt2 m = new Gpt2(GPT2, be)) {
            m.initialize(1);
            m.forward(in, in, 2, 32, 1);
            m.forward(in, in, 2, 32, 2);  // gradient accumulation: the same weights
            m.forward(in, null, 2, 32, -1);
            assertEquals(1, conversions(be));
            m.params();                   // the optimizer, a load or a collective may write them
            m.forward(in, in, 2, 32, 3);
            assertEquals(2, conversions(be));
            m.initialize(2);
            try (Gpt2.KvCache cache = m.newKvCache(1)) {
                m.decode(new int[]{1}, 0, cache);
                m.decode(new int[]{2}, 1, cache);
            }
            assertEquals(3, conversions(be));
        }
    }

    private static long conversions(CudaBackend be) {
        return be.trace().stream().filter("kernel to_bf16"::equals).count();
    }

    @Test
    void aBufferOfTheWrongTypeIsRefused() {
        CudaBackend be = CudaBackend.dryRun(true);
        Buffer f32 = be.allocate(DType.F32, 100, "f32"), bf = be.allocate(DType.BF16, 100, "bf16");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.geluForward(f32, bf, 100));
        assertTrue(e.getMessage().contains("gelu_forward argument 0") && e.getMessage().contains("compute type"), e.getMessage());
        be.geluForward(bf, bf, 100);
        // the norm statistics are float32 even under bf16
        Buffer stats = be.allocate(DType.BF16, 10, "stats");
        assertThrows(IllegalArgumentException.class, () -> be.rmsNormForward(bf, stats, bf, bf, 10, 10, 1e-5f));
        // a parameter gradient must be float32
        Buffer w = be.allocate(DType.BF16, 100, "w"), dw = be.allocate(DType.BF16, 100, "dw");
        e = assertThrows(IllegalArgumentException.class, () -> be.matmulBackward(bf, dw, null, bf, bf, w, 10, 10, 10));
        assertTrue(e.getMessage().contains("parameter gradients are float32"), e.getMessage());
    }

    @Test
    void gemmExtentsAndScalarTypesAreChecked() {
        CudaBackend be = CudaBackend.dryRun(false);
        Buffer x = be.allocate(DType.F32, 64 * 32, "x"), w = be.allocate(DType.F32, 48 * 32, "w");
        Buffer small = be.allocate(DType.F32, 64 * 48 - 1, "out");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.matmulForward(small, x, w, null, 64, 32, 48));
        assertTrue(e.getMessage().contains("GEMM operand C"), e.getMessage());
        Buffer out = be.allocate(DType.F32, 64 * 48, "out");
        be.matmulForward(out, x, w, null, 64, 32, 48);
        assertEquals("gemm F32->F32 48x64x32", be.trace().getLast());
        Buffer ints = be.allocate(DType.I32, 10, "tokens");
        assertThrows(IllegalArgumentException.class, () -> be.encoderForward(out, out, w, w, 1, 1, 1)); // tokens not int32
        be.encoderForward(out, ints, w, w, 1, 1, 1);
    }

    @Test
    void misalignedOperandsRunTheEpilogueAsSeparateKernels() {
        CudaBackend be = CudaBackend.dryRun(false);
        Buffer x = be.allocate(DType.F32, 64 * 32, "x"), w = be.allocate(DType.F32, 48 * 32, "w");
        Buffer out = be.allocate(DType.F32, 64 * 48 + 1, "out"), bias = be.allocate(DType.F32, 48, "b");
        be.matmulForward(out, x, w, bias, 64, 32, 48);
        assertEquals("gemm F32->F32 48x64x32 +bias", be.trace().getLast());
        be.matmulForward(out.slice(1, 64 * 48), x, w, bias, 64, 32, 48); // 4-byte aligned only
        assertEquals(List.of("gemm F32->F32 48x64x32", "kernel add_bias"), be.trace().subList(be.trace().size() - 2, be.trace().size()));
        be.matmulForward(out, x, w, bias, 64, 32, 44 + 4); // shapes are fine; now an OC that is no multiple of 8
        Buffer w2 = be.allocate(DType.F32, 44 * 32, "w2");
        be.matmulForward(out, x, w2, bias.slice(0, 44), 64, 32, 44);
        assertEquals("kernel add_bias", be.trace().getLast());
    }

    @Test
    void withoutAnEpilogueAlgorithmTheGemmRunsWithSeparateKernels() {
        CudaBackend be = new CudaBackend(-1, false, true, true, new DryExecutor(false));
        Buffer x = be.allocate(DType.BF16, 64 * 32, "x"), w = be.allocate(DType.BF16, 48 * 32, "w");
        Buffer out = be.allocate(DType.BF16, 64 * 48, "out"), pre = be.allocate(DType.BF16, 64 * 48, "pre");
        Buffer bias = be.allocate(DType.BF16, 48, "b");
        be.matmulGeluForward(out, pre, x, w, bias, 64, 32, 48);
        assertEquals(List.of("gemm BF16->BF16 48x64x32", "kernel add_bias", "kernel gelu_forward"),
                be.trace().subList(be.trace().size() - 3, be.trace().size()));
    }

    /**
     * The trainer's step as the host sees it: one host synchronization (the read of loss and norm),
     * one AdamW launch that also writes the bf16 weight copy (no separate conversion), the fused
     * classifier instead of a loss kernel plus a gradient kernel, and the tokens uploaded without
     * waiting. Checked over two micro-batches of gradient accumulation.
     */
    @ParameterizedTest(name = "bf16 {0}")
    @ValueSource(booleans = {false, true})
    void theTrainerStepWaitsForTheDeviceOnce(boolean bf16) {
        CudaBackend be = CudaBackend.dryRun(bf16);
        int B = 2, T = 32;
        int[] in = new int[B * T];
        try (Gpt2 m = new Gpt2(GPT2, be); AdamW opt = new AdamW(m, 0.9f, 0.95f, 1e-8f, 0.1f)) {
            m.initialize(1);
            for (int step = 0; step < 2; step++) {
                if (step == 1) {
                    be.profile().reset();
                    be.trace().clear();
                }
                m.zeroGrad();
                for (int micro = 0; micro < 2; micro++) {
                    m.trainForward(in, in, B, T, step * 2 + micro, 0.5f);
                    m.backward(0.5f);
                }
                float[] numbers = m.stepStatistics(0, m.layout().totalSize());
                opt.step(m, 1e-3f, AdamW.clipScale((float) Math.sqrt(numbers[1]), 1f));
            }
            gpt2.backend.Profile p = be.profile();
            assertEquals(1, p.hostSyncs(), "host synchronizations in a step");
            assertEquals(p.launches() + p.gemms(), be.trace().size() + count(p, "memset") + count(p, "memcpy"),
                    "every launch and GEMM is in the profile");
            assertEquals(1, count(p, "adamw"), "AdamW launches");
            assertEquals(2, count(p, "classifier_fused"));
            assertEquals(0, count(p, "crossentropy_forward"), "a separate loss kernel ran");
            assertEquals(0, count(p, "to_bf16"), "the weight copy was converted separately");
            assertEquals(1, count(p, "sum_squares_partial"));
            assertTrue(p.peakDeviceBytes() >= p.deviceBytes() && p.deviceBytes() > 0);
        }
    }

    private static long count(gpt2.backend.Profile p, String family) {
        return p.rows().stream().filter(r -> r.family().equals(family)).mapToLong(gpt2.backend.Profile.Row::calls).sum();
    }

    /** The attention's GEMMs read heads in place through pointer tables; each table is checked against its buffer. */
    @Test
    void attentionPointerTablesAreCheckedAgainstTheirBuffers() {
        CudaBackend be = CudaBackend.dryRun(true);
        int B = 2, T = 16, C = 32, NH = 4;
        Buffer out = be.allocate(DType.BF16, (long) B * T * C, "out"), att = be.allocate(DType.BF16, (long) B * NH * T * T, "att");
        Buffer qkv = be.allocate(DType.BF16, 3L * B * T * C, "qkv"), small = be.allocate(DType.BF16, 3L * B * T * C - 1, "qkv short");
        be.attentionForward(out, att, qkv, B, T, C, NH, null);
        assertTrue(be.trace().stream().anyMatch(l -> l.equals("gemm BF16->BF16 16x16x8 batch 8 by pointers")), be.trace().toString());
        assertFalse(be.trace().stream().anyMatch(l -> l.contains("permute")), "no permute passes: " + be.trace());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.attentionForward(out, att, small, B, T, C, NH, null));
        assertTrue(e.getMessage().contains("GEMM operand") && e.getMessage().contains("does not fit"), e.getMessage());
    }

    @Test
    void cublasLtIsToldThePointersRealAlignment() {
        assertEquals(256, GpuExecutor.alignment(0x7f0000000000L));
        assertEquals(256, GpuExecutor.alignment(0x7f0000000400L));
        assertEquals(128, GpuExecutor.alignment(0x7f0000000080L));
        assertEquals(16, GpuExecutor.alignment(0x7f0000000010L + 0x20));
        assertEquals(4, GpuExecutor.alignment(0x7f0000000004L));
    }

    @Test
    void theDryRunLoadsNoCudaLibrary() {
        // constructing and using it must not need the driver: this JVM (CI) has none
        CudaBackend be = CudaBackend.dryRun(true);
        assertTrue(be.name().contains("dry run") && be.name().contains("bf16"), be.name());
        Buffer a = be.allocate(DType.F32, 1000, "a"), b = be.allocate(DType.BF16, 1000, "b");
        be.convert(b, a);
        assertEquals("kernel to_bf16", be.trace().getLast());
        assertThrows(IllegalArgumentException.class, () -> be.convert(a, b));
    }
}
