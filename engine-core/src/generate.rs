//! One request from prompt to finish on its own: the `generate` CLI, and the reference the
//! batched scheduler's output is compared against.

use kernels::Backend;
use serde::Serialize;

use crate::kv_cache::{BlockAllocator, BlockTable};
use crate::model::Model;
use crate::model::chat_template::ChatMessage;
use crate::model::llama::{ForwardBatch, ModelError};
use crate::model::tokenizer::IncrementalDecoder;
use crate::sampling::{
    Sampler, SamplingParams, StopMatcher, StopOutcome, TokenLogprob, top_logprobs,
};

/// The prompt, in one of three forms.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Raw text, tokenized as is (special tokens in it are parsed).
    Text(String),
    /// One user message, rendered through the model's chat template.
    Chat(String),
    /// Token ids.
    TokenIds(Vec<u32>),
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End-of-generation token or stop sequence.
    Stop,
    /// max_tokens or the context length.
    Length,
}

/// What a request produced.
#[derive(Clone, Debug, Serialize)]
pub struct GenerateOutput {
    /// The prompt as token ids.
    pub prompt_token_ids: Vec<u32>,
    /// Generated ids (including a final end-of-generation token, if any).
    pub token_ids: Vec<u32>,
    /// Generated text (stop sequences and special tokens excluded).
    pub text: String,
    /// Why it stopped.
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
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Options of the single-request loop.
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

/// Turns a prompt into token ids.
pub fn tokenize_prompt<B: Backend>(
    model: &Model<B>,
    prompt: &Prompt,
) -> Result<Vec<u32>, GenerateError> {
    let invalid = |e: String| GenerateError::Invalid(e);
    let ids = match prompt {
        Prompt::TokenIds(ids) => ids.clone(),
        Prompt::Text(text) => model
            .tokenizer
            .encode(text, true)
            .map_err(|e| invalid(e.to_string()))?,
        Prompt::Chat(text) => {
            let template = model
                .chat_template
                .as_ref()
                .ok_or_else(|| invalid("the model has no chat template".into()))?;
            let messages = [ChatMessage {
                role: "user".into(),
                content: text.clone(),
            }];
            let rendered = template
                .render(&messages, true)
                .map_err(|e| invalid(e.to_string()))?;
            model
                .tokenizer
                .encode(&rendered, true)
                .map_err(|e| invalid(e.to_string()))?
        }
    };
    if ids.is_empty() {
        return Err(invalid("the prompt is empty".into()));
    }
    let vocab = model.llama.config().vocab_size;
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(invalid(format!(
            "prompt token id {id} is outside the vocabulary of {vocab}"
        )));
    }
    Ok(ids)
}

/// Runs one request to completion.
pub fn generate<B: Backend>(
    model: &Model<B>,
    prompt: &Prompt,
    params: &SamplingParams,
    opts: &GenerateOptions,
) -> Result<GenerateOutput, GenerateError> {
    params
        .validate()
        .map_err(|e| GenerateError::Invalid(e.to_string()))?;
    let prompt_ids = tokenize_prompt(model, prompt)?;
    let cfg = model.llama.config();
    let n_prompt = prompt_ids.len();
    if n_prompt >= cfg.context_length {
        return Err(GenerateError::Invalid(format!(
            "prompt of {n_prompt} tokens does not fit the context of {}",
            cfg.context_length
        )));
    }
    let budget = (params.max_tokens as usize).min(cfg.context_length - n_prompt);
    let mut alloc = BlockAllocator::new(
        (n_prompt + budget).div_ceil(opts.block_size),
        opts.block_size,
    );
    let mut pool = model
        .llama
        .alloc_kv_pool(alloc.num_total(), opts.block_size)?;
    let mut table = BlockTable::new();
    table
        .reserve(&mut alloc, n_prompt + budget)
        .map_err(|e| GenerateError::Invalid(e.to_string()))?;

    let mut run = |tokens: &[u32], start: usize, logits_rows: &[u32]| {
        let positions: Vec<u32> = (start as u32..(start + tokens.len()) as u32).collect();
        let tables = [table.as_raw()];
        let batch = ForwardBatch {
            tokens,
            positions: &positions,
            token_seq: &vec![0; tokens.len()],
            block_tables: &tables,
            window_block_tables: None,
            block_size: opts.block_size,
            logits_rows,
        };
        model.llama.forward(&mut pool, &batch)
    };

    // Prefill, in chunks; the last row's logits predict the first output token.
    let chunk = opts.prefill_chunk.unwrap_or(n_prompt).max(1);
    let vocab = cfg.vocab_size;
    let mut prompt_logprobs = params.prompt_logprobs.map(|_| vec![None]);
    let mut last_logits = Vec::new();
    for start in (0..n_prompt).step_by(chunk) {
        let tokens = &prompt_ids[start..(start + chunk).min(n_prompt)];
        let rows: Vec<u32> = if params.prompt_logprobs.is_some() {
            (0..tokens.len() as u32).collect()
        } else if start + tokens.len() == n_prompt {
            vec![tokens.len() as u32 - 1]
        } else {
            Vec::new()
        };
        let logits = run(tokens, start, &rows)?;
        if let (Some(n), Some(out)) = (params.prompt_logprobs, prompt_logprobs.as_mut()) {
            for (r, row) in logits.chunks_exact(vocab).enumerate() {
                let pos = start + r;
                if pos + 1 < n_prompt {
                    out.push(Some(top_logprobs(row, n as usize)));
                }
            }
        }
        if start + tokens.len() == n_prompt {
            last_logits = logits[logits.len() - vocab..].to_vec();
        }
    }

    let mut sampler = Sampler::new(params, &prompt_ids);
    let mut decoder = IncrementalDecoder::new(true);
    let mut stops = StopMatcher::new(&params.stop);
    let mut out_ids = Vec::new();
    let mut text = String::new();
    let mut logprobs = params.logprobs.map(|_| Vec::new());
    let mut finish = FinishReason::Length;
    let mut stop_hit = false;
    while out_ids.len() < budget {
        let sampled = sampler.sample(&mut last_logits);
        out_ids.push(sampled.token);
        if let Some(lp) = logprobs.as_mut() {
            let mut top = sampled.top.clone();
            if !top.iter().any(|t| t.id == sampled.token) {
                top.push(TokenLogprob {
                    id: sampled.token,
                    logprob: sampled.logprob,
                });
            }
            lp.push(top);
        }
        let eog = !params.ignore_eos && model.tokenizer.is_eog(sampled.token);
        if eog || params.stop_token_ids.contains(&sampled.token) {
            finish = FinishReason::Stop;
            break;
        }
        if let Some(delta) = decoder.push(&model.tokenizer, sampled.token) {
            match stops.push(&delta) {
                StopOutcome::Continue { emit } => text.push_str(&emit),
                StopOutcome::Stopped { emit, .. } => {
                    text.push_str(&emit);
                    finish = FinishReason::Stop;
                    stop_hit = true;
                    break;
                }
            }
        }
        if out_ids.len() == budget {
            break;
        }
        let pos = n_prompt + out_ids.len() - 1;
        last_logits = run(&[sampled.token], pos, &[0])?;
    }
    // Release text held back for an incomplete character or a possible stop-string prefix.
    if !stop_hit {
        let tail = decoder.finish();
        match stops.push(&tail) {
            StopOutcome::Continue { emit } => {
                text.push_str(&emit);
                text.push_str(&stops.flush());
            }
            StopOutcome::Stopped { emit, .. } => {
                text.push_str(&emit);
                finish = FinishReason::Stop;
            }
        }
    }
    table.release(&mut alloc);
    Ok(GenerateOutput {
        prompt_token_ids: prompt_ids,
        token_ids: out_ids,
        text,
        finish_reason: finish,
        logprobs,
        prompt_logprobs,
    })
}
