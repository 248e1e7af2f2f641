// The modern attention's preprocessing of q and k, in place over qkv (B,T,3C) (v untouched): per
// head of hs = C/NH, an optional RMS norm without weights (rstd (B,T,2NH) saved in float, q's heads
// then k's), then an optional rotary embedding. One warp per (row, q or k, head); lane l takes the
// pairs (j, j + hs/2) for j = l, l + 32, ... The angles come from the host as a table rope (P, hs/2)
// of (cos, sin) float pairs for positions 0..P-1 (gpt2.backend.Backend.ropeCosSin, in double rounded
// to float, as the CPU backend's), so both backends rotate by the same numbers.
//   n = x * rstd;  y1 = n1 cos + n2 sin,  y2 = n2 cos - n1 sin
// Backward (in place over dqkv, activation gradients =): the rotation's transpose on the gradient
// and on the saved outputs (recovering n), then dx = rstd (dn - n mean(dn n)).

// The rotation's transpose on the pair (a, b) by the table entry cs[2j], cs[2j+1] (cos, sin).
__device__ __forceinline__ void unrotate(float& a, float& b, const float* cs, int j) {
    float c = cs[2 * j], s = cs[2 * j + 1];
    float e1 = a * c - b * s, e2 = a * s + b * c;
    a = e1;
    b = e2;
}

extern "C" __global__ void qknorm_rope_forward(floatX* qkv, float* rstd, const float* rope, int BT, int T, int C,
                                               int NH, int pos0, float eps) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= BT * 2 * NH) return;
    int hs = C / NH, half = hs / 2, bt = w / (2 * NH), part = (w / NH) % 2, h = w % NH;
    floatX* x = qkv + (i64) bt * 3 * C + (i64) part * C + (i64) h * hs;
    float r = 1.f;
    if (rstd) {
        float ss = 0.f;
        for (int j = lane; j < half; j += 32) {
            float a = x2f(x[j]), b = x2f(x[j + half]);
            ss += a * a + b * b;
        }
        r = 1.0f / sqrtf(warp_sum(ss) / hs + eps);
        if (lane == 0) rstd[w] = r;
    }
    const float* cs = rope ? rope + 2 * (i64) (pos0 + bt % T) * half : nullptr;
    for (int j = lane; j < half; j += 32) {
        float n1 = x2f(x[j]), n2 = x2f(x[j + half]);
        if (rstd) { n1 *= r; n2 *= r; }
        if (cs) {
            float c = cs[2 * j], s = cs[2 * j + 1];
            float y1 = n1 * c + n2 * s, y2 = n2 * c - n1 * s;
            n1 = y1;
            n2 = y2;
        }
        x[j] = f2x(n1);
        x[j + half] = f2x(n2);
    }
}

// dqkv (B,T,3C) in place (the q and k parts); qkv the forward's outputs; rstd or null; rope the
// table of the forward's positions (null without rotation); positions 0..T-1 (training).
extern "C" __global__ void qknorm_rope_backward(floatX* dqkv, const floatX* qkv, const float* rstd, const float* rope,
                                                int BT, int T, int C, int NH) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= BT * 2 * NH) return;
    int hs = C / NH, half = hs / 2, bt = w / (2 * NH), part = (w / NH) % 2, h = w % NH;
    i64 base = (i64) bt * 3 * C + (i64) part * C + (i64) h * hs;
    floatX* d = dqkv + base;
    const floatX* y = qkv + base;
    const float* cs = rope ? rope + 2 * (i64) (bt % T) * half : nullptr;
    float r = rstd ? rstd[w] : 1.f, dot = 0.f;
    for (int j = lane; j < half; j += 32) {   // the transpose of the rotation, then dot(dn, n)
        float d1 = x2f(d[j]), d2 = x2f(d[j + half]), n1 = x2f(y[j]), n2 = x2f(y[j + half]);
        if (cs) {
            unrotate(d1, d2, cs, j);
            unrotate(n1, n2, cs, j);
        }
        dot += d1 * n1 + d2 * n2;
        if (!rstd) { d[j] = f2x(d1); d[j + half] = f2x(d2); }
    }
    if (!rstd) return;
    float mean = warp_sum(dot) / hs;
    for (int j = lane; j < half; j += 32) {   // each lane re-reads only the pairs it read
        float d1 = x2f(d[j]), d2 = x2f(d[j + half]), n1 = x2f(y[j]), n2 = x2f(y[j + half]);
        if (cs) {
            unrotate(d1, d2, cs, j);
            unrotate(n1, n2, cs, j);
        }
        d[j] = f2x(r * (d1 - n1 * mean));
        d[j + half] = f2x(r * (d2 - n2 * mean));
    }
}
