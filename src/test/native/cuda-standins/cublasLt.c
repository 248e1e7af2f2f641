// libcublasLt.so.13 stand-in: matmul descriptors, layouts, preferences, the algorithm search and
// cublasLtMatmul with the epilogues the project uses (DEFAULT, BIAS, GELU_AUX, GELU_AUX_BIAS).
// The "algorithm" the search returns records the pointer alignments it was chosen for, and a
// matmul whose pointers are less aligned fails, as a real one may.
#define _GNU_SOURCE
#include "standin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

enum { SUCCESS = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, EXECUTION_FAILED = 13, NOT_SUPPORTED = 15 };
enum { EPI_DEFAULT = 1, EPI_BIAS = 4, EPI_GELU_AUX = 160, EPI_GELU_AUX_BIAS = 164 };
#define ALGO_MAGIC 0x6770743273746e64ull  // "gpt2stnd"

typedef struct { int compute, scale, transa, transb, epilogue, bias_type; const void* bias; void* aux; int64_t aux_ld; } desc_t;
typedef struct { int type; uint64_t rows, cols; int64_t ld; } layout_t;
typedef struct { uint64_t workspace; uint32_t align[4]; } pref_t;   // alignments of A, B, C, D
typedef struct { uint64_t data[8]; } algo_t;                          // cublasLtMatmulAlgo_t
typedef struct { algo_t algo; size_t workspaceSize; int state; float wavesCount; int reserved[4]; } heuristic_t;

enum { K_HANDLE = 1, K_DESC, K_LAYOUT, K_PREF };
static struct { void* p; int kind; } objects[4096];
static int nobjects;

static void add(void* p, int kind) {
    if (nobjects < 4096) objects[nobjects++].p = p, objects[nobjects - 1].kind = kind;
}

static int live(const void* p, int kind) {
    for (int i = 0; i < nobjects; i++) if (objects[i].p == p && objects[i].kind == kind) return 1;
    return 0;
}

static int drop(void* p, int kind) {
    for (int i = 0; i < nobjects; i++) {
        if (objects[i].p == p && objects[i].kind == kind) { objects[i] = objects[--nobjects]; free(p); return 1; }
    }
    return 0;
}

static int fail(int s, const char* fmt, const char* call, const char* what) {
    standin_fail(SI_INVALID_VALUE, 0, fmt, call, what);
    standin_unlock();
    return s;
}

#define BAD(call, what) fail(INVALID_VALUE, "%s: %s", call, what)

static int create(void** out, size_t bytes, int kind, const char* call) {
    standin_lock();
    if (out == NULL) return BAD(call, "the output pointer is NULL");
    void* p = calloc(1, bytes);
    add(p, kind);
    *out = p;
    standin_unlock();
    return SUCCESS;
}

static int destroy(void* p, int kind, const char* call) {
    standin_lock();
    if (!drop(p, kind)) return BAD(call, "not a live object of this kind");
    standin_unlock();
    return SUCCESS;
}

EXPORT int cublasLtCreate(void** out) { return create(out, 8, K_HANDLE, "cublasLtCreate"); }
EXPORT int cublasLtDestroy(void* h) { return destroy(h, K_HANDLE, "cublasLtDestroy"); }

EXPORT int cublasLtMatmulDescCreate(void** out, int compute, int scale) {
    int rc = create(out, sizeof(desc_t), K_DESC, "cublasLtMatmulDescCreate");
    if (rc == SUCCESS) {
        desc_t* d = *out;
        d->compute = compute;
        d->scale = scale;
        d->epilogue = EPI_DEFAULT;
        d->bias_type = -1;  // unset: the bias has D's type
    }
    return rc;
}

EXPORT int cublasLtMatmulDescDestroy(void* d) { return destroy(d, K_DESC, "cublasLtMatmulDescDestroy"); }

EXPORT int cublasLtMatmulDescSetAttribute(void* desc, int attr, const void* buf, size_t bytes) {
    const char* call = "cublasLtMatmulDescSetAttribute";
    standin_lock();
    if (!live(desc, K_DESC)) return BAD(call, "not a live matmul descriptor");
    if (buf == NULL) return BAD(call, "buf is NULL");
    desc_t* d = desc;
    size_t want = attr == 8 || attr == 11 || attr == 12 ? 8 : 4;
    if (bytes != want) {
        standin_fail(SI_INVALID_VALUE, 0, "%s: attribute %d takes %zu bytes, got %zu", call, attr, want, bytes);
        standin_unlock();
        return INVALID_VALUE;
    }
    int32_t i32;
    memcpy(&i32, buf, 4);
    switch (attr) {
        case 3: d->transa = i32; break;
        case 4: d->transb = i32; break;
        case 7:
            if (i32 != EPI_DEFAULT && i32 != EPI_BIAS && i32 != EPI_GELU_AUX && i32 != EPI_GELU_AUX_BIAS) return BAD(call, "epilogue not supported here");
            d->epilogue = i32;
            break;
        case 8: memcpy(&d->bias, buf, 8); break;
        case 11: memcpy(&d->aux, buf, 8); break;
        case 12: memcpy(&d->aux_ld, buf, 8); break;
        case 26: d->bias_type = i32; break;
        default: return BAD(call, "attribute not supported here");
    }
    standin_unlock();
    return SUCCESS;
}

EXPORT int cublasLtMatrixLayoutCreate(void** out, int type, uint64_t rows, uint64_t cols, int64_t ld) {
    int rc = create(out, sizeof(layout_t), K_LAYOUT, "cublasLtMatrixLayoutCreate");
    if (rc == SUCCESS) *(layout_t*) *out = (layout_t){type, rows, cols, ld};
    if (rc == SUCCESS && ld < (int64_t) rows) {
        standin_lock();
        destroy(*out, K_LAYOUT, "cublasLtMatrixLayoutCreate");
        return BAD("cublasLtMatrixLayoutCreate", "ld smaller than rows");
    }
    return rc;
}

EXPORT int cublasLtMatrixLayoutDestroy(void* l) { return destroy(l, K_LAYOUT, "cublasLtMatrixLayoutDestroy"); }

EXPORT int cublasLtMatmulPreferenceCreate(void** out) {
    int rc = create(out, sizeof(pref_t), K_PREF, "cublasLtMatmulPreferenceCreate");
    if (rc == SUCCESS) {
        pref_t* p = *out;
        for (int i = 0; i < 4; i++) p->align[i] = 256;  // cuBLASLt assumes 256-byte alignment unless told
    }
    return rc;
}

EXPORT int cublasLtMatmulPreferenceDestroy(void* p) { return destroy(p, K_PREF, "cublasLtMatmulPreferenceDestroy"); }

EXPORT int cublasLtMatmulPreferenceSetAttribute(void* pref, int attr, const void* buf, size_t bytes) {
    const char* call = "cublasLtMatmulPreferenceSetAttribute";
    standin_lock();
    if (!live(pref, K_PREF)) return BAD(call, "not a live preference");
    if (buf == NULL) return BAD(call, "buf is NULL");
    pref_t* p = pref;
    if (attr == 1) {
        if (bytes != 8) return BAD(call, "MAX_WORKSPACE_BYTES takes 8 bytes");
        memcpy(&p->workspace, buf, 8);
    } else if (attr >= 5 && attr <= 8) {
        if (bytes != 4) return BAD(call, "MIN_ALIGNMENT_*_BYTES takes 4 bytes");
        memcpy(&p->align[attr - 5], buf, 4);
    } else {
        return BAD(call, "attribute not supported here");
    }
    standin_unlock();
    return SUCCESS;
}

// m, n, k from the layouts of a descriptor's operation; 0 when they disagree.
static int shape(const desc_t* d, const layout_t* a, const layout_t* b, const layout_t* c, int64_t* m, int64_t* n, int64_t* k) {
    *m = (int64_t) c->rows;
    *n = (int64_t) c->cols;
    *k = (int64_t) (d->transa ? a->rows : a->cols);
    int64_t am = (int64_t) (d->transa ? a->cols : a->rows);
    int64_t bk = (int64_t) (d->transb ? b->cols : b->rows), bn = (int64_t) (d->transb ? b->rows : b->cols);
    return am == *m && bk == *k && bn == *n && a->type == b->type;
}

EXPORT int cublasLtMatmulAlgoGetHeuristic(void* h, void* desc, void* A, void* B, void* C, void* D, void* pref, int requested,
                                          heuristic_t* results, int* returned) {
    const char* call = "cublasLtMatmulAlgoGetHeuristic";
    standin_lock();
    if (!live(h, K_HANDLE) || !live(desc, K_DESC) || !live(A, K_LAYOUT) || !live(B, K_LAYOUT) || !live(C, K_LAYOUT)
        || !live(D, K_LAYOUT) || !live(pref, K_PREF))
        return BAD(call, "a handle, descriptor, layout or preference is not live");
    if (requested < 1 || results == NULL || returned == NULL) return BAD(call, "no room for results");
    int64_t m, n, k;
    if (!shape(desc, A, B, C, &m, &n, &k)) return BAD(call, "the layouts do not fit the operation");
    memset(results, 0, sizeof *results);
    pref_t* p = pref;
    results->algo.data[0] = ALGO_MAGIC;
    for (int i = 0; i < 4; i++) results->algo.data[1 + i] = p->align[i];
    results->wavesCount = 1.f;
    *returned = 1;
    standin_unlock();
    return SUCCESS;
}

EXPORT int cublasLtMatmul(void* h, void* desc, const void* alpha, const void* A, void* Adesc, const void* B, void* Bdesc,
                          const void* beta, const void* C, void* Cdesc, void* D, void* Ddesc, const algo_t* algo,
                          void* workspace, size_t workspace_bytes, void* stream) {
    const char* call = "cublasLtMatmul";
    standin_lock();
    if (standin_sticky()) { standin_unlock(); return EXECUTION_FAILED; }
    if (!live(h, K_HANDLE) || !live(desc, K_DESC) || !live(Adesc, K_LAYOUT) || !live(Bdesc, K_LAYOUT) || !live(Cdesc, K_LAYOUT)
        || !live(Ddesc, K_LAYOUT))
        return BAD(call, "a handle, descriptor or layout is not live");
    desc_t* d = desc;
    layout_t *a = Adesc, *b = Bdesc, *c = Cdesc, *dd = Ddesc;
    int64_t m, n, k;
    if (!shape(d, a, b, c, &m, &n, &k)) return BAD(call, "the layouts do not fit the operation");
    if (dd->rows != c->rows || dd->cols != c->cols || dd->type != c->type) return BAD(call, "D's layout differs from C's");
    if (alpha == NULL || beta == NULL || standin_is(alpha, MEM_DEVICE) || standin_is(beta, MEM_DEVICE))
        return BAD(call, "alpha and beta must be host floats");
    float al, be;
    memcpy(&al, alpha, 4);
    memcpy(&be, beta, 4);
    if (C != D && be != 0.f) return BAD(call, "C != D with beta != 0 is not supported here");
    if (algo != NULL) {
        if (algo->data[0] != ALGO_MAGIC) return BAD(call, "algo is not one cublasLtMatmulAlgoGetHeuristic returned");
        const void* ptrs[4] = {A, B, C, D};
        for (int i = 0; i < 4; i++) {
            if (((uintptr_t) ptrs[i]) % algo->data[1 + i] != 0) {
                standin_fail(SI_INVALID_VALUE, 0, "%s: %c 0x%lx is not %lu-byte aligned, which the algorithm was chosen for",
                             call, "ABCD"[i], (unsigned long) (uintptr_t) ptrs[i], (unsigned long) algo->data[1 + i]);
                standin_unlock();
                return INVALID_VALUE;
            }
        }
    }
    int rc = 0;
    if (workspace_bytes && (rc = standin_check(call, "workspace", workspace, workspace_bytes, MEM_DEVICE, 0))) {
        standin_unlock();
        return INVALID_VALUE;
    }
    si_stream* s = standin_stream(call, stream, &rc);
    if (!s) { standin_unlock(); return INVALID_VALUE; }
    int bias = d->epilogue == EPI_BIAS || d->epilogue == EPI_GELU_AUX_BIAS, gelu = d->epilogue == EPI_GELU_AUX || d->epilogue == EPI_GELU_AUX_BIAS;
    if (bias && d->bias == NULL) return BAD(call, "a BIAS epilogue without BIAS_POINTER");
    if (gelu && (d->aux == NULL || d->aux_ld < m)) return BAD(call, "a GELU_AUX epilogue without EPILOGUE_AUX_POINTER or with EPILOGUE_AUX_LD < m");
    si_gemm g = {.transA = d->transa, .transB = d->transb, .m = (int) m, .n = (int) n, .k = (int) k, .a = A, .lda = a->ld, .b = B,
                 .ldb = b->ld, .c = D, .ldc = dd->ld, .batch = 1, .typeAB = a->type, .typeC = c->type, .alpha = al, .beta = be,
                 .bias = bias ? d->bias : NULL, .biasType = d->bias_type >= 0 ? d->bias_type : c->type, .gelu = gelu,
                 .aux = gelu ? d->aux : NULL, .auxLd = d->aux_ld};
    rc = standin_gemm(call, s, &g);
    standin_unlock();
    return rc == 0 ? SUCCESS : rc == SI_INVALID_VALUE ? INVALID_VALUE : EXECUTION_FAILED;
}
