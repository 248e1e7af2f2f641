// The parts of a linear layer around cuBLAS's GEMMs: the bias, and precision conversions.

// out (N,OC) += bias (OC); one 128-bit pack per thread when OC is a whole number of packs.
extern "C" __global__ void add_bias(floatX* out, const floatX* bias, int N, int OC) {
    i64 i = ((i64) blockIdx.x * blockDim.x + threadIdx.x) * PACK, n = (i64) N * OC;
    if (i >= n) return;
    bool vec = OC % PACK == 0 && aligned16(out) && aligned16(bias);
    xpack o = load_pack(out, i, n, vec);
    for (int k = 0; k < PACK && i + k < n; k++) o.v[k] = f2x(x2f(o.v[k]) + x2f(bias[(i + k) % OC]));
    store_pack(out, i, n, vec, o);
}

// float -> bfloat16, round to nearest even (the weights' compute copy; GEMM inputs).
extern "C" __global__ void to_bf16(bf16_t* out, const float* in, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) out[i] = float_to_bf16(in[i]);
}

// Bias gradient, stage one: partial[block] (OC floats) = the column sums of dout over this block's
// chunk of BIAS_ROWS rows, rows in order, threads across the row's packs (then sum_partials from
// norm.cu's family adds the chunks in order).
#define BIAS_ROWS 32
extern "C" __global__ void bias_partial(float* partial, const floatX* dout, int N, int OC) {
    int r0 = blockIdx.x * BIAS_ROWS, rows = min(BIAS_ROWS, N - r0);
    bool vec = OC % PACK == 0 && aligned16(dout);
    for (int i = threadIdx.x * PACK; i < OC; i += blockDim.x * PACK) {
        float cs[PACK];
        for (int k = 0; k < PACK; k++) cs[k] = 0.f;
        for (int j = 0; j < rows; j++) {
            xpack g = load_pack(dout + (i64) (r0 + j) * OC, i, OC, vec);
            for (int k = 0; k < PACK; k++) cs[k] += x2f(g.v[k]);
        }
        float* p = partial + (i64) blockIdx.x * OC;
        for (int k = 0; k < PACK && i + k < OC; k++) p[i + k] = cs[k];
    }
}
