// The parts of a linear layer around cuBLAS's GEMMs: the bias, and precision conversions.

// out (N,OC) += bias (OC)
extern "C" __global__ void add_bias(floatX* out, const floatX* bias, int N, int OC) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) N * OC) return;
    out[idx] = f2x(x2f(out[idx]) + x2f(bias[idx % OC]));
}

// float -> bfloat16, round to nearest even (the weights' compute copy; GEMM inputs).
extern "C" __global__ void to_bf16(bf16_t* out, const float* in, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) out[i] = float_to_bf16(in[i]);
}

// Bias gradient, stage one: partial[chunk][OC] = column sums of dout over a chunk of rows
// (then sum_partials from norm.cu's family adds the chunks in order).
extern "C" __global__ void bias_partial(float* partial, const floatX* dout, int N, int OC, int rowsPerChunk) {
    int o = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (o >= OC) return;
    i64 r0 = (i64) chunk * rowsPerChunk, r1 = min((i64) N, r0 + rowsPerChunk);
    float s = 0.f;
    for (i64 n = r0; n < r1; n++) s += x2f(dout[n * OC + o]);
    partial[(i64) chunk * OC + o] = s;
}
