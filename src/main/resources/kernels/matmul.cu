// The parts of a linear layer around cuBLAS's GEMMs: the bias.

// out (N,OC) += bias (OC)
extern "C" __global__ void add_bias(float* out, const float* bias, int N, int OC) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) N * OC) return;
    out[idx] += bias[idx % OC];
}

// dbias (OC) += column sums of dout (N,OC); one thread per column (deterministic).
extern "C" __global__ void bias_backward(float* dbias, const float* dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float s = 0.f;
    for (i64 n = 0; n < N; n++) s += dout[n * OC + o];
    dbias[o] += s;
}
