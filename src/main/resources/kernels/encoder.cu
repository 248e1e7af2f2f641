// Token + position embedding.

// out (B,T,C) = wte[tokens] + wpe[t]; one thread per element.
extern "C" __global__ void encoder_forward(floatX* out, const int* tokens, const floatX* wte, const floatX* wpe,
                                           int B, int T, int C) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) B * T * C) return;
    i64 bt = idx / C;
    int c = (int) (idx % C);
    int t = (int) (bt % T);
    out[idx] = f2x(x2f(wte[(i64) tokens[bt] * C + c]) + x2f(wpe[(i64) t * C + c]));
}

// dwte +=, dwpe +=; one thread per channel walking every position in order: deterministic, and the
// same summation order as the CPU backend.
extern "C" __global__ void encoder_backward(float* dwte, float* dwpe, const floatX* dout, const int* tokens,
                                            int B, int T, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (i64 bt = 0; bt < (i64) B * T; bt++) {
        int t = (int) (bt % T);
        float d = x2f(dout[bt * C + c]);
        dwte[(i64) tokens[bt] * C + c] += d;
        dwpe[(i64) t * C + c] += d;
    }
}
