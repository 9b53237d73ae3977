//! [`CudaBackend`]: weights uploaded once, the paged KV pool in device memory, every op a
//! checked launch on one stream. Ops panic on a device error, as the CPU backend does on a
//! shape error: the [`Backend`] ops are infallible by design, and a failed launch leaves the
//! device in an unknown state that no retry fixes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::nvrtc;
use super::params::*;
use super::plan::{self, Launch, Op};
use super::sources;
use crate::backend::{
    AttentionLayout, Backend, BackendError, Cols, GluActivation, KvDtype, KvPoolConfig, Rope,
    RopeStyle,
};
use crate::quant::GgmlType;

/// Why the CUDA backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum CudaInitError {
    /// No `libcuda.so.1`.
    #[error("no NVIDIA driver: libcuda.so.1 could not be loaded (is this a GPU machine?)")]
    NoDriver,
    /// The driver sees no device.
    #[error("the NVIDIA driver reports no CUDA device")]
    NoDevice,
    /// The driver failed.
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// A kernel did not compile.
    #[error(transparent)]
    Compile(#[from] nvrtc::CompileError),
}

/// A dense row-major f32 matrix in device memory.
pub struct CudaTensor {
    rows: usize,
    cols: usize,
    data: CudaSlice<f32>,
}

/// A weight matrix in its GGUF storage type, in device memory.
pub struct CudaWeight {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: CudaSlice<u8>,
}

/// The paged KV pool: `[layer][slot][n_kv_heads * head_dim]` f32, for K and for V.
pub struct CudaKvPool {
    cfg: KvPoolConfig,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
}

/// The CUDA device backend; clones share the context, stream and loaded kernels.
#[derive(Clone)]
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: HashMap<String, CudaFunction>,
    name: String,
    launches: Arc<AtomicU64>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.name)
            .finish()
    }
}

fn driver(e: impl std::fmt::Display) -> CudaInitError {
    CudaInitError::Driver(e.to_string())
}

impl CudaBackend {
    /// Opens device `ordinal`, compiles every kernel for its architecture (CUBIN, so the
    /// driver never has to JIT PTX of a newer ISA) and loads them. Fails, never panics, when
    /// there is no driver, no device or no NVRTC.
    pub fn new(ordinal: usize) -> Result<Self, CudaInitError> {
        // SAFETY: only tries to dlopen libcuda by its sonames. cudarc panics on first use
        // without it, so this check must come first.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaInitError::NoDriver);
        }
        if CudaContext::device_count().map_err(driver)? <= ordinal as i32 {
            return Err(CudaInitError::NoDevice);
        }
        if !nvrtc::nvrtc_present() {
            return Err(nvrtc::CompileError::NoNvrtc.into());
        }
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        let (major, minor) = ctx.compute_capability().map_err(driver)?;
        let arch = format!("sm_{major}{minor}");
        let mut functions = HashMap::new();
        for (file, _) in sources::FILES {
            let compiled = nvrtc::compile(file, &arch)?;
            let cubin = compiled.cubin.unwrap_or_default();
            let module = ctx.load_module(Ptx::from_binary(cubin)).map_err(driver)?;
            for entry in sources::entry_points(&sources::program(file).unwrap_or_default()) {
                let f = module.load_function(&entry).map_err(driver)?;
                functions.insert(entry, f);
            }
        }
        let name = format!("{} ({arch})", ctx.name().map_err(driver)?);
        let stream = ctx.default_stream();
        Ok(Self {
            ctx,
            stream,
            functions,
            name,
            launches: Arc::default(),
        })
    }

    /// The device's name and architecture.
    pub fn device(&self) -> &str {
        &self.name
    }

    /// Free and total device memory, bytes.
    pub fn memory(&self) -> (usize, usize) {
        self.ctx.mem_get_info().unwrap_or((0, 0))
    }

    /// Kernel launches so far (all clones together), for launch-count benchmarks.
    pub fn launch_count(&self) -> u64 {
        self.launches.load(Ordering::Relaxed)
    }

    /// Peak memory bandwidth from the device's memory clock and bus width, bytes/s.
    pub fn peak_bandwidth(&self) -> Option<f64> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let clock_khz = self
            .ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
            .ok()?;
        let bus_bits = self
            .ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)
            .ok()?;
        // Double data rate: two transfers per clock.
        Some(2.0 * f64::from(clock_khz) * 1e3 * f64::from(bus_bits) / 8.0)
    }

    /// Waits for every queued kernel (benchmarks time whole steps).
    pub fn synchronize(&self) {
        if let Err(e) = self.stream.synchronize() {
            panic!("CUDA stream synchronize: {e}");
        }
    }

    fn launched<T, E: std::fmt::Display>(&self, kernel: &str, r: Result<T, E>) {
        self.launches.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            panic!("launch of {kernel} failed: {e}");
        }
    }

    fn function(&self, name: &str) -> &CudaFunction {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} was not loaded"))
    }

    fn upload<T: DeviceRepr>(&self, data: &[T]) -> CudaSlice<T> {
        self.stream
            .clone_htod(data)
            .unwrap_or_else(|e| panic!("host to device copy of {} items: {e}", data.len()))
    }
}

fn config(l: Launch) -> LaunchConfig {
    LaunchConfig {
        grid_dim: l.grid,
        block_dim: l.block,
        shared_mem_bytes: l.shared_bytes,
    }
}

fn ok<T>(r: Result<T, plan::PlanError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn u32_of(v: usize) -> u32 {
    u32::try_from(v).unwrap_or_else(|_| panic!("{v} does not fit a 32-bit kernel parameter"))
}

impl Backend for CudaBackend {
    type Tensor = CudaTensor;
    type Weight = CudaWeight;
    type KvPool = CudaKvPool;

    fn device_name(&self) -> &'static str {
        "cuda"
    }

    fn upload_weight(
        &self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<CudaWeight, BackendError> {
        let row_bytes = ty.row_bytes(cols).ok_or_else(|| {
            BackendError::Device(format!(
                "rows of {cols} elements are not whole {ty:?} blocks"
            ))
        })?;
        let expected = rows * row_bytes;
        if bytes.len() != expected {
            return Err(BackendError::WeightSize {
                ty,
                rows,
                cols,
                expected,
                got: bytes.len(),
            });
        }
        let data = self
            .stream
            .clone_htod(bytes)
            .map_err(|e| BackendError::OutOfMemory(format!("{expected} bytes of weights: {e}")))?;
        Ok(CudaWeight {
            ty,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    fn kv_dtype(&self) -> KvDtype {
        KvDtype::F32
    }

    fn alloc_kv_pool(&self, cfg: KvPoolConfig) -> Result<CudaKvPool, BackendError> {
        if cfg.dtype != KvDtype::F32 {
            return Err(BackendError::Device(format!(
                "the CUDA kernels store the KV cache as f32 only, not {}",
                cfg.dtype.name()
            )));
        }
        let n = cfg.elements()?;
        let alloc = || {
            self.stream.alloc_zeros::<f32>(n).map_err(|e| {
                BackendError::OutOfMemory(format!("KV pool of {} bytes: {e}", cfg.bytes()))
            })
        };
        Ok(CudaKvPool {
            cfg,
            k: alloc()?,
            v: alloc()?,
        })
    }

    fn kv_pool_config(&self, pool: &CudaKvPool) -> KvPoolConfig {
        pool.cfg
    }

    fn zeros(&self, rows: usize, cols: usize) -> CudaTensor {
        let data = self
            .stream
            .alloc_zeros::<f32>(rows * cols)
            .unwrap_or_else(|e| panic!("allocating a [{rows}, {cols}] tensor: {e}"));
        CudaTensor { rows, cols, data }
    }

    fn upload_tensor(&self, rows: usize, cols: usize, data: &[f32]) -> CudaTensor {
        assert_eq!(
            data.len(),
            rows * cols,
            "tensor data does not match [{rows}, {cols}]"
        );
        CudaTensor {
            rows,
            cols,
            data: self.upload(data),
        }
    }

    fn to_host(&self, t: &CudaTensor) -> Vec<f32> {
        self.stream
            .clone_dtoh(&t.data)
            .unwrap_or_else(|e| panic!("device to host copy: {e}"))
    }

    fn embedding(&self, table: &CudaWeight, ids: &[u32], out: &mut CudaTensor) {
        ok(plan::check_weight_cols(Op::Embedding, table.cols));
        assert_eq!(
            (out.rows, out.cols),
            (ids.len(), table.cols),
            "embedding out shape"
        );
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= table.rows) {
            panic!("token id {bad} outside the vocabulary of {}", table.rows);
        }
        if ids.is_empty() {
            return;
        }
        let kernel = plan::kernel_name(Op::Embedding, table.ty);
        let launch = ok(plan::embedding_launch(ids.len(), table.cols));
        let ids = self.upload(ids);
        let p = EmbeddingParams {
            tokens: u32_of(out.rows),
            dim: u32_of(table.cols),
            vocab: u32_of(table.rows),
            row_bytes: u32_of(table.row_bytes),
        };
        let f = self.function(&kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&table.data).arg(&ids).arg(&mut out.data).arg(&p);
        // SAFETY: embedding_* reads `tokens` ids, `vocab * row_bytes` table bytes (ids were
        // checked below vocab) and writes `tokens * dim` floats of out, whose shape was
        // checked; the argument order and types match the kernel's signature.
        self.launched(&kernel, unsafe { b.launch(config(launch)) });
    }

    fn rms_norm(&self, x: &CudaTensor, weight: &CudaWeight, eps: f32, out: &mut CudaTensor) {
        assert_eq!(weight.ty, GgmlType::F32, "RMSNorm weights are F32");
        assert_eq!(weight.rows * weight.cols, x.cols, "RMSNorm weight width");
        assert_eq!((out.rows, out.cols), (x.rows, x.cols), "RMSNorm out shape");
        if x.rows == 0 {
            return;
        }
        let kernel = "rms_norm_f32";
        let launch = ok(plan::per_row_launch(kernel, x.rows));
        let p = RmsNormParams {
            rows: u32_of(x.rows),
            cols: u32_of(x.cols),
            eps,
            pad: 0,
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.data).arg(&weight.data).arg(&mut out.data).arg(&p);
        // SAFETY: rms_norm_f32 reads rows*cols floats of x and cols floats of the weight
        // (the F32 weight's bytes, 4-byte aligned as every allocation is) and writes
        // rows*cols floats of out; all three shapes were checked above.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn rms_norm_heads(
        &self,
        x: &mut CudaTensor,
        cols: Cols,
        head_dim: usize,
        weight: &CudaWeight,
        eps: f32,
    ) {
        assert_eq!(weight.ty, GgmlType::F32, "RMSNorm weights are F32");
        assert_eq!(
            weight.rows * weight.cols,
            head_dim,
            "head norm weight width"
        );
        assert!(
            head_dim > 0
                && cols.width.is_multiple_of(head_dim)
                && cols.offset + cols.width <= x.cols,
            "head norm columns {cols:?} of {head_dim} in rows of {}",
            x.cols
        );
        let n_heads = cols.width / head_dim;
        if x.rows == 0 || n_heads == 0 {
            return;
        }
        let kernel = "rms_norm_heads_f32";
        let launch = ok(plan::heads_launch(kernel, x.rows, n_heads));
        let p = HeadNormParams {
            rows: u32_of(x.rows),
            stride: u32_of(x.cols),
            col_offset: u32_of(cols.offset),
            n_heads: u32_of(n_heads),
            head_dim: u32_of(head_dim),
            eps,
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&mut x.data).arg(&weight.data).arg(&p);
        // SAFETY: each block touches one head inside the checked column range of one row
        // and reads head_dim floats of the F32 weight (width checked).
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn add_bias(&self, x: &mut CudaTensor, cols: Cols, bias: &CudaWeight) {
        assert_eq!(bias.ty, GgmlType::F32, "biases are F32");
        assert_eq!(bias.rows * bias.cols, cols.width, "bias width");
        assert!(cols.offset + cols.width <= x.cols, "bias columns {cols:?}");
        if x.rows == 0 || cols.width == 0 {
            return;
        }
        let kernel = "add_bias_f32";
        let launch = ok(plan::columns_launch(kernel, x.rows, cols.width));
        let p = BiasParams {
            rows: u32_of(x.rows),
            stride: u32_of(x.cols),
            col_offset: u32_of(cols.offset),
            width: u32_of(cols.width),
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&mut x.data).arg(&bias.data).arg(&p);
        // SAFETY: writes the checked column range of each row, reads width bias floats.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn scale(&self, x: &mut CudaTensor, s: f32) {
        let len = x.rows * x.cols;
        if len == 0 {
            return;
        }
        let kernel = "scale_f32";
        let launch = ok(plan::elementwise_launch(kernel, len));
        let p = ScaleParams {
            len: len as u64,
            s,
            pad: 0,
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&mut x.data).arg(&p);
        // SAFETY: touches len elements of a tensor of len elements.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn matmul(&self, x: &CudaTensor, weights: &[&CudaWeight], out: &mut CudaTensor) {
        let shapes: Vec<(usize, usize)> = weights.iter().map(|w| (w.rows, w.cols)).collect();
        ok(plan::check_matmul(
            (x.rows, x.cols),
            &shapes,
            (out.rows, out.cols),
        ));
        if x.rows == 0 {
            return;
        }
        let mut offset = 0;
        for w in weights {
            let kernel = plan::kernel_name(Op::Matmul, w.ty);
            let launch = ok(plan::matmul_launch(x.rows, w.rows));
            let p = MatmulParams {
                tokens: u32_of(x.rows),
                k: u32_of(x.cols),
                n: u32_of(w.rows),
                row_bytes: u32_of(w.row_bytes),
                x_stride: u32_of(x.cols),
                out_stride: u32_of(out.cols),
                out_offset: u32_of(offset),
                pad: 0,
            };
            let f = self.function(&kernel);
            let mut b = self.stream.launch_builder(f);
            b.arg(&w.data).arg(&x.data).arg(&mut out.data).arg(&p);
            // SAFETY: matmul_* reads n rows of row_bytes weight bytes and tokens*k floats
            // of x, and writes columns offset..offset+n of tokens rows of out; check_matmul
            // proved k matches and offset+n <= out.cols.
            self.launched(&kernel, unsafe { b.launch(config(launch)) });
            offset += w.rows;
        }
    }

    fn rope(
        &self,
        x: &mut CudaTensor,
        cols: Cols,
        head_dim: usize,
        positions: &[u32],
        rope: &Rope<'_>,
    ) {
        let rot_dim = rope.rot_dim;
        if let Some(f) = rope.freq_factors {
            assert_eq!(
                f.len(),
                rot_dim / 2,
                "one frequency factor per rotated pair"
            );
        }
        ok(plan::check_rope(
            (x.rows, x.cols),
            cols,
            head_dim,
            rot_dim,
            positions.len(),
        ));
        if x.rows == 0 || rot_dim == 0 {
            return;
        }
        let kernel = "rope_f32";
        let n_heads = cols.width / head_dim;
        let launch = ok(plan::rope_launch(x.rows, n_heads, rot_dim));
        let positions = self.upload(positions);
        // The kernel reads factors only when has_factors; one dummy element otherwise.
        let factors = self.upload(rope.freq_factors.unwrap_or(&[1.0]));
        let p = RopeParams {
            tokens: u32_of(x.rows),
            stride: u32_of(x.cols),
            col_offset: u32_of(cols.offset),
            n_heads: u32_of(n_heads),
            head_dim: u32_of(head_dim),
            rot_dim: u32_of(rot_dim),
            base: rope.base,
            neox: u32::from(rope.style == RopeStyle::Neox),
            freq_scale: rope.freq_scale,
            has_factors: u32::from(rope.freq_factors.is_some()),
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&mut x.data).arg(&positions).arg(&factors).arg(&p);
        // SAFETY: rope_f32 touches only columns col_offset..col_offset+width of each of
        // the rows rows of x (checked inside a row), reads one position per row, and reads
        // factors[0..rot_dim/2] only when they were given with that length (checked above).
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn write_kv(
        &self,
        pool: &mut CudaKvPool,
        layer: usize,
        x: &CudaTensor,
        k_cols: Cols,
        v_cols: Cols,
        slots: &[u32],
    ) {
        let cfg = pool.cfg;
        let width = cfg.n_kv_heads * cfg.head_dim;
        let n_slots = cfg.n_blocks * cfg.block_size;
        assert!(layer < cfg.n_layers, "layer {layer} of {}", cfg.n_layers);
        assert_eq!((k_cols.width, v_cols.width), (width, width), "KV widths");
        assert!(k_cols.offset + width <= x.cols && v_cols.offset + width <= x.cols);
        assert_eq!(slots.len(), x.rows, "one slot per token");
        if let Some(&bad) = slots.iter().find(|&&s| s as usize >= n_slots) {
            panic!("KV slot {bad} outside the pool of {n_slots}");
        }
        if x.rows == 0 {
            return;
        }
        let kernel = "write_kv_f32";
        let launch = ok(plan::per_row_launch(kernel, x.rows));
        let slots = self.upload(slots);
        let p = WriteKvParams {
            layer_offset: (layer * n_slots * width) as u64,
            tokens: u32_of(x.rows),
            x_stride: u32_of(x.cols),
            k_offset: u32_of(k_cols.offset),
            v_offset: u32_of(v_cols.offset),
            kv_width: u32_of(width),
            pad: 0,
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.data)
            .arg(&slots)
            .arg(&mut pool.k)
            .arg(&mut pool.v)
            .arg(&p);
        // SAFETY: write_kv_f32 writes kv_width floats at slot*kv_width inside the layer's
        // part of each pool (slots and layer checked above) and reads the K/V columns of x.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn attention(
        &self,
        x: &CudaTensor,
        q_cols: Cols,
        pool: &CudaKvPool,
        layer: usize,
        layout: &AttentionLayout<'_>,
        out: &mut CudaTensor,
    ) {
        ok(plan::check_attention(
            (x.rows, x.cols),
            q_cols,
            layout,
            (out.rows, out.cols),
        ));
        let cfg = pool.cfg;
        assert!(layer < cfg.n_layers, "layer {layer} of {}", cfg.n_layers);
        assert_eq!(
            (layout.n_kv_heads, layout.head_dim, layout.block_size),
            (cfg.n_kv_heads, cfg.head_dim, cfg.block_size),
            "layout and pool geometry"
        );
        let n_slots = cfg.n_blocks * cfg.block_size;
        for table in layout.block_tables {
            if let Some(&bad) = table.iter().find(|&&b| b as usize >= cfg.n_blocks) {
                panic!("block {bad} outside the pool of {}", cfg.n_blocks);
            }
        }
        if x.rows == 0 {
            return;
        }
        let kernel = "attention_f32";
        let launch = ok(plan::attention_launch(
            x.rows,
            layout.n_heads,
            layout.head_dim,
        ));
        let (flat, offsets) = plan::flatten_tables(layout.block_tables);
        let flat = if flat.is_empty() { vec![0] } else { flat };
        let token_seq = self.upload(layout.token_seq);
        let positions = self.upload(layout.positions);
        let offsets = self.upload(&offsets);
        let tables = self.upload(&flat);
        let width = cfg.n_kv_heads * cfg.head_dim;
        let p = AttentionParams {
            layer_offset: (layer * n_slots * width) as u64,
            tokens: u32_of(x.rows),
            n_heads: u32_of(layout.n_heads),
            n_kv_heads: u32_of(layout.n_kv_heads),
            head_dim: u32_of(layout.head_dim),
            block_size: u32_of(layout.block_size),
            x_stride: u32_of(x.cols),
            q_offset: u32_of(q_cols.offset),
            out_stride: u32_of(out.cols),
            scale: layout.scale,
            window: layout.window.map_or(0, u32_of),
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.data)
            .arg(&pool.k)
            .arg(&pool.v)
            .arg(&token_seq)
            .arg(&positions)
            .arg(&offsets)
            .arg(&tables)
            .arg(&mut out.data)
            .arg(&p);
        // SAFETY: check_attention proved every token's keys 0..=pos lie in blocks its table
        // lists, and the blocks were checked inside the pool, so every K/V read is inside
        // the layer's part of the pools; q and out columns were checked against the shapes;
        // shared memory is (head_dim + 128) floats, as the launch plan sized it.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn glu(&self, act: GluActivation, x: &CudaTensor, out: &mut CudaTensor) {
        assert_eq!((x.rows, x.cols), (out.rows, 2 * out.cols), "GLU shapes");
        if x.rows == 0 || out.cols == 0 {
            return;
        }
        let kernel = "glu_f32";
        let launch = ok(plan::columns_launch(kernel, x.rows, out.cols));
        let p = GluParams {
            tokens: u32_of(x.rows),
            f: u32_of(out.cols),
            gelu: u32::from(act == GluActivation::GeluTanh),
            pad: 0,
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.data).arg(&mut out.data).arg(&p);
        // SAFETY: reads tokens*2f floats of x and writes tokens*f of out (shapes checked).
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn add_assign(&self, x: &mut CudaTensor, y: &CudaTensor) {
        assert_eq!((x.rows, x.cols), (y.rows, y.cols), "add_assign shapes");
        let len = x.rows * x.cols;
        if len == 0 {
            return;
        }
        let kernel = "add_assign_f32";
        let launch = ok(plan::elementwise_launch(kernel, len));
        let p = AddParams { len: len as u64 };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&mut x.data).arg(&y.data).arg(&p);
        // SAFETY: touches len elements of two tensors of len elements each.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }

    fn gather_rows(&self, x: &CudaTensor, rows: &[u32], out: &mut CudaTensor) {
        assert_eq!(
            (out.rows, out.cols),
            (rows.len(), x.cols),
            "gather_rows out shape"
        );
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= x.rows) {
            panic!("row {bad} outside a tensor of {} rows", x.rows);
        }
        if rows.is_empty() {
            return;
        }
        let kernel = "gather_rows_f32";
        let launch = ok(plan::per_row_launch(kernel, rows.len()));
        let rows_dev = self.upload(rows);
        let p = GatherParams {
            rows: u32_of(rows.len()),
            cols: u32_of(x.cols),
            src_rows: u32_of(x.rows),
            pad: 0,
        };
        let f = self.function(kernel);
        let mut b = self.stream.launch_builder(f);
        b.arg(&x.data).arg(&rows_dev).arg(&mut out.data).arg(&p);
        // SAFETY: every source row was checked inside x; out has rows.len() rows of cols.
        self.launched(kernel, unsafe { b.launch(config(launch)) });
    }
}
