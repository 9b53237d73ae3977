//! The per-level entry points that the micro-benchmarks in `kernels/benches/` compare (scalar,
//! AVX2 and AVX-512 VNNI kernels side by side in one process). Hidden from the documentation
//! and not part of the crate's API: the engine only ever runs the detected level.

use super::{ActRow, GgmlType};

pub use super::dispatch::Level;

/// [`vec_dot_multi`](super::vec_dot_multi) with the row kernels of `level`.
///
/// # Panics
/// If the CPU does not support `level`, or on the length mismatches `vec_dot_multi` panics on.
pub fn vec_dot_multi_at(
    level: Level,
    ty: GgmlType,
    w_row: &[u8],
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    super::dot::vec_dot_multi_at(level, ty, w_row, xs, out);
}

/// The levels with a panel kernel for `ty` that this CPU supports (none below AVX2).
pub fn panel_levels(ty: GgmlType) -> Vec<Level> {
    super::panel::kernel_levels(ty)
}

/// [`panel::dot_panels`](super::panel::dot_panels) with the panel kernel of `level` (the scalar
/// order where it has none).
///
/// # Panics
/// If the CPU does not support `level`, or on the mismatches `dot_panels` panics on.
pub fn dot_panels_at(
    level: Level,
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    super::panel::dot_panels_at(level, ty, panels, row_bytes, xs, out);
}
