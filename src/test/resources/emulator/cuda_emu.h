// A CPU stand-in for the CUDA execution model, so tests on machines without a GPU can run the
// kernels of src/main/resources/kernels/*.cu (compiled by g++ for the host, see KernelEmulator).
// Blocks run one after another. In a kernel without barriers each thread runs to its end in turn;
// otherwise the threads of a block are fibers that switch only at __syncthreads, __syncwarp and
// warp shuffles (entered once on their own stack, then switched by _setjmp/_longjmp: no system
// calls). Since one block runs at a time, __shared__ arrays
// can be plain static storage. Warp shuffles exchange values among the 32 lanes of a warp after
// every live lane has arrived (double-buffered, so a lane that runs ahead cannot overwrite a value
// not yet read); a barrier no thread can pass aborts with a message.
#include <setjmp.h>
#include <ucontext.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <functional>
using std::max;
using std::min;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned int x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
static uint3 threadIdx, blockIdx, blockDim, gridDim;

static inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }

namespace emu {

enum State { READY, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
    ucontext_t start;     // (not x86-64) used once, to enter the fiber on its own stack
    jmp_buf at;           // where it waits (switches are _setjmp/_longjmp: no system call)
    bool started;
    State state;
    unsigned int round;   // warp exchanges done, for the double buffer
    float value[2];
};

static const size_t STACK_BYTES = 128 * 1024;
static const int MAX_THREADS = 1024;
static Fiber fibers[MAX_THREADS];
static char* stacks[MAX_THREADS];
static int current;
static bool in_fibers;
static jmp_buf scheduler;
static ucontext_t scheduler_uc;
static const std::function<void()>* body;
static const char* kernel_name = "";

static void entry() {
    (*body)();
    fibers[current].state = DONE;
    _longjmp(scheduler, 1);
}

static void wait(State s) {
    if (!in_fibers) {
        fprintf(stderr, "emulator: kernel %s synchronizes but was launched as one without barriers\n", kernel_name);
        abort();
    }
    fibers[current].state = s;
    if (!_setjmp(fibers[current].at)) _longjmp(scheduler, 1);
}

static float shfl_xor(float v, int mask) {
    int me = current;
    unsigned int slot = fibers[me].round & 1u;
    fibers[me].value[slot] = v;
    wait(AT_WARP);
    float r = fibers[me ^ mask].value[slot];
    fibers[me].round++;
    return r;
}

#if defined(__x86_64__)
// Enters entry() on a fresh stack (16-byte aligned top); entry never returns here.
static void __attribute__((noinline)) start_on(char* top) {
    asm volatile("mov %0, %%rsp\n\tcall *%1\n\tud2" : : "r"(top), "r"(&entry) : "memory");
}
#endif

static void resume(int i) {
    current = i;
    threadIdx.x = (unsigned int) i;
    if (_setjmp(scheduler)) return;  // back from the fiber
    if (!fibers[i].started) {
        fibers[i].started = true;
#if defined(__x86_64__)
        start_on((char*) (((uintptr_t) stacks[i] + STACK_BYTES) & ~(uintptr_t) 15));
#else
        swapcontext(&scheduler_uc, &fibers[i].start);
#endif
    } else {
        _longjmp(fibers[i].at, 1);
    }
}

static void run_block(int threads) {
    for (int i = 0; i < threads; i++) {
        if (!stacks[i]) stacks[i] = (char*) malloc(STACK_BYTES);
#if !defined(__x86_64__)
        getcontext(&fibers[i].start);
        fibers[i].start.uc_stack.ss_sp = stacks[i];
        fibers[i].start.uc_stack.ss_size = STACK_BYTES;
        fibers[i].start.uc_link = nullptr;
        makecontext(&fibers[i].start, entry, 0);
#endif
        fibers[i].started = false;
        fibers[i].state = READY;
        fibers[i].round = 0;
    }
    for (;;) {
        for (int i = 0; i < threads; i++) if (fibers[i].state == READY) resume(i);
        bool all_done = true, block_ready = true, released = false;
        for (int i = 0; i < threads; i++) {
            if (fibers[i].state != DONE) all_done = false;
            if (fibers[i].state != DONE && fibers[i].state != AT_BLOCK) block_ready = false;
        }
        if (all_done) return;
        if (block_ready) {
            for (int i = 0; i < threads; i++) if (fibers[i].state == AT_BLOCK) fibers[i].state = READY;
            released = true;
        }
        for (int w = 0; w < threads; w += 32) {
            int end = min(threads, w + 32);
            bool ready = true, any = false;
            for (int i = w; i < end; i++) {
                if (fibers[i].state == DONE) continue;
                if (fibers[i].state != AT_WARP) { ready = false; break; }
                any = true;
            }
            if (ready && any) {
                for (int i = w; i < end; i++) if (fibers[i].state == AT_WARP) fibers[i].state = READY;
                released = true;
            }
        }
        if (!released) {
            fprintf(stderr, "emulator: kernel %s block (%u,%u): threads wait at barriers no one can pass\n",
                    kernel_name, blockIdx.x, blockIdx.y);
            abort();
        }
    }
}

// synchronizes: the kernel (or a helper it calls) has barriers or warp shuffles, so its threads
// run as fibers; otherwise each thread runs to its end in turn, as a plain call.
static void launch(const char* name, bool synchronizes, int gx, int gy, int bx, const std::function<void()>& k) {
    if (bx > MAX_THREADS || bx % 32 != 0) {
        fprintf(stderr, "emulator: kernel %s launched with %d threads per block\n", name, bx);
        abort();
    }
    kernel_name = name;
    body = &k;
    in_fibers = synchronizes;
    gridDim = {(unsigned int) gx, (unsigned int) gy, 1u};
    blockDim = {(unsigned int) bx, 1u, 1u};
    threadIdx = {0u, 0u, 0u};
    for (int y = 0; y < gy; y++) {
        for (int x = 0; x < gx; x++) {
            blockIdx = {(unsigned int) x, (unsigned int) y, 0u};
            if (synchronizes) {
                run_block(bx);
            } else {
                for (int t = 0; t < bx; t++) {
                    threadIdx.x = (unsigned int) t;
                    k();
                }
            }
        }
    }
}

static inline float f32(int64_t bits) { return __uint_as_float((unsigned int) bits); }

}  // namespace emu

static inline float __shfl_xor_sync(unsigned int, float v, int mask) { return emu::shfl_xor(v, mask); }
static inline void __syncthreads() { emu::wait(emu::AT_BLOCK); }
static inline void __syncwarp() { emu::wait(emu::AT_WARP); }
