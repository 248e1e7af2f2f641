// Muon's element-wise parts and the small kernels around Newton–Schulz's GEMMs (cuBLAS does the
// products), all in float32: the parameter gradients and optimizer state they work on are float.

// buf = mu buf + (1 - mu) g, then grads = (1 - mu) g + mu buf, with g = grads * scale (Nesterov).
extern "C" __global__ void muon_momentum(float* grads, float* buf, i64 N, float mu, float scale) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    float g = grads[i] * scale;
    float b = mu * buf[i] + (1.f - mu) * g;
    buf[i] = b;
    grads[i] = (1.f - mu) * g + mu * b;
}

// y = a x + b y (axpy with b = 1; Newton–Schulz's b A + c A A and a X + B X).
extern "C" __global__ void axpby(float* y, const float* x, float a, float b, i64 N) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    y[i] = b == 1.f ? y[i] + a * x[i] : a * x[i] + b * y[i];
}

// dst = src (R,Cc) times s, or its transpose (Cc,R) when transpose; s = 1 / (sqrt(ss[0]) + 1e-7)
// (the Frobenius norm's inverse, ss the sum of squares) when ss is given, else 1.
extern "C" __global__ void transpose_scale(float* dst, const float* src, const float* ss, int R, int Cc, int transpose) {
    i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (i64) R * Cc) return;
    float s = ss ? (float) (1.0 / (sqrt((double) ss[0]) + 1e-7)) : 1.f;
    i64 row = i / Cc, col = i % Cc;
    dst[transpose ? col * R + row : i] = src[i] * s;
}
