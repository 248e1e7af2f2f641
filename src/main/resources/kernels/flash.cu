// Flash attention (causal, as FlashAttention-2 computes it): the T x T weights are never stored.
// Forward keeps a running max and sum per query row (online softmax) and saves only
// lse = max + log(sum) per row (float); backward recomputes the weights from q, k and lse.
// Two sets of kernels: flash_tc_* (second half of this file) on the tensor cores, for bf16 and
// head sizes 64 and 128 on sm_80+; and these, one thread per query row (forward, dq) or key row
// (dk, dv) on CUDA cores for the rest (float32, other head sizes), tiles of the other side's rows
// in shared memory, head size HS fixed at compile time so a row lives in registers. Dropout on the
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

// ---- Flash attention on the tensor cores (bf16 mma.sync, FlashAttention-2's tiling) ----
// A block of WARPS warps owns BR = 16 WARPS rows (queries for the forward and dq, keys for dk and
// dv); each warp computes its 16-row strip against tiles of BR rows of the other side. Operands
// are staged in shared memory as bf16 with rows of HS + 8 elements (ldmatrix's eight 16-byte rows
// then fall in different banks), and every product is an m16n8k16 mma with float32 accumulation:
//   strip_dot: S (16 x BR) = X_strip (16 x HS) Y_tile^T        (q.k, dout.v, k.q, v.dout)
//   strip_acc: O (16 x HS) += P (16 x BR, registers) Z_tile    (p.v, ds.k, p^T.dout, ds^T.q)
// Weights above the diagonal are masked (only the diagonal tile has any), q, k and v are read in
// place in qkv and out/dqkv written in place: no permutes. Rows past T are staged as zeros; their
// results are not written. Dropout: the same element index and hash as the other paths.
// Deterministic: each output element is accumulated by one lane in a fixed order; no atomics.
template <int HS> struct TcTile {
    static const int WARPS = HS <= 64 ? 4 : 2, BR = 16 * WARPS, LD = HS + 8;
};

#define TC_INF __uint_as_float(0x7f800000u)

// Rows [r0, r0 + BR) of one head (head row 0 at src + base, `stride` elements between rows) into
// dst as bf16; rows at or past T as zeros; 16 bytes per thread and step. With `async` (the bf16
// build, rows on 16-byte boundaries) as cp.async copies that land at this thread's next
// cp_async_wait, so the copy overlaps what the block does until then; otherwise through registers.
template <int HS, int BR>
__device__ __forceinline__ void tc_load(unsigned short (*dst)[HS + 8], const floatX* src, i64 base, int stride, int r0,
                                        int T, bool async) {
#ifndef GPT2_BF16
    async = false;
#endif
    async = async && aligned16(src + base) && stride % 8 == 0;
    for (int e = threadIdx.x; e < BR * HS / 8; e += blockDim.x) {
        int r = e / (HS / 8), d = e % (HS / 8) * 8;
        bool valid = r0 + r < T;
        if (async) {  // rows past T: zero-filled (the source address is row 0's, unread)
            cp_async16(&dst[r][d], src + base + (i64) (valid ? r0 + r : 0) * stride + d, valid);
            continue;
        }
        unsigned w[4] = {0u, 0u, 0u, 0u};
        if (valid) {
            const floatX* p = src + base + (i64) (r0 + r) * stride + d;
            unsigned short v[8];
            for (int k = 0; k < 8; k += PACK) {
                xpack x = load_pack(p + k, 0, PACK, aligned16(p + k));
                for (int j = 0; j < PACK; j++) v[k + j] = x2bf16_bits(x.v[j]);
            }
            for (int j = 0; j < 4; j++) w[j] = (unsigned) v[2 * j] | ((unsigned) v[2 * j + 1] << 16);
        }
        unsigned* out = (unsigned*) &dst[r][d];
        for (int j = 0; j < 4; j++) out[j] = w[j];
    }
}

// Key rows [k0, k0 + BR) of one head into kv and their value rows into kv + BR (rowBase: the head's q
// of row 0 in qkv; k at +C, v at +2C).
template <int HS, int BR>
__device__ __forceinline__ void tc_load_kv(unsigned short (*kv)[HS + 8], const floatX* qkv, i64 rowBase, int C, int k0,
                                           int T, bool async) {
    tc_load<HS, BR>(kv, qkv, rowBase + C, 3 * C, k0, T, async);
    tc_load<HS, BR>(kv + BR, qkv, rowBase + 2 * C, 3 * C, k0, T, async);
}

// N accumulator fragments set to 0.
template <int N>
__device__ __forceinline__ void tc_zero(float (*a)[4]) {
#pragma unroll
    for (int j = 0; j < N; j++) a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0.f;
}

// S (16 x BR, as BR/8 accumulator fragments) = X (this warp's 16 rows) Y^T (Y: BR rows), over HS.
template <int HS, int BR>
__device__ __forceinline__ void tc_strip_dot(float (*s)[4], const unsigned short (*x)[HS + 8],
                                             const unsigned short (*y)[HS + 8], int lane) {
    tc_zero<BR / 8>(s);
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) {
        unsigned a[4];
        // matrices (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15): a[0..3]
        ldmatrix_x4(a, &x[(lane & 7) + ((lane >> 3) & 1) * 8][kk * 16 + (lane >> 4) * 8]);
#pragma unroll
        for (int j = 0; j < BR / 8; j += 2) {
            unsigned b[4];
            // B[k][n] = Y[n][k]: matrices (n-tile j, k 0-7), (j, 8-15), (j+1, 0-7), (j+1, 8-15)
            ldmatrix_x4(b, &y[j * 8 + (lane & 7) + (lane >> 4) * 8][kk * 16 + ((lane >> 3) & 1) * 8]);
            mma_bf16_16816(s[j], a, b);
            mma_bf16_16816(s[j + 1], a, b + 2);
        }
    }
}

// O (16 x HS) += P Z, P (16 x BR) given as accumulator fragments (rounded to bf16 here), Z (BR x HS).
template <int HS, int BR>
__device__ __forceinline__ void tc_strip_acc(float (*o)[4], const float (*p)[4], const unsigned short (*z)[HS + 8],
                                             int lane) {
#pragma unroll
    for (int kk = 0; kk < BR / 16; kk++) {
        // two accumulator tiles (columns 16kk..16kk+15) are one A fragment
        unsigned a[4] = {pack_bf16x2(p[2 * kk][0], p[2 * kk][1]), pack_bf16x2(p[2 * kk][2], p[2 * kk][3]),
                         pack_bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]), pack_bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
        for (int dn = 0; dn < HS / 8; dn += 2) {
            unsigned b[4];
            // B[k][n] = Z[k][n], transposed loads: (k 0-7, n-tile dn), (8-15, dn), (0-7, dn+1), (8-15, dn+1)
            ldmatrix_x4_trans(b, &z[kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][dn * 8 + (lane >> 4) * 8]);
            mma_bf16_16816(o[dn], a, b);
            mma_bf16_16816(o[dn + 1], a, b + 2);
        }
    }
}

// Stores a pair of adjacent elements (one 32-bit store in the bf16 build when aligned).
__device__ __forceinline__ void tc_store2(floatX* p, float a, float b) {
#ifdef GPT2_BF16
    if (((u64) p & 3u) == 0) { *(unsigned*) p = pack_bf16x2(a, b); return; }
#endif
    p[0] = f2x(a);
    p[1] = f2x(b);
}

// Writes a warp's 16 x HS accumulator (scaled per row by mul[0] for row g, mul[1] for row g + 8) to
// rows row[0], row[1] (those below T) at dst + row * stride.
template <int HS>
__device__ __forceinline__ void tc_store_rows(floatX* dst, i64 stride, const float (*o)[4], const int* row,
                                              const float* mul, int T, int lane) {
    int c = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (row[r] >= T) continue;
        floatX* p = dst + (i64) row[r] * stride + 2 * c;
#pragma unroll
        for (int dn = 0; dn < HS / 8; dn++) tc_store2(p + dn * 8, o[dn][2 * r] * mul[r], o[dn][2 * r + 1] * mul[r]);
    }
}

// The tile pipeline of the three kernels: the fixed side's rows and the first tile are loaded,
// then each step starts the next tile's copies into the other buffer before waiting for its own
// (cp.async, double-buffered; `async` 0 or the float build: loaded through registers instead):
//   load fixed, tile 0 -> buffer 0; commit
//   step i: tc_next_tile: [load tile i+1 -> buffer (i+1)%2; commit; wait for all but 1] | [wait for all];
//           barrier; compute on buffer i%2; barrier (buffer i%2 is refilled in step i+1)
// Shared memory (dynamic, BR rows of HS + 8 bf16 a tile): the forward q and two buffers of (k, v),
// 5 tiles; dq q, dout, two buffers of (k, v) and BR deltas; dk/dv k, v, two buffers of (q, dout)
// and two of BR (lse, delta). (CudaAttention.tensorCoreShared gives the launches these sizes.)
template <typename Load>
__device__ __forceinline__ void tc_next_tile(bool more, Load load_next) {
    if (more) {
        load_next();
        cp_async_commit();
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
    __syncthreads();  // this step's tile (and what was loaded with the first) in shared memory for every warp
}

template <int HS>
__device__ void flash_tc_forward(floatX* out, float* lse, const floatX* qkv, int T, int NH, float scale, float p, i64 key,
                                 int async) {
    const int BR = TcTile<HS>::BR, NT = BR / 8;
    typedef unsigned short Row[HS + 8];
    DYNAMIC_SHARED(smem);
    Row* qs = (Row*) smem;  // BR rows of q, then two buffers of (BR rows of k, BR rows of v)
    Row* kv = qs + BR;
    int q0 = (gridDim.x - 1 - blockIdx.x) * BR;  // the longest rows first
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C = NH * HS;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = lane & 3;
    i64 rowBase = (i64) b * T * 3 * C + (i64) h * HS;  // q of row 0 of this head; k at +C, v at +2C
    const float sl2 = scale * 1.4426950408889634f;     // scores to base-2 exponents
    int row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
    float o[HS / 8][4], m[2] = {-TC_INF, -TC_INF}, l[2] = {0.f, 0.f};
    tc_zero<HS / 8>(o);
    bool cp = async != 0;
    tc_load<HS, BR>(qs, qkv, rowBase, 3 * C, q0, T, cp);
    tc_load_kv<HS, BR>(kv, qkv, rowBase, C, 0, T, cp);
    cp_async_commit();
    int tiles = q0 / BR + 1;
    for (int it = 0; it < tiles; it++) {
        int k0 = it * BR;
        Row* ks = kv + (it & 1) * 2 * BR;
        Row* vs = ks + BR;
        tc_next_tile(it + 1 < tiles, [&] { tc_load_kv<HS, BR>(kv + ((it + 1) & 1) * 2 * BR, qkv, rowBase, C, k0 + BR, T, cp); });
        float s[NT][4];
        tc_strip_dot<HS, BR>(s, qs + warp * 16, ks, lane);
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1, col = k0 + j * 8 + 2 * c + (e & 1);
                if (k0 == q0 && col > row[r]) s[j][e] = -TC_INF;
                mx[r] = fmaxf(mx[r], s[j][e]);
            }
        }
        float alpha[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            alpha[r] = fast_exp2((m[r] - mx[r]) * sl2);
            m[r] = mx[r];
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1;
                float w = fast_exp2(fmaf(s[j][e], sl2, -m[r] * sl2));
                l[r] += w;
                if (p > 0.f) w *= dropout_scale(key, ((i64) bh * T + row[r]) * T + k0 + j * 8 + 2 * c + (e & 1), p);
                s[j][e] = w;
            }
        }
#pragma unroll
        for (int dn = 0; dn < HS / 8; dn++) {
            o[dn][0] *= alpha[0]; o[dn][1] *= alpha[0];
            o[dn][2] *= alpha[1]; o[dn][3] *= alpha[1];
        }
        tc_strip_acc<HS, BR>(o, s, vs, lane);
        __syncthreads();  // every warp is done with this buffer before step it + 1 refills it
    }
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = 1.f / l[r];
        if (c == 0 && row[r] < T) lse[(i64) bh * T + row[r]] = m[r] * scale + logf(l[r]);
    }
    tc_store_rows<HS>(out + (i64) b * T * C + (i64) h * HS, C, o, row, inv, T, lane);
}

// dq of a block's query rows: over key tiles up to the diagonal, S = q k^T, dP = dout v^T,
// dS = P (mask dP - delta) scale, dq += dS k. It also computes its rows' delta = rowsum(dout * out)
// (the softmax backward's sum of att * datt) into `delta`, for the dk/dv kernel launched after it.
template <int HS>
__device__ void flash_tc_backward_dq(floatX* dqkv, float* delta, const floatX* dout, const floatX* qkv,
                                     const floatX* out, const float* lse, int T, int NH, float scale, float p, i64 key,
                                     int async) {
    const int BR = TcTile<HS>::BR, NT = BR / 8;
    typedef unsigned short Row[HS + 8];
    DYNAMIC_SHARED(smem);
    Row* qs = (Row*) smem;  // q, dout, then two buffers of (k, v); then the rows' delta
    Row* gs = qs + BR;
    Row* kv = gs + BR;
    float* ds_ = (float*) (kv + 4 * BR);
    int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C = NH * HS;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = lane & 3;
    i64 rowBase = (i64) b * T * 3 * C + (i64) h * HS, outBase = (i64) b * T * C + (i64) h * HS;
    const float sl2 = scale * 1.4426950408889634f, log2e = 1.4426950408889634f;
    int row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
    bool cp = async != 0;
    tc_load<HS, BR>(qs, qkv, rowBase, 3 * C, q0, T, cp);
    tc_load<HS, BR>(gs, dout, outBase, C, q0, T, cp);
    tc_load_kv<HS, BR>(kv, qkv, rowBase, C, 0, T, cp);
    cp_async_commit();
    // while those copies fly: delta of the block's rows, from global memory
    for (int i = threadIdx.x; i < BR; i += blockDim.x) {
        float d = 0.f;
        if (q0 + i < T) {
            const floatX* go = dout + outBase + (i64) (q0 + i) * C;
            const floatX* o = out + outBase + (i64) (q0 + i) * C;
            for (int e = 0; e < HS; e += PACK) {
                xpack x = load_pack(go + e, 0, PACK, aligned16(go + e)), y = load_pack(o + e, 0, PACK, aligned16(o + e));
                for (int k = 0; k < PACK; k++) d += x2f(x.v[k]) * x2f(y.v[k]);
            }
            delta[(i64) bh * T + q0 + i] = d;
        }
        ds_[i] = d;
    }
    float L[2], D[2];
#pragma unroll
    for (int r = 0; r < 2; r++) L[r] = row[r] < T ? lse[(i64) bh * T + row[r]] * log2e : 0.f;
    float dq[HS / 8][4];
    tc_zero<HS / 8>(dq);
    int tiles = q0 / BR + 1;
    for (int it = 0; it < tiles; it++) {
        int k0 = it * BR;
        Row* ks = kv + (it & 1) * 2 * BR;
        Row* vs = ks + BR;
        tc_next_tile(it + 1 < tiles, [&] { tc_load_kv<HS, BR>(kv + ((it + 1) & 1) * 2 * BR, qkv, rowBase, C, k0 + BR, T, cp); });
        if (it == 0) {  // the deltas, written before the first barrier
            D[0] = ds_[warp * 16 + (lane >> 2)];
            D[1] = ds_[warp * 16 + (lane >> 2) + 8];
        }
        float s[NT][4], dp[NT][4];
        tc_strip_dot<HS, BR>(s, qs + warp * 16, ks, lane);
        tc_strip_dot<HS, BR>(dp, gs + warp * 16, vs, lane);
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1, col = k0 + j * 8 + 2 * c + (e & 1);
                float w = k0 == q0 && col > row[r] ? 0.f : fast_exp2(fmaf(s[j][e], sl2, -L[r]));
                float d = dp[j][e];
                if (p > 0.f) d *= dropout_scale(key, ((i64) bh * T + row[r]) * T + col, p);
                s[j][e] = w * (d - D[r]) * scale;
            }
        }
        tc_strip_acc<HS, BR>(dq, s, ks, lane);
        __syncthreads();  // every warp is done with this buffer before step it + 1 refills it
    }
    const float one[2] = {1.f, 1.f};
    tc_store_rows<HS>(dqkv + rowBase, 3 * C, dq, row, one, T, lane);
}

// dk and dv of a block's key rows: over query tiles from the diagonal on, S^T = k q^T,
// dP^T = v dout^T, dv += (mask P)^T dout, dk += dS^T q.
template <int HS>
__device__ void flash_tc_backward_dkdv(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* lse,
                                       const float* delta, int T, int NH, float scale, float p, i64 key, int async) {
    const int BR = TcTile<HS>::BR, NT = BR / 8;
    typedef unsigned short Row[HS + 8];
    DYNAMIC_SHARED(smem);
    Row* ks = (Row*) smem;  // k, v, then two buffers of (q, dout); then two buffers of (lse, delta)
    Row* vs = ks + BR;
    Row* qg = vs + BR;
    float* stats = (float*) (qg + 4 * BR);
    int j0 = blockIdx.x * BR;  // the first key blocks have the most queries: they go first
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C = NH * HS;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, c = lane & 3;
    i64 rowBase = (i64) b * T * 3 * C + (i64) h * HS, outBase = (i64) b * T * C + (i64) h * HS;
    const float sl2 = scale * 1.4426950408889634f, log2e = 1.4426950408889634f;
    int row[2] = {j0 + warp * 16 + (lane >> 2), j0 + warp * 16 + (lane >> 2) + 8};  // key rows
    float dk[HS / 8][4], dv[HS / 8][4];
    tc_zero<HS / 8>(dk);
    tc_zero<HS / 8>(dv);
    bool cp = async != 0;
    // one query tile's rows, their lse (base 2) and delta into buffer `buf`
    auto load_tile = [&](int q0, int buf) {
        tc_load<HS, BR>(qg + buf * 2 * BR, qkv, rowBase, 3 * C, q0, T, cp);
        tc_load<HS, BR>(qg + buf * 2 * BR + BR, dout, outBase, C, q0, T, cp);
        float* ls = stats + buf * 2 * BR;
        for (int i = threadIdx.x; i < BR; i += blockDim.x) {
            ls[i] = q0 + i < T ? lse[(i64) bh * T + q0 + i] * log2e : TC_INF;  // no weight for rows past T
            ls[BR + i] = q0 + i < T ? delta[(i64) bh * T + q0 + i] : 0.f;
        }
    };
    tc_load_kv<HS, BR>(ks, qkv, rowBase, C, j0, T, cp);
    load_tile(j0, 0);
    cp_async_commit();
    int tiles = (T - j0 + BR - 1) / BR;
    for (int it = 0; it < tiles; it++) {
        int q0 = j0 + it * BR, buf = it & 1;
        tc_next_tile(it + 1 < tiles, [&] { load_tile(q0 + BR, buf ^ 1); });
        Row* qs = qg + buf * 2 * BR;
        Row* gs = qs + BR;
        const float* ls = stats + buf * 2 * BR;
        const float* dl = ls + BR;
        float s[NT][4], dp[NT][4];
        tc_strip_dot<HS, BR>(s, ks + warp * 16, qs, lane);
        tc_strip_dot<HS, BR>(dp, vs + warp * 16, gs, lane);
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1, col = j * 8 + 2 * c + (e & 1), t = q0 + col;
                float w = q0 == j0 && t < row[r] ? 0.f : fast_exp2(fmaf(s[j][e], sl2, -ls[col]));
                float mask = p > 0.f && t < T ? dropout_scale(key, ((i64) bh * T + t) * T + row[r], p) : 1.f;
                s[j][e] = w * mask;                                  // for dv
                dp[j][e] = w * (dp[j][e] * mask - dl[col]) * scale;  // dS^T, for dk
            }
        }
        tc_strip_acc<HS, BR>(dv, s, gs, lane);
        tc_strip_acc<HS, BR>(dk, dp, qs, lane);
        __syncthreads();  // every warp is done with this buffer before step it + 1 refills it
    }
    const float one[2] = {1.f, 1.f};
    tc_store_rows<HS>(dqkv + rowBase + C, 3 * C, dk, row, one, T, lane);
    tc_store_rows<HS>(dqkv + rowBase + 2 * C, 3 * C, dv, row, one, T, lane);
}

// Tensor-core kernels for the head sizes that fill whole mma tiles (GPT-2's 64, and 128); `async`
// 0 loads the tiles through registers instead of cp.async (GPT2_FLASH_ASYNC=0, for comparing).
#define FLASH_TC_KERNELS(HS)                                                                                 \
extern "C" __global__ void flash_tc_forward_##HS(floatX* out, float* lse, const floatX* qkv, int T, int NH,   \
                                                 float scale, float p, i64 key, int async) {                  \
    flash_tc_forward<HS>(out, lse, qkv, T, NH, scale, p, key, async);                                        \
}                                                                                                            \
extern "C" __global__ void flash_tc_backward_dq_##HS(floatX* dqkv, float* delta, const floatX* dout,        \
                                                     const floatX* qkv, const floatX* out, const float* lse, \
                                                     int T, int NH, float scale, float p, i64 key,            \
                                                     int async) {                                             \
    flash_tc_backward_dq<HS>(dqkv, delta, dout, qkv, out, lse, T, NH, scale, p, key, async);                 \
}                                                                                                            \
extern "C" __global__ void flash_tc_backward_dkdv_##HS(floatX* dqkv, const floatX* dout, const floatX* qkv,  \
                                                       const float* lse, const float* delta, int T, int NH,  \
                                                       float scale, float p, i64 key, int async) {            \
    flash_tc_backward_dkdv<HS>(dqkv, dout, qkv, lse, delta, T, NH, scale, p, key, async);                    \
}

FLASH_TC_KERNELS(64)
FLASH_TC_KERNELS(128)
