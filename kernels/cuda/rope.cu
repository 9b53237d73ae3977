// Rotary embedding in place on the heads in columns col_offset.. of each row: pair i of the
// first rot_dim dims of a head, (2i, 2i+1) interleaved or (i, i + rot_dim/2) NeoX, turned by
// pos * freq_scale * base^(-2i / rot_dim) / factors[i] (factors read only when has_factors).
// The angle is computed in double, as the CPU does. Grid (tokens, n_heads), block (rot_dim / 2).
#include "common.cuh"

extern "C" __global__ void rope_f32(float* x, const u32* positions, const float* factors,
                                    RopeParams p) {
    const u32 t = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    if (t >= p.tokens || h >= p.n_heads || 2u * i >= p.rot_dim) return;
    double inv_freq = pow((double)p.base, -2.0 * (double)i / (double)p.rot_dim) *
                      (double)p.freq_scale;
    if (p.has_factors) inv_freq /= (double)factors[i];
    double s, c;
    sincos((double)positions[t] * inv_freq, &s, &c);
    float* head = x + (u64)t * p.stride + p.col_offset + (u64)h * p.head_dim;
    const u32 ia = p.neox ? i : 2u * i;
    const u32 ib = p.neox ? i + p.rot_dim / 2u : 2u * i + 1u;
    const float a = head[ia], b = head[ib];
    const float cf = (float)c, sf = (float)s;
    head[ia] = a * cf - b * sf;
    head[ib] = a * sf + b * cf;
}
