//! The ggml block structs, byte for byte as they sit in a GGUF file.
//!
//! Every struct is `#[repr(C)]`, has alignment 1 and is made only of byte arrays, so any `&[u8]`
//! whose length is a whole number of blocks can be viewed as a block slice (see [`as_blocks`]),
//! whatever its address. fp16 fields are kept as their two little-endian bytes; the accessor
//! methods decode them.

use half::f16;

/// Elements in one block of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and in one
/// [`BlockQ8`](super::BlockQ8) activation block.
pub const QK: usize = 32;

/// Elements in one K-quant super-block (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
pub const QK_K: usize = 256;

/// Decodes a little-endian IEEE fp16 value.
#[inline]
pub fn f16_le(bytes: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(bytes)).to_f32()
}

/// Q4_0: 32 weights `x = (q - 8) * d`, `q` a 4-bit nibble.
///
/// `qs[j]` holds element `j` in its low nibble and element `j + 16` in its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, fp16.
    pub d: [u8; 2],
    /// Nibbles: low = elements 0..16, high = elements 16..32.
    pub qs: [u8; 16],
}

/// Q4_1: 32 weights `x = q * d + m`, `q` a 4-bit nibble (same nibble order as Q4_0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, fp16.
    pub d: [u8; 2],
    /// Offset (the block minimum), fp16.
    pub m: [u8; 2],
    /// Nibbles: low = elements 0..16, high = elements 16..32.
    pub qs: [u8; 16],
}

/// Q5_0: 32 weights `x = (q - 16) * d`, `q` a 5-bit value.
///
/// The low four bits of `q` sit in `qs` in Q4_0's nibble order; bit `j` of the little-endian
/// word `qh` is bit 4 of element `j`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ5_0 {
    /// Scale, fp16.
    pub d: [u8; 2],
    /// Bit 4 of each quant: bit `j` (little-endian) for element `j`.
    pub qh: [u8; 4],
    /// Low nibbles: low = elements 0..16, high = elements 16..32.
    pub qs: [u8; 16],
}

/// Q5_1: 32 weights `x = q * d + m`, `q` a 5-bit value (same quant layout as [`BlockQ5_0`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ5_1 {
    /// Scale, fp16.
    pub d: [u8; 2],
    /// Offset (the block minimum), fp16.
    pub m: [u8; 2],
    /// Bit 4 of each quant: bit `j` (little-endian) for element `j`.
    pub qh: [u8; 4],
    /// Low nibbles: low = elements 0..16, high = elements 16..32.
    pub qs: [u8; 16],
}

/// Q8_0: 32 weights `x = q * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, fp16.
    pub d: [u8; 2],
    /// Signed 8-bit quants.
    pub qs: [i8; 32],
}

/// Q4_K: 256 weights in 8 sub-blocks of 32; `x = d * sc * q - dmin * m` with a 6-bit scale `sc`
/// and a 6-bit min `m` per sub-block (see [`BlockQ4K::scale_min`]).
///
/// `qs` holds four 64-element groups of 32 bytes each: in group `g`, byte `l` carries element
/// `64 g + l` in its low nibble and element `64 g + 32 + l` in its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4K {
    /// Super-block scale for the sub-block scales, fp16.
    pub d: [u8; 2],
    /// Super-block scale for the sub-block mins, fp16.
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, packed as ggml does.
    pub scales: [u8; 12],
    /// 4-bit quants.
    pub qs: [u8; 128],
}

/// Q2_K: 256 weights in 16 sub-blocks of 16; `x = d * sc * q - dmin * m` with a 2-bit `q` and a
/// 4-bit scale `sc` and min `m` per sub-block (`scales[s]`: `sc` in the low nibble, `m` high).
///
/// The block is two halves of 128 elements; half `h` uses `qs[32 h..32 h + 32]`. Element
/// `128 h + 32 j + l` (`j < 4`, `l < 32`) is `qs[32 h + l] >> 2 j & 3`; element `e` uses
/// `scales[e / 16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ2K {
    /// Sub-block scales (low nibble) and mins (high nibble).
    pub scales: [u8; 16],
    /// 2-bit quants.
    pub qs: [u8; 64],
    /// Super-block scale for the sub-block scales, fp16.
    pub d: [u8; 2],
    /// Super-block scale for the sub-block mins, fp16.
    pub dmin: [u8; 2],
}

/// Q3_K: 256 weights in 16 sub-blocks of 16; `x = d * (sc - 32) * q` with a 6-bit `sc` per
/// sub-block (see [`BlockQ3K::scale`]) and a 3-bit signed `q` in `-4..=3`.
///
/// Element `e = 128 h + 32 j + l` (`h < 2`, `j < 4`, `l < 32`) has low bits
/// `qs[32 h + l] >> 2 j & 3` and is that minus 4 unless bit `4 h + j` of `hmask[l]` is set;
/// it uses scale `e / 16`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ3K {
    /// High bit of each quant: set means no `-4`.
    pub hmask: [u8; 32],
    /// Low 2 bits of the quants.
    pub qs: [u8; 64],
    /// Sixteen 6-bit scales, packed as ggml does.
    pub scales: [u8; 12],
    /// Super-block scale, fp16.
    pub d: [u8; 2],
}

/// Q5_K: 256 weights in 8 sub-blocks of 32, as [`BlockQ4K`] (same `d`, `dmin` and scales), with
/// a fifth quant bit: bit `k` of `qh[l]` is bit 4 of element `32 k + l`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5K {
    /// Super-block scale for the sub-block scales, fp16.
    pub d: [u8; 2],
    /// Super-block scale for the sub-block mins, fp16.
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, packed as in [`BlockQ4K`].
    pub scales: [u8; 12],
    /// Bit 4 of the quants.
    pub qh: [u8; 32],
    /// Low 4 bits of the quants, in [`BlockQ4K`]'s order.
    pub qs: [u8; 128],
}

/// Q6_K: 256 weights in 16 sub-blocks of 16; `x = d * scales[s] * (q - 32)` with a 6-bit `q`.
///
/// The block is two halves of 128 elements; half `h` uses `ql[64 h..64 h + 64]`,
/// `qh[32 h..32 h + 32]` and `scales[8 h..8 h + 8]`. Inside a half, for `l` in `0..32`:
/// element `l` is `ql[l] & 15 | (qh[l] & 3) << 4`, element `l + 32` is
/// `ql[l + 32] & 15 | (qh[l] >> 2 & 3) << 4`, element `l + 64` is
/// `ql[l] >> 4 | (qh[l] >> 4 & 3) << 4`, element `l + 96` is `ql[l + 32] >> 4 | (qh[l] >> 6) << 4`;
/// element `e` of the half uses scale `scales[8 h + e / 16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ6K {
    /// Low 4 bits of the quants.
    pub ql: [u8; 128],
    /// High 2 bits of the quants.
    pub qh: [u8; 64],
    /// Signed 8-bit sub-block scales.
    pub scales: [i8; 16],
    /// Super-block scale, fp16.
    pub d: [u8; 2],
}

const _: () = {
    assert!(size_of::<BlockQ4_0>() == 18 && align_of::<BlockQ4_0>() == 1);
    assert!(size_of::<BlockQ4_1>() == 20 && align_of::<BlockQ4_1>() == 1);
    assert!(size_of::<BlockQ5_0>() == 22 && align_of::<BlockQ5_0>() == 1);
    assert!(size_of::<BlockQ5_1>() == 24 && align_of::<BlockQ5_1>() == 1);
    assert!(size_of::<BlockQ2K>() == 84 && align_of::<BlockQ2K>() == 1);
    assert!(size_of::<BlockQ3K>() == 110 && align_of::<BlockQ3K>() == 1);
    assert!(size_of::<BlockQ5K>() == 176 && align_of::<BlockQ5K>() == 1);
    assert!(size_of::<BlockQ8_0>() == 34 && align_of::<BlockQ8_0>() == 1);
    assert!(size_of::<BlockQ4K>() == 144 && align_of::<BlockQ4K>() == 1);
    assert!(size_of::<BlockQ6K>() == 210 && align_of::<BlockQ6K>() == 1);
    assert!(size_of::<super::BlockQ8>() == 44);
};

impl BlockQ4K {
    /// Returns the 6-bit `(scale, min)` of sub-block `j` (`j < 8`), unpacked from `scales`:
    /// sub-blocks 0..4 keep theirs in the low 6 bits of bytes `j` and `j + 4`; sub-blocks 4..8
    /// keep their low 4 bits in the nibbles of byte `j + 4` and their top 2 bits in the top bits
    /// of bytes `j - 4` (scale) and `j` (min).
    #[inline]
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        k4_scale_min(&self.scales, j)
    }

    /// Packs eight 6-bit scales and mins (each `< 64`) the way [`BlockQ4K::scale_min`] reads them.
    pub fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
        let mut q = [0u8; 12];
        for j in 0..4 {
            q[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
            q[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
            q[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
        }
        q
    }
}

impl BlockQ5K {
    /// The 6-bit `(scale, min)` of sub-block `j` (`j < 8`), packed as in [`BlockQ4K::scale_min`].
    #[inline]
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        k4_scale_min(&self.scales, j)
    }
}

/// The `(scale, min)` of sub-block `j` from Q4_K/Q5_K's 12 packed scale bytes.
#[inline]
fn k4_scale_min(q: &[u8; 12], j: usize) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl BlockQ3K {
    /// The signed scale (`-32..=31`) of 16-element sub-block `j` (`j < 16`): its low 4 bits
    /// are nibble `j / 8` of `scales[j % 8]`, its top 2 bits are bits `2 (j / 4)` of
    /// `scales[8 + j % 4]`, and the stored 6-bit value is biased by 32.
    #[inline]
    pub fn scale(&self, j: usize) -> i8 {
        let q = &self.scales;
        let lo = (q[j % 8] >> (4 * (j / 8))) & 0x0F;
        let hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        (lo | (hi << 4)) as i8 - 32
    }

    /// Packs sixteen stored 6-bit scales (each `< 64`, i.e. `scale + 32`) the way
    /// [`BlockQ3K::scale`] reads them.
    pub fn pack_scales(s: &[u8; 16]) -> [u8; 12] {
        let mut q = [0u8; 12];
        for (j, &v) in s.iter().enumerate() {
            q[j % 8] |= (v & 0x0F) << (4 * (j / 8));
            q[8 + j % 4] |= ((v >> 4) & 3) << (2 * (j / 4));
        }
        q
    }
}

/// The 32 quants of chunk `k` (elements `32 k..32 k + 32`, `k < 8`) of a Q2_K or Q3_K block:
/// the 2-bit values `qs[32 (k / 4) + l] >> 2 (k % 4) & 3`.
#[inline]
pub fn k2_low_bits(qs: &[u8; 64], k: usize) -> [u8; 32] {
    let (h, shift) = (k / 4, 2 * (k % 4));
    core::array::from_fn(|l| (qs[32 * h + l] >> shift) & 3)
}

/// The 32 unsigned 5-bit quants (0..=31) of a Q5_0 or Q5_1 block, in element order.
#[inline]
pub fn q5_quants(qh: [u8; 4], qs: &[u8; 16]) -> [u8; 32] {
    let h = u32::from_le_bytes(qh);
    let mut q = [0u8; 32];
    for (j, &v) in qs.iter().enumerate() {
        q[j] = (v & 0x0F) | (((h >> j) & 1) << 4) as u8;
        q[j + 16] = (v >> 4) | (((h >> (j + 16)) & 1) << 4) as u8;
    }
    q
}

/// A plain-bytes block type: `#[repr(C)]`, alignment 1, every bit pattern valid.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs of `u8`/`i8` arrays only (no padding, alignment 1).
pub(crate) unsafe trait RawBlock: Copy {}

// SAFETY: each of these is `#[repr(C)]`, consists only of u8/i8 arrays, and the const block above
// checks that its size has no padding and its alignment is 1.
unsafe impl RawBlock for BlockQ4_0 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ4_1 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ5_0 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ5_1 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ2K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ3K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ5K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ8_0 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ4K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ6K {}

/// Views raw row bytes as blocks. Panics if `bytes.len()` is not a whole number of blocks.
#[inline]
pub(crate) fn as_blocks<B: RawBlock>(bytes: &[u8]) -> &[B] {
    assert!(
        bytes.len().is_multiple_of(size_of::<B>()),
        "row bytes are not whole blocks"
    );
    // SAFETY: B has alignment 1 and every bit pattern is a valid B (RawBlock contract), so any
    // byte address is a valid B address; the slice covers exactly `bytes` (length checked above)
    // and inherits its lifetime and shared borrow.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size_of::<B>()) }
}

/// Mutable version of [`as_blocks`]. Panics if `bytes.len()` is not a whole number of blocks.
#[inline]
pub(crate) fn as_blocks_mut<B: RawBlock>(bytes: &mut [u8]) -> &mut [B] {
    assert!(
        bytes.len().is_multiple_of(size_of::<B>()),
        "row bytes are not whole blocks"
    );
    let n = bytes.len() / size_of::<B>();
    // SAFETY: as in `as_blocks`; additionally any bytes written through a B are plain bytes, so
    // the u8 view stays valid, and the exclusive borrow of `bytes` is moved into the result.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), n) }
}
