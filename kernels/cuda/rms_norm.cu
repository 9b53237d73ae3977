// RMSNorm of each row: out = x / sqrt(mean(x^2) + eps) * weight. One block per row.
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
