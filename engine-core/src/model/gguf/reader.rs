//! A bounded GGUF reader over a memory map.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use kernels::GgmlType;
use kernels::quant::ggml_type_name;

use super::metadata::{MetadataArray, MetadataValue, ValueType};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, keys};

/// Most dimensions a ggml tensor has.
const MAX_DIMS: u32 = 4;
/// Nesting depth allowed for arrays of arrays.
const MAX_ARRAY_DEPTH: u32 = 2;

/// Everything that can be wrong with a GGUF file, each with what and where.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: expected magic \"GGUF\", found {found:?}")]
    NotGguf {
        /// The bytes found (lossy).
        found: String,
    },
    /// A GGUF version this reader does not handle.
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    /// The file ends before a structure it declares.
    #[error("truncated GGUF file: {what} at byte {offset} needs {needed} bytes, {available} left")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// A structurally invalid value.
    #[error("invalid GGUF file: {0}")]
    Invalid(String),
    /// A required metadata key is absent.
    #[error("GGUF metadata key {0:?} is missing")]
    MissingKey(String),
    /// A metadata key has an unexpected type.
    #[error("GGUF metadata key {key:?} has type {found:?}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What the caller needed.
        expected: &'static str,
        /// What the file holds.
        found: ValueType,
    },
    /// A required tensor is absent.
    #[error("tensor {0:?} is missing from the GGUF file")]
    MissingTensor(String),
    /// A tensor type Journey cannot compute with.
    #[error(
        "tensor {name:?} has type {type_name}, which Journey does not support \
         (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)"
    )]
    UnsupportedTensorType {
        /// Tensor name.
        name: String,
        /// ggml type name or id.
        type_name: String,
    },
}

/// One tensor's header.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// ggml dims, innermost first: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    /// Raw ggml type id.
    pub type_id: u32,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elems(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The ggml type, or an error naming the tensor and its type.
    pub fn ggml_type(&self) -> Result<GgmlType, GgufError> {
        GgmlType::from_id(self.type_id).ok_or_else(|| GgufError::UnsupportedTensorType {
            name: self.name.clone(),
            type_name: ggml_type_name(self.type_id)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("unknown type id {}", self.type_id)),
        })
    }

    /// Size in bytes of the data, if the type is supported and the shape is valid for it.
    fn byte_len(&self) -> Result<u64, GgufError> {
        let ty = self.ggml_type()?;
        let row = self.dims.first().copied().unwrap_or(1);
        let rows: u64 = self.dims.iter().skip(1).product();
        let row_bytes = usize::try_from(row)
            .ok()
            .and_then(|r| ty.row_bytes(r))
            .ok_or_else(|| {
                GgufError::Invalid(format!(
                    "tensor {:?}: row length {row} is not a multiple of {}'s block of {}",
                    self.name,
                    ty.name(),
                    ty.block_elems()
                ))
            })?;
        (row_bytes as u64)
            .checked_mul(rows)
            .ok_or_else(|| GgufError::Invalid(format!("tensor {:?}: size overflows", self.name)))
    }
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata, tensor infos, and the mapped data.
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// All metadata, by key.
    pub metadata: BTreeMap<String, MetadataValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    by_name: BTreeMap<String, usize>,
    data_offset: u64,
    storage: Storage,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and parses a file, memory-mapping the tensor data.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; a file truncated under us by another process is outside
        // what any mmap-based loader can defend against, and we never hand out `&mut`.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(Storage::Mapped(map))
    }

    /// Parses an in-memory file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::parse(Storage::Owned(bytes))
    }

    fn parse(storage: Storage) -> Result<Self, GgufError> {
        let bytes = storage.bytes();
        let mut r = Cursor { buf: bytes, pos: 0 };
        let magic = r.take(4, "magic")?;
        if u32::from_le_bytes(magic.try_into().expect("4 bytes")) != GGUF_MAGIC {
            return Err(GgufError::NotGguf {
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // A key-value pair takes at least 8 (key len) + 4 (type) + 1 bytes; a tensor info at
        // least 8 + 4 + 4 + 8. Counts beyond what the file could hold are lies.
        r.check_count(n_kv, 13, "metadata count")?;
        r.check_count(n_tensors, 24, "tensor count")?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let ty = r.value_type(&key)?;
            let value = r.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::Invalid(format!(
                    "duplicate metadata key {key:?}"
                )));
            }
        }

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut by_name = BTreeMap::new();
        for i in 0..n_tensors {
            let name = r.string("tensor name")?;
            let n_dims = r.u32("tensor dims")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Invalid(format!(
                    "tensor {name:?} has {n_dims} dimensions (1..={MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64("tensor dim")?);
            }
            if dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .is_none()
            {
                return Err(GgufError::Invalid(format!(
                    "tensor {name:?}: element count overflows"
                )));
            }
            let type_id = r.u32("tensor type")?;
            let offset = r.u64("tensor offset")?;
            if by_name.insert(name.clone(), i as usize).is_some() {
                return Err(GgufError::Invalid(format!(
                    "duplicate tensor name {name:?}"
                )));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                type_id,
                offset,
            });
        }

        let alignment = match metadata.get(keys::ALIGNMENT) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(GgufError::Invalid(format!(
                        "general.alignment {v} is not a power of two"
                    )));
                }
            },
        };
        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(GgufError::Invalid(format!(
                    "tensor {:?} offset {} is not aligned to {alignment}",
                    t.name, t.offset
                )));
            }
            // Unsupported types are reported when the tensor is used, with its name.
            if let Ok(len) = t.byte_len() {
                let end = data_offset
                    .checked_add(t.offset)
                    .and_then(|s| s.checked_add(len));
                if end.is_none_or(|e| e > file_len) {
                    return Err(GgufError::Truncated {
                        what: format!("data of tensor {:?}", t.name),
                        offset: data_offset.saturating_add(t.offset),
                        needed: len,
                        available: file_len.saturating_sub(data_offset.saturating_add(t.offset)),
                    });
                }
            }
        }

        Ok(Self {
            version,
            metadata,
            tensors,
            by_name,
            data_offset,
            storage,
        })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// A required string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong(key, "string", v))
    }

    /// A required non-negative integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| wrong(key, "unsigned integer", v))
    }

    /// A required number as f64.
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong(key, "number", v))
    }

    /// A required array.
    pub fn get_array(&self, key: &str) -> Result<&MetadataArray, GgufError> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| wrong(key, "array", v))
    }

    /// A required array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let a = self.get_array(key)?;
        a.values
            .iter()
            .map(|v| v.as_str().ok_or_else(|| wrong(key, "array of strings", v)))
            .collect()
    }

    /// A tensor's info by name.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| GgufError::MissingTensor(name.to_owned()))
    }

    /// A tensor's raw bytes, checked against its type and shape.
    pub fn tensor_data(&self, info: &TensorInfo) -> Result<&[u8], GgufError> {
        let len = info.byte_len()?;
        let start = self.data_offset + info.offset;
        // Bounds were checked at parse time for every supported type.
        Ok(&self.storage.bytes()[start as usize..(start + len) as usize])
    }
}

fn wrong(key: &str, expected: &'static str, v: &MetadataValue) -> GgufError {
    GgufError::WrongType {
        key: key.to_owned(),
        expected,
        found: v.value_type(),
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what.to_owned(),
                offset: self.pos as u64,
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn check_count(&self, count: u64, min_each: u64, what: &str) -> Result<(), GgufError> {
        match count.checked_mul(min_each) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(GgufError::Invalid(format!(
                "{what} {count} cannot fit in the {} bytes left",
                self.remaining()
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        Ok(self.take(N as u64, what)?.try_into().expect("exact length"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| GgufError::Invalid(format!("{what} at byte {at} is not valid UTF-8")))
    }

    fn value_type(&mut self, key: &str) -> Result<ValueType, GgufError> {
        let raw = self.u32("value type")?;
        ValueType::from_u32(raw).ok_or_else(|| {
            GgufError::Invalid(format!("metadata key {key:?} has unknown value type {raw}"))
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: u32) -> Result<MetadataValue, GgufError> {
        use MetadataValue as V;
        let what = || format!("value of {key:?}");
        Ok(match ty {
            ValueType::U8 => V::U8(self.array::<1>(&what())?[0]),
            ValueType::I8 => V::I8(self.array::<1>(&what())?[0] as i8),
            ValueType::U16 => V::U16(u16::from_le_bytes(self.array(&what())?)),
            ValueType::I16 => V::I16(i16::from_le_bytes(self.array(&what())?)),
            ValueType::U32 => V::U32(u32::from_le_bytes(self.array(&what())?)),
            ValueType::I32 => V::I32(i32::from_le_bytes(self.array(&what())?)),
            ValueType::F32 => V::F32(f32::from_le_bytes(self.array(&what())?)),
            ValueType::U64 => V::U64(u64::from_le_bytes(self.array(&what())?)),
            ValueType::I64 => V::I64(i64::from_le_bytes(self.array(&what())?)),
            ValueType::F64 => V::F64(f64::from_le_bytes(self.array(&what())?)),
            ValueType::Bool => match self.array::<1>(&what())?[0] {
                0 => V::Bool(false),
                1 => V::Bool(true),
                b => {
                    return Err(GgufError::Invalid(format!(
                        "metadata key {key:?}: bool byte {b}"
                    )));
                }
            },
            ValueType::String => V::String(self.string(&what())?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::Invalid(format!(
                        "metadata key {key:?}: arrays nested too deep"
                    )));
                }
                let elem_type = self.value_type(key)?;
                let len = self.u64(&what())?;
                // Strings take at least their 8-byte length; arrays at least 12 bytes.
                let min = elem_type.scalar_size().map_or(8, |s| s as u64);
                self.check_count(len, min, &format!("array length of {key:?}"))?;
                let mut values = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    values.push(self.value(elem_type, key, depth + 1)?);
                }
                V::Array(MetadataArray { elem_type, values })
            }
        })
    }
}
