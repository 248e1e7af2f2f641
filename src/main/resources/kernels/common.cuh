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

// The storage type, named in the module (the CUDA library stand-ins of the tests read it to pick
// the emulated build of the kernels; a global costs nothing at run time).
#ifdef GPT2_BF16
extern "C" __device__ int gpt2_storage_bf16 = 2;
#else
extern "C" __device__ int gpt2_storage_f32 = 4;
#endif

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

// ---- Warp-level matrix instructions (sm_80 and newer): bf16 inputs, float32 accumulation ----
// mma_bf16_16816(d, a, b): d (16x8, float) += A (16x16) B (16x8), one warp together. Fragments as
// the PTX ISA lays them out for mma.m16n8k16 (lane = 4g + c): each 32-bit word holds two bf16, the
// lower column (A) or row (B) in its low half;
//   A: a[0] = A[g][2c, 2c+1], a[1] = A[g+8][2c, 2c+1], a[2] = A[g][2c+8, 2c+9], a[3] = A[g+8][2c+8, 2c+9]
//   B: b[0] = B[2c, 2c+1][g], b[1] = B[2c+8, 2c+9][g]
//   D: d[0], d[1] = D[g][2c, 2c+1], d[2], d[3] = D[g+8][2c, 2c+1]
// ldmatrix_x4(r, p): four 8x8 bf16 matrices from shared memory; lanes 8i..8i+7 give the addresses of
// matrix i's rows (16 bytes each); r[i] = M_i[g][2c, 2c+1]; ldmatrix_x4_trans: r[i] = M_i[2c, 2c+1][g].
// Defined here for NVRTC and nvcc only; the tests' CPU emulator (emulator/cuda_emu.h, g++) defines
// the same functions as whole-warp exchanges.
#ifdef __CUDACC__
__device__ __forceinline__ void mma_bf16_16816(float* d, const unsigned* a, const unsigned* b) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // the backend only launches tensor-core kernels on sm_80 and newer (older GPUs still compile)
#endif
}

__device__ __forceinline__ unsigned shared_address(const void* p) {
    unsigned r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void ldmatrix_x4(unsigned* r, const void* p) {
#if __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(p)));
#else
    __trap();
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, const void* p) {
#if __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(p)));
#else
    __trap();
#endif
}

// Asynchronous 16-byte copies global -> shared (sm_80+): cp_async16 queues one (zero-fill when
// !valid; src must still be a valid address), cp_async_commit closes this thread's group of queued
// copies, cp_async_wait<N> waits until at most the N most recent groups are still in flight. The
// copied data is this thread's to read after the wait, the block's after a __syncthreads that
// follows it. (The emulator lands a copy at issue in some blocks and at the wait in others.)
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(shared_address(dst)), "l"(src), "r"(valid ? 16 : 0));
#else
    __trap();
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" :: "n"(N));
#endif
}

// Dynamic shared memory (its size given at launch; over 48 KB the executor raises the kernel's limit).
#define DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]

// 2^x on the special-function unit (about 2 ulp; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
#endif

// Two floats as a word of two bf16 (round to nearest even), lo in the low half.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    return (unsigned) bf16_bits(lo) | ((unsigned) bf16_bits(hi) << 16);
}

// A floatX's value as bf16 bits (exact in the bf16 build, rounded to nearest even in the float one).
__device__ __forceinline__ unsigned short x2bf16_bits(floatX v) {
#ifdef GPT2_BF16
    return v.bits;
#else
    return bf16_bits(v);
#endif
}
