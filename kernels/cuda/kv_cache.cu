// Stores each token's key and value into its slot of the paged pool. The pool is
// [layer][slot][kv_width] for K and for V; layer_offset = layer * slots * kv_width.
// Grid (tokens), block (min(kv_width, 256)).
#include "common.cuh"

extern "C" __global__ void write_kv_f32(const float* x, const u32* slots, float* k_pool,
                                        float* v_pool, WriteKvParams p) {
    const u32 t = blockIdx.x;
    if (t >= p.tokens) return;
    const float* row = x + (u64)t * p.x_stride;
    const u64 base = p.layer_offset + (u64)slots[t] * p.kv_width;
    for (u32 i = threadIdx.x; i < p.kv_width; i += blockDim.x) {
        k_pool[base + i] = row[p.k_offset + i];
        v_pool[base + i] = row[p.v_offset + i];
    }
}
