//! The ggml tensor types Journey supports: ids, names, block sizes and row sizes, and the names
//! of the ggml ids it does not support (for error messages).

use super::activation::ActKind;
use super::blocks;

/// How many weight types are supported (the length of [`GgmlType::ALL`]).
pub const N_TYPES: usize = 13;

/// ggml tensor types supported. Discriminants are the ggml type ids.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE float.
    F16 = 1,
    /// 4-bit, 32-element blocks with one fp16 scale.
    Q4_0 = 2,
    /// 4-bit, 32-element blocks with an fp16 scale and an fp16 offset.
    Q4_1 = 3,
    /// 5-bit, 32-element blocks with one fp16 scale.
    Q5_0 = 6,
    /// 5-bit, 32-element blocks with an fp16 scale and an fp16 offset.
    Q5_1 = 7,
    /// 8-bit, 32-element blocks with one fp16 scale.
    Q8_0 = 8,
    /// 2-bit K-quant, 256-element super-blocks with 4-bit sub-block scales and mins.
    Q2_K = 10,
    /// 3-bit K-quant, 256-element super-blocks with 6-bit sub-block scales.
    Q3_K = 11,
    /// 4-bit K-quant, 256-element super-blocks with 6-bit sub-block scales and mins.
    Q4_K = 12,
    /// 5-bit K-quant, 256-element super-blocks with 6-bit sub-block scales and mins.
    Q5_K = 13,
    /// 6-bit K-quant, 256-element super-blocks with 8-bit sub-block scales.
    Q6_K = 14,
    /// bfloat16.
    BF16 = 30,
}

impl GgmlType {
    /// Every supported type, in id order.
    pub const ALL: [GgmlType; N_TYPES] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ];

    /// The supported type with ggml type id `id`, or `None` (use [`ggml_type_name`] to name it).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// ggml's name for the type: `"F32"`, `"Q4_1"`, `"Q4_K"`, ...
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Elements per block: 1 for F32/F16/BF16, 32 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, 256 for the
    /// K-quants (Q2_K..Q6_K).
    pub fn block_elems(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                blocks::QK
            }
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                blocks::QK_K
            }
        }
    }

    /// Bytes per block: 4, 2, 18, 20, 22, 24, 34, 84, 110, 144, 176, 210, 2 (in declaration
    /// order).
    pub const fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => size_of::<blocks::BlockQ4_0>(),
            GgmlType::Q4_1 => size_of::<blocks::BlockQ4_1>(),
            GgmlType::Q5_0 => size_of::<blocks::BlockQ5_0>(),
            GgmlType::Q5_1 => size_of::<blocks::BlockQ5_1>(),
            GgmlType::Q8_0 => size_of::<blocks::BlockQ8_0>(),
            GgmlType::Q2_K => size_of::<blocks::BlockQ2K>(),
            GgmlType::Q3_K => size_of::<blocks::BlockQ3K>(),
            GgmlType::Q4_K => size_of::<blocks::BlockQ4K>(),
            GgmlType::Q5_K => size_of::<blocks::BlockQ5K>(),
            GgmlType::Q6_K => size_of::<blocks::BlockQ6K>(),
        }
    }

    /// Bytes of a row of `n_elems` elements; `None` if `n_elems` is not a multiple of
    /// [`GgmlType::block_elems`] (or the size overflows `usize`).
    pub fn row_bytes(self, n_elems: usize) -> Option<usize> {
        if !n_elems.is_multiple_of(self.block_elems()) {
            return None;
        }
        (n_elems / self.block_elems()).checked_mul(self.block_bytes())
    }

    /// The activation form [`vec_dot`](super::vec_dot) wants for weights of this type.
    pub fn act_kind(self) -> ActKind {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => ActKind::F32,
            _ => ActKind::Q8,
        }
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of any ggml type id, including ones we don't support (Q8_1=9, Q8_K=15, IQ*..., I8..,
/// F64.., MXFP4=39, ...), for error messages. `None` for unknown ids.
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_2",
        5 => "Q4_3",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        31 => "Q4_0_4_4",
        32 => "Q4_0_4_8",
        33 => "Q4_0_8_8",
        34 => "TQ1_0",
        35 => "TQ2_0",
        36 => "IQ4_NL_4_4",
        37 => "IQ4_NL_4_8",
        38 => "IQ4_NL_8_8",
        39 => "MXFP4",
        _ => return None,
    })
}
