//! The x86 panel kernels, lane `r` of every vector belonging to row `r`: with AVX-512 VNNI one
//! `vpdpbusd` per 4 elements of sixteen rows (every panel type); with AVX2, `vpmaddubsw` +
//! `vpmaddwd` per 4 elements of eight rows, each half of a panel in turn (every type but Q8_0,
//! whose +128 bytes would saturate `vpmaddubsw`'s pair sums).

use core::arch::x86_64::*;

use super::super::{ActRow, BlockQ8, GgmlType, Level};
use super::{GROUP, HALVES, Out, PANEL_ROWS, chunk_bytes, seg_start};

/// Activations dotted with one panel per AVX-512 kernel call: eight accumulator pairs plus the
/// eight unpacked weight vectors fit the 32 vector registers.
const MAX_GROUP: usize = 8;
/// Activations per AVX2 kernel call: eight of the 16 registers hold half a chunk's weights, so
/// a few accumulators spill, but sharing each unpack among four activations instead of two
/// measured faster (most for the K-quants, whose weights cost the most to unpack).
const AVX2_GROUP: usize = 4;

/// Dots one panel with up to [`MAX_GROUP`] activations: `res[k][lane]` for activation `k`.
///
/// Calling one requires its level's CPU features and lengths checked by `check_dots`.
type GroupKernel = unsafe fn(&[u8], &[ActRow<'_>], &mut [[f32; PANEL_ROWS]; MAX_GROUP]);

/// The group kernel of `ty` at `level`, and the activations it takes per call; `None` where
/// there is none.
pub(super) fn kernel(level: Level, ty: GgmlType) -> Option<(GroupKernel, usize)> {
    match (level, ty) {
        (Level::Avx512Vnni, GgmlType::Q4_0) => Some((vnni_q4_0 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q4_1) => Some((vnni_q4_1 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q5_0) => Some((vnni_q5_0 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q5_1) => Some((vnni_q5_1 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q8_0) => Some((vnni_q8_0 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q4_K) => Some((vnni_q4_k as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q5_K) => Some((vnni_q5_k as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q6_K) => Some((vnni_q6_k as GroupKernel, MAX_GROUP)),
        (Level::Avx2, GgmlType::Q4_0) => Some((avx2_q4::<false, false> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q4_1) => Some((avx2_q4::<true, false> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q5_0) => Some((avx2_q4::<false, true> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q5_1) => Some((avx2_q4::<true, true> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q4_K) => Some((avx2_q4_k::<false> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q5_K) => Some((avx2_q4_k::<true> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q6_K) => Some((avx2_q6_k as GroupKernel, AVX2_GROUP)),
        _ => None,
    }
}

/// [`dot_panels`](super::dot_panels) with one group kernel.
///
/// # Safety
/// The CPU must support the kernel's level, `group` must not exceed what it takes, and the
/// lengths must have passed `check_dots`.
pub(super) unsafe fn dot_panels(
    (kernel, group): (GroupKernel, usize),
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    mut out: Out<'_>,
) {
    debug_assert!((1..=MAX_GROUP).contains(&group));
    let n = xs.len();
    let mut res = [[0.0f32; PANEL_ROWS]; MAX_GROUP];
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        let mut k0 = 0;
        while k0 < n {
            let g = (n - k0).min(group);
            // SAFETY: the caller's guarantees, and g <= group activations.
            unsafe { kernel(panel, &xs[k0..k0 + g], &mut res) };
            for (k, r) in res[..g].iter().enumerate() {
                match &mut out {
                    Out::ByRow(out) => {
                        for (lane, &v) in r.iter().enumerate() {
                            out[(p * PANEL_ROWS + lane) * n + k0 + k] = v;
                        }
                    }
                    Out::ByActivation(runs) => {
                        runs.run(k0 + k)[p * PANEL_ROWS..][..PANEL_ROWS].copy_from_slice(r);
                    }
                }
            }
            k0 += g;
        }
    }
}

/// Stores sixteen-lane results into `res[k]`, one per activation.
macro_rules! store16 {
    ($res:expr, $v:expr) => {
        for (r, v) in $res.iter_mut().zip($v) {
            // SAFETY: `r` is PANEL_ROWS (sixteen) writable f32s.
            unsafe { _mm512_storeu_ps(r.as_mut_ptr(), v) };
        }
    };
}

/// Generates a [`GroupKernel`] over the const-generic AVX-512 kernel `$f` (with one more const
/// argument `$extra`, if given) for the listed activation counts (`1..=MAX_GROUP`).
macro_rules! vnni_group {
    ($name:ident, $f:ident $(, $extra:expr)?; [$($n:literal)*]) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name(
            panel: &[u8],
            xc: &[ActRow<'_>],
            res: &mut [[f32; PANEL_ROWS]; MAX_GROUP],
        ) {
            vnni_group!(@match panel, xc, res, $f $(, $extra)?; [$($n)*]);
        }
    };
    (@match $panel:ident, $xc:ident, $res:ident, $f:ident; [$($n:literal)*]) => {
        match $xc.len() {
            $($n => store16!($res, $f::<$n>($panel, rows::<$n>($xc))),)*
            _ => unreachable!("1..=MAX_GROUP activations"),
        }
    };
    (@match $panel:ident, $xc:ident, $res:ident, $f:ident, $extra:expr; [$($n:literal)*]) => {
        match $xc.len() {
            $($n => store16!($res, $f::<$n, $extra>($panel, rows::<$n>($xc))),)*
            _ => unreachable!("1..=MAX_GROUP activations"),
        }
    };
}

vnni_group!(vnni_q4_0, q4, 0; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q4_1, q4, OFFSET; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q5_0, q4, FIVE; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q5_1, q4, { OFFSET | FIVE }; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q8_0, q8_0; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q4_k, q4_k, false; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q5_k, q4_k, true; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q6_k, q6_k; [1 2 3 4 5 6 7 8]);

/// Generates an AVX2 [`GroupKernel`] over the half-panel kernel `$f` (generic over the
/// activation count and the const parameters `$g`): each half of the panel (rows 0..8,
/// then 8..16) in turn.
macro_rules! avx2_group {
    ($(#[$doc:meta])* $name:ident<$($g:ident: $t:ty),*>, $f:ident; [$($n:literal)*]) => {
        $(#[$doc])*
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name<$(const $g: $t),*>(
            panel: &[u8],
            xc: &[ActRow<'_>],
            res: &mut [[f32; PANEL_ROWS]; MAX_GROUP],
        ) {
            for half in 0..2 {
                avx2_group!(@match $f, [$($g),*], panel, half, xc, res; [$($n)*]);
            }
        }
    };
    (@match $f:ident, $gs:tt, $panel:ident, $half:ident, $xc:ident, $res:ident;
        [$($n:literal)*]) => {
        match $xc.len() {
            $($n => {
                let v = avx2_group!(@path $f, $n, $gs)($panel, $half, rows::<$n>($xc));
                for (r, v) in $res.iter_mut().zip(v) {
                    // SAFETY: lanes 8 * half..8 * half + 8 of `r` are writable.
                    unsafe { _mm256_storeu_ps(r.as_mut_ptr().add(8 * $half), v) };
                }
            })*
            _ => unreachable!("more activations than the kernel takes"),
        }
    };
    (@path $f:ident, $n:literal, [$($g:ident),*]) => {
        $f::<$n $(, $g)*>
    };
}

avx2_group!(
    /// AVX2 Q4_0 / Q4_1 (`OFFSET`) / Q5_0 / Q5_1 (`FIVE`).
    avx2_q4<OFFSET: bool, FIVE: bool>, q4_avx2; [1 2 3 4]
);
avx2_group!(
    /// AVX2 Q4_K / Q5_K (`FIVE`).
    avx2_q4_k<FIVE: bool>, q4_k_avx2; [1 2 3 4]
);
avx2_group!(
    /// AVX2 Q6_K.
    avx2_q6_k<>, q6_k_avx2; [1 2 3 4]
);

#[inline]
fn rows<'a, const N: usize>(xc: &[ActRow<'a>]) -> [&'a [BlockQ8]; N] {
    core::array::from_fn(|k| xc[k].q8)
}

/// Bytes `4j..4j+4` of an activation block in every 32-bit lane.
#[target_feature(enable = "avx512f")]
#[inline]
fn bcast4(qs: &[i8; 32], j: usize) -> __m512i {
    debug_assert!(j < 8);
    // SAFETY: j < 8, so bytes 4j..4j+4 lie inside the 32; the read is unaligned.
    _mm512_set1_epi32(unsafe { qs.as_ptr().add(4 * j).cast::<i32>().read_unaligned() })
}

/// Sixteen fp16 values at `p` as f32.
///
/// # Safety
/// `p` must point to 32 readable bytes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn halves(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 32 readable bytes; the load is unaligned.
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
}

/// One 64-byte quant group of a chunk.
///
/// # Safety
/// `p` must point to 64 readable bytes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn group(p: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(p.cast()) }
}

/// The 32-element panel type with `OFFSET` (Q4_1's and Q5_1's `m`) and `FIVE` (Q5_0's and
/// Q5_1's fifth bit in a `qh` group after the quants).
const fn q4_type(offset: bool, five: bool) -> GgmlType {
    match (offset, five) {
        (false, false) => GgmlType::Q4_0,
        (true, false) => GgmlType::Q4_1,
        (false, true) => GgmlType::Q5_0,
        (true, true) => GgmlType::Q5_1,
    }
}

/// For each of the four bytes of a `qh` lane, that byte in all four bytes of the lane
/// (`vpshufb` indices: byte `b` of 32-bit lane `i` of a 128-bit lane is byte `4 i + b`).
const fn spread_index(b: i32) -> [i32; 4] {
    [
        b * 0x0101_0101,
        (4 + b) * 0x0101_0101,
        (8 + b) * 0x0101_0101,
        (12 + b) * 0x0101_0101,
    ]
}

/// Bit 4 of the bytes of quant group `j` (elements `4j..4j+4` of a 32-element chunk) from the
/// `qh` bits `4j..4j+4` of each lane: `qh` byte `j / 2` spread over the lane's four bytes,
/// tested against bits `[1, 2, 4, 8] << 4 (j % 2)`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn fifth_bits(qh: __m512i, j: usize) -> __mmask64 {
    let [a, b, c, d] = spread_index((j / 2) as i32);
    let spread = _mm512_shuffle_epi8(qh, _mm512_set4_epi32(d, c, b, a));
    let bits = if j.is_multiple_of(2) {
        0x0804_0201
    } else {
        0x8040_2010u32 as i32
    };
    _mm512_test_epi8_mask(spread, _mm512_set1_epi32(bits))
}

/// The unsigned quants of a Q4_0/Q4_1 (Q5_0/Q5_1 with `five`) panel chunk at `p`: vector `j`
/// holds elements `4j..4j+4` of each row (low nibbles for `j < 4`, high ones after), bit 4
/// added from the `qh` group for the 5-bit types.
///
/// # Safety
/// `p` must point to a whole chunk of that layout.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) unsafe fn unpack_q4(p: *const u8, five: bool) -> [__m512i; 8] {
    let mask = _mm512_set1_epi8(0x0F);
    let mut w = [_mm512_setzero_si512(); 8];
    for g in 0..4 {
        // SAFETY: group g of a chunk (4 * GROUP bytes of quants come first).
        let raw = unsafe { group(p.add(g * GROUP)) };
        w[g] = _mm512_and_si512(raw, mask);
        w[4 + g] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
    }
    if five {
        let sixteen = _mm512_set1_epi8(0x10);
        // SAFETY: the qh group follows the four quant groups in the chunk.
        let qh = unsafe { group(p.add(4 * GROUP)) };
        for (j, w) in w.iter_mut().enumerate() {
            *w = _mm512_mask_add_epi8(*w, fifth_bits(qh, j), *w, sixteen);
        }
    }
    w
}

/// [`q4`]'s `KIND` bit for the types with an offset `m` (Q4_1, Q5_1).
const OFFSET: u8 = 1;
/// [`q4`]'s `KIND` bit for the 5-bit types (Q5_0, Q5_1).
const FIVE: u8 = 2;

/// Q4_0, Q4_1, Q5_0 and Q5_1 (same chunk layout up to the offsets and the `qh` group), by
/// `KIND` bits: [`OFFSET`] is the `+ m` (the `accm` term); without it the quants are `q - 8`
/// (`q - 16` with [`FIVE`]), taken back as a chain starting at -8 Σx (-16 Σx).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q4<const N: usize, const KIND: u8>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    let (offset, five) = (KIND & OFFSET != 0, KIND & FIVE != 0);
    let cb = chunk_bytes(q4_type(offset, five));
    // The fp16 halves follow the quant groups and, for the 5-bit types, the qh group.
    let halves_at = if five { 5 * GROUP } else { 4 * GROUP };
    let mut acc = [_mm512_setzero_ps(); N];
    let mut accm = [_mm512_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(cb).enumerate() {
        let p = chunk.as_ptr();
        // SAFETY: `p` is a whole chunk of this layout.
        let w = unsafe { unpack_q4(p, five) };
        // SAFETY: the d halves (and the m halves) lie inside the chunk at `halves_at`.
        let d = unsafe { halves(p.add(halves_at)) };
        let m = if offset {
            // SAFETY: as above.
            unsafe { halves(p.add(halves_at + HALVES)) }
        } else {
            _mm512_setzero_ps()
        };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            // Integer sums are exact, so the two chains may be added in any order.
            let start = match (offset, five) {
                (true, _) => 0,
                (false, false) => -(xb.sum << 3),
                (false, true) => -(xb.sum << 4),
            };
            let mut s0 = _mm512_dpbusd_epi32(_mm512_set1_epi32(start), w[0], bcast4(&xb.qs, 0));
            let mut s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[4], bcast4(&xb.qs, 4));
            for g in 1..4 {
                s0 = _mm512_dpbusd_epi32(s0, w[g], bcast4(&xb.qs, g));
                s1 = _mm512_dpbusd_epi32(s1, w[4 + g], bcast4(&xb.qs, 4 + g));
            }
            let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[k] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[k]);
            if offset {
                accm[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(xb.s), accm[k]);
            }
        }
    }
    if offset {
        for k in 0..N {
            acc[k] = _mm512_add_ps(acc[k], accm[k]);
        }
    }
    acc
}

/// Four 32-element dot chains of one activation block with the eight quant groups `w` of a
/// chunk: elements `0..16` (chain started at `start0`) and `16..32` (at `start1`), exact.
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
fn dot_halves(w: &[__m512i; 8], qs: &[i8; 32], start0: i32, start1: i32) -> (__m512i, __m512i) {
    let mut s0 = _mm512_set1_epi32(start0);
    let mut s1 = _mm512_set1_epi32(start1);
    for g in 0..4 {
        s0 = _mm512_dpbusd_epi32(s0, w[g], bcast4(qs, g));
        s1 = _mm512_dpbusd_epi32(s1, w[4 + g], bcast4(qs, 4 + g));
    }
    (s0, s1)
}

/// Offsets in a Q4_K (Q5_K with `five`) panel chunk of the `qh` groups (Q5_K only), the
/// three packed scale groups, `d` and `dmin`.
pub(super) const fn k_layout(five: bool) -> (usize, usize, usize, usize) {
    if five {
        let ty = GgmlType::Q5_K;
        (
            seg_start(ty, 1),
            seg_start(ty, 2),
            seg_start(ty, 3),
            seg_start(ty, 4),
        )
    } else {
        let ty = GgmlType::Q4_K;
        (0, seg_start(ty, 1), seg_start(ty, 2), seg_start(ty, 3))
    }
}

/// The 6-bit scale and min of sub-block `k` in each lane of a Q4_K/Q5_K chunk whose three
/// packed scale groups are `s`, unpacked as `BlockQ4K::scale_min` does.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn k_scale_min(s: &[__m512i; 3], k: usize) -> (__m512i, __m512i) {
    let six = _mm512_set1_epi32(63);
    let low4 = _mm512_set1_epi32(0x0F);
    let top2 = _mm512_set1_epi32(0x30);
    let sh = |v: __m512i, bits: usize| _mm512_srlv_epi32(v, _mm512_set1_epi32(bits as i32));
    if k < 4 {
        (
            _mm512_and_si512(sh(s[0], 8 * k), six),
            _mm512_and_si512(sh(s[1], 8 * k), six),
        )
    } else {
        let j = 8 * (k - 4);
        (
            _mm512_or_si512(
                _mm512_and_si512(sh(s[2], j), low4),
                _mm512_and_si512(sh(s[0], j + 2), top2),
            ),
            _mm512_or_si512(
                _mm512_and_si512(sh(s[2], j + 4), low4),
                _mm512_and_si512(sh(s[1], j + 2), top2),
            ),
        )
    }
}

/// The unsigned quants of sub-block `k` of a Q4_K (Q5_K with `FIVE`, its `qh` groups at
/// `qh_at`) chunk at `p`: vector `j` holds elements `4j..4j+4` of each row.
///
/// # Safety
/// `p` must point to a whole chunk of that layout; `k < 8`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) unsafe fn unpack_q4_k<const FIVE: bool>(
    p: *const u8,
    qh_at: usize,
    k: usize,
) -> [__m512i; 8] {
    let mask = _mm512_set1_epi8(0x0F);
    let bit4 = _mm512_set1_epi8(0x10);
    let nib = _mm_cvtsi32_si128(4 * (k % 2) as i32);
    let mut w = [_mm512_setzero_si512(); 8];
    for (j, w) in w.iter_mut().enumerate() {
        // SAFETY: quant group 8 (k / 2) + j < 32 of the chunk.
        let raw = unsafe { group(p.add((8 * (k / 2) + j) * GROUP)) };
        *w = _mm512_and_si512(_mm512_srl_epi16(raw, nib), mask);
        if FIVE {
            // SAFETY: qh group j < 8 of the chunk.
            let qh = unsafe { group(p.add(qh_at + j * GROUP)) };
            // Bit k of each byte to bit 4 (16-bit shifts: the mask keeps each byte's own).
            let hb = if k <= 4 {
                _mm512_sll_epi16(qh, _mm_cvtsi32_si128(4 - k as i32))
            } else {
                _mm512_srl_epi16(qh, _mm_cvtsi32_si128(k as i32 - 4))
            };
            *w = _mm512_or_si512(*w, _mm512_and_si512(hb, bit4));
        }
    }
    w
}

/// Q4_K and Q5_K (`FIVE`): per 256-element super-block, 32 quant groups (group `8 (k / 2) + j`
/// holds elements `4j..4j+4` of sub-block `k`, in the low nibbles for even `k`), for Q5_K eight
/// `qh` groups (bit `k` of group `j` is bit 4 of those elements), three groups of packed scales
/// (lane `r` of group `i` is bytes `4i..4i+4` of row `r`'s twelve), then `d` and `dmin`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q4_k<const N: usize, const FIVE: bool>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    let ty = if FIVE { GgmlType::Q5_K } else { GgmlType::Q4_K };
    let cb = chunk_bytes(ty);
    let (qh_at, sc_at, d_at, dmin_at) = k_layout(FIVE);
    let mut acc = [_mm512_setzero_ps(); N];
    let mut accm = [_mm512_setzero_ps(); N];
    for (sb, chunk) in panel.chunks_exact(cb).enumerate() {
        let p = chunk.as_ptr();
        // SAFETY: the three scale groups and the d / dmin halves lie inside the chunk.
        let (s, d, dmin) = unsafe {
            (
                [
                    group(p.add(sc_at)),
                    group(p.add(sc_at + GROUP)),
                    group(p.add(sc_at + 2 * GROUP)),
                ],
                halves(p.add(d_at)),
                halves(p.add(dmin_at)),
            )
        };
        for k in 0..8 {
            let (sc, m) = k_scale_min(&s, k);
            let ds = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
            let dm = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(m));
            // SAFETY: `p` is a whole chunk; k < 8.
            let w = unsafe { unpack_q4_k::<FIVE>(p, qh_at, k) };
            let c = 8 * sb + k;
            for n in 0..N {
                debug_assert!(c < xs[n].len());
                // SAFETY: `check_dots` verified one activation block per 32 elements.
                let xb = unsafe { xs[n].get_unchecked(c) };
                let (a0, a1) = dot_halves(&w, &xb.qs, 0, 0);
                let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1));
                acc[n] = _mm512_fmadd_ps(isum, _mm512_mul_ps(ds, _mm512_set1_ps(xb.d)), acc[n]);
                // fma(-(dmin m), s, accm): the negation is exact.
                accm[n] = _mm512_fnmadd_ps(dm, _mm512_set1_ps(xb.s), accm[n]);
            }
        }
    }
    for n in 0..N {
        acc[n] = _mm512_add_ps(acc[n], accm[n]);
    }
    acc
}

/// Σ of the first sixteen quants of an activation block (exact).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn first_half_sum(qs: &[i8; 32]) -> i32 {
    // SAFETY: 16 readable bytes; the load is unaligned.
    let v = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    // As unsigned bytes x + 128, summed in two groups of eight.
    let sad = _mm_sad_epu8(_mm_xor_si128(v, _mm_set1_epi8(-128)), _mm_setzero_si128());
    _mm_cvtsi128_si32(sad) + _mm_extract_epi16::<4>(sad) - 16 * 128
}

/// Offsets in a Q6_K panel chunk of the `qh` groups, the scale groups and `d`.
pub(super) const Q6_K_QH: usize = seg_start(GgmlType::Q6_K, 1);
pub(super) const Q6_K_SC: usize = seg_start(GgmlType::Q6_K, 2);
pub(super) const Q6_K_D: usize = seg_start(GgmlType::Q6_K, 3);

/// The quants (stored `+32`, so unsigned) of sub-block `k` of a Q6_K chunk at `p`: vector `j`
/// holds elements `4j..4j+4` of each row.
///
/// # Safety
/// `p` must point to a whole Q6_K chunk; `k < 8`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) unsafe fn unpack_q6_k(p: *const u8, k: usize) -> [__m512i; 8] {
    let mask = _mm512_set1_epi8(0x0F);
    let two = _mm512_set1_epi8(0x30);
    let (h, kk) = (k / 4, k % 4);
    let nib = _mm_cvtsi32_si128(4 * (kk / 2) as i32);
    let mut w = [_mm512_setzero_si512(); 8];
    for (j, w) in w.iter_mut().enumerate() {
        // SAFETY: ql group 16 h + 8 (kk % 2) + j < 32 and qh group 8 h + j < 16.
        let (lq, hq) = unsafe {
            (
                group(p.add((16 * h + 8 * (kk % 2) + j) * GROUP)),
                group(p.add(Q6_K_QH + (8 * h + j) * GROUP)),
            )
        };
        // Bits 2 kk, 2 kk + 1 of each qh byte to bits 4, 5 (16-bit shifts; the mask keeps
        // each byte's own bits).
        let hb = if kk <= 2 {
            _mm512_sll_epi16(hq, _mm_cvtsi32_si128(4 - 2 * kk as i32))
        } else {
            _mm512_srli_epi16::<2>(hq)
        };
        *w = _mm512_or_si512(
            _mm512_and_si512(_mm512_srl_epi16(lq, nib), mask),
            _mm512_and_si512(hb, two),
        );
    }
    w
}

/// The two 16-element integer scales of sub-block `k` of a Q6_K chunk at `p`, as floats.
///
/// # Safety
/// As [`unpack_q6_k`].
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn q6_k_scales(p: *const u8, k: usize) -> (__m512, __m512) {
    let (h, kk) = (k / 4, k % 4);
    // SAFETY: scale group 2 h + kk / 2 < 4 of the chunk.
    let sg = unsafe { group(p.add(Q6_K_SC + (2 * h + kk / 2) * GROUP)) };
    // Byte b of each lane, sign-extended.
    let byte = |b: usize| {
        let up = _mm512_sllv_epi32(sg, _mm512_set1_epi32(24 - 8 * b as i32));
        _mm512_cvtepi32_ps(_mm512_srai_epi32::<24>(up))
    };
    (byte(2 * (kk % 2)), byte(2 * (kk % 2) + 1))
}

/// Q6_K: per 256-element super-block, 32 `ql` groups (group `i` is bytes `4i..4i+4` of each
/// row's 128), 16 `qh` groups, four groups of the sixteen i8 scales, then `d`. Sub-block `k`
/// (half `h = k / 4`, `kk = k % 4`) takes elements `4j..4j+4` from the nibble `kk / 2` of `ql`
/// group `16 h + 8 (kk % 2) + j` and bits `2 kk..2 kk + 2` of `qh` group `8 h + j`; its two
/// 16-element scales are bytes `2 (kk % 2)` and `+1` of scale group `2 h + kk / 2`. The quants
/// are stored `+32`, taken back as chains starting at -32 Σx of each 16-element half.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q6_k<const N: usize>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    const CB: usize = chunk_bytes(GgmlType::Q6_K);
    let mut acc = [_mm512_setzero_ps(); N];
    for (sb, chunk) in panel.chunks_exact(CB).enumerate() {
        let p = chunk.as_ptr();
        // SAFETY: the d halves lie inside the chunk.
        let d = unsafe { halves(p.add(Q6_K_D)) };
        for k in 0..8 {
            // SAFETY: `p` is a whole Q6_K chunk; k < 8.
            let ((sc0, sc1), w) = unsafe { (q6_k_scales(p, k), unpack_q6_k(p, k)) };
            let c = 8 * sb + k;
            for n in 0..N {
                debug_assert!(c < xs[n].len());
                // SAFETY: `check_dots` verified one activation block per 32 elements.
                let xb = unsafe { xs[n].get_unchecked(c) };
                let x0 = first_half_sum(&xb.qs);
                let (a0, a1) = dot_halves(&w, &xb.qs, -(x0 << 5), -((xb.sum - x0) << 5));
                // |a| <= 16 * 32 * 127 and |scale| <= 128: each product and the sum stay
                // below 2^24, so these float operations are exact integer arithmetic.
                let isum = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(a1),
                    sc1,
                    _mm512_mul_ps(_mm512_cvtepi32_ps(a0), sc0),
                );
                acc[n] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[n]);
            }
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q8_0<const N: usize>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    const CB: usize = chunk_bytes(GgmlType::Q8_0);
    let mut acc = [_mm512_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(CB).enumerate() {
        let p = chunk.as_ptr();
        let mut w = [_mm512_setzero_si512(); 8];
        for (j, w) in w.iter_mut().enumerate() {
            // SAFETY: group j of a CB-byte chunk (8 * GROUP bytes of quants come first).
            *w = unsafe { group(p.add(j * GROUP)) };
        }
        // SAFETY: the d halves follow the eight groups inside the chunk.
        let d = unsafe { halves(p.add(8 * GROUP)) };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            // The weights are stored +128: Σ (w + 128) x = Σ w x + 128 Σ x, so the chain
            // starts at -128 Σ x (|Σ x| <= 32 * 127: no overflow).
            let mut s0 = _mm512_set1_epi32(-(xb.sum << 7));
            let mut s1 = _mm512_setzero_si512();
            for g in 0..4 {
                s0 = _mm512_dpbusd_epi32(s0, w[g], bcast4(&xb.qs, g));
                s1 = _mm512_dpbusd_epi32(s1, w[4 + g], bcast4(&xb.qs, 4 + g));
            }
            let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[k] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[k]);
        }
    }
    acc
}

/// Bytes `4j..4j+4` of an activation block in every 32-bit lane (AVX2).
#[target_feature(enable = "avx2")]
#[inline]
fn bcast4_256(qs: &[i8; 32], j: usize) -> __m256i {
    debug_assert!(j < 8);
    // SAFETY: j < 8, so bytes 4j..4j+4 lie inside the 32; the read is unaligned.
    _mm256_set1_epi32(unsafe { qs.as_ptr().add(4 * j).cast::<i32>().read_unaligned() })
}

/// Exact `Σ w[k] * x[k]` over each group of four bytes (`w` 4- or 5-bit, `x` signed): the i16
/// pair sums are at most 2 * 31 * 127, far from saturating.
#[target_feature(enable = "avx2")]
#[inline]
fn dot4_avx2(w: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
}

/// Q4_0, Q4_1, Q5_0 or Q5_1 (`OFFSET` and `FIVE` as in [`q4`]) rows `8 * half..8 * half + 8`
/// of a panel, in the panel order of operations.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline(never)]
fn q4_avx2<const N: usize, const OFFSET: bool, const FIVE: bool>(
    panel: &[u8],
    half: usize,
    xs: [&[BlockQ8]; N],
) -> [__m256; N] {
    let cb = chunk_bytes(q4_type(OFFSET, FIVE));
    let halves_at = if FIVE { 5 * GROUP } else { 4 * GROUP };
    debug_assert!(half < 2);
    let mask = _mm256_set1_epi8(0x0F);
    let sixteen = _mm256_set1_epi8(0x10);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut accm = [_mm256_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(cb).enumerate() {
        // Rows 8 * half.. start 32 bytes into each group and 16 bytes into each halves array.
        let p = chunk.as_ptr();
        let mut w = [_mm256_setzero_si256(); 8];
        for g in 0..4 {
            // SAFETY: 32 bytes at offset 32 * half of group g, inside the chunk.
            let raw = unsafe { _mm256_loadu_si256(p.add(g * GROUP + 32 * half).cast()) };
            w[g] = _mm256_and_si256(raw, mask);
            w[4 + g] = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), mask);
        }
        if FIVE {
            // SAFETY: 32 bytes at offset 32 * half of the qh group, inside the chunk.
            let qh = unsafe { _mm256_loadu_si256(p.add(4 * GROUP + 32 * half).cast()) };
            for (j, w) in w.iter_mut().enumerate() {
                // As `fifth_bits`: qh byte j / 2 in every byte of its lane, then bit
                // 4 (j % 2) + b of byte b set or not.
                let [a, b, c, d] = spread_index((j / 2) as i32);
                let idx = _mm256_setr_epi32(a, b, c, d, a, b, c, d);
                let bits = _mm256_set1_epi32(if j.is_multiple_of(2) {
                    0x0804_0201
                } else {
                    0x8040_2010u32 as i32
                });
                let set = _mm256_and_si256(_mm256_shuffle_epi8(qh, idx), bits);
                let hb = _mm256_and_si256(_mm256_cmpeq_epi8(set, bits), sixteen);
                *w = _mm256_or_si256(*w, hb);
            }
        }
        // SAFETY: 16 bytes (eight halves) at offset 16 * half of the d array, inside the chunk.
        let d = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.add(halves_at + 16 * half).cast())) };
        let m = if OFFSET {
            // SAFETY: as above, of the m array (only the offset types have one).
            unsafe {
                _mm256_cvtph_ps(_mm_loadu_si128(
                    p.add(halves_at + HALVES + 16 * half).cast(),
                ))
            }
        } else {
            _mm256_setzero_ps()
        };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            let start = match (OFFSET, FIVE) {
                (true, _) => 0,
                (false, false) => -(xb.sum << 3),
                (false, true) => -(xb.sum << 4),
            };
            let mut s0 = _mm256_add_epi32(
                _mm256_set1_epi32(start),
                dot4_avx2(w[0], bcast4_256(&xb.qs, 0)),
            );
            let mut s1 = dot4_avx2(w[4], bcast4_256(&xb.qs, 4));
            for g in 1..4 {
                s0 = _mm256_add_epi32(s0, dot4_avx2(w[g], bcast4_256(&xb.qs, g)));
                s1 = _mm256_add_epi32(s1, dot4_avx2(w[4 + g], bcast4_256(&xb.qs, 4 + g)));
            }
            let isum = _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1));
            acc[k] = _mm256_fmadd_ps(isum, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[k]);
            if OFFSET {
                accm[k] = _mm256_fmadd_ps(m, _mm256_set1_ps(xb.s), accm[k]);
            }
        }
    }
    if OFFSET {
        for k in 0..N {
            acc[k] = _mm256_add_ps(acc[k], accm[k]);
        }
    }
    acc
}

/// Loads 32 bytes at `at + 32 * half` of a chunk: rows `8 * half..8 * half + 8` of a 64-byte
/// group.
///
/// # Safety
/// `p + at + 32 * half` must point to 32 readable bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn group_half(p: *const u8, at: usize, half: usize) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(p.add(at + 32 * half).cast()) }
}

/// Eight fp16 values at `at + 16 * half` of a chunk as f32.
///
/// # Safety
/// `p + at + 16 * half` must point to 16 readable bytes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn halves_half(p: *const u8, at: usize, half: usize) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes; the load is unaligned.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.add(at + 16 * half).cast()) })
}

/// [`dot_halves`] for eight rows: the exact dots of elements `0..16` (from `start0`) and
/// `16..32` (from `start1`).
#[target_feature(enable = "avx2")]
#[inline]
fn dot_halves_avx2(
    w: &[__m256i; 8],
    qs: &[i8; 32],
    start0: i32,
    start1: i32,
) -> (__m256i, __m256i) {
    let mut s0 = _mm256_set1_epi32(start0);
    let mut s1 = _mm256_set1_epi32(start1);
    for g in 0..4 {
        s0 = _mm256_add_epi32(s0, dot4_avx2(w[g], bcast4_256(qs, g)));
        s1 = _mm256_add_epi32(s1, dot4_avx2(w[4 + g], bcast4_256(qs, 4 + g)));
    }
    (s0, s1)
}

/// Q4_K or Q5_K (`FIVE`) rows `8 * half..8 * half + 8` of a panel: [`q4_k`] on eight rows
/// (the 5-bit pair sums of `vpmaddubsw` are at most 2 * 31 * 127: no saturation).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline(never)]
fn q4_k_avx2<const N: usize, const FIVE: bool>(
    panel: &[u8],
    half: usize,
    xs: [&[BlockQ8]; N],
) -> [__m256; N] {
    let ty = if FIVE { GgmlType::Q5_K } else { GgmlType::Q4_K };
    let cb = chunk_bytes(ty);
    let (qh_at, sc_at, d_at, dmin_at) = if FIVE {
        (
            seg_start(ty, 1),
            seg_start(ty, 2),
            seg_start(ty, 3),
            seg_start(ty, 4),
        )
    } else {
        (0, seg_start(ty, 1), seg_start(ty, 2), seg_start(ty, 3))
    };
    debug_assert!(half < 2);
    let mask = _mm256_set1_epi8(0x0F);
    let six = _mm256_set1_epi32(63);
    let low4 = _mm256_set1_epi32(0x0F);
    let top2 = _mm256_set1_epi32(0x30);
    let bit4 = _mm256_set1_epi8(0x10);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut accm = [_mm256_setzero_ps(); N];
    for (sb, chunk) in panel.chunks_exact(cb).enumerate() {
        let p = chunk.as_ptr();
        // SAFETY: the three scale groups and the d / dmin halves lie inside the chunk.
        let (s0, s1, s2, d, dmin) = unsafe {
            (
                group_half(p, sc_at, half),
                group_half(p, sc_at + GROUP, half),
                group_half(p, sc_at + 2 * GROUP, half),
                halves_half(p, d_at, half),
                halves_half(p, dmin_at, half),
            )
        };
        for k in 0..8 {
            // As in `q4_k`.
            let sh = |v: __m256i, bits: usize| _mm256_srlv_epi32(v, _mm256_set1_epi32(bits as i32));
            let (sc, m) = if k < 4 {
                (
                    _mm256_and_si256(sh(s0, 8 * k), six),
                    _mm256_and_si256(sh(s1, 8 * k), six),
                )
            } else {
                let j = 8 * (k - 4);
                (
                    _mm256_or_si256(
                        _mm256_and_si256(sh(s2, j), low4),
                        _mm256_and_si256(sh(s0, j + 2), top2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(sh(s2, j + 4), low4),
                        _mm256_and_si256(sh(s1, j + 2), top2),
                    ),
                )
            };
            let ds = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
            let dm = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(m));
            let nib = _mm_cvtsi32_si128(4 * (k % 2) as i32);
            let mut w = [_mm256_setzero_si256(); 8];
            for (j, w) in w.iter_mut().enumerate() {
                // SAFETY: quant group 8 (k / 2) + j < 32 of the chunk.
                let raw = unsafe { group_half(p, (8 * (k / 2) + j) * GROUP, half) };
                *w = _mm256_and_si256(_mm256_srl_epi16(raw, nib), mask);
                if FIVE {
                    // SAFETY: qh group j < 8 of the chunk.
                    let qh = unsafe { group_half(p, qh_at + j * GROUP, half) };
                    let hb = if k <= 4 {
                        _mm256_sll_epi16(qh, _mm_cvtsi32_si128(4 - k as i32))
                    } else {
                        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(k as i32 - 4))
                    };
                    *w = _mm256_or_si256(*w, _mm256_and_si256(hb, bit4));
                }
            }
            let c = 8 * sb + k;
            for n in 0..N {
                debug_assert!(c < xs[n].len());
                // SAFETY: `check_dots` verified one activation block per 32 elements.
                let xb = unsafe { xs[n].get_unchecked(c) };
                let (a0, a1) = dot_halves_avx2(&w, &xb.qs, 0, 0);
                let isum = _mm256_cvtepi32_ps(_mm256_add_epi32(a0, a1));
                acc[n] = _mm256_fmadd_ps(isum, _mm256_mul_ps(ds, _mm256_set1_ps(xb.d)), acc[n]);
                accm[n] = _mm256_fnmadd_ps(dm, _mm256_set1_ps(xb.s), accm[n]);
            }
        }
    }
    for n in 0..N {
        acc[n] = _mm256_add_ps(acc[n], accm[n]);
    }
    acc
}

/// Q6_K rows `8 * half..8 * half + 8` of a panel: [`q6_k`] on eight rows (pair sums of
/// `vpmaddubsw` at most 2 * 63 * 127: no saturation).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline(never)]
fn q6_k_avx2<const N: usize>(panel: &[u8], half: usize, xs: [&[BlockQ8]; N]) -> [__m256; N] {
    const TY: GgmlType = GgmlType::Q6_K;
    const CB: usize = chunk_bytes(TY);
    const QH: usize = seg_start(TY, 1);
    const SC: usize = seg_start(TY, 2);
    const D: usize = seg_start(TY, 3);
    debug_assert!(half < 2);
    let mask = _mm256_set1_epi8(0x0F);
    let two = _mm256_set1_epi8(0x30);
    let mut acc = [_mm256_setzero_ps(); N];
    for (sb, chunk) in panel.chunks_exact(CB).enumerate() {
        let p = chunk.as_ptr();
        // SAFETY: the d halves lie inside the chunk.
        let d = unsafe { halves_half(p, D, half) };
        for k in 0..8 {
            let (h, kk) = (k / 4, k % 4);
            // SAFETY: scale group 2 h + kk / 2 < 4 of the chunk.
            let sg = unsafe { group_half(p, SC + (2 * h + kk / 2) * GROUP, half) };
            let byte = |b: usize| {
                let up = _mm256_sllv_epi32(sg, _mm256_set1_epi32(24 - 8 * b as i32));
                _mm256_cvtepi32_ps(_mm256_srai_epi32::<24>(up))
            };
            let (sc0, sc1) = (byte(2 * (kk % 2)), byte(2 * (kk % 2) + 1));
            let nib = _mm_cvtsi32_si128(4 * (kk / 2) as i32);
            let mut w = [_mm256_setzero_si256(); 8];
            for (j, w) in w.iter_mut().enumerate() {
                // SAFETY: ql group 16 h + 8 (kk % 2) + j < 32 and qh group 8 h + j < 16.
                let (lq, hq) = unsafe {
                    (
                        group_half(p, (16 * h + 8 * (kk % 2) + j) * GROUP, half),
                        group_half(p, QH + (8 * h + j) * GROUP, half),
                    )
                };
                let hb = if kk <= 2 {
                    _mm256_sll_epi16(hq, _mm_cvtsi32_si128(4 - 2 * kk as i32))
                } else {
                    _mm256_srli_epi16::<2>(hq)
                };
                *w = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srl_epi16(lq, nib), mask),
                    _mm256_and_si256(hb, two),
                );
            }
            let c = 8 * sb + k;
            for n in 0..N {
                debug_assert!(c < xs[n].len());
                // SAFETY: `check_dots` verified one activation block per 32 elements.
                let xb = unsafe { xs[n].get_unchecked(c) };
                let x0 = first_half_sum(&xb.qs);
                let (a0, a1) = dot_halves_avx2(&w, &xb.qs, -(x0 << 5), -((xb.sum - x0) << 5));
                // Exact, as in `q6_k`.
                let isum = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(a1),
                    sc1,
                    _mm256_mul_ps(_mm256_cvtepi32_ps(a0), sc0),
                );
                acc[n] = _mm256_fmadd_ps(isum, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[n]);
            }
        }
    }
    acc
}
