// Shared device helpers, prepended to every kernel file by the loader (no CUDA headers needed).
// Gradient rule for every kernel: parameter gradients +=, activation gradients =,
// except the residual stream (norm backward dinp +=).
typedef long long i64;
typedef unsigned long long u64;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// SplitMix64's output function: the dropout hash, bit for bit the same as gpt2.backend.Dropout.
__device__ __forceinline__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// 0 or 1/(1-p) for element i of the dropout site with this key.
__device__ __forceinline__ float dropout_scale(i64 key, i64 i, float p) {
    u64 z = mix64((u64) key + (u64) i * 0x9E3779B97F4A7C15ULL);
    float u = (float) (z >> 40) * (1.0f / 16777216.0f);
    return u >= p ? 1.0f / (1.0f - p) : 0.0f;
}
