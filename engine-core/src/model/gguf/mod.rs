//! GGUF files: a bounded reader over a memory map, and a writer for test models.
//!
//! The layout (v2 and v3; v1 used 32-bit counts and is refused):
//! `magic "GGUF" | version u32 | n_tensors u64 | n_kv u64 | kv* | tensor_info* | pad | data`.
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated, so a crafted or truncated file yields a [`GgufError`], never a panic or
//! a huge allocation.

pub mod keys;
mod metadata;
mod reader;
mod writer;

pub use metadata::{MetadataArray, MetadataValue, ValueType};
pub use reader::{GgufError, GgufFile, TensorInfo};
pub use writer::GgufWriter;

/// `"GGUF"` read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Default alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
