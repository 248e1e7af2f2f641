// libnccl.so.2 stand-in: communicators of 1 rank, or of several ranks in several processes on
// this machine, which meet in a POSIX shared-memory segment named in the ncclUniqueId. A
// collective moves its data through the segment in chunks: each rank writes its part to its slot,
// all meet at a barrier, each computes the result from the slots in rank order (so every rank gets
// the same bits), and all meet again before the slots are reused. Buffers are checked against the
// device registry and their accesses against other streams' (the race detector, order.c); on a
// stream being captured a collective becomes a graph node, as NCCL's do.
//
// Ranks must agree: before any data moves, each rank posts its call (sequence number, operation,
// count, type, reduction, root) and all compare; a difference is reported with every rank's call.
// A rank that does not arrive within GPT2_STANDIN_NCCL_TIMEOUT seconds (default 300) is reported
// with the last call it made, where real NCCL would hang. Either is a device fault (sticky).
#define _GNU_SOURCE
#include "standin.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum { SUCCESS = 0, UNHANDLED_CUDA = 1, SYSTEM_ERROR = 2, INTERNAL = 3, INVALID_ARGUMENT = 4, INVALID_USAGE = 5 };
enum { T_INT32 = 2, T_FLOAT32 = 7, T_FLOAT64 = 8 };
enum { OP_SUM = 0, OP_AVG = 4 };

#define CHUNK (4u << 20)            // bytes per rank per round
#define MAGIC 0x6e63636c73746e64ull  // "ncclstnd"

static int timeout_override;

// For the stand-ins' own tests: the timeout in seconds (0: GPT2_STANDIN_NCCL_TIMEOUT's, default 300).
EXPORT void gpt2_standin_nccl_timeout(int seconds) {
    timeout_override = seconds;
}

static int timeout_s(void) {
    if (timeout_override > 0) return timeout_override;
    const char* env = getenv("GPT2_STANDIN_NCCL_TIMEOUT");
    int t = env && *env ? atoi(env) : 300;
    return t > 0 ? t : 300;
}

typedef struct { char internal[128]; } unique_id;
typedef struct {
    _Atomic uint64_t magic;
    _Atomic int arrived;
    _Atomic int generation;
    int nranks;
} shm_header;

// A rank's posted call, in the segment after the header (64 bytes per rank).
typedef struct { _Atomic uint64_t seq; int32_t kind, type, op, root; uint64_t count; } posted;
enum { K_ALLREDUCE = 1, K_BROADCAST = 2 };

typedef struct { int rank, nranks; shm_header* shm; size_t shm_bytes; char name[128]; uint64_t seq; } comm_t;

static posted* post_of(comm_t* c, int rank) {
    return (posted*) ((char*) c->shm + 64 + (size_t) rank * 64);
}

static comm_t* comms[64];
static int ncomms;
static char last_error[1024];

static int nccl_fail(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static int nccl_fail(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda-standin: %s\n", last_error);
    return code;
}

EXPORT const char* ncclGetErrorString(int code) {
    if (code != SUCCESS && last_error[0]) return last_error;
    switch (code) {
        case SUCCESS: return "no error";
        case UNHANDLED_CUDA: return "unhandled cuda error";
        case SYSTEM_ERROR: return "unhandled system error";
        case INVALID_ARGUMENT: return "invalid argument";
        case INVALID_USAGE: return "invalid usage";
        default: return "unknown NCCL result (stand-in)";
    }
}

EXPORT int ncclGetUniqueId(unique_id* id) {
    if (id == NULL) return nccl_fail(INVALID_ARGUMENT, "ncclGetUniqueId: uniqueId is NULL");
    memset(id, 0, sizeof *id);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    snprintf(id->internal, sizeof id->internal, "/gpt2-nccl-standin-%d-%lx", (int) getpid(), (unsigned long) (t.tv_nsec ^ t.tv_sec));
    return SUCCESS;
}

static const char* describe_call(const posted* p, char* buf, size_t n) {
    static const char* types[] = {[T_INT32] = "int32", [T_FLOAT32] = "float32", [T_FLOAT64] = "float64"};
    const char* type = p->type >= 0 && p->type <= T_FLOAT64 && types[p->type] ? types[p->type] : "?";
    if (p->seq == 0) snprintf(buf, n, "none yet");
    else if (p->kind == K_BROADCAST) snprintf(buf, n, "#%llu ncclBroadcast(count %llu, %s, root %d)", (unsigned long long) p->seq,
                                              (unsigned long long) p->count, type, p->root);
    else snprintf(buf, n, "#%llu ncclAllReduce(count %llu, %s, %s)", (unsigned long long) p->seq, (unsigned long long) p->count, type,
                  p->op == OP_AVG ? "avg" : p->op == OP_SUM ? "sum" : "?");
    return buf;
}

// Every rank's posted call, for a message: "rank 0: #3 ncclAllReduce(...); rank 1: ...".
static void all_calls(comm_t* c, char* out, size_t n) {
    size_t used = 0;
    out[0] = 0;
    for (int r = 0; r < c->nranks && used < n; r++) {
        char one[160];
        used += snprintf(out + used, n - used, "%srank %d: %s", r ? "; " : "", r, describe_call(post_of(c, r), one, sizeof one));
    }
}

// All ranks meet (a counter and a generation in the segment); a rank gone for the timeout is an error.
static int barrier(comm_t* c, const char* call) {
    if (c->nranks == 1) return SUCCESS;
    shm_header* h = c->shm;
    int gen = atomic_load(&h->generation);
    if (atomic_fetch_add(&h->arrived, 1) == c->nranks - 1) {
        atomic_store(&h->arrived, 0);
        atomic_fetch_add(&h->generation, 1);
        return SUCCESS;
    }
    struct timespec start, now, nap = {0, 20000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long spins = 0; atomic_load(&h->generation) == gen; spins++) {
        if (spins > 1000) nanosleep(&nap, NULL);
        if ((spins & 1023) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= timeout_s()) {
                char calls[1024];
                all_calls(c, calls, sizeof calls);
                standin_fail(SI_ILLEGAL_ADDRESS, 1, "%s: rank %d waited %d s (GPT2_STANDIN_NCCL_TIMEOUT) for the other ranks, which "
                             "real NCCL would wait for forever: a rank skipped a collective, or died. Last calls: %s",
                             call, c->rank, timeout_s(), calls);
                return SYSTEM_ERROR;
            }
        }
    }
    return SUCCESS;
}

static char* slot(comm_t* c, int rank) {
    return (char*) c->shm + 64 + (size_t) c->nranks * 64 + (size_t) rank * CHUNK;
}

EXPORT int ncclCommInitRank(comm_t** out, int nranks, unique_id id, int rank) {
    if (out == NULL || nranks < 1 || rank < 0 || rank >= nranks)
        return nccl_fail(INVALID_ARGUMENT, "ncclCommInitRank: rank %d of %d", rank, nranks);
    if (strncmp(id.internal, "/gpt2-nccl-standin-", 19) != 0)
        return nccl_fail(INVALID_ARGUMENT, "ncclCommInitRank: the unique id was not made by this stand-in's ncclGetUniqueId");
    comm_t* c = calloc(1, sizeof *c);
    c->rank = rank;
    c->nranks = nranks;
    snprintf(c->name, sizeof c->name, "%s", id.internal);
    if (nranks > 1) {
        c->shm_bytes = 64 + (size_t) nranks * 64 + (size_t) nranks * CHUNK;
        int fd;
        if (rank == 0) {
            fd = shm_open(c->name, O_CREAT | O_EXCL | O_RDWR, 0600);
            if (fd < 0 || ftruncate(fd, (off_t) c->shm_bytes) != 0)
                return nccl_fail(SYSTEM_ERROR, "ncclCommInitRank: shm_open/ftruncate %s: %s", c->name, strerror(errno));
        } else {
            struct timespec start, now, nap = {0, 1000000};
            clock_gettime(CLOCK_MONOTONIC, &start);
            struct stat st;
            while ((fd = shm_open(c->name, O_RDWR, 0600)) < 0 || fstat(fd, &st) != 0 || (size_t) st.st_size < c->shm_bytes) {
                if (fd >= 0) close(fd);
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec > timeout_s()) return nccl_fail(SYSTEM_ERROR, "ncclCommInitRank: rank 0's segment %s never appeared", c->name);
                nanosleep(&nap, NULL);
            }
        }
        c->shm = mmap(NULL, c->shm_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (c->shm == MAP_FAILED) return nccl_fail(SYSTEM_ERROR, "ncclCommInitRank: mmap: %s", strerror(errno));
        if (rank == 0) {
            c->shm->nranks = nranks;
            atomic_store(&c->shm->magic, MAGIC);
        } else {
            while (atomic_load(&c->shm->magic) != MAGIC) usleep(100);
            if (c->shm->nranks != nranks) return nccl_fail(INVALID_USAGE, "ncclCommInitRank: rank %d says %d ranks, rank 0 %d", rank, nranks, c->shm->nranks);
        }
        int rc = barrier(c, "ncclCommInitRank");
        if (rc) return rc;
        if (rank == 0) shm_unlink(c->name);  // every rank has it mapped: nothing is left behind if one dies
    }
    comms[ncomms++ % 64] = c;
    *out = c;
    return SUCCESS;
}

static int live(const comm_t* c) {
    for (int i = 0; i < ncomms && i < 64; i++) if (comms[i] == c) return 1;
    return 0;
}

EXPORT int ncclCommDestroy(comm_t* c) {
    if (!live(c)) return nccl_fail(INVALID_ARGUMENT, "ncclCommDestroy: not a live communicator");
    for (int i = 0; i < ncomms; i++) if (comms[i] == c) comms[i] = comms[--ncomms];
    if (c->shm) munmap(c->shm, c->shm_bytes);
    free(c);
    return SUCCESS;
}

static int group_depth;
EXPORT int ncclGroupStart(void) { group_depth++; return SUCCESS; }
EXPORT int ncclGroupEnd(void) {
    if (group_depth == 0) return nccl_fail(INVALID_USAGE, "ncclGroupEnd without ncclGroupStart");
    group_depth--;
    return SUCCESS;
}

static size_t type_bytes(int t) {
    return t == T_FLOAT64 ? 8 : t == T_FLOAT32 || t == T_INT32 ? 4 : 0;
}

typedef struct { comm_t* c; void* send; void* recv; size_t count; int type, op, root, broadcast; } collective;

static void reduce(void* out, const collective* k, size_t n, size_t at) {
    comm_t* c = k->c;
    if (k->type == T_FLOAT32) {
        float* o = out;
        for (size_t i = 0; i < n; i++) {
            float s = 0.f;
            for (int r = 0; r < c->nranks; r++) s += ((float*) slot(c, r))[i];
            o[at + i] = k->op == OP_AVG ? s / (float) c->nranks : s;
        }
    } else if (k->type == T_FLOAT64) {
        double* o = out;
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (int r = 0; r < c->nranks; r++) s += ((double*) slot(c, r))[i];
            o[at + i] = k->op == OP_AVG ? s / c->nranks : s;
        }
    } else {
        int32_t* o = out;
        for (size_t i = 0; i < n; i++) {
            int64_t s = 0;
            for (int r = 0; r < c->nranks; r++) s += ((int32_t*) slot(c, r))[i];
            o[at + i] = (int32_t) (k->op == OP_AVG ? s / c->nranks : s);
        }
    }
}

// Every rank posts its call and checks the others': 0, or the fault (reported).
static int agree(comm_t* c, const collective* k, const char* call) {
    posted* mine = post_of(c, c->rank);
    mine->kind = k->broadcast ? K_BROADCAST : K_ALLREDUCE;
    mine->type = k->type;
    mine->op = k->broadcast ? -1 : k->op;
    mine->root = k->broadcast ? k->root : -1;
    mine->count = k->count;
    atomic_store(&mine->seq, ++c->seq);
    if (barrier(c, call)) return SI_ILLEGAL_ADDRESS;
    for (int r = 0; r < c->nranks; r++) {
        posted* p = post_of(c, r);
        if (atomic_load(&p->seq) != mine->seq || p->kind != mine->kind || p->type != mine->type || p->op != mine->op
            || p->root != mine->root || p->count != mine->count) {
            char calls[1024];
            all_calls(c, calls, sizeof calls);
            standin_fail(SI_ILLEGAL_ADDRESS, 1, "%s: the ranks disagree on their collective call (real NCCL would hang or "
                         "mix up buffers): %s", call, calls);
            // everyone compares before anyone posts again
            barrier(c, call);
            return SI_ILLEGAL_ADDRESS;
        }
    }
    return barrier(c, call) ? SI_ILLEGAL_ADDRESS : 0;
}

static int run_collective(void* payload) {
    collective* k = payload;
    comm_t* c = k->c;
    size_t e = type_bytes(k->type), per = CHUNK / e;
    const char* call = k->broadcast ? "ncclBroadcast" : "ncclAllReduce";
    int rc = 0;
    if (k->count > 0 && (!k->broadcast || c->rank == k->root)) rc = order_access(k->send, k->count * e, 0, "sendbuff");
    if (!rc && k->count > 0) rc = order_access(k->recv, k->count * e, 1, "recvbuff");
    if (rc) return rc;
    if (c->nranks > 1 && (rc = agree(c, k, call))) return rc;
    if (c->nranks == 1) {
        if (k->recv != k->send) memmove(k->recv, k->send, k->count * e);
        return 0;
    }
    for (size_t at = 0; at < k->count; at += per) {
        size_t n = k->count - at < per ? k->count - at : per;
        if (!k->broadcast) memcpy(slot(c, c->rank), (char*) k->send + at * e, n * e);
        else if (c->rank == k->root) memcpy(slot(c, 0), (char*) k->send + at * e, n * e);
        int rc = barrier(c, call);
        if (rc) return SI_ILLEGAL_ADDRESS;  // reported by barrier
        if (!k->broadcast) reduce(k->recv, k, n, at);
        else memmove((char*) k->recv + at * e, slot(c, 0), n * e);
        if ((rc = barrier(c, call))) return SI_ILLEGAL_ADDRESS;
    }
    return 0;
}

static int collective_on(const char* call, collective* k, void* stream) {
    if (!live(k->c)) return nccl_fail(INVALID_ARGUMENT, "%s: comm is not a live communicator", call);
    size_t e = type_bytes(k->type);
    if (e == 0) return nccl_fail(INVALID_ARGUMENT, "%s: data type %d not supported here", call, k->type);
    if (!k->broadcast && k->op != OP_SUM && k->op != OP_AVG) return nccl_fail(INVALID_ARGUMENT, "%s: reduction %d not supported here", call, k->op);
    if (k->broadcast && (k->root < 0 || k->root >= k->c->nranks)) return nccl_fail(INVALID_ARGUMENT, "%s: root %d", call, k->root);
    standin_lock();
    int rc = standin_sticky();
    if (!rc && (k->count > 0) && (!k->broadcast || k->c->rank == k->root)) rc = standin_check(call, "sendbuff", k->send, k->count * e, MEM_DEVICE, 0);
    if (!rc && k->count > 0) rc = standin_check(call, "recvbuff", k->recv, k->count * e, MEM_DEVICE, 0);
    si_stream* s = rc ? NULL : standin_stream(call, stream, &rc);
    if (s) rc = standin_submit(call, s, run_collective, k, sizeof *k);
    if (rc) snprintf(last_error, sizeof last_error, "%s", standin_last_message());
    standin_unlock();
    return rc ? UNHANDLED_CUDA : SUCCESS;
}

EXPORT int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, comm_t* comm, void* stream) {
    collective k = {comm, (void*) send, recv, count, type, op, 0, 0};
    return collective_on("ncclAllReduce", &k, stream);
}

EXPORT int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, comm_t* comm, void* stream) {
    collective k = {comm, (void*) send, recv, count, type, OP_SUM, root, 1};
    return collective_on("ncclBroadcast", &k, stream);
}
