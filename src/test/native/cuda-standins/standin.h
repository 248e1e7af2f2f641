// CPU stand-ins of the CUDA libraries the project calls through JavaCPP (tests only; see
// CudaStandins.java, which builds them). libcuda.so.1 holds the state every stand-in shares and
// exports it through the standin_* functions below; libcudart.so.13, libcublas.so.13,
// libcublasLt.so.13 and libnccl.so.2 link against it.
//
// "Device" memory is host memory, but every device pointer a call receives is checked against the
// registry of live cudaMalloc allocations (and their sizes), host pointers against the device
// registry and the pinned one. Work runs when it is queued (one thread, the caller's); what CUDA
// guarantees about its order is tracked beside it (order.c: happens-before by vector clocks), so
// two streams touching the same bytes without an event or a synchronization between them are
// reported as a race although nothing ran concurrently. A stream being captured records its work
// as graph nodes instead, with the rules CUDA enforces during a capture. A failed check prints one
// line "cuda-standin: CALL: ARGUMENT ..." on stderr and returns the error CUDA would. A fault on
// the device (an access outside a kernel's buffers or a GEMM's operands, a race) is asynchronous
// and sticky, as on a GPU: the call that queued the work succeeds, the next synchronizing call
// returns the error, and from then on every call does.
#ifndef GPT2_STANDIN_H
#define GPT2_STANDIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

// CUDA runtime error codes (driver_types.h; the driver's CUresult values are the same numbers)
enum {
    SI_SUCCESS = 0,
    SI_INVALID_VALUE = 1,
    SI_MEMORY_ALLOCATION = 2,
    SI_NOT_INITIALIZED = 3,
    SI_INVALID_DEVICE_POINTER = 17,
    SI_INVALID_MEMCPY_DIRECTION = 21,
    SI_NO_DEVICE = 100,
    SI_INVALID_DEVICE = 101,
    SI_INVALID_IMAGE = 200,
    SI_INVALID_HANDLE = 400,
    SI_NOT_FOUND = 500,
    SI_NOT_READY = 600,
    SI_ILLEGAL_ADDRESS = 700,
    SI_LAUNCH_OUT_OF_RESOURCES = 701,
    SI_CAPTURE_UNSUPPORTED = 900,
    SI_CAPTURE_INVALIDATED = 901,
    SI_CAPTURE_UNMATCHED = 903,
    SI_CAPTURE_UNJOINED = 904,
    SI_CAPTURE_IMPLICIT = 906,
    SI_CAPTURED_EVENT = 907,
    SI_CAPTURE_WRONG_THREAD = 908,
};

// The lock every entry point holds (recursive).
void standin_lock(void);
void standin_unlock(void);

// Records an error: its one-line message (printed on stderr, and what the error-string calls
// return for this code until the next error). sticky: a device fault, which a GPU reports late and
// which leaves it unusable: it becomes pending (no more work runs, calls still succeed) until the
// next synchronizing call surfaces it (standin_surface). Returns code.
int standin_fail(int code, int sticky, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
// The message of the last error if it had this code (the sticky one's for its code), else NULL.
const char* standin_message(int code);
// The last error's message ("" if none).
const char* standin_last_message(void);
// The sticky error once surfaced (0: none): every call fails with it.
int standin_sticky(void);
// A synchronizing call: a pending device fault becomes the sticky error. Returns standin_sticky().
int standin_surface(void);
// Whether a device fault is pending or surfaced (queued work no longer runs).
int standin_faulted(void);

// ---- memory registries
enum { MEM_DEVICE = 1, MEM_PINNED = 2 };
int standin_alloc(const char* call, void** out, size_t bytes, int kind);
int standin_free(const char* call, void* p, int kind);
// 0 when [p, p + bytes) lies inside one live allocation of that kind; else the error, reported
// as "CALL: ARG 0x... is ..." (a host or stack address, freed memory, past the end of an allocation).
int standin_check(const char* call, const char* arg, const void* p, size_t bytes, int kind, int sticky);
// Whether p lies inside a live allocation of that kind.
int standin_is(const void* p, int kind);
// The live allocation of that kind p lies in: 1 and its base and size, or 0.
int standin_region(const void* p, int kind, uintptr_t* base, size_t* size);
// Bytes of live device allocations.
size_t standin_allocated(void);

// ---- streams and capture
typedef struct si_stream si_stream;
// The stream behind a handle (NULL or 1: the legacy stream, 2: per-thread); NULL (after reporting) if invalid.
si_stream* standin_stream(const char* call, void* handle, int* err);
// Work queued on a stream: run now, or (stream capturing) a graph node that runs fn(payload) at launch.
// The payload is copied. Returns 0 or the error (a capture the call may not join is invalidated).
typedef int (*si_op)(void* payload);
int standin_submit(const char* call, si_stream* s, si_op fn, const void* payload, size_t bytes);
// A call that would wait for or synchronize with the device from this thread (a synchronous copy,
// an allocation, a device synchronization): refused, and the capture invalidated, while this
// thread (or, in global mode, any thread) is capturing. Returns 0 or the error.
int standin_capture_guard(const char* call, int code);
// Whether a stream is being captured.
int standin_capturing(si_stream* s);
// Invalidates the capture a stream belongs to (a call it could not record).
void standin_invalidate(si_stream* s);
// The runtime's stream and event calls (cudart.c forwards to these).
int standin_stream_create(void** out, unsigned flags);
int standin_stream_destroy(void* h);
int standin_stream_synchronize(void* h);
int standin_device_synchronize(void);
int standin_event_create(void** out, unsigned flags);
int standin_event_destroy(void* h);
int standin_event_record(void* h, void* stream);
int standin_stream_wait_event(void* stream, void* h);
int standin_event_synchronize(void* h);
int standin_event_elapsed(float* ms, void* a, void* b);

// ---- happens-before (order.c)
#define SI_CLOCKS 64
typedef struct { uint64_t c[SI_CLOCKS]; } si_vclock;
// A clock slot for a new stream (0 is the legacy stream's), or -1 when all are taken.
int order_stream_new(int blocking);
void order_stream_free(int slot);
// An operation queued on a stream's slot runs between these (what: a stable string naming it).
void order_op_begin(int slot, const char* what);
void order_op_end(void);
// A graph launched on a stream: its nodes in turn; reach[i * nodes + j] says node j precedes node i.
void order_graph_begin(int slot, const unsigned char* reach, uint32_t nodes);
void order_graph_node(uint32_t node, const char* what);
void order_graph_end(void);
void order_event_record(si_vclock* event, int slot);
void order_stream_wait(int slot, const si_vclock* event);
// The host waits: for an event, a stream, or the whole device (records it passed are dropped).
void order_host_join(const si_vclock* event);
void order_host_join_stream(int slot);
void order_host_join_all(void);
// The running operation reads or writes [p, p + bytes) of device memory: 0, or a race (reported).
int order_access(const void* p, size_t bytes, int write, const char* arg);
// An allocation freed: its records go.
void order_forget(uintptr_t base);
// The running operation copies from pinned host memory asynchronously: fingerprinted until the host
// has synchronized past it; order_pinned_check reports one the host changed before that.
void order_pinned_inflight(const void* p, size_t bytes);
int order_pinned_check(void);
void order_pinned_forget(const void* base, size_t bytes);

// ---- CUBIN (cubin.c)
// The size of an ELF image (the driver gets none with cuModuleLoadData): the furthest byte any
// section or the section header table reaches.
size_t cubin_size(const unsigned char* img);
// A kernel's registers per thread and static shared bytes; 0 if the image has no such kernel.
int cubin_kernel_info(const unsigned char* img, size_t n, const char* kernel, int* registers, int* static_shared);

// The stand-in device's architecture: 90 (an H100), or 80 (an A100) with GPT2_STANDIN_ARCH=80.
int standin_arch(void);

// ---- GEMM on the CPU (column-major, float accumulation in order k = 0..K-1)
enum { SI_F32 = 0, SI_BF16 = 14 };  // cudaDataType values
typedef struct {
    int transA, transB, m, n, k;
    const void* a; int64_t lda; int64_t strideA;
    const void* b; int64_t ldb; int64_t strideB;
    void* c; int64_t ldc; int64_t strideC;
    int batch, typeAB, typeC;
    float alpha, beta;
    const void* const* aArray; const void* const* bArray; void* const* cArray;  // pointer-array GEMMs (else NULL)
    const void* bias; int biasType;   // epilogue (cuBLASLt): bias added to every column
    int gelu; void* aux; int64_t auxLd; // GELU with the pre-activation kept in aux
} si_gemm;
// Checks every operand against the registry, then queues the GEMM on s. Returns 0 or the error.
int standin_gemm(const char* call, si_stream* s, const si_gemm* g);

float standin_bf16_to_float(uint16_t b);
uint16_t standin_float_to_bf16(float f);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
