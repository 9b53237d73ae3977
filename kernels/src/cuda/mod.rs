//! The CUDA backend: every op of [`crate::Backend`] as a CUDA C kernel (`kernels/cuda/*.cu`,
//! one file per op family, entry points `<op>_<dtype>`), compiled by NVRTC at start-up for
//! the device found, launched through cudarc on one stream.
//!
//! What needs no GPU is compiled and tested on every build: [`sources`] (the embedded
//! programs and their entry points), [`params`] (the by-value launch structs, checked field
//! by field against `common.cuh`) and [`plan`] (kernel choice per weight type, grid and block
//! sizes against the device limits, shape checks). The device side ([`CudaBackend`], NVRTC)
//! is behind the `cuda` feature.
//!
//! Numerics differ from the CPU in two known ways, both inside the parity tolerances:
//! quantized matmuls multiply dequantized weights by f32 activations (the CPU quantizes the
//! activations to 8 bits as llama.cpp does), and reductions run in a different order.

pub mod params;
pub mod plan;
pub mod sources;

#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
pub mod nvrtc;

#[cfg(feature = "cuda")]
pub use device::{CudaBackend, CudaInitError, CudaKvPool, CudaTensor, CudaWeight};
