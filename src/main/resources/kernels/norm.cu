// LayerNorm and RMSNorm (scale 1 + w). Rows are handled one warp each; statistics in float.

extern "C" __global__ void layernorm_forward(floatX* out, float* mean, float* rstd, const floatX* inp,
                                             const floatX* weight, const floatX* bias, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const floatX* x = inp + (i64) row * C;
    float s = 0.f;
    for (int i = lane; i < C; i += 32) s += x2f(x[i]);
    float m = warp_sum(s) / C;
    float v = 0.f;
    for (int i = lane; i < C; i += 32) { float d = x2f(x[i]) - m; v += d * d; }
    float r = 1.0f / sqrtf(warp_sum(v) / C + eps);
    floatX* o = out + (i64) row * C;
    for (int i = lane; i < C; i += 32) {
        o[i] = f2x((x2f(x[i]) - m) * r * x2f(weight[i]) + (bias ? x2f(bias[i]) : 0.f));
    }
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

// dinp += (residual stream); one warp per row.
extern "C" __global__ void layernorm_backward_dinp(floatX* dinp, const floatX* dout, const floatX* inp,
                                                   const floatX* weight, const float* mean, const float* rstd,
                                                   int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const floatX* x = inp + (i64) row * C;
    const floatX* g = dout + (i64) row * C;
    float m = mean[row], r = rstd[row];
    float a = 0.f, b = 0.f;
    for (int i = lane; i < C; i += 32) {
        float dn = x2f(weight[i]) * x2f(g[i]);
        a += dn;
        b += dn * (x2f(x[i]) - m) * r;
    }
    a = warp_sum(a) / C;
    b = warp_sum(b) / C;
    floatX* d = dinp + (i64) row * C;
    for (int i = lane; i < C; i += 32) {
        float n = (x2f(x[i]) - m) * r;
        d[i] = f2x(x2f(d[i]) + (x2f(weight[i]) * x2f(g[i]) - a - n * b) * r);
    }
}

extern "C" __global__ void rmsnorm_forward(floatX* out, float* rstd, const floatX* inp, const floatX* weight,
                                           int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const floatX* x = inp + (i64) row * C;
    float s = 0.f;
    for (int i = lane; i < C; i += 32) { float xi = x2f(x[i]); s += xi * xi; }
    float r = 1.0f / sqrtf(warp_sum(s) / C + eps);
    floatX* o = out + (i64) row * C;
    for (int i = lane; i < C; i += 32) o[i] = f2x(x2f(x[i]) * r * (1.f + x2f(weight[i])));
    if (lane == 0) rstd[row] = r;
}

// dinp += rstd * (dn - x * rstd^2 * mean(dn * x)), dn = (1 + w) * dout.
extern "C" __global__ void rmsnorm_backward_dinp(floatX* dinp, const floatX* dout, const floatX* inp,
                                                 const floatX* weight, const float* rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const floatX* x = inp + (i64) row * C;
    const floatX* g = dout + (i64) row * C;
    float r = rstd[row];
    float dot = 0.f;
    for (int i = lane; i < C; i += 32) dot += (1.f + x2f(weight[i])) * x2f(g[i]) * x2f(x[i]);
    float k = r * r * warp_sum(dot) / C;
    floatX* d = dinp + (i64) row * C;
    for (int i = lane; i < C; i += 32) {
        d[i] = f2x(x2f(d[i]) + r * ((1.f + x2f(weight[i])) * x2f(g[i]) - x2f(x[i]) * k));
    }
}

// The parameter gradients in two deterministic stages: each block column sums a chunk of rows for
// its channels into partial[chunk][C]; sum_partials then adds the chunks in order. (One thread per
// channel walking every row left the GPU almost idle: 768 threads for 16k rows.)
extern "C" __global__ void layernorm_params_partial(float* pw, float* pb, const floatX* dout, const floatX* inp,
                                                    const float* mean, const float* rstd, int N, int C, int rowsPerChunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C) return;
    i64 r0 = (i64) chunk * rowsPerChunk, r1 = min((i64) N, r0 + rowsPerChunk);
    float dw = 0.f, db = 0.f;
    for (i64 n = r0; n < r1; n++) {
        float g = x2f(dout[n * C + c]);
        float x = x2f(inp[n * C + c]);
        if (mean) dw += (x - mean[n]) * rstd[n] * g;   // LayerNorm
        else dw += x * rstd[n] * g;                    // RMSNorm
        db += g;
    }
    pw[(i64) chunk * C + c] = dw;
    if (pb) pb[(i64) chunk * C + c] = db;
}

// out[c] += sum over chunks of partial[chunk][c], in chunk order.
extern "C" __global__ void sum_partials(float* out, const float* partial, int chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.f;
    for (int k = 0; k < chunks; k++) s += partial[(i64) k * C + c];
    out[c] += s;
}
