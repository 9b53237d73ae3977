//! The host side of every launch that needs no GPU: which entry point serves an op for a
//! weight type, the grid and block of each launch (checked against the device limits), and
//! the shape checks that run before anything touches device memory. [`super::CudaBackend`]
//! only calls these and hands the results to the driver, so they are unit-tested here on CPU.

use crate::backend::Cols;
use crate::quant::GgmlType;

/// The ops of [`crate::Backend`] that run as kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Embedding gather.
    Embedding,
    /// RMSNorm.
    RmsNorm,
    /// Weight × activations.
    Matmul,
    /// Rotary embedding.
    Rope,
    /// KV write into paged blocks.
    WriteKv,
    /// Paged attention.
    Attention,
    /// Gated activation (SwiGLU, GeGLU).
    Glu,
    /// Per-head RMSNorm (Q/K norms).
    RmsNormHeads,
    /// Bias add on a column range.
    AddBias,
    /// Scalar multiply.
    Scale,
    /// Residual add.
    AddAssign,
    /// Row gather (the last token of each sequence before the LM head).
    GatherRows,
}

impl Op {
    /// Every op.
    pub const ALL: [Op; 12] = [
        Op::Embedding,
        Op::RmsNorm,
        Op::RmsNormHeads,
        Op::Matmul,
        Op::AddBias,
        Op::Scale,
        Op::Rope,
        Op::WriteKv,
        Op::Attention,
        Op::Glu,
        Op::AddAssign,
        Op::GatherRows,
    ];

    /// Whether the op has one entry point per weight type.
    pub fn per_weight_type(self) -> bool {
        matches!(self, Op::Embedding | Op::Matmul)
    }

    /// The `.cu` file that defines the op.
    pub fn source_file(self) -> &'static str {
        match self {
            Op::Embedding => "embedding.cu",
            Op::RmsNorm | Op::RmsNormHeads => "rms_norm.cu",
            Op::Matmul => "matmul.cu",
            Op::Rope => "rope.cu",
            Op::WriteKv => "kv_cache.cu",
            Op::Attention => "attention.cu",
            Op::Glu | Op::AddBias | Op::Scale | Op::AddAssign | Op::GatherRows => "elementwise.cu",
        }
    }

    fn stem(self) -> &'static str {
        match self {
            Op::Embedding => "embedding",
            Op::RmsNorm => "rms_norm",
            Op::Matmul => "matmul",
            Op::Rope => "rope",
            Op::WriteKv => "write_kv",
            Op::Attention => "attention",
            Op::Glu => "glu",
            Op::RmsNormHeads => "rms_norm_heads",
            Op::AddBias => "add_bias",
            Op::Scale => "scale",
            Op::AddAssign => "add_assign",
            Op::GatherRows => "gather_rows",
        }
    }
}

/// The `<op>_<dtype>` suffix of a weight type.
pub fn dtype_suffix(ty: GgmlType) -> &'static str {
    match ty {
        GgmlType::F32 => "f32",
        GgmlType::F16 => "f16",
        GgmlType::BF16 => "bf16",
        GgmlType::Q4_0 => "q4_0",
        GgmlType::Q4_1 => "q4_1",
        GgmlType::Q5_0 => "q5_0",
        GgmlType::Q5_1 => "q5_1",
        GgmlType::Q8_0 => "q8_0",
        GgmlType::Q2_K => "q2_k",
        GgmlType::Q3_K => "q3_k",
        GgmlType::Q4_K => "q4_k",
        GgmlType::Q5_K => "q5_k",
        GgmlType::Q6_K => "q6_k",
    }
}

/// The entry point of `op`: `<op>_<weight type>` for per-type ops, `<op>_f32` for the others
/// (their tensors are f32 activations; RMSNorm's weight is F32 too).
pub fn kernel_name(op: Op, ty: GgmlType) -> String {
    if op.per_weight_type() {
        format!("{}_{}", op.stem(), dtype_suffix(ty))
    } else {
        format!("{}_f32", op.stem())
    }
}

/// Every entry point the backend may launch, with its file.
pub fn all_kernels() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for op in Op::ALL {
        if op.per_weight_type() {
            for ty in GgmlType::ALL {
                out.push((op.source_file(), kernel_name(op, ty)));
            }
        } else {
            out.push((op.source_file(), kernel_name(op, GgmlType::F32)));
        }
    }
    out
}

/// A kernel launch's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads in x, y, z.
    pub block: (u32, u32, u32),
    /// Dynamic shared memory, bytes.
    pub shared_bytes: u32,
}

/// Why a launch was refused before reaching the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A dimension does not fit the device's grid or block limits.
    #[error("launch of {kernel}: {what}")]
    Limits {
        /// Entry point.
        kernel: &'static str,
        /// What is out of range.
        what: String,
    },
    /// Operands whose shapes do not fit the op.
    #[error("{op:?}: {what}")]
    Shape {
        /// The op.
        op: Op,
        /// What does not fit.
        what: String,
    },
}

/// Device limits (compute capability 7.0 and newer).
const MAX_THREADS: u32 = 1024;
const MAX_GRID_YZ: u32 = 65_535;
const MAX_GRID_X: u32 = i32::MAX as u32;
const MAX_SHARED: u32 = 48 << 10;

/// Threads per block of the row-wise kernels.
pub const ROW_THREADS: u32 = 256;
/// Weight rows per block of `matmul_*` (one warp each).
pub const MATMUL_ROWS: u32 = 4;
/// Tokens per block of `matmul_*` (`TILE_T` in matmul.cu).
pub const MATMUL_TILE_T: u32 = 8;
/// Threads per block of `attention_f32` (`BLOCK` in attention.cu).
pub const ATTENTION_THREADS: u32 = 128;
/// 32-chunks per thread row of `embedding_*` blocks (block (32, EMBED_WARPS)).
pub const EMBED_WARPS: u32 = 4;

fn to_u32(kernel: &'static str, what: &str, v: usize) -> Result<u32, PlanError> {
    u32::try_from(v).map_err(|_| PlanError::Limits {
        kernel,
        what: format!("{what} = {v} does not fit 32 bits"),
    })
}

impl Launch {
    fn checked(self, kernel: &'static str) -> Result<Self, PlanError> {
        let (gx, gy, gz) = self.grid;
        let (bx, by, bz) = self.block;
        let bad = |what: String| Err(PlanError::Limits { kernel, what });
        if gx == 0 || gy == 0 || gz == 0 {
            return bad(format!("empty grid {:?}", self.grid));
        }
        if gx > MAX_GRID_X || gy > MAX_GRID_YZ || gz > MAX_GRID_YZ {
            return bad(format!("grid {:?} exceeds the device limits", self.grid));
        }
        let threads = u64::from(bx) * u64::from(by) * u64::from(bz);
        if threads == 0 || threads > u64::from(MAX_THREADS) {
            return bad(format!("block {:?} has {threads} threads", self.block));
        }
        if self.shared_bytes > MAX_SHARED {
            return bad(format!("{} bytes of shared memory", self.shared_bytes));
        }
        Ok(self)
    }
}

/// `embedding_*`: grid (tokens, ⌈dim/32 / (32·EMBED_WARPS)⌉), block (32, EMBED_WARPS).
pub fn embedding_launch(tokens: usize, dim: usize) -> Result<Launch, PlanError> {
    const K: &str = "embedding";
    let chunks = dim / 32;
    Launch {
        grid: (
            to_u32(K, "tokens", tokens)?,
            to_u32(
                K,
                "chunk blocks",
                chunks.div_ceil((32 * EMBED_WARPS) as usize),
            )?,
            1,
        ),
        block: (32, EMBED_WARPS, 1),
        shared_bytes: 0,
    }
    .checked(K)
}

/// `rms_norm_f32`, `write_kv_f32`, `gather_rows_f32`: one block of [`ROW_THREADS`] per row.
pub fn per_row_launch(kernel: &'static str, rows: usize) -> Result<Launch, PlanError> {
    Launch {
        grid: (to_u32(kernel, "rows", rows)?, 1, 1),
        block: (ROW_THREADS, 1, 1),
        shared_bytes: 0,
    }
    .checked(kernel)
}

/// `matmul_*`: grid (⌈n / MATMUL_ROWS⌉, ⌈tokens / MATMUL_TILE_T⌉), block (32, MATMUL_ROWS).
pub fn matmul_launch(tokens: usize, n: usize) -> Result<Launch, PlanError> {
    const K: &str = "matmul";
    Launch {
        grid: (
            to_u32(K, "row blocks", n.div_ceil(MATMUL_ROWS as usize))?,
            to_u32(K, "token tiles", tokens.div_ceil(MATMUL_TILE_T as usize))?,
            1,
        ),
        block: (32, MATMUL_ROWS, 1),
        shared_bytes: 0,
    }
    .checked(K)
}

/// `rope_f32`: grid (tokens, heads), block (rot_dim / 2).
pub fn rope_launch(tokens: usize, n_heads: usize, rot_dim: usize) -> Result<Launch, PlanError> {
    const K: &str = "rope_f32";
    Launch {
        grid: (
            to_u32(K, "tokens", tokens)?,
            to_u32(K, "heads", n_heads)?,
            1,
        ),
        block: (to_u32(K, "pairs", (rot_dim / 2).max(1))?, 1, 1),
        shared_bytes: 0,
    }
    .checked(K)
}

/// `attention_f32`: grid (tokens, heads), block [`ATTENTION_THREADS`], shared q + scores.
pub fn attention_launch(
    tokens: usize,
    n_heads: usize,
    head_dim: usize,
) -> Result<Launch, PlanError> {
    const K: &str = "attention_f32";
    if head_dim > 2 * ATTENTION_THREADS as usize {
        return Err(PlanError::Limits {
            kernel: K,
            what: format!("head_dim {head_dim} > {}", 2 * ATTENTION_THREADS),
        });
    }
    let shared = (head_dim + ATTENTION_THREADS as usize) * 4;
    Launch {
        grid: (
            to_u32(K, "tokens", tokens)?,
            to_u32(K, "heads", n_heads)?,
            1,
        ),
        block: (ATTENTION_THREADS, 1, 1),
        shared_bytes: to_u32(K, "shared bytes", shared)?,
    }
    .checked(K)
}

/// `glu_f32` (`f` = output width) and `add_bias_f32` (`f` = bias width): grid
/// (⌈f / ROW_THREADS⌉, tokens), block [`ROW_THREADS`].
pub fn columns_launch(kernel: &'static str, tokens: usize, f: usize) -> Result<Launch, PlanError> {
    Launch {
        grid: (
            to_u32(kernel, "column blocks", f.div_ceil(ROW_THREADS as usize))?,
            to_u32(kernel, "tokens", tokens)?,
            1,
        ),
        block: (ROW_THREADS, 1, 1),
        shared_bytes: 0,
    }
    .checked(kernel)
}

/// `rms_norm_heads_f32`: grid (rows, heads), block [`ROW_THREADS`].
pub fn heads_launch(
    kernel: &'static str,
    rows: usize,
    n_heads: usize,
) -> Result<Launch, PlanError> {
    Launch {
        grid: (
            to_u32(kernel, "rows", rows)?,
            to_u32(kernel, "heads", n_heads)?,
            1,
        ),
        block: (ROW_THREADS, 1, 1),
        shared_bytes: 0,
    }
    .checked(kernel)
}

/// `add_assign_f32`, `scale_f32`: ⌈len / ROW_THREADS⌉ blocks of [`ROW_THREADS`].
pub fn elementwise_launch(kernel: &'static str, len: usize) -> Result<Launch, PlanError> {
    Launch {
        grid: (
            to_u32(kernel, "blocks", len.div_ceil(ROW_THREADS as usize))?,
            1,
            1,
        ),
        block: (ROW_THREADS, 1, 1),
        shared_bytes: 0,
    }
    .checked(kernel)
}

fn shape(op: Op, ok: bool, what: impl FnOnce() -> String) -> Result<(), PlanError> {
    if ok {
        Ok(())
    } else {
        Err(PlanError::Shape { op, what: what() })
    }
}

/// The kernels read weights 32 elements at a time: rows must be whole 32-chunks (every
/// ggml block type already is; F32/F16/BF16 rows must be too).
pub fn check_weight_cols(op: Op, cols: usize) -> Result<(), PlanError> {
    shape(op, cols > 0 && cols.is_multiple_of(32), || {
        format!("weight rows of {cols} elements are not whole 32-element chunks")
    })
}

/// `matmul`: x `[T, k]`, weights `[n_i, k]`, out `[T, Σ n_i]`.
pub fn check_matmul(
    x: (usize, usize),
    weights: &[(usize, usize)],
    out: (usize, usize),
) -> Result<(), PlanError> {
    let op = Op::Matmul;
    check_weight_cols(op, x.1)?;
    for &(n, k) in weights {
        shape(op, k == x.1, || {
            format!("weight [{n}, {k}] against x [{}, {}]", x.0, x.1)
        })?;
    }
    let total: usize = weights.iter().map(|w| w.0).sum();
    shape(op, out == (x.0, total), || {
        format!("out {out:?}, expected [{}, {total}]", x.0)
    })
}

/// `rope`: whole heads inside x, an even `rot_dim` within a head, one position per row.
pub fn check_rope(
    x: (usize, usize),
    cols: Cols,
    head_dim: usize,
    rot_dim: usize,
    positions: usize,
) -> Result<(), PlanError> {
    let op = Op::Rope;
    shape(op, cols.offset + cols.width <= x.1, || {
        format!("columns {cols:?} outside a row of {}", x.1)
    })?;
    shape(
        op,
        head_dim > 0
            && cols.width.is_multiple_of(head_dim)
            && rot_dim <= head_dim
            && rot_dim.is_multiple_of(2),
        || format!("width {} head_dim {head_dim} rot_dim {rot_dim}", cols.width),
    )?;
    shape(op, positions == x.0, || {
        format!("{positions} positions for {} rows", x.0)
    })
}

/// `attention`: the query columns hold `n_heads` heads, GQA groups are whole, and every
/// token has a sequence, a position and keys its block table covers.
pub fn check_attention(
    x: (usize, usize),
    q_cols: Cols,
    layout: &crate::backend::AttentionLayout<'_>,
    out: (usize, usize),
) -> Result<(), PlanError> {
    let op = Op::Attention;
    let (nh, nkv, hd) = (layout.n_heads, layout.n_kv_heads, layout.head_dim);
    shape(op, nkv > 0 && nh.is_multiple_of(nkv), || {
        format!("{nh} query heads over {nkv} kv heads")
    })?;
    shape(
        op,
        q_cols.width == nh * hd && q_cols.offset + q_cols.width <= x.1,
        || {
            format!(
                "q columns {q_cols:?} for {nh} heads of {hd} in rows of {}",
                x.1
            )
        },
    )?;
    shape(op, out == (x.0, nh * hd), || {
        format!("out {out:?}, expected [{}, {}]", x.0, nh * hd)
    })?;
    shape(
        op,
        layout.positions.len() == x.0 && layout.token_seq.len() == x.0,
        || format!("{} tokens, {} positions", x.0, layout.positions.len()),
    )?;
    for (t, (&seq, &pos)) in layout.token_seq.iter().zip(layout.positions).enumerate() {
        let table = layout.block_tables.get(seq as usize);
        let covered = table.map_or(0, |b| b.len() * layout.block_size);
        shape(op, (pos as usize) < covered, || {
            format!("token {t} at position {pos} of sequence {seq}: its blocks cover {covered}")
        })?;
    }
    Ok(())
}

/// The block tables as one array and the offset of each sequence's table in it (the
/// kernel's `tables` and `table_offsets`).
pub fn flatten_tables(tables: &[&[u32]]) -> (Vec<u32>, Vec<u32>) {
    let mut offsets = Vec::with_capacity(tables.len() + 1);
    let mut flat = Vec::with_capacity(tables.iter().map(|t| t.len()).sum());
    for t in tables {
        offsets.push(flat.len() as u32);
        flat.extend_from_slice(t);
    }
    offsets.push(flat.len() as u32);
    (flat, offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::AttentionLayout;

    #[test]
    fn every_op_and_weight_type_has_one_entry_point() {
        let names: Vec<String> = all_kernels().into_iter().map(|k| k.1).collect();
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(names.len(), 2 * GgmlType::ALL.len() + 10);
        assert_eq!(kernel_name(Op::Matmul, GgmlType::Q4_K), "matmul_q4_k");
        assert_eq!(kernel_name(Op::Embedding, GgmlType::Q8_0), "embedding_q8_0");
        assert_eq!(kernel_name(Op::RmsNorm, GgmlType::Q8_0), "rms_norm_f32");
    }

    #[test]
    fn matmul_grids_cover_every_row_and_token() {
        let l = matmul_launch(1, 576).unwrap();
        assert_eq!(l.grid, (144, 1, 1));
        assert_eq!(l.block, (32, 4, 1));
        let l = matmul_launch(17, 49_152).unwrap();
        assert_eq!(l.grid, (12_288, 3, 1));
        for (t, n) in [(1, 1), (7, 5), (8, 8), (9, 1537), (512, 1536)] {
            let l = matmul_launch(t, n).unwrap();
            assert!(l.grid.0 * MATMUL_ROWS >= n as u32 && (l.grid.0 - 1) * MATMUL_ROWS < n as u32);
            assert!(
                l.grid.1 * MATMUL_TILE_T >= t as u32 && (l.grid.1 - 1) * MATMUL_TILE_T < t as u32
            );
        }
    }

    #[test]
    fn launches_outside_the_device_limits_are_refused() {
        assert!(matmul_launch(0, 16).is_err(), "an empty grid");
        assert!(matmul_launch(8 * 70_000, 16).is_err(), "grid.y over 65535");
        assert!(
            attention_launch(4, 9, 257).is_err(),
            "head_dim over 2 x 128"
        );
        let l = attention_launch(4, 9, 64).unwrap();
        assert_eq!(
            (l.grid, l.block, l.shared_bytes),
            ((4, 9, 1), (128, 1, 1), 768)
        );
        assert!(rope_launch(1, 1, 4096).is_err(), "2048 threads per block");
        assert_eq!(rope_launch(3, 9, 64).unwrap().block, (32, 1, 1));
        assert_eq!(columns_launch("glu_f32", 5, 1536).unwrap().grid, (6, 5, 1));
        assert_eq!(
            heads_launch("rms_norm_heads_f32", 3, 16).unwrap().grid,
            (3, 16, 1)
        );
        assert_eq!(
            elementwise_launch("add_assign_f32", 257).unwrap().grid,
            (2, 1, 1)
        );
        assert_eq!(embedding_launch(3, 576).unwrap().grid, (3, 1, 1));
        assert_eq!(embedding_launch(3, 32 * 129).unwrap().grid, (3, 2, 1));
    }

    #[test]
    fn shape_checks_name_the_mismatch() {
        assert!(check_matmul((4, 64), &[(10, 64), (6, 64)], (4, 16)).is_ok());
        let e = check_matmul((4, 64), &[(10, 32)], (4, 10)).unwrap_err();
        assert!(e.to_string().contains("weight [10, 32]"), "{e}");
        assert!(check_matmul((4, 64), &[(10, 64)], (4, 11)).is_err());
        assert!(
            check_matmul((4, 48), &[(10, 48)], (4, 10)).is_err(),
            "not whole chunks"
        );
        assert!(check_rope((2, 128), Cols::new(0, 128), 64, 64, 2).is_ok());
        assert!(check_rope((2, 128), Cols::new(64, 128), 64, 64, 2).is_err());
        assert!(check_rope((2, 128), Cols::new(0, 128), 64, 63, 2).is_err());
        assert!(check_rope((2, 128), Cols::new(0, 128), 64, 64, 1).is_err());
    }

    #[test]
    fn attention_checks_block_table_coverage() {
        let tables: [&[u32]; 2] = [&[3, 1], &[0]];
        let layout = AttentionLayout {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 8,
            block_size: 4,
            token_seq: &[0, 0, 1],
            positions: &[6, 7, 3],
            block_tables: &tables,
            slots: &[6, 7, 3],
            scale: 0.125,
            window: None,
        };
        assert!(check_attention((3, 64), Cols::new(0, 32), &layout, (3, 32)).is_ok());
        let beyond = AttentionLayout {
            positions: &[6, 8, 3],
            ..layout
        };
        let e = check_attention((3, 64), Cols::new(0, 32), &beyond, (3, 32)).unwrap_err();
        assert!(e.to_string().contains("position 8"), "{e}");
        let bad_gqa = AttentionLayout {
            n_kv_heads: 3,
            ..layout
        };
        assert!(check_attention((3, 64), Cols::new(0, 32), &bad_gqa, (3, 32)).is_err());
        let (flat, offsets) = flatten_tables(&tables);
        assert_eq!((flat, offsets), (vec![3, 1, 0], vec![0, 2, 3]));
    }
}
