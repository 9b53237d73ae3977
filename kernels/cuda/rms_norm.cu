// RMSNorm of each row: out = x / sqrt(mean(x^2) + eps) * weight. One block per row.
// rms_norm_heads_f32: the same in place over each head of a column range, one block per
// (row, head), all heads sharing one weight of head_dim.
#include "common.cuh"

extern "C" __global__ void rms_norm_f32(const float* x, const float* weight, float* out,
                                        RmsNormParams p) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x;
    if (row >= p.rows) return;
    const float* xr = x + (u64)row * p.cols;
    float* yr = out + (u64)row * p.cols;
    float ss = 0.0f;
    for (u32 i = threadIdx.x; i < p.cols; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)p.cols + p.eps);
    for (u32 i = threadIdx.x; i < p.cols; i += blockDim.x) yr[i] = xr[i] * inv * weight[i];
}

extern "C" __global__ void rms_norm_heads_f32(float* x, const float* weight, HeadNormParams p) {
    __shared__ float scratch[32];
    const u32 row = blockIdx.x, h = blockIdx.y;
    if (row >= p.rows || h >= p.n_heads) return;
    float* xr = x + (u64)row * p.stride + p.col_offset + (u64)h * p.head_dim;
    float ss = 0.0f;
    for (u32 i = threadIdx.x; i < p.head_dim; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);  // synchronizes: every read is done before the writes
    const float inv = rsqrtf(ss / (float)p.head_dim + p.eps);
    for (u32 i = threadIdx.x; i < p.head_dim; i += blockDim.x) xr[i] = xr[i] * inv * weight[i];
}
