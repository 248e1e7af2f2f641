// Causal self-attention around cuBLAS's batched GEMMs (the T x T weights materialized, as floatX;
// softmax statistics in float).
// The GEMMs read q, k and v in place inside qkv (B,T,3,NH,hs) through arrays of pointers; att (B,NH,T,T).

// att = softmax(scale * preatt) over t2 <= t, zero above the diagonal; one warp per row.
extern "C" __global__ void softmax_forward(floatX* att, const floatX* preatt, int rows, int T, float scale) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T;
    const floatX* x = preatt + (i64) row * T;
    floatX* y = att + (i64) row * T;
    float m = -3.402823466e38f;
    for (int j = lane; j <= t; j += 32) m = fmaxf(m, x2f(x[j]) * scale);
    m = warp_max(m);
    float s = 0.f;
    for (int j = lane; j <= t; j += 32) s += expf(x2f(x[j]) * scale - m);
    s = warp_sum(s);
    for (int j = lane; j < T; j += 32) y[j] = f2x(j <= t ? expf(x2f(x[j]) * scale - m) / s : 0.f);
}

// dpreatt = scale * att * (datt - sum(att * datt)) over t2 <= t, zero above; one warp per row.
extern "C" __global__ void softmax_backward(floatX* dpreatt, const floatX* datt, const floatX* att, int rows, int T,
                                            float scale) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T;
    const floatX* a = att + (i64) row * T;
    const floatX* g = datt + (i64) row * T;
    float dot = 0.f;
    for (int j = lane; j <= t; j += 32) dot += x2f(a[j]) * x2f(g[j]);
    dot = warp_sum(dot);
    floatX* d = dpreatt + (i64) row * T;
    for (int j = lane; j < T; j += 32) d[j] = f2x(j <= t ? scale * x2f(a[j]) * (x2f(g[j]) - dot) : 0.f);
}

// One new position per sequence with a KV cache (B,NH,maxT,hs): one warp per (b, h); stores this
// position's k and v, then out (B,1,C) = softmax(q . k[0..pos] / sqrt(hs)) v[0..pos]. pos < 2048.
extern "C" __global__ void attention_decode(floatX* out, const floatX* qkv, floatX* kcache, floatX* vcache,
                                            int B, int pos, int maxT, int C, int NH) {
    __shared__ float w[2048];
    int bh = blockIdx.x, lane = threadIdx.x;
    int b = bh / NH, h = bh % NH, hs = C / NH;
    const floatX* q = qkv + (i64) b * 3 * C + (i64) h * hs;
    floatX* kc = kcache + (i64) bh * maxT * hs;
    floatX* vc = vcache + (i64) bh * maxT * hs;
    for (int i = lane; i < hs; i += 32) {
        kc[(i64) pos * hs + i] = q[C + i];
        vc[(i64) pos * hs + i] = q[2 * C + i];
    }
    __syncwarp();
    float scale = 1.0f / sqrtf((float) hs);
    float m = -3.402823466e38f;
    for (int t = lane; t <= pos; t += 32) {
        float s = 0.f;
        for (int i = 0; i < hs; i++) s += x2f(q[i]) * x2f(kc[(i64) t * hs + i]);
        w[t] = s * scale;
        m = fmaxf(m, w[t]);
    }
    m = warp_max(m);
    float sum = 0.f;
    for (int t = lane; t <= pos; t += 32) { w[t] = expf(w[t] - m); sum += w[t]; }
    sum = warp_sum(sum);
    __syncwarp();
    for (int i = lane; i < hs; i += 32) {
        float acc = 0.f;
        for (int t = 0; t <= pos; t++) acc += w[t] * x2f(vc[(i64) t * hs + i]);
        out[(i64) b * C + (i64) h * hs + i] = f2x(acc / sum);
    }
}
