// Token + position embedding.

// out (B,T,C) = wte[tokens] + wpe[t]; one thread per element.
extern "C" __global__ void encoder_forward(float* out, const int* tokens, const float* wte, const float* wpe,
                                           int B, int T, int C) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) B * T * C) return;
    i64 bt = idx / C;
    int c = (int) (idx % C);
    int t = (int) (bt % T);
    out[idx] = wte[(i64) tokens[bt] * C + c] + wpe[(i64) t * C + c];
}

// dwte +=, dwpe +=; one thread per channel walking every position in order: deterministic, and the
// same summation order as the CPU backend.
extern "C" __global__ void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* tokens,
                                            int B, int T, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (i64 bt = 0; bt < (i64) B * T; bt++) {
        int t = (int) (bt % T);
        float d = dout[bt * C + c];
        dwte[(i64) tokens[bt] * C + c] += d;
        dwpe[(i64) t * C + c] += d;
    }
}
