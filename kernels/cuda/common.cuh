// Shared by every Journey kernel: fixed-width types (NVRTC has no <stdint.h>), the launch
// parameter structs (mirrored field for field by kernels/src/cuda/params.rs; the sizes are
// asserted on both sides), fp16/bf16 loads without cuda_fp16.h, the ggml block layouts and
// warp/block reductions.
//
// The host compiles each .cu file with this header pasted in place of its #include line, so
// no include path is needed at run time.
#pragma once

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define WARP 32
#define NEG_INF __int_as_float(0xff800000)

// ---- launch parameters (by value; keep in sync with params.rs) ----

struct EmbeddingParams { u32 tokens; u32 dim; u32 vocab; u32 row_bytes; };
struct RmsNormParams { u32 rows; u32 cols; float eps; u32 pad; };
struct MatmulParams { u32 tokens; u32 k; u32 n; u32 row_bytes; u32 x_stride; u32 out_stride; u32 out_offset; u32 pad; };
struct RopeParams { u32 tokens; u32 stride; u32 col_offset; u32 n_heads; u32 head_dim; u32 rot_dim; float base; u32 neox; float freq_scale; u32 has_factors; };
struct WriteKvParams { u64 layer_offset; u32 tokens; u32 x_stride; u32 k_offset; u32 v_offset; u32 kv_width; u32 pad; };
struct AttentionParams { u64 layer_offset; u32 tokens; u32 n_heads; u32 n_kv_heads; u32 head_dim; u32 block_size; u32 x_stride; u32 q_offset; u32 out_stride; float scale; u32 window; };
struct GluParams { u32 tokens; u32 f; u32 gelu; u32 pad; };
struct AddParams { u64 len; };
struct GatherParams { u32 rows; u32 cols; u32 src_rows; u32 pad; };
struct HeadNormParams { u32 rows; u32 stride; u32 col_offset; u32 n_heads; u32 head_dim; float eps; };
struct BiasParams { u32 rows; u32 stride; u32 col_offset; u32 width; };
struct ScaleParams { u64 len; float s; u32 pad; };

static_assert(sizeof(EmbeddingParams) == 16, "EmbeddingParams layout");
static_assert(sizeof(RmsNormParams) == 16, "RmsNormParams layout");
static_assert(sizeof(MatmulParams) == 32, "MatmulParams layout");
static_assert(sizeof(RopeParams) == 40, "RopeParams layout");
static_assert(sizeof(WriteKvParams) == 32, "WriteKvParams layout");
static_assert(sizeof(AttentionParams) == 48, "AttentionParams layout");
static_assert(sizeof(GluParams) == 16, "GluParams layout");
static_assert(sizeof(AddParams) == 8, "AddParams layout");
static_assert(sizeof(GatherParams) == 16, "GatherParams layout");
static_assert(sizeof(HeadNormParams) == 24, "HeadNormParams layout");
static_assert(sizeof(BiasParams) == 16, "BiasParams layout");
static_assert(sizeof(ScaleParams) == 16, "ScaleParams layout");

// ---- scalar loads ----

__device__ __forceinline__ u16 load_u16(const u8* p) {
    return (u16)(p[0] | (p[1] << 8));
}

__device__ __forceinline__ float half_bits_to_float(u16 bits) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
    return f;
}

__device__ __forceinline__ float load_f16(const u8* p) {
    return half_bits_to_float(load_u16(p));
}

__device__ __forceinline__ float bf16_bits_to_float(u16 bits) {
    return __uint_as_float(((u32)bits) << 16);
}

// ---- ggml weight types: 32 consecutive elements of a row at a time ----
// Type ids match kernels::GgmlType's ggml numbering.
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q2_K 10
#define T_Q3_K 11
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_BF16 30

// Writes elements 32*j .. 32*j+32 of `row` (stored as TYPE) to v.
template <int TYPE>
__device__ __forceinline__ void chunk32(const u8* row, u32 j, float* v);

template <>
__device__ __forceinline__ void chunk32<T_F32>(const u8* row, u32 j, float* v) {
    const float* r = (const float*)row + 32u * j;
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = r[i];
}

template <>
__device__ __forceinline__ void chunk32<T_F16>(const u8* row, u32 j, float* v) {
    const u16* r = (const u16*)row + 32u * j;
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = half_bits_to_float(r[i]);
}

template <>
__device__ __forceinline__ void chunk32<T_BF16>(const u8* row, u32 j, float* v) {
    const u16* r = (const u16*)row + 32u * j;
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = bf16_bits_to_float(r[i]);
}

// Q4_0: 18 bytes = fp16 d, 16 bytes of nibbles; y[l] = (lo - 8) d, y[l + 16] = (hi - 8) d.
template <>
__device__ __forceinline__ void chunk32<T_Q4_0>(const u8* row, u32 j, float* v) {
    const u8* b = row + 18u * j;
    const float d = load_f16(b);
#pragma unroll
    for (int l = 0; l < 16; ++l) {
        const u8 q = b[2 + l];
        v[l] = (float)((int)(q & 0x0F) - 8) * d;
        v[l + 16] = (float)((int)(q >> 4) - 8) * d;
    }
}

// Q4_1: 20 bytes = fp16 d, fp16 m, 16 bytes of nibbles; y = q d + m.
template <>
__device__ __forceinline__ void chunk32<T_Q4_1>(const u8* row, u32 j, float* v) {
    const u8* b = row + 20u * j;
    const float d = load_f16(b);
    const float m = load_f16(b + 2);
#pragma unroll
    for (int l = 0; l < 16; ++l) {
        const u8 q = b[4 + l];
        v[l] = (float)(q & 0x0F) * d + m;
        v[l + 16] = (float)(q >> 4) * d + m;
    }
}

// Q5_0/Q5_1 quant l (0..32): the Q4_0 nibble plus bit l of the little-endian word qh as bit 4.
__device__ __forceinline__ int q5_quant(const u8* qs, u32 qh, int l) {
    const int nib = l < 16 ? (qs[l] & 0x0F) : (qs[l - 16] >> 4);
    return nib | (int)(((qh >> l) & 1u) << 4);
}

__device__ __forceinline__ u32 load_u32(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

// Q5_0: 22 bytes = fp16 d, 4 bytes qh, 16 bytes of nibbles; y = (q - 16) d.
template <>
__device__ __forceinline__ void chunk32<T_Q5_0>(const u8* row, u32 j, float* v) {
    const u8* b = row + 22u * j;
    const float d = load_f16(b);
    const u32 qh = load_u32(b + 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = (float)(q5_quant(b + 6, qh, l) - 16) * d;
}

// Q5_1: 24 bytes = fp16 d, fp16 m, 4 bytes qh, 16 bytes of nibbles; y = q d + m.
template <>
__device__ __forceinline__ void chunk32<T_Q5_1>(const u8* row, u32 j, float* v) {
    const u8* b = row + 24u * j;
    const float d = load_f16(b);
    const float m = load_f16(b + 2);
    const u32 qh = load_u32(b + 4);
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = (float)q5_quant(b + 8, qh, l) * d + m;
}

// Q8_0: 34 bytes = fp16 d, 32 signed bytes; y = q d.
template <>
__device__ __forceinline__ void chunk32<T_Q8_0>(const u8* row, u32 j, float* v) {
    const u8* b = row + 34u * j;
    const float d = load_f16(b);
    const i8* qs = (const i8*)(b + 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = (float)qs[l] * d;
}

// Q4_K: 144-byte super-blocks of 256 = fp16 d, fp16 dmin, 12 bytes of packed 6-bit
// scales/mins, 128 bytes of nibbles. Chunk s (0..8) of a super-block: group g = s / 2, low
// nibbles for even s, high for odd; y = d sc q - dmin m.
__device__ __forceinline__ void q4k_scale_min(const u8* q, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

template <>
__device__ __forceinline__ void chunk32<T_Q4_K>(const u8* row, u32 j, float* v) {
    const u8* b = row + 144u * (j / 8u);
    const int s = (int)(j % 8u);
    const float d = load_f16(b);
    const float dmin = load_f16(b + 2);
    int sc, m;
    q4k_scale_min(b + 4, s, &sc, &m);
    const float dl = d * (float)sc;
    const float ml = dmin * (float)m;
    const u8* qs = b + 16 + 32 * (s / 2);
    const int shift = (s & 1) ? 4 : 0;
#pragma unroll
    for (int l = 0; l < 32; ++l) v[l] = dl * (float)((qs[l] >> shift) & 0x0F) - ml;
}

// Q2_K: 84-byte super-blocks of 256 = 16 bytes of 4-bit scales (low) and mins (high), 64
// bytes of 2-bit quants, fp16 d, fp16 dmin. Chunk k (0..8): quant l is
// qs[32 (k / 4) + l] >> 2 (k % 4) & 3, sub-block 2 k + l / 16; y = d sc q - dmin m.
template <>
__device__ __forceinline__ void chunk32<T_Q2_K>(const u8* row, u32 j, float* v) {
    const u8* b = row + 84u * (j / 8u);
    const int k = (int)(j % 8u);
    const float d = load_f16(b + 80);
    const float dmin = load_f16(b + 82);
    const u8* qs = b + 16 + 32 * (k / 4);
    const int shift = 2 * (k % 4);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const u8 s = b[2 * k + l / 16];
        const float dl = d * (float)(s & 0x0F);
        const float ml = dmin * (float)(s >> 4);
        v[l] = dl * (float)((qs[l] >> shift) & 3) - ml;
    }
}

// Q3_K: 110-byte super-blocks of 256 = 32 bytes hmask, 64 bytes of 2-bit quants, 12 bytes of
// packed 6-bit scales, fp16 d. Chunk k (0..8): quant l is qs[32 (k / 4) + l] >> 2 (k % 4) & 3,
// minus 4 unless bit k of hmask[l] is set; sub-block s = 2 k + l / 16 has scale
// (low nibble s / 8 of byte s % 8 | bits 2 (s / 4) of byte 8 + s % 4 << 4) - 32; y = d sc q.
__device__ __forceinline__ int q3k_scale(const u8* sc, int s) {
    const int lo = (sc[s % 8] >> (4 * (s / 8))) & 0x0F;
    const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

template <>
__device__ __forceinline__ void chunk32<T_Q3_K>(const u8* row, u32 j, float* v) {
    const u8* b = row + 110u * (j / 8u);
    const int k = (int)(j % 8u);
    const float d = load_f16(b + 108);
    const u8* qs = b + 32 + 32 * (k / 4);
    const int shift = 2 * (k % 4);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const int q = ((qs[l] >> shift) & 3) - (((b[l] >> k) & 1) ? 0 : 4);
        const float dl = d * (float)q3k_scale(b + 96, 2 * k + l / 16);
        v[l] = dl * (float)q;
    }
}

// Q5_K: 176-byte super-blocks of 256 = fp16 d, fp16 dmin, 12 bytes of Q4_K scales/mins, 32
// bytes qh, 128 bytes of nibbles. Chunk s (0..8): Q4_K's nibble plus bit s of qh[l] as bit 4;
// y = d sc q - dmin m.
template <>
__device__ __forceinline__ void chunk32<T_Q5_K>(const u8* row, u32 j, float* v) {
    const u8* b = row + 176u * (j / 8u);
    const int s = (int)(j % 8u);
    const float d = load_f16(b);
    const float dmin = load_f16(b + 2);
    int sc, m;
    q4k_scale_min(b + 4, s, &sc, &m);
    const float dl = d * (float)sc;
    const float ml = dmin * (float)m;
    const u8* qh = b + 16;
    const u8* qs = b + 48 + 32 * (s / 2);
    const int shift = (s & 1) ? 4 : 0;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const int q = ((qs[l] >> shift) & 0x0F) | (((qh[l] >> s) & 1) << 4);
        v[l] = dl * (float)q - ml;
    }
}

// Q6_K: 210-byte super-blocks of 256 = 128 bytes low nibbles, 64 bytes of 2-bit highs, 16
// signed scales, fp16 d. Chunk k (0..8): half = k / 4, kk = k % 4; y = d sc (q - 32).
template <>
__device__ __forceinline__ void chunk32<T_Q6_K>(const u8* row, u32 j, float* v) {
    const u8* b = row + 210u * (j / 8u);
    const int k = (int)(j % 8u);
    const int half = k / 4, kk = k % 4;
    const u8* ql = b + 64 * half;
    const u8* qh = b + 128 + 32 * half;
    const i8* scales = (const i8*)(b + 192);
    const float d = load_f16(b + 208);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const int lo = (kk & 1) ? (kk >= 2 ? (ql[l + 32] >> 4) : (ql[l + 32] & 0x0F))
                                : (kk >= 2 ? (ql[l] >> 4) : (ql[l] & 0x0F));
        const int hi = (qh[l] >> (2 * kk)) & 3;
        const int q = (lo | (hi << 4)) - 32;
        const float sc = (float)scales[8 * half + 2 * kk + l / 16];
        v[l] = d * sc * (float)q;
    }
}

// ---- reductions ----

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = WARP / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = WARP / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float x, float* scratch /* [32] shared */) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    x = warp_sum(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    const int warps = blockDim.x / WARP;
    float total = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(total);
}

__device__ __forceinline__ float block_max(float x, float* scratch /* [32] shared */) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    const int warps = blockDim.x / WARP;
    float best = lane < warps ? scratch[lane] : NEG_INF;
    return warp_max(best);
}
