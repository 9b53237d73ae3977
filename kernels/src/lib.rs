//! Journey's kernels: the model's ops behind one [`Backend`] trait.
//!
//! - [`quant`]: the ggml block formats found in GGUF files (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
//!   Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), each with a plain reference dequantizer and a
//!   fast dot product.
//! - [`backend`]: the op set the Llama forward pass needs, with shapes in its doc comments.
//! - [`cpu`]: the CPU implementation, the reference for every other device.
//! - [`cuda`]: the CUDA kernels' sources, launch plans and parameter structs; with the `cuda`
//!   feature, the CUDA backend that runs them.
//!
//! Every op is *batch invariant*: the value computed for one token never depends on which other
//! tokens share the batch, because each output element is reduced in a fixed order by one thread.

pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod quant;

pub use backend::{
    AttentionLayout, Backend, BackendError, GluActivation, KvDtype, Rope, RopeStyle,
};
pub use cpu::CpuBackend;
pub use quant::GgmlType;
