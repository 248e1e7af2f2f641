// Softmax + cross-entropy over the first V of Vp columns (logits floatX, everything else float),
// and the optimizer's reductions (float gradients and state).

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

__device__ float block_max(float v, float* shared) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_max(v);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float r = lane < warps ? shared[lane] : -3.402823466e38f;
    r = warp_max(r);
    __syncthreads();
    return r;
}

// The softmax statistics of a row over its first V columns: the max m and the sum of exp(x - m).
__device__ void row_softmax_stats(const floatX* x, int V, float* sh, float& m, float& s) {
    m = -3.402823466e38f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, x2f(x[v]));
    m = block_max(m, sh);
    s = 0.f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(x2f(x[v]) - m);
    s = block_sum(s, sh);
}

// losses (N); one block per row; target -1 gives 0.
extern "C" __global__ void crossentropy_forward(float* losses, const floatX* logits, const int* targets,
                                                int N, int V, int Vp) {
    __shared__ float sh[32];
    int n = blockIdx.x;
    if (n >= N) return;
    int target = targets[n];
    if (target < 0) { if (threadIdx.x == 0) losses[n] = 0.f; return; }
    const floatX* x = logits + (i64) n * Vp;
    float m, s;
    row_softmax_stats(x, V, sh, m, s);
    if (threadIdx.x == 0) losses[n] = logf(s) + m - x2f(x[target]);
}

// In place: logits become (softmax - onehot) * dloss; padded columns and ignored rows 0.
extern "C" __global__ void crossentropy_backward(floatX* logits, const int* targets, float dloss, int N, int V, int Vp) {
    __shared__ float sh[32];
    int n = blockIdx.x;
    if (n >= N) return;
    int target = targets[n];
    floatX* x = logits + (i64) n * Vp;
    if (target < 0) {
        for (int v = threadIdx.x; v < Vp; v += blockDim.x) x[v] = f2x(0.f);
        return;
    }
    float m, s;
    row_softmax_stats(x, V, sh, m, s);
    float inv = 1.f / s;
    for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
        x[v] = f2x(v < V ? (expf(x2f(x[v]) - m) * inv - (v == target ? 1.f : 0.f)) * dloss : 0.f);
    }
}

// partial[block] = sum of squares of its grid-stride share, in double; the host adds the partials
// in order, so the norm does not depend on scheduling.
extern "C" __global__ void sum_squares(double* partial, const float* x, i64 N) {
    __shared__ double sh[1024];
    double s = 0.0;
    for (i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (i64) gridDim.x * blockDim.x) {
        double g = x[i];
        s += g * g;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

extern "C" __global__ void adamw(float* params, const float* grads, float* m, float* v, i64 N, float lr,
                                 float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                                 float bc1, float bc2) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    float g = grads[i] * grad_scale;
    float mi = beta1 * m[i] + (1.f - beta1) * g;
    float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i];
    params[i] = p - lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + weight_decay * p);
}
