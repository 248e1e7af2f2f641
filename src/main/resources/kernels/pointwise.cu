// Element-wise ops: GELU (tanh approximation), residual add, dropout. Computed in float.

#define GELU_K 0.7978845608028654f

extern "C" __global__ void gelu_forward(floatX* out, const floatX* inp, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    float x = x2f(inp[i]);
    out[i] = f2x(0.5f * x * (1.f + tanhf(GELU_K * (x + 0.044715f * x * x * x))));
}

// dinp = gelu'(inp) * dout (dinp may alias dout).
extern "C" __global__ void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    float x = x2f(inp[i]);
    float th = tanhf(GELU_K * (x + 0.044715f * x * x * x));
    float g = 0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * GELU_K * (1.f + 3.f * 0.044715f * x * x);
    dinp[i] = f2x(g * x2f(dout[i]));
}

extern "C" __global__ void residual_forward(floatX* out, const floatX* a, const floatX* b, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) out[i] = f2x(x2f(a[i]) + x2f(b[i]));
}

// x *= mask / (1 - p) in place (forward and backward alike).
extern "C" __global__ void dropout(floatX* x, i64 N, float p, i64 key) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) x[i] = f2x(x2f(x[i]) * dropout_scale(key, i, p));
}

// dst = src * mask / (1 - p) (the dropped copy of the attention weights).
extern "C" __global__ void dropout_copy(floatX* dst, const floatX* src, i64 N, float p, i64 key) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) dst[i] = f2x(x2f(src[i]) * dropout_scale(key, i, p));
}
