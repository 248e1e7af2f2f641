package gpt2.backend.cuda;

import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.backend.Dropout;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The CUDA backend's attention: the materialized path (batched GEMMs over arrays of pointers that
 * read q, k and v in place inside qkv and write each head into its columns; softmax kernels between),
 * flash attention (kernels/flash.cu) and one-position decoding with a KV cache.
 *
 * <pre>
 * forward:  qkv (B,T,3C) -GEMM q.k^T by pointer-> preatt (B,NH,T,T) -softmax-> att (saved)
 *           -[dropout copy]-> att' -GEMM att'.v by pointer-> out (B,T,C), each head into its columns
 * backward: dout, att, qkv -4 GEMMs by pointer + softmax backward-> dqkv (B,T,3C), written in place
 * </pre>
 */
final class CudaAttention {

    private static final boolean NO_T = false, TRANS = true;

    private final CudaBackend be;

    CudaAttention(CudaBackend backend) {
        this.be = backend;
    }

    /** A pointer table's identity: the buffer and where the heads lie in it. */
    private record HeadsKey(long address, long length, DType dtype, int B, int NH, long batchStride, long headStride,
                            long shift) {
    }

    /** Device arrays of pointers to per-head matrices, by buffer and layout (built once, reused every step). */
    private final Map<HeadsKey, PointerTable> pointerTables = new HashMap<>();

    /**
     * The pointers to the B*NH head matrices inside a buffer: head (b, h) starts at element
     * b*batchStride + h*headStride + shift (q, k, v inside qkv (B,T,3C); a head's columns of (B,T,C);
     * the (T,T) blocks of (B,NH,T,T)), so batched GEMMs read and write them in place.
     */
    private PointerTable heads(Buffer buffer, int B, int NH, long batchStride, long headStride, long shift) {
        CudaBuffer base = Launcher.cuda(buffer);
        HeadsKey key = new HeadsKey(base.address(), base.length(), base.dtype(), B, NH, batchStride, headStride, shift);
        PointerTable t = pointerTables.get(key);
        if (t == null) {
            List<Launcher.Operand> ops = new ArrayList<>(B * NH);
            CudaBuffer device = (CudaBuffer) be.allocate(DType.I64, (long) B * NH, "attention pointer table");
            long[] addresses = new long[B * NH];
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < NH; h++) {
                    long offset = b * batchStride + h * headStride + shift;
                    ops.add(new Launcher.Operand(base, offset));
                    addresses[b * NH + h] = base.address() + offset * base.dtype().bytes();
                }
            }
            be.uploadAsync(device, addresses);
            t = new PointerTable(device, List.copyOf(ops));
            pointerTables.put(key, t);
        }
        return t;
    }

    /**
     * The materialized attention, with batched GEMMs over pointer arrays that read q, k and v in place
     * inside qkv (leading dimension 3C) and write each head's output straight into out (leading
     * dimension C): no permute passes.
     */
    void forward(Buffer out, Buffer att, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        long tt = (long) B * NH * T * T, rows = (long) T * 3 * C, blocks = (long) NH * T * T, block = (long) T * T;
        CudaBuffer pre = be.scratch("preatt", be.computeType(), tt);
        PointerTable q = heads(qkv, B, NH, rows, hs, 0), k = heads(qkv, B, NH, rows, hs, C), v = heads(qkv, B, NH, rows, hs, 2L * C);
        // preatt[t][t2] = q_t . k_t2 (llm.c's layout)
        be.gemmPointers("attention q.k", TRANS, NO_T, T, T, hs, k, 3 * C, q, 3 * C, heads(pre, B, NH, blocks, block, 0), T);
        be.launch("softmax_forward", 2 * tt * be.x(), CudaBackend.blocks((long) B * NH * T, 8), 256, att, pre, B * NH * T, T,
                (float) (1.0 / Math.sqrt(hs)));
        Buffer attUsed = att;
        if (dropout != null && !dropout.isOff()) {
            CudaBuffer dropped = be.scratch("att_dropped", be.computeType(), tt);
            be.launch("dropout", 2 * tt * be.x(), CudaBackend.blocks(tt, 256 * be.pack()), 256, dropped, att, tt, dropout.p(), dropout.key());
            attUsed = dropped;
        }
        // out[b][t][h*hs..] (T,hs) = att' (T,T) v (T,hs)
        be.gemmPointers("attention att.v", NO_T, NO_T, hs, T, T, v, 3 * C, heads(attUsed, B, NH, blocks, block, 0), T,
                heads(out, B, NH, (long) T * C, hs, 0), C);
    }

    void backward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer att, int B, int T, int C, int NH, Dropout dropout) {
        int hs = C / NH;
        long tt = (long) B * NH * T * T, rows = (long) T * 3 * C, blocks = (long) NH * T * T, block = (long) T * T;
        CudaBuffer datt = be.scratch("datt", be.computeType(), tt), dpre = be.scratch("preatt", be.computeType(), tt);
        PointerTable q = heads(qkv, B, NH, rows, hs, 0), k = heads(qkv, B, NH, rows, hs, C), v = heads(qkv, B, NH, rows, hs, 2L * C);
        PointerTable dq = heads(dqkv, B, NH, rows, hs, 0), dk = heads(dqkv, B, NH, rows, hs, C), dv = heads(dqkv, B, NH, rows, hs, 2L * C);
        PointerTable dy = heads(dout, B, NH, (long) T * C, hs, 0);
        PointerTable dattT = heads(datt, B, NH, blocks, block, 0), dpreT = heads(dpre, B, NH, blocks, block, 0);
        boolean drop = dropout != null && !dropout.isOff();
        Buffer attUsed = att;
        if (drop) {
            CudaBuffer dropped = be.scratch("att_dropped", be.computeType(), tt);
            be.launch("dropout", 2 * tt * be.x(), CudaBackend.blocks(tt, 256 * be.pack()), 256, dropped, att, tt, dropout.p(), dropout.key());
            attUsed = dropped;
        }
        // datt'[t][t2] = dy_t . v_t2 ; dv = att'^T dy, written into dqkv's v columns
        be.gemmPointers("attention bwd", TRANS, NO_T, T, T, hs, v, 3 * C, dy, C, dattT, T);
        be.gemmPointers("attention bwd", NO_T, TRANS, hs, T, T, dy, C, heads(attUsed, B, NH, blocks, block, 0), T, dv, 3 * C);
        if (drop) be.launch("dropout", 2 * tt * be.x(), CudaBackend.blocks(tt, 256 * be.pack()), 256, datt, datt, tt, dropout.p(), dropout.key());
        be.launch("softmax_backward", 3 * tt * be.x(), CudaBackend.blocks((long) B * NH * T, 8), 256, dpre, datt, att, B * NH * T, T,
                (float) (1.0 / Math.sqrt(hs)));
        // dq = dpre k ; dk = dpre^T q, into dqkv's q and k columns
        be.gemmPointers("attention bwd", NO_T, NO_T, hs, T, T, k, 3 * C, dpreT, T, dq, 3 * C);
        be.gemmPointers("attention bwd", NO_T, TRANS, hs, T, T, q, 3 * C, dpreT, T, dk, 3 * C);
    }

    /** Head sizes the flash kernels are built for (kernels/flash.cu). */
    private static final List<Integer> FLASH_HEAD_SIZES = List.of(16, 32, 64, 128);

    /** The head size, checked against the flash kernels'. */
    private static int flashHeadSize(int C, int NH) {
        int hs = C / NH;
        if (!FLASH_HEAD_SIZES.contains(hs)) {
            throw new IllegalArgumentException("--flash 1: flash attention is built for head sizes " + FLASH_HEAD_SIZES
                    + "; this model's is " + hs + " (n_embd " + C + " / n_head " + NH + ")");
        }
        return hs;
    }

    /** Head sizes with tensor-core flash kernels (flash_tc_*: bf16 mma.sync, sm_80 and newer). */
    static final List<Integer> TENSOR_CORE_HEAD_SIZES = List.of(64, 128);

    /**
     * Whether flash attention runs on the tensor cores: bf16, a head size of
     * {@link #TENSOR_CORE_HEAD_SIZES}, and a GPU with bf16 mma (sm_80+; the CPU emulator has it).
     * Otherwise the one-thread-per-row kernels (float32, other head sizes).
     */
    boolean tensorCoreFlash(int hs) {
        return be.computeType() == DType.BF16 && TENSOR_CORE_HEAD_SIZES.contains(hs) && be.hasBf16Mma();
    }

    /**
     * Query (or key) rows per block of both flash kernel sets (kernels/flash.cu: FlashTile, one
     * thread a row; TcTile, 16 rows a warp).
     */
    private static int flashRows(int hs) {
        return hs <= 64 ? 64 : 32;
    }

    /**
     * Dynamic shared memory of a tensor-core kernel (kernels/flash.cu, the tile pipeline): tiles of
     * {@code rows} rows of hs + 8 bf16; the forward holds q and two buffers of (k, v), dq also dout
     * and its rows' delta, dk/dv k, v, two buffers of (q, dout) and of the rows' (lse, delta).
     */
    static int tensorCoreShared(String kernel, int hs) {
        int rows = flashRows(hs), tile = rows * (hs + 8) * 2;
        if (kernel.startsWith("flash_tc_forward")) return 5 * tile;
        if (kernel.startsWith("flash_tc_backward_dq")) return 6 * tile + rows * 4;
        return 6 * tile + 4 * rows * 4;
    }

    /** The tiles go to shared memory by cp.async, overlapping the previous tile's work (GPT2_FLASH_ASYNC=0: through registers). */
    private static final int ASYNC = "0".equals(System.getenv("GPT2_FLASH_ASYNC")) ? 0 : 1;

    /** A tensor-core kernel's launch: its shared memory set, the async switch appended. */
    private void launchTensorCore(String kernel, int hs, long bytes, double flops, int grid, int gridY, Object... args) {
        be.sharedMemory(kernel, tensorCoreShared(kernel, hs));
        Object[] all = java.util.Arrays.copyOf(args, args.length + 1);
        all[args.length] = ASYNC;
        be.launchMatrix(kernel, bytes, flops, grid, gridY, flashRows(hs) * 2, all);
    }

    /**
     * The matrix work of {@code products} (T x T x hs) products over the causal triangle, for the
     * profile: 2 FLOPs per multiply-add, T(T+1)/2 query-key pairs per head. The forward does two
     * (q.k, p.v), the dq kernel three (q.k, dout.v, ds.k), the dk/dv kernel four.
     */
    private static double causalFlops(int products, int B, int NH, int T, int hs) {
        return 2.0 * products * B * NH * (T * (T + 1.0) / 2) * hs;
    }

    void flashForward(Buffer out, Buffer lse, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        int hs = flashHeadSize(C, NH);
        boolean drop = dropout != null && !dropout.isOff(), tc = tensorCoreFlash(hs);
        int rows = flashRows(hs), grid = (T + rows - 1) / rows;
        long n = (long) B * T * C, bytes = 4 * n * be.x() + 4L * B * NH * T;
        float scale = (float) (1.0 / Math.sqrt(hs)), p = drop ? dropout.p() : 0f;
        long key = drop ? dropout.key() : 0L;
        if (tc) {
            launchTensorCore("flash_tc_forward_" + hs, hs, bytes, causalFlops(2, B, NH, T, hs), grid, B * NH,
                    out, lse, qkv, T, NH, scale, p, key);
        } else {
            be.launchMatrix("flash_forward_" + hs, bytes, causalFlops(2, B, NH, T, hs), grid, B * NH, rows,
                    out, lse, qkv, T, NH, scale, p, key);
        }
    }

    void flashBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer out, Buffer lse, int B, int T, int C, int NH,
                       Dropout dropout) {
        int hs = flashHeadSize(C, NH);
        boolean drop = dropout != null && !dropout.isOff(), tc = tensorCoreFlash(hs);
        int rows = flashRows(hs), grid = (T + rows - 1) / rows;
        float scale = (float) (1.0 / Math.sqrt(hs)), p = drop ? dropout.p() : 0f;
        long key = drop ? dropout.key() : 0L, n = (long) B * T * C, stats = 4L * B * NH * T;
        CudaBuffer delta = be.scratch("flash_delta", DType.F32, (long) B * NH * T);
        // q, k, v and dout read, dq (or dk and dv) written
        if (tc) {
            // the dq kernel also reads out and writes delta = rowsum(dout * out), which dk/dv reads
            launchTensorCore("flash_tc_backward_dq_" + hs, hs, 6 * n * be.x() + 2 * stats, causalFlops(3, B, NH, T, hs), grid,
                    B * NH, dqkv, delta, dout, qkv, out, lse, T, NH, scale, p, key);
            launchTensorCore("flash_tc_backward_dkdv_" + hs, hs, 6 * n * be.x() + 2 * stats, causalFlops(4, B, NH, T, hs), grid,
                    B * NH, dqkv, dout, qkv, lse, delta, T, NH, scale, p, key);
        } else {
            be.launch("flash_delta", 2 * n * be.x() + stats, CudaBackend.blocks((long) B * NH * T, 256), 256, delta, dout, out,
                    B, T, NH, hs);
            be.launchMatrix("flash_backward_dq_" + hs, 5 * n * be.x() + 2 * stats, causalFlops(3, B, NH, T, hs), grid, B * NH,
                    rows, dqkv, dout, qkv, lse, delta, T, NH, scale, p, key);
            be.launchMatrix("flash_backward_dkdv_" + hs, 6 * n * be.x() + 2 * stats, causalFlops(4, B, NH, T, hs), grid, B * NH,
                    rows, dqkv, dout, qkv, lse, delta, T, NH, scale, p, key);
        }
    }

    void decode(Buffer out, Buffer qkv, Buffer kcache, Buffer vcache, int B, int pos, int maxT, int C, int NH) {
        if (pos >= 2048) throw new IllegalArgumentException("attention_decode supports positions < 2048, got " + pos);
        be.launch("attention_decode", 2L * B * (pos + 1) * C * be.x() + 5L * B * C * be.x(), B * NH, 32,
                out, qkv, kcache, vcache, B, pos, maxT, C, NH);
    }

    /** The pointer tables' device memory, for the backend to free at close. */
    List<CudaBuffer> allocations() {
        List<CudaBuffer> all = new ArrayList<>();
        for (PointerTable t : pointerTables.values()) all.add(t.device());
        return all;
    }
}
