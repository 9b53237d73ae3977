//! The op set of the forward passes of the Llama family (Llama, Qwen 2/3, Gemma 3), as one
//! trait per device.
//!
//! Shapes are written `[rows, cols]`, row-major. A batch holds `T` tokens that may belong to
//! several sequences, mixing prefill chunks and decode tokens; attention finds each token's
//! keys through its sequence's block table in the paged KV pool. Every op must be *batch
//! invariant*: a token's results depend only on that token's inputs and its own sequence's KV,
//! never on the rest of the batch or how the prompt was chunked.

use crate::quant::GgmlType;

/// Errors a backend reports (device, shape or type problems).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A weight's bytes do not match its declared type and shape.
    #[error("weight of type {ty:?} [{rows}, {cols}] needs {expected} bytes, got {got}")]
    WeightSize {
        /// Type.
        ty: GgmlType,
        /// Rows.
        rows: usize,
        /// Row length.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The device cannot allocate what was asked.
    #[error("out of device memory: {0}")]
    OutOfMemory(String),
    /// Anything else the device reports.
    #[error("backend error: {0}")]
    Device(String),
}

/// How a KV pool stores keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvDtype {
    /// IEEE half precision, each key and value rounded to nearest (llama.cpp's default cache
    /// type): half the memory, and half the memory traffic of attention, of f32.
    F16,
    /// Single precision: keys and values exactly as computed.
    #[default]
    F32,
}

impl KvDtype {
    /// Bytes per stored element.
    pub const fn bytes(self) -> usize {
        match self {
            KvDtype::F16 => 2,
            KvDtype::F32 => 4,
        }
    }

    /// `f16` or `f32`, as flags and logs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            KvDtype::F16 => "f16",
            KvDtype::F32 => "f32",
        }
    }
}

impl std::str::FromStr for KvDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(KvDtype::F16),
            "f32" => Ok(KvDtype::F32),
            _ => Err(format!("unknown KV cache type {s:?} (expected f16 or f32)")),
        }
    }
}

/// Geometry of the paged KV pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvPoolConfig {
    /// Transformer layers.
    pub n_layers: usize,
    /// Blocks in the pool (shared by all sequences).
    pub n_blocks: usize,
    /// Token slots per block.
    pub block_size: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head size.
    pub head_dim: usize,
    /// How keys and values are stored.
    pub dtype: KvDtype,
}

impl KvPoolConfig {
    /// Elements of one of the two pools (K or V): layers × slots × kv heads × head_dim, or an
    /// error when that count overflows.
    pub fn elements(&self) -> Result<usize, BackendError> {
        self.n_layers
            .checked_mul(self.n_blocks)
            .and_then(|x| x.checked_mul(self.block_size))
            .and_then(|x| x.checked_mul(self.n_kv_heads * self.head_dim))
            .ok_or_else(|| BackendError::OutOfMemory(format!("KV pool {self:?} overflows")))
    }

    /// Bytes the pool takes (K and V).
    pub fn bytes(&self) -> usize {
        2 * self.n_layers
            * self.n_blocks
            * self.block_size
            * self.n_kv_heads
            * self.head_dim
            * self.dtype.bytes()
    }
}

/// How the tokens of a batch map onto sequences and KV slots.
#[derive(Clone, Copy, Debug)]
pub struct AttentionLayout<'a> {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads; `n_heads` is a multiple of it (grouped-query attention).
    pub n_kv_heads: usize,
    /// Head size.
    pub head_dim: usize,
    /// Token slots per KV block.
    pub block_size: usize,
    /// `[T]`: index into `block_tables` of each token's sequence.
    pub token_seq: &'a [u32],
    /// `[T]`: absolute position of each token; it attends to keys `0..=pos` of its sequence.
    pub positions: &'a [u32],
    /// Per sequence: block ids covering positions `0..` in order.
    pub block_tables: &'a [&'a [u32]],
    /// `[T]`: the KV slot (`block * block_size + offset`) each token's own key/value goes to.
    pub slots: &'a [u32],
    /// Multiplier of `q·k` before the softmax (`1/√head_dim` for most models).
    pub scale: f32,
    /// Sliding window: when `Some(w)`, a token at `pos` attends only to keys `pos+1-w..=pos`
    /// (llama.cpp's standard SWA mask), and block-table entries of older blocks are not read.
    pub window: Option<usize>,
}

impl AttentionLayout<'_> {
    /// The first key position a token at `pos` attends to.
    pub fn first_key(&self, pos: u32) -> u32 {
        match self.window {
            Some(w) => (pos + 1).saturating_sub(w as u32),
            None => 0,
        }
    }
}

/// Which dimensions of a head RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: GGUF's `llama` layout (the converter permuted Q/K rows).
    Interleaved,
    /// Pairs `(i, i + rot_dim/2)`: GPT-NeoX's layout, used by Qwen 2/3 and Gemma 3 files.
    Neox,
}

/// Rotary position embedding of one layer.
#[derive(Clone, Copy, Debug)]
pub struct Rope<'a> {
    /// Rotated dims per head (even, at most the head size).
    pub rot_dim: usize,
    /// Frequency base: pair `i` turns by `pos · freq_scale · base^(-2i/rot_dim) / factor_i`.
    pub base: f32,
    /// Which dims pair up.
    pub style: RopeStyle,
    /// Linear position scaling (`1 / rope.scaling.factor`; 1 for none).
    pub freq_scale: f32,
    /// Per-pair frequency divisors (`rope_freqs.weight`, Llama 3.1+'s rope scaling), `rot_dim/2`
    /// of them, or `None` for all ones.
    pub freq_factors: Option<&'a [f32]>,
}

impl Rope<'_> {
    /// Angle per position of pair `i`, in f64 as every backend computes it.
    pub fn inv_freq(&self, i: usize) -> f64 {
        let theta = f64::from(self.base).powf(-2.0 * i as f64 / self.rot_dim as f64)
            * f64::from(self.freq_scale);
        match self.freq_factors {
            Some(f) => theta / f64::from(f[i]),
            None => theta,
        }
    }
}

/// The activation of a gated feed-forward block: `out = act(gate) * up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GluActivation {
    /// SiLU (SwiGLU): Llama, Qwen.
    Silu,
    /// GELU, tanh approximation (GeGLU): Gemma.
    GeluTanh,
}

/// A column range of an activation matrix: lets fused projections (QKV, gate+up) be read in
/// place instead of copied apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cols {
    /// First column.
    pub offset: usize,
    /// Number of columns.
    pub width: usize,
}

impl Cols {
    /// `width` columns starting at `offset`.
    pub fn new(offset: usize, width: usize) -> Self {
        Self { offset, width }
    }
}

/// A device that can run the forward pass of the Llama family.
pub trait Backend: Send + Sync {
    /// A dense f32 activation matrix on the device.
    type Tensor: Send;
    /// A weight matrix `[rows, cols]` in its storage type, on the device.
    type Weight: Send + Sync;
    /// The paged KV pool of all layers.
    type KvPool: Send;

    /// Short device name for logs and traces (`cpu`, `cuda`).
    fn device_name(&self) -> &'static str;

    /// Runs one whole forward pass `f`. The default runs it in place; the CPU backend runs it on
    /// its worker pool, where a cold hand-off per op (a thread wake-up and a blocked caller)
    /// would cost more than many ops take. Scheduling only: results do not depend on it.
    fn run_forward<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    /// Uploads a weight stored as `ty`, `rows` rows of `cols` elements.
    fn upload_weight(
        &self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self::Weight, BackendError>;
    /// How this device's KV pools store keys and values ([`KvPoolConfig::dtype`]).
    fn kv_dtype(&self) -> KvDtype;
    /// Allocates the KV pool (zeroed); an error if the device cannot store `cfg.dtype`.
    fn alloc_kv_pool(&self, cfg: KvPoolConfig) -> Result<Self::KvPool, BackendError>;
    /// The geometry a pool was allocated with.
    fn kv_pool_config(&self, pool: &Self::KvPool) -> KvPoolConfig;
    /// A zeroed `[rows, cols]` tensor.
    fn zeros(&self, rows: usize, cols: usize) -> Self::Tensor;
    /// A `[rows, cols]` tensor holding `data` (row-major), copied to the device.
    fn upload_tensor(&self, rows: usize, cols: usize, data: &[f32]) -> Self::Tensor;
    /// Copies a tensor to the host, row-major.
    fn to_host(&self, t: &Self::Tensor) -> Vec<f32>;
    /// Moves a tensor to the host, row-major: [`Backend::to_host`], or no copy at all where
    /// the tensor already lives there.
    fn move_to_host(&self, t: Self::Tensor) -> Vec<f32> {
        self.to_host(&t)
    }

    /// `out[t, :] = table[ids[t], :]`, dequantized. table `[vocab, dim]`, out `[T, dim]`.
    fn embedding(&self, table: &Self::Weight, ids: &[u32], out: &mut Self::Tensor);
    /// RMSNorm of each row: `out = x / sqrt(mean(x²) + eps) * weight`. x, out `[T, d]`; weight `[1, d]` (F32).
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Weight, eps: f32, out: &mut Self::Tensor);
    /// RMSNorm in place of each `head_dim`-wide head in `cols` of every row, all heads sharing
    /// `weight` `[1, head_dim]` (F32): Qwen 3's and Gemma 3's Q/K norms.
    fn rms_norm_heads(
        &self,
        x: &mut Self::Tensor,
        cols: Cols,
        head_dim: usize,
        weight: &Self::Weight,
        eps: f32,
    );
    /// `x[t, cols] += bias` for every row; bias `[1, cols.width]` (F32).
    fn add_bias(&self, x: &mut Self::Tensor, cols: Cols, bias: &Self::Weight);
    /// `x *= s`, element-wise.
    fn scale(&self, x: &mut Self::Tensor, s: f32);
    /// `out[t, :] = concat_w(x[t, :] · wᵀ)`: x `[T, k]`, each w `[n_i, k]`, out `[T, Σ n_i]`.
    fn matmul(&self, x: &Self::Tensor, weights: &[&Self::Weight], out: &mut Self::Tensor);
    /// Rotary embedding in place on `cols` of x (`n_heads * head_dim` wide): the first
    /// `rope.rot_dim` dims of each head, paired as `rope.style` says, turned by
    /// `pos · rope.inv_freq(i)`.
    fn rope(
        &self,
        x: &mut Self::Tensor,
        cols: Cols,
        head_dim: usize,
        positions: &[u32],
        rope: &Rope<'_>,
    );
    /// Stores each token's key (`k_cols` of x) and value (`v_cols`) into `slots` of `layer`.
    fn write_kv(
        &self,
        pool: &mut Self::KvPool,
        layer: usize,
        x: &Self::Tensor,
        k_cols: Cols,
        v_cols: Cols,
        slots: &[u32],
    );
    /// Causal paged attention: for each token and head, softmax(q·K·scale)·V over its
    /// sequence's keys `first_key(pos)..=pos`. q = `q_cols` of x `[T, n_heads*head_dim]`; out `[T, n_heads*head_dim]`.
    fn attention(
        &self,
        x: &Self::Tensor,
        q_cols: Cols,
        pool: &Self::KvPool,
        layer: usize,
        layout: &AttentionLayout<'_>,
        out: &mut Self::Tensor,
    );
    /// `out = act(gate) * up` with gate = `x[:, 0..f]`, up = `x[:, f..2f]`. x `[T, 2f]`, out `[T, f]`.
    fn glu(&self, act: GluActivation, x: &Self::Tensor, out: &mut Self::Tensor);
    /// `x += y`, both `[T, d]`.
    fn add_assign(&self, x: &mut Self::Tensor, y: &Self::Tensor);
    /// `out[i, :] = x[rows[i], :]`. out `[rows.len(), d]`.
    fn gather_rows(&self, x: &Self::Tensor, rows: &[u32], out: &mut Self::Tensor);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_dtypes_parse_and_size() {
        for (name, dtype, bytes) in [("f16", KvDtype::F16, 2), ("f32", KvDtype::F32, 4)] {
            assert_eq!(name.parse::<KvDtype>(), Ok(dtype));
            assert_eq!(dtype.name(), name);
            assert_eq!(dtype.bytes(), bytes);
        }
        assert!("bf16".parse::<KvDtype>().unwrap_err().contains("bf16"));
        let cfg = KvPoolConfig {
            n_layers: 3,
            n_blocks: 5,
            block_size: 16,
            n_kv_heads: 2,
            head_dim: 64,
            dtype: KvDtype::F16,
        };
        assert_eq!(cfg.bytes(), 2 * 3 * 5 * 16 * 2 * 64 * 2);
        let f32 = KvPoolConfig {
            dtype: KvDtype::F32,
            ..cfg
        };
        assert_eq!(f32.bytes(), 2 * cfg.bytes());
    }
}
