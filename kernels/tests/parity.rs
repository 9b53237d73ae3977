//! One test body for every backend: each op of [`Backend`] on seeded random inputs, compared
//! with plain f64 references computed here, within the per-op tolerances of [`TOLERANCE`].
//! The CPU backend runs it on every build; the CUDA backend (feature `cuda`) runs it against
//! both the references and the CPU backend's outputs, or reports `skipped: no CUDA device`.

use kernels::backend::{
    AttentionLayout, Cols, GluActivation, KvDtype, KvPoolConfig, Rope, RopeStyle,
};
use kernels::quant::{dequantize_row, quantize_row};
use kernels::{Backend, CpuBackend, GgmlType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest error allowed, as a fraction of the largest reference magnitude of the op's output.
/// Quantized matmuls are bounded by the CPU's 8-bit activation quantization (llama.cpp's
/// scheme); CUDA multiplies f32 activations and lands far inside.
const TOLERANCE: &[(&str, f64)] = &[
    ("embedding", 1e-6),
    ("rms_norm", 1e-5),
    ("rms_norm_heads", 1e-5),
    ("add_bias", 1e-7),
    ("scale", 1e-7),
    ("matmul/F32", 1e-5),
    ("matmul/F16", 1e-5),
    ("matmul/BF16", 1e-5),
    ("matmul/Q8_0", 1e-2),
    ("matmul/Q4_0", 2e-2),
    ("matmul/Q4_1", 2e-2),
    ("matmul/Q5_0", 2e-2),
    ("matmul/Q5_1", 2e-2),
    ("matmul/Q2_K", 2e-2),
    ("matmul/Q3_K", 2e-2),
    ("matmul/Q5_K", 2e-2),
    ("matmul/Q4_K", 2e-2),
    ("matmul/Q6_K", 2e-2),
    ("rope", 1e-5),
    ("attention", 1e-5),
    // Keys and values rounded to f16 (2^-11 relative each), as llama.cpp's default cache.
    ("attention/f16", 2e-3),
    ("glu", 1e-6),
    ("add_assign", 1e-7),
    ("gather_rows", 0.0),
];

fn tolerance(name: &str, kv: KvDtype) -> f64 {
    let op = name.split(':').next().unwrap_or(name);
    let f16_kv = format!("{op}/f16");
    let key = if op == "attention" && kv == KvDtype::F16 {
        &f16_kv
    } else {
        op
    };
    TOLERANCE
        .iter()
        .find(|(k, _)| *k == key)
        .unwrap_or_else(|| panic!("no tolerance for {name}"))
        .1
}

fn gauss(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        })
        .collect()
}

/// One op's output from a backend.
struct Output {
    name: String,
    values: Vec<f32>,
}

/// Inputs shared by the backend run and the references.
struct Inputs {
    embed_table: Vec<f32>,
    ids: Vec<u32>,
    x: Vec<f32>,
    norm_w: Vec<f32>,
    mat_a: Vec<f32>,
    mat_b: Vec<f32>,
    mat_x: Vec<f32>,
    rope_x: Vec<f32>,
    hist: Vec<f32>,
    queries: Vec<f32>,
    glu: Vec<f32>,
    y: Vec<f32>,
}

const D: usize = 256;
const VOCAB: usize = 20;
const T: usize = 3;
const MAT_T: usize = 9;
const MAT_N: [usize; 2] = [40, 16];
const ROPE_COLS: usize = 32 + 2 * 64 + 16;
const POSITIONS: [u32; T] = [0, 7, 300];
// Attention geometry: 4 query heads over 2 kv heads of 32, blocks of 4 slots.
const NH: usize = 4;
const NKV: usize = 2;
const HD: usize = 32;
const BS: usize = 4;
const QKV: usize = NH * HD + 2 * NKV * HD;
const SEQ_LENS: [usize; 2] = [3, 10];
const TABLES: [&[u32]; 2] = [&[5, 2], &[0, 7, 3]];
const F: usize = 100;
/// Rope cases: (rotated dims, style, linear scale, with frequency factors).
const ROPE_CASES: [(usize, RopeStyle, f32, bool); 4] = [
    (64, RopeStyle::Interleaved, 1.0, false),
    (32, RopeStyle::Interleaved, 1.0, false),
    (64, RopeStyle::Neox, 0.25, true),
    (32, RopeStyle::Neox, 1.0, false),
];
/// Attention cases: (scale, sliding window).
const ATTENTION_CASES: [(f32, Option<usize>); 3] = [(0.0, None), (0.3, Some(3)), (0.3, Some(6))];

/// Frequency factors of a rope case (Llama 3's shape: 1 for high frequencies, up to 8 for low).
fn freq_factors(rot: usize) -> Vec<f32> {
    (0..rot / 2)
        .map(|i| 1.0 + 7.0 * i as f32 / (rot / 2) as f32)
        .collect()
}

/// The attention scale of a case; 0 stands for the usual `1/√head_dim`.
fn attention_scale(scale: f32) -> f32 {
    if scale == 0.0 {
        1.0 / (HD as f32).sqrt()
    } else {
        scale
    }
}

fn inputs() -> Inputs {
    let mut rng = ChaCha8Rng::seed_from_u64(20261201);
    let hist_rows: usize = SEQ_LENS.iter().sum();
    Inputs {
        embed_table: gauss(&mut rng, VOCAB * D),
        ids: vec![3, 0, 19, 3],
        x: gauss(&mut rng, T * D),
        norm_w: gauss(&mut rng, D).iter().map(|w| 0.5 + w.abs()).collect(),
        mat_a: gauss(&mut rng, MAT_N[0] * D),
        mat_b: gauss(&mut rng, MAT_N[1] * D),
        mat_x: gauss(&mut rng, MAT_T * D),
        rope_x: gauss(&mut rng, T * ROPE_COLS),
        hist: gauss(&mut rng, hist_rows * QKV),
        queries: gauss(&mut rng, 4 * QKV),
        glu: gauss(&mut rng, T * 2 * F),
        y: gauss(&mut rng, T * 257),
    }
}

/// The values a weight of type `ty` really holds (what every backend multiplies).
fn as_stored(ty: GgmlType, w: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = vec![0u8; ty.row_bytes(w.len()).unwrap()];
    quantize_row(ty, w, &mut bytes);
    let mut back = vec![0f32; w.len()];
    dequantize_row(ty, &bytes, &mut back);
    (bytes, back)
}

fn upload<B: Backend>(b: &B, ty: GgmlType, rows: usize, cols: usize, w: &[f32]) -> B::Weight {
    let (bytes, _) = as_stored(ty, w);
    b.upload_weight(ty, rows, cols, &bytes).unwrap()
}

/// Slot of position `pos` of sequence `s`.
fn slot(s: usize, pos: usize) -> u32 {
    TABLES[s][pos / BS] * BS as u32 + (pos % BS) as u32
}

/// The query batch: sequence 0's three prompt tokens (a prefill chunk) and sequence 1's
/// last token (a decode), mixed.
fn query_layout() -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let token_seq = vec![0, 0, 0, 1];
    let positions = vec![0, 1, 2, 9];
    let slots = token_seq
        .iter()
        .zip(&positions)
        .map(|(&s, &p)| slot(s as usize, p as usize))
        .collect();
    (token_seq, positions, slots)
}

/// Runs every op on `b`.
fn run<B: Backend>(b: &B, inp: &Inputs) -> Vec<Output> {
    let mut out = Vec::new();
    let mut push = |name: String, t: &B::Tensor| {
        out.push(Output {
            name,
            values: b.to_host(t),
        })
    };

    for ty in GgmlType::ALL {
        let table = upload(b, ty, VOCAB, D, &inp.embed_table);
        let mut e = b.zeros(inp.ids.len(), D);
        b.embedding(&table, &inp.ids, &mut e);
        push(format!("embedding:{}", ty.name()), &e);
    }

    let x = b.upload_tensor(T, D, &inp.x);
    let w = upload(b, GgmlType::F32, 1, D, &inp.norm_w);
    let mut n = b.zeros(T, D);
    b.rms_norm(&x, &w, 1e-5, &mut n);
    push("rms_norm".into(), &n);

    let mx = b.upload_tensor(MAT_T, D, &inp.mat_x);
    for ty in GgmlType::ALL {
        let wa = upload(b, ty, MAT_N[0], D, &inp.mat_a);
        let wb = upload(b, ty, MAT_N[1], D, &inp.mat_b);
        let mut y = b.zeros(MAT_T, MAT_N[0] + MAT_N[1]);
        b.matmul(&mx, &[&wa, &wb], &mut y);
        push(format!("matmul/{}", ty.name()), &y);
    }

    let mut heads = b.upload_tensor(T, ROPE_COLS, &inp.rope_x);
    let head_w = upload(b, GgmlType::F32, 1, 64, &inp.norm_w[..64]);
    b.rms_norm_heads(&mut heads, Cols::new(32, 128), 64, &head_w, 1e-6);
    push("rms_norm_heads".into(), &heads);

    let mut biased = b.upload_tensor(T, ROPE_COLS, &inp.rope_x);
    let bias = upload(b, GgmlType::F32, 1, 100, &inp.norm_w[..100]);
    b.add_bias(&mut biased, Cols::new(17, 100), &bias);
    push("add_bias".into(), &biased);

    let mut scaled = b.upload_tensor(T, D, &inp.x);
    b.scale(&mut scaled, 25.3);
    push("scale".into(), &scaled);

    for (rot, style, freq_scale, factors) in ROPE_CASES {
        let mut r = b.upload_tensor(T, ROPE_COLS, &inp.rope_x);
        let f = freq_factors(rot);
        let rope = Rope {
            rot_dim: rot,
            base: 10_000.0,
            style,
            freq_scale,
            freq_factors: factors.then_some(&f[..]),
        };
        b.rope(&mut r, Cols::new(32, 128), 64, &POSITIONS, &rope);
        push(
            format!("rope:rot{rot}:{style:?}:{freq_scale}:{factors}"),
            &r,
        );
    }

    // History: every position of both sequences written to the pool, then the mixed batch.
    let cfg = KvPoolConfig {
        n_layers: 2,
        n_blocks: 8,
        block_size: BS,
        n_kv_heads: NKV,
        head_dim: HD,
        dtype: b.kv_dtype(),
    };
    let mut pool = b.alloc_kv_pool(cfg).unwrap();
    let hist_rows: usize = SEQ_LENS.iter().sum();
    let hist = b.upload_tensor(hist_rows, QKV, &inp.hist);
    let hist_slots: Vec<u32> = (0..2)
        .flat_map(|s| (0..SEQ_LENS[s]).map(move |p| slot(s, p)))
        .collect();
    let k_cols = Cols::new(NH * HD, NKV * HD);
    let v_cols = Cols::new(NH * HD + NKV * HD, NKV * HD);
    b.write_kv(&mut pool, 1, &hist, k_cols, v_cols, &hist_slots);
    let (token_seq, positions, slots) = query_layout();
    let q = b.upload_tensor(4, QKV, &inp.queries);
    for (scale, window) in ATTENTION_CASES {
        let layout = AttentionLayout {
            n_heads: NH,
            n_kv_heads: NKV,
            head_dim: HD,
            block_size: BS,
            token_seq: &token_seq,
            positions: &positions,
            block_tables: &TABLES,
            slots: &slots,
            scale: attention_scale(scale),
            window,
        };
        let mut att = b.zeros(4, NH * HD);
        b.attention(&q, Cols::new(0, NH * HD), &pool, 1, &layout, &mut att);
        push(format!("attention:{scale}:{window:?}"), &att);
    }

    let g = b.upload_tensor(T, 2 * F, &inp.glu);
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        let mut s = b.zeros(T, F);
        b.glu(act, &g, &mut s);
        push(format!("glu:{act:?}"), &s);
    }

    let mut a = b.upload_tensor(T, 257, &inp.y[..T * 257]);
    let y = b.upload_tensor(
        T,
        257,
        &inp.y.iter().map(|v| v * 0.5 - 1.0).collect::<Vec<_>>(),
    );
    b.add_assign(&mut a, &y);
    push("add_assign".into(), &a);

    let src = b.upload_tensor(T, D, &inp.x);
    let mut gathered = b.zeros(3, D);
    b.gather_rows(&src, &[2, 0, 2], &mut gathered);
    push("gather_rows".into(), &gathered);
    out
}

/// The same ops, computed plainly in f64 on the stored weight values.
fn reference(inp: &Inputs) -> Vec<Output> {
    let mut out = Vec::new();
    let mut push = |name: String, v: Vec<f64>| {
        out.push(Output {
            name,
            values: v.into_iter().map(|x| x as f32).collect(),
        })
    };
    for ty in GgmlType::ALL {
        let stored: Vec<f32> = inp
            .embed_table
            .chunks(D)
            .flat_map(|r| as_stored(ty, r).1)
            .collect();
        let v = inp
            .ids
            .iter()
            .flat_map(|&i| stored[i as usize * D..(i as usize + 1) * D].to_vec())
            .map(f64::from)
            .collect();
        push(format!("embedding:{}", ty.name()), v);
    }

    let mut v = Vec::new();
    for row in inp.x.chunks(D) {
        let ms = row.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() / D as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        v.extend(
            row.iter()
                .zip(&inp.norm_w)
                .map(|(&a, &w)| f64::from(a) * inv * f64::from(w)),
        );
    }
    push("rms_norm".into(), v);

    for ty in GgmlType::ALL {
        let rows: Vec<Vec<f32>> = inp
            .mat_a
            .chunks(D)
            .chain(inp.mat_b.chunks(D))
            .map(|r| as_stored(ty, r).1)
            .collect();
        let mut v = Vec::new();
        for x in inp.mat_x.chunks(D) {
            for w in &rows {
                v.push(
                    w.iter()
                        .zip(x)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum(),
                );
            }
        }
        push(format!("matmul/{}", ty.name()), v);
    }

    let mut v: Vec<f64> = inp.rope_x.iter().map(|&a| f64::from(a)).collect();
    for row in v.chunks_mut(ROPE_COLS) {
        for head in row[32..160].chunks_mut(64) {
            let ms = head.iter().map(|a| a * a).sum::<f64>() / 64.0;
            let inv = 1.0 / (ms + 1e-6).sqrt();
            for (a, &w) in head.iter_mut().zip(&inp.norm_w) {
                *a *= inv * f64::from(w);
            }
        }
    }
    push("rms_norm_heads".into(), v);

    let mut v: Vec<f64> = inp.rope_x.iter().map(|&a| f64::from(a)).collect();
    for row in v.chunks_mut(ROPE_COLS) {
        for (a, &b) in row[17..117].iter_mut().zip(&inp.norm_w) {
            *a += f64::from(b);
        }
    }
    push("add_bias".into(), v);

    push(
        "scale".into(),
        inp.x
            .iter()
            .map(|&a| f64::from(a) * f64::from(25.3f32))
            .collect(),
    );

    for (rot, style, freq_scale, factors) in ROPE_CASES {
        let mut v: Vec<f64> = inp.rope_x.iter().map(|&a| f64::from(a)).collect();
        let f = freq_factors(rot);
        for (t, row) in v.chunks_mut(ROPE_COLS).enumerate() {
            for head in row[32..160].chunks_mut(64) {
                for (i, &factor) in f.iter().enumerate() {
                    let mut theta = f64::from(POSITIONS[t])
                        * 10_000f64.powf(-2.0 * i as f64 / rot as f64)
                        * f64::from(freq_scale);
                    if factors {
                        theta /= f64::from(factor);
                    }
                    let (s, c) = theta.sin_cos();
                    let (ia, ib) = match style {
                        RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                        RopeStyle::Neox => (i, i + rot / 2),
                    };
                    let (a, b) = (head[ia], head[ib]);
                    head[ia] = a * c - b * s;
                    head[ib] = a * s + b * c;
                }
            }
        }
        push(format!("rope:rot{rot}:{style:?}:{freq_scale}:{factors}"), v);
    }

    // Attention over the history rows of each sequence.
    let start = [0, SEQ_LENS[0]];
    let (token_seq, positions, _) = query_layout();
    for (scale, window) in ATTENTION_CASES {
        let first = |pos: usize| window.map_or(0, |w| (pos + 1).saturating_sub(w));
        let mut v = Vec::new();
        for (t, (&s, &pos)) in token_seq.iter().zip(&positions).enumerate() {
            let q = &inp.queries[t * QKV..t * QKV + NH * HD];
            for h in 0..NH {
                let kvh = h / (NH / NKV);
                let key = |j: usize, which: usize| {
                    let row = &inp.hist[(start[s as usize] + j) * QKV..];
                    &row[NH * HD + which * NKV * HD + kvh * HD..][..HD]
                };
                let keys = first(pos as usize)..=pos as usize;
                let scores: Vec<f64> = keys
                    .clone()
                    .map(|j| {
                        q[h * HD..(h + 1) * HD]
                            .iter()
                            .zip(key(j, 0))
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum::<f64>()
                            * f64::from(attention_scale(scale))
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..HD {
                    v.push(
                        e.iter()
                            .zip(keys.clone())
                            .map(|(p, j)| p * f64::from(key(j, 1)[d]))
                            .sum::<f64>()
                            / z,
                    );
                }
            }
        }
        push(format!("attention:{scale}:{window:?}"), v);
    }

    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        let mut v = Vec::new();
        for row in inp.glu.chunks(2 * F) {
            for j in 0..F {
                let (g, u) = (f64::from(row[j]), f64::from(row[F + j]));
                let a = match act {
                    GluActivation::Silu => g / (1.0 + (-g).exp()),
                    GluActivation::GeluTanh => {
                        let c = (2.0 / std::f64::consts::PI).sqrt();
                        0.5 * g * (1.0 + (c * (g + 0.044715 * g * g * g)).tanh())
                    }
                };
                v.push(a * u);
            }
        }
        push(format!("glu:{act:?}"), v);
    }

    let v = inp.y[..T * 257]
        .iter()
        .map(|&a| f64::from(a) + f64::from(a * 0.5 - 1.0))
        .collect();
    push("add_assign".into(), v);

    let v = [2usize, 0, 2]
        .iter()
        .flat_map(|&r| inp.x[r * D..(r + 1) * D].to_vec())
        .map(f64::from)
        .collect();
    push("gather_rows".into(), v);
    out
}

/// Worst error of each op, relative to the largest magnitude of `want`'s output.
/// `got` (from a backend whose KV pools store `kv`) against `want`, op by op.
fn compare(got: &[Output], want: &[Output], against: &str, kv: KvDtype) -> Vec<String> {
    assert_eq!(got.len(), want.len());
    let mut failures = Vec::new();
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.name, w.name);
        assert_eq!(g.values.len(), w.values.len(), "{}: output length", g.name);
        let scale = w
            .values
            .iter()
            .fold(0f64, |m, v| m.max(f64::from(v.abs())))
            .max(1e-30);
        let err = g
            .values
            .iter()
            .zip(&w.values)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0f64, f64::max)
            / scale;
        let tol = tolerance(&g.name, kv);
        let line = format!(
            "{:<16} vs {against}: relative error {err:.2e} (tolerance {tol:.0e})",
            g.name
        );
        eprintln!("{line}");
        if err > tol || err.is_nan() {
            failures.push(line);
        }
    }
    failures
}

#[test]
fn cpu_backend_matches_the_references() {
    let inp = inputs();
    for kv in [KvDtype::F16, KvDtype::F32] {
        let failures = compare(
            &run(&CpuBackend::new().with_kv_dtype(kv), &inp),
            &reference(&inp),
            "reference",
            kv,
        );
        assert!(failures.is_empty(), "{kv:?} KV: {failures:#?}");
    }
}

#[test]
fn the_tolerance_table_is_not_vacuous() {
    // A corrupted output must fail the comparison: the suite can tell right from wrong.
    let inp = inputs();
    let mut out = run(&CpuBackend::new(), &inp);
    for o in &mut out {
        if let Some(v) = o
            .values
            .iter_mut()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        {
            *v = -*v - 1.0;
        }
    }
    let failures = compare(&out, &reference(&inp), "reference", KvDtype::F16);
    assert_eq!(failures.len(), out.len(), "{failures:#?}");
}

/// Needs a CUDA device, so `#[ignore]`d: `-- --ignored` on a GPU machine, where
/// `JOURNEY_REQUIRE_CUDA=1` turns a missing device into a failure.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA device: -- --ignored on a GPU machine"]
fn cuda_backend_matches_the_references_and_the_cpu() {
    let cuda = match kernels::cuda::CudaBackend::new(0) {
        Ok(b) => b,
        Err(e) if std::env::var_os("JOURNEY_REQUIRE_CUDA").is_some() => {
            panic!("JOURNEY_REQUIRE_CUDA is set but there is no CUDA device: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            return;
        }
    };
    eprintln!("CUDA device: {}", cuda.device());
    let inp = inputs();
    let got = run(&cuda, &inp);
    let mut failures = compare(&got, &reference(&inp), "reference", KvDtype::F32);
    let cpu = CpuBackend::new().with_kv_dtype(KvDtype::F32);
    failures.extend(compare(&got, &run(&cpu, &inp), "cpu", KvDtype::F32));
    assert!(failures.is_empty(), "{failures:#?}");
}
