// LayerNorm and RMSNorm (scale 1 + w, or 1 when weight is null: parameter-free), optionally fused
// with the residual add before them. Statistics in float; rows read with 128-bit loads.
// mean == null selects RMSNorm throughout.

// The row's value at packs: a + b (the residual stream after the add), or a alone.
__device__ __forceinline__ xpack norm_input(const floatX* a, const floatX* b, i64 i, int C, bool vec) {
    xpack x = load_pack(a, i, C, vec);
    if (b) {
        xpack y = load_pack(b, i, C, vec);
        for (int k = 0; k < PACK; k++) x.v[k] = f2x(x2f(x.v[k]) + x2f(y.v[k]));
    }
    return x;
}

// out (N,C) = norm(x) with x = a, or with res != null x = a + b, written to res (the residual add
// fused with the next norm: one read of a and b, one write of res and out). One warp per row; the
// row is read once from memory (the later passes find it in L1/L2). Saves mean (LayerNorm), rstd.
//   LayerNorm: out = (x - mean) * rstd * w + bias;  RMSNorm: out = x * rstd * (1 + w)
extern "C" __global__ void norm_forward(floatX* out, float* mean, float* rstd, floatX* res, const floatX* a,
                                        const floatX* b, const floatX* weight, const floatX* bias, int N, int C,
                                        float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    i64 base = (i64) row * C;
    bool vec = C % PACK == 0 && aligned16(out) && aligned16(a) && (!b || aligned16(b)) && (!res || aligned16(res))
               && aligned16(weight) && (!bias || aligned16(bias));
    const floatX* x = a + base;
    if (res) {  // the residual add, stored in the compute type: the norm reads what backward will
        for (int i = lane * PACK; i < C; i += 32 * PACK) store_pack(res + base, i, C, vec, norm_input(x, b + base, i, C, vec));
        x = res + base;  // each lane reads back only the packs it wrote
    }
    float s = 0.f, ss = 0.f;
    for (int i = lane * PACK; i < C; i += 32 * PACK) {
        xpack p = load_pack(x, i, C, vec);
        for (int k = 0; k < PACK && i + k < C; k++) { float v = x2f(p.v[k]); s += v; ss += v * v; }
    }
    float m = 0.f, r;
    if (mean) {
        m = warp_sum(s) / C;
        float var = 0.f;
        for (int i = lane * PACK; i < C; i += 32 * PACK) {
            xpack p = load_pack(x, i, C, vec);
            for (int k = 0; k < PACK && i + k < C; k++) { float d = x2f(p.v[k]) - m; var += d * d; }
        }
        r = 1.0f / sqrtf(warp_sum(var) / C + eps);
    } else {
        r = 1.0f / sqrtf(warp_sum(ss) / C + eps);
    }
    for (int i = lane * PACK; i < C; i += 32 * PACK) {
        xpack p = load_pack(x, i, C, vec), w = weight ? load_pack(weight, i, C, vec) : p, o;
        xpack bb = bias ? load_pack(bias, i, C, vec) : w;
        for (int k = 0; k < PACK; k++) {
            float v = x2f(p.v[k]);
            o.v[k] = f2x(mean ? (v - m) * r * x2f(w.v[k]) + (bias ? x2f(bb.v[k]) : 0.f)
                              : v * r * (weight ? 1.f + x2f(w.v[k]) : 1.f));
        }
        store_pack(out + base, i, C, vec, o);
    }
    if (lane == 0) { if (mean) mean[row] = m; rstd[row] = r; }
}

// Norm backward, one block per chunk of rows, fused: dinp (N,C) += the input gradient (the residual
// stream), and partial[chunk] (3C floats) = this chunk's column sums of the weight gradient, the bias
// gradient (LayerNorm) and the updated dinp as stored (the downstream linear layer's bias gradient,
// so no other pass has to read dinp for it). Two stages: a warp per row for the row's two
// reductions, then threads across the row's packs walking the chunk's rows in order (coalesced,
// deterministic). With n = (x - mean) * rstd (RMSNorm: x * rstd) and dn = w * g (RMSNorm: (1+w) * g):
//   dinp += (dn - mean(dn) - n * mean(dn * n)) * rstd     (RMSNorm: without the mean(dn) term)
#define NORM_ROWS 32
extern "C" __global__ void norm_backward(floatX* dinp, float* partial, const floatX* dout, const floatX* inp,
                                         const floatX* weight, const float* mean, const float* rstd, int N, int C) {
    __shared__ float sa[NORM_ROWS], sb[NORM_ROWS];
    int r0 = blockIdx.x * NORM_ROWS, rows = min(NORM_ROWS, N - r0);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    bool vec = C % PACK == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
    for (int j = warp; j < rows; j += warps) {
        i64 base = (i64) (r0 + j) * C;
        float m = mean ? mean[r0 + j] : 0.f, r = rstd[r0 + j], a = 0.f, b = 0.f;
        for (int i = lane * PACK; i < C; i += 32 * PACK) {
            xpack g = load_pack(dout + base, i, C, vec), x = load_pack(inp + base, i, C, vec);
            xpack w = weight ? load_pack(weight, i, C, vec) : g;
            for (int k = 0; k < PACK && i + k < C; k++) {
                float dn = (!weight ? 1.f : mean ? x2f(w.v[k]) : 1.f + x2f(w.v[k])) * x2f(g.v[k]);
                a += dn;
                b += dn * (x2f(x.v[k]) - m) * r;
            }
        }
        a = warp_sum(a) / C;
        b = warp_sum(b) / C;
        if (lane == 0) { sa[j] = mean ? a : 0.f; sb[j] = b; }
    }
    __syncthreads();
    float* p = partial + (i64) blockIdx.x * 3 * C;
    for (int i = threadIdx.x * PACK; i < C; i += blockDim.x * PACK) {
        float dw[PACK], db[PACK], cs[PACK];
        for (int k = 0; k < PACK; k++) dw[k] = db[k] = cs[k] = 0.f;
        xpack w;
        if (weight) w = load_pack(weight, i, C, vec);
        for (int j = 0; j < rows; j++) {
            i64 base = (i64) (r0 + j) * C;
            float m = mean ? mean[r0 + j] : 0.f, r = rstd[r0 + j];
            xpack g = load_pack(dout + base, i, C, vec), x = load_pack(inp + base, i, C, vec), d = load_pack(dinp + base, i, C, vec);
            for (int k = 0; k < PACK; k++) {
                float gk = x2f(g.v[k]), n = (x2f(x.v[k]) - m) * r;
                float dn = (!weight ? 1.f : mean ? x2f(w.v[k]) : 1.f + x2f(w.v[k])) * gk;
                d.v[k] = f2x(x2f(d.v[k]) + (dn - sa[j] - n * sb[j]) * r);
                dw[k] += n * gk;
                db[k] += gk;
                cs[k] += x2f(d.v[k]);
            }
            store_pack(dinp + base, i, C, vec, d);
        }
        for (int k = 0; k < PACK && i + k < C; k++) { p[i + k] = dw[k]; p[C + i + k] = db[k]; p[2 * C + i + k] = cs[k]; }
    }
}

// The second stage of every two-stage parameter gradient, for many gradients in one launch: group g
// (blockIdx.y) adds, chunks in order (deterministic), partial[chunk * stride + c] into out[c] for
// c < width. table: 5 i64 per group: out address, partial address, width, stride, chunks.
extern "C" __global__ void sum_partials(const i64* table, int groups) {
    int g = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    const i64* e = table + 5 * (i64) g;
    int width = (int) e[2], stride = (int) e[3], chunks = (int) e[4];
    if (c >= width) return;
    float* out = (float*) e[0];
    const float* partial = (const float*) e[1];
    float s = 0.f;
    for (int k = 0; k < chunks; k++) s += partial[(i64) k * stride + c];
    out[c] += s;
}
