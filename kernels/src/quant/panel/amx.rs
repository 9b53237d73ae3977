//! AMX-INT8 panel products for tiles of twelve to sixteen activations, every panel type.
//!
//! A 32-element block's unpacked quant groups (the VNNI kernels' unpacking, shared) are
//! exactly an AMX `B` tile: eight rows of 64 bytes, row `j` holding elements `4j..4j+4` of the
//! sixteen weight rows side by side. The sixteen activations' quants of the block are the `A`
//! tile (one activation per row, 32 bytes), so one `tdpbsud` (signed activations × unsigned
//! weights) gives the 16 × 16 exact integer dots that the VNNI kernel builds from 128
//! `vpdpbusd`. Q6_K takes two, one per 16-element half, whose integer scales differ. The float
//! epilogue is the VNNI kernel's, step for step (the offset chain's start added to the exact
//! sum, the scales applied, then `fma(isum, d * x.d, acc)` block after block, and the offset
//! terms' own chain), so the results are the same bits.

use core::arch::asm;
use core::arch::x86_64::*;
use std::sync::OnceLock;

use super::super::{ActRow, BlockQ8, GgmlType, Level, simd_level_enum};
use super::x86::{
    Q6_K_D, first_half_sum, group, halves, k_layout, k_scale_min, q6_k_scales, unpack_q4,
    unpack_q4_k, unpack_q6_k,
};
use super::{GROUP, HALVES, PANEL_ROWS, Runs, chunk_bytes};

/// Activations per tile: the rows of the `A` and result tiles.
pub(super) const TILE: usize = 16;
/// The fewest activations worth a tile, whose empty rows (zero quants, zero scale) cost as
/// much as full ones. Measured (`--bench panels`, ns per row-dot, tile vs VNNI) at twelve:
/// Q5_0 3.78 vs 3.84 and Q8_0 2.85 vs 3.16 with the weights in L2, 4.65 vs 6.15 and 3.02 vs
/// 4.80 streaming them from memory; at sixteen, 2.91 vs 3.52 and 2.24 vs 3.08, 3.09 vs 4.48
/// and 2.19 vs 4.85.
pub(super) const MIN_ACTIVATIONS: usize = 12;
/// Steps (tile products) of weights prefetched ahead of the one multiplied.
const PREFETCH: usize = 4;

/// Whether full tiles of `ty` go through AMX on this CPU.
pub(super) fn takes(ty: GgmlType) -> bool {
    kind(ty).is_some() && available()
}

/// AMX-TILE and AMX-INT8 beside AVX-512 VNNI (the epilogue's level), and the kernel's leave
/// to use the tile registers, checked once.
pub(super) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        // CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
        let amx = __cpuid_count(7, 0).edx & (3 << 24) == 3 << 24;
        amx && simd_level_enum() == Level::Avx512Vnni && request_tile_data()
    })
}

/// Linux hands out the tile data state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`); without it the first tile instruction faults.
#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: this arch_prctl only grants the process a permission; it touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// The tile palette, two sets (`pair` 0 and 1) so that two steps are in flight: `tmm0`/`tmm1`
/// the 16 × 16 i32 results, `tmm2`/`tmm3` the activations (16 rows of `k` bytes), `tmm4`/`tmm5`
/// the weights (`k / 4` rows of 64 bytes).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// The palette for products over `k` elements (32: a whole block; 16: half of one).
const fn config(k: usize) -> TileConfig {
    let mut colsb = [0u16; 16];
    let mut rows = [0u8; 16];
    let mut pair = 0;
    while pair < 2 {
        (colsb[pair], rows[pair]) = (64, TILE as u8);
        (colsb[2 + pair], rows[2 + pair]) = (k as u16, TILE as u8);
        (colsb[4 + pair], rows[4 + pair]) = (64, (k / 4) as u8);
        pair += 1;
    }
    TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb,
        rows,
    }
}

/// Products over whole 32-element blocks.
const BLOCKS: TileConfig = config(32);
/// Products over 16-element halves (Q6_K, whose halves have their own scales).
const HALF_BLOCKS: TileConfig = config(16);

/// 64-byte aligned, for tile stores and whole-vector loads.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// One step's 16 × 16 integer dots, `[activation][row]`.
type Sums = Aligned<[[i32; PANEL_ROWS]; TILE]>;

/// Starts step `step`'s integer product in tile set `step % 2`: the activations' quants at
/// `acts` (rows `stride` bytes apart) times the weight groups at `weights` (64 bytes apart).
///
/// # Safety
/// Tiles configured with [`BLOCKS`] or [`HALF_BLOCKS`]; the pointers cover the bytes those
/// shapes read.
#[inline(always)]
unsafe fn product(step: usize, acts: *const i8, stride: usize, weights: *const u8) {
    macro_rules! product {
        ($c:literal, $a:literal, $b:literal) => {
            // SAFETY: the caller's guarantees.
            unsafe {
                asm!(
                    concat!("tilezero ", $c),
                    concat!("tileloadd ", $a, ", [{a} + {a_stride}*1]"),
                    concat!("tileloadd ", $b, ", [{b} + {b_stride}*1]"),
                    concat!("tdpbsud ", $c, ", ", $a, ", ", $b),
                    a = in(reg) acts,
                    a_stride = in(reg) stride,
                    b = in(reg) weights,
                    b_stride = in(reg) GROUP,
                    options(nostack, readonly),
                )
            }
        };
    }
    if step.is_multiple_of(2) {
        product!("tmm0", "tmm2", "tmm4");
    } else {
        product!("tmm1", "tmm3", "tmm5");
    }
}

/// Stores step `step`'s result (tile set `step % 2`) into `sums`.
///
/// # Safety
/// [`product`] ran for that step.
#[inline(always)]
unsafe fn store(step: usize, sums: &mut Sums) {
    let (r, s) = (sums.0.as_mut_ptr(), 4 * PANEL_ROWS);
    // SAFETY: `sums` is 16 rows of 64 bytes; the caller's guarantees.
    unsafe {
        if step.is_multiple_of(2) {
            asm!("tilestored [{r} + {s}*1], tmm0", r = in(reg) r, s = in(reg) s, options(nostack));
        } else {
            asm!("tilestored [{r} + {s}*1], tmm1", r = in(reg) r, s = in(reg) s, options(nostack));
        }
    }
}

/// Up to [`TILE`] activations laid out for the tiles and the epilogue, once for every weight a
/// matrix product multiplies them with (`[block][activation]`: one entry per 32-element block
/// and activation; missing activations are zeros).
pub(crate) struct Staged {
    /// The activations given.
    count: usize,
    /// Elements per activation.
    cols: usize,
    /// Quants, `[activation][element]`: block `b`'s `A` tile starts at `32 b` of the first row.
    quants: Vec<i8>,
    /// `Σq` of each block.
    sums: Vec<i32>,
    /// `Σq` of each block's first sixteen.
    firsts: Vec<i32>,
    /// Each block's scale.
    scales: Vec<f32>,
    /// Each block's `d * Σq`.
    offsets: Vec<f32>,
}

impl Staged {
    /// Stages `xs` (at most [`TILE`], each with the same number of blocks).
    pub(crate) fn new(xs: &[ActRow<'_>]) -> Self {
        assert!(xs.len() <= TILE);
        let blocks = xs.first().map_or(0, |x| x.q8.len());
        let mut quants = Vec::with_capacity(TILE * blocks * 32);
        for x in xs {
            assert_eq!(x.q8.len(), blocks, "activations of different lengths");
            for b in x.q8 {
                quants.extend_from_slice(&b.qs);
            }
        }
        quants.resize(TILE * blocks * 32, 0);
        let per_block = |f: &dyn Fn(&BlockQ8) -> i32| -> Vec<i32> {
            let mut v = vec![0; blocks * TILE];
            for (k, x) in xs.iter().enumerate() {
                for (b, block) in x.q8.iter().enumerate() {
                    v[b * TILE + k] = f(block);
                }
            }
            v
        };
        let per_block_f32 = |f: &dyn Fn(&BlockQ8) -> f32| -> Vec<f32> {
            let mut v = vec![0.0; blocks * TILE];
            for (k, x) in xs.iter().enumerate() {
                for (b, block) in x.q8.iter().enumerate() {
                    v[b * TILE + k] = f(block);
                }
            }
            v
        };
        Staged {
            count: xs.len(),
            cols: blocks * 32,
            sums: per_block(&|b| b.sum),
            // SAFETY: AVX2 is present wherever AMX is (`available`), the only way here.
            firsts: per_block(&|b| unsafe { first_half_sum(&b.qs) }),
            scales: per_block_f32(&|b| b.d),
            offsets: per_block_f32(&|b| b.s),
            quants,
        }
    }

    /// The activations staged.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// The panel types the tiles take, as const parameters of [`run`].
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;
const Q8_0: u8 = 4;
const Q4_K: u8 = 5;
const Q5_K: u8 = 6;
const Q6_K: u8 = 7;

/// The const parameter of [`run`] for `ty`.
fn kind(ty: GgmlType) -> Option<u8> {
    Some(match ty {
        GgmlType::Q4_0 => Q4_0,
        GgmlType::Q4_1 => Q4_1,
        GgmlType::Q5_0 => Q5_0,
        GgmlType::Q5_1 => Q5_1,
        GgmlType::Q8_0 => Q8_0,
        GgmlType::Q4_K => Q4_K,
        GgmlType::Q5_K => Q5_K,
        GgmlType::Q6_K => Q6_K,
        _ => return None,
    })
}

/// [`super::dot_panels_by_activation`] for the staged activations and a type [`takes`]
/// accepts. Missing activations are tile rows of zeros, whose results are dropped.
///
/// # Safety
/// [`takes`] returned true for `ty`, and `check_dots` passed for the staged activations.
pub(super) unsafe fn dot_panels(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &Staged,
    out: Runs<'_>,
) {
    assert_eq!(
        xs.cols,
        row_bytes / ty.block_bytes() * ty.block_elems(),
        "staged activations of another length"
    );
    // SAFETY (each arm): the caller's guarantees, `ty` being the kind's type.
    unsafe {
        match kind(ty) {
            Some(Q4_0) => run::<Q4_0>(panels, row_bytes, xs, out),
            Some(Q4_1) => run::<Q4_1>(panels, row_bytes, xs, out),
            Some(Q5_0) => run::<Q5_0>(panels, row_bytes, xs, out),
            Some(Q5_1) => run::<Q5_1>(panels, row_bytes, xs, out),
            Some(Q8_0) => run::<Q8_0>(panels, row_bytes, xs, out),
            Some(Q4_K) => run::<Q4_K>(panels, row_bytes, xs, out),
            Some(Q5_K) => run::<Q5_K>(panels, row_bytes, xs, out),
            Some(Q6_K) => run::<Q6_K>(panels, row_bytes, xs, out),
            _ => unreachable!("amx::takes admits only the panel types"),
        }
    }
}

/// The three packed scale groups of a Q4_K/Q5_K chunk (`sc_at` on).
///
/// # Safety
/// `chunk` points to a whole chunk of that layout.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn k_scales(chunk: *const u8, sc_at: usize) -> [__m512i; 3] {
    // SAFETY: the three groups lie inside the chunk.
    unsafe { [0, 1, 2].map(|i| group(chunk.add(sc_at + i * GROUP))) }
}

/// [`dot_panels`] for the type `K`. Each 32-element block is one step (a tile product) per
/// sixteen activations; Q6_K's blocks two, one per 16-element half, since each half has its
/// own scale.
///
/// # Safety
/// As [`dot_panels`], `K` being `ty`'s kind.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run<const K: u8>(panels: &[u8], row_bytes: usize, xs: &Staged, mut out: Runs<'_>) {
    let ty = match K {
        Q4_0 => GgmlType::Q4_0,
        Q4_1 => GgmlType::Q4_1,
        Q5_0 => GgmlType::Q5_0,
        Q5_1 => GgmlType::Q5_1,
        Q8_0 => GgmlType::Q8_0,
        Q4_K => GgmlType::Q4_K,
        Q5_K => GgmlType::Q5_K,
        _ => GgmlType::Q6_K,
    };
    let super_k = matches!(K, Q4_K | Q5_K | Q6_K);
    // Blocks per panel chunk, tile products per block.
    let per_chunk = if super_k { 8 } else { 1 };
    let per_block = if K == Q6_K { 2 } else { 1 };
    let cb = chunk_bytes(ty);
    let cols = xs.cols;
    let blocks = cols / 32;
    let steps = blocks * per_block;
    // The VNNI kernels' offsets (q - 8, q - 16, stored q + 128) as a shift of Σq.
    let shift = match K {
        Q4_0 => 3,
        Q5_0 => 4,
        Q8_0 => 7,
        _ => 0,
    };
    let start = |sum: i32| if shift == 0 { 0 } else { -(sum << shift) };
    let offset = matches!(K, Q4_1 | Q5_1 | Q4_K | Q5_K);
    // Where the fp16 d's (and m's, HALVES on) of a chunk of the 32-element types lie.
    let d_at = match K {
        Q4_0 | Q4_1 => 4 * GROUP,
        Q5_0 | Q5_1 => 5 * GROUP,
        _ => 8 * GROUP,
    };
    let (qh_at, sc_at, kd_at, kdmin_at) = k_layout(K == Q5_K);
    // Weight bytes per step, for the prefetch.
    let step_bytes = cb / (per_chunk * per_block);
    let zeroed = || Aligned([[0; PANEL_ROWS]; TILE]);
    // Four, so that a Q6_K block's two halves are both still there when it is folded.
    let mut sums: [Sums; 4] = [zeroed(), zeroed(), zeroed(), zeroed()];
    let mut unpacked = [Aligned([0u8; 8 * GROUP]), Aligned([0u8; 8 * GROUP])];
    let config = if K == Q6_K { &HALF_BLOCKS } else { &BLOCKS };
    // SAFETY: AMX is available and permitted (`takes`); the configuration is valid.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config, options(nostack, readonly)) };
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        let mut acc = [_mm512_setzero_ps(); TILE];
        // Three steps in flight: step s's product runs in one tile set while step s - 1's
        // result is stored from the other, and step s - 2's (stored one step earlier: tile
        // stores do not forward to loads) is folded into `acc`.
        for s in 0..steps + 2 {
            if s < steps {
                // Tile loads are not prefetched by the hardware as vector loads are: ask for
                // the weights PREFETCH steps ahead (past the panel's end, the next panel's; a
                // prefetch never faults).
                let ahead = (s + PREFETCH) * step_bytes;
                for line in (ahead & !63..ahead + step_bytes).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(panel.as_ptr().wrapping_add(line).cast());
                }
                let (block, half) = (s / per_block, s % per_block);
                // SAFETY: the chunk holding `block` lies inside the panel (check_dots: whole
                // chunks).
                let chunk = unsafe { panel.as_ptr().add(block / per_chunk * cb) };
                let sub = block % per_chunk;
                let staging = unpacked[block % 2].0.as_mut_ptr();
                let weights = if K == Q8_0 {
                    chunk
                } else {
                    if half == 0 {
                        // SAFETY: a whole chunk of the type's layout, sub < 8; the staging
                        // buffer holds eight 64-byte groups.
                        unsafe {
                            let w = match K {
                                Q4_K => unpack_q4_k::<false>(chunk, qh_at, sub),
                                Q5_K => unpack_q4_k::<true>(chunk, qh_at, sub),
                                Q6_K => unpack_q6_k(chunk, sub),
                                _ => unpack_q4(chunk, matches!(K, Q5_0 | Q5_1)),
                            };
                            for (j, w) in w.iter().enumerate() {
                                _mm512_store_si512(staging.add(j * GROUP).cast(), *w);
                            }
                        }
                    }
                    // Q6_K's second half: groups 4..8.
                    staging.cast_const().wrapping_add(4 * GROUP * half)
                };
                // SAFETY: `weights` covers the B tile (groups of 64 bytes from it); the A
                // tile's sixteen rows of 32 (or 16) bytes lie in `quants`.
                unsafe {
                    let a = xs.quants.as_ptr().add(block * 32 + 16 * half);
                    product(s, a, cols, weights)
                };
            }
            if (1..=steps).contains(&s) {
                // SAFETY: step s - 1's product was started.
                unsafe { store(s - 1, &mut sums[(s - 1) % 4]) };
            }
            // Fold step s - 2 (Q6_K: a block once both its halves are stored).
            if s < 2 || (K == Q6_K && s % 2 == 0) {
                continue;
            }
            let block = (s - 2) / per_block;
            // SAFETY: the chunk holding `block` lies inside the panel, and every group and set
            // of halves read below inside the chunk.
            let chunk = unsafe { panel.as_ptr().add(block / per_chunk * cb) };
            let sub = block % per_chunk;
            let at = block * TILE;
            let (bsums, scales) = (&xs.sums[at..][..TILE], &xs.scales[at..][..TILE]);
            if K == Q6_K {
                let firsts = &xs.firsts[at..][..TILE];
                let (lo, hi) = (&sums[(s - 3) % 4].0, &sums[(s - 2) % 4].0);
                let d = unsafe { halves(chunk.add(Q6_K_D)) };
                let (sc0, sc1) = unsafe { q6_k_scales(chunk, sub) };
                for k in 0..TILE {
                    let (x0, x1) = (firsts[k], bsums[k] - firsts[k]);
                    // SAFETY: row k of `lo` and `hi` is 64 aligned bytes.
                    let (a0, a1) = unsafe {
                        (
                            _mm512_load_si512(lo[k].as_ptr().cast()),
                            _mm512_load_si512(hi[k].as_ptr().cast()),
                        )
                    };
                    // The quants are stored +32: each half's chain starts at -32 Σx.
                    let a0 = _mm512_add_epi32(a0, _mm512_set1_epi32(-(x0 << 5)));
                    let a1 = _mm512_add_epi32(a1, _mm512_set1_epi32(-(x1 << 5)));
                    let isum = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(a1),
                        sc1,
                        _mm512_mul_ps(_mm512_cvtepi32_ps(a0), sc0),
                    );
                    acc[k] =
                        _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(scales[k])), acc[k]);
                }
            } else {
                let d = if super_k {
                    let (sc, _) = k_scale_min(&unsafe { k_scales(chunk, sc_at) }, sub);
                    _mm512_mul_ps(unsafe { halves(chunk.add(kd_at)) }, _mm512_cvtepi32_ps(sc))
                } else {
                    unsafe { halves(chunk.add(d_at)) }
                };
                let sums = &sums[(s - 2) % 4].0;
                for k in 0..TILE {
                    // SAFETY: row k of `sums` is 64 aligned bytes.
                    let v = unsafe { _mm512_load_si512(sums[k].as_ptr().cast()) };
                    let isum = _mm512_add_epi32(v, _mm512_set1_epi32(start(bsums[k])));
                    acc[k] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(isum),
                        _mm512_mul_ps(d, _mm512_set1_ps(scales[k])),
                        acc[k],
                    );
                }
            }
        }
        if offset {
            // The offsets' chain, block after block as the VNNI kernels interleave it (its
            // terms do not depend on the tiles), added once at the end.
            let mut accm = [_mm512_setzero_ps(); TILE];
            for block in 0..blocks {
                // SAFETY: the chunk holding `block` lies inside the panel, and the groups and
                // halves read below inside the chunk.
                let chunk = unsafe { panel.as_ptr().add(block / per_chunk * cb) };
                let offsets = &xs.offsets[block * TILE..][..TILE];
                if super_k {
                    let (_, m) = k_scale_min(&unsafe { k_scales(chunk, sc_at) }, block % 8);
                    let dmin = unsafe { halves(chunk.add(kdmin_at)) };
                    let dm = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(m));
                    for k in 0..TILE {
                        // fma(-(dmin m), s, accm): the negation is exact.
                        accm[k] = _mm512_fnmadd_ps(dm, _mm512_set1_ps(offsets[k]), accm[k]);
                    }
                } else {
                    let m = unsafe { halves(chunk.add(d_at + HALVES)) };
                    for k in 0..TILE {
                        accm[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(offsets[k]), accm[k]);
                    }
                }
            }
            for (acc, accm) in acc.iter_mut().zip(&accm) {
                *acc = _mm512_add_ps(*acc, *accm);
            }
        }
        for (k, acc) in acc.iter().enumerate().take(xs.count) {
            let run = &mut out.run(k)[p * PANEL_ROWS..][..PANEL_ROWS];
            // SAFETY: `run` is sixteen writable f32s; unaligned store.
            unsafe { _mm512_storeu_ps(run.as_mut_ptr(), *acc) };
        }
    }
    // SAFETY: gives the tile state back (AMX is in use, per `takes`).
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}
