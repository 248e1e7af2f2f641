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

    /** A run of adjacent tensors with the same weight-decay rule, updated by one backend call. */
    private record Run(long offset, long length, boolean decay) {
    }

    private final Backend backend;
    private final Buffer m, v;
    private final List<Run> runs = new ArrayList<>();
    private final float beta1, beta2, eps, weightDecay;
    private int t;

    public AdamW(Gpt2 model, float beta1, float beta2, float eps, float weightDecay) {
        if (!(beta1 >= 0 && beta1 < 1)) throw new IllegalArgumentException("--beta1 must be in [0, 1), got " + beta1);
        if (!(beta2 >= 0 && beta2 < 1)) throw new IllegalArgumentException("--beta2 must be in [0, 1), got " + beta2);
        if (!(eps > 0)) throw new IllegalArgumentException("--adam_eps must be > 0, got " + eps);
        if (!(weightDecay >= 0)) throw new IllegalArgumentException("--weight_decay must be >= 0, got " + weightDecay);
        this.backend = model.backend();
        ParameterLayout layout = model.layout();
        this.m = backend.allocate(DType.F32, layout.totalSize(), "AdamW m");
        this.v = backend.allocate(DType.F32, layout.totalSize(), "AdamW v");
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        for (TensorSpec ts : layout.tensors()) {
            boolean decay = ParameterLayout.decays(ts);
            Run last = runs.isEmpty() ? null : runs.getLast();
            if (last != null && last.decay == decay && last.offset + last.length == ts.offset()) {
                runs.set(runs.size() - 1, new Run(last.offset, last.length + ts.size(), decay));
            } else {
                runs.add(new Run(ts.offset(), ts.size(), decay));
            }
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
        float scale = maxNorm > 0 ? (float) Math.min(1.0, maxNorm / (norm + 1e-6)) : 1f;
        return new float[]{norm, scale};
    }

    /** One update of every parameter with the given learning rate and gradient scale. */
    public void step(Buffer params, Buffer grads, float lr, float gradScale) {
        t++;
        for (Run r : runs) {
            backend.adamw(params.slice(r.offset, r.length), grads.slice(r.offset, r.length),
                    m.slice(r.offset, r.length), v.slice(r.offset, r.length),
                    lr, beta1, beta2, eps, r.decay ? weightDecay : 0f, gradScale, t);
        }
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
