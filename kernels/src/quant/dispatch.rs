//! CPU-level dispatch: which instruction-set level this process runs ([`Level`], detected once),
//! and each level's kernels, one named field per weight type ([`PerType`]), so a kernel is
//! looked up by [`GgmlType`] through a `match` and never by position in an array.

use std::sync::OnceLock;

use super::activation::ActRow;
use super::scalar;
use super::types::GgmlType;
#[cfg(target_arch = "x86_64")]
use super::x86;

/// Which fast path this process uses: `"avx512vnni"`, `"avx2"` or `"scalar"`. Detected once and
/// fixed for the process lifetime.
pub fn simd_level() -> &'static str {
    simd_level_enum().name()
}

/// The instruction-set levels with a fast path, in increasing order. Public only through the
/// hidden `bench_support` module.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// The AVX2 set plus AVX-512 F/BW/VL and VNNI.
    Avx512Vnni,
}

impl Level {
    /// Every level this CPU can run, scalar first.
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn supported() -> Vec<Level> {
        [Level::Scalar, Level::Avx2, Level::Avx512Vnni]
            .into_iter()
            .filter(|&l| l <= simd_level_enum())
            .collect()
    }

    /// The level's name, as [`simd_level`] reports it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512Vnni => "avx512vnni",
        }
    }
}

/// The best level this CPU supports, detected once.
pub(crate) fn simd_level_enum() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect_level)
}

fn detect_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                return Level::Avx512Vnni;
            }
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// A row kernel `(w_row, xs, out)` of one type at one level.
///
/// Calling one requires the CPU features of its level and lengths checked by `check_dot`.
pub(crate) type RowKernel = unsafe fn(&[u8], &[ActRow<'_>], &mut [f32]);

/// A multi-row kernel `(w_rows, row_bytes, xs, out)`: [`RowKernel`] over each row of
/// `w_rows`, writing `out[r * xs.len()..][..xs.len()]`. Same requirements.
pub(crate) type RowsKernel = unsafe fn(&[u8], usize, &[ActRow<'_>], &mut [f32]);

/// One `K` per supported weight type, each in the field named after it. Adding a type to
/// [`GgmlType`] fails to compile until every level's table and [`PerType::get`] name it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PerType<K> {
    /// [`GgmlType::F32`].
    pub(crate) f32: K,
    /// [`GgmlType::F16`].
    pub(crate) f16: K,
    /// [`GgmlType::BF16`].
    pub(crate) bf16: K,
    /// [`GgmlType::Q4_0`].
    pub(crate) q4_0: K,
    /// [`GgmlType::Q4_1`].
    pub(crate) q4_1: K,
    /// [`GgmlType::Q5_0`].
    pub(crate) q5_0: K,
    /// [`GgmlType::Q5_1`].
    pub(crate) q5_1: K,
    /// [`GgmlType::Q8_0`].
    pub(crate) q8_0: K,
    /// [`GgmlType::Q2_K`].
    pub(crate) q2_k: K,
    /// [`GgmlType::Q3_K`].
    pub(crate) q3_k: K,
    /// [`GgmlType::Q4_K`].
    pub(crate) q4_k: K,
    /// [`GgmlType::Q5_K`].
    pub(crate) q5_k: K,
    /// [`GgmlType::Q6_K`].
    pub(crate) q6_k: K,
}

impl<K: Copy> PerType<K> {
    /// The entry of `ty`.
    #[inline]
    pub(crate) fn get(&self, ty: GgmlType) -> K {
        match ty {
            GgmlType::F32 => self.f32,
            GgmlType::F16 => self.f16,
            GgmlType::BF16 => self.bf16,
            GgmlType::Q4_0 => self.q4_0,
            GgmlType::Q4_1 => self.q4_1,
            GgmlType::Q5_0 => self.q5_0,
            GgmlType::Q5_1 => self.q5_1,
            GgmlType::Q8_0 => self.q8_0,
            GgmlType::Q2_K => self.q2_k,
            GgmlType::Q3_K => self.q3_k,
            GgmlType::Q4_K => self.q4_k,
            GgmlType::Q5_K => self.q5_k,
            GgmlType::Q6_K => self.q6_k,
        }
    }
}

/// The kernels of one level.
#[derive(Debug)]
pub(crate) struct LevelKernels {
    /// One weight row against a group of activations.
    pub(crate) row: PerType<RowKernel>,
    /// [`LevelKernels::row`] over consecutive rows, the loop compiled with the level's features.
    pub(crate) rows: PerType<RowsKernel>,
}

/// The kernels of `level`.
pub(crate) fn level_kernels(level: Level) -> &'static LevelKernels {
    match level {
        Level::Scalar => &scalar::KERNELS,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => &x86::avx2::KERNELS,
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni => &x86::vnni::KERNELS,
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar level exists on this architecture"),
    }
}

/// The kernels of the detected level.
#[inline]
pub(crate) fn kernels() -> &'static LevelKernels {
    static KERNELS: OnceLock<&'static LevelKernels> = OnceLock::new();
    KERNELS.get_or_init(|| level_kernels(simd_level_enum()))
}
