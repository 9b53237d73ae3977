// Causal paged attention for a mixed prefill + decode batch with grouped-query heads: token
// t, head h attends to keys first..=positions[t] of its sequence (first = 0, or with a
// sliding window w, positions[t] + 1 - w when positive), found through the sequence's
// block table (tables[table_offsets[s] ..]). One block per (token, head), BLOCK threads:
// keys are scored CHUNK at a time into shared memory, with an online softmax across chunks;
// thread d accumulates output dims d and d + BLOCK (head_dim <= 2 * BLOCK).
// Grid (tokens, n_heads), block (BLOCK), shared: q[head_dim] + scores[BLOCK] floats.
#include "common.cuh"

#define BLOCK 128

extern "C" __global__ void attention_f32(const float* x, const float* k_pool,
                                         const float* v_pool, const u32* token_seq,
                                         const u32* positions, const u32* table_offsets,
                                         const u32* tables, float* out, AttentionParams p) {
    extern __shared__ float shared[];
    __shared__ float scratch[32];
    float* q = shared;
    float* scores = shared + p.head_dim;
    const u32 t = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
    if (t >= p.tokens || h >= p.n_heads) return;  // uniform over the block
    const u32 kv_head = h / (p.n_heads / p.n_kv_heads);
    const u32 kv_width = p.n_kv_heads * p.head_dim;
    const u32* table = tables + table_offsets[token_seq[t]];
    const u32 n_keys = positions[t] + 1u;
    const u32 first = (p.window != 0u && n_keys > p.window) ? n_keys - p.window : 0u;
    const float* qt = x + (u64)t * p.x_stride + p.q_offset + (u64)h * p.head_dim;
    for (u32 d = tid; d < p.head_dim; d += BLOCK) q[d] = qt[d];
    __syncthreads();

    float m = NEG_INF, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
    for (u32 start = first; start < n_keys; start += BLOCK) {
        const u32 key = start + tid;
        float s = NEG_INF;
        if (key < n_keys) {
            const u64 slot = (u64)table[key / p.block_size] * p.block_size + key % p.block_size;
            const float* kr = k_pool + p.layer_offset + slot * kv_width + (u64)kv_head * p.head_dim;
            float dot = 0.0f;
            for (u32 d = 0; d < p.head_dim; ++d) dot = fmaf(q[d], kr[d], dot);
            s = dot * p.scale;
        }
        scores[tid] = s;
        const float chunk_max = block_max(s, scratch);
        const float m_new = fmaxf(m, chunk_max);
        const float rescale = expf(m - m_new);
        // block_max synchronized the block, so every score of the chunk is visible.
        const u32 in_chunk = min((u32)BLOCK, n_keys - start);
        float l_chunk = 0.0f, a0 = 0.0f, a1 = 0.0f;
        for (u32 j = 0; j < in_chunk; ++j) {
            const u32 kj = start + j;
            const float pj = expf(scores[j] - m_new);
            l_chunk += pj;
            const u64 slot = (u64)table[kj / p.block_size] * p.block_size + kj % p.block_size;
            const float* vr = v_pool + p.layer_offset + slot * kv_width + (u64)kv_head * p.head_dim;
            if (tid < p.head_dim) a0 = fmaf(pj, vr[tid], a0);
            if (tid + BLOCK < p.head_dim) a1 = fmaf(pj, vr[tid + BLOCK], a1);
        }
        l = l * rescale + l_chunk;
        acc0 = acc0 * rescale + a0;
        acc1 = acc1 * rescale + a1;
        m = m_new;
        __syncthreads();  // scores are rewritten by the next chunk
    }
    float* ot = out + (u64)t * p.out_stride + (u64)h * p.head_dim;
    if (tid < p.head_dim) ot[tid] = acc0 / l;
    if (tid + BLOCK < p.head_dim) ot[tid + BLOCK] = acc1 / l;
}
