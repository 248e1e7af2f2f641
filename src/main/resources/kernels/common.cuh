// Shared device helpers, prepended to every kernel file by the loader (no CUDA headers needed).
// Gradient rule for every kernel: parameter gradients +=, activation gradients =,
// except the residual stream (norm backward dinp +=).
typedef long long i64;
typedef unsigned long long u64;

// Storage precision. Kernels compute in float; activations, their gradients and the weights'
// compute copy are stored as floatX: float, or bfloat16 when compiled with -DGPT2_BF16 (llm.c's
// mixed precision). Parameter gradients, norm statistics, losses and optimizer state stay float.
// bf16_t is a struct with no conversion to or from float, so in the bf16 build any read or write
// of a floatX that skips x2f / f2x is a compile error (CI compiles both builds).
struct bf16_t { unsigned short bits; };

// float -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN.
__device__ __forceinline__ unsigned short bf16_bits(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short) ((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short) (u >> 16);
}

__device__ __forceinline__ bf16_t float_to_bf16(float f) { bf16_t r; r.bits = bf16_bits(f); return r; }
__device__ __forceinline__ float bf16_to_float(bf16_t v) { return __uint_as_float(((unsigned int) v.bits) << 16); }

#ifdef GPT2_BF16
typedef bf16_t floatX;
__device__ __forceinline__ float x2f(floatX v) { return bf16_to_float(v); }
__device__ __forceinline__ floatX f2x(float f) { return float_to_bf16(f); }
#else
typedef float floatX;
__device__ __forceinline__ float x2f(floatX v) { return v; }
__device__ __forceinline__ floatX f2x(float f) { return f; }
#endif

// 128-bit packed access: PACK consecutive floatX in one 16-byte load or store (8 bf16, 4 float),
// so a warp moves 512 bytes per instruction instead of 64 (bf16) or 128 (float).
#define PACK (16 / (int) sizeof(floatX))
struct __align__(16) xpack { floatX v[PACK]; };

__device__ __forceinline__ bool aligned16(const void* p) { return ((u64) p & 15u) == 0; }

// Elements i..i+PACK-1 of p (those at or past n read as 0): one 128-bit load when vec (p 16-byte
// aligned and i a multiple of PACK) and the whole pack is in range, element by element otherwise.
__device__ __forceinline__ xpack load_pack(const floatX* p, i64 i, i64 n, bool vec) {
    if (vec && i + PACK <= n) return *(const xpack*) (p + i);
    xpack r;
    for (int k = 0; k < PACK; k++) r.v[k] = i + k < n ? p[i + k] : f2x(0.f);
    return r;
}

// Stores the elements of x below n at p + i (one 128-bit store when vec and the pack is in range).
__device__ __forceinline__ void store_pack(floatX* p, i64 i, i64 n, bool vec, xpack x) {
    if (vec && i + PACK <= n) { *(xpack*) (p + i) = x; return; }
    for (int k = 0; k < PACK; k++) if (i + k < n) p[i + k] = x.v[k];
}

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
