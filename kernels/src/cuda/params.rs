//! Kernel launch parameters, passed by value: each struct mirrors one in
//! `kernels/cuda/common.cuh` field for field (`#[repr(C)]`, the same order and widths). Both
//! sides assert the sizes, and the tests below check every field offset, so a change on one
//! side only fails loudly.

/// `embedding_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbeddingParams {
    /// Tokens (rows of out).
    pub tokens: u32,
    /// Embedding width.
    pub dim: u32,
    /// Rows of the table.
    pub vocab: u32,
    /// Bytes of one table row.
    pub row_bytes: u32,
}

/// `rms_norm_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RmsNormParams {
    /// Rows.
    pub rows: u32,
    /// Row width.
    pub cols: u32,
    /// Epsilon inside the square root.
    pub eps: f32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

/// `matmul_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatmulParams {
    /// Tokens (rows of x).
    pub tokens: u32,
    /// Reduction length (columns of x and of w).
    pub k: u32,
    /// Rows of w (output columns written).
    pub n: u32,
    /// Bytes of one weight row.
    pub row_bytes: u32,
    /// Row stride of x, elements.
    pub x_stride: u32,
    /// Row stride of out, elements.
    pub out_stride: u32,
    /// First output column.
    pub out_offset: u32,
    /// Padding to 32 bytes.
    pub pad: u32,
}

/// `rope_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RopeParams {
    /// Tokens.
    pub tokens: u32,
    /// Row stride of x, elements.
    pub stride: u32,
    /// First column of the heads.
    pub col_offset: u32,
    /// Heads in the column range.
    pub n_heads: u32,
    /// Head size.
    pub head_dim: u32,
    /// Rotated dims per head.
    pub rot_dim: u32,
    /// Frequency base.
    pub base: f32,
    /// Padding to 32 bytes.
    pub pad: u32,
}

/// `write_kv_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteKvParams {
    /// Elements before the layer's first slot.
    pub layer_offset: u64,
    /// Tokens.
    pub tokens: u32,
    /// Row stride of x, elements.
    pub x_stride: u32,
    /// First key column of x.
    pub k_offset: u32,
    /// First value column of x.
    pub v_offset: u32,
    /// `n_kv_heads * head_dim`.
    pub kv_width: u32,
    /// Padding to 32 bytes.
    pub pad: u32,
}

/// `attention_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttentionParams {
    /// Elements before the layer's first slot.
    pub layer_offset: u64,
    /// Tokens.
    pub tokens: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads.
    pub n_kv_heads: u32,
    /// Head size.
    pub head_dim: u32,
    /// Slots per KV block.
    pub block_size: u32,
    /// Row stride of x, elements.
    pub x_stride: u32,
    /// First query column of x.
    pub q_offset: u32,
    /// Row stride of out, elements.
    pub out_stride: u32,
    /// `1 / sqrt(head_dim)`.
    pub scale: f32,
    /// Padding to 48 bytes.
    pub pad: u32,
}

/// `swiglu_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwigluParams {
    /// Tokens.
    pub tokens: u32,
    /// Output width (half of x's).
    pub f: u32,
}

/// `add_assign_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddParams {
    /// Elements.
    pub len: u64,
}

/// `gather_rows_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatherParams {
    /// Rows gathered.
    pub rows: u32,
    /// Row width.
    pub cols: u32,
    /// Rows of the source.
    pub src_rows: u32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

const _: () = {
    assert!(size_of::<EmbeddingParams>() == 16);
    assert!(size_of::<RmsNormParams>() == 16);
    assert!(size_of::<MatmulParams>() == 32);
    assert!(size_of::<RopeParams>() == 32);
    assert!(size_of::<WriteKvParams>() == 32);
    assert!(size_of::<AttentionParams>() == 48);
    assert!(size_of::<SwigluParams>() == 8);
    assert!(size_of::<AddParams>() == 8);
    assert!(size_of::<GatherParams>() == 16);
};

#[cfg(feature = "cuda")]
mod device_repr {
    use super::*;
    use cudarc::driver::DeviceRepr;

    // SAFETY: each is `#[repr(C)]`, made of plain u32/u64/f32 fields with no padding holes
    // (sizes asserted above and in common.cuh), so its bytes are exactly the C struct the
    // kernel takes by value.
    unsafe impl DeviceRepr for EmbeddingParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for RmsNormParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for MatmulParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for RopeParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for WriteKvParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for AttentionParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for SwigluParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for AddParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for GatherParams {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The struct declarations of common.cuh, parsed: name → fields in order.
    fn c_structs() -> Vec<(String, Vec<(String, String)>)> {
        let header = super::super::sources::COMMON;
        header
            .lines()
            .filter_map(|l| l.trim().strip_prefix("struct "))
            .filter_map(|l| {
                let (name, body) = l.split_once('{')?;
                let body = body.split('}').next()?;
                let fields = body
                    .split(';')
                    .filter_map(|f| {
                        let mut it = f.split_whitespace();
                        Some((it.next()?.to_owned(), it.next()?.to_owned()))
                    })
                    .collect();
                Some((name.trim().to_owned(), fields))
            })
            .collect()
    }

    #[test]
    fn every_param_struct_matches_its_c_declaration() {
        fn c_size(ty: &str) -> usize {
            match ty {
                "u32" | "float" => 4,
                "u64" => 8,
                other => panic!("unexpected C field type {other}"),
            }
        }
        type Mirror = (&'static str, usize, Vec<(&'static str, usize)>);
        let rust: Vec<Mirror> = vec![
            (
                "EmbeddingParams",
                size_of::<EmbeddingParams>(),
                vec![
                    ("tokens", offset_of!(EmbeddingParams, tokens)),
                    ("dim", offset_of!(EmbeddingParams, dim)),
                    ("vocab", offset_of!(EmbeddingParams, vocab)),
                    ("row_bytes", offset_of!(EmbeddingParams, row_bytes)),
                ],
            ),
            (
                "RmsNormParams",
                size_of::<RmsNormParams>(),
                vec![
                    ("rows", offset_of!(RmsNormParams, rows)),
                    ("cols", offset_of!(RmsNormParams, cols)),
                    ("eps", offset_of!(RmsNormParams, eps)),
                    ("pad", offset_of!(RmsNormParams, pad)),
                ],
            ),
            (
                "MatmulParams",
                size_of::<MatmulParams>(),
                vec![
                    ("tokens", offset_of!(MatmulParams, tokens)),
                    ("k", offset_of!(MatmulParams, k)),
                    ("n", offset_of!(MatmulParams, n)),
                    ("row_bytes", offset_of!(MatmulParams, row_bytes)),
                    ("x_stride", offset_of!(MatmulParams, x_stride)),
                    ("out_stride", offset_of!(MatmulParams, out_stride)),
                    ("out_offset", offset_of!(MatmulParams, out_offset)),
                    ("pad", offset_of!(MatmulParams, pad)),
                ],
            ),
            (
                "RopeParams",
                size_of::<RopeParams>(),
                vec![
                    ("tokens", offset_of!(RopeParams, tokens)),
                    ("stride", offset_of!(RopeParams, stride)),
                    ("col_offset", offset_of!(RopeParams, col_offset)),
                    ("n_heads", offset_of!(RopeParams, n_heads)),
                    ("head_dim", offset_of!(RopeParams, head_dim)),
                    ("rot_dim", offset_of!(RopeParams, rot_dim)),
                    ("base", offset_of!(RopeParams, base)),
                    ("pad", offset_of!(RopeParams, pad)),
                ],
            ),
            (
                "WriteKvParams",
                size_of::<WriteKvParams>(),
                vec![
                    ("layer_offset", offset_of!(WriteKvParams, layer_offset)),
                    ("tokens", offset_of!(WriteKvParams, tokens)),
                    ("x_stride", offset_of!(WriteKvParams, x_stride)),
                    ("k_offset", offset_of!(WriteKvParams, k_offset)),
                    ("v_offset", offset_of!(WriteKvParams, v_offset)),
                    ("kv_width", offset_of!(WriteKvParams, kv_width)),
                    ("pad", offset_of!(WriteKvParams, pad)),
                ],
            ),
            (
                "AttentionParams",
                size_of::<AttentionParams>(),
                vec![
                    ("layer_offset", offset_of!(AttentionParams, layer_offset)),
                    ("tokens", offset_of!(AttentionParams, tokens)),
                    ("n_heads", offset_of!(AttentionParams, n_heads)),
                    ("n_kv_heads", offset_of!(AttentionParams, n_kv_heads)),
                    ("head_dim", offset_of!(AttentionParams, head_dim)),
                    ("block_size", offset_of!(AttentionParams, block_size)),
                    ("x_stride", offset_of!(AttentionParams, x_stride)),
                    ("q_offset", offset_of!(AttentionParams, q_offset)),
                    ("out_stride", offset_of!(AttentionParams, out_stride)),
                    ("scale", offset_of!(AttentionParams, scale)),
                    ("pad", offset_of!(AttentionParams, pad)),
                ],
            ),
            (
                "SwigluParams",
                size_of::<SwigluParams>(),
                vec![
                    ("tokens", offset_of!(SwigluParams, tokens)),
                    ("f", offset_of!(SwigluParams, f)),
                ],
            ),
            (
                "AddParams",
                size_of::<AddParams>(),
                vec![("len", offset_of!(AddParams, len))],
            ),
            (
                "GatherParams",
                size_of::<GatherParams>(),
                vec![
                    ("rows", offset_of!(GatherParams, rows)),
                    ("cols", offset_of!(GatherParams, cols)),
                    ("src_rows", offset_of!(GatherParams, src_rows)),
                    ("pad", offset_of!(GatherParams, pad)),
                ],
            ),
        ];
        let c = c_structs();
        assert_eq!(c.len(), rust.len(), "one Rust mirror per C struct: {c:?}");
        for (name, size, fields) in rust {
            let (_, c_fields) = c
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} is not declared in common.cuh"));
            let names: Vec<&str> = c_fields.iter().map(|f| f.1.as_str()).collect();
            let rust_names: Vec<&str> = fields.iter().map(|f| f.0).collect();
            assert_eq!(names, rust_names, "{name}: field order");
            // C layout: each field at the next multiple of its size.
            let mut at = 0usize;
            for ((ty, field), (_, offset)) in c_fields.iter().zip(&fields) {
                let s = c_size(ty);
                at = at.div_ceil(s) * s;
                assert_eq!(at, *offset, "{name}.{field}");
                at += s;
            }
            assert_eq!(at.div_ceil(8) * 8, size.div_ceil(8) * 8, "{name}: size");
            assert!(
                super::super::sources::COMMON.contains(&format!("sizeof({name}) == {size}")),
                "common.cuh asserts {name}'s size {size}"
            );
        }
    }
}
