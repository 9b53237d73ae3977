//! Agreement with llama.cpp goldens (`scripts/gen_model_goldens.py`,
//! `scripts/gen_arch_goldens.py`), one rule for every model.
//!
//! Under teacher forcing (llama.cpp's greedy tokens fed back), our top-1 must equal llama.cpp's
//! token wherever llama.cpp's top-1/top-2 gap exceeds [`GAP`] and be in our top-2 elsewhere;
//! at the first step, the top-5 logits relative to the top-1 must agree within 0.5.

use engine_core::kv_cache::{BlockAllocator, BlockTable};
use engine_core::model::llama::{ForwardBatch, Llama};
use kernels::CpuBackend;
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

/// Teacher-forces every case and returns what was checked and every disagreement.
pub fn check_teacher_forcing(llama: &Llama<CpuBackend>, cases: &[Case]) -> (Checked, Vec<String>) {
    let mut checked = Checked::default();
    let mut failures = Vec::new();
    for case in cases {
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
                    failures.push(format!(
                        "{} step {step}: top-1 {} != llama.cpp's {want} (gap {gap:.3})",
                        case.label(),
                        ours[0]
                    ));
                }
                checked.exact += 1;
            } else {
                if !ours[..2].contains(want) {
                    failures.push(format!(
                        "{} step {step}: {want} not in our top-2 {:?} (gap {gap:.3})",
                        case.label(),
                        &ours[..2]
                    ));
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
                failures.push(format!(
                    "{}: token {id} relative logit {ours:.3} vs llama.cpp {theirs:.3}",
                    case.label()
                ));
            }
        }
    }
    (checked, failures)
}
