// libcudart.so.13 stand-in: the CUDA runtime calls the project makes, over the shared state of
// the libcuda.so.1 stand-in (core.c). One device, "device 0", an sm_90 (sm_80 with
// GPT2_STANDIN_ARCH=80) with GPT2_STANDIN_MEMORY bytes (default 16 GiB) of memory.
#define _GNU_SOURCE
#include "standin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))


static int last_error;

// Every runtime call returns through here: the sticky error wins, a failure is kept for cudaGetLastError.
static int done(int rc) {
    if (rc) last_error = rc;
    standin_unlock();
    return rc;
}

#define ENTER()                                   \
    standin_lock();                               \
    if (standin_sticky()) return done(standin_sticky())

static size_t total_memory(void) {
    const char* env = getenv("GPT2_STANDIN_MEMORY");
    return env && *env ? (size_t) strtoull(env, NULL, 10) : (size_t) 16 << 30;
}

EXPORT const char* cudaGetErrorString(int code) {
    const char* m = standin_message(code);
    if (m) return m;
    switch (code) {
        case 0: return "no error";
        case SI_INVALID_VALUE: return "invalid argument";
        case SI_MEMORY_ALLOCATION: return "out of memory";
        case SI_ILLEGAL_ADDRESS: return "an illegal memory access was encountered";
        case SI_CAPTURE_UNSUPPORTED: return "operation not permitted when stream is capturing";
        case SI_CAPTURE_INVALIDATED: return "operation failed due to a previous error during capture";
        case SI_CAPTURE_IMPLICIT: return "operation would make the legacy stream depend on a capturing blocking stream";
        default: return "unknown error (stand-in)";
    }
}

EXPORT int cudaGetLastError(void) {
    standin_lock();
    int rc = standin_sticky() ? standin_sticky() : last_error;
    last_error = 0;
    standin_unlock();
    return rc;
}

// GPT2_STANDIN_DEVICES (default 1): how many devices a process sees (a rank per device for DDP
// tests); each process still has one memory, so they are alike but for their number.
static int device_count(void) {
    const char* env = getenv("GPT2_STANDIN_DEVICES");
    int n = env && *env ? atoi(env) : 1;
    return n < 1 ? 1 : n;
}

EXPORT int cudaGetDeviceCount(int* count) {
    if (count == NULL) return SI_INVALID_VALUE;
    *count = device_count();
    return 0;
}

EXPORT int cudaSetDevice(int device) {
    ENTER();
    if (device < 0 || device >= device_count())
        return done(standin_fail(SI_INVALID_DEVICE, 0, "cudaSetDevice(%d): the stand-in has %d device(s) (GPT2_STANDIN_DEVICES)", device, device_count()));
    return done(0);
}

EXPORT int cudaGetDeviceProperties(void* prop, int device) {
    ENTER();
    if (device < 0 || device >= device_count())
        return done(standin_fail(SI_INVALID_DEVICE, 0, "cudaGetDeviceProperties(%d): the stand-in has %d device(s)", device, device_count()));
    if (prop == NULL) return done(standin_fail(SI_INVALID_VALUE, 0, "cudaGetDeviceProperties: prop is NULL"));
    // offsets of struct cudaDeviceProp in CUDA 13's driver_types.h (1008 bytes)
    unsigned char* p = prop;
    memset(p, 0, 1008);
    snprintf((char*) p, 256, "CUDA stand-in (CPU emulator)");
    size_t total = total_memory();
    memcpy(p + 288, &total, 8);          // totalGlobalMem
    int a100 = standin_arch() == 80;  // what the launch limits follow too
    int major = a100 ? 8 : 9, minor = 0, sms = a100 ? 108 : 132, optin = (a100 ? 163 : 227) * 1024;
    memcpy(p + 360, &major, 4);          // major
    memcpy(p + 364, &minor, 4);          // minor
    memcpy(p + 384, &sms, 4);            // multiProcessorCount
    memcpy(p + 672, &optin, 4);          // sharedMemPerBlockOptin
    return done(0);
}

EXPORT int cudaMalloc(void** out, size_t bytes) {
    ENTER();
    int rc = standin_capture_guard("cudaMalloc", SI_CAPTURE_UNSUPPORTED);
    if (rc) return done(rc);
    if (standin_allocated() + bytes > total_memory()) {
        return done(standin_fail(SI_MEMORY_ALLOCATION, 0, "cudaMalloc: out of memory: %zu bytes asked, %zu of %zu in use", bytes,
                                 standin_allocated(), total_memory()));
    }
    return done(standin_alloc("cudaMalloc", out, bytes, MEM_DEVICE));
}

EXPORT int cudaFree(void* p) {
    ENTER();
    if (p == NULL) return done(0);  // also how a context is created
    int rc = standin_capture_guard("cudaFree", SI_CAPTURE_UNSUPPORTED);
    // cudaFree synchronizes the device first
    if (rc || (rc = standin_device_synchronize())) return done(rc);
    return done(standin_free("cudaFree", p, MEM_DEVICE));
}

EXPORT int cudaMallocHost(void** out, size_t bytes) {
    ENTER();
    int rc = standin_capture_guard("cudaMallocHost", SI_CAPTURE_UNSUPPORTED);
    return done(rc ? rc : standin_alloc("cudaMallocHost", out, bytes, MEM_PINNED));
}

EXPORT int cudaFreeHost(void* p) {
    ENTER();
    int rc = standin_capture_guard("cudaFreeHost", SI_CAPTURE_UNSUPPORTED);
    if (rc || (rc = standin_device_synchronize())) return done(rc);
    return done(standin_free("cudaFreeHost", p, MEM_PINNED));
}

EXPORT int cudaMemGetInfo(size_t* free_bytes, size_t* total) {
    ENTER();
    if (free_bytes == NULL || total == NULL) return done(standin_fail(SI_INVALID_VALUE, 0, "cudaMemGetInfo: NULL output"));
    *total = total_memory();
    *free_bytes = *total - standin_allocated();
    return done(0);
}

// ---------------------------------------------------------------- memset, memcpy

typedef struct { void* dst; int value; size_t bytes; } memset_op;
typedef struct { void* dst; const void* src; size_t bytes; int async; } memcpy_op;

static int run_memset(void* p) {
    memset_op* m = p;
    int rc = standin_check("memset", "devPtr", m->dst, m->bytes, MEM_DEVICE, 1);
    if (!rc) rc = order_access(m->dst, m->bytes, 1, "devPtr");
    if (!rc) memset(m->dst, m->value, m->bytes);
    return rc;
}

static int run_memcpy(void* p) {
    memcpy_op* m = p;
    int rc = 0;
    if (standin_is(m->src, MEM_DEVICE)) rc = order_access(m->src, m->bytes, 0, "src");
    if (!rc && standin_is(m->dst, MEM_DEVICE)) rc = order_access(m->dst, m->bytes, 1, "dst");
    if (rc) return rc;
    memmove(m->dst, m->src, m->bytes);
    // the device reads pinned memory when the copy runs, which may be later than this call
    if (m->async && standin_is(m->src, MEM_PINNED)) order_pinned_inflight(m->src, m->bytes);
    return 0;
}

static int memset_on(const char* call, void* dst, int value, size_t bytes, void* stream) {
    int rc = standin_check(call, "devPtr", dst, bytes, MEM_DEVICE, 0);
    if (rc) return rc;
    si_stream* s = standin_stream(call, stream, &rc);
    if (!s) return rc;
    memset_op m = {dst, value, bytes};
    return standin_submit(call, s, run_memset, &m, sizeof m);
}

EXPORT int cudaMemset(void* dst, int value, size_t bytes) {
    ENTER();
    return done(memset_on("cudaMemset", dst, value, bytes, NULL));
}

EXPORT int cudaMemsetAsync(void* dst, int value, size_t bytes, void* stream) {
    ENTER();
    return done(memset_on("cudaMemsetAsync", dst, value, bytes, stream));
}

enum { H2H = 0, H2D = 1, D2H = 2, D2D = 3, DEFAULT = 4 };

// Host memory for a copy: anything but device memory; pinned memory must hold the whole range.
static int check_host(const char* call, const char* arg, const void* p, size_t bytes, int must_be_pinned) {
    if (p == NULL) return standin_fail(SI_INVALID_VALUE, 0, "%s: %s is NULL", call, arg);
    if (standin_is(p, MEM_DEVICE)) {
        return standin_fail(SI_INVALID_VALUE, 0, "%s: %s 0x%lx is device memory, but the copy's kind says host", call, arg, (unsigned long) p);
    }
    if (standin_is(p, MEM_PINNED) || must_be_pinned) return standin_check(call, arg, p, bytes, MEM_PINNED, 0);
    return 0;
}

static int memcpy_on(const char* call, void* dst, const void* src, size_t bytes, int kind, void* stream, int async) {
    int rc;
    si_stream* s = standin_stream(call, stream, &rc);
    if (!s) return rc;
    if (kind == DEFAULT) kind = (standin_is(src, MEM_DEVICE) ? 2 : 0) + (standin_is(dst, MEM_DEVICE) ? 1 : 0);
    // a capture holds copies only between device memory and pinned host memory (the graph copies at launch)
    int pinned = async && standin_capturing(s);
    switch (kind) {
        case H2H: rc = check_host(call, "src", src, bytes, 0); if (!rc) rc = check_host(call, "dst", dst, bytes, 0); break;
        case H2D: rc = check_host(call, "src", src, bytes, pinned); if (!rc) rc = standin_check(call, "dst", dst, bytes, MEM_DEVICE, 0); break;
        case D2H: rc = standin_check(call, "src", src, bytes, MEM_DEVICE, 0); if (!rc) rc = check_host(call, "dst", dst, bytes, pinned); break;
        case D2D: rc = standin_check(call, "src", src, bytes, MEM_DEVICE, 0); if (!rc) rc = standin_check(call, "dst", dst, bytes, MEM_DEVICE, 0); break;
        default: return standin_fail(SI_INVALID_MEMCPY_DIRECTION, 0, "%s: kind %d", call, kind);
    }
    if (rc) {
        if (standin_capturing(s)) standin_invalidate(s);
        return rc;
    }
    memcpy_op m = {dst, src, bytes, async};
    return standin_submit(call, s, run_memcpy, &m, sizeof m);
}

// A synchronous copy: the host waits for it (and so for what the legacy stream waited for).
EXPORT int cudaMemcpy(void* dst, const void* src, size_t bytes, int kind) {
    ENTER();
    int rc = memcpy_on("cudaMemcpy", dst, src, bytes, kind, NULL, 0);
    if (!rc) order_host_join_stream(0);
    return done(rc ? rc : standin_surface());
}

EXPORT int cudaMemcpyAsync(void* dst, const void* src, size_t bytes, int kind, void* stream) {
    ENTER();
    return done(memcpy_on("cudaMemcpyAsync", dst, src, bytes, kind, stream, 1));
}

// ---------------------------------------------------------------- streams, events, synchronization

EXPORT int cudaDeviceSynchronize(void) {
    ENTER();
    return done(standin_device_synchronize());
}

EXPORT int cudaStreamCreateWithFlags(void** out, unsigned flags) {
    ENTER();
    if (out == NULL) return done(standin_fail(SI_INVALID_VALUE, 0, "cudaStreamCreateWithFlags: pStream is NULL"));
    return done(standin_stream_create(out, flags));
}

EXPORT int cudaStreamDestroy(void* s) {
    ENTER();
    return done(standin_stream_destroy(s));
}

EXPORT int cudaStreamSynchronize(void* s) {
    ENTER();
    return done(standin_stream_synchronize(s));
}

EXPORT int cudaStreamWaitEvent(void* s, void* e, unsigned flags) {
    ENTER();
    (void) flags;
    return done(standin_stream_wait_event(s, e));
}

EXPORT int cudaEventCreateWithFlags(void** out, unsigned flags) {
    ENTER();
    if (out == NULL) return done(standin_fail(SI_INVALID_VALUE, 0, "cudaEventCreate: event is NULL"));
    return done(standin_event_create(out, flags));
}

EXPORT int cudaEventCreate(void** out) {
    return cudaEventCreateWithFlags(out, 0);
}

EXPORT int cudaEventDestroy(void* e) {
    ENTER();
    return done(standin_event_destroy(e));
}

EXPORT int cudaEventRecord(void* e, void* s) {
    ENTER();
    return done(standin_event_record(e, s));
}

EXPORT int cudaEventSynchronize(void* e) {
    ENTER();
    return done(standin_event_synchronize(e));
}

EXPORT int cudaEventElapsedTime(float* ms, void* a, void* b) {
    ENTER();
    return done(standin_event_elapsed(ms, a, b));
}
