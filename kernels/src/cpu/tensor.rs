//! CPU storage: activation matrices, weights and the paged KV pool.

use std::borrow::Cow;
use std::ops::Range;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::backend::{BackendError, Cols, KvDtype, KvPoolConfig};

use crate::quant::GgmlType;
use crate::quant::panel::{self, PANEL_ROWS};

/// A dense row-major f32 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor {
    /// Rows (tokens).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl CpuTensor {
    /// Zeroed.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// From row-major data.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "tensor data does not match [{rows}, {cols}]"
        );
        Self { rows, cols, data }
    }

    /// One row.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// `cols` of one row.
    pub fn row_cols(&self, r: usize, c: Cols) -> &[f32] {
        let start = r * self.cols + c.offset;
        &self.data[start..start + c.width]
    }
}

/// A weight matrix in its GGUF storage type.
///
/// Where this CPU has a panel kernel for the type ([`quant::panel::packs`]), the first
/// `panel_rows` rows (the whole groups of [`PANEL_ROWS`]) are packed into panels; the rest stay
/// GGUF rows. Packing only permutes bytes, so `data` is `rows * row_bytes` either way.
#[derive(Clone, Debug)]
pub struct CpuWeight {
    /// Storage type.
    pub ty: GgmlType,
    /// Rows (output features).
    pub rows: usize,
    /// Row length (input features).
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
    /// Rows held in panels: a multiple of [`PANEL_ROWS`], 0 when the type is not packed.
    pub panel_rows: usize,
    /// `rows * row_bytes` bytes: `panel_rows / PANEL_ROWS` panels, then GGUF rows.
    pub data: Vec<u8>,
}

/// Asks Linux to back the whole 2 MiB pages inside `buf` (still untouched: fresh zeroed
/// memory, before anything is written) with huge pages: a pass streams every weight once, and
/// with 4 KiB pages it takes a TLB miss every 4 KiB (Gemma 3's 174 MB output matrix alone is
/// 42k pages, far more than the TLB holds). Measured on Gemma 3 270M: single-stream decode
/// 84-86 -> 89-92 tok/s; SmolLM2 Q6_K +0-12%. Advice only: where it is refused nothing changes.
fn advise_huge_pages(buf: &mut [u8]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let (lo, hi) = (
            start.next_multiple_of(HUGE),
            (start + buf.len()) / HUGE * HUGE,
        );
        if hi > lo {
            // SAFETY: [lo, hi) lies inside `buf`, which this call borrows mutably; the advice
            // changes how its pages are backed, never their contents.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

impl CpuWeight {
    /// Checks the size and copies the bytes, packing whole groups of rows into panels where
    /// this CPU has a kernel for them.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Self, BackendError> {
        Self::with_layout(ty, rows, cols, bytes, true)
    }

    /// As [`CpuWeight::new`], packing into panels only if `panels` (else GGUF rows throughout).
    pub fn with_layout(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
        panels: bool,
    ) -> Result<Self, BackendError> {
        let row_bytes = ty.row_bytes(cols).ok_or_else(|| {
            BackendError::Device(format!(
                "row length {cols} is not a multiple of {}'s block",
                ty.name()
            ))
        })?;
        if bytes.len() != rows * row_bytes {
            return Err(BackendError::WeightSize {
                ty,
                rows,
                cols,
                expected: rows * row_bytes,
                got: bytes.len(),
            });
        }
        let panel_rows = if panels && panel::packs(ty) && row_bytes > 0 {
            rows / PANEL_ROWS * PANEL_ROWS
        } else {
            0
        };
        // The panel part is written once, by `pack`; only the GGUF rows after it are copied.
        let split = panel_rows * row_bytes;
        let mut data = vec![0u8; bytes.len()];
        advise_huge_pages(&mut data);
        data[split..].copy_from_slice(&bytes[split..]);
        if panel_rows > 0 {
            let pb = PANEL_ROWS * row_bytes;
            for (src, dst) in bytes[..split]
                .chunks_exact(pb)
                .zip(data.chunks_exact_mut(pb))
            {
                panel::pack(ty, src, row_bytes, dst);
            }
        }
        Ok(Self {
            ty,
            rows,
            cols,
            row_bytes,
            panel_rows,
            data,
        })
    }

    /// The GGUF bytes of row `r` (unpacked from its panel where it sits in one).
    pub fn row(&self, r: usize) -> Cow<'_, [u8]> {
        assert!(r < self.rows, "row {r} of {}", self.rows);
        if r < self.panel_rows {
            let pb = PANEL_ROWS * self.row_bytes;
            let p = r / PANEL_ROWS;
            let mut out = vec![0u8; self.row_bytes];
            panel::unpack_row(
                self.ty,
                &self.data[p * pb..(p + 1) * pb],
                self.row_bytes,
                r % PANEL_ROWS,
                &mut out,
            );
            Cow::Owned(out)
        } else {
            Cow::Borrowed(&self.data[r * self.row_bytes..(r + 1) * self.row_bytes])
        }
    }

    /// Row `r` dequantized.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        crate::quant::dequantize_row(self.ty, &self.row(r), out);
    }
}

/// The paged KV pool of all layers, keys and values each `[layer][block][kv head][slot in
/// block][head_dim]` (a block's run of one head is contiguous), stored as `cfg.dtype`.
pub struct CpuKvPool {
    /// Geometry.
    pub cfg: KvPoolConfig,
    k: KvStore,
    v: KvStore,
}

/// One side (K or V) of a pool, in its storage type.
pub(crate) enum KvStore {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// An element type a pool stores: attention reads runs of them.
pub(crate) trait KvElem: Copy + Send + Sync + 'static {
    /// Whether this is IEEE half (loads convert with F16C's `vcvtph2ps`).
    const HALF: bool;
    /// The store's elements, if they are of this type.
    fn of(store: &KvStore) -> Option<&[Self]>;
    /// The value as f32 (exact).
    fn to_f32(self) -> f32;
    /// `row` itself where it is f32.
    fn as_f32(row: &[Self]) -> Option<&[f32]>;
}

impl KvElem for f32 {
    const HALF: bool = false;
    fn of(store: &KvStore) -> Option<&[f32]> {
        match store {
            KvStore::F32(v) => Some(v),
            KvStore::F16(_) => None,
        }
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn as_f32(row: &[f32]) -> Option<&[f32]> {
        Some(row)
    }
}

impl KvElem for f16 {
    const HALF: bool = true;
    fn of(store: &KvStore) -> Option<&[f16]> {
        match store {
            KvStore::F16(v) => Some(v),
            KvStore::F32(_) => None,
        }
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn as_f32(_: &[f16]) -> Option<&[f32]> {
        None
    }
}

impl KvStore {
    fn zeroed(dtype: KvDtype, n: usize, cfg: &KvPoolConfig) -> Result<Self, BackendError> {
        let oom = |e| BackendError::OutOfMemory(format!("KV pool of {} bytes: {e}", cfg.bytes()));
        Ok(match dtype {
            KvDtype::F16 => {
                let mut v = Vec::new();
                v.try_reserve_exact(n).map_err(oom)?;
                v.resize(n, f16::ZERO);
                KvStore::F16(v)
            }
            KvDtype::F32 => {
                let mut v = Vec::new();
                v.try_reserve_exact(n).map_err(oom)?;
                v.resize(n, 0.0);
                KvStore::F32(v)
            }
        })
    }

    /// Stores `src` at `at..at + src.len()` (rounded to nearest for f16).
    fn put(&mut self, at: usize, src: &[f32]) {
        match self {
            KvStore::F16(v) => v[at..at + src.len()].convert_from_f32_slice(src),
            KvStore::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }
}

impl CpuKvPool {
    /// Allocates a zeroed pool.
    pub fn new(cfg: KvPoolConfig) -> Result<Self, BackendError> {
        let n = cfg.elements()?;
        Ok(Self {
            cfg,
            k: KvStore::zeroed(cfg.dtype, n, &cfg)?,
            v: KvStore::zeroed(cfg.dtype, n, &cfg)?,
        })
    }

    fn row_width(&self) -> usize {
        self.cfg.n_kv_heads * self.cfg.head_dim
    }

    /// Offset of `kv_head`'s row at `slot` of `layer`.
    fn offset(&self, layer: usize, slot: usize, kv_head: usize) -> usize {
        let (bs, hd) = (self.cfg.block_size, self.cfg.head_dim);
        let (block, in_block) = (slot / bs, slot % bs);
        (((layer * self.cfg.n_blocks + block) * self.cfg.n_kv_heads + kv_head) * bs + in_block) * hd
    }

    /// The whole K and V stores as `E`.
    ///
    /// # Panics
    /// Unless `E` is the pool's storage type.
    pub(crate) fn stores<E: KvElem>(&self) -> (&[E], &[E]) {
        match (E::of(&self.k), E::of(&self.v)) {
            (Some(k), Some(v)) => (k, v),
            _ => panic!("a {} pool read as another type", self.cfg.dtype.name()),
        }
    }

    /// Where keys (or values) of `kv_head` at slots `slot..slot + n` of `layer` lie in a store,
    /// one block's run: `[n, head_dim]`. The slots must lie in one block.
    pub(crate) fn run(&self, layer: usize, slot: usize, n: usize, kv_head: usize) -> Range<usize> {
        let o = self.offset(layer, slot, kv_head);
        debug_assert!(slot % self.cfg.block_size + n <= self.cfg.block_size);
        o..o + n * self.cfg.head_dim
    }

    /// Writes each token's key and value columns of `x` into its slot.
    pub fn write(
        &mut self,
        layer: usize,
        x: &CpuTensor,
        k_cols: Cols,
        v_cols: Cols,
        slots: &[u32],
    ) {
        let w = self.row_width();
        assert!(
            k_cols.width == w && v_cols.width == w,
            "kv columns must be n_kv_heads*head_dim wide"
        );
        assert_eq!(slots.len(), x.rows, "one slot per token");
        let hd = self.cfg.head_dim;
        for (t, &slot) in slots.iter().enumerate() {
            let (k, v) = (x.row_cols(t, k_cols), x.row_cols(t, v_cols));
            for h in 0..self.cfg.n_kv_heads {
                let o = self.offset(layer, slot as usize, h);
                self.k.put(o, &k[h * hd..(h + 1) * hd]);
                self.v.put(o, &v[h * hd..(h + 1) * hd]);
            }
        }
    }
}
