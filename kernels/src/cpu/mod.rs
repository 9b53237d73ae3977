//! The CPU backend: the reference semantics of every op, and fast enough to serve.
//!
//! Parallelism comes from rayon over output rows (matmul) or (token, head) pairs (attention);
//! each output element is computed start to finish by one thread in a fixed order, which is
//! what makes results independent of batch composition.

mod attention;
mod elementwise;
mod matmul;
mod tensor;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{
    AttentionLayout, Backend, BackendError, Cols, GluActivation, KvDtype, KvPoolConfig, Rope,
};
use crate::quant::GgmlType;

pub use tensor::{CpuKvPool, CpuTensor, CpuWeight};

/// The CPU device.
#[derive(Clone, Copy, Debug)]
pub struct CpuBackend {
    /// Pack weights into row panels where this CPU has a panel kernel.
    panels: bool,
    /// How KV pools store keys and values.
    kv_dtype: KvDtype,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// The CPU backend, using rayon's global pool.
    pub fn new() -> Self {
        Self {
            panels: true,
            kv_dtype: KvDtype::default(),
        }
    }

    /// This backend with KV pools of `dtype` (f32 unless asked).
    pub fn with_kv_dtype(self, dtype: KvDtype) -> Self {
        Self {
            kv_dtype: dtype,
            ..self
        }
    }

    /// The CPU backend with every weight kept in its GGUF rows (no panels): the layout of CPUs
    /// without a panel kernel, for side-by-side benchmarks.
    pub fn gguf_rows() -> Self {
        Self {
            panels: false,
            ..Self::new()
        }
    }
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Weight = CpuWeight;
    type KvPool = CpuKvPool;

    fn device_name(&self) -> &'static str {
        "cpu"
    }

    fn run_forward<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        // On the pool, a pass's parallel ops fork from a worker, which works beside the other
        // instead of a blocked caller waking a pool per op. Measured on the 2-core VM: single-
        // stream decode +14% tok/s (context switches 53k -> 10k); 16-way batched decode +30%
        // (SmolLM2 Q4_K_M 350 -> 460 tok/s); 512-token prefill unchanged within noise.
        // A second worker stays awake for the whole pass (a pass forks a few hundred times, and
        // waking a sleeping worker through a futex cost each fork microseconds): SmolLM2 Q6_K
        // batched decode 815 -> 916-957 tok/s, prefill +5%.
        let done = AtomicBool::new(false);
        rayon::scope(|s| {
            let (done, home) = (&done, rayon::current_thread_index());
            s.spawn(move |s| keep_awake(s, done, home));
            let r = f();
            done.store(true, Ordering::Release);
            r
        })
    }

    fn upload_weight(
        &self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<CpuWeight, BackendError> {
        CpuWeight::with_layout(ty, rows, cols, bytes, self.panels)
    }

    fn kv_dtype(&self) -> KvDtype {
        self.kv_dtype
    }

    fn alloc_kv_pool(&self, cfg: KvPoolConfig) -> Result<CpuKvPool, BackendError> {
        CpuKvPool::new(cfg)
    }

    fn kv_pool_config(&self, pool: &CpuKvPool) -> KvPoolConfig {
        pool.cfg
    }

    fn zeros(&self, rows: usize, cols: usize) -> CpuTensor {
        CpuTensor::zeros(rows, cols)
    }

    fn upload_tensor(&self, rows: usize, cols: usize, data: &[f32]) -> CpuTensor {
        CpuTensor::from_vec(rows, cols, data.to_vec())
    }

    fn to_host(&self, t: &CpuTensor) -> Vec<f32> {
        t.data.clone()
    }

    fn move_to_host(&self, t: CpuTensor) -> Vec<f32> {
        t.data
    }

    fn embedding(&self, table: &CpuWeight, ids: &[u32], out: &mut CpuTensor) {
        elementwise::embedding(table, ids, out);
    }

    fn rms_norm(&self, x: &CpuTensor, weight: &CpuWeight, eps: f32, out: &mut CpuTensor) {
        elementwise::rms_norm(x, weight, eps, out);
    }

    fn rms_norm_heads(
        &self,
        x: &mut CpuTensor,
        cols: Cols,
        head_dim: usize,
        weight: &CpuWeight,
        eps: f32,
    ) {
        elementwise::rms_norm_heads(x, cols, head_dim, weight, eps);
    }

    fn add_bias(&self, x: &mut CpuTensor, cols: Cols, bias: &CpuWeight) {
        elementwise::add_bias(x, cols, bias);
    }

    fn scale(&self, x: &mut CpuTensor, s: f32) {
        x.data.iter_mut().for_each(|v| *v *= s);
    }

    fn matmul(&self, x: &CpuTensor, weights: &[&CpuWeight], out: &mut CpuTensor) {
        matmul::matmul(x, weights, out);
    }

    fn rope(
        &self,
        x: &mut CpuTensor,
        cols: Cols,
        head_dim: usize,
        positions: &[u32],
        rope: &Rope<'_>,
    ) {
        elementwise::rope(x, cols, head_dim, positions, rope);
    }

    fn write_kv(
        &self,
        pool: &mut CpuKvPool,
        layer: usize,
        x: &CpuTensor,
        k_cols: Cols,
        v_cols: Cols,
        slots: &[u32],
    ) {
        pool.write(layer, x, k_cols, v_cols, slots);
    }

    fn attention(
        &self,
        x: &CpuTensor,
        q_cols: Cols,
        pool: &CpuKvPool,
        layer: usize,
        layout: &AttentionLayout<'_>,
        out: &mut CpuTensor,
    ) {
        attention::paged_attention(x, q_cols, pool, layer, layout, out);
    }

    fn glu(&self, act: GluActivation, x: &CpuTensor, out: &mut CpuTensor) {
        elementwise::glu(act, x, out);
    }

    fn add_assign(&self, x: &mut CpuTensor, y: &CpuTensor) {
        elementwise::add_assign(x, y);
    }

    fn gather_rows(&self, x: &CpuTensor, rows: &[u32], out: &mut CpuTensor) {
        elementwise::gather_rows(x, rows, out);
    }
}

/// Runs the pool's pending work on this worker until `done`: a job of [`Backend::run_forward`]'s
/// scope that keeps a worker looking for the pass's forks instead of sleeping. Thieves take the
/// oldest job first, so another worker takes this one before any fork of the pass; should the
/// pass's own worker (`home`) ever run it, while waiting inside a fork, spinning there would
/// never let the pass resume, so it leaves a fresh copy for another worker instead.
fn keep_awake<'s>(s: &rayon::Scope<'s>, done: &'s AtomicBool, home: Option<usize>) {
    if rayon::current_thread_index() == home {
        if !done.load(Ordering::Acquire) {
            s.spawn(move |s| keep_awake(s, done, home));
        }
        return;
    }
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
        } else {
            idle += 1;
            // Now and then let the OS run another thread (the server's, say) on this core.
            if idle.is_multiple_of(256) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::*;

    /// Fork-heavy passes finish with the right result in pools of one to three workers, passes
    /// with nested forks included (the pass's own worker may pick up the keep-awake job while
    /// it waits inside a fork; it must hand it on, not spin).
    #[test]
    fn passes_with_a_worker_kept_awake_finish() {
        fn tree(depth: u32) -> u64 {
            if depth == 0 {
                return 1;
            }
            let (a, b) = rayon::join(|| tree(depth - 1), || tree(depth - 1));
            a + b
        }
        let be = CpuBackend::new();
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for n in [0u64, 1, 2, 3, 1000, 100_000] {
                    let sum = be.run_forward(|| (0..n).into_par_iter().sum::<u64>());
                    assert_eq!(sum, n * n.saturating_sub(1) / 2, "{threads} threads, n={n}");
                }
                for _ in 0..50 {
                    assert_eq!(be.run_forward(|| tree(10)), 1024, "{threads} threads");
                }
            });
        }
    }
}
