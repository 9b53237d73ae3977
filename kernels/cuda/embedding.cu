// Embedding gather: out[t, :] = dequant(table[ids[t], :]), one entry point per table type.
// Grid (tokens, ceil(dim / 32 / 4)), block (32, 4): each thread dequantizes one 32-chunk.
#include "common.cuh"

template <int TYPE>
__device__ void embedding_impl(const u8* table, const u32* ids, float* out, EmbeddingParams p) {
    const u32 t = blockIdx.x;
    const u32 j = blockIdx.y * blockDim.y * WARP + threadIdx.y * WARP + threadIdx.x;
    if (t >= p.tokens || j >= p.dim / 32u) return;
    const u32 id = ids[t];
    float* dst = out + (u64)t * p.dim + 32u * j;
    if (id >= p.vocab) {
        // The host checks ids; an out-of-range id still must not read outside the table.
        for (int i = 0; i < 32; ++i) dst[i] = 0.0f;
        return;
    }
    float v[32];
    chunk32<TYPE>(table + (u64)id * p.row_bytes, j, v);
#pragma unroll
    for (int i = 0; i < 32; ++i) dst[i] = v[i];
}

#define EMBEDDING(NAME, TYPE)                                                                  \
    extern "C" __global__ void NAME(const u8* table, const u32* ids, float* out,               \
                                    EmbeddingParams p) {                                       \
        embedding_impl<TYPE>(table, ids, out, p);                                              \
    }

EMBEDDING(embedding_f32, T_F32)
EMBEDDING(embedding_f16, T_F16)
EMBEDDING(embedding_bf16, T_BF16)
EMBEDDING(embedding_q4_0, T_Q4_0)
EMBEDDING(embedding_q4_1, T_Q4_1)
EMBEDDING(embedding_q5_0, T_Q5_0)
EMBEDDING(embedding_q5_1, T_Q5_1)
EMBEDDING(embedding_q8_0, T_Q8_0)
EMBEDDING(embedding_q2_k, T_Q2_K)
EMBEDDING(embedding_q3_k, T_Q3_K)
EMBEDDING(embedding_q4_k, T_Q4_K)
EMBEDDING(embedding_q5_k, T_Q5_K)
EMBEDDING(embedding_q6_k, T_Q6_K)
