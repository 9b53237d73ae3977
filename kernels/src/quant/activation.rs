//! Activations as the dot products read them: the f32 row and its [`BlockQ8`] quantization,
//! paired in an [`ActRow`]; [`ActKind`] says which form a weight type reads.

use super::blocks;
use super::reference;

/// What form of the activation row [`vec_dot`](super::vec_dot) reads for a weight type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// Plain f32 activations ([`ActRow::f32`]).
    F32,
    /// Activations quantized into [`BlockQ8`] blocks ([`ActRow::q8`]).
    Q8,
}

/// An activation block quantized for integer dot products: `x[i] ≈ d * qs[i]`;
/// `sum = Σ qs`, `s = d * sum`.
///
/// The fast paths assume `qs` in `-127..=127` (never -128), which [`quantize_act_q8`] guarantees.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ8 {
    /// Scale.
    pub d: f32,
    /// `d * sum`, used for weight offsets.
    pub s: f32,
    /// `Σ qs`, exact (what a kernel that biases signed weights into unsigned bytes takes back).
    pub sum: i32,
    /// Quants, in `-127..=127`.
    pub qs: [i8; 32],
}

/// Quantizes one activation row (len multiple of 32) into 32-element blocks (round-to-nearest,
/// amax/127 scale). Deterministic.
///
/// # Panics
/// If `x.len()` is not a multiple of 32 or `out.len() != x.len() / 32`.
pub fn quantize_act_q8(x: &[f32], out: &mut [BlockQ8]) {
    assert!(
        x.len().is_multiple_of(blocks::QK),
        "activation length {} is not a multiple of 32",
        x.len()
    );
    assert_eq!(
        out.len(),
        x.len() / blocks::QK,
        "output must have one BlockQ8 per 32 activations"
    );
    reference::quantize_act(x, out);
}

/// One activation row in both forms; `q8` is empty unless the weight type's act_kind is Q8.
///
/// [`vec_dot`](super::vec_dot) reads only the form the weight type wants
/// ([`GgmlType::act_kind`](super::GgmlType::act_kind)).
#[derive(Clone, Copy, Debug)]
pub struct ActRow<'a> {
    /// The activations as f32.
    pub f32: &'a [f32],
    /// The activations quantized by [`quantize_act_q8`] (one block per 32 elements).
    pub q8: &'a [BlockQ8],
}
