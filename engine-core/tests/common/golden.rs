//! Agreement with llama.cpp goldens (`scripts/gen_model_goldens.py`,
//! `scripts/gen_arch_goldens.py`), one rule for every model.
//!
//! Under teacher forcing (llama.cpp's greedy tokens fed back), our top-1 must equal llama.cpp's
//! token wherever llama.cpp's top-1/top-2 gap exceeds [`GAP`] and be in our top-2 elsewhere;
//! at the first step, the top-5 logits relative to the top-1 must agree within 0.5.

use engine_core::kv_cache::{BlockAllocator, BlockTable};
use engine_core::model::gguf::{GgufFile, GgufWriter};
use engine_core::model::llama::{ForwardBatch, Llama};
use kernels::quant::dequantize_row;
use kernels::{CpuBackend, GgmlType};
use serde::Deserialize;

/// Top-1/top-2 gap above which our top-1 must be llama.cpp's.
pub const GAP: f32 = 0.5;

/// One prompt of a golden file.
#[derive(Deserialize)]
pub struct Case {
    /// `raw` or `chat` (real models); absent for token-id prompts.
    #[serde(default)]
    pub kind: String,
    /// The prompt text (real models).
    #[serde(default)]
    pub text: String,
    /// llama.cpp's prompt ids.
    pub prompt_ids: Vec<u32>,
    /// llama.cpp's greedy continuation.
    pub greedy_ids: Vec<u32>,
    /// Per step: `[id, logit]` of llama.cpp's top 5.
    pub top5: Vec<Vec<(u32, f32)>>,
}

impl Case {
    /// A short label for failure messages.
    pub fn label(&self) -> String {
        if self.text.is_empty() {
            format!(
                "ids {:?}..",
                &self.prompt_ids[..self.prompt_ids.len().min(6)]
            )
        } else {
            format!("{:?}", self.text.chars().take(40).collect::<String>())
        }
    }
}

/// Logits of every position from the last prompt token on, for prompt + `continuation`, in
/// one prefill over blocks of 16.
pub fn teacher_forced_logits(
    llama: &Llama<CpuBackend>,
    prompt: &[u32],
    continuation: &[u32],
) -> Vec<Vec<f32>> {
    let tokens: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
    let block_size = 16;
    let mut alloc = BlockAllocator::new(tokens.len().div_ceil(block_size), block_size);
    let mut table = BlockTable::new();
    table.reserve(&mut alloc, tokens.len()).unwrap();
    let mut pool = llama.alloc_kv_pool(alloc.num_total(), block_size).unwrap();
    let positions: Vec<u32> = (0..tokens.len() as u32).collect();
    let rows: Vec<u32> = (prompt.len() as u32 - 1..tokens.len() as u32).collect();
    let tables = [table.as_raw()];
    let batch = ForwardBatch {
        tokens: &tokens,
        positions: &positions,
        token_seq: &vec![0; tokens.len()],
        block_tables: &tables,
        window_block_tables: None,
        block_size,
        logits_rows: &rows,
    };
    let logits = llama.forward(&mut pool, &batch).unwrap();
    logits
        .chunks_exact(llama.config().vocab_size)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Token ids by falling logit (ties by id).
pub fn ranked(row: &[f32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..row.len() as u32).collect();
    ids.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    ids
}

/// Steps checked under the two rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checked {
    /// Steps with a gap above [`GAP`]: top-1 must match.
    pub exact: usize,
    /// Near-ties: llama.cpp's token must be in our top-2.
    pub top2: usize,
}

/// One failed check: which case, which step, what.
#[derive(Debug)]
pub struct Disagreement {
    /// Index of the case.
    pub case: usize,
    /// Teacher-forcing step (0 = the distribution after the prompt).
    pub step: usize,
    /// The message.
    pub what: String,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// Teacher-forces every case and returns what was checked and every disagreement.
pub fn check_teacher_forcing(
    llama: &Llama<CpuBackend>,
    cases: &[Case],
) -> (Checked, Vec<Disagreement>) {
    let mut checked = Checked::default();
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let mut fail = |step: usize, what: String| {
            failures.push(Disagreement {
                case: index,
                step,
                what,
            })
        };
        let n = case.greedy_ids.len();
        let logits = teacher_forced_logits(llama, &case.prompt_ids, &case.greedy_ids[..n - 1]);
        for (step, (row, want)) in logits.iter().zip(&case.greedy_ids).enumerate() {
            let top = &case.top5[step];
            let ours = ranked(row);
            if std::env::var_os("GOLDEN_DIAG").is_some() {
                let m = row[ours[0] as usize];
                let diffs: Vec<String> = top
                    .iter()
                    .map(|&(id, l)| format!("{id}:{:+.2}", (row[id as usize] - m) - (l - top[0].1)))
                    .collect();
                eprintln!(
                    "{} step {step} gap {:.2} ours {:?} want {want} diffs {}",
                    case.label(),
                    top[0].1 - top[1].1,
                    &ours[..2],
                    diffs.join(" ")
                );
            }
            let gap = top[0].1 - top[1].1;
            if gap > GAP {
                if ours[0] != *want {
                    fail(
                        step,
                        format!(
                            "{} step {step}: top-1 {} != llama.cpp's {want} (gap {gap:.3})",
                            case.label(),
                            ours[0]
                        ),
                    );
                }
                checked.exact += 1;
            } else {
                if !ours[..2].contains(want) {
                    fail(
                        step,
                        format!(
                            "{} step {step}: {want} not in our top-2 {:?} (gap {gap:.3})",
                            case.label(),
                            &ours[..2]
                        ),
                    );
                }
                checked.top2 += 1;
            }
        }
        // First step: the top-5 logits relative to the top-1.
        let row = &logits[0];
        let our_max = row[ranked(row)[0] as usize];
        for &(id, logit) in &case.top5[0] {
            let (ours, theirs) = (row[id as usize] - our_max, logit - case.top5[0][0].1);
            if (ours - theirs).abs() > 0.5 {
                fail(
                    0,
                    format!(
                        "{}: token {id} relative logit {ours:.3} vs llama.cpp {theirs:.3}",
                        case.label()
                    ),
                );
            }
        }
    }
    (checked, failures)
}

/// `file` with every tensor dequantized to F32: the same network computed without weight or
/// activation quantization (F32 matmuls take f32 activations), the exact reference both
/// llama.cpp's and our quantized arithmetic approximate.
pub fn dequantized_copy(file: &GgufFile) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in &file.metadata {
        w.meta(k, v.clone());
    }
    for t in &file.tensors {
        let ty = t.ggml_type().unwrap();
        let data = file.tensor_data(t).unwrap();
        let cols = t.dims[0] as usize;
        let row_bytes = ty.row_bytes(cols).unwrap();
        let mut row = vec![0f32; cols];
        let mut out = Vec::with_capacity(data.len() / row_bytes * cols * 4);
        for src in data.chunks_exact(row_bytes) {
            dequantize_row(ty, src, &mut row);
            out.extend(row.iter().flat_map(|v| v.to_le_bytes()));
        }
        w.tensor(&t.name, &t.dims, GgmlType::F32, out);
    }
    GgufFile::from_bytes(w.to_bytes()).unwrap()
}

/// At a step where we disagree with llama.cpp: the largest error, over llama.cpp's top 5, of
/// (ours, llama.cpp's) logits relative to the top-1, measured against `exact`'s.
pub fn errors_against_exact(
    ours: &Llama<CpuBackend>,
    exact: &Llama<CpuBackend>,
    case: &Case,
    step: usize,
) -> (f32, f32) {
    let forced = &case.greedy_ids[..step];
    let row = |m: &Llama<CpuBackend>| {
        teacher_forced_logits(m, &case.prompt_ids, forced)
            .pop()
            .unwrap()
    };
    let (q, e) = (row(ours), row(exact));
    let top = &case.top5[step];
    let first = top[0].0 as usize;
    let mut worst = (0f32, 0f32);
    for &(id, logit) in top {
        let id = id as usize;
        let truth = e[id] - e[first];
        worst.0 = worst.0.max(((q[id] - q[first]) - truth).abs());
        worst.1 = worst.1.max(((logit - top[0].1) - truth).abs());
    }
    worst
}
