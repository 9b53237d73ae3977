// Rotary embedding in place: pairs (2i, 2i+1) of the first rot_dim dims of every head in
// columns col_offset.. of each row, rotated by pos * base^(-2i / rot_dim). The angle is
// computed in double, as the CPU does. Grid (tokens, n_heads), block (rot_dim / 2).
#include "common.cuh"

extern "C" __global__ void rope_f32(float* x, const u32* positions, RopeParams p) {
    const u32 t = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    if (t >= p.tokens || h >= p.n_heads || 2u * i >= p.rot_dim) return;
    const double inv_freq = pow((double)p.base, -2.0 * (double)i / (double)p.rot_dim);
    double s, c;
    sincos((double)positions[t] * inv_freq, &s, &c);
    float* pair = x + (u64)t * p.stride + p.col_offset + (u64)h * p.head_dim + 2u * i;
    const float a = pair[0], b = pair[1];
    const float cf = (float)c, sf = (float)s;
    pair[0] = a * cf - b * sf;
    pair[1] = a * sf + b * cf;
}
