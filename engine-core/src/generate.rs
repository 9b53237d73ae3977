//! One request from prompt to finish on its own: the `generate` CLI, and a request's output
//! alone, which batched runs are compared against. It drives the same engine as `serve`
//! (scheduler, sequence, sampler, stop matcher) with one sequence and no threads.

use std::sync::Arc;

use kernels::Backend;
use proto::telemetry::Stamp;
use serde::Serialize;
use tokio::sync::mpsc::unbounded_channel;

use crate::engine::{
    ChatSpecials, EngineConfig, EngineCore, EngineError, EnginePrompt, Observers, RequestEvent,
    SpawnError, Submitted, kv_and_scheduler, prompt_ids,
};
use crate::journey::{JourneyObserver, TraceContext};
use crate::kv_cache::KvBudget;
use crate::lifecycle::{Finish, FinishReason, RequestFailure};
use crate::metrics::EngineMetrics;
use crate::model::Model;
use crate::model::llama::ModelError;
use crate::sampling::{SamplingParams, TokenLogprob};
use crate::scheduler::RequestId;

/// What a request produced.
#[derive(Clone, Debug, Serialize)]
pub struct GenerateOutput {
    /// The prompt as token ids.
    pub prompt_token_ids: Vec<u32>,
    /// Generated ids (including a final end-of-generation token, if any).
    pub token_ids: Vec<u32>,
    /// Generated text (stop sequences and special tokens excluded).
    pub text: String,
    /// Why it stopped (`stop` or `length`).
    pub finish_reason: FinishReason,
    /// Per generated token: top-N candidates (and the sampled one), when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Vec<TokenLogprob>>>,
    /// Per prompt token: top-N of the distribution predicting it (`null` for the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_logprobs: Option<Vec<Option<Vec<TokenLogprob>>>>,
}

/// Errors of a generation request.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Bad input (empty prompt, bad params, too long).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The KV pool could not be allocated.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The engine could not serve it.
    #[error(transparent)]
    Failed(#[from] RequestFailure),
}

/// Options of a single request.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// KV block size.
    pub block_size: usize,
    /// Prefill the prompt in chunks of this many tokens (`None`: one chunk).
    pub prefill_chunk: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            block_size: 16,
            prefill_chunk: None,
        }
    }
}

/// Turns a prompt into token ids, checked as the engine checks them.
pub fn tokenize_prompt<B: Backend>(
    model: &Model<B>,
    prompt: &EnginePrompt,
) -> Result<Vec<u32>, GenerateError> {
    let c = model.llama.config();
    prompt_ids(
        &model.tokenizer,
        model.chat_template.as_ref(),
        (c.vocab_size, c.context_length),
        ChatSpecials::default(),
        prompt,
    )
    .map_err(invalid)
}

fn invalid(e: EngineError) -> GenerateError {
    match e {
        EngineError::InvalidRequest(m) => GenerateError::Invalid(m),
        other => GenerateError::Invalid(other.to_string()),
    }
}

/// Runs one request to completion on an engine of its own, sized to fit it.
pub fn generate<B: Backend>(
    model: &Model<B>,
    prompt: &EnginePrompt,
    params: &SamplingParams,
    opts: &GenerateOptions,
) -> Result<GenerateOutput, GenerateError> {
    params
        .validate()
        .map_err(|e| GenerateError::Invalid(e.to_string()))?;
    if opts.block_size == 0 {
        return Err(GenerateError::Invalid(
            "the block size must be positive".into(),
        ));
    }
    let ids = tokenize_prompt(model, prompt)?;
    let n = ids.len();
    let budget = (params.max_tokens as usize).min(model.llama.config().context_length - n);
    let kv_blocks = (n + budget.max(1)).div_ceil(opts.block_size);
    let chunk = opts.prefill_chunk.unwrap_or(n).max(1);
    // Every block it could need plus the placeholder block, and at least what the engine
    // requires of a sliding-window pool.
    let window_need =
        KvBudget::one_sequence_window_need(opts.block_size, model.llama.kv_window(), chunk);
    let cfg = EngineConfig {
        block_size: opts.block_size,
        kv_blocks,
        max_num_batched_tokens: chunk,
        max_num_seqs: 1,
        max_waiting: 1,
        enable_prefix_caching: false,
        served_model_name: None,
        window_kv_blocks: Some((kv_blocks + 1).max(window_need)),
        fault_panic_at_step: None,
        scheduling_policy: Default::default(),
        chat_specials: ChatSpecials::default(),
    };
    let parts = kv_and_scheduler(&model.llama, &cfg).map_err(|e| match e {
        SpawnError::Model(e) => GenerateError::Model(e),
        other => GenerateError::Invalid(other.to_string()),
    })?;
    let observers = Observers {
        metrics: Arc::new(EngineMetrics::new()),
        journey: JourneyObserver::new(None, None),
        journal: crate::journal::JournalObserver::new(),
        published: None,
    };
    let mut core = EngineCore::new(&model.llama, &model.tokenizer, parts, observers);
    let (events, mut rx) = unbounded_channel();
    core.add(Submitted {
        id: RequestId(0),
        name: "generate".into(),
        prompt: ids.clone(),
        params: params.clone(),
        events,
        arrived: Stamp::now(),
        tokenize: std::time::Duration::ZERO,
        trace: TraceContext::Off,
        record_journey: false,
        deadline: None,
        placement: Default::default(),
    });
    while core.has_unfinished() {
        core.step();
    }
    let mut out = GenerateOutput {
        prompt_token_ids: ids,
        token_ids: Vec::new(),
        text: String::new(),
        finish_reason: FinishReason::Length,
        logprobs: params.logprobs.map(|_| Vec::new()),
        prompt_logprobs: None,
    };
    while let Ok(event) = rx.try_recv() {
        match event {
            RequestEvent::Started {
                prompt_logprobs, ..
            } => {
                out.prompt_logprobs =
                    prompt_logprobs.map(|all| all.into_iter().map(|p| p.map(|p| p.top)).collect());
            }
            RequestEvent::Tokens {
                token_ids,
                text,
                logprobs,
            } => {
                out.token_ids.extend(token_ids);
                out.text.push_str(&text);
                if let (Some(all), Some(new)) = (out.logprobs.as_mut(), logprobs) {
                    all.extend(new.into_iter().map(|l| {
                        // The sampled token is listed even when it is not in the top-N.
                        let mut top = l.top;
                        if !top.iter().any(|t| t.id == l.token) {
                            top.push(TokenLogprob {
                                id: l.token,
                                logprob: l.logprob,
                            });
                        }
                        top
                    }));
                }
            }
            RequestEvent::Finished(f) => match f.finish {
                Finish::Failed(failure) => return Err(failure.into()),
                finish => out.finish_reason = finish.reason(),
            },
        }
    }
    Ok(out)
}
