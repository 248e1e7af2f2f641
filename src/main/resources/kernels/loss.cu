// The classifier's softmax + cross-entropy over the first V of Vp columns (logits floatX, losses
// float), the step's loss and gradient-norm reductions, and AdamW (float gradients and state).
// Every row kernel reads a row with 128-bit loads and folds it into online softmax statistics
// (running max m and sum of exp(x - m)) in one pass.

#define NEG_BIG (-3.402823466e38f)

__device__ float block_sum(float v, float* shared) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float r = lane < warps ? shared[lane] : 0.f;
    r = warp_sum(r);
    __syncthreads();
    return r;
}

// Merges softmax statistics (m2, s2) into (m, s): the max, and the sum rescaled to it.
__device__ __forceinline__ void merge_stats(float& m, float& s, float m2, float s2) {
    float mn = fmaxf(m, m2);
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
}

// The softmax statistics of a row over its first V columns, one read: each thread folds its packs,
// then warps and the block merge (shared needs 64 floats).
__device__ void row_softmax_stats(const floatX* x, int V, bool vec, float* sh, float& m, float& s) {
    m = NEG_BIG;
    s = 0.f;
    for (int i = threadIdx.x * PACK; i < V; i += blockDim.x * PACK) {
        xpack p = load_pack(x, i, V, vec);
        for (int k = 0; k < PACK && i + k < V; k++) {
            float v = x2f(p.v[k]);
            if (v > m) { s = s * expf(m - v) + 1.f; m = v; } else s += expf(v - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        merge_stats(m, s, m2, s2);
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    if (lane == 0) { sh[warp] = m; sh[32 + warp] = s; }
    __syncthreads();
    m = NEG_BIG;
    s = 0.f;
    for (int w = 0; w < warps; w++) merge_stats(m, s, sh[w], sh[32 + w]);
    __syncthreads();
}

// losses (N); one block per row; the logits are only read (evaluation). target -1 gives 0.
extern "C" __global__ void crossentropy_forward(float* losses, const floatX* logits, const int* targets,
                                                int N, int V, int Vp) {
    __shared__ float sh[64];
    int n = blockIdx.x;
    if (n >= N) return;
    int target = targets[n];
    if (target < 0) { if (threadIdx.x == 0) losses[n] = 0.f; return; }
    const floatX* x = logits + (i64) n * Vp;
    float m, s;
    row_softmax_stats(x, V, aligned16(x), sh, m, s);
    if (threadIdx.x == 0) losses[n] = logf(s) + m - x2f(x[target]);
}

// The fused classifier (llm.c's): one block per row reads the logits once for the statistics,
// writes the loss, and overwrites the row with its gradient (softmax - onehot(target)) * dloss
// (the second read comes from L2: a row is at most a few hundred KB). Padded columns and rows
// whose target is -1 get gradient 0 (and loss 0). softcap > 0: the logits c are soft-capped ones
// (softcap_forward) and each gradient is taken on through the cap, times 1 - (c / softcap)^2, with c
// read in the same pass.
extern "C" __global__ void classifier_fused(float* losses, floatX* logits, const int* targets, float dloss,
                                            int N, int V, int Vp, float softcap) {
    __shared__ float sh[64];
    int n = blockIdx.x;
    if (n >= N) return;
    int target = targets[n];
    floatX* x = logits + (i64) n * Vp;
    bool vec = aligned16(x);
    float m = 0.f, s = 1.f;
    // the target's logit is read before the barrier that ends the statistics: after it, other
    // warps overwrite the row with its gradient
    float xt = target >= 0 && threadIdx.x == 0 ? x2f(x[target]) : 0.f;
    if (target >= 0) row_softmax_stats(x, V, vec, sh, m, s);
    if (threadIdx.x == 0) losses[n] = target >= 0 ? logf(s) + m - xt : 0.f;
    float inv = 1.f / s, invCap = softcap > 0.f ? 1.f / softcap : 0.f;
    for (int i = threadIdx.x * PACK; i < Vp; i += blockDim.x * PACK) {
        xpack p = load_pack(x, i, Vp, vec);
        for (int k = 0; k < PACK; k++) {
            int v = i + k;
            float c = x2f(p.v[k]);
            float g = target >= 0 && v < V ? (expf(c - m) * inv - (v == target ? 1.f : 0.f)) * dloss : 0.f;
            if (softcap > 0.f) { float q = c * invCap; g *= 1.f - q * q; }
            p.v[k] = f2x(g);
        }
        store_pack(x, i, Vp, vec, p);
    }
}

// acc[0] += scale * (losses[0] + ... + losses[N-1]); one block, a fixed summation order.
extern "C" __global__ void loss_accumulate(float* acc, const float* losses, int N, float scale) {
    __shared__ float sh[32];
    float s = 0.f;
    for (int i = threadIdx.x; i < N; i += blockDim.x) s += losses[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) acc[0] += scale * s;
}

// Sum of squares, stage one: partial[block] = its grid-stride share (128-bit loads when x is
// 16-byte aligned), in a fixed order, so the norm does not depend on scheduling.
extern "C" __global__ void sum_squares_partial(float* partial, const float* x, i64 N) {
    __shared__ float sh[32];
    float s = 0.f;
    i64 stride = (i64) gridDim.x * blockDim.x, first = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    i64 vecN = aligned16(x) ? N / 4 : 0;
    for (i64 i = first; i < vecN; i += stride) {
        float4 g = ((const float4*) x)[i];
        s += g.x * g.x + g.y * g.y + g.z * g.z + g.w * g.w;
    }
    for (i64 i = vecN * 4 + first; i < N; i += stride) s += x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Stage two: out[0] = the partials' sum, added in order in double; one block of 32 threads.
extern "C" __global__ void sum_squares_final(float* out, const float* partial, int count) {
    if (threadIdx.x != 0) return;
    double s = 0.0;
    for (int i = 0; i < count; i++) s += partial[i];
    out[0] = (float) s;
}

// AdamW over a whole parameter buffer in one pass, writing the compute copy (copy, when not null)
// from the updated weights in the same pass. runs (nruns entries): each run's end offset, with bit
// 62 set where the run decays (matrices and embeddings); nruns 0: every element decays by
// weight_decay. g = grads * grad_scale (the clip); bias-corrected moments as torch.optim.AdamW.
// A block finds the run of its first element once (binary search); its threads step forward from
// there (runs are long, so rarely more than one step): no limit on the number of runs.
#define RUN_DECAY (1LL << 62)
extern "C" __global__ void adamw(float* params, const float* grads, float* m, float* v, floatX* copy,
                                 const i64* runs, int nruns, i64 N, float lr, float beta1, float beta2, float eps,
                                 float weight_decay, float grad_scale, float bc1, float bc2) {
    __shared__ int first;
    i64 i0 = (i64) blockIdx.x * blockDim.x, i = i0 + threadIdx.x;
    if (nruns > 0) {
        if (threadIdx.x == 0) {
            int lo = 0, hi = nruns - 1;   // the first run ending after i0
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if ((runs[mid] & ~RUN_DECAY) > i0) hi = mid; else lo = mid + 1;
            }
            first = lo;
        }
        __syncthreads();
    }
    if (i >= N) return;
    float wd = weight_decay;
    if (nruns > 0) {
        int r = first;
        while (r < nruns - 1 && (runs[r] & ~RUN_DECAY) <= i) r++;
        wd = (runs[r] & RUN_DECAY) ? weight_decay : 0.f;
    }
    float g = grads[i] * grad_scale;
    float mi = beta1 * m[i] + (1.f - beta1) * g;
    float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    p = p - lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * p);
    params[i] = p;
    if (copy) copy[i] = f2x(p);
}
