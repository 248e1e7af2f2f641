// A CPU stand-in for the CUDA execution model, so tests on machines without a GPU can run the
// kernels of src/main/resources/kernels/*.cu (compiled by g++ for the host, see KernelEmulator).
// Blocks run one after another. In a kernel without barriers each thread runs to its end in turn;
// otherwise the threads of a block are fibers that switch only at __syncthreads, __syncwarp and
// warp shuffles (entered once on their own stack, then switched by _setjmp/_longjmp: no system
// calls). Since one block runs at a time, __shared__ arrays
// can be plain static storage. Warp shuffles exchange values among the 32 lanes of a warp after
// every live lane has arrived (double-buffered, so a lane that runs ahead cannot overwrite a value
// not yet read); a barrier no thread can pass aborts with a message. The warp-level matrix
// instructions of common.cuh (mma.m16n8k16 with bf16 inputs, ldmatrix) are such exchanges too:
// each lane deposits its fragment registers (or its row address), and once the whole warp has
// arrived each lane computes its own result registers from the others' deposits, with the
// fragment layouts the PTX ISA documents.
#include <setjmp.h>
#include <ucontext.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <functional>
#include <vector>
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

// The emulator's own machinery is not what the stand-ins' instrumented build checks (see EMU_CHECK_ACCESS below).
#ifdef EMU_CHECK_ACCESS
#define EMU_INTERNAL __attribute__((no_sanitize_thread))
#else
#define EMU_INTERNAL
#endif

namespace emu {

enum State { READY, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
    ucontext_t start;     // (not x86-64) used once, to enter the fiber on its own stack
    jmp_buf at;           // where it waits (switches are _setjmp/_longjmp: no system call)
    bool started;
    State state;
    unsigned int round;   // warp exchanges done, for the double buffer
    uint32_t words[2][6]; // what this lane deposited in the last two exchanges
    // cp.async: the copies this thread queued, and where each committed group ends
    struct Copy { void* dst; const void* src; bool valid; };
    std::vector<Copy> copies;
    std::vector<size_t> groups;
};

static const size_t STACK_BYTES = 128 * 1024;
#define EMU_DYNAMIC_SHARED (96 * 1024)
static const int MAX_THREADS = 1024;
static Fiber fibers[MAX_THREADS];
static char* stacks[MAX_THREADS];
static int current;
static bool in_fibers;
static jmp_buf scheduler;
static ucontext_t scheduler_uc;
static const std::function<void()>* body;
static const char* kernel_name = "";

EMU_INTERNAL static void entry() {
    (*body)();
    fibers[current].state = DONE;
    _longjmp(scheduler, 1);
}

EMU_INTERNAL static void wait(State s) {
    if (!in_fibers) {
        fprintf(stderr, "emulator: kernel %s synchronizes but was launched as one without barriers\n", kernel_name);
        abort();
    }
    fibers[current].state = s;
    if (!_setjmp(fibers[current].at)) _longjmp(scheduler, 1);
}

// Deposits `bytes` of this lane's data, waits for the whole warp and returns the slot in which
// every lane's deposit can be read; call done() after reading.
EMU_INTERNAL static unsigned int deposit(const void* data, size_t bytes) {
    unsigned int slot = fibers[current].round & 1u;
    memcpy(fibers[current].words[slot], data, bytes);
    wait(AT_WARP);
    return slot;
}

EMU_INTERNAL static void done() { fibers[current].round++; }

EMU_INTERNAL static float shfl_xor(float v, int mask) {
    unsigned int slot = deposit(&v, 4);
    float r;
    memcpy(&r, fibers[current ^ mask].words[slot], 4);
    done();
    return r;
}

static inline float bf16_value(uint32_t word, int high) {
    return __uint_as_float((high ? word >> 16 : word & 0xffffu) << 16);
}

// d += A B for the warp (mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32): A from the lanes' a[4], B from
// their b[2], this lane's four D elements summed in k order in float (the products of two bf16 are
// exact in float).
EMU_INTERNAL static void mma_bf16_16816(float* d, const unsigned* a, const unsigned* b) {
    uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
    unsigned int slot = deposit(mine, sizeof mine);
    int lane = current & 31, base = current - lane, g = lane >> 2, c = lane & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * c + (i & 1);
        float s = 0.f;
        for (int k = 0; k < 16; k++) {
            // A[row][k]: lane 4 (row % 8) + (k % 8) / 2, register (row >= 8) + 2 (k >= 8)
            uint32_t aw = fibers[base + 4 * (row & 7) + ((k & 7) >> 1)].words[slot][(row >> 3) + 2 * (k >> 3)];
            // B[k][col]: lane 4 col + (k % 8) / 2, register 4 + (k >= 8)
            uint32_t bw = fibers[base + 4 * col + ((k & 7) >> 1)].words[slot][4 + (k >> 3)];
            s += bf16_value(aw, k & 1) * bf16_value(bw, k & 1);
        }
        d[i] += s;
    }
    done();
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane 8i + j gave row j of matrix i.
EMU_INTERNAL static void ldmatrix(unsigned* r, const void* p, bool trans) {
    unsigned int slot = deposit(&p, sizeof p);
    int lane = current & 31, base = current - lane, g = lane >> 2, c = lane & 3;
    for (int i = 0; i < 4; i++) {
        const uint16_t* rows[8];
        for (int j = 0; j < 8; j++) memcpy(&rows[j], fibers[base + 8 * i + j].words[slot], sizeof(void*));
        uint32_t lo = trans ? rows[2 * c][g] : rows[g][2 * c];
        uint32_t hi = trans ? rows[2 * c + 1][g] : rows[g][2 * c + 1];
        r[i] = lo | (hi << 16);
    }
    done();
}

#if defined(__x86_64__)
// Enters entry() on a fresh stack (16-byte aligned top); entry never returns here.
static void __attribute__((noinline)) start_on(char* top) {
    asm volatile("mov %0, %%rsp\n\tcall *%1\n\tud2" : : "r"(top), "r"(&entry) : "memory");
}
#endif

EMU_INTERNAL static void resume(int i) {
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

EMU_INTERNAL static void run_block(int threads) {
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
        fibers[i].copies.clear();
        fibers[i].groups.clear();
    }
    // Warps run one after another, each as far as it can (through its warp exchanges) before the
    // next starts, in index order between one pair of block barriers and in reverse order between
    // the next (starting with the block's parity, so neighbouring blocks run each stretch both
    // ways). A warp that reads what another warp writes without a barrier between (a race on a
    // GPU) then reads the value from before the write in one of the two orders, and the kernel's
    // results change.
    int warps = (threads + 31) / 32;
    for (unsigned int pass = (blockIdx.x + blockIdx.y) & 1u;; pass++) {
        for (int k = 0; k < warps; k++) {
            int w = ((pass & 1u) ? warps - 1 - k : k) * 32, end = min(threads, w + 32);
            for (;;) {
                for (int k2 = w; k2 < end; k2++) {
                    int i = (pass & 1u) ? end - 1 - (k2 - w) : k2;  // the lanes too, both ways
                    if (fibers[i].state == READY) resume(i);
                }
                bool at_warp = true, any = false;
                for (int i = w; i < end; i++) {
                    if (fibers[i].state == DONE) continue;
                    if (fibers[i].state != AT_WARP) { at_warp = false; break; }
                    any = true;
                }
                if (!at_warp || !any) break;
                for (int i = w; i < end; i++) if (fibers[i].state == AT_WARP) fibers[i].state = READY;
            }
        }
        bool all_done = true, block_ready = true;
        for (int i = 0; i < threads; i++) {
            if (fibers[i].state != DONE) all_done = false;
            if (fibers[i].state != DONE && fibers[i].state != AT_BLOCK) block_ready = false;
        }
        if (all_done) return;
        if (!block_ready) {
            fprintf(stderr, "emulator: kernel %s block (%u,%u): threads wait at barriers no one can pass\n",
                    kernel_name, blockIdx.x, blockIdx.y);
            abort();
        }
        for (int i = 0; i < threads; i++) if (fibers[i].state == AT_BLOCK) fibers[i].state = READY;
    }
}

// synchronizes: the kernel (or a helper it calls) has barriers or warp shuffles, so its threads
// run as fibers; otherwise each thread runs to its end in turn, as a plain call.
EMU_INTERNAL static void launch(const char* name, bool synchronizes, int gx, int gy, int bx, const std::function<void()>& k) {
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
static inline void mma_bf16_16816(float* d, const unsigned* a, const unsigned* b) { emu::mma_bf16_16816(d, a, b); }
static inline void ldmatrix_x4(unsigned* r, const void* p) { emu::ldmatrix(r, p, false); }
static inline void ldmatrix_x4_trans(unsigned* r, const void* p) { emu::ldmatrix(r, p, true); }
static inline float fast_exp2(float x) { return exp2f(x); }
// cp.async at its two extremes, alternating between blocks (decorrelated from the warp order's
// parity): in some blocks a copy lands as soon as it is issued, so a buffer refilled while other
// warps still read it changes their results; in the others it lands only when a wait lets it, so
// reading the destination before the wait (or, from another warp, before the barrier after it)
// sees the old contents.
static inline void cp_async16(void* dst, const void* src, bool valid) {
    if (((blockIdx.x >> 1) + blockIdx.y) & 1u) {
        if (valid) memcpy(dst, src, 16);
        else memset(dst, 0, 16);
        return;
    }
    emu::fibers[emu::current].copies.push_back({dst, src, valid});
}
static inline void cp_async_commit() {
    emu::Fiber& f = emu::fibers[emu::current];
    f.groups.push_back(f.copies.size());
}
template <int N>
static inline void cp_async_wait() {
    emu::Fiber& f = emu::fibers[emu::current];
    if (f.groups.size() <= (size_t) N) return;
    size_t upto = f.groups[f.groups.size() - N - 1];
    for (size_t i = 0; i < upto; i++) {
        if (f.copies[i].valid) memcpy(f.copies[i].dst, f.copies[i].src, 16);
        else memset(f.copies[i].dst, 0, 16);
    }
    f.copies.erase(f.copies.begin(), f.copies.begin() + upto);
    f.groups.erase(f.groups.begin(), f.groups.end() - N);
    for (size_t& g : f.groups) g -= upto;
}
// Dynamic shared memory: one static area (blocks run one at a time), checked against the launch's size.
#define DYNAMIC_SHARED(name) static __align__(16) unsigned char name[EMU_DYNAMIC_SHARED]

#ifdef EMU_CHECK_ACCESS
// The stand-ins' build (CudaStandins) compiles the kernels with -fsanitize=thread and links them
// without its runtime: every load and store the compiler emits calls __tsan_{read,write}N(addr)
// below (ThreadSanitizer's instrumentation, unlike AddressSanitizer's, keeps a store to an address
// just loaded from, which a read-modify-write needs to be seen as a write). An access inside one of
// the launch's buffer views widens that view's read or write hull (what the race detector records
// for the kernel); one inside a device allocation but outside every
// view (or in the padding after an allocation's end) is out of bounds: the first is kept, with a
// count, for the stand-in driver to report. Anything else (shared memory, a thread's locals, the
// emulator's own state) is not device memory and passes. A kernel that takes a table of device
// addresses (an i64* parameter: sum_partials) reaches buffers no argument names: there an access in
// any live allocation is allowed, and the allocation becomes a view of its own.
namespace emu_check {
struct View { uint64_t lo, hi, rlo, rhi, wlo, whi; };
static View views[32];
static int nviews;
static const uint64_t* allocs;  // (base, end, end rounded up) triples, sorted by base
static size_t nallocs;
static uint64_t fault_addr, fault_bytes, fault_write, faults;
static int indirect, last;
static void access(uint64_t a, uint64_t n, int write);
// 4 KB pages found to hold no device memory during this launch (shared memory, a thread's stack):
// a direct-mapped cache, so such accesses skip the allocation search
static uint64_t host_pages[256];

__attribute__((no_sanitize_thread)) static void outside(uint64_t a, uint64_t n, int write) {
    uint64_t page = a >> 12;
    size_t lo = 0, hi = nallocs;
    while (lo < hi) {  // the last allocation starting at or before a
        size_t mid = (lo + hi) / 2;
        if (allocs[3 * mid] <= a) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0 || a >= allocs[3 * (lo - 1) + 2]) {  // not device memory
        // the whole page is host memory if no allocation reaches into it
        uint64_t start = page << 12, end = start + 4096;
        bool host = (lo == 0 || allocs[3 * (lo - 1) + 2] <= start) && (lo == nallocs || allocs[3 * lo] >= end);
        if (host) host_pages[page & 255] = page;
        return;
    }
    const uint64_t* alloc = allocs + 3 * (lo - 1);
    if (indirect && a + n <= alloc[1] && nviews < 32) {
        views[nviews++] = {alloc[0], alloc[1], UINT64_MAX, 0, UINT64_MAX, 0};
        access(a, n, write);
        return;
    }
    if (faults++ == 0) {
        fault_addr = a;
        fault_bytes = n;
        fault_write = (uint64_t) write;
    }
}

__attribute__((no_sanitize_thread)) static inline void access(uint64_t a, uint64_t n, int write) {
    uint64_t page = a >> 12;
    if (host_pages[page & 255] == page && (a + n - 1) >> 12 == page) return;  // shared memory, locals
    for (int k = 0; k < nviews; k++) {
        int i = k == 0 ? last : k == last ? 0 : k;  // the view hit last first
        View& v = views[i];
        if (a >= v.lo && a + n <= v.hi) {
            last = i;
            if (write) {
                if (a < v.wlo) v.wlo = a;
                if (a + n > v.whi) v.whi = a + n;
            } else {
                if (a < v.rlo) v.rlo = a;
                if (a + n > v.rhi) v.rhi = a + n;
            }
            return;
        }
    }
    outside(a, n, write);
}
}  // namespace emu_check

// hidden: the instrumented code calls them directly, not through the PLT
#define EMU_CHECK_FN extern "C" __attribute__((no_sanitize_thread, visibility("hidden")))
#define EMU_CHECK_CALLBACKS(N)                                                                  \
    EMU_CHECK_FN void __tsan_read##N(void* a) { emu_check::access((uint64_t) a, N, 0); }            \
    EMU_CHECK_FN void __tsan_write##N(void* a) { emu_check::access((uint64_t) a, N, 1); }           \
    EMU_CHECK_FN void __tsan_unaligned_read##N(void* a) { emu_check::access((uint64_t) a, N, 0); }  \
    EMU_CHECK_FN void __tsan_unaligned_write##N(void* a) { emu_check::access((uint64_t) a, N, 1); } \
    EMU_CHECK_FN void __tsan_volatile_read##N(void* a) { emu_check::access((uint64_t) a, N, 0); }   \
    EMU_CHECK_FN void __tsan_volatile_write##N(void* a) { emu_check::access((uint64_t) a, N, 1); }
EMU_CHECK_CALLBACKS(1)
EMU_CHECK_CALLBACKS(2)
EMU_CHECK_CALLBACKS(4)
EMU_CHECK_CALLBACKS(8)
EMU_CHECK_CALLBACKS(16)
EMU_CHECK_FN void __tsan_read_range(void* a, unsigned long n) { emu_check::access((uint64_t) a, n, 0); }
EMU_CHECK_FN void __tsan_write_range(void* a, unsigned long n) { emu_check::access((uint64_t) a, n, 1); }
EMU_CHECK_FN void __tsan_init() {}
EMU_CHECK_FN void __tsan_func_entry(void*) {}
EMU_CHECK_FN void __tsan_func_exit() {}
EMU_CHECK_FN void __tsan_vptr_update(void**, void*) {}

// Before a launch: its views as (lo, hi) pairs, the device allocations, and whether it reads a table of addresses.
extern "C" __attribute__((no_sanitize_thread)) void emu_check_begin(const uint64_t* v, int n, const uint64_t* a, size_t na,
                                                                      int indirect) {
    emu_check::indirect = indirect;
    emu_check::nviews = n;
    emu_check::last = 0;
    memset(emu_check::host_pages, 0, sizeof emu_check::host_pages);
    for (int i = 0; i < n; i++) emu_check::views[i] = {v[2 * i], v[2 * i + 1], UINT64_MAX, 0, UINT64_MAX, 0};
    emu_check::allocs = a;
    emu_check::nallocs = na;
    emu_check::faults = 0;
}

// After it: per view (lo, hi, read lo, read hi, write lo, write hi), hi <= lo where none, the views
// given first, then those an address table reached; fault = (address, bytes, write, count).
// Returns the number of views.
extern "C" __attribute__((no_sanitize_thread)) int emu_check_end(uint64_t* rw, uint64_t* fault) {
    int n = emu_check::nviews;
    for (int i = 0; i < n; i++) {
        const emu_check::View& v = emu_check::views[i];
        uint64_t* o = rw + 6 * i;
        o[0] = v.lo; o[1] = v.hi; o[2] = v.rlo; o[3] = v.rhi; o[4] = v.wlo; o[5] = v.whi;
    }
    fault[0] = emu_check::fault_addr; fault[1] = emu_check::fault_bytes; fault[2] = emu_check::fault_write;
    fault[3] = emu_check::faults;
    emu_check::nviews = 0;
    return n;
}
#endif
