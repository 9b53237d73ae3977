// out[t, out_offset + n] = x[t, :] . w[n, :] for every weight type: matrix-vector when
// tokens == 1, matrix-matrix otherwise. One warp per weight row and up to TILE_T tokens: each
// lane dequantizes 32-element chunks of the row once and applies them to every token of the
// tile, then the warp reduces. Grid (ceil(n / ROWS), ceil(tokens / TILE_T)), block (32, ROWS).
#include "common.cuh"

#define TILE_T 8

template <int TYPE>
__device__ void matmul_impl(const u8* w, const float* x, float* out, MatmulParams p) {
    const u32 n = blockIdx.x * blockDim.y + threadIdx.y;
    const u32 t0 = blockIdx.y * TILE_T;
    if (n >= p.n) return;  // uniform over the warp: n depends on threadIdx.y only
    const u8* row = w + (u64)n * p.row_bytes;
    float acc[TILE_T];
#pragma unroll
    for (int t = 0; t < TILE_T; ++t) acc[t] = 0.0f;
    const u32 chunks = p.k / 32u;
    for (u32 j = threadIdx.x; j < chunks; j += WARP) {
        float v[32];
        chunk32<TYPE>(row, j, v);
#pragma unroll
        for (int t = 0; t < TILE_T; ++t) {
            if (t0 + t < p.tokens) {
                const float* xr = x + (u64)(t0 + t) * p.x_stride + 32u * j;
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < 32; ++i) s = fmaf(v[i], xr[i], s);
                acc[t] += s;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < TILE_T; ++t) {
        const float s = warp_sum(acc[t]);
        if (threadIdx.x == 0 && t0 + t < p.tokens)
            out[(u64)(t0 + t) * p.out_stride + p.out_offset + n] = s;
    }
}

#define MATMUL(NAME, TYPE)                                                                     \
    extern "C" __global__ void NAME(const u8* w, const float* x, float* out, MatmulParams p) { \
        matmul_impl<TYPE>(w, x, out, p);                                                       \
    }

MATMUL(matmul_f32, T_F32)
MATMUL(matmul_f16, T_F16)
MATMUL(matmul_bf16, T_BF16)
MATMUL(matmul_q4_0, T_Q4_0)
MATMUL(matmul_q4_1, T_Q4_1)
MATMUL(matmul_q5_0, T_Q5_0)
MATMUL(matmul_q5_1, T_Q5_1)
MATMUL(matmul_q8_0, T_Q8_0)
MATMUL(matmul_q2_k, T_Q2_K)
MATMUL(matmul_q3_k, T_Q3_K)
MATMUL(matmul_q4_k, T_Q4_K)
MATMUL(matmul_q5_k, T_Q5_K)
MATMUL(matmul_q6_k, T_Q6_K)
