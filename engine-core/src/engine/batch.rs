//! One step's scheduled chunks laid out as a single forward batch: token ids, positions, the
//! sequence of each token, and which rows need logits (the last row of a chunk that reaches the
//! end of its known tokens, plus prompt rows while prompt logprobs are being collected).

use std::collections::HashMap;
use std::ops::Range;

use super::sequence::Sequence;
use crate::scheduler::{RequestId, ScheduleKind, SchedulerOutput};

/// One request's part of the batch.
pub(super) struct Part {
    pub id: RequestId,
    /// Prompt positions whose logits feed prompt logprobs.
    pub prompt_positions: Range<usize>,
    /// Index (in logits rows) of the first of those.
    pub first_prompt_row: usize,
    /// Index (in logits rows) of the row to sample from, if this chunk samples.
    pub sample_row: Option<usize>,
    /// A one-token decode (for the prefill/decode time split).
    pub decode: bool,
}

/// Host-side arrays of the batch.
#[derive(Default)]
pub(super) struct Plan {
    pub tokens: Vec<u32>,
    pub positions: Vec<u32>,
    pub token_seq: Vec<u32>,
    pub logits_rows: Vec<u32>,
    pub parts: Vec<Part>,
}

/// Lays out `out`'s chunks; requests unknown to `seqs` are left out.
pub(super) fn plan(out: &SchedulerOutput, seqs: &HashMap<RequestId, Sequence>) -> Plan {
    let mut p = Plan::default();
    for s in &out.scheduled {
        let Some(seq) = seqs.get(&s.id) else {
            continue;
        };
        let chunk = s.start..s.start + s.num_tokens;
        let base = p.tokens.len() as u32;
        let seq_idx = p.parts.len() as u32;
        p.tokens.extend_from_slice(&seq.tokens[chunk.clone()]);
        p.positions.extend(chunk.start as u32..chunk.end as u32);
        p.token_seq
            .extend(std::iter::repeat_n(seq_idx, s.num_tokens));
        let prompt_positions = seq.prompt_logprob_positions(chunk.clone());
        let first_prompt_row = p.logits_rows.len();
        p.logits_rows.extend(
            prompt_positions
                .clone()
                .map(|pos| base + (pos - chunk.start) as u32),
        );
        let sample_row = s.samples.then(|| {
            p.logits_rows.push(base + s.num_tokens as u32 - 1);
            p.logits_rows.len() - 1
        });
        p.parts.push(Part {
            id: s.id,
            prompt_positions,
            first_prompt_row,
            sample_row,
            decode: s.num_tokens == 1
                && s.samples
                && s.start >= seq.num_prompt
                && s.kind == ScheduleKind::Continue,
        });
    }
    p
}
