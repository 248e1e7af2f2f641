// Element-wise ops: GELU (tanh approximation), ReLU², logit soft-capping, residual add, dropout. Computed in float; each thread
// takes one 128-bit pack (PACK elements) when every pointer is 16-byte aligned, element by element
// otherwise (the same arithmetic either way).

#define GELU_K 0.7978845608028654f

// The first element of this thread's pack, or -1 past the end.
__device__ __forceinline__ i64 pack_start(i64 N) {
    i64 i = ((i64) blockIdx.x * blockDim.x + threadIdx.x) * PACK;
    return i < N ? i : -1;
}

__device__ __forceinline__ float gelu(float x) {
    return 0.5f * x * (1.f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float gelu_grad(float x) {
    float th = tanhf(GELU_K * (x + 0.044715f * x * x * x));
    return 0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * GELU_K * (1.f + 3.f * 0.044715f * x * x);
}

extern "C" __global__ void gelu_forward(floatX* out, const floatX* inp, i64 N) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(out) && aligned16(inp);
    xpack x = load_pack(inp, i, N, vec);
    for (int k = 0; k < PACK; k++) x.v[k] = f2x(gelu(x2f(x.v[k])));
    store_pack(out, i, N, vec, x);
}

// dinp = gelu'(inp) * dout (dinp may alias dout).
extern "C" __global__ void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, i64 N) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(dinp) && aligned16(inp) && aligned16(dout);
    xpack x = load_pack(inp, i, N, vec), g = load_pack(dout, i, N, vec);
    for (int k = 0; k < PACK; k++) g.v[k] = f2x(gelu_grad(x2f(x.v[k])) * x2f(g.v[k]));
    store_pack(dinp, i, N, vec, g);
}

// GELU's backward fused with the next linear layer's bias gradient (it reads the same data): for
// dout (N,OC), dinp = gelu'(inp) * dout (may alias dout), and partial[block] (OC floats) = the
// column sums of dinp as stored over this block's chunk of GELU_ROWS rows, rows in order. Threads
// across the row's packs.
#define GELU_ROWS 32
extern "C" __global__ void gelu_backward_colsum(floatX* dinp, float* partial, const floatX* inp, const floatX* dout,
                                                int N, int OC) {
    int r0 = blockIdx.x * GELU_ROWS, rows = min(GELU_ROWS, N - r0);
    bool vec = OC % PACK == 0 && aligned16(dinp) && aligned16(inp) && aligned16(dout);
    for (int i = threadIdx.x * PACK; i < OC; i += blockDim.x * PACK) {
        float cs[PACK];
        for (int k = 0; k < PACK; k++) cs[k] = 0.f;
        for (int j = 0; j < rows; j++) {
            i64 base = (i64) (r0 + j) * OC;
            xpack x = load_pack(inp + base, i, OC, vec), g = load_pack(dout + base, i, OC, vec);
            for (int k = 0; k < PACK; k++) {
                g.v[k] = f2x(gelu_grad(x2f(x.v[k])) * x2f(g.v[k]));
                cs[k] += x2f(g.v[k]);
            }
            store_pack(dinp + base, i, OC, vec, g);
        }
        float* p = partial + (i64) blockIdx.x * OC;
        for (int k = 0; k < PACK && i + k < OC; k++) p[i + k] = cs[k];
    }
}

// out = relu(x)^2 (the modern MLP's activation).
extern "C" __global__ void relu2_forward(floatX* out, const floatX* inp, i64 N) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(out) && aligned16(inp);
    xpack x = load_pack(inp, i, N, vec);
    for (int k = 0; k < PACK; k++) { float v = fmaxf(x2f(x.v[k]), 0.f); x.v[k] = f2x(v * v); }
    store_pack(out, i, N, vec, x);
}

// dinp = 2 relu(inp) * dout (dinp may alias dout).
extern "C" __global__ void relu2_backward(floatX* dinp, const floatX* inp, const floatX* dout, i64 N) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(dinp) && aligned16(inp) && aligned16(dout);
    xpack x = load_pack(inp, i, N, vec), g = load_pack(dout, i, N, vec);
    for (int k = 0; k < PACK; k++) g.v[k] = f2x(2.f * fmaxf(x2f(x.v[k]), 0.f) * x2f(g.v[k]));
    store_pack(dinp, i, N, vec, g);
}

// x = cap * tanh(x / cap) in place, tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|): the
// CPU backend's formula (no overflow for any u). Its backward is in classifier_fused.
extern "C" __global__ void softcap_forward(floatX* x, i64 N, float cap) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(x);
    float inv = 1.f / cap;
    xpack p = load_pack(x, i, N, vec);
    for (int k = 0; k < PACK; k++) {
        float u = x2f(p.v[k]) * inv, e = expf(fabsf(u) * -2.f), t = (1.f - e) / (e + 1.f) * cap;
        p.v[k] = f2x(u < 0.f ? -t : t);
    }
    store_pack(x, i, N, vec, p);
}

extern "C" __global__ void residual_forward(floatX* out, const floatX* a, const floatX* b, i64 N) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(out) && aligned16(a) && aligned16(b);
    xpack x = load_pack(a, i, N, vec), y = load_pack(b, i, N, vec);
    for (int k = 0; k < PACK; k++) x.v[k] = f2x(x2f(x.v[k]) + x2f(y.v[k]));
    store_pack(out, i, N, vec, x);
}

// dst = src * mask / (1 - p), element i's mask from (key, i): forward and backward alike, in place
// (dst == src) or into a copy (the dropped attention weights).
extern "C" __global__ void dropout(floatX* dst, const floatX* src, i64 N, float p, i64 key) {
    i64 i = pack_start(N);
    if (i < 0) return;
    bool vec = aligned16(dst) && aligned16(src);
    xpack x = load_pack(src, i, N, vec);
    for (int k = 0; k < PACK; k++) x.v[k] = f2x(x2f(x.v[k]) * dropout_scale(key, i + k, p));
    store_pack(dst, i, N, vec, x);
}
