// The parts of a linear layer around cuBLAS's GEMMs: the bias.

// out (N,OC) += bias (OC)
extern "C" __global__ void add_bias(float* out, const float* bias, int N, int OC) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) N * OC) return;
    out[idx] += bias[idx % OC];
}

// float -> bfloat16 with round-to-nearest-even (bit operations: no cuda_bf16.h needed); NaN stays NaN.
extern "C" __global__ void to_bf16(unsigned short* out, const float* in, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    unsigned int u = __float_as_uint(in[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) { out[i] = (unsigned short) ((u >> 16) | 0x40u); return; }
    u += 0x7fffu + ((u >> 16) & 1u);
    out[i] = (unsigned short) (u >> 16);
}

// Bias gradient, stage one: partial[chunk][OC] = column sums of dout over a chunk of rows
// (then sum_partials from norm.cu's family adds the chunks in order).
extern "C" __global__ void bias_partial(float* partial, const float* dout, int N, int OC, int rowsPerChunk) {
    int o = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (o >= OC) return;
    i64 r0 = (i64) chunk * rowsPerChunk, r1 = min((i64) N, r0 + rowsPerChunk);
    float s = 0.f;
    for (i64 n = r0; n < r1; n++) s += dout[n * OC + o];
    partial[(i64) chunk * OC + o] = s;
}
