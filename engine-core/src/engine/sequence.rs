//! One request's engine-side state: its tokens, sampler, detokenizer, stop matcher, event
//! sender and timings.

use std::ops::Range;

use proto::telemetry::Stamp;
use tokio::sync::mpsc::UnboundedSender;

use super::events::{PromptLogprob, RequestEvent, TokenLogprobs};
use crate::lifecycle::{
    Finish, Finished, Progress, RequestJourney, StopReason, Timings, Usage, WaitMark,
};
use crate::model::tokenizer::{IncrementalDecoder, Tokenizer};
use crate::sampling::{
    Sampler, SamplingParams, StopMatcher, StopOutcome, logprob_of, top_logprobs,
};

/// What one sampled token produced.
pub(super) struct TokenOutput {
    pub event: RequestEvent,
    pub finish: Option<Finish>,
}

/// Engine-side state of one live request.
pub(super) struct Sequence {
    /// The client's id.
    pub name: String,
    /// Prompt then generated tokens.
    pub tokens: Vec<u32>,
    pub num_prompt: usize,
    /// Most tokens to generate (max_tokens, context, KV capacity).
    pub max_output: usize,
    params: SamplingParams,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    stops: StopMatcher,
    /// Collected prompt logprobs until `Started` takes them.
    prompt_logprobs: Option<Vec<Option<PromptLogprob>>>,
    started: bool,
    events: UnboundedSender<RequestEvent>,
    pub timings: Timings,
    /// High-water mark of prompt tokens computed (survives preemption).
    pub prefill_done: usize,
    /// Its wait in progress, while in the waiting queue.
    pub wait: Option<WaitMark>,
}

/// Everything a sequence starts from.
pub(super) struct SequenceInit {
    pub name: String,
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub max_output: usize,
    pub events: UnboundedSender<RequestEvent>,
    pub arrived: Stamp,
    pub tokenize: std::time::Duration,
}

impl Sequence {
    pub fn new(init: SequenceInit) -> Self {
        let queued = Stamp::now();
        let p = &init.params;
        Self {
            sampler: Sampler::new(p, &init.prompt),
            decoder: IncrementalDecoder::new(true),
            stops: StopMatcher::new(&p.stop),
            prompt_logprobs: p.prompt_logprobs.map(|_| vec![None]),
            started: false,
            num_prompt: init.prompt.len(),
            tokens: init.prompt,
            max_output: init.max_output,
            params: init.params,
            name: init.name,
            events: init.events,
            timings: Timings {
                queued: Some(queued),
                tokenize: init.tokenize,
                ..Timings::new(init.arrived)
            },
            prefill_done: 0,
            wait: Some(WaitMark::new(queued)),
        }
    }

    /// Where it stands at scheduler step `step`, preempted `preemptions` times.
    pub fn progress(&self, step: u64, preemptions: u32) -> Progress {
        Progress {
            step,
            prompt_tokens: self.num_prompt,
            prefill_done: self.prefill_done,
            output_tokens: self.num_output(),
            max_tokens: self.max_output,
            preemptions,
        }
    }

    /// Tokens generated so far.
    pub fn num_output(&self) -> usize {
        self.tokens.len() - self.num_prompt
    }

    /// Positions among `chunk` whose logits prompt logprobs still need (each predicts the
    /// next prompt token). Empty once collected, so recomputation never asks again.
    pub fn prompt_logprob_positions(&self, chunk: Range<usize>) -> Range<usize> {
        match &self.prompt_logprobs {
            Some(done) if !self.started => {
                let from = chunk.start.max(done.len() - 1);
                let to = chunk.end.min(self.num_prompt - 1);
                from..to.max(from)
            }
            _ => 0..0,
        }
    }

    /// Records the logits `row` at prompt position `pos`.
    pub fn record_prompt_logprob(&mut self, pos: usize, row: &[f32]) {
        let (Some(n), Some(out)) = (self.params.prompt_logprobs, self.prompt_logprobs.as_mut())
        else {
            return;
        };
        if out.len() == pos + 1 {
            let next = self.tokens[pos + 1];
            out.push(Some(PromptLogprob {
                logprob: logprob_of(row, next),
                top: top_logprobs(row, n as usize),
            }));
        }
    }

    /// The `Started` event, the first time only.
    pub fn take_started(&mut self) -> Option<RequestEvent> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(RequestEvent::Started {
            prompt_token_ids: self.tokens[..self.num_prompt].to_vec(),
            prompt_logprobs: self.prompt_logprobs.take(),
        })
    }

    /// Samples from `logits` (the row after the last known token), appends the token and
    /// decides whether the request is done, exactly as `generate` does.
    pub fn sample(&mut self, tok: &Tokenizer, logits: &mut [f32]) -> TokenOutput {
        let s = self.sampler.sample(logits);
        self.tokens.push(s.token);
        let logprobs = self.params.logprobs.map(|_| {
            vec![TokenLogprobs {
                token: s.token,
                logprob: s.logprob,
                top: s.top,
            }]
        });
        let mut text = String::new();
        let detokenizing = std::time::Instant::now();
        let finish = self.check_finish(tok, s.token, &mut text);
        self.timings.detokenize += detokenizing.elapsed();
        TokenOutput {
            event: RequestEvent::Tokens {
                token_ids: vec![s.token],
                text,
                logprobs,
            },
            finish,
        }
    }

    fn check_finish(&mut self, tok: &Tokenizer, token: u32, text: &mut String) -> Option<Finish> {
        let mut finish = if !self.params.ignore_eos && tok.is_eog(token) {
            Some(Finish::Stop(StopReason::Eos))
        } else if self.params.stop_token_ids.contains(&token) {
            Some(Finish::Stop(StopReason::Token(token)))
        } else {
            if let Some(delta) = self.decoder.push(tok, token) {
                match self.stops.push(&delta) {
                    StopOutcome::Continue { emit } => text.push_str(&emit),
                    StopOutcome::Stopped { emit, stop: s } => {
                        text.push_str(&emit);
                        return Some(Finish::Stop(StopReason::Text(s)));
                    }
                }
            }
            (self.num_output() == self.max_output).then_some(Finish::Length)
        };
        // Release text held back for an incomplete character or a possible stop prefix.
        if finish.is_some() {
            let tail = self.decoder.finish();
            match self.stops.push(&tail) {
                StopOutcome::Continue { emit } => {
                    text.push_str(&emit);
                    text.push_str(&self.stops.flush());
                }
                StopOutcome::Stopped { emit, stop: s } => {
                    text.push_str(&emit);
                    finish = Some(Finish::Stop(StopReason::Text(s)));
                }
            }
        }
        finish
    }

    /// Sends an event; false when the client is gone.
    pub fn send(&self, event: RequestEvent) -> bool {
        self.events.send(event).is_ok()
    }

    /// What is known about it as it leaves, preempted `num_preemptions` times.
    pub fn finished(
        &mut self,
        finish: Finish,
        num_preemptions: u32,
        journey: Option<RequestJourney>,
    ) -> Finished {
        self.timings.finished = Some(Stamp::now());
        Finished {
            finish,
            usage: Usage {
                prompt_tokens: self.num_prompt as u32,
                completion_tokens: self.num_output() as u32,
            },
            timings: self.timings,
            num_preemptions,
            journey: journey.map(Box::new),
        }
    }
}

impl Sequence {
    /// Whether the client dropped its receiver.
    pub fn is_client_gone(&self) -> bool {
        self.events.is_closed()
    }
}
