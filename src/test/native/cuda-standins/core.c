// libcuda.so.1 stand-in: the shared state (errors, memory registries, streams, events, graphs),
// the driver API calls the project makes (modules, kernel launches, stream capture, graphs), and
// the CPU GEMM that the cuBLAS stand-ins queue. Kernels run in the tests' emulator of the very
// sources NVRTC compiled (libkernels_{f32,bf16}.so beside this library, built by CudaStandins):
// the module image's storage-type marker (common.cuh) picks the build, the kernel's name its
// launcher, and the emulator's signature string tells which kernelParams are pointers.
#define _GNU_SOURCE
#include "standin.h"

#include <dlfcn.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

// ---------------------------------------------------------------- errors

// every entry point of every stand-in holds it (recursive: a cuBLAS call holds it while it queues)
static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

void standin_lock(void) { pthread_mutex_lock(&lock); }
void standin_unlock(void) { pthread_mutex_unlock(&lock); }
static char last_message[2048];
static int last_code;
static int pending_code, sticky_code;     // a device fault: pending until a synchronizing call surfaces it
static char sticky_message[2048];

int standin_fail(int code, int sticky, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_code = code;
    if (sticky && !pending_code) {
        pending_code = code;
        snprintf(sticky_message, sizeof sticky_message, "%s", last_message);
    }
    fprintf(stderr, "cuda-standin: %s%s\n", sticky ? "device fault (reported at the next synchronizing call; every call "
            "fails after it): " : "", last_message);
    fflush(stderr);
    return code;
}

const char* standin_message(int code) {
    if (sticky_code && code == sticky_code) return sticky_message;
    return code == last_code && last_message[0] ? last_message : NULL;
}

const char* standin_last_message(void) { return sticky_code ? sticky_message : last_message; }

int standin_sticky(void) {
    return sticky_code;
}

int standin_surface(void) {
    if (pending_code && !sticky_code) {
        sticky_code = pending_code;
        fprintf(stderr, "cuda-standin: the device fault surfaces here: %s\n", sticky_message);
        fflush(stderr);
    }
    return sticky_code;
}

int standin_faulted(void) {
    return pending_code;
}

// For the stand-ins' own tests only: forget a device fault (a GPU cannot), so that one JVM can show
// several, and let the host catch up with every stream.
EXPORT void gpt2_standin_clear_fault(void) {
    pthread_mutex_lock(&lock);
    pending_code = sticky_code = 0;
    sticky_message[0] = 0;
    order_host_join_all();
    pthread_mutex_unlock(&lock);
}

// A stand-in-only query, so tests can tell the stand-ins answered and not an installed CUDA.
EXPORT const char* gpt2_cuda_standin(void) {
    return "gpt2-java CUDA stand-ins (CPU)";
}

// ---------------------------------------------------------------- memory registries

typedef struct { uintptr_t base; size_t size; int kind; } region;
static region* live;
static size_t nlive, caplive;
static region freed[4096];  // recently freed, to name a use after free
static size_t nfreed;
static size_t allocated_bytes;
static int sorted_stale = 1;  // device_allocations() must rebuild its table

static region* find(uintptr_t p, int kind) {
    for (size_t i = 0; i < nlive; i++) {
        if ((kind == 0 || live[i].kind == kind) && p >= live[i].base && p < live[i].base + (live[i].size ? live[i].size : 1)) return &live[i];
    }
    return NULL;
}

// The bytes an allocation of this size really takes: rounded up to 256, at least 256.
static size_t padded(size_t bytes) {
    return bytes ? (bytes + 255) & ~(size_t) 255 : 256;
}

int standin_alloc(const char* call, void** out, size_t bytes, int kind) {
    if (out == NULL) return standin_fail(SI_INVALID_VALUE, 0, "%s: the output pointer is NULL", call);
    size_t rounded = padded(bytes);
    void* p = NULL;
    if (posix_memalign(&p, 256, rounded) != 0) {
        return standin_fail(SI_MEMORY_ALLOCATION, 0, "%s: out of memory allocating %zu bytes", call, bytes);
    }
    memset(p, 0xA5, rounded);  // not zero: cudaMalloc does not clear memory
    if (nlive == caplive) {
        caplive = caplive ? 2 * caplive : 256;
        live = realloc(live, caplive * sizeof(region));
    }
    live[nlive++] = (region){(uintptr_t) p, bytes, kind};
    for (size_t i = 0; i < nfreed; i++) {  // the address is live again
        if (freed[i].base < (uintptr_t) p + bytes && (uintptr_t) p < freed[i].base + freed[i].size) freed[i].size = 0;
    }
    if (kind == MEM_DEVICE) allocated_bytes += bytes;
    sorted_stale = 1;
    *out = p;
    return 0;
}

int standin_free(const char* call, void* p, int kind) {
    if (p == NULL) return 0;
    for (size_t i = 0; i < nlive; i++) {
        if (live[i].base == (uintptr_t) p && live[i].kind == kind) {
            freed[nfreed++ % 4096] = live[i];
            if (nfreed > 4096) nfreed = 4096;
            if (kind == MEM_DEVICE) allocated_bytes -= live[i].size;
            if (kind == MEM_DEVICE) order_forget(live[i].base);
            else order_pinned_forget(p, live[i].size);
            live[i] = live[--nlive];
            sorted_stale = 1;
            free(p);
            return 0;
        }
    }
    region* r = find((uintptr_t) p, 0);
    if (r) return standin_fail(SI_INVALID_VALUE, 0, "%s: 0x%lx is inside a %s allocation, not its start (or of the wrong kind)",
                               call, (unsigned long) (uintptr_t) p, r->kind == MEM_DEVICE ? "device" : "pinned host");
    return standin_fail(SI_INVALID_VALUE, 0, "%s: 0x%lx was never allocated here or is already freed", call,
                        (unsigned long) (uintptr_t) p);
}

int standin_is(const void* p, int kind) {
    return find((uintptr_t) p, kind) != NULL;
}

int standin_region(const void* p, int kind, uintptr_t* base, size_t* size) {
    region* r = find((uintptr_t) p, kind);
    if (r == NULL) return 0;
    *base = r->base;
    *size = r->size;
    return 1;
}

// The live device allocations sorted by base, as (base, end, end rounded up to 256) triples: what
// the instrumented kernels look an address up in. Rebuilt after an allocation or a free.
static uint64_t* sorted_allocs;
static size_t nsorted;

static int by_base(const void* a, const void* b) {
    uint64_t x = *(const uint64_t*) a, y = *(const uint64_t*) b;
    return x < y ? -1 : x > y;
}

static const uint64_t* device_allocations(size_t* n) {
    if (sorted_stale) {
        sorted_allocs = realloc(sorted_allocs, (nlive ? nlive : 1) * 3 * sizeof(uint64_t));
        nsorted = 0;
        for (size_t i = 0; i < nlive; i++) {
            if (live[i].kind != MEM_DEVICE) continue;
            uint64_t* t = sorted_allocs + 3 * nsorted++;
            t[0] = live[i].base;
            t[1] = live[i].base + live[i].size;
            t[2] = live[i].base + padded(live[i].size);
        }
        qsort(sorted_allocs, nsorted, 3 * sizeof(uint64_t), by_base);
        sorted_stale = 0;
    }
    *n = nsorted;
    return sorted_allocs;
}

size_t standin_allocated(void) {
    return allocated_bytes;
}

static int on_stack(uintptr_t p) {
    pthread_attr_t attr;
    void* lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    int ok = pthread_attr_getstack(&attr, &lo, &size) == 0;
    pthread_attr_destroy(&attr);
    return ok && p >= (uintptr_t) lo && p < (uintptr_t) lo + size;
}

// What p is, for an error message.
static const char* describe(uintptr_t p) {
    static char buf[256];
    if (p == 0) return "NULL";
    if (on_stack(p)) return "an address on the calling thread's stack (a local variable's address, not the buffer it holds?)";
    for (size_t i = 0; i < (nfreed < 4096 ? nfreed : 4096); i++) {
        if (freed[i].size && p >= freed[i].base && p < freed[i].base + freed[i].size) {
            snprintf(buf, sizeof buf, "inside a %zu-byte %s allocation that was freed", freed[i].size,
                     freed[i].kind == MEM_DEVICE ? "device" : "pinned host");
            return buf;
        }
    }
    region* r = find(p, 0);
    if (r) {
        snprintf(buf, sizeof buf, "%s memory (a %zu-byte allocation at 0x%lx)", r->kind == MEM_DEVICE ? "device" : "pinned host",
                 r->size, (unsigned long) r->base);
        return buf;
    }
    return "not inside any live allocation (host memory?)";
}

int standin_check(const char* call, const char* arg, const void* ptr, size_t bytes, int kind, int sticky) {
    uintptr_t p = (uintptr_t) ptr;
    int code = sticky ? SI_ILLEGAL_ADDRESS : SI_INVALID_VALUE;
    const char* want = kind == MEM_DEVICE ? "device memory" : "pinned host memory";
    region* r = find(p, kind);
    if (r == NULL) {
        return standin_fail(code, sticky, "%s: %s 0x%lx is not %s: it is %s", call, arg, (unsigned long) p, want, describe(p));
    }
    if (p + bytes > r->base + r->size) {
        return standin_fail(code, sticky, "%s: %s 0x%lx needs %zu bytes but its %zu-byte allocation at 0x%lx ends %zu bytes after it",
                            call, arg, (unsigned long) p, bytes, r->size, (unsigned long) r->base, (size_t) (r->base + r->size - p));
    }
    return 0;
}

// ---------------------------------------------------------------- handles

enum { H_STREAM = 1, H_EVENT, H_GRAPH, H_EXEC, H_MODULE, H_FUNC };
typedef struct { void* p; int kind; } handle;
static handle* handles;
static size_t nhandles, caphandles;

static void handle_add(void* p, int kind) {
    if (nhandles == caphandles) {
        caphandles = caphandles ? 2 * caphandles : 64;
        handles = realloc(handles, caphandles * sizeof(handle));
    }
    handles[nhandles++] = (handle){p, kind};
}

static int handle_ok(const void* p, int kind) {
    for (size_t i = 0; i < nhandles; i++) if (handles[i].p == p && handles[i].kind == kind) return 1;
    return 0;
}

static void handle_remove(const void* p) {
    for (size_t i = 0; i < nhandles; i++) {
        if (handles[i].p == p) { handles[i] = handles[--nhandles]; return; }
    }
}

// ---------------------------------------------------------------- kernels (the emulator)

typedef void (*emu_launch)(int gx, int gy, int bx, const int64_t* args);
#define DEFAULT_SHARED (48 * 1024)  // shared memory per block without the opt-in attribute
// the instrumented kernels' access checks (cuda_emu.h, EMU_CHECK_ACCESS)
typedef void (*emu_check_begin)(const uint64_t* views, int nviews, const uint64_t* allocations, size_t nallocations, int indirect);
typedef int (*emu_check_end)(uint64_t* read_write, uint64_t* fault);
typedef struct { void* lib; int bf16; emu_check_begin check_begin; emu_check_end check_end; } si_module;
typedef struct {
    char name[128];
    char label[160];      // "cuLaunchKernel(name)", what races and faults call it
    emu_launch run;
    const char* signature;
    int max_dynamic;      // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    int registers;        // per thread, from the CUBIN
    int static_shared;    // bytes, from the CUBIN
    si_module* module;
} si_func;

static void* kernel_libs[2];

static const char* own_dir(void) {
    static char dir[4096];
    if (!dir[0]) {
        const char* env = getenv("GPT2_STANDIN_KERNELS");
        if (env && *env) {
            snprintf(dir, sizeof dir, "%s", env);
        } else {
            Dl_info info;
            dladdr((void*) own_dir, &info);
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
            snprintf(dir, sizeof dir, "%s", dirname(tmp));
        }
    }
    return dir;
}

static int contains(const unsigned char* img, size_t n, const char* s) {
    return memmem(img, n, s, strlen(s) + 1) != NULL;
}

typedef struct { si_module m; const unsigned char* image; size_t size; } module_rec;

EXPORT int cuModuleLoadData(void** module, const void* image) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    if (rc) goto out;
    const unsigned char* img = image;
    if (module == NULL || img == NULL || memcmp(img, "\177ELF", 4) != 0) {
        rc = standin_fail(SI_INVALID_IMAGE, 0, "cuModuleLoadData: the image is not a CUBIN (ELF) file");
        goto out;
    }
    size_t n = cubin_size(img);
    int bf16 = contains(img, n, "gpt2_storage_bf16"), f32 = contains(img, n, "gpt2_storage_f32");
    if (bf16 == f32) {
        rc = standin_fail(SI_INVALID_IMAGE, 0, "cuModuleLoadData: the CUBIN names %s storage type (gpt2_storage_f32 / _bf16 of common.cuh)",
                          bf16 ? "both" : "no");
        goto out;
    }
    if (!kernel_libs[bf16]) {
        char path[4200];
        snprintf(path, sizeof path, "%s/libkernels_%s.so", own_dir(), bf16 ? "bf16" : "f32");
        kernel_libs[bf16] = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!kernel_libs[bf16]) {
            rc = standin_fail(SI_INVALID_IMAGE, 0, "cuModuleLoadData: cannot load the emulated kernels %s: %s", path, dlerror());
            goto out;
        }
    }
    module_rec* m = calloc(1, sizeof *m);
    m->m.lib = kernel_libs[bf16];
    m->m.bf16 = bf16;
    m->m.check_begin = (emu_check_begin) dlsym(kernel_libs[bf16], "emu_check_begin");
    m->m.check_end = (emu_check_end) dlsym(kernel_libs[bf16], "emu_check_end");
    if (!m->m.check_begin || !m->m.check_end) {
        free(m);
        rc = standin_fail(SI_INVALID_IMAGE, 0, "cuModuleLoadData: the emulated kernels were built without EMU_CHECK_ACCESS "
                          "(CudaStandins builds them instrumented)");
        goto out;
    }
    m->image = img;
    m->size = n;
    // the image must stay readable only during this call: keep a copy of what cuModuleGetFunction needs
    unsigned char* copy = malloc(n);
    memcpy(copy, img, n);
    m->image = copy;
    handle_add(m, H_MODULE);
    *module = m;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuModuleGetFunction(void** out, void* module, const char* name) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    if (rc) goto out;
    if (!handle_ok(module, H_MODULE)) { rc = standin_fail(SI_INVALID_HANDLE, 0, "cuModuleGetFunction: hmod %p is not a loaded module", module); goto out; }
    module_rec* m = module;
    if (out == NULL || name == NULL || strlen(name) >= 100) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuModuleGetFunction: bad arguments"); goto out; }
    if (!contains(m->image, m->size, name)) {
        rc = standin_fail(SI_NOT_FOUND, 0, "cuModuleGetFunction: the module has no kernel named %s", name);
        goto out;
    }
    char sym[160];
    snprintf(sym, sizeof sym, "emu_launch_%s", name);
    emu_launch run = (emu_launch) dlsym(m->m.lib, sym);
    snprintf(sym, sizeof sym, "emu_signature_%s", name);
    const char* sig = dlsym(m->m.lib, sym);
    if (!run || !sig) { rc = standin_fail(SI_NOT_FOUND, 0, "cuModuleGetFunction: the emulator has no kernel %s", name); goto out; }
    si_func* f = calloc(1, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->label, sizeof f->label, "cuLaunchKernel(%s)", name);
    f->run = run;
    f->signature = sig;
    cubin_kernel_info(m->image, m->size, name, &f->registers, &f->static_shared);
    f->max_dynamic = DEFAULT_SHARED - f->static_shared;
    f->module = &m->m;
    handle_add(f, H_FUNC);
    *out = f;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

#define CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES 8
#define EMU_SHARED (96 * 1024)      // the emulator's DYNAMIC_SHARED area
#define REGISTERS_PER_BLOCK 65536

int standin_arch(void) {
    const char* arch = getenv("GPT2_STANDIN_ARCH");
    return arch && strcmp(arch, "80") == 0 ? 80 : 90;
}

// The opt-in shared memory per block of the stand-in's architecture.
static int optin_shared(void) {
    return standin_arch() == 80 ? 163 * 1024 : 227 * 1024;
}

EXPORT int cuFuncSetAttribute(void* func, int attribute, int value) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    if (!rc && !handle_ok(func, H_FUNC)) rc = standin_fail(SI_INVALID_HANDLE, 0, "cuFuncSetAttribute: hfunc %p is not a kernel", func);
    if (!rc && attribute == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
        si_func* f = func;
        if (value < 0 || value > optin_shared() - f->static_shared) {
            rc = standin_fail(SI_INVALID_VALUE, 0, "cuFuncSetAttribute(%s): %d bytes of dynamic shared memory; with its %d static "
                              "bytes the device allows %d", f->name, value, f->static_shared, optin_shared() - f->static_shared);
        } else {
            ((si_func*) func)->max_dynamic = value;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

// A kernel launch: the arguments by value (kernelParams are read when the launch is made, as CUDA does),
// and the bytes of the buffer view behind each pointer argument (0: unknown, to the allocation's end).
typedef struct { si_func* f; unsigned gx, gy, gz, bx, by, bz, shmem; int nargs; int64_t args[32]; int64_t extent[32]; } si_launch;

// Views told by gpt2_standin_launch_extents for this thread's next launch or kernel-node update.
static __thread int64_t next_extents[32];
static __thread int next_nextents = -1;

// A stand-in-only entry point (the project's GpuExecutor calls it where it finds it): the byte size
// of the buffer view behind each argument of the launch this thread makes next (0 for non-pointers),
// so the instrumented kernels are bounds-checked against the view, not only the allocation.
EXPORT void gpt2_standin_launch_extents(int n, const int64_t* bytes) {
    next_nextents = n < 0 ? -1 : n > 32 ? 32 : n;
    for (int i = 0; i < next_nextents; i++) next_extents[i] = bytes[i];
}

static void take_extents(si_launch* l) {
    for (int i = 0; i < 32; i++) l->extent[i] = i < next_nextents ? next_extents[i] : 0;
    next_nextents = -1;
}

static int arg_count(const si_func* f) { return (int) strlen(f->signature); }

static int read_args(const char* call, si_launch* l, void** params) {
    int n = arg_count(l->f);
    if (n > 32) return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): more than 32 parameters", call, l->f->name);
    if (n > 0 && params == NULL) return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): kernelParams is NULL", call, l->f->name);
    l->nargs = n;
    for (int i = 0; i < n; i++) {
        if (params[i] == NULL) return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): kernelParams[%d] is NULL", call, l->f->name, i);
        switch (l->f->signature[i]) {
            case 'p': case 'P': case 'l': { int64_t v; memcpy(&v, params[i], 8); l->args[i] = v; break; }
            case 'i': { int32_t v; memcpy(&v, params[i], 4); l->args[i] = v; break; }
            case 'f': { uint32_t v; memcpy(&v, params[i], 4); l->args[i] = v; break; }
            default: return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): unknown parameter kind", call, l->f->name);
        }
    }
    return 0;
}

static int check_launch(const char* call, const si_launch* l) {
    const si_func* f = l->f;
    if (l->gx == 0 || l->gy == 0 || l->gz == 0 || l->bx == 0 || l->by == 0 || l->bz == 0 || l->gy > 65535)
        return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): grid %ux%ux%u, block %ux%ux%u", call, f->name, l->gx, l->gy, l->gz, l->bx, l->by, l->bz);
    if (l->bx * l->by * l->bz > 1024)
        return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): %u threads per block, the device allows 1024", call, f->name, l->bx * l->by * l->bz);
    if (l->gz != 1 || l->by != 1 || l->bz != 1 || l->bx % 32 != 0)
        return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): the emulator runs 1-D blocks of whole warps on 1- or 2-D grids (block %ux%ux%u, grid z %u)",
                            call, f->name, l->bx, l->by, l->bz, l->gz);
    if ((int) l->shmem > f->max_dynamic)
        return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): %u bytes of dynamic shared memory (+ %d static) over the kernel's limit of %d "
                            "(raise it with cuFuncSetAttribute)", call, f->name, l->shmem, f->static_shared, f->max_dynamic);
    unsigned threads = l->bx * l->by * l->bz, warps = (threads + 31) / 32;
    unsigned per_warp = ((unsigned) f->registers * 32 + 255) / 256 * 256;  // allocated per warp in units of 256
    if (warps * per_warp > REGISTERS_PER_BLOCK)
        return standin_fail(SI_LAUNCH_OUT_OF_RESOURCES, 0, "%s(%s): too many resources requested for launch: %u threads of %d "
                            "registers (the CUBIN's count) need %u registers per block, the device has %d",
                            call, f->name, threads, f->registers, warps * per_warp, REGISTERS_PER_BLOCK);
    if (l->shmem > EMU_SHARED)
        return standin_fail(SI_INVALID_VALUE, 0, "%s(%s): %u bytes of dynamic shared memory, the emulator has %d", call, f->name, l->shmem, EMU_SHARED);
    for (int i = 0; i < l->nargs; i++) {
        if ((f->signature[i] != 'p' && f->signature[i] != 'P') || l->args[i] == 0) continue;
        char arg[192];
        snprintf(arg, sizeof arg, "%s argument %d", f->name, i);
        int rc = standin_check(call, arg, (const void*) (uintptr_t) l->args[i], 1, MEM_DEVICE, 1);
        if (rc) return rc;
    }
    return 0;
}

static const char* argument_name(int i) {
    static char names[32][16];
    if (!names[i][0]) snprintf(names[i], sizeof names[i], "argument %d", i);
    return names[i];
}

// An access outside every view the launch passed, inside device memory: named by the view nearest below it.
static int out_of_bounds(const si_launch* l, const uint64_t* views, const int* index, int nviews, const uint64_t* fault) {
    uintptr_t a = (uintptr_t) fault[0], base = 0;
    size_t size = 0;
    int near = -1;
    for (int k = 0; k < nviews; k++) {
        if (views[2 * k] <= a && (near < 0 || views[2 * k] > views[2 * near])) near = k;
    }
    if (near < 0) {
        for (int k = 0; k < nviews; k++) if (near < 0 || views[2 * k] < views[2 * near]) near = k;
    }
    int in_alloc = standin_region((const void*) a, MEM_DEVICE, &base, &size);
    char where[320] = "";
    if (near >= 0) {
        uintptr_t vb = views[2 * near], vbase = 0;
        size_t vsize = 0;
        standin_region((const void*) vb, MEM_DEVICE, &vbase, &vsize);
        long long rel = (long long) a - (long long) vb, over = rel + (long long) fault[1] - (long long) (views[2 * near + 1] - vb);
        snprintf(where, sizeof where, "; %s is a %llu-byte view at byte %llu of the %zu-byte device allocation at 0x%lx, and the "
                 "access at byte %lld of it ends %lld bytes past the view's end", argument_name(index[near]),
                 (unsigned long long) (views[2 * near + 1] - vb), (unsigned long long) (vb - vbase), vsize, (unsigned long) vbase,
                 rel, over);
    }
    return standin_fail(SI_ILLEGAL_ADDRESS, 1, "%s: out-of-bounds %s of %llu bytes at 0x%lx (%s)%s%s",
                        l->f->label, fault[2] ? "write" : "read", (unsigned long long) fault[1], (unsigned long) a,
                        in_alloc ? "inside a device allocation, outside every buffer the launch passed"
                                 : "in the padding after a device allocation's end",
                        where, fault[3] > 1 ? " (and more out-of-bounds accesses after it)" : "");
}

static int run_launch(void* payload) {
    si_launch* l = payload;
    int rc = check_launch("kernel", l);  // buffers may have been freed since a capture
    if (rc) return rc;
    const si_func* f = l->f;
    // the views: each pointer argument from its address over its extent (else to its allocation's end)
    uint64_t views[64];
    int index[32], nviews = 0, indirect = 0;
    for (int i = 0; i < l->nargs; i++) {
        if (f->signature[i] == 'P') indirect = 1;  // a table of device addresses (i64*)
        if ((f->signature[i] != 'p' && f->signature[i] != 'P') || l->args[i] == 0) continue;
        uintptr_t p = (uintptr_t) l->args[i], base;
        size_t size;
        if (!standin_region((const void*) p, MEM_DEVICE, &base, &size)) continue;
        uint64_t end = base + size;
        if (l->extent[i] > 0 && p + (uint64_t) l->extent[i] < end) end = p + (uint64_t) l->extent[i];
        views[2 * nviews] = p;
        views[2 * nviews + 1] = end;
        index[nviews++] = i;
    }
    size_t nallocs;
    const uint64_t* allocs = device_allocations(&nallocs);
    f->module->check_begin(views, nviews, allocs, nallocs, indirect);
    f->run((int) l->gx, (int) l->gy, (int) l->bx, l->args);
    uint64_t rw[6 * 32], fault[4];
    int all = f->module->check_end(rw, fault);
    if (fault[3]) return out_of_bounds(l, views, index, nviews, fault);
    for (int k = 0; k < all && !rc; k++) {
        const uint64_t* v = rw + 6 * k;
        const char* arg = k < nviews ? argument_name(index[k]) : "through its address table";
        if (v[3] > v[2]) rc = order_access((const void*) v[2], v[3] - v[2], 0, arg);
        if (!rc && v[5] > v[4]) rc = order_access((const void*) v[4], v[5] - v[4], 1, arg);
    }
    return rc;
}

// ---------------------------------------------------------------- streams, events, graphs

typedef struct si_graph si_graph;
typedef struct si_node {
    si_graph* graph;
    int is_kernel;
    const char* call;
    si_op fn;
    void* payload;
    size_t bytes;
    struct si_node** deps;
    size_t ndeps;
} si_node;

struct si_stream {
    unsigned flags;   // 0 blocking, 1 non-blocking
    int legacy;
    int slot;         // its clock (order.c); the legacy stream's is 0
    si_graph* capture;
    si_node** deps;   // what the next captured node depends on
    size_t ndeps;
};

struct si_graph {
    si_node** nodes;
    size_t n, cap;
    si_stream* origin;
    si_stream* members[16];
    int nmembers;
    int mode;
    pthread_t thread;
    int invalidated;
    int ended;
    uint64_t id;
};

typedef struct { unsigned flags; int recorded; double ms; si_graph* capture; si_node** deps; size_t ndeps; si_vclock vc; } si_event;

// An instantiated graph: its nodes' work, and which node precedes which (reach[i * n + j]: j before i).
typedef struct { si_node** orig; si_launch* launches; si_op* fns; void** payloads; const char** calls; unsigned char* reach; size_t n; } si_exec;

static si_stream legacy_stream = {0, 1, 0, NULL, NULL, 0};
static si_graph* captures[64];
static int ncaptures;
static uint64_t next_capture_id = 1;

#define MODE_GLOBAL 0
#define MODE_THREAD_LOCAL 1
#define MODE_RELAXED 2

si_stream* standin_stream(const char* call, void* h, int* err) {
    *err = 0;
    if (h == NULL || h == (void*) 1 || h == (void*) 2) return &legacy_stream;
    if (!handle_ok(h, H_STREAM)) {
        *err = standin_fail(SI_INVALID_HANDLE, 0, "%s: stream %p is not a live stream", call, h);
        return NULL;
    }
    return h;
}

int standin_capturing(si_stream* s) {
    return s->capture != NULL;
}

static void invalidate(si_graph* g);

void standin_invalidate(si_stream* s) {
    if (s->capture) invalidate(s->capture);
}

static void set_deps(si_node*** deps, size_t* n, si_node** from, size_t count) {
    *deps = realloc(*deps, (count ? count : 1) * sizeof(si_node*));
    if (count) memcpy(*deps, from, count * sizeof(si_node*));
    *n = count;
}

static void invalidate(si_graph* g) {
    g->invalidated = 1;
}

// The legacy stream waits for every blocking stream: work on it while one is captured breaks the capture.
static int legacy_conflict(const char* call) {
    for (int i = 0; i < ncaptures; i++) {
        si_graph* g = captures[i];
        for (int k = 0; k < g->nmembers; k++) {
            if (g->members[k]->flags == 0) {
                invalidate(g);
                return standin_fail(SI_CAPTURE_IMPLICIT, 0, "%s: work on the legacy default stream while a blocking stream is being "
                                    "captured (an implicit synchronization with it); the capture is invalidated", call);
            }
        }
    }
    return 0;
}

int standin_capture_guard(const char* call, int code) {
    pthread_t self = pthread_self();
    for (int i = 0; i < ncaptures; i++) {
        si_graph* g = captures[i];
        if (g->mode == MODE_GLOBAL || (g->mode == MODE_THREAD_LOCAL && pthread_equal(g->thread, self))) {
            invalidate(g);
            return standin_fail(code, 0, "%s: not permitted while a stream capture (%s mode) is in progress on this thread; "
                                "the capture is invalidated", call, g->mode == MODE_GLOBAL ? "global" : "thread-local");
        }
    }
    return 0;
}

static si_node* add_node(si_stream* s, int is_kernel, const char* call, si_op fn, void* payload, size_t bytes) {
    si_graph* g = s->capture;
    si_node* node = calloc(1, sizeof *node);
    node->graph = g;
    node->is_kernel = is_kernel;
    node->call = call;
    node->fn = fn;
    node->payload = payload;
    node->bytes = bytes;
    set_deps(&node->deps, &node->ndeps, s->deps, s->ndeps);
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->nodes = realloc(g->nodes, g->cap * sizeof(si_node*));
    }
    g->nodes[g->n++] = node;
    set_deps(&s->deps, &s->ndeps, &node, 1);
    return node;
}

// Names that outlive the call that gave them (records and graph nodes keep them).
static const char* intern(const char* name) {
    static char** names;
    static size_t n, cap;
    for (size_t i = 0; i < n; i++) if (strcmp(names[i], name) == 0) return names[i];
    if (n == cap) {
        cap = cap ? 2 * cap : 64;
        names = realloc(names, cap * sizeof(char*));
    }
    return names[n++] = strdup(name);
}

static int submit(const char* call, si_stream* s, si_op fn, const void* payload, size_t bytes, int is_kernel) {
    int rc = standin_sticky();
    if (rc) return rc;
    if (s->legacy && (rc = legacy_conflict(call))) return rc;
    const char* what = is_kernel ? ((const si_launch*) payload)->f->label : intern(call);
    if (s->capture) {
        if (s->capture->invalidated) return standin_fail(SI_CAPTURE_INVALIDATED, 0, "%s: the stream's capture was invalidated earlier", call);
        void* copy = malloc(bytes ? bytes : 1);
        memcpy(copy, payload, bytes);
        add_node(s, is_kernel, what, fn, copy, bytes);
        return 0;
    }
    order_pinned_check();
    if (standin_faulted()) return 0;  // the device is lost: queued work no longer runs (the error comes at a synchronization)
    order_op_begin(s->slot, what);
    fn((void*) payload);  // run now: the ops only read their payload; a fault they find is pending, not returned
    order_op_end();
    return 0;
}

int standin_submit(const char* call, si_stream* s, si_op fn, const void* payload, size_t bytes) {
    return submit(call, s, fn, payload, bytes, 0);
}

EXPORT int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          unsigned shmem, void* stream, void** params, void** extra) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    if (rc) goto out;
    if (!handle_ok(f, H_FUNC)) { rc = standin_fail(SI_INVALID_HANDLE, 0, "cuLaunchKernel: f %p is not a kernel of a loaded module", f); goto out; }
    if (extra != NULL) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuLaunchKernel(%s): extra is not supported here", ((si_func*) f)->name); goto out; }
    si_stream* s = standin_stream("cuLaunchKernel", stream, &rc);
    if (!s) goto out;
    si_launch l = {.f = f, .gx = gx, .gy = gy, .gz = gz, .bx = bx, .by = by, .bz = bz, .shmem = shmem};
    if ((rc = read_args("cuLaunchKernel", &l, params))) goto out;
    take_extents(&l);
    if ((rc = check_launch("cuLaunchKernel", &l))) {
        if (rc == SI_ILLEGAL_ADDRESS) rc = 0;  // a bad pointer faults on the device, later
        goto out;
    }
    rc = submit("cuLaunchKernel", s, run_launch, &l, sizeof l, 1);
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

// ---- streams and events (the runtime stand-in's cudaStream*/cudaEvent* call these)

EXPORT int standin_stream_create(void** out, unsigned flags) {
    pthread_mutex_lock(&lock);
    int rc = standin_capture_guard("cudaStreamCreateWithFlags", SI_CAPTURE_UNSUPPORTED);
    if (!rc) {
        si_stream* s = calloc(1, sizeof *s);
        s->flags = flags & 1;
        s->slot = order_stream_new(s->flags == 0);
        if (s->slot < 0) {
            free(s);
            rc = standin_fail(SI_MEMORY_ALLOCATION, 0, "cudaStreamCreateWithFlags: more than %d streams alive", SI_CLOCKS - 1);
        } else {
            handle_add(s, H_STREAM);
            *out = s;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int standin_stream_destroy(void* h) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (!handle_ok(h, H_STREAM)) rc = standin_fail(SI_INVALID_HANDLE, 0, "cudaStreamDestroy: %p is not a live stream", h);
    else if (((si_stream*) h)->capture) rc = standin_fail(SI_CAPTURE_UNSUPPORTED, 0, "cudaStreamDestroy: the stream is being captured");
    else { order_stream_free(((si_stream*) h)->slot); handle_remove(h); free(((si_stream*) h)->deps); free(h); }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int standin_stream_synchronize(void* h) {
    pthread_mutex_lock(&lock);
    order_pinned_check();
    int rc = standin_surface();
    si_stream* s = rc ? NULL : standin_stream("cudaStreamSynchronize", h, &rc);
    if (s && s->capture) {
        invalidate(s->capture);
        rc = standin_fail(SI_CAPTURE_UNSUPPORTED, 0, "cudaStreamSynchronize: the stream is being captured (it would wait for work "
                          "that is only being recorded); the capture is invalidated");
    } else if (s && s->legacy) {
        rc = legacy_conflict("cudaStreamSynchronize(legacy stream)");
    }
    if (s && !rc) order_host_join_stream(s->slot);
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int standin_device_synchronize(void) {
    pthread_mutex_lock(&lock);
    order_pinned_check();
    int rc = standin_surface();
    if (!rc) rc = standin_capture_guard("cudaDeviceSynchronize", SI_CAPTURE_UNSUPPORTED);
    if (!rc) order_host_join_all();
    pthread_mutex_unlock(&lock);
    return rc;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

EXPORT int standin_event_create(void** out, unsigned flags) {
    pthread_mutex_lock(&lock);
    si_event* e = calloc(1, sizeof *e);
    e->flags = flags;
    handle_add(e, H_EVENT);
    *out = e;
    pthread_mutex_unlock(&lock);
    return 0;
}

EXPORT int standin_event_destroy(void* h) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (!handle_ok(h, H_EVENT)) rc = standin_fail(SI_INVALID_HANDLE, 0, "cudaEventDestroy: %p is not a live event", h);
    else { handle_remove(h); free(((si_event*) h)->deps); free(h); }
    pthread_mutex_unlock(&lock);
    return rc;
}

static si_event* event(const char* call, void* h, int* rc) {
    if (!handle_ok(h, H_EVENT)) { *rc = standin_fail(SI_INVALID_HANDLE, 0, "%s: %p is not a live event", call, h); return NULL; }
    return h;
}

EXPORT int standin_event_record(void* h, void* stream) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    si_event* e = rc ? NULL : event("cudaEventRecord", h, &rc);
    si_stream* s = e ? standin_stream("cudaEventRecord", stream, &rc) : NULL;
    if (s) {
        if (s->capture) {  // an event inside a capture marks a point of the graph (for forks and joins)
            if (s->capture->invalidated) rc = standin_fail(SI_CAPTURE_INVALIDATED, 0, "cudaEventRecord: the stream's capture was invalidated earlier");
            else { e->capture = s->capture; set_deps(&e->deps, &e->ndeps, s->deps, s->ndeps); e->recorded = 0; }
        } else if (!s->legacy || !(rc = legacy_conflict("cudaEventRecord(legacy stream)"))) {
            e->capture = NULL;
            e->recorded = 1;
            e->ms = now_ms();
            order_event_record(&e->vc, s->slot);
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int graph_live(si_graph* g) {
    for (int i = 0; i < ncaptures; i++) if (captures[i] == g) return 1;
    return 0;
}

EXPORT int standin_stream_wait_event(void* stream, void* h) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    si_stream* s = rc ? NULL : standin_stream("cudaStreamWaitEvent", stream, &rc);
    si_event* e = s ? event("cudaStreamWaitEvent", h, &rc) : NULL;
    if (e && e->capture && graph_live(e->capture)) {
        si_graph* g = e->capture;
        if (s->capture && s->capture != g) {
            rc = standin_fail(SI_CAPTURE_INVALIDATED, 0, "cudaStreamWaitEvent: joins two different captures");
        } else if (s->capture == g) {  // a join: s now also depends on the event's point
            size_t n = s->ndeps + e->ndeps;
            si_node** all = malloc((n ? n : 1) * sizeof(si_node*));
            size_t k = 0;
            for (size_t i = 0; i < s->ndeps; i++) all[k++] = s->deps[i];
            for (size_t i = 0; i < e->ndeps; i++) {
                int dup = 0;
                for (size_t j = 0; j < k; j++) dup |= all[j] == e->deps[i];
                if (!dup) all[k++] = e->deps[i];
            }
            set_deps(&s->deps, &s->ndeps, all, k);
            free(all);
        } else if (s->legacy) {
            invalidate(g);
            rc = standin_fail(SI_CAPTURE_IMPLICIT, 0, "cudaStreamWaitEvent: the legacy stream cannot join a capture");
        } else {  // a fork: s joins the capture from the event's point
            s->capture = g;
            set_deps(&s->deps, &s->ndeps, e->deps, e->ndeps);
            if (g->nmembers < 16) g->members[g->nmembers++] = s;
        }
    } else if (e && e->capture) {
        rc = standin_fail(SI_CAPTURED_EVENT, 0, "cudaStreamWaitEvent: the event was recorded in a capture that has ended");
    } else if (e && s->capture == NULL && e->recorded) {
        order_stream_wait(s->slot, &e->vc);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int standin_event_synchronize(void* h) {
    pthread_mutex_lock(&lock);
    order_pinned_check();
    int rc = standin_surface();
    si_event* e = rc ? NULL : event("cudaEventSynchronize", h, &rc);
    if (e && e->capture) rc = standin_fail(SI_CAPTURED_EVENT, 0, "cudaEventSynchronize: the event was recorded in a stream capture");
    else if (e && e->recorded) order_host_join(&e->vc);
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int standin_event_elapsed(float* ms, void* a, void* b) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    si_event* e0 = rc ? NULL : event("cudaEventElapsedTime", a, &rc);
    si_event* e1 = e0 ? event("cudaEventElapsedTime", b, &rc) : NULL;
    if (e1) {
        if (e0->capture || e1->capture) rc = standin_fail(SI_CAPTURED_EVENT, 0, "cudaEventElapsedTime: an event was recorded in a stream capture");
        else if ((e0->flags | e1->flags) & 2) rc = standin_fail(SI_INVALID_HANDLE, 0, "cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
        else if (!e0->recorded || !e1->recorded) rc = standin_fail(SI_INVALID_HANDLE, 0, "cudaEventElapsedTime: an event was never recorded");
        else if (ms == NULL) rc = standin_fail(SI_INVALID_VALUE, 0, "cudaEventElapsedTime: ms is NULL");
        else *ms = (float) (e1->ms - e0->ms);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

// ---- capture

EXPORT int cuStreamBeginCapture_v2(void* stream, int mode) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    si_stream* s = rc ? NULL : standin_stream("cuStreamBeginCapture", stream, &rc);
    if (!s) goto out;
    if (s->legacy) { rc = standin_fail(SI_CAPTURE_UNSUPPORTED, 0, "cuStreamBeginCapture: the legacy default stream cannot be captured"); goto out; }
    if (s->capture) { rc = standin_fail(401, 0, "cuStreamBeginCapture: the stream is already being captured"); goto out; }
    if (mode < 0 || mode > 2) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuStreamBeginCapture: mode %d", mode); goto out; }
    if (ncaptures == 64) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuStreamBeginCapture: too many captures at once"); goto out; }
    si_graph* g = calloc(1, sizeof *g);
    g->origin = s;
    g->members[g->nmembers++] = s;
    g->mode = mode;
    g->thread = pthread_self();
    g->id = next_capture_id++;
    captures[ncaptures++] = g;
    handle_add(g, H_GRAPH);
    s->capture = g;
    s->ndeps = 0;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuStreamGetCaptureInfo_v3(void* stream, int* status, uint64_t* id, void** graph, const void** deps,
                                     const void** edges, size_t* ndeps) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    si_stream* s = standin_stream("cuStreamGetCaptureInfo", stream, &rc);
    if (!s) goto out;
    if (status == NULL) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuStreamGetCaptureInfo: captureStatus_out is NULL"); goto out; }
    si_graph* g = s->capture;
    *status = g == NULL ? 0 : g->invalidated ? 2 : 1;
    if (id) *id = g ? g->id : 0;
    if (graph) *graph = g;
    if (deps) *deps = g ? (const void*) s->deps : NULL;
    if (edges) *edges = NULL;
    if (ndeps) *ndeps = g ? s->ndeps : 0;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

static void end_capture(si_graph* g) {
    for (int k = 0; k < g->nmembers; k++) { g->members[k]->capture = NULL; g->members[k]->ndeps = 0; }
    for (int i = 0; i < ncaptures; i++) if (captures[i] == g) { captures[i] = captures[--ncaptures]; break; }
    g->ended = 1;
}

static void graph_free(si_graph* g) {
    for (size_t i = 0; i < g->n; i++) { free(g->nodes[i]->payload); free(g->nodes[i]->deps); free(g->nodes[i]); }
    free(g->nodes);
    handle_remove(g);
    free(g);
}

// Marks every node that n depends on, directly or not.
static void reach(si_node* n, unsigned char* seen, si_graph* g) {
    for (size_t i = 0; i < n->ndeps; i++) {
        si_node* d = n->deps[i];
        for (size_t k = 0; k < g->n; k++) {
            if (g->nodes[k] == d && !seen[k]) { seen[k] = 1; reach(d, seen, g); }
        }
    }
}

EXPORT int cuStreamEndCapture(void* stream, void** graph) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    si_stream* s = standin_stream("cuStreamEndCapture", stream, &rc);
    if (!s) goto out;
    if (graph) *graph = NULL;
    si_graph* g = s->capture;
    if (g == NULL) { rc = standin_fail(401, 0, "cuStreamEndCapture: the stream is not being captured"); goto out; }
    if (g->origin != s) {
        invalidate(g);
        rc = standin_fail(SI_CAPTURE_UNMATCHED, 0, "cuStreamEndCapture: called on a stream that joined the capture, not the one that began it");
        goto out;
    }
    if (g->mode != MODE_RELAXED && !pthread_equal(g->thread, pthread_self())) {
        rc = standin_fail(SI_CAPTURE_WRONG_THREAD, 0, "cuStreamEndCapture: called from another thread than cuStreamBeginCapture");
        goto out;
    }
    if (g->invalidated) {
        end_capture(g);
        graph_free(g);
        rc = standin_fail(SI_CAPTURE_INVALIDATED, 0, "cuStreamEndCapture: the capture was invalidated by an earlier call");
        goto out;
    }
    // every node must come before the origin stream's end: forked work joined back
    unsigned char* seen = calloc(g->n ? g->n : 1, 1);
    for (size_t i = 0; i < s->ndeps; i++) {
        for (size_t k = 0; k < g->n; k++) if (g->nodes[k] == s->deps[i] && !seen[k]) { seen[k] = 1; reach(g->nodes[k], seen, g); }
    }
    size_t unjoined = 0;
    for (size_t k = 0; k < g->n; k++) unjoined += !seen[k];
    free(seen);
    end_capture(g);
    if (unjoined) {
        graph_free(g);
        rc = standin_fail(SI_CAPTURE_UNJOINED, 0, "cuStreamEndCapture: %zu captured operation(s) on other streams were never joined back "
                          "into the capturing stream (cudaEventRecord there + cudaStreamWaitEvent here)", unjoined);
        goto out;
    }
    if (graph == NULL) { graph_free(g); rc = standin_fail(SI_INVALID_VALUE, 0, "cuStreamEndCapture: phGraph is NULL"); goto out; }
    *graph = g;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuGraphInstantiateWithFlags(void** out, void* graph, unsigned long long flags) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    if (rc) goto out;
    if (!handle_ok(graph, H_GRAPH) || !((si_graph*) graph)->ended) {
        rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphInstantiate: hGraph %p is not a captured graph", graph);
        goto out;
    }
    if (out == NULL) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphInstantiate: phGraphExec is NULL"); goto out; }
    (void) flags;
    si_graph* g = graph;
    si_exec* x = calloc(1, sizeof *x);
    x->n = g->n;
    x->orig = malloc((g->n ? g->n : 1) * sizeof(si_node*));
    x->fns = malloc((g->n ? g->n : 1) * sizeof(si_op));
    x->payloads = malloc((g->n ? g->n : 1) * sizeof(void*));
    x->launches = calloc(g->n ? g->n : 1, sizeof(si_launch));
    x->calls = malloc((g->n ? g->n : 1) * sizeof(char*));
    x->reach = calloc(g->n ? g->n * g->n : 1, 1);
    for (size_t i = 0; i < g->n; i++) {  // nodes come in an order their edges respect
        x->calls[i] = g->nodes[i]->call;
        for (size_t d = 0; d < g->nodes[i]->ndeps; d++) {
            size_t j = 0;
            while (j < i && g->nodes[j] != g->nodes[i]->deps[d]) j++;
            if (j == i) continue;
            x->reach[i * g->n + j] = 1;
            for (size_t k = 0; k < i; k++) x->reach[i * g->n + k] |= x->reach[j * g->n + k];
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        x->orig[i] = g->nodes[i];
        x->fns[i] = g->nodes[i]->fn;
        if (g->nodes[i]->is_kernel) {
            x->launches[i] = *(si_launch*) g->nodes[i]->payload;
            x->payloads[i] = &x->launches[i];
        } else {
            x->payloads[i] = malloc(g->nodes[i]->bytes ? g->nodes[i]->bytes : 1);
            memcpy(x->payloads[i], g->nodes[i]->payload, g->nodes[i]->bytes);
        }
    }
    handle_add(x, H_EXEC);
    *out = x;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

// CUDA_KERNEL_NODE_PARAMS_v2 (cuda.h, 72 bytes)
typedef struct {
    void* func;
    unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    void** kernelParams;
    void** extra;
    void* kern;
    void* ctx;
} kernel_node_params;

EXPORT int cuGraphExecKernelNodeSetParams_v2(void* exec, void* node, const kernel_node_params* p) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    if (rc) goto out;
    if (!handle_ok(exec, H_EXEC)) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphExecKernelNodeSetParams: hGraphExec %p is not an instantiated graph", exec); goto out; }
    si_exec* x = exec;
    size_t i = 0;
    while (i < x->n && (void*) x->orig[i] != node) i++;
    if (i == x->n) {
        rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphExecKernelNodeSetParams: hNode %p is not a node of the graph this was instantiated from", node);
        goto out;
    }
    if (x->fns[i] != run_launch) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphExecKernelNodeSetParams: hNode %p is not a kernel node", node); goto out; }
    if (p == NULL) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphExecKernelNodeSetParams: nodeParams is NULL"); goto out; }
    si_launch* cur = &x->launches[i];
    if (p->func != cur->f || p->kern != NULL || p->extra != NULL) {
        rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphExecKernelNodeSetParams(%s): the node's function cannot change (func %p, kern %p, extra %p)",
                          cur->f->name, p->func, p->kern, (void*) p->extra);
        goto out;
    }
    si_launch l = {.f = cur->f, .gx = p->gridDimX, .gy = p->gridDimY, .gz = p->gridDimZ, .bx = p->blockDimX, .by = p->blockDimY,
                   .bz = p->blockDimZ, .shmem = p->sharedMemBytes};
    if ((rc = read_args("cuGraphExecKernelNodeSetParams", &l, p->kernelParams))) goto out;
    take_extents(&l);
    if ((rc = check_launch("cuGraphExecKernelNodeSetParams", &l)) && rc != SI_ILLEGAL_ADDRESS) goto out;
    rc = 0;
    *cur = l;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuGraphLaunch(void* exec, void* stream) {
    pthread_mutex_lock(&lock);
    int rc = standin_sticky();
    si_stream* s = rc ? NULL : standin_stream("cuGraphLaunch", stream, &rc);
    if (!s) goto out;
    if (!handle_ok(exec, H_EXEC)) { rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphLaunch: hGraphExec %p is not an instantiated graph", exec); goto out; }
    if (s->capture) { rc = standin_fail(SI_CAPTURE_UNSUPPORTED, 0, "cuGraphLaunch: into a capture (not used by the project)"); goto out; }
    if (s->legacy && (rc = legacy_conflict("cuGraphLaunch(legacy stream)"))) goto out;
    si_exec* x = exec;
    order_pinned_check();
    if (standin_faulted()) goto out;
    order_graph_begin(s->slot, x->reach, (uint32_t) x->n);
    for (size_t i = 0; i < x->n && !standin_faulted(); i++) {
        order_graph_node((uint32_t) i, x->calls[i]);
        x->fns[i](x->payloads[i]);
    }
    order_graph_end();
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuGraphExecDestroy(void* exec) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (!handle_ok(exec, H_EXEC)) rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphExecDestroy: %p is not an instantiated graph", exec);
    else {
        si_exec* x = exec;
        for (size_t i = 0; i < x->n; i++) if (x->fns[i] != run_launch) free(x->payloads[i]);
        free(x->orig); free(x->fns); free(x->payloads); free(x->launches); free(x->calls); free(x->reach);
        handle_remove(x);
        free(x);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuGraphDestroy(void* graph) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (!handle_ok(graph, H_GRAPH) || !((si_graph*) graph)->ended) rc = standin_fail(SI_INVALID_VALUE, 0, "cuGraphDestroy: %p is not a graph", graph);
    else graph_free(graph);
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int cuGetErrorString(int code, const char** out) {
    if (out == NULL) return SI_INVALID_VALUE;
    const char* m = standin_message(code);
    static char generic[64];
    if (m == NULL) {
        snprintf(generic, sizeof generic, "CUDA error %d (stand-in)", code);
        m = generic;
    }
    *out = m;
    return 0;
}

// ---------------------------------------------------------------- GEMM

float standin_bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t) b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t standin_float_to_bf16(float f) {  // round to nearest even; NaN stays a quiet NaN (as common.cuh and BFloat16)
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t) ((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

static size_t elem(int type) { return type == SI_BF16 ? 2 : 4; }

static float get(const void* p, int type, int64_t i) {
    return type == SI_BF16 ? standin_bf16_to_float(((const uint16_t*) p)[i]) : ((const float*) p)[i];
}

static void set(void* p, int type, int64_t i, float v) {
    if (type == SI_BF16) ((uint16_t*) p)[i] = standin_float_to_bf16(v);
    else ((float*) p)[i] = v;
}

// Bytes a column-major rows x cols matrix with leading dimension ld reaches.
static size_t extent(int64_t rows, int64_t cols, int64_t ld, size_t e) {
    return rows == 0 || cols == 0 ? 0 : ((size_t) (cols - 1) * ld + rows) * e;
}

static int check_matrix(const char* call, const char* arg, const void* p, int64_t rows, int64_t cols, int64_t ld, size_t e) {
    return standin_check(call, arg, p, extent(rows, cols, ld, e), MEM_DEVICE, 1);
}

// One batch entry's operands, checked (pointer tables are read here, when the GEMM runs).
static int operands(const char* call, const si_gemm* g, int b, const void** A, const void** B, void** C) {
    int64_t ar = g->transA ? g->k : g->m, ac = g->transA ? g->m : g->k;
    int64_t br = g->transB ? g->n : g->k, bc = g->transB ? g->k : g->n;
    size_t ea = elem(g->typeAB), ec = elem(g->typeC);
    int rc;
    if (g->aArray) {
        *A = g->aArray[b]; *B = g->bArray[b]; *C = g->cArray[b];
    } else {
        *A = (const char*) g->a + (size_t) b * g->strideA * ea;
        *B = (const char*) g->b + (size_t) b * g->strideB * ea;
        *C = (char*) g->c + (size_t) b * g->strideC * ec;
    }
    char arg[64];
    snprintf(arg, sizeof arg, g->aArray ? "Aarray[%d]" : g->batch > 1 ? "A (batch %d)" : "A", b);
    if ((rc = check_matrix(call, arg, *A, ar, ac, g->lda, ea))) return rc;
    snprintf(arg, sizeof arg, g->bArray ? "Barray[%d]" : g->batch > 1 ? "B (batch %d)" : "B", b);
    if ((rc = check_matrix(call, arg, *B, br, bc, g->ldb, ea))) return rc;
    snprintf(arg, sizeof arg, g->cArray ? "Carray[%d]" : g->batch > 1 ? "C (batch %d)" : "C", b);
    return check_matrix(call, arg, *C, g->m, g->n, g->ldc, ec);
}

// op(X) of a column-major matrix as a packed column-major float matrix rows x cols (ld = rows).
static void pack(float* out, const void* x, int type, int trans, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t c = 0; c < cols; c++) {
        for (int64_t r = 0; r < rows; r++) out[r + c * rows] = get(x, type, trans ? c + r * ld : r + c * ld);
    }
}

static int run_gemm(void* payload) {
    const si_gemm* g = payload;
    int64_t m = g->m, n = g->n, k = g->k;
    if (g->aArray) {  // the pointer tables are read on the device too
        size_t table = (size_t) g->batch * sizeof(void*);
        int rc = order_access(g->aArray, table, 0, "Aarray");
        if (!rc) rc = order_access(g->bArray, table, 0, "Barray");
        if (!rc) rc = order_access(g->cArray, table, 0, "Carray");
        if (rc) return rc;
    }
    float* a = malloc((size_t) (m * k ? m * k : 1) * sizeof(float));
    float* b = malloc((size_t) (k * n ? k * n : 1) * sizeof(float));
    float* acc = malloc((size_t) (m ? m : 1) * sizeof(float));
    int rc = 0;
    for (int bi = 0; bi < g->batch && !rc; bi++) {
        const void *A, *B;
        void* C;
        if ((rc = operands("GEMM", g, bi, &A, &B, &C))) break;
        int64_t ar = g->transA ? k : m, ac = g->transA ? m : k, br = g->transB ? n : k, bc = g->transB ? k : n;
        if ((rc = order_access(A, extent(ar, ac, g->lda, elem(g->typeAB)), 0, "A"))
            || (rc = order_access(B, extent(br, bc, g->ldb, elem(g->typeAB)), 0, "B"))
            || (rc = order_access(C, extent(m, n, g->ldc, elem(g->typeC)), 1, g->beta != 0.f ? "C (read and written)" : "C"))
            || (g->bias && (rc = order_access(g->bias, (size_t) m * elem(g->biasType), 0, "bias")))
            || (g->gelu && g->aux && (rc = order_access(g->aux, extent(m, n, g->auxLd, elem(g->typeC)), 1, "epilogue aux")))) break;
        pack(a, A, g->typeAB, g->transA, m, k, g->lda);
        pack(b, B, g->typeAB, g->transB, k, n, g->ldb);
        for (int64_t j = 0; j < n; j++) {
            // each element summed in order p = 0..k-1 in float (as the emulator's Java GEMM), a column at a time
            for (int64_t i = 0; i < m; i++) acc[i] = 0.f;
            for (int64_t p = 0; p < k; p++) {
                const float bp = b[p + j * k], *ap = a + p * m;
                for (int64_t i = 0; i < m; i++) acc[i] += ap[i] * bp;
            }
            for (int64_t i = 0; i < m; i++) {
                int64_t ci = i + j * g->ldc;
                float v = g->alpha * acc[i];
                if (g->beta != 0.f) v += g->beta * get(C, g->typeC, ci);
                if (g->bias) v += get(g->bias, g->biasType, i);
                if (g->gelu) {
                    if (g->aux) set(g->aux, g->typeC, i + j * g->auxLd, v);
                    double x = v;
                    v = (float) (0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
                }
                set(C, g->typeC, ci, v);
            }
        }
    }
    free(a);
    free(b);
    free(acc);
    return rc;
}

int standin_gemm(const char* call, si_stream* s, const si_gemm* g) {
    int rc;
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0)
        return standin_fail(SI_INVALID_VALUE, 0, "%s: negative size (m %d, n %d, k %d, batch %d)", call, g->m, g->n, g->k, g->batch);
    if (g->lda < (g->transA ? g->k : g->m) || g->ldb < (g->transB ? g->n : g->k) || g->ldc < g->m || g->lda < 1 || g->ldb < 1 || g->ldc < 1)
        return standin_fail(SI_INVALID_VALUE, 0, "%s: leading dimension too small (lda %ld, ldb %ld, ldc %ld for m %d n %d k %d, transA %d transB %d)",
                            call, (long) g->lda, (long) g->ldb, (long) g->ldc, g->m, g->n, g->k, g->transA, g->transB);
    if (g->typeAB != SI_F32 && g->typeAB != SI_BF16) return standin_fail(SI_INVALID_VALUE, 0, "%s: A/B type %d not supported here", call, g->typeAB);
    if (g->typeC != SI_F32 && g->typeC != SI_BF16) return standin_fail(SI_INVALID_VALUE, 0, "%s: C type %d not supported here", call, g->typeC);
    if (g->aArray) {
        size_t table = (size_t) g->batch * sizeof(void*);
        if ((rc = standin_check(call, "Aarray", g->aArray, table, MEM_DEVICE, 1))
            || (rc = standin_check(call, "Barray", g->bArray, table, MEM_DEVICE, 1))
            || (rc = standin_check(call, "Carray", g->cArray, table, MEM_DEVICE, 1))) return rc == SI_ILLEGAL_ADDRESS ? 0 : rc;
    }
    // an operand outside device memory faults on the device: pending, and the GEMM never runs
    for (int b = 0; b < g->batch; b++) {
        const void *A, *B;
        void* C;
        if ((rc = operands(call, g, b, &A, &B, &C))) return rc == SI_ILLEGAL_ADDRESS ? 0 : rc;
    }
    if (g->bias && (rc = standin_check(call, "bias", g->bias, (size_t) g->m * elem(g->biasType), MEM_DEVICE, 1))) return 0;
    if (g->gelu && g->aux && (rc = check_matrix(call, "epilogue aux (pre-activation)", g->aux, g->m, g->n, g->auxLd, elem(g->typeC)))) return 0;
    return standin_submit(call, s, run_gemm, g, sizeof *g);
}
