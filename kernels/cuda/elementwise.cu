// Element-wise ops on f32 activations.
#include "common.cuh"

// out[t, j] = act(x[t, j]) * x[t, f + j], act = SiLU or (gelu != 0) GELU's tanh form.
// Grid (ceil(f / 256), tokens), block 256.
extern "C" __global__ void glu_f32(const float* x, float* out, GluParams p) {
    const u32 j = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (j >= p.f || t >= p.tokens) return;
    const float g = x[(u64)t * 2u * p.f + j];
    const float u = x[(u64)t * 2u * p.f + p.f + j];
    const float a = p.gelu
        ? 0.5f * g * (1.0f + tanhf(0.7978846f * g * (1.0f + 0.044715f * g * g)))
        : g / (1.0f + expf(-g));
    out[(u64)t * p.f + j] = a * u;
}

// x[t, col_offset + j] += bias[j]. Grid (ceil(width / 256), rows), block 256.
extern "C" __global__ void add_bias_f32(float* x, const float* bias, BiasParams p) {
    const u32 j = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (j >= p.width || t >= p.rows) return;
    x[(u64)t * p.stride + p.col_offset + j] += bias[j];
}

// x *= s over len elements. Grid ceil(len / 256), block 256.
extern "C" __global__ void scale_f32(float* x, ScaleParams p) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < p.len) x[i] *= p.s;
}

// x += y over len elements. Grid ceil(len / 256), block 256.
extern "C" __global__ void add_assign_f32(float* x, const float* y, AddParams p) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < p.len) x[i] += y[i];
}

// out[i, :] = x[rows[i], :]. Grid (rows), block min(cols, 256).
extern "C" __global__ void gather_rows_f32(const float* x, const u32* rows, float* out,
                                           GatherParams p) {
    const u32 i = blockIdx.x;
    if (i >= p.rows) return;
    const u32 src = rows[i];
    if (src >= p.src_rows) return;
    for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x)
        out[(u64)i * p.cols + c] = x[(u64)src * p.cols + c];
}
