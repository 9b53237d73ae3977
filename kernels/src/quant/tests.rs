//! Tests for the quant module. All random data comes from seeded ChaCha generators.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, QK_K};
use super::*;

/// Every supported block-quantized type.
fn quant_types() -> impl Iterator<Item = GgmlType> {
    GgmlType::ALL.into_iter().filter(|t| t.block_elems() > 1)
}

/// Every level this CPU can run, scalar first.
fn levels() -> Vec<Level> {
    Level::supported()
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; u1 in (0, 1].
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Test data: gaussian values with a random scale per 32 elements, a few outliers, and some
/// special 32-element stretches (all zero, constant, all positive, one spike).
pub(super) fn test_row(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    for start in (0..n).step_by(32) {
        let len = 32.min(n - start);
        let scale = 10f32.powf(rng.random_range(-2.0..1.0));
        let kind = rng.random_range(0..16);
        for k in 0..len {
            let g = gauss(rng) * scale;
            v.push(match kind {
                0 => 0.0,
                1 => 0.75 * scale,
                2 => g.abs() + scale,
                3 if k == 5 => 30.0 * scale,
                3 => g * 0.1,
                _ if rng.random_range(0..64) == 0 => g * 8.0,
                _ => g,
            });
        }
    }
    v
}

pub(super) fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    quantize_row(ty, x, &mut out);
    out
}

pub(super) fn dequantized(ty: GgmlType, w: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n];
    dequantize_row(ty, w, &mut out);
    out
}

pub(super) fn act_q8(x: &[f32]) -> Vec<BlockQ8> {
    let mut q = vec![BlockQ8::default(); x.len() / 32];
    quantize_act_q8(x, &mut q);
    q
}

/// Each row's Q8 blocks when `ty` takes Q8 activations, else empty.
fn q8_rows(ty: GgmlType, xs: &[Vec<f32>]) -> Vec<Vec<BlockQ8>> {
    xs.iter()
        .map(|x| {
            if ty.act_kind() == ActKind::Q8 {
                act_q8(x)
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// Activation rows over `xs` and their Q8 blocks.
pub(super) fn act_rows<'a>(xs: &'a [Vec<f32>], q8s: &'a [Vec<BlockQ8>]) -> Vec<ActRow<'a>> {
    xs.iter()
        .zip(q8s)
        .map(|(x, q)| ActRow { f32: x, q8: q })
        .collect()
}

fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

// ---------------------------------------------------------------------------------------------
// Type table.

#[test]
fn ids_names_and_sizes() {
    let table = [
        (GgmlType::F32, 0, "F32", 1, 4),
        (GgmlType::F16, 1, "F16", 1, 2),
        (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
        (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
        (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
        (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
        (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
        (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
        (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
        (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
        (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
        (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
        (GgmlType::BF16, 30, "BF16", 1, 2),
    ];
    for (ty, id, name, elems, bytes) in table {
        assert_eq!(ty.id(), id);
        assert_eq!(GgmlType::from_id(id), Some(ty));
        assert_eq!(ty.name(), name);
        assert_eq!(ty.to_string(), name);
        assert_eq!(ggml_type_name(id), Some(name));
        assert_eq!(ty.block_elems(), elems);
        assert_eq!(ty.block_bytes(), bytes);
        let expected_kind = if elems == 1 {
            ActKind::F32
        } else {
            ActKind::Q8
        };
        assert_eq!(ty.act_kind(), expected_kind);
    }
    assert_eq!(GgmlType::ALL.len(), table.len());
    for id in [4, 5, 9, 15, 16, 23, 24, 28, 29, 31, 39, 40, 1000, u32::MAX] {
        assert_eq!(GgmlType::from_id(id), None, "id {id}");
    }
    assert_eq!(ggml_type_name(6), Some("Q5_0"));
    assert_eq!(ggml_type_name(7), Some("Q5_1"));
    assert_eq!(ggml_type_name(9), Some("Q8_1"));
    assert_eq!(ggml_type_name(10), Some("Q2_K"));
    assert_eq!(ggml_type_name(11), Some("Q3_K"));
    assert_eq!(ggml_type_name(13), Some("Q5_K"));
    assert_eq!(ggml_type_name(15), Some("Q8_K"));
    assert_eq!(ggml_type_name(16), Some("IQ2_XXS"));
    assert_eq!(ggml_type_name(24), Some("I8"));
    assert_eq!(ggml_type_name(28), Some("F64"));
    assert_eq!(ggml_type_name(39), Some("MXFP4"));
    assert_eq!(ggml_type_name(40), None);
    assert_eq!(ggml_type_name(u32::MAX), None);
}

#[test]
fn all_is_in_id_order_and_the_tables_name_each_type() {
    // Each field holds its own type, so `get` must hand back what it is asked for.
    let names = dispatch::PerType {
        f32: GgmlType::F32,
        f16: GgmlType::F16,
        bf16: GgmlType::BF16,
        q4_0: GgmlType::Q4_0,
        q4_1: GgmlType::Q4_1,
        q5_0: GgmlType::Q5_0,
        q5_1: GgmlType::Q5_1,
        q8_0: GgmlType::Q8_0,
        q2_k: GgmlType::Q2_K,
        q3_k: GgmlType::Q3_K,
        q4_k: GgmlType::Q4_K,
        q5_k: GgmlType::Q5_K,
        q6_k: GgmlType::Q6_K,
    };
    for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
        assert_eq!(names.get(ty), ty, "{ty}");
        if i > 0 {
            assert!(GgmlType::ALL[i - 1].id() < ty.id(), "{ty}");
        }
    }
    assert_eq!(N_TYPES, GgmlType::ALL.len());
}

#[test]
fn row_bytes() {
    assert_eq!(GgmlType::F32.row_bytes(7), Some(28));
    assert_eq!(GgmlType::F16.row_bytes(7), Some(14));
    assert_eq!(GgmlType::BF16.row_bytes(0), Some(0));
    assert_eq!(GgmlType::Q4_0.row_bytes(64), Some(36));
    assert_eq!(GgmlType::Q4_1.row_bytes(576), Some(360));
    assert_eq!(GgmlType::Q4_1.row_bytes(1536), Some(960));
    assert_eq!(GgmlType::Q4_1.row_bytes(33), None);
    assert_eq!(GgmlType::Q5_0.row_bytes(64), Some(44));
    assert_eq!(GgmlType::Q5_0.row_bytes(48), None);
    assert_eq!(GgmlType::Q5_1.row_bytes(96), Some(72));
    assert_eq!(GgmlType::Q8_0.row_bytes(576), Some(612));
    assert_eq!(GgmlType::Q2_K.row_bytes(512), Some(168));
    assert_eq!(GgmlType::Q3_K.row_bytes(768), Some(330));
    assert_eq!(GgmlType::Q3_K.row_bytes(32), None);
    assert_eq!(GgmlType::Q5_K.row_bytes(256), Some(176));
    assert_eq!(GgmlType::Q4_K.row_bytes(512), Some(288));
    assert_eq!(GgmlType::Q4_K.row_bytes(576), None);
    assert_eq!(GgmlType::Q6_K.row_bytes(256), Some(210));
    assert_eq!(GgmlType::Q6_K.row_bytes(100), None);
    assert_eq!(GgmlType::F32.row_bytes(usize::MAX), None);
}

#[test]
fn simd_level_is_fixed_and_named() {
    let level = simd_level();
    assert!(["avx512vnni", "avx2", "scalar"].contains(&level));
    assert_eq!(simd_level(), level);
    assert_eq!(simd_level_enum().name(), level);
    eprintln!("simd_level = {level}");
}

// ---------------------------------------------------------------------------------------------
// Known blocks.

#[test]
fn dequant_known_float() {
    let mut src = Vec::new();
    for v in [1.5f32, -2.0, 0.0, 1e-30] {
        src.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(dequantized(GgmlType::F32, &src, 4), [1.5, -2.0, 0.0, 1e-30]);

    let f16_bits: [u16; 5] = [0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001];
    let src: Vec<u8> = f16_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let expected = [1.0, -2.0, 0.333_251_95, 65504.0, 2f32.powi(-24)];
    assert_eq!(dequantized(GgmlType::F16, &src, 5), expected);

    let bf16_bits: [u16; 3] = [0x3F80, 0xC040, 0x4049];
    let src: Vec<u8> = bf16_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    assert_eq!(dequantized(GgmlType::BF16, &src, 3), [1.0, -3.0, 3.140625]);
}

#[test]
fn dequant_known_q4_0() {
    // d = 0.5 (fp16 0x3800); qs[j] = j | (15 - j) << 4.
    let mut src = vec![0x00, 0x38];
    src.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let y = dequantized(GgmlType::Q4_0, &src, 32);
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5, "elem {j}");
        assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5, "elem {}", j + 16);
    }
}

#[test]
fn dequant_known_q4_1_two_blocks() {
    // Block 0: d = 0.25 (0x3400), m = -1 (0xBC00); block 1: d = 2 (0x4000), m = 0.5 (0x3800).
    let mut src = vec![0x00, 0x34, 0x00, 0xBC];
    src.extend((0..16u8).map(|j| j | (((3 * j) % 16) << 4)));
    src.extend([0x00, 0x40, 0x00, 0x38]);
    src.extend((0..16u8).map(|j| (15 - j) | (j << 4)));
    let y = dequantized(GgmlType::Q4_1, &src, 64);
    for j in 0..16 {
        let jf = j as f32;
        assert_eq!(y[j], jf * 0.25 - 1.0);
        assert_eq!(y[j + 16], ((3 * j) % 16) as f32 * 0.25 - 1.0);
        assert_eq!(y[32 + j], (15.0 - jf) * 2.0 + 0.5);
        assert_eq!(y[48 + j], jf * 2.0 + 0.5);
    }
}

#[test]
fn dequant_known_q8_0() {
    // d = 2 (0x4000); qs[j] = 8 j - 128.
    let mut src = vec![0x00, 0x40];
    src.extend((0..32i32).map(|j| (8 * j - 128) as i8 as u8));
    let y = dequantized(GgmlType::Q8_0, &src, 32);
    for (j, v) in y.iter().enumerate() {
        assert_eq!(*v, 2.0 * (8 * j as i32 - 128) as f32);
    }
}

#[test]
fn dequant_known_q4_k() {
    let sc = [1u8, 2, 3, 63, 17, 33, 48, 5];
    let m = [0u8, 1, 40, 2, 20, 63, 7, 16];
    // Packed by hand (see get_scale_min_k4 in ggml).
    let scales = [65u8, 130, 195, 63, 64, 193, 40, 66, 65, 241, 112, 5];
    assert_eq!(BlockQ4K::pack_scale_min(&sc, &m), scales);
    let mut src = vec![0x00, 0x3C, 0x00, 0x38]; // d = 1, dmin = 0.5
    src.extend_from_slice(&scales);
    src.extend((0..128usize).map(|i| ((i % 16) | ((15 - i % 16) << 4)) as u8));
    assert_eq!(src.len(), 144);
    let y = dequantized(GgmlType::Q4_K, &src, 256);
    for g in 0..4 {
        for l in 0..32 {
            let q = src[16 + 32 * g + l];
            let lo = f32::from(sc[2 * g]) * f32::from(q & 15) - 0.5 * f32::from(m[2 * g]);
            let hi = f32::from(sc[2 * g + 1]) * f32::from(q >> 4) - 0.5 * f32::from(m[2 * g + 1]);
            assert_eq!(y[64 * g + l], lo, "elem {}", 64 * g + l);
            assert_eq!(y[64 * g + 32 + l], hi, "elem {}", 64 * g + 32 + l);
        }
    }
}

#[test]
fn dequant_known_q6_k() {
    // ql[i] = i, qh[i] = 7 i (mod 256), scales[i] = i - 8, d = 0.5.
    let mut src: Vec<u8> = (0..128u32).map(|i| i as u8).collect();
    src.extend((0..64u32).map(|i| (7 * i) as u8));
    src.extend((0..16i32).map(|i| (i - 8) as i8 as u8));
    src.extend([0x00, 0x38]);
    assert_eq!(src.len(), 210);
    let y = dequantized(GgmlType::Q6_K, &src, 256);
    // Hand-computed from ggml's dequantize_row_q6_K:
    // 0: ql[0]&15=0, qh[0]&3=0 -> q=-32, sc[0]=-8 -> 0.5*-8*-32.
    assert_eq!(y[0], 128.0);
    // 33: ql[33]&15=1, (qh[1]=7)>>2&3=1 -> q=17-32=-15, sc[2]=-6.
    assert_eq!(y[33], 45.0);
    // 81: ql[17]>>4=1, (qh[17]=119)>>4&3=3 -> q=49-32=17, sc[5]=-3.
    assert_eq!(y[81], -25.5);
    // 128: ql[64]&15=0, qh[32]=224 &3=0 -> q=-32, sc[8]=0.
    assert_eq!(y[128], 0.0);
    // 165: ql[101]&15=5, (qh[37]=3)>>2&3=0 -> q=-27, sc[10]=2.
    assert_eq!(y[165], -27.0);
    // 255: ql[127]>>4=7, (qh[63]=185)>>6=2 -> q=39-32=7, sc[15]=7.
    assert_eq!(y[255], 24.5);
    // And every element against a direct transcription of the layout.
    for (e, &v) in y.iter().enumerate() {
        let (h, r) = (e / 128, e % 128);
        let (kk, l) = (r / 32, r % 32);
        let ql = src[64 * h + l + 32 * (kk % 2)];
        let lo = if kk >= 2 { ql >> 4 } else { ql & 15 };
        let hi = (src[128 + 32 * h + l] >> (2 * kk)) & 3;
        let q = i32::from(lo | (hi << 4)) - 32;
        let sc = src[192 + 8 * h + 2 * kk + l / 16] as i8;
        assert_eq!(v, 0.5 * f32::from(sc) * q as f32, "elem {e}");
    }
}

#[test]
fn dequant_known_q5_0() {
    // d = 0.5; qs[j] = j | (15 - j) << 4; bit 4 of element i set when i % 3 == 0.
    let qh: u32 = (0..32).filter(|i| i % 3 == 0).map(|i| 1u32 << i).sum();
    let mut src = vec![0x00, 0x38];
    src.extend(qh.to_le_bytes());
    src.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let y = dequantized(GgmlType::Q5_0, &src, 32);
    // 0: nibble 0 | 16 -> 0; 1: nibble 1 -> -15; 16: nibble 15 -> -1; 18: 13 | 16 -> 13.
    assert_eq!([y[0], y[1], y[16], y[18]], [0.0, -7.5, -0.5, 6.5]);
    for (i, &v) in y.iter().enumerate() {
        let nib = if i < 16 { i } else { 15 - (i - 16) } as i32;
        let q = nib + if i % 3 == 0 { 16 } else { 0 };
        assert_eq!(v, 0.5 * (q - 16) as f32, "elem {i}");
    }
}

#[test]
#[should_panic(expected = "Q4_1 row of 32 elements has 20 bytes, got 18")]
fn dequant_rejects_wrong_length() {
    let mut dst = [0.0f32; 32];
    dequantize_row(GgmlType::Q4_1, &[0u8; 18], &mut dst);
}

#[test]
#[should_panic(expected = "64 elements, but 32 activations in q8 blocks")]
fn vec_dot_rejects_wrong_activation_length() {
    let w = [0u8; 40];
    let q8 = [BlockQ8::default(); 1];
    vec_dot(GgmlType::Q4_1, &w, &ActRow { f32: &[], q8: &q8 });
}

// ---------------------------------------------------------------------------------------------
// Round trips.

#[test]
fn quantize_act_q8_properties() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = test_row(&mut rng, 4096);
    let q = act_q8(&x);
    assert_eq!(q.len(), 128);
    let again = act_q8(&x);
    for (b, (xs, b2)) in q.iter().zip(x.chunks(32).zip(&again)) {
        let amax = xs.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert_eq!(b.d, half::f16::from_f32(amax / 127.0).to_f32());
        assert!(b.qs.iter().all(|&v| v != -128));
        let sum: i32 = b.qs.iter().map(|&v| i32::from(v)).sum();
        assert_eq!(b.s, b.d * sum as f32);
        for (&v, &qv) in xs.iter().zip(&b.qs) {
            // Half a step, plus the fp16 rounding of the scale (2^-11 relative) times 127.
            assert!((v - b.d * f32::from(qv)).abs() <= 0.5001 * b.d + 127.0 * b.d / 2048.0 + 1e-30);
        }
        assert_eq!((b.d, b.s, b.qs), (b2.d, b2.s, b2.qs));
    }
}

/// The detected level's activation quantizer writes the reference's bytes: random rows, rows
/// whose scale is exactly 1 (so quants land on exact halves, rounded away from zero), and
/// NaN, infinities, signed zeros and all-zero blocks.
#[test]
fn quantize_act_q8_matches_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut rows = vec![test_row(&mut rng, 1024)];
    let halves: Vec<f32> = (0..32)
        .map(|i| match i {
            0 => 127.0,
            1 => -126.5,
            2 => 0.49999997,
            3 => -0.49999997,
            _ => (i as f32 - 16.0) * 3.5 + 0.5,
        })
        .collect();
    rows.push(halves);
    let mut special = vec![0.0f32; 32 * 6];
    special[0] = f32::NAN;
    special[1] = 3.0;
    special[32] = f32::INFINITY;
    special[33] = -2.0;
    special[64] = f32::NEG_INFINITY;
    special[96] = -0.0;
    special[128] = 1e-40; // subnormal scale
    special[129] = -1e-42;
    special[160..192].fill(-5.5);
    rows.push(special);
    for x in rows {
        let mut got = vec![BlockQ8::default(); x.len() / 32];
        let mut want = got.clone();
        quantize_act_q8(&x, &mut got);
        reference::quantize_act(&x, &mut want);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                (g.d.to_bits(), g.s.to_bits(), g.sum, g.qs),
                (w.d.to_bits(), w.s.to_bits(), w.sum, w.qs),
                "block {i} of {:?}",
                &x[i * 32..i * 32 + 4]
            );
        }
    }
}

/// Relative RMS error bound and per-element check for each type's round trip.
#[test]
fn round_trip_error_bounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 256 * 64;
    let x = test_row(&mut rng, n);
    let mut g = vec![0.0f32; n];
    for v in &mut g {
        *v = gauss(&mut rng);
    }
    for ty in GgmlType::ALL {
        let w = quantized(ty, &x);
        let y = dequantized(ty, &w, n);
        check_elementwise(ty, &w, &x, &y);
        // Relative RMS error on plain gaussian data.
        let wg = quantized(ty, &g);
        let yg = dequantized(ty, &wg, n);
        check_elementwise(ty, &wg, &g, &yg);
        let err: f64 = g
            .iter()
            .zip(&yg)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let sig: f64 = g.iter().map(|a| f64::from(*a).powi(2)).sum();
        let rel = (err / sig).sqrt();
        let bound = match ty {
            GgmlType::F32 => 0.0,
            GgmlType::F16 => 3.5e-4,
            GgmlType::BF16 => 3e-3,
            GgmlType::Q8_0 => 0.01,
            GgmlType::Q6_K => 0.04,
            GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5_K => 0.08,
            GgmlType::Q3_K => 0.3,
            GgmlType::Q2_K => 0.6,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K => 0.15,
        };
        eprintln!("{ty}: relative RMS round-trip error {rel:.5} (bound {bound})");
        assert!(rel <= bound, "{ty}: relative RMS error {rel} > {bound}");
    }
}

/// Per-element bounds that follow from each quantizer's construction.
fn check_elementwise(ty: GgmlType, w: &[u8], x: &[f32], y: &[f32]) {
    let amax_of = |s: &[f32]| s.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    match ty {
        GgmlType::F32 => assert_eq!(x, y),
        GgmlType::F16 | GgmlType::BF16 => {
            let rel = if ty == GgmlType::F16 {
                2f32.powi(-11)
            } else {
                2f32.powi(-8)
            };
            for (a, b) in x.iter().zip(y) {
                // fp16 subnormals have an absolute step of 2^-24.
                assert!(
                    (a - b).abs() <= a.abs() * rel + 2f32.powi(-25),
                    "{ty}: {a} -> {b}"
                );
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
            let bb = ty.block_bytes();
            for ((blk, xs), ys) in w.chunks(bb).zip(x.chunks(32)).zip(y.chunks(32)) {
                let d = blocks::f16_le([blk[0], blk[1]]).abs();
                let amax = amax_of(xs);
                let bound = match ty {
                    // The extreme maps to -8 d (up to d's fp16 rounding); the opposite side may
                    // clip by one step.
                    GgmlType::Q4_0 => (1.0 + 8.0 * 2f32.powi(-11)) * d * 1.0001,
                    GgmlType::Q5_0 => (1.0 + 16.0 * 2f32.powi(-11)) * d * 1.0001,
                    _ => 0.5 * d + 2e-3 * amax,
                } + 1e-30;
                for (a, b) in xs.iter().zip(ys) {
                    assert!(
                        (a - b).abs() <= bound,
                        "{ty}: {a} -> {b} (d {d}, bound {bound})"
                    );
                }
            }
        }
        GgmlType::Q2_K | GgmlType::Q4_K | GgmlType::Q5_K => {
            // Sub-block length, quant levels - 1, largest integer scale.
            let (sub, levels, smax) = match ty {
                GgmlType::Q2_K => (16, 3.0, 15.0),
                GgmlType::Q4_K => (32, 15.0, 63.0),
                _ => (32, 31.0, 63.0),
            };
            let bb = ty.block_bytes();
            for ((blk, xs), ys) in w.chunks(bb).zip(x.chunks(256)).zip(y.chunks(256)) {
                let step_of = |j: usize| match ty {
                    GgmlType::Q2_K => {
                        let b = blocks::as_blocks::<BlockQ2K>(blk)[0];
                        blocks::f16_le(b.d) * f32::from(b.scales[j] & 0x0F)
                    }
                    GgmlType::Q4_K => {
                        let b = blocks::as_blocks::<BlockQ4K>(blk)[0];
                        blocks::f16_le(b.d) * f32::from(b.scale_min(j).0)
                    }
                    _ => {
                        let b = blocks::as_blocks::<BlockQ5K>(blk)[0];
                        blocks::f16_le(b.d) * f32::from(b.scale_min(j).0)
                    }
                };
                let r_all = xs.chunks(sub).fold(0.0f32, |a, s| a.max(range_q4k(s)));
                for (j, (xs, ys)) in xs.chunks(sub).zip(ys.chunks(sub)).enumerate() {
                    let step = step_of(j);
                    // The step is close to optimal for the sub-block range (off by at most the
                    // rounding up of the scale and of the min)...
                    let best = range_q4k(xs) / levels;
                    assert!(
                        step <= best + 2.1 * r_all / (levels * smax) + 1e-30,
                        "{ty}: step {step} vs {best}"
                    );
                    // ...and nothing is clipped.
                    for (a, v) in xs.iter().zip(ys) {
                        assert!(
                            (a - v).abs() <= 0.5 * step * 1.001 + 1e-6 * r_all + 1e-30,
                            "{ty}: {a} -> {v}"
                        );
                    }
                }
            }
        }
        GgmlType::Q3_K => {
            for ((blk, xs), ys) in w.chunks(110).zip(x.chunks(256)).zip(y.chunks(256)) {
                let b = blocks::as_blocks::<BlockQ3K>(blk)[0];
                let d = blocks::f16_le(b.d);
                let a_all = amax_of(xs);
                for (j, (xs, ys)) in xs.chunks(16).zip(ys.chunks(16)).enumerate() {
                    let step = (d * f32::from(b.scale(j))).abs();
                    let best = amax_of(xs) / 4.0;
                    assert!(
                        step <= best + 1.01 * a_all / (4.0 * 31.0) + 1e-30,
                        "{ty}: step {step} vs {best}"
                    );
                    // The extreme maps to -4 steps; the other side may clip by one step.
                    for (a, v) in xs.iter().zip(ys) {
                        assert!(
                            (a - v).abs() <= step * 1.001 + 1e-6 * a_all + 1e-30,
                            "{ty}: {a} -> {v}"
                        );
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            for ((blk, xs), ys) in w.chunks(210).zip(x.chunks(256)).zip(y.chunks(256)) {
                let d = blocks::f16_le([blk[208], blk[209]]);
                let a_all = amax_of(xs);
                for (j, (xs, ys)) in xs.chunks(16).zip(ys.chunks(16)).enumerate() {
                    let step = (d * f32::from(blk[192 + j] as i8)).abs();
                    let best = amax_of(xs) / 32.0;
                    assert!(
                        step <= best + 1.01 * a_all / (32.0 * 127.0) + 1e-30,
                        "{ty}: step {step} vs {best}"
                    );
                    for (a, v) in xs.iter().zip(ys) {
                        assert!(
                            (a - v).abs() <= step * 1.001 + 1e-6 * a_all + 1e-30,
                            "{ty}: {a} -> {v}"
                        );
                    }
                }
            }
        }
    }
}

/// The span a Q4_K sub-block must cover: `[min(lo, 0), hi]`.
fn range_q4k(s: &[f32]) -> f32 {
    let lo = s.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
    let hi = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (hi - lo).max(0.0)
}

#[test]
fn quantize_is_deterministic() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = test_row(&mut rng, 512);
    for ty in GgmlType::ALL {
        assert_eq!(quantized(ty, &x), quantized(ty, &x), "{ty}");
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products.

pub(super) fn lengths(ty: GgmlType) -> &'static [usize] {
    match ty.block_elems() {
        1 => &[1, 3, 7, 8, 9, 31, 32, 33, 40, 64, 100, 576, 1000, 1536],
        32 => &[32, 64, 96, 160, 576, 1536, 4096],
        _ => &[256, 512, 768, 2048],
    }
}

/// Kernel tolerance, relative to `Σ |w_i x_i|`, against the f64 reference on the activation the
/// kernel actually sees (dequantized q8 for quant types, the f32 activation otherwise).
pub(super) const KERNEL_RTOL: f64 = 1e-5;
/// Against the f64 reference on the *unquantized* activation, quant types may also be off by
/// the activation's own rounding: at most `Σ |w_i| d_i / 2` (`d_i` the scale of x_i's block).
fn act_rounding_bound(w: &[f32], q8: &[BlockQ8]) -> f64 {
    w.chunks(32)
        .zip(q8)
        // Half a quantization step, plus the scale's fp16 rounding (2^-11 relative) over |q| ≤ 127.
        .map(|(ws, b)| {
            ws.iter().map(|v| f64::from(v.abs())).sum::<f64>()
                * f64::from(b.d)
                * (0.5 + 127.0 / 2048.0)
        })
        .sum()
}

pub(super) fn abs_dot(w: &[f32], x: &[f32]) -> f64 {
    w.iter()
        .zip(x)
        .map(|(a, b)| f64::from(a.abs()) * f64::from(b.abs()))
        .sum()
}

pub(super) fn dequant_q8(q: &[BlockQ8]) -> Vec<f32> {
    q.iter()
        .flat_map(|b| b.qs.map(|v| b.d * f32::from(v)))
        .collect()
}

#[test]
fn vec_dot_matches_reference_all_levels() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut worst = vec![(0.0f64, 0.0f64); GgmlType::ALL.len()];
    for (ti, ty) in GgmlType::ALL.into_iter().enumerate() {
        for &n in lengths(ty) {
            for _rep in 0..4 {
                let w = quantized(ty, &test_row(&mut rng, n));
                let wd = dequantized(ty, &w, n);
                let x = test_row(&mut rng, n);
                let q8 = if ty.act_kind() == ActKind::Q8 {
                    act_q8(&x)
                } else {
                    Vec::new()
                };
                let act = ActRow { f32: &x, q8: &q8 };
                // What the kernel sees.
                let xk = if q8.is_empty() {
                    x.clone()
                } else {
                    dequant_q8(&q8)
                };
                let ref_k = f64::from(vec_dot_reference(ty, &w, &xk));
                let ref_x = f64::from(vec_dot_reference(ty, &w, &x));
                let mag_k = abs_dot(&wd, &xk).max(1e-30);
                let act_bound =
                    act_rounding_bound(&wd, &q8) * (1.0 + 1e-4) + 2.0 * KERNEL_RTOL * mag_k;
                let mut got = vec![vec_dot(ty, &w, &act)];
                for level in levels() {
                    let mut o = [0.0f32];
                    vec_dot_multi_at(level, ty, &w, &[act], &mut o);
                    got.push(o[0]);
                }
                for (k, &g) in got.iter().enumerate() {
                    let g = f64::from(g);
                    let ek = (g - ref_k).abs() / mag_k;
                    let ex = (g - ref_x).abs() / act_bound.max(1e-30);
                    assert!(
                        ek <= KERNEL_RTOL,
                        "{ty} n={n} path {k}: kernel error {ek:e}"
                    );
                    assert!(
                        ex <= 1.0,
                        "{ty} n={n} path {k}: error vs f32 activation {ex} of bound"
                    );
                    worst[ti].0 = worst[ti].0.max(ek);
                    worst[ti].1 = worst[ti].1.max(ex);
                }
            }
        }
    }
    for (ty, (ek, ex)) in GgmlType::ALL.into_iter().zip(worst) {
        eprintln!("{ty}: worst kernel rel. error {ek:.2e}; vs f32 activation {ex:.3} of its bound");
    }
}

#[test]
fn vec_dot_uses_the_detected_level() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for ty in GgmlType::ALL {
        let n = lengths(ty)[lengths(ty).len() / 2];
        let w = quantized(ty, &test_row(&mut rng, n));
        let x = test_row(&mut rng, n);
        let q8 = if ty.act_kind() == ActKind::Q8 {
            act_q8(&x)
        } else {
            Vec::new()
        };
        let act = ActRow { f32: &x, q8: &q8 };
        let mut o = [0.0f32];
        vec_dot_multi_at(simd_level_enum(), ty, &w, &[act], &mut o);
        assert_eq!(vec_dot(ty, &w, &act).to_bits(), o[0].to_bits(), "{ty}");
    }
}

/// `blocks` activation blocks of alternating -127 and 127 (d = 1), the largest magnitudes
/// [`quantize_act_q8`] produces.
pub(super) fn extreme_q8(blocks: usize) -> Vec<BlockQ8> {
    let mut q8 = vec![BlockQ8::default(); blocks];
    for (b, blk) in q8.iter_mut().enumerate() {
        blk.d = 1.0;
        for (j, q) in blk.qs.iter_mut().enumerate() {
            *q = if (j + b) % 2 == 0 { -127 } else { 127 };
        }
        blk.sum = blk.qs.iter().map(|&v| i32::from(v)).sum();
        blk.s = blk.sum as f32;
    }
    q8
}

/// Extreme quants: Q8_0 weights of -128/127 and activations of ±127 hit the largest pair sums
/// (2 * 128 * 127) the AVX2 path must not saturate on.
#[test]
fn vec_dot_extreme_quants_are_exact() {
    let n = 64;
    let mut w = Vec::new();
    for b in 0..2 {
        w.extend(f16_bytes(1.0));
        w.extend((0..32).map(|j| if (j + b) % 3 == 0 { 0x80u8 } else { 0x7F }));
    }
    let q8 = extreme_q8(2);
    let x = dequant_q8(&q8);
    let expected = vec_dot_reference(GgmlType::Q8_0, &w, &x);
    for level in levels() {
        let mut o = [0.0f32];
        vec_dot_multi_at(
            level,
            GgmlType::Q8_0,
            &w,
            &[ActRow { f32: &x, q8: &q8 }],
            &mut o,
        );
        assert_eq!(o[0], expected, "{level:?}");
    }
    assert_eq!(x.len(), n);
}

#[test]
fn vec_dot_multi_is_bit_identical_to_vec_dot() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for ty in GgmlType::ALL {
        let ls = lengths(ty);
        for &n in [ls[0], ls[2], ls[ls.len() - 1]].iter() {
            let w = quantized(ty, &test_row(&mut rng, n));
            let xs: Vec<Vec<f32>> = (0..20).map(|_| test_row(&mut rng, n)).collect();
            let q8s = q8_rows(ty, &xs);
            let acts = act_rows(&xs, &q8s);
            for level in levels() {
                let single: Vec<u32> = acts
                    .iter()
                    .map(|a| {
                        let mut o = [0.0f32];
                        vec_dot_multi_at(level, ty, &w, core::slice::from_ref(a), &mut o);
                        o[0].to_bits()
                    })
                    .collect();
                for count in 1..=20 {
                    // Different windows, so each activation is seen at different batch positions.
                    for start in [0, 20 - count] {
                        let batch = &acts[start..start + count];
                        let mut out = vec![f32::NAN; count];
                        vec_dot_multi_at(level, ty, &w, batch, &mut out);
                        for (k, o) in out.iter().enumerate() {
                            assert_eq!(
                                o.to_bits(),
                                single[start + k],
                                "{ty} n={n} {level:?} count={count} start={start} k={k}"
                            );
                        }
                    }
                }
            }
            // The public entry points agree too.
            let mut out = vec![0.0f32; acts.len()];
            vec_dot_multi(ty, &w, &acts, &mut out);
            for (a, o) in acts.iter().zip(&out) {
                assert_eq!(vec_dot(ty, &w, a).to_bits(), o.to_bits(), "{ty} n={n}");
            }
        }
    }
}

#[test]
fn vec_dot_multi_empty_batch() {
    let w = quantized(GgmlType::Q4_1, &[0.5; 64]);
    vec_dot_multi(GgmlType::Q4_1, &w, &[], &mut []);
}

#[test]
fn quant_types_have_q8_activations() {
    for ty in quant_types() {
        assert_eq!(ty.act_kind(), ActKind::Q8);
        assert_eq!(QK_K % ty.block_elems(), 0);
    }
    assert_eq!(quant_types().count(), GgmlType::ALL.len() - 3);
}

/// Byte offsets of the fp16 fields in one block of a quant type (scales, offsets, mins).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => &[],
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
    }
}

/// A weight row of `ty` whose quant and scale bytes are arbitrary (not what our quantizer
/// writes): `fill` None for random bytes, else every byte `fill`; the fp16 fields are then set
/// to finite values drawn from `scales` (so no block holds NaN or infinity).
fn arbitrary_row(
    rng: &mut ChaCha8Rng,
    ty: GgmlType,
    n: usize,
    fill: Option<u8>,
    scales: &[f32],
) -> Vec<u8> {
    let bb = ty.block_bytes();
    let mut w: Vec<u8> = (0..ty.row_bytes(n).unwrap())
        .map(|_| fill.unwrap_or_else(|| rng.random()))
        .collect();
    for blk in w.chunks_mut(bb) {
        for &off in f16_fields(ty) {
            let v = scales[rng.random_range(0..scales.len())];
            blk[off..off + 2].copy_from_slice(&f16_bytes(v));
        }
    }
    w
}

/// Every level's kernel on blocks with arbitrary bits (all-max and all-zero quants, every
/// sub-block scale and min pattern, extreme and negative fp16 scales), against the f64
/// reference, and bit-identical between a lone activation and a batch.
#[test]
fn vec_dot_arbitrary_blocks_all_levels() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let scales = [1.0, -0.5, 0.0, 65504.0, -65504.0, 6e-8, 0.013, -3.25];
    for ty in quant_types() {
        let n = 2 * QK_K;
        let mut rows = Vec::new();
        for fill in [
            None,
            None,
            None,
            Some(0xFF),
            Some(0x00),
            Some(0x80),
            Some(0x7F),
        ] {
            rows.push(arbitrary_row(&mut rng, ty, n, fill, &scales));
        }
        let xs: Vec<Vec<f32>> = (0..3).map(|_| test_row(&mut rng, n)).collect();
        let mut q8s = q8_rows(ty, &xs);
        q8s.push(extreme_q8(n / 32));
        let xs: Vec<Vec<f32>> = q8s.iter().map(|q| dequant_q8(q)).collect();
        let acts = act_rows(&xs, &q8s);
        for (r, w) in rows.iter().enumerate() {
            let wd = dequantized(ty, w, n);
            for level in levels() {
                let mut batch = vec![f32::NAN; acts.len()];
                vec_dot_multi_at(level, ty, w, &acts, &mut batch);
                for (k, (a, x)) in acts.iter().zip(&xs).enumerate() {
                    let mut one = [f32::NAN];
                    vec_dot_multi_at(level, ty, w, core::slice::from_ref(a), &mut one);
                    assert_eq!(
                        one[0].to_bits(),
                        batch[k].to_bits(),
                        "{ty} row {r} {level:?}"
                    );
                    let want = f64::from(vec_dot_reference(ty, w, x));
                    let mag = abs_dot(&wd, x).max(1e-30);
                    let err = (f64::from(one[0]) - want).abs() / mag;
                    assert!(
                        err <= KERNEL_RTOL,
                        "{ty} row {r} act {k} {level:?}: {} vs {want}, rel. error {err:e}",
                        one[0]
                    );
                }
            }
        }
    }
}

#[test]
fn vec_dot_rows_is_bit_identical_to_vec_dot_multi() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for ty in GgmlType::ALL {
        let n = lengths(ty)[1];
        let rows: Vec<Vec<u8>> = (0..5)
            .map(|_| quantized(ty, &test_row(&mut rng, n)))
            .collect();
        let row_bytes = rows[0].len();
        let all: Vec<u8> = rows.concat();
        let xs: Vec<Vec<f32>> = (0..11).map(|_| test_row(&mut rng, n)).collect();
        let q8s = q8_rows(ty, &xs);
        let acts = act_rows(&xs, &q8s);
        for count in [1, 2, 7, 11] {
            let batch = &acts[..count];
            let mut got = vec![f32::NAN; rows.len() * count];
            vec_dot_rows(ty, &all, row_bytes, batch, &mut got);
            for (r, row) in rows.iter().enumerate() {
                let mut want = vec![f32::NAN; count];
                vec_dot_multi(ty, row, batch, &mut want);
                for k in 0..count {
                    assert_eq!(
                        got[r * count + k].to_bits(),
                        want[k].to_bits(),
                        "{ty} row {r} act {k} of {count}"
                    );
                }
            }
        }
    }
}
