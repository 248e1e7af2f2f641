// Flash attention (causal, as FlashAttention-2 computes it): the T x T weights are never stored.
// Forward keeps a running max and sum per query row (online softmax) and saves only
// lse = max + log(sum) per row (float); backward recomputes the weights from q, k and lse.
// One thread per query row (forward, dq) or key row (dk, dv), tiles of the other side's rows in
// shared memory, head size HS fixed at compile time so a row lives in registers. Dropout on the
// weights uses the same element index ((b*NH+h)*T+t)*T+t2 as the materialized path, so the masks
// are identical. qkv (B,T,3,NH,HS); out (B,T,NH*HS); lse, delta (B,NH,T). Deterministic: every
// output element is written by one thread, summing in a fixed order.

template <int HS> struct FlashTile { static const int ROWS = HS <= 64 ? 64 : 32; };

// Stages rows [r0, r0+n) of one head's q, k, v or dout (stride between rows `stride`, `offset` to
// the head's first element) as floats in shared memory; rows past T are zeros.
template <int HS, int N>
__device__ __forceinline__ void flash_stage(float (*dst)[HS], const floatX* src, i64 base, int stride, int r0, int T) {
    for (int e = threadIdx.x; e < N * HS; e += blockDim.x) {
        int r = e / HS, d = e % HS;
        dst[r][d] = r0 + r < T ? x2f(src[base + (i64) (r0 + r) * stride + d]) : 0.f;
    }
}

// Keys and values of rows [k0, k0+N) of one head (rowBase: its q of row 0), between barriers: the
// block's threads are done with the previous tile before it is overwritten.
template <int HS, int N>
__device__ __forceinline__ void flash_stage_kv(float (*ks)[HS], float (*vs)[HS], const floatX* qkv, i64 rowBase, int C,
                                               int k0, int T) {
    __syncthreads();
    flash_stage<HS, N>(ks, qkv, rowBase + C, 3 * C, k0, T);
    flash_stage<HS, N>(vs, qkv, rowBase + 2 * C, 3 * C, k0, T);
    __syncthreads();
}

template <int HS>
__device__ void flash_forward(floatX* out, float* lse, const floatX* qkv, int T, int NH, float scale, float p, i64 key) {
    const int R = FlashTile<HS>::ROWS;
    __shared__ float ks[R][HS], vs[R][HS];
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C = NH * HS;
    int t = blockIdx.x * R + threadIdx.x;
    i64 rowBase = (i64) b * T * 3 * C + (i64) h * HS;   // q of row 0 of this head; k at +C, v at +2C
    float q[HS], acc[HS];
    float m = -3.402823466e38f, l = 0.f;
    if (t < T) {
        for (int d = 0; d < HS; d++) { q[d] = x2f(qkv[rowBase + (i64) t * 3 * C + d]) * scale; acc[d] = 0.f; }
    }
    int keys = min(T, (int) (blockIdx.x + 1) * R);
    for (int k0 = 0; k0 < keys; k0 += R) {
        flash_stage_kv<HS, R>(ks, vs, qkv, rowBase, C, k0, T);
        if (t >= T) continue;
        int last = min(t, k0 + R - 1);
        for (int j = k0; j <= last; j++) {
            float s = 0.f;
            for (int d = 0; d < HS; d++) s += q[d] * ks[j - k0][d];
            if (s > m) {
                float c = expf(m - s);
                l *= c;
                for (int d = 0; d < HS; d++) acc[d] *= c;
                m = s;
            }
            float w = expf(s - m);
            l += w;
            if (p > 0.f) w *= dropout_scale(key, ((i64) bh * T + t) * T + j, p);
            for (int d = 0; d < HS; d++) acc[d] += w * vs[j - k0][d];
        }
    }
    if (t < T) {
        for (int d = 0; d < HS; d++) out[((i64) b * T + t) * C + (i64) h * HS + d] = f2x(acc[d] / l);
        lse[(i64) bh * T + t] = m + logf(l);
    }
}

// delta (B,NH,T) = rowsum(dout * out) per head: the softmax backward's sum of att * datt.
extern "C" __global__ void flash_delta(float* delta, const floatX* dout, const floatX* out, int B, int T, int NH, int hs) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) B * NH * T) return;
    int t = (int) (idx % T), bh = (int) (idx / T), b = bh / NH, h = bh % NH;
    i64 o = ((i64) b * T + t) * NH * hs + (i64) h * hs;
    float s = 0.f;
    for (int d = 0; d < hs; d++) s += x2f(dout[o + d]) * x2f(out[o + d]);
    delta[idx] = s;
}

// dq of each query row: sum over keys j <= t of ds_tj k_j, ds = p (mask dout.v_j - delta) * scale.
template <int HS>
__device__ void flash_backward_dq(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                  const float* delta, int T, int NH, float scale, float p, i64 key) {
    const int R = FlashTile<HS>::ROWS;
    __shared__ float ks[R][HS], vs[R][HS];
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C = NH * HS;
    int t = blockIdx.x * R + threadIdx.x;
    i64 rowBase = (i64) b * T * 3 * C + (i64) h * HS;
    float q[HS], g[HS], dq[HS];
    float L = 0.f, D = 0.f;
    if (t < T) {
        for (int d = 0; d < HS; d++) {
            q[d] = x2f(qkv[rowBase + (i64) t * 3 * C + d]);
            g[d] = x2f(dout[((i64) b * T + t) * C + (i64) h * HS + d]);
            dq[d] = 0.f;
        }
        L = lse[(i64) bh * T + t];
        D = delta[(i64) bh * T + t];
    }
    int keys = min(T, (int) (blockIdx.x + 1) * R);
    for (int k0 = 0; k0 < keys; k0 += R) {
        flash_stage_kv<HS, R>(ks, vs, qkv, rowBase, C, k0, T);
        if (t >= T) continue;
        int last = min(t, k0 + R - 1);
        for (int j = k0; j <= last; j++) {
            float s = 0.f, dp = 0.f;
            for (int d = 0; d < HS; d++) { s += q[d] * ks[j - k0][d]; dp += g[d] * vs[j - k0][d]; }
            float w = expf(s * scale - L);
            if (p > 0.f) dp *= dropout_scale(key, ((i64) bh * T + t) * T + j, p);
            float ds = w * (dp - D) * scale;
            for (int d = 0; d < HS; d++) dq[d] += ds * ks[j - k0][d];
        }
    }
    if (t < T) {
        for (int d = 0; d < HS; d++) dqkv[rowBase + (i64) t * 3 * C + d] = f2x(dq[d]);
    }
}

// dk and dv of each key row j: sums over queries t >= j.
template <int HS>
__device__ void flash_backward_dkdv(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                    const float* delta, int T, int NH, float scale, float p, i64 key) {
    const int R = FlashTile<HS>::ROWS;
    __shared__ float qs[R][HS], gs[R][HS], ls[R], ds_[R];
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C = NH * HS;
    int j = blockIdx.x * R + threadIdx.x;
    i64 rowBase = (i64) b * T * 3 * C + (i64) h * HS;
    i64 outBase = (i64) b * T * C + (i64) h * HS;
    float k[HS], v[HS], dk[HS], dv[HS];
    if (j < T) {
        for (int d = 0; d < HS; d++) {
            k[d] = x2f(qkv[rowBase + (i64) j * 3 * C + C + d]);
            v[d] = x2f(qkv[rowBase + (i64) j * 3 * C + 2 * C + d]);
            dk[d] = 0.f;
            dv[d] = 0.f;
        }
    }
    for (int q0 = blockIdx.x * R; q0 < T; q0 += R) {
        __syncthreads();
        flash_stage<HS, R>(qs, qkv, rowBase, 3 * C, q0, T);
        flash_stage<HS, R>(gs, dout, outBase, C, q0, T);
        for (int r = threadIdx.x; r < R; r += blockDim.x) {
            ls[r] = q0 + r < T ? lse[(i64) bh * T + q0 + r] : 0.f;
            ds_[r] = q0 + r < T ? delta[(i64) bh * T + q0 + r] : 0.f;
        }
        __syncthreads();
        if (j >= T) continue;
        int last = min(T - 1, q0 + R - 1);
        for (int t = max(j, q0); t <= last; t++) {
            float s = 0.f, dp = 0.f;
            for (int d = 0; d < HS; d++) { s += qs[t - q0][d] * k[d]; dp += gs[t - q0][d] * v[d]; }
            float w = expf(s * scale - ls[t - q0]);
            float mask = p > 0.f ? dropout_scale(key, ((i64) bh * T + t) * T + j, p) : 1.f;
            float ds = w * (dp * mask - ds_[t - q0]) * scale;
            for (int d = 0; d < HS; d++) {
                dv[d] += w * mask * gs[t - q0][d];
                dk[d] += ds * qs[t - q0][d];
            }
        }
    }
    if (j < T) {
        for (int d = 0; d < HS; d++) {
            dqkv[rowBase + (i64) j * 3 * C + C + d] = f2x(dk[d]);
            dqkv[rowBase + (i64) j * 3 * C + 2 * C + d] = f2x(dv[d]);
        }
    }
}

// The head sizes flash attention is built for (GPT-2's is 64): one kernel of each kind per size.
// (KernelCompiler expands this macro to read the kernels' signatures.)
#define FLASH_KERNELS(HS)                                                                                    \
extern "C" __global__ void flash_forward_##HS(floatX* out, float* lse, const floatX* qkv, int T, int NH,      \
                                              float scale, float p, i64 key) {                                \
    flash_forward<HS>(out, lse, qkv, T, NH, scale, p, key);                                                  \
}                                                                                                            \
extern "C" __global__ void flash_backward_dq_##HS(floatX* dqkv, const floatX* dout, const floatX* qkv,       \
                                                  const float* lse, const float* delta, int T, int NH,       \
                                                  float scale, float p, i64 key) {                            \
    flash_backward_dq<HS>(dqkv, dout, qkv, lse, delta, T, NH, scale, p, key);                                \
}                                                                                                            \
extern "C" __global__ void flash_backward_dkdv_##HS(floatX* dqkv, const floatX* dout, const floatX* qkv,     \
                                                    const float* lse, const float* delta, int T, int NH,     \
                                                    float scale, float p, i64 key) {                          \
    flash_backward_dkdv<HS>(dqkv, dout, qkv, lse, delta, T, NH, scale, p, key);                              \
}

FLASH_KERNELS(16)
FLASH_KERNELS(32)
FLASH_KERNELS(64)
FLASH_KERNELS(128)
