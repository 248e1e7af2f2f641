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
 * The optimizer: AdamW as the original (torch.optim.AdamW) for every parameter, or with
 * {@code --optimizer muon} Muon (as nanochat and the GPT-2 speedrun) for the hidden matrices and
 * AdamW for the rest, every group with its own peak learning rate.
 * <pre>
 * adamw  every tensor              AdamW(lr)           decoupled weight decay on 2-D tensors only
 * muon   h.L.attn.c_attn.weight    as its q, k and v (C,C) blocks, each on its own
 *        h.L.attn.c_proj.weight    g  = grads * clip scale
 *        h.L.mlp.c_fc.weight       buf = mu buf + (1-mu) g;  u = (1-mu) g + mu buf    (Nesterov)
 *        h.L.mlp.c_proj.weight     p -= muon_lr * sqrt(max(1, rows/cols)) * NS5(u)    no weight decay
 *        wte                       AdamW(embedding_lr)  (tied: wte is the head too and keeps this one)
 *        lm_head (untied)          AdamW(head_lr)
 *        the rest                  AdamW(learning_rate) (norm weights, biases, wpe)
 * </pre>
 * Global gradient-norm clipping is folded into both updates as a gradient scale. Every group's
 * learning rate is its peak times the schedule's multiplier ({@link LrSchedule#multiplier}).
 * <p>
 * <b>One state layout for both.</b> m and v share the parameters' layout; for Muon's matrices m
 * holds Muon's momentum buffer and v stays zero. So a checkpoint holds m, v and the step count
 * whatever the optimizer, and ZeRO-1 shards m and v the same way. With ZeRO-1 (this optimizer
 * owning [lo, hi)): the momentum runs element-wise on this rank's shard of the reduce-scattered
 * gradients; the gradients buffer is then all-gathered, so every rank holds every momentum-updated
 * matrix, orthogonalises all of them and updates them all (identically on every rank, so the
 * parameters' all-gather that follows carries the same values); AdamW updates the shard.
 */
public final class AdamW implements AutoCloseable {

    /** A run of adjacent tensors with the same weight-decay rule (and, in Muon mode, the same peak lr). */
    private record Run(long offset, long length, boolean decay, float peakLr) {
    }

    /** One matrix Muon orthogonalises: {@code rows x cols} float32 from {@code offset}. */
    private record Matrix(long offset, int rows, int cols) {
    }

    /**
     * Muon's settings ({@code --optimizer muon}); the AdamW part keeps --beta1, --beta2, --adam_eps
     * and --weight_decay.
     *
     * @param lr          Muon's peak learning rate (--muon_lr)
     * @param momentum    Nesterov momentum (--muon_momentum), in [0, 1)
     * @param nsSteps     Newton–Schulz iterations (--muon_ns_steps)
     * @param embeddingLr AdamW's peak learning rate for wte (--embedding_lr)
     * @param headLr      AdamW's peak learning rate for an untied lm_head (--head_lr)
     */
    public record MuonSettings(float lr, float momentum, int nsSteps, float embeddingLr, float headLr) {
        public MuonSettings {
            if (!(lr >= 0)) throw new IllegalArgumentException("--muon_lr must be >= 0, got " + lr);
            if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("--muon_momentum must be in [0, 1), got " + momentum);
            if (nsSteps < 1) throw new IllegalArgumentException("--muon_ns_steps must be >= 1, got " + nsSteps);
            if (!(embeddingLr >= 0)) throw new IllegalArgumentException("--embedding_lr must be >= 0, got " + embeddingLr);
            if (!(headLr >= 0)) throw new IllegalArgumentException("--head_lr must be >= 0, got " + headLr);
        }
    }

    /** The value of --optimizer: adamw or muon. */
    public static boolean isMuon(String optimizer) {
        return switch (optimizer) {
            case "adamw" -> false;
            case "muon" -> true;
            default -> throw new IllegalArgumentException("--optimizer " + optimizer + ": must be adamw or muon");
        };
    }

    private final Backend backend;
    private final Buffer m, v;
    private final float beta1, beta2, eps, weightDecay;
    private final long lo, hi, totalSize;
    /** Plain AdamW's runs as the backend takes them: end offsets relative to lo, and whether each decays (none in Muon mode). */
    private final long[] runEnds;
    private final boolean[] runDecay;
    /** Muon mode: its settings, the AdamW runs of this shard with their peak lrs, the momentum regions of this shard, every matrix. */
    private final MuonSettings muon;
    private final List<Run> adamRuns = new ArrayList<>(), muonRegions = new ArrayList<>();
    private final List<Matrix> matrices = new ArrayList<>();
    private int t;

    public AdamW(Gpt2 model, float beta1, float beta2, float eps, float weightDecay) {
        this(model, beta1, beta2, eps, weightDecay, 0, model.layout().totalSize());
    }

    /**
     * ZeRO-1: m and v for parameters [lo, hi) only; {@link #step} updates that shard of the
     * parameters (the caller all-gathers them afterwards).
     */
    public AdamW(Gpt2 model, float beta1, float beta2, float eps, float weightDecay, long lo, long hi) {
        this(model, beta1, beta2, eps, weightDecay, lo, hi, Float.NaN, null);
    }

    /**
     * Muon for the hidden matrices and AdamW for the rest (see the class doc), for parameters
     * [lo, hi) (the whole model unless ZeRO-1); {@code learningRate} is the peak of the AdamW
     * tensors other than wte and lm_head. With {@code muon} null, plain AdamW.
     */
    public AdamW(Gpt2 model, float beta1, float beta2, float eps, float weightDecay, long lo, long hi,
                 float learningRate, MuonSettings muon) {
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
        this.muon = muon;
        if (muon != null && !(learningRate >= 0)) throw new IllegalArgumentException("--learning_rate must be >= 0, got " + learningRate);
        java.util.Set<String> muonNames = new java.util.HashSet<>();
        if (muon != null) {
            for (ParameterLayout.Layer l : layout.layers()) {
                for (TensorSpec w : List.of(l.qkvw(), l.attprojw(), l.fcw(), l.fcprojw())) {
                    muonNames.add(w.name());
                    int rows = (int) w.dim(0), cols = (int) w.dim(1);
                    int blocks = w == l.qkvw() ? 3 : 1; // q, k and v are orthogonalised apart
                    for (int b = 0; b < blocks; b++) {
                        matrices.add(new Matrix(w.offset() + (long) b * (rows / blocks) * cols, rows / blocks, cols));
                    }
                }
            }
        }
        List<Run> runs = new ArrayList<>();
        for (TensorSpec ts : layout.tensors()) {
            long s = Math.max(lo, ts.offset()), e = Math.min(hi, ts.end());
            if (s >= e) continue; // outside this shard
            boolean decay = ParameterLayout.decays(ts);
            if (muon == null) {
                merge(runs, new Run(s, e - s, decay, 0f));
            } else if (muonNames.contains(ts.name())) {
                merge(muonRegions, new Run(s, e - s, false, 0f));
            } else {
                float peak = ts.name().equals("wte") ? muon.embeddingLr()
                        : ts.name().equals("lm_head.weight") ? muon.headLr() : learningRate;
                merge(adamRuns, new Run(s, e - s, decay, peak));
            }
        }
        runEnds = new long[runs.size()];
        runDecay = new boolean[runs.size()];
        for (int i = 0; i < runs.size(); i++) {
            runEnds[i] = runs.get(i).offset + runs.get(i).length - lo;
            runDecay[i] = runs.get(i).decay;
        }
    }

    /** Appends a run, merged into the last one when adjacent with the same decay and peak lr. */
    private static void merge(List<Run> runs, Run r) {
        Run last = runs.isEmpty() ? null : runs.getLast();
        if (last != null && last.decay == r.decay && last.peakLr == r.peakLr && last.offset + last.length == r.offset) {
            runs.set(runs.size() - 1, new Run(last.offset, last.length + r.length, r.decay, r.peakLr));
        } else {
            runs.add(r);
        }
    }

    /** "adamw" or "muon", as --optimizer and the checkpoint's state.json say it. */
    public String kind() {
        return muon == null ? "adamw" : "muon";
    }

    /**
     * The learning rate a step's log line shows: the schedule's (--learning_rate's) in AdamW, the
     * Muon matrices' in Muon mode (every other group's is its peak times the same multiplier).
     */
    public float displayLr(LrSchedule schedule, int step) {
        return muon == null ? schedule.lr(step) : (float) (muon.lr() * schedule.multiplier(step));
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

    /** One AdamW update of every parameter with the given learning rate and gradient scale (not in Muon mode). */
    public void step(Buffer params, Buffer grads, float lr, float gradScale) {
        plainOnly();
        update(params, grads, null, lr, gradScale);
    }

    /**
     * One update of the model's parameters: one pass over this optimizer's share, which also writes
     * the model's compute copy of the weights (bf16) unless sharded (ZeRO-1 all-gathers the
     * parameters afterwards, and the copy is remade from them).
     */
    public void step(Gpt2 model, float lr, float gradScale) {
        plainOnly();
        model.applyUpdate((params, grads, copy) -> {
            Buffer c = sharded() ? null : copy;
            update(params, grads, c, lr, gradScale);
            return c != null;
        });
    }

    /**
     * One update of the model's parameters at a 0-based step of the schedule. In AdamW exactly
     * {@link #step(Gpt2, float, float)} with the schedule's lr. In Muon mode {@code gather} is the
     * communicator when sharded (ZeRO-1: the momentum-updated gradients are all-gathered before
     * Newton–Schulz), else null; the compute copy is remade from the parameters before the next pass.
     */
    public void step(Gpt2 model, LrSchedule schedule, int step, float gradScale, gpt2.parallel.Communicator gather) {
        if (muon == null) {
            step(model, schedule.lr(step), gradScale);
            return;
        }
        if (sharded() && gather == null) throw new IllegalArgumentException("a sharded Muon step needs the communicator");
        double multiplier = schedule.multiplier(step);
        model.applyUpdate((params, grads, copy) -> {
            muonUpdate(params, grads, multiplier, gradScale, sharded() ? gather : null);
            return false;
        });
    }

    private void muonUpdate(Buffer params, Buffer grads, double multiplier, float gradScale, gpt2.parallel.Communicator gather) {
        t++;
        for (Run r : muonRegions) { // this shard's momentum (buffer in m), element-wise
            backend.muonMomentum(grads.slice(r.offset, r.length), m.slice(r.offset - lo, r.length), muon.momentum(), gradScale);
        }
        if (gather != null) gather.allGather(backend, grads); // every matrix's momentum update on every rank
        for (Matrix x : matrices) {
            long n = (long) x.rows * x.cols;
            Buffer u = grads.slice(x.offset, n);
            backend.newtonSchulz(u, x.rows, x.cols, muon.nsSteps());
            float lr = (float) (muon.lr() * multiplier * Math.sqrt(Math.max(1.0, (double) x.rows / x.cols)));
            backend.axpy(params.slice(x.offset, n), u, -lr, n);
        }
        for (Run r : adamRuns) {
            long o = r.offset - lo;
            backend.adamw(params.slice(r.offset, r.length), grads.slice(r.offset, r.length), m.slice(o, r.length),
                    v.slice(o, r.length), (float) (r.peakLr * multiplier), beta1, beta2, eps, r.decay ? weightDecay : 0f,
                    gradScale, t);
        }
    }

    private void update(Buffer params, Buffer grads, Buffer copy, float lr, float gradScale) {
        t++;
        long n = hi - lo;
        backend.adamw(params.slice(lo, n), grads.slice(lo, n), m, v, copy == null ? null : copy.slice(lo, n), runEnds,
                runDecay, lr, beta1, beta2, eps, weightDecay, gradScale, t);
    }

    private void plainOnly() {
        if (muon != null) throw new IllegalStateException("a Muon optimizer steps with a schedule: step(model, schedule, step, scale, comm)");
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
