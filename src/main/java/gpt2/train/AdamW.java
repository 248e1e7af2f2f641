package gpt2.train;

import gpt2.backend.Backend;
import gpt2.backend.Buffer;
import gpt2.backend.DType;
import gpt2.model.Gpt2;
import gpt2.model.ParameterLayout;
import gpt2.model.TensorSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * AdamW as the original (torch.optim.AdamW): bias-corrected moments, decoupled weight decay on
 * 2-D tensors only (matrices and embeddings), global gradient-norm clipping folded into the update
 * as a gradient scale. m and v share the parameters' layout.
 */
public final class AdamW implements AutoCloseable {

    /** A run of adjacent tensors with the same weight-decay rule. */
    private record Run(long offset, long length, boolean decay) {
    }

    private final Backend backend;
    private final Buffer m, v;
    private final float beta1, beta2, eps, weightDecay;
    private final long lo, hi, totalSize;
    /** The runs as the backend takes them: end offsets relative to lo, and whether each decays. */
    private final long[] runEnds;
    private final boolean[] runDecay;
    private int t;

    public AdamW(Gpt2 model, float beta1, float beta2, float eps, float weightDecay) {
        this(model, beta1, beta2, eps, weightDecay, 0, model.layout().totalSize());
    }

    /**
     * ZeRO-1: m and v for parameters [lo, hi) only; {@link #step} updates that shard of the
     * parameters (the caller all-gathers them afterwards).
     */
    public AdamW(Gpt2 model, float beta1, float beta2, float eps, float weightDecay, long lo, long hi) {
        if (!(beta1 >= 0 && beta1 < 1)) throw new IllegalArgumentException("--beta1 must be in [0, 1), got " + beta1);
        if (!(beta2 >= 0 && beta2 < 1)) throw new IllegalArgumentException("--beta2 must be in [0, 1), got " + beta2);
        if (!(eps > 0)) throw new IllegalArgumentException("--adam_eps must be > 0, got " + eps);
        if (!(weightDecay >= 0)) throw new IllegalArgumentException("--weight_decay must be >= 0, got " + weightDecay);
        this.backend = model.backend();
        ParameterLayout layout = model.layout();
        if (lo < 0 || hi > layout.totalSize() || lo >= hi) throw new IllegalArgumentException("bad optimizer shard [" + lo + ", " + hi + ")");
        this.lo = lo;
        this.hi = hi;
        this.totalSize = layout.totalSize();
        this.m = backend.allocate(DType.F32, hi - lo, "AdamW m");
        this.v = backend.allocate(DType.F32, hi - lo, "AdamW v");
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        List<Run> runs = new ArrayList<>();
        for (TensorSpec ts : layout.tensors()) {
            long s = Math.max(lo, ts.offset()), e = Math.min(hi, ts.end());
            if (s >= e) continue; // outside this shard
            boolean decay = ParameterLayout.decays(ts);
            Run last = runs.isEmpty() ? null : runs.getLast();
            if (last != null && last.decay == decay && last.offset + last.length == s) {
                runs.set(runs.size() - 1, new Run(last.offset, last.length + (e - s), decay));
            } else {
                runs.add(new Run(s, e - s, decay));
            }
        }
        runEnds = new long[runs.size()];
        runDecay = new boolean[runs.size()];
        for (int i = 0; i < runs.size(); i++) {
            runEnds[i] = runs.get(i).offset + runs.get(i).length - lo;
            runDecay[i] = runs.get(i).decay;
        }
    }

    /** Steps taken so far (the t of the bias correction). */
    public int stepCount() {
        return t;
    }

    /** Restores the step count (from a checkpoint). */
    public void setStepCount(int t) {
        if (t < 0) throw new IllegalArgumentException("AdamW step count must be >= 0, got " + t);
        this.t = t;
    }

    /**
     * The global L2 norm of the gradients and the scale that clips it to {@code maxNorm}
     * (as torch.nn.utils.clip_grad_norm_: min(1, maxNorm / (norm + 1e-6)); no clipping when
     * maxNorm <= 0).
     */
    public static float[] normAndClipScale(Backend backend, Buffer grads, float maxNorm) {
        float norm = (float) Math.sqrt(backend.sumOfSquares(grads));
        return new float[]{norm, clipScale(norm, maxNorm)};
    }

    /** torch's clip coefficient: min(1, maxNorm / (norm + 1e-6)); 1 when maxNorm <= 0 (no clipping). */
    public static float clipScale(float norm, float maxNorm) {
        return maxNorm > 0 ? (float) Math.min(1.0, maxNorm / (norm + 1e-6)) : 1f;
    }

    /** One update of every parameter with the given learning rate and gradient scale. */
    public void step(Buffer params, Buffer grads, float lr, float gradScale) {
        update(params, grads, null, lr, gradScale);
    }

    /**
     * One update of the model's parameters: one pass over this optimizer's share, which also writes
     * the model's compute copy of the weights (bf16) unless sharded (ZeRO-1 all-gathers the
     * parameters afterwards, and the copy is remade from them).
     */
    public void step(Gpt2 model, float lr, float gradScale) {
        model.applyUpdate((params, grads, copy) -> {
            Buffer c = sharded() ? null : copy;
            update(params, grads, c, lr, gradScale);
            return c != null;
        });
    }

    private void update(Buffer params, Buffer grads, Buffer copy, float lr, float gradScale) {
        t++;
        long n = hi - lo;
        backend.adamw(params.slice(lo, n), grads.slice(lo, n), m, v, copy == null ? null : copy.slice(lo, n), runEnds,
                runDecay, lr, beta1, beta2, eps, weightDecay, gradScale, t);
    }

    /** First parameter this optimizer updates (0 unless sharded). */
    public long shardStart() {
        return lo;
    }

    /** One past the last parameter this optimizer updates. */
    public long shardEnd() {
        return hi;
    }

    public boolean sharded() {
        return lo != 0 || hi != totalSize;
    }

    public Buffer m() {
        return m;
    }

    public Buffer v() {
        return v;
    }

    @Override
    public void close() {
        backend.free(m);
        backend.free(v);
    }
}
