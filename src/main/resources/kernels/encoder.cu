// Token + position embedding.

// out (B,T,C) = wte[tokens] + wpe[t] (wpe null, RoPE: wte[tokens] alone); one thread per PACK
// channels (128-bit loads when C is a multiple of PACK and the tables are 16-byte aligned).
extern "C" __global__ void encoder_forward(floatX* out, const int* tokens, const floatX* wte, const floatX* wpe,
                                           int B, int T, int C) {
    int packs = (C + PACK - 1) / PACK;
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) B * T * packs) return;
    i64 bt = idx / packs;
    int c = (int) (idx % packs) * PACK;
    int t = (int) (bt % T);
    bool vec = C % PACK == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe);
    xpack e = load_pack(wte + (i64) tokens[bt] * C, c, C, vec);
    if (wpe) {
        xpack p = load_pack(wpe + (i64) t * C, c, C, vec);
        for (int k = 0; k < PACK; k++) e.v[k] = f2x(x2f(e.v[k]) + x2f(p.v[k]));
    }
    store_pack(out + bt * C, c, C, vec, e);
}

// dwpe (maxT,C) += sum over the batch of dout[b][t]; one thread per (t, c), b in order.
extern "C" __global__ void encoder_backward_wpe(float* dwpe, const floatX* dout, int B, int T, int C) {
    i64 idx = (i64) blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (i64) T * C) return;
    float s = dwpe[idx];
    for (int b = 0; b < B; b++) s += x2f(dout[(i64) b * T * C + idx]);
    dwpe[idx] = s;
}

// dwte += dout gathered by token, deterministic without atomics: the host groups the positions by
// token (plan = [U, starts (U+1), tokens (U), positions (B*T) grouped by token, ascending within a
// group]); block u adds its token's positions in order, threads over channels. The same summation
// order as walking the positions in turn (the CPU backend's).
extern "C" __global__ void encoder_backward_wte(float* dwte, const floatX* dout, const int* plan, int C) {
    int U = plan[0], u = blockIdx.x;
    if (u >= U) return;
    const int* starts = plan + 1;
    const int* tokens = plan + 1 + U + 1;
    const int* positions = plan + 1 + U + 1 + U;
    float* row = dwte + (i64) tokens[u] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = row[c];
        for (int j = starts[u]; j < starts[u + 1]; j++) s += x2f(dout[(i64) positions[j] * C + c]);
        row[c] = s;
    }
}
