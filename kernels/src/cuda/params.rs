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
    /// 1: NeoX pairs `(i, i + rot_dim/2)`; 0: interleaved `(2i, 2i+1)`.
    pub neox: u32,
    /// Linear position scale.
    pub freq_scale: f32,
    /// 1: divide each pair's frequency by its factor.
    pub has_factors: u32,
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
    /// Multiplier of `q·k`.
    pub scale: f32,
    /// Sliding window in keys; 0 for none.
    pub window: u32,
}

/// `glu_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GluParams {
    /// Tokens.
    pub tokens: u32,
    /// Output width (half of x's).
    pub f: u32,
    /// 1: GELU (tanh form); 0: SiLU.
    pub gelu: u32,
    /// Padding to 16 bytes.
    pub pad: u32,
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

/// `rms_norm_heads_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadNormParams {
    /// Rows.
    pub rows: u32,
    /// Row stride of x, elements.
    pub stride: u32,
    /// First column of the heads.
    pub col_offset: u32,
    /// Heads.
    pub n_heads: u32,
    /// Head size (the weight's length).
    pub head_dim: u32,
    /// Epsilon inside the square root.
    pub eps: f32,
}

/// `add_bias_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BiasParams {
    /// Rows.
    pub rows: u32,
    /// Row stride of x, elements.
    pub stride: u32,
    /// First column.
    pub col_offset: u32,
    /// Columns (the bias's length).
    pub width: u32,
}

/// `scale_f32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScaleParams {
    /// Elements.
    pub len: u64,
    /// Factor.
    pub s: f32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

const _: () = {
    assert!(size_of::<EmbeddingParams>() == 16);
    assert!(size_of::<RmsNormParams>() == 16);
    assert!(size_of::<MatmulParams>() == 32);
    assert!(size_of::<RopeParams>() == 40);
    assert!(size_of::<WriteKvParams>() == 32);
    assert!(size_of::<AttentionParams>() == 48);
    assert!(size_of::<GluParams>() == 16);
    assert!(size_of::<AddParams>() == 8);
    assert!(size_of::<GatherParams>() == 16);
    assert!(size_of::<HeadNormParams>() == 24);
    assert!(size_of::<BiasParams>() == 16);
    assert!(size_of::<ScaleParams>() == 16);
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
    unsafe impl DeviceRepr for GluParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for AddParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for GatherParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for HeadNormParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for BiasParams {}
    // SAFETY: as above.
    unsafe impl DeviceRepr for ScaleParams {}
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
                    ("neox", offset_of!(RopeParams, neox)),
                    ("freq_scale", offset_of!(RopeParams, freq_scale)),
                    ("has_factors", offset_of!(RopeParams, has_factors)),
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
                    ("window", offset_of!(AttentionParams, window)),
                ],
            ),
            (
                "GluParams",
                size_of::<GluParams>(),
                vec![
                    ("tokens", offset_of!(GluParams, tokens)),
                    ("f", offset_of!(GluParams, f)),
                    ("gelu", offset_of!(GluParams, gelu)),
                    ("pad", offset_of!(GluParams, pad)),
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
            (
                "HeadNormParams",
                size_of::<HeadNormParams>(),
                vec![
                    ("rows", offset_of!(HeadNormParams, rows)),
                    ("stride", offset_of!(HeadNormParams, stride)),
                    ("col_offset", offset_of!(HeadNormParams, col_offset)),
                    ("n_heads", offset_of!(HeadNormParams, n_heads)),
                    ("head_dim", offset_of!(HeadNormParams, head_dim)),
                    ("eps", offset_of!(HeadNormParams, eps)),
                ],
            ),
            (
                "BiasParams",
                size_of::<BiasParams>(),
                vec![
                    ("rows", offset_of!(BiasParams, rows)),
                    ("stride", offset_of!(BiasParams, stride)),
                    ("col_offset", offset_of!(BiasParams, col_offset)),
                    ("width", offset_of!(BiasParams, width)),
                ],
            ),
            (
                "ScaleParams",
                size_of::<ScaleParams>(),
                vec![
                    ("len", offset_of!(ScaleParams, len)),
                    ("s", offset_of!(ScaleParams, s)),
                    ("pad", offset_of!(ScaleParams, pad)),
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
