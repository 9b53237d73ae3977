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
        let q = &self.scales;
        if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        }
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
