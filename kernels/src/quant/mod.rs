//! ggml tensor formats: block layouts, reference (de)quantizers and fast dot products.
//!
//! Supported weight types: [`GgmlType::F32`], [`GgmlType::F16`], [`GgmlType::BF16`],
//! [`GgmlType::Q4_0`], [`GgmlType::Q4_1`], [`GgmlType::Q5_0`], [`GgmlType::Q5_1`],
//! [`GgmlType::Q8_0`], and the K-quants [`GgmlType::Q2_K`], [`GgmlType::Q3_K`],
//! [`GgmlType::Q4_K`], [`GgmlType::Q5_K`] and [`GgmlType::Q6_K`], with the byte layouts of
//! ggml/GGUF (see [`blocks`]). The reference dequantizers match gguf-py's bit for bit on the
//! blocks of `kernels/tests/data/quant_goldens.txt`.
//!
//! # Dot products
//!
//! [`vec_dot`] multiplies one raw weight row with one activation row ([`ActRow`]). What the
//! activation must hold depends on [`GgmlType::act_kind`]:
//!
//! - [`ActKind::F32`] (F32, F16, BF16 weights): the plain f32 activations;
//! - [`ActKind::Q8`] (all quantized types): the activations quantized by [`quantize_act_q8`] into
//!   32-element [`BlockQ8`] blocks. Each 32-element weight chunk is dotted with its activation
//!   block in exact integer arithmetic, then scaled by the weight scale and the activation `d`;
//!   offsets (Q4_1's and Q5_1's `m`, Q4_K's and Q5_K's mins) multiply the activation block's
//!   `s`. Q2_K's mins change every 16 elements, so their dot with the activation quants is a
//!   second exact integer dot, scaled by `-dmin` and the activation `d`. The 5-bit types put
//!   the high bit into the nibble and run the 4-bit path; Q3_K runs Q6_K's (signed quants,
//!   16-element integer scales).
//!
//! [`vec_dot_multi`] does the same for many activation rows while unpacking each weight block
//! once per group of activations (groups of up to 8 with AVX-512, 4 with AVX2 for quant types;
//! the row stays in L1 between groups); its results are bit-identical to [`vec_dot`] for each
//! row, whatever the batch.
//!
//! [`panel`] holds a second layout for the hottest types: sixteen rows interleaved so that one
//! AVX-512 vector computes sixteen outputs (the CPU backend packs Q4_0, Q4_1, Q5_0, Q5_1,
//! Q4_K, Q5_K and Q6_K weights this way with AVX2 or AVX-512 VNNI, Q8_0 with VNNI). Its order
//! of operations is its own, equally fixed.
//!
//! # Accuracy
//!
//! Integer block dots are exact; the only rounding is in the f32 scaling and accumulation. The
//! tests hold every level to `|fast - exact| <= 1e-5 * Σ|w_i x_i|` against an f64 dot of the
//! dequantized weights with the activation the kernel sees (for quant types the dequantized
//! [`BlockQ8`] values), and, against the unquantized f32 activation, to the activation's own
//! rounding bound `Σ|w_i| d_i / 2` on top of that.
//!
//! # Determinism
//!
//! The fast path ([`simd_level`]) is chosen once per process. For a given level, every result is
//! computed in an order that depends only on the row length: never on threads, batch size or
//! the position of an activation in a batch. Different levels (scalar vs AVX2 vs AVX-512) may
//! differ in the last bits.

pub mod blocks;
pub mod panel;

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_support;

mod activation;
mod convert;
mod dispatch;
mod dot;
mod reference;
mod scalar;
mod types;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

pub use activation::{ActKind, ActRow, BlockQ8, quantize_act_q8};
pub use convert::{dequantize_row, quantize_row};
pub use dispatch::simd_level;
pub use dot::{vec_dot, vec_dot_multi, vec_dot_reference, vec_dot_rows};
pub use types::{GgmlType, N_TYPES, ggml_type_name};

pub(crate) use dispatch::{Level, simd_level_enum};
#[cfg(test)]
pub(crate) use dot::vec_dot_multi_at;
