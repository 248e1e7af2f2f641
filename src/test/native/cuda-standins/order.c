// The stand-ins' race detector (part of libcuda.so.1): happens-before between the device work of
// different streams, by vector clocks, as ThreadSanitizer's FastTrack does for threads. The
// stand-ins run every operation when it is queued, one at a time, so nothing here depends on
// timing: what is checked is whether CUDA *guarantees* an order between two accesses.
//
//   a stream's clock:   its own counter (one tick per queued operation) + what it waited for
//   queue an op on S:   S joins the host's clock (the host saw that work finish before queueing)
//                       legacy stream: joins every blocking stream; blocking stream: joins legacy
//   cudaEventRecord:    the event takes S's clock;  cudaStreamWaitEvent: S joins the event's
//   synchronize:        the host joins the stream's / event's / every stream's clock
//   graph launch on S:  every node is one op of S; between nodes, only the graph's edges order
//
// Every device access (a kernel's loads and stores per argument, copies, memsets, GEMM operands,
// NCCL buffers) is kept as a record (byte range, read or write, stream, epoch) per allocation; a
// new access that overlaps a record from another stream, one of them a write, with no happens-
// before between them, is a race: one line naming both operations, the allocation and the
// offsets, and a sticky fault (see standin_fail). Records that every future operation is ordered
// after (the host synchronized past them) or that a later ordered access covers are dropped.
//
// Pinned host memory that an asynchronous copy reads is fingerprinted when the copy is queued;
// if it changes before the host has synchronized past that copy, the host rewrote it while the
// device may still be reading it: reported the same way.
#define _GNU_SOURCE
#include "standin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- clocks

typedef struct {
    int used, blocking;
    si_vclock vc;  // vc.c[own slot] = the epoch the next operation gets
} clock_slot;

static clock_slot slots[SI_CLOCKS] = {{1, 1, {{0}}}};  // slot 0: the legacy default stream
static si_vclock host;

static void join(si_vclock* into, const si_vclock* from) {
    for (int i = 0; i < SI_CLOCKS; i++) if (from->c[i] > into->c[i]) into->c[i] = from->c[i];
}

int order_stream_new(int blocking) {
    for (int i = 1; i < SI_CLOCKS; i++) {
        if (!slots[i].used) {
            // a reused slot keeps counting from where its last stream stopped, so that stream's
            // records stay distinguishable; the new stream starts from what the host knows
            uint64_t own = slots[i].vc.c[i];
            slots[i].used = 1;
            slots[i].blocking = blocking;
            slots[i].vc = host;
            if (slots[i].vc.c[i] < own) slots[i].vc.c[i] = own;
            return i;
        }
    }
    return -1;
}

void order_stream_free(int slot) {
    if (slot > 0) slots[slot].used = 0;
}

// What queueing an operation on a stream orders it after (CUDA's implicit rules).
static void enter(int slot) {
    clock_slot* s = &slots[slot];
    join(&s->vc, &host);
    if (slot == 0) {
        for (int i = 1; i < SI_CLOCKS; i++) if (slots[i].used && slots[i].blocking) join(&s->vc, &slots[i].vc);
    } else if (s->blocking) {
        join(&s->vc, &slots[0].vc);
    }
}

void order_event_record(si_vclock* event, int slot) {
    enter(slot);
    *event = slots[slot].vc;
}

void order_stream_wait(int slot, const si_vclock* event) {
    join(&slots[slot].vc, event);
}

static void prune(void);

void order_host_join(const si_vclock* event) {
    join(&host, event);
    prune();
}

void order_host_join_stream(int slot) {
    enter(slot);  // the legacy stream's synchronization also waits for the blocking streams
    join(&host, &slots[slot].vc);
    prune();
}

void order_host_join_all(void) {
    for (int i = 0; i < SI_CLOCKS; i++) join(&host, &slots[i].vc);  // destroyed streams' last work too
    prune();
}

// ---------------------------------------------------------------- the operation being run

static struct {
    int active, slot;
    uint64_t epoch;
    si_vclock vc;
    uint64_t graph;                // a graph launch's number (0: none)
    uint32_t node;                 // the node running
    const unsigned char* reach;    // reach[i * n + j]: node j is ordered before node i
    uint32_t nodes;
    uint64_t seq;                  // the operation's number, for messages
    const char* what;
} op;

static uint64_t next_seq = 1, next_graph = 1;

void order_op_begin(int slot, const char* what) {
    enter(slot);
    op.active = 1;
    op.slot = slot;
    op.epoch = slots[slot].vc.c[slot];
    op.vc = slots[slot].vc;
    op.graph = 0;
    op.seq = next_seq++;
    op.what = what;
}

void order_op_end(void) {
    if (op.active && !op.graph) slots[op.slot].vc.c[op.slot]++;
    op.active = 0;
}

void order_graph_begin(int slot, const unsigned char* reach, uint32_t nodes) {
    order_op_begin(slot, "cuGraphLaunch");
    op.graph = next_graph++;
    op.reach = reach;
    op.nodes = nodes;
}

void order_graph_node(uint32_t node, const char* what) {
    op.node = node;
    op.seq = next_seq++;
    op.what = what;
}

void order_graph_end(void) {
    if (op.active) slots[op.slot].vc.c[op.slot]++;
    op.active = 0;
}

// ---------------------------------------------------------------- access records

typedef struct {
    size_t lo, hi;       // bytes [lo, hi) of the allocation
    uint8_t write;
    uint8_t slot;
    uint32_t node;
    uint64_t epoch, graph, seq;
    const char* what;
    const char* arg;
} record;

typedef struct {
    uintptr_t base;
    size_t size;
    record* r;
    size_t n, cap;
} shadow;

static shadow* shadows;
static size_t nshadows, capshadows;

// The shadow of the allocation at base (made on first use), kept sorted by base.
static shadow* shadow_of(uintptr_t base, size_t size) {
    size_t lo = 0, hi = nshadows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (shadows[mid].base < base) lo = mid + 1;
        else hi = mid;
    }
    if (lo < nshadows && shadows[lo].base == base) {
        shadows[lo].size = size;
        return &shadows[lo];
    }
    if (nshadows == capshadows) {
        capshadows = capshadows ? 2 * capshadows : 64;
        shadows = realloc(shadows, capshadows * sizeof(shadow));
    }
    memmove(&shadows[lo + 1], &shadows[lo], (nshadows - lo) * sizeof(shadow));
    nshadows++;
    shadows[lo] = (shadow){base, size, NULL, 0, 0};
    return &shadows[lo];
}

void order_forget(uintptr_t base) {
    for (size_t i = 0; i < nshadows; i++) {
        if (shadows[i].base == base) {
            free(shadows[i].r);
            memmove(&shadows[i], &shadows[i + 1], (nshadows - i - 1) * sizeof(shadow));
            nshadows--;
            return;
        }
    }
}

// Whether the record's access is guaranteed to have finished before the running operation starts.
static int ordered(const record* r) {
    if (r->seq == op.seq) return 1;  // the operation's own reads and writes
    if (r->graph && r->graph == op.graph) return op.reach[(size_t) op.node * op.nodes + r->node];
    if (r->slot == op.slot) return 1;
    return op.vc.c[r->slot] > r->epoch;
}

static const char* stream_name(int slot) {
    static char buf[2][64];
    static int k;
    k ^= 1;
    if (slot == 0) return "the legacy default stream";
    snprintf(buf[k], sizeof buf[k], "stream #%d (%s)", slot, slots[slot].blocking ? "blocking" : "non-blocking");
    return buf[k];
}

static int race(const shadow* sh, const record* old, size_t lo, size_t hi, int write, const char* arg) {
    char now[160], then[160];
    if (op.graph) snprintf(now, sizeof now, "graph node %u of a cuGraphLaunch on %s", op.node, stream_name(op.slot));
    else snprintf(now, sizeof now, "%s", stream_name(op.slot));
    if (old->graph) snprintf(then, sizeof then, "graph node %u of a cuGraphLaunch on %s", old->node, stream_name(old->slot));
    else snprintf(then, sizeof then, "%s", stream_name(old->slot));
    return standin_fail(SI_ILLEGAL_ADDRESS, 1,
                        "race: %s #%llu (%s, %s) %s bytes %zu..%zu of the %zu-byte device allocation at 0x%lx, which %s #%llu "
                        "(%s, %s) %s at bytes %zu..%zu, and nothing orders the two (no cudaStreamWaitEvent on an event recorded "
                        "after it, no synchronization)",
                        op.what, (unsigned long long) op.seq, arg, now, write ? "writes" : "reads", lo, hi, sh->size,
                        (unsigned long) sh->base, old->what, (unsigned long long) old->seq, old->arg, then,
                        old->write ? "wrote" : "read", old->lo, old->hi);
}

int order_access(const void* p, size_t bytes, int write, const char* arg) {
    if (!op.active || bytes == 0) return 0;
    uintptr_t base;
    size_t size;
    if (!standin_region(p, MEM_DEVICE, &base, &size)) return 0;  // checked elsewhere
    shadow* sh = shadow_of(base, size);
    size_t lo = (uintptr_t) p - base, hi = lo + bytes;
    if (hi > size) hi = size;
    record other = {0};  // of the unordered accesses this one conflicts with, the latest (seq 0: none)
    size_t keep = 0;
    for (size_t i = 0; i < sh->n; i++) {
        record* r = &sh->r[i];
        int overlaps = r->lo < hi && lo < r->hi;
        if (overlaps && (write || r->write)) {
            if (!ordered(r)) {
                if (r->seq > other.seq) other = *r;
            } else if (r->lo >= lo && r->hi <= hi) {
                continue;  // covered by this later, ordered access: every race with it is one with this
            }
        } else if (overlaps && !write && !r->write && r->lo >= lo && r->hi <= hi && ordered(r)) {
            continue;  // an earlier read this read covers
        }
        sh->r[keep++] = *r;
    }
    sh->n = keep;
    int rc = other.seq ? race(sh, &other, lo, hi, write, arg) : 0;
    // the same operation touching the next bytes the same way: one record
    if (keep > 0) {
        record* last = &sh->r[keep - 1];
        if (last->seq == op.seq && last->write == write && last->arg == arg && last->hi >= lo && last->lo <= hi) {
            if (lo < last->lo) last->lo = lo;
            if (hi > last->hi) last->hi = hi;
            return rc;
        }
    }
    if (sh->n == sh->cap) {
        sh->cap = sh->cap ? 2 * sh->cap : 16;
        sh->r = realloc(sh->r, sh->cap * sizeof(record));
    }
    sh->r[sh->n++] = (record){lo, hi, (uint8_t) write, (uint8_t) op.slot, op.node, op.epoch, op.graph, op.seq, op.what, arg};
    return rc;
}

// Records every future operation is ordered after: the host has synchronized past them.
static void prune(void) {
    for (size_t i = 0; i < nshadows; i++) {
        shadow* sh = &shadows[i];
        size_t keep = 0;
        for (size_t k = 0; k < sh->n; k++) {
            if (host.c[sh->r[k].slot] <= sh->r[k].epoch) sh->r[keep++] = sh->r[k];
        }
        sh->n = keep;
    }
}

// ---------------------------------------------------------------- pinned memory in flight

typedef struct {
    const unsigned char* p;
    size_t n;
    uint64_t hash, epoch, seq;
    int slot;
    const char* what;
} inflight;

static inflight* flights;
static size_t nflights, capflights;

static uint64_t fingerprint(const unsigned char* p, size_t n) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a, 8 bytes at a time where it can
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

void order_pinned_inflight(const void* p, size_t bytes) {
    if (!op.active || bytes == 0) return;
    if (nflights == capflights) {
        capflights = capflights ? 2 * capflights : 16;
        flights = realloc(flights, capflights * sizeof(inflight));
    }
    flights[nflights++] = (inflight){p, bytes, fingerprint(p, bytes), op.epoch, op.seq, op.slot, op.what};
}

int order_pinned_check(void) {
    int rc = 0;
    size_t keep = 0;
    for (size_t i = 0; i < nflights; i++) {
        inflight* f = &flights[i];
        if (host.c[f->slot] > f->epoch) continue;  // the host knows the copy is done
        if (fingerprint(f->p, f->n) != f->hash) {
            if (!rc) {
                rc = standin_fail(SI_ILLEGAL_ADDRESS, 1,
                                  "race: the host rewrote %zu bytes of pinned memory at 0x%lx while %s #%llu on %s may still be "
                                  "copying from them (synchronize with that stream, or an event recorded after the copy, "
                                  "before reusing the buffer)",
                                  f->n, (unsigned long) (uintptr_t) f->p, f->what, (unsigned long long) f->seq, stream_name(f->slot));
            }
            continue;
        }
        flights[keep++] = *f;
    }
    nflights = keep;
    return rc;
}

void order_pinned_forget(const void* base, size_t bytes) {
    size_t keep = 0;
    for (size_t i = 0; i < nflights; i++) {
        if (flights[i].p >= (const unsigned char*) base && flights[i].p < (const unsigned char*) base + bytes) continue;
        flights[keep++] = flights[i];
    }
    nflights = keep;
}
