//! AMX-INT8 panel products for full tiles of sixteen activations (Q4_0, Q5_0 and Q8_0).
//!
//! A panel chunk's unpacked quant groups are exactly an AMX `B` tile: eight rows of 64 bytes,
//! row `j` holding elements `4j..4j+4` of the sixteen weight rows side by side. The sixteen
//! activations' quants of the chunk are the `A` tile (one activation per row, 32 bytes), so one
//! `tdpbsud` (signed activations × unsigned weights) gives the 16 × 16 exact integer dots that
//! the VNNI kernel builds from 128 `vpdpbusd`. The float epilogue is the VNNI kernel's, step for
//! step (the offset chain's start added to the exact sum, then `fma(isum, d * x.d, acc)` chunk
//! after chunk), so the results are the same bits.

use core::arch::asm;
use core::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::OnceLock;

use super::super::{ActRow, GgmlType, Level, simd_level_enum};
use super::x86::{halves, unpack_q4};
use super::{GROUP, PANEL_ROWS, Runs, chunk_bytes};

/// Activations per tile: the rows of the `A` and result tiles.
pub(super) const TILE: usize = 16;
/// The fewest activations worth a tile, whose empty rows (zero quants, zero scale) cost as
/// much as full ones. Measured (`--bench panels`, ns per row-dot, tile vs VNNI) at twelve:
/// Q5_0 3.78 vs 3.84 and Q8_0 2.85 vs 3.16 with the weights in L2, 4.65 vs 6.15 and 3.02 vs
/// 4.80 streaming them from memory; at sixteen, 2.91 vs 3.52 and 2.24 vs 3.08, 3.09 vs 4.48
/// and 2.19 vs 4.85.
pub(super) const MIN_ACTIVATIONS: usize = 12;
/// Chunks of weights prefetched ahead of the one multiplied.
const PREFETCH: usize = 4;

/// Whether full tiles of `ty` go through AMX on this CPU.
pub(super) fn takes(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0) && available()
}

/// AMX-TILE and AMX-INT8 beside AVX-512 VNNI (the epilogue's level), and the kernel's leave
/// to use the tile registers, checked once.
fn available() -> bool {
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

/// The tile palette, two sets (`pair` 0 and 1) so that two chunks are in flight: `tmm0`/`tmm1`
/// the 16 × 16 i32 results, `tmm2`/`tmm3` the activations (16 rows of 32 bytes), `tmm4`/`tmm5`
/// the weights (8 rows of 64 bytes).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = {
    let mut colsb = [0u16; 16];
    let mut rows = [0u8; 16];
    let mut pair = 0;
    while pair < 2 {
        (colsb[pair], rows[pair]) = (64, TILE as u8);
        (colsb[2 + pair], rows[2 + pair]) = (32, TILE as u8);
        (colsb[4 + pair], rows[4 + pair]) = (64, 8);
        pair += 1;
    }
    TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb,
        rows,
    }
};

/// 64-byte aligned, for tile stores and whole-vector loads.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// One chunk's 16 × 16 integer dots, `[activation][row]`.
type Sums = Aligned<[[i32; PANEL_ROWS]; TILE]>;

/// Starts chunk `chunk`'s integer product in tile set `chunk % 2`: the activations' quants at
/// `acts` (rows `stride` bytes apart) times the eight 64-byte weight groups at `weights`.
///
/// # Safety
/// Tiles configured with [`CONFIG`]; the pointers cover those bytes.
#[inline(always)]
unsafe fn product(chunk: usize, acts: *const i8, stride: usize, weights: *const u8) {
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
    if chunk.is_multiple_of(2) {
        product!("tmm0", "tmm2", "tmm4");
    } else {
        product!("tmm1", "tmm3", "tmm5");
    }
}

/// Stores chunk `chunk`'s result (tile set `chunk % 2`) into `sums`.
///
/// # Safety
/// [`product`] ran for that chunk.
#[inline(always)]
unsafe fn store(chunk: usize, sums: &mut Sums) {
    let (r, s) = (sums.0.as_mut_ptr(), 4 * PANEL_ROWS);
    // SAFETY: `sums` is 16 rows of 64 bytes; the caller's guarantees.
    unsafe {
        if chunk.is_multiple_of(2) {
            asm!("tilestored [{r} + {s}*1], tmm0", r = in(reg) r, s = in(reg) s, options(nostack));
        } else {
            asm!("tilestored [{r} + {s}*1], tmm1", r = in(reg) r, s = in(reg) s, options(nostack));
        }
    }
}

/// Per worker: what the sixteen activations contribute, laid out for the tiles and the
/// epilogue.
#[derive(Default)]
struct Staged {
    /// Quants, `[activation][element]`: chunk `c`'s `A` tile starts at `32 c`.
    quants: Vec<i8>,
    /// `[chunk][activation]`: the offset chain's start, `-(Σq << shift)`.
    starts: Vec<i32>,
    /// `[chunk][activation]`: the activation block's scale.
    scales: Vec<f32>,
}

thread_local! {
    static STAGED: RefCell<Staged> = RefCell::new(Staged::default());
}

/// [`super::dot_panels_by_activation`] for up to [`TILE`] activations of a type [`takes`]
/// accepts. Missing activations are tile rows of zeros, whose results are dropped.
///
/// # Safety
/// [`takes`] returned true for `ty`, `xs.len() <= TILE`, and `check_dots` passed.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn dot_panels(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    mut out: Runs<'_>,
) {
    assert!(xs.len() <= TILE);
    let cb = chunk_bytes(ty);
    let chunks = row_bytes / ty.block_bytes();
    let cols = chunks * 32;
    // The VNNI kernels' offsets (q - 8, q - 16, stored q + 128) as a shift of Σq, where the fp16
    // d's of a chunk lie, and whether its groups need unpacking.
    let (shift, d_at, packed) = match ty {
        GgmlType::Q4_0 => (3, 4 * GROUP, true),
        GgmlType::Q5_0 => (4, 5 * GROUP, true),
        GgmlType::Q8_0 => (7, 8 * GROUP, false),
        _ => unreachable!("amx::takes admits Q4_0, Q5_0 and Q8_0"),
    };
    STAGED.with_borrow_mut(|staged| {
        let Staged {
            quants,
            starts,
            scales,
        } = staged;
        quants.clear();
        for x in xs {
            for b in &x.q8[..chunks] {
                quants.extend_from_slice(&b.qs);
            }
        }
        quants.resize(TILE * cols, 0);
        starts.clear();
        scales.clear();
        for c in 0..chunks {
            for x in xs {
                starts.push(-(x.q8[c].sum << shift));
                scales.push(x.q8[c].d);
            }
            starts.resize((c + 1) * TILE, 0);
            scales.resize((c + 1) * TILE, 0.0);
        }
        let zeroed = || Aligned([[0; PANEL_ROWS]; TILE]);
        let mut sums: [Sums; 2] = [zeroed(), zeroed()];
        let mut unpacked = [Aligned([0u8; 8 * GROUP]), Aligned([0u8; 8 * GROUP])];
        // SAFETY: AMX is available and permitted (`takes`); the configuration is valid.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
        for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
            let mut acc = [_mm512_setzero_ps(); TILE];
            // Three chunks in flight: chunk c's product runs in one tile set while chunk
            // c - 1's result is stored from the other, and chunk c - 2's (stored one step
            // earlier: tile stores do not forward to loads) is folded into `acc`.
            for c in 0..chunks + 2 {
                if c < chunks {
                    // SAFETY: chunk c lies inside the panel (check_dots: whole chunks).
                    let chunk = unsafe { panel.as_ptr().add(c * cb) };
                    // Tile loads are not prefetched by the hardware as vector loads are: ask
                    // for the chunk PREFETCH chunks ahead (past the panel's end, the next
                    // panel's; a prefetch never faults).
                    let ahead = chunk.wrapping_add(PREFETCH * cb);
                    for line in (0..cb).step_by(64) {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast());
                    }
                    let weights = if packed {
                        let staging = unpacked[c % 2].0.as_mut_ptr();
                        // SAFETY: a whole chunk; the staging buffer holds eight 64-byte groups.
                        unsafe {
                            let w = unpack_q4(chunk, ty == GgmlType::Q5_0);
                            for (j, w) in w.iter().enumerate() {
                                _mm512_store_si512(staging.add(j * GROUP).cast(), *w);
                            }
                        }
                        staging.cast_const()
                    } else {
                        chunk
                    };
                    // SAFETY: `weights` is 8 rows of 64 bytes; the activations' tile is 16
                    // rows of 32 bytes at stride `cols` inside `quants`.
                    unsafe { product(c, quants.as_ptr().add(c * 32), cols, weights) };
                }
                if (1..=chunks).contains(&c) {
                    // SAFETY: chunk c - 1's product was started.
                    unsafe { store(c - 1, &mut sums[(c - 1) % 2]) };
                }
                if c >= 2 {
                    let c = c - 2;
                    // SAFETY: the sixteen rows' fp16 d's lie in chunk c at `d_at`.
                    let d = unsafe { halves(panel.as_ptr().add(c * cb + d_at)) };
                    let (starts, scales) =
                        (&starts[c * TILE..][..TILE], &scales[c * TILE..][..TILE]);
                    let sums = &sums[c % 2].0;
                    for k in 0..TILE {
                        // SAFETY: row k of `sums` is 64 aligned bytes.
                        let s = unsafe { _mm512_load_si512(sums[k].as_ptr().cast()) };
                        let isum = _mm512_add_epi32(s, _mm512_set1_epi32(starts[k]));
                        acc[k] = _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(isum),
                            _mm512_mul_ps(d, _mm512_set1_ps(scales[k])),
                            acc[k],
                        );
                    }
                }
            }
            for (k, acc) in acc.iter().enumerate().take(xs.len()) {
                let run = &mut out.run(k)[p * PANEL_ROWS..][..PANEL_ROWS];
                // SAFETY: `run` is sixteen writable f32s; unaligned store.
                unsafe { _mm512_storeu_ps(run.as_mut_ptr(), *acc) };
            }
        }
        // SAFETY: gives the tile state back (AMX is in use, per `takes`).
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    });
}
