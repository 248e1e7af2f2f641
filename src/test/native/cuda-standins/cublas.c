// libcublas.so.13 stand-in: the cuBLAS calls the project makes. Each GEMM's operands are checked
// against the device registry (matrices by their full extent, pointer-array tables and every
// matrix they point to) and the GEMM runs on the CPU (core.c) on the handle's stream, or is
// recorded when that stream is being captured. alpha and beta are host pointers (the default
// pointer mode); compute is float32.
#define _GNU_SOURCE
#include "standin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

enum { SUCCESS = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, EXECUTION_FAILED = 13, NOT_SUPPORTED = 15 };
enum { COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69, COMPUTE_32F_FAST_TF32 = 77 };

typedef struct { void* stream; void* workspace; size_t workspace_bytes; int math_mode; } blas_handle;

static blas_handle* handles[64];
static int nhandles;
static int last_status;

static int live(const void* h) {
    for (int i = 0; i < nhandles; i++) if (handles[i] == h) return 1;
    return 0;
}

// A stand-in error code as a cuBLAS status (kept, with its message, for cublasGetStatusString).
static int status(int rc) {
    int s = rc == 0 ? SUCCESS : rc == SI_INVALID_VALUE ? INVALID_VALUE : EXECUTION_FAILED;
    if (s) last_status = s;
    standin_unlock();
    return s;
}

static int fail(int s, const char* call, const char* what) {
    standin_fail(SI_INVALID_VALUE, 0, "%s: %s", call, what);
    last_status = s;
    standin_unlock();
    return s;
}

EXPORT const char* cublasGetStatusString(int s) {
    if (s != SUCCESS && s == last_status) return standin_last_message();
    switch (s) {
        case SUCCESS: return "the operation completed successfully";
        case NOT_INITIALIZED: return "the library was not initialized";
        case INVALID_VALUE: return "an invalid value was used as an argument";
        case EXECUTION_FAILED: return "the GPU program failed to execute";
        case NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return "unknown cuBLAS status (stand-in)";
    }
}

EXPORT int cublasCreate_v2(void** out) {
    standin_lock();
    if (standin_sticky()) return status(standin_sticky());
    if (out == NULL) return fail(INVALID_VALUE, "cublasCreate", "handle is NULL");
    if (nhandles == 64) return fail(EXECUTION_FAILED, "cublasCreate", "too many handles");
    blas_handle* h = calloc(1, sizeof *h);
    handles[nhandles++] = h;
    *out = h;
    return status(0);
}

EXPORT int cublasDestroy_v2(void* h) {
    standin_lock();
    for (int i = 0; i < nhandles; i++) {
        if (handles[i] == h) {
            handles[i] = handles[--nhandles];
            free(h);
            return status(0);
        }
    }
    return fail(NOT_INITIALIZED, "cublasDestroy", "not a live handle");
}

EXPORT int cublasSetStream_v2(void* h, void* stream) {
    standin_lock();
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasSetStream", "not a live handle");
    int rc;
    if (!standin_stream("cublasSetStream", stream, &rc)) return status(rc);
    ((blas_handle*) h)->stream = stream;
    ((blas_handle*) h)->workspace = NULL;  // setting the stream resets the workspace to cuBLAS's own
    ((blas_handle*) h)->workspace_bytes = 0;
    return status(0);
}

EXPORT int cublasSetWorkspace_v2(void* h, void* workspace, size_t bytes) {
    standin_lock();
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasSetWorkspace", "not a live handle");
    if (bytes > 0) {
        int rc = standin_check("cublasSetWorkspace", "workspace", workspace, bytes, MEM_DEVICE, 0);
        if (rc) return status(rc);
    }
    ((blas_handle*) h)->workspace = workspace;
    ((blas_handle*) h)->workspace_bytes = bytes;
    return status(0);
}

EXPORT int cublasSetMathMode(void* h, int mode) {
    standin_lock();
    if (!live(h)) return fail(NOT_INITIALIZED, "cublasSetMathMode", "not a live handle");
    ((blas_handle*) h)->math_mode = mode;
    return status(0);
}

// alpha or beta: a host float (pointer mode host).
static int scalar(const char* call, const char* arg, const void* p, float* out) {
    if (p == NULL) return standin_fail(SI_INVALID_VALUE, 0, "%s: %s is NULL", call, arg);
    if (standin_is(p, MEM_DEVICE)) {
        return standin_fail(SI_INVALID_VALUE, 0, "%s: %s is device memory but the pointer mode is host", call, arg);
    }
    memcpy(out, p, 4);
    return 0;
}

static int op(const char* call, int trans, int* out) {
    if (trans != 0 && trans != 1) return standin_fail(SI_INVALID_VALUE, 0, "%s: operation %d (expected CUBLAS_OP_N or _T)", call, trans);
    *out = trans;
    return 0;
}

// The common part of every GEMM entry point: handle, operations, scalars; then the GEMM is queued.
static int gemm(const char* call, void* h, int ta, int tb, const void* alpha, const void* beta, si_gemm* g) {
    standin_lock();
    if (standin_sticky()) return status(standin_sticky());
    if (!live(h)) return fail(NOT_INITIALIZED, call, "not a live handle");
    int rc;
    if ((rc = op(call, ta, &g->transA)) || (rc = op(call, tb, &g->transB)) || (rc = scalar(call, "alpha", alpha, &g->alpha))
        || (rc = scalar(call, "beta", beta, &g->beta)))
        return status(rc);
    si_stream* s = standin_stream(call, ((blas_handle*) h)->stream, &rc);
    if (!s) return status(rc);
    return status(standin_gemm(call, s, g));
}

static int compute(const char* call, int type) {
    return type == COMPUTE_32F || type == COMPUTE_32F_PEDANTIC || type == COMPUTE_32F_FAST_TF32
        ? 0 : standin_fail(SI_INVALID_VALUE, 0, "%s: compute type %d not supported here", call, type);
}

EXPORT int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                          const float* B, int ldb, const float* beta, float* C, int ldc) {
    si_gemm g = {.m = m, .n = n, .k = k, .a = A, .lda = lda, .b = B, .ldb = ldb, .c = C, .ldc = ldc, .batch = 1,
                 .typeAB = SI_F32, .typeC = SI_F32};
    return gemm("cublasSgemm", h, ta, tb, alpha, beta, &g);
}

EXPORT int cublasSgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                                     long long strideA, const float* B, int ldb, long long strideB, const float* beta, float* C,
                                     int ldc, long long strideC, int batch) {
    si_gemm g = {.m = m, .n = n, .k = k, .a = A, .lda = lda, .strideA = strideA, .b = B, .ldb = ldb, .strideB = strideB, .c = C,
                 .ldc = ldc, .strideC = strideC, .batch = batch, .typeAB = SI_F32, .typeC = SI_F32};
    return gemm("cublasSgemmStridedBatched", h, ta, tb, alpha, beta, &g);
}

EXPORT int cublasSgemmBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* const A[], int lda,
                              const float* const B[], int ldb, const float* beta, float* const C[], int ldc, int batch) {
    si_gemm g = {.m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batch, .typeAB = SI_F32, .typeC = SI_F32,
                 .aArray = (const void* const*) A, .bArray = (const void* const*) B, .cArray = (void* const*) C};
    return gemm("cublasSgemmBatched", h, ta, tb, alpha, beta, &g);
}

static int types(const char* call, int at, int bt, int ct, int computeType, si_gemm* g) {
    if (at != bt) return standin_fail(SI_INVALID_VALUE, 0, "%s: A type %d and B type %d differ", call, at, bt);
    g->typeAB = at;
    g->typeC = ct;
    return compute(call, computeType);
}

EXPORT int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at, int lda,
                        const void* B, int bt, int ldb, const void* beta, void* C, int ct, int ldc, int computeType, int algo) {
    (void) algo;
    si_gemm g = {.m = m, .n = n, .k = k, .a = A, .lda = lda, .b = B, .ldb = ldb, .c = C, .ldc = ldc, .batch = 1};
    standin_lock();
    int rc = types("cublasGemmEx", at, bt, ct, computeType, &g);
    standin_unlock();
    return rc ? (last_status = INVALID_VALUE) : gemm("cublasGemmEx", h, ta, tb, alpha, beta, &g);
}

EXPORT int cublasGemmStridedBatchedEx(void* h, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at,
                                      int lda, long long strideA, const void* B, int bt, int ldb, long long strideB,
                                      const void* beta, void* C, int ct, int ldc, long long strideC, int batch, int computeType,
                                      int algo) {
    (void) algo;
    si_gemm g = {.m = m, .n = n, .k = k, .a = A, .lda = lda, .strideA = strideA, .b = B, .ldb = ldb, .strideB = strideB, .c = C,
                 .ldc = ldc, .strideC = strideC, .batch = batch};
    standin_lock();
    int rc = types("cublasGemmStridedBatchedEx", at, bt, ct, computeType, &g);
    standin_unlock();
    return rc ? (last_status = INVALID_VALUE) : gemm("cublasGemmStridedBatchedEx", h, ta, tb, alpha, beta, &g);
}

EXPORT int cublasGemmBatchedEx(void* h, int ta, int tb, int m, int n, int k, const void* alpha, const void* const A[], int at,
                               int lda, const void* const B[], int bt, int ldb, const void* beta, void* const C[], int ct, int ldc,
                               int batch, int computeType, int algo) {
    (void) algo;
    si_gemm g = {.m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batch, .aArray = A, .bArray = B, .cArray = C};
    standin_lock();
    int rc = types("cublasGemmBatchedEx", at, bt, ct, computeType, &g);
    standin_unlock();
    return rc ? (last_status = INVALID_VALUE) : gemm("cublasGemmBatchedEx", h, ta, tb, alpha, beta, &g);
}
