package gpt2.backend;

/**
 * The device a model runs on: memory and the ops of a GPT-2 layer as forward/backward pairs.
 * The model code ({@code gpt2.model.Gpt2}) only calls this interface and never knows the device.
 *
 * <p>Conventions of every op (as llm.c):
 * <ul>
 *   <li>arguments in the order outputs, inputs, weights, then shape ints;</li>
 *   <li>shapes in comments: B batch, T time, C channels, NH heads, N = B*T rows, OC output
 *       channels, V real vocabulary, Vp padded vocabulary;</li>
 *   <li>matrices are row-major; linear weights are (OC, C) as in PyTorch, out = in @ W^T + b;</li>
 *   <li><b>gradient rule</b>: parameter gradients accumulate ({@code +=}, so micro-batches add up);
 *       activation gradients are overwritten ({@code =}), except the residual stream, into which
 *       the norms' backward passes accumulate ({@code +=});</li>
 *   <li>an optional tensor (a bias) is passed as {@code null} when the model has none.</li>
 * </ul>
 */
public interface Backend extends AutoCloseable {

    String name();

    /**
     * The element type of activations, activation gradients and the weights' compute copy: F32,
     * or BF16 for mixed precision (as llm.c: float32 master weights, parameter gradients and
     * optimizer state; bf16 everything the ops read and write in bulk). Each op's javadoc marks
     * its float32 arguments; every other buffer argument is of this type.
     */
    default DType computeType() {
        return DType.F32;
    }

    /** dst = src element-wise, converted from src's type to dst's (float32 to the compute type). */
    void convert(Buffer dst, Buffer src);

    // ------------------------------------------------------------------ memory

    /** A zero-filled buffer; {@code what} names it in out-of-memory errors. */
    Buffer allocate(DType dtype, long length, String what);

    /** Releases an allocation (not a slice); using it afterwards is an error. */
    void free(Buffer buffer);

    /** Copies src into the first src.length elements of dst (rounded when dst is BF16). */
    void write(Buffer dst, float[] src);

    void write(Buffer dst, int[] src);

    /** Copies the first dst.length elements of src (F32 or BF16) into dst. */
    void read(Buffer src, float[] dst);

    /** Copies a whole float32 buffer to host memory of the same byte size (for checkpoints). */
    void copyToHost(Buffer src, java.lang.foreign.MemorySegment dst);

    /** Copies host memory into a whole float32 buffer of the same byte size. */
    void copyFromHost(Buffer dst, java.lang.foreign.MemorySegment src);

    void zero(Buffer buffer);

    void copy(Buffer dst, Buffer src);

    // ------------------------------------------------------------------ ops

    /** out (B,T,C) = wte[tokens] + wpe[t]; wpe null (RoPE): wte[tokens] alone. tokens (B,T) int32. */
    void encoderForward(Buffer out, Buffer tokens, Buffer wte, Buffer wpe, int B, int T, int C);

    /** dwte (Vp,C) +=, dwpe (maxT,C, null without wpe) += (float32) from dout (B,T,C). */
    void encoderBackward(Buffer dwte, Buffer dwpe, Buffer dout, Buffer tokens, int B, int T, int C);

    /** out (N,C) = (inp - mean) * rstd * weight + bias; saves mean (N) and rstd (N), float32. */
    void layerNormForward(Buffer out, Buffer mean, Buffer rstd, Buffer inp, Buffer weight, Buffer bias,
                          int N, int C, float eps);

    /** dinp (N,C) +=, dweight (C) +=, dbias (C) += (float32); mean, rstd float32. */
    void layerNormBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp,
                           Buffer weight, Buffer mean, Buffer rstd, int N, int C);

    /**
     * out (N,C) = inp * rstd * (1 + weight), rstd = 1/sqrt(mean(inp^2) + eps); saves rstd (N), float32.
     * weight null: parameter-free, out = inp * rstd.
     */
    void rmsNormForward(Buffer out, Buffer rstd, Buffer inp, Buffer weight, int N, int C, float eps);

    /** dinp (N,C) +=, dweight (C) += (float32; both weights null when parameter-free); rstd float32. */
    void rmsNormBackward(Buffer dinp, Buffer dweight, Buffer dout, Buffer inp, Buffer weight, Buffer rstd,
                         int N, int C);

    /**
     * The residual add fused with the next LayerNorm: res (N,C) = a + b, then out, mean, rstd as
     * {@link #layerNormForward} of res. The default runs the two ops.
     */
    default void residualLayerNormForward(Buffer res, Buffer out, Buffer mean, Buffer rstd, Buffer a, Buffer b,
                                          Buffer weight, Buffer bias, int N, int C, float eps) {
        residualForward(res, a, b, (long) N * C);
        layerNormForward(out, mean, rstd, res, weight, bias, N, C, eps);
    }

    /** The residual add fused with the next RMSNorm: res = a + b, then {@link #rmsNormForward} of res. */
    default void residualRmsNormForward(Buffer res, Buffer out, Buffer rstd, Buffer a, Buffer b, Buffer weight, int N,
                                        int C, float eps) {
        residualForward(res, a, b, (long) N * C);
        rmsNormForward(out, rstd, res, weight, N, C, eps);
    }

    /** out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC, optional). */
    void matmulForward(Buffer out, Buffer inp, Buffer weight, Buffer bias, int N, int C, int OC);

    /**
     * The MLP's first layer: pre (N,OC) = inp @ weight^T + bias (optional), out (N,OC) = GELU(pre).
     * A backend may fuse the two (CUDA: cuBLASLt's GELU epilogue).
     */
    default void matmulGeluForward(Buffer out, Buffer pre, Buffer inp, Buffer weight, Buffer bias, int N, int C, int OC) {
        matmulForward(pre, inp, weight, bias, N, C, OC);
        geluForward(out, pre, (long) N * OC);
    }

    /** dinp (N,C) =, dweight (OC,C) +=, dbias (OC, optional) += (float32). */
    void matmulBackward(Buffer dinp, Buffer dweight, Buffer dbias, Buffer dout, Buffer inp, Buffer weight,
                        int N, int C, int OC);

    /**
     * Causal self-attention. qkv (B,T,3C) holds q, k, v side by side, each split into NH heads of
     * C/NH; att (B,NH,T,T) saves the softmax weights (before dropout, zero above the diagonal);
     * out (B,T,C) = dropout(att) @ v with heads concatenated.
     */
    void attentionForward(Buffer out, Buffer att, Buffer qkv, int B, int T, int C, int NH, Dropout dropout);

    /** dqkv (B,T,3C) = from dout (B,T,C), using the saved att and the same dropout. */
    void attentionBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer att, int B, int T, int C, int NH,
                           Dropout dropout);

    /** Whether {@link #flashAttentionForward} and {@link #flashAttentionBackward} exist here. */
    default boolean hasFlashAttention() {
        return false;
    }

    /**
     * Causal self-attention without the (B,NH,T,T) weights (flash attention): out as
     * {@link #attentionForward}, with the same dropout masks; saves lse (B,NH,T, float32), each
     * row's log-sum-exp of the scaled scores, from which backward recomputes the weights.
     */
    default void flashAttentionForward(Buffer out, Buffer lse, Buffer qkv, int B, int T, int C, int NH, Dropout dropout) {
        throw new UnsupportedOperationException(name() + " has no flash attention");
    }

    /** dqkv (B,T,3C) = from dout (B,T,C), given the forward's qkv, out and lse. */
    default void flashAttentionBackward(Buffer dqkv, Buffer dout, Buffer qkv, Buffer out, Buffer lse, int B, int T, int C,
                                       int NH, Dropout dropout) {
        throw new UnsupportedOperationException(name() + " has no flash attention");
    }

    /**
     * One new position per sequence with a KV cache: k and v of qkv (B,1,3C) go to row pos of
     * kcache and vcache (B,NH,maxT,hs); out (B,1,C) = softmax(q.k[0..pos] / sqrt(hs)) v[0..pos].
     */
    void attentionDecode(Buffer out, Buffer qkv, Buffer kcache, Buffer vcache, int B, int pos, int maxT, int C, int NH);

    /**
     * RoPE's rotations as every backend applies them ({@link #qkNormRopeForward}): for positions
     * 0..positions-1 of a head of size hs, the (cos, sin) pair of pair j at position p is at
     * [2 (p hs/2 + j)], [2 (p hs/2 + j) + 1], of the angle p * theta^(-2j/hs) computed in double and
     * rounded to float, so every backend rotates by the same numbers.
     */
    static float[] ropeCosSin(int positions, int hs, float theta) {
        int half = hs / 2;
        float[] cs = new float[2 * positions * half];
        for (int p = 0; p < positions; p++) {
            for (int j = 0; j < half; j++) {
                double a = (double) p * Math.pow(theta, -2.0 * j / hs);
                cs[2 * (p * half + j)] = (float) Math.cos(a);
                cs[2 * (p * half + j) + 1] = (float) Math.sin(a);
            }
        }
        return cs;
    }

    /**
     * The modern attention's preprocessing of q and k, in place over qkv (B,T,3C) (v untouched),
     * per head of hs = C/NH: with rstd (B,T,2NH float32; q's heads then k's) given, q and k are
     * first RMS-normalised without weights (rstd saved); then, with ropeTheta > 0, rotated by RoPE
     * for positions pos0 .. pos0+T-1: the pair (x[j], x[j+hs/2]) turns by angle
     * pos * ropeTheta^(-2j/hs) ({@link #ropeCosSin}), x1' = x1 cos + x2 sin, x2' = x2 cos - x1 sin.
     */
    default void qkNormRopeForward(Buffer qkv, Buffer rstd, int B, int T, int C, int NH, int pos0, float ropeTheta,
                                   float eps) {
        throw new UnsupportedOperationException(name() + " has no qk-norm/rope");
    }

    /**
     * dqkv (B,T,3C) in place: the q and k gradients of {@link #qkNormRopeForward}'s outputs become
     * those of its inputs (v's untouched); qkv holds the forward's outputs, rstd its saved statistics
     * (null when not normalised).
     */
    default void qkNormRopeBackward(Buffer dqkv, Buffer qkv, Buffer rstd, int B, int T, int C, int NH, float ropeTheta) {
        throw new UnsupportedOperationException(name() + " has no qk-norm/rope");
    }

    /** out (N) = relu(inp)^2. */
    default void reluSquaredForward(Buffer out, Buffer inp, long N) {
        throw new UnsupportedOperationException(name() + " has no relu^2");
    }

    /** dinp (N) = 2 relu(inp) * dout; dinp may be the same buffer as dout. */
    default void reluSquaredBackward(Buffer dinp, Buffer inp, Buffer dout, long N) {
        throw new UnsupportedOperationException(name() + " has no relu^2");
    }

    /**
     * Logit soft-capping in place over logits (N,Vp): x = cap * tanh(x / cap). Its backward is
     * folded into the classifier (the {@code softcap} argument of {@link #crossEntropyBackward}).
     */
    default void softcapForward(Buffer logits, long N, float cap) {
        throw new UnsupportedOperationException(name() + " has no logit soft-capping");
    }

    /** out (N) = GELU(inp), tanh approximation. */
    void geluForward(Buffer out, Buffer inp, long N);

    /** dinp (N) = GELU'(inp) * dout; dinp may be the same buffer as dout. */
    void geluBackward(Buffer dinp, Buffer inp, Buffer dout, long N);

    /**
     * {@link #geluBackward(Buffer, Buffer, Buffer, long)} of a (rows, cols) matrix: a backend may do
     * more in the same pass (CUDA: the column sums for the next linear layer's bias gradient).
     */
    default void geluBackward(Buffer dinp, Buffer inp, Buffer dout, int rows, int cols) {
        geluBackward(dinp, inp, dout, (long) rows * cols);
    }

    /** out (N) = inp1 + inp2. */
    void residualForward(Buffer out, Buffer inp1, Buffer inp2, long N);

    /**
     * In place: x (N) *= mask / (1 - p). The same call is the forward pass (on activations) and
     * the backward pass (on their gradients), since the mask comes from the dropout's key.
     */
    void dropout(Buffer x, long N, Dropout dropout);

    /**
     * losses (N, float32) = -log softmax(logits)[target] over the first V of Vp columns; rows whose
     * target is -1 get loss 0. targets (N) int32, logits (N,Vp).
     */
    void crossEntropyForward(Buffer losses, Buffer logits, Buffer targets, int N, int V, int Vp);

    /**
     * In place over logits (N,Vp): dlogits = (softmax - onehot(target)) * dloss for the first V
     * columns, 0 for the padded columns and for rows whose target is -1. With softcap > 0 the
     * logits are {@link #softcapForward soft-capped} ones, c, and the gradient is taken through
     * the cap: times (1 - (c/softcap)^2).
     */
    void crossEntropyBackward(Buffer logits, Buffer targets, float dloss, int N, int V, int Vp, float softcap);

    /**
     * The fused classifier (as llm.c's): losses (N, float32) as {@link #crossEntropyForward}, and in
     * the same pass logits overwritten with their gradient as {@link #crossEntropyBackward}. The
     * logits are read once instead of twice; the default runs the two ops.
     */
    default void crossEntropyFused(Buffer losses, Buffer logits, Buffer targets, float dloss, int N, int V, int Vp,
                                   float softcap) {
        crossEntropyForward(losses, logits, targets, N, V, Vp);
        crossEntropyBackward(logits, targets, dloss, N, V, Vp, softcap);
    }

    /**
     * The logit soft cap ({@link #softcapForward}) and the fused classifier ({@link
     * #crossEntropyFused}) of a training step: logits arrive uncapped. A backend may cap each row as
     * it visits it for the loss (the CPU: the logits are read once instead of twice); the default runs
     * the two ops.
     */
    default void softcapCrossEntropyFused(Buffer losses, Buffer logits, Buffer targets, float dloss, int N, int V, int Vp,
                                          float softcap) {
        softcapForward(logits, (long) N * Vp, softcap);
        crossEntropyFused(losses, logits, targets, dloss, N, V, Vp, softcap);
    }

    /**
     * acc[0] += scale * (x[0] + ... + x[n-1]), all float32, on the device: the step's loss adds up
     * there and is read once per step.
     */
    default void addSum(Buffer acc, Buffer x, float scale, int n) {
        float[] v = new float[n], a = new float[1];
        read(x, v);
        read(acc, a);
        double s = 0;
        for (float f : v) s += f;
        a[0] += (float) (scale * s);
        write(acc, a);
    }

    /** Sum of squares of all elements of a float32 buffer, accumulated in double (the gradient norm). */
    double sumOfSquares(Buffer x);

    /** out[0] (float32) = the sum of squares of x (float32), on the device: read with the step's other numbers. */
    default void sumOfSquares(Buffer out, Buffer x) {
        write(out, new float[]{(float) sumOfSquares(x)});
    }

    /**
     * AdamW over a whole buffer of parameters in one pass ({@link #adamw(Buffer, Buffer, Buffer,
     * Buffer, float, float, float, float, float, float, int) as below} per run): runs are given by
     * their end offsets within params, and decay with weightDecay where {@code decay} says so.
     * {@code copy} (the compute type, or null) receives the updated weights in the same pass.
     */
    default void adamw(Buffer params, Buffer grads, Buffer m, Buffer v, Buffer copy, long[] runEnds, boolean[] decay,
                       float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale, int t) {
        long start = 0;
        for (int r = 0; r < runEnds.length; r++) {
            long n = runEnds[r] - start;
            adamw(params.slice(start, n), grads.slice(start, n), m.slice(start, n), v.slice(start, n), lr, beta1, beta2,
                    eps, decay[r] ? weightDecay : 0f, gradScale, t);
            start = runEnds[r];
        }
        if (copy != null) convert(copy, params);
    }

    /**
     * Muon's Nesterov momentum in place, element-wise over float32 grads and buf (the same length),
     * with g = grads * gradScale: buf = momentum * buf + (1 - momentum) * g, then
     * grads = (1 - momentum) * g + momentum * buf (the update Newton–Schulz orthogonalises).
     */
    default void muonMomentum(Buffer grads, Buffer buf, float momentum, float gradScale) {
        throw new UnsupportedOperationException(name() + " has no Muon");
    }

    /**
     * x (rows,cols), float32, in place: x / ||x||_F through {@code steps} iterations of Muon's quintic
     * Newton–Schulz map X = a X + (b A + c A A) X, A = X X^T (a, b, c = 3.4445, -4.7750, 2.0315), run
     * on the wide orientation (the transpose when rows > cols): about U V^T of x's SVD, its singular
     * values pushed into roughly [0.7, 1.2].
     */
    default void newtonSchulz(Buffer x, int rows, int cols, int steps) {
        throw new UnsupportedOperationException(name() + " has no Muon");
    }

    /** Muon's quintic Newton–Schulz coefficients a, b, c ({@link #newtonSchulz}), the same on every backend. */
    float NS_A = 3.4445f, NS_B = -4.7750f, NS_C = 2.0315f;

    /** y (n) += alpha * x (n), float32. */
    default void axpy(Buffer y, Buffer x, float alpha, long n) {
        throw new UnsupportedOperationException(name() + " has no axpy");
    }

    /**
     * What this backend's calls did so far (kernel families, bytes, launches, host synchronizations,
     * device memory), or null where nothing is counted (the CPU backend).
     */
    default Profile profile() {
        return null;
    }

    /**
     * Times every call from now on (CUDA: device events around each launch and GEMM); turning it off
     * waits for those events and adds their times to {@link #profile()}. Refused where nothing can be
     * timed.
     */
    default void setProfiling(boolean on) {
        if (on) throw new UnsupportedOperationException("--profile 1: the " + name() + " backend has no per-kernel profile");
    }

    /**
     * Opens a segment of work that repeats with the same shapes every time {@code key} comes back (a
     * training micro-batch's forward and backward): a backend may capture it once and replay it
     * (CUDA graphs). Its results must be exactly those of the calls made one by one. Closed by
     * {@link #endReplayable}; any read of device data in between simply ends it early.
     */
    default void beginReplayable(String key) {
    }

    /** Closes the segment {@link #beginReplayable} opened (runs what it held back). */
    default void endReplayable() {
    }

    /**
     * Whether segments are captured and replayed here: then a synchronization inside one (say,
     * between a timed forward and backward) breaks the replay, so callers time the segment whole.
     */
    default boolean replaysSegments() {
        return false;
    }

    /**
     * Makes every gradient of the ops so far final in memory: a backend may queue small reductions
     * (CUDA batches the second stage of its parameter-gradient sums) until then. The model calls it
     * after each layer's backward, before that layer's gradients are all-reduced.
     */
    default void flush() {
    }

    /** Waits until the device has finished everything queued (for timing); nothing to wait for on the CPU. */
    default void synchronize() {
    }

    /**
     * The device's copy bandwidth in GB/s (bytes read + written per second by a device-to-device
     * copy of {@code bytes}), the yardstick of memory-bound kernels; NaN where it cannot be timed.
     */
    default double copyBandwidth(long bytes) {
        return Double.NaN;
    }

    /** What runs this backend's GEMMs (the CPU: OpenBLAS and its kernel set), for bench; null where nothing is to say. */
    default String gemmDescription() {
        return null;
    }

    /**
     * Untimed steps before bench times any: 2 (allocations, kernel compilation); the CPU more, whose
     * JIT compiles the vector kernels during the first steps.
     */
    default int benchWarmupSteps() {
        return 2;
    }

    /**
     * The memory's read bandwidth in GB/s (bytes read per second, every thread reading its share of
     * {@code bytes}), the yardstick of decoding, which reads every weight once per token; NaN where
     * not measured (the CUDA backend).
     */
    default double readBandwidth(long bytes) {
        return Double.NaN;
    }

    /**
     * The device's dense bf16 tensor-core peak in FLOP/s (the denominator of MFU, as llm.c), or NaN
     * where unknown (the CPU, an unlisted GPU).
     */
    default double bf16PeakFlops() {
        return Double.NaN;
    }

    /** What the device is called (a GPU's name; the backend's name elsewhere). */
    default String deviceName() {
        return name();
    }

    /**
     * Nanoseconds spent in GEMMs and their FLOPs since the last {@link #resetGemmStats()}, where
     * the backend keeps them (the CPU backend), else null.
     */
    default long[] gemmStats() {
        return null;
    }

    default void resetGemmStats() {
    }

    /** GFLOP/s of one square n x n float32 GEMM on this backend's GEMM path, or NaN where not measured. */
    default double measureGemmPeak(int n, int repeats) {
        return Double.NaN;
    }

    /** Device memory {free, total} in bytes as the driver reports it, or null. */
    default long[] deviceMemoryInfo() {
        return null;
    }

    /**
     * One AdamW step over params, grads, m and v (all float32, the same length):
     * g = grads * gradScale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * params -= lr * (m / (1-b1^t) / (sqrt(v / (1-b2^t)) + eps) + weightDecay * params).
     */
    void adamw(Buffer params, Buffer grads, Buffer m, Buffer v, float lr, float beta1, float beta2, float eps,
               float weightDecay, float gradScale, int t);

    @Override
    void close();
}
