//! `POST /v1/completions` (legacy): validate, fan out one engine call per prompt per choice
//! (choice index `prompt_idx * n + j`), answer with a `text_completion` or stream them.
//! With `echo`, the prompt (and, with `logprobs`, its scored tokens) comes first in each
//! choice; with `echo` and `max_tokens: 0`, only the prompt is returned.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use proto::conventions::value;
use proto::engine::{GenerateResponse, Logprobs};

use super::{Reply, ResponseMeta, admit, facts, reply};
use crate::AppState;
use crate::engines::{ChoiceOutput, fan_out};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::journey::RequestJourney;
use crate::openai::common::{
    Delivery, UsageTally, check_prompt_sizes, check_whole_response, finish_reason_name,
};
use crate::openai::completions::{
    Completion, CompletionChoice, CompletionJob, CompletionRequest, LegacyLogprobs, echo_text,
};
use crate::streaming::{ChunkMaker, sse_response};

/// The route, as `http.route` names it.
const ROUTE: &str = "/v1/completions";

/// Handles one legacy completion request; its journey starts, and it is admitted,
/// before the body is read.
pub async fn completions(State(state): State<AppState>, request: Request) -> Response {
    let mut admitted = match admit(&state, &request, ROUTE, value::OPERATION_TEXT_COMPLETION) {
        Ok(admitted) => admitted,
        Err(rejected) => return rejected.into_response(),
    };
    let result = handle(&state, request, &mut admitted.journey).await;
    reply(&state, admitted, result)
}

async fn handle(
    state: &AppState,
    request: Request,
    journey: &mut RequestJourney,
) -> ApiResult<Reply> {
    let ApiJson(request) = ApiJson::<CompletionRequest>::from_request(request, state).await?;
    let job = request.validate()?;
    let model = state.engines.model_meta().await?;
    job.common.admit(&model)?;
    check_prompt_sizes(&job.prompts, &model)?;
    check_whole_response(job.prompts.len(), &job.common, &model)?;
    let meta = ResponseMeta::new("cmpl-", model.name);
    journey.set_request(&facts(&meta, &job.common));
    let return_prompt_ids = job.common.sampling.prompt_logprobs.is_some();
    let calls = fan_out(
        &meta.id,
        job.prompts.clone(),
        &job.common,
        return_prompt_ids,
    )?;
    let choices = state.engines.open(calls, journey).await?;
    let render = Render::new(job.clone());
    match job.common.delivery {
        Delivery::Stream { include_usage } => {
            let maker = CompletionChunker::new(meta, render, choices.len());
            Ok(Reply::Stream(Box::new(move |request| {
                sse_response(choices, maker, include_usage, request)
            })))
        }
        Delivery::Whole => {
            let outputs = choices.collect(journey).await?;
            Ok(Reply::Whole(
                Json(render.whole(meta, outputs)).into_response(),
            ))
        }
    }
}

/// The parts of a job that shape each choice's text and logprobs.
struct Render {
    job: CompletionJob,
    usage: UsageTally,
}

impl Render {
    fn new(job: CompletionJob) -> Self {
        let usage = UsageTally::new(job.common.n);
        Self { job, usage }
    }

    /// One piece of choice `index`: the echoed prompt (when `prompt` is given) followed by
    /// generated text, with legacy logprobs when asked for. `offset` is the choice's running
    /// character offset.
    fn piece(
        &self,
        index: usize,
        prompt: Option<&[Logprobs]>,
        text: &str,
        generated: &[Logprobs],
        offset: &mut usize,
    ) -> (String, Option<LegacyLogprobs>) {
        let mut out = String::new();
        let mut logprobs = LegacyLogprobs::default();
        if let (Some(entries), Some(echo)) = (prompt, &self.job.echo) {
            out.push_str(&echo_text(
                &echo[index / self.job.common.n as usize],
                entries,
            ));
            logprobs.push_prompt(entries, offset);
        }
        if !self.job.echo_only {
            out.push_str(text);
            logprobs.push_generated(generated, offset);
        }
        (out, self.job.logprobs.map(|_| logprobs))
    }

    fn finish_reason(&self, m: Option<proto::engine::FinishReason>) -> Option<&'static str> {
        m.map(|r| {
            if self.job.echo_only {
                "length"
            } else {
                finish_reason_name(r)
            }
        })
    }

    fn whole(mut self, meta: ResponseMeta, outputs: Vec<ChoiceOutput>) -> Completion {
        let mut choices = Vec::with_capacity(outputs.len());
        for (index, out) in outputs.into_iter().enumerate() {
            self.usage.add(index, &out.usage, !self.job.echo_only);
            let (text, logprobs) = self.piece(
                index,
                Some(&out.prompt_logprobs),
                &out.text,
                &out.logprobs,
                &mut 0,
            );
            choices.push(CompletionChoice {
                index,
                text,
                logprobs,
                finish_reason: self.finish_reason(out.finish_reason),
                stop_reason: Some(out.stop_reason).filter(|s| !s.is_empty()),
            });
        }
        let usage = Some(self.usage.total());
        Completion {
            id: meta.id,
            object: "text_completion",
            created: meta.created,
            model: meta.model,
            choices,
            usage,
        }
    }
}

/// Builds streamed `text_completion` chunks from engine messages.
struct CompletionChunker {
    meta: ResponseMeta,
    render: Render,
    /// Per choice: prompt already echoed, running character offset.
    echoed: Vec<bool>,
    offsets: Vec<usize>,
}

impl CompletionChunker {
    fn new(meta: ResponseMeta, render: Render, choices: usize) -> Self {
        Self {
            meta,
            render,
            echoed: vec![false; choices],
            offsets: vec![0; choices],
        }
    }

    fn chunk(&self, choices: Vec<CompletionChoice>) -> Completion {
        let meta = &self.meta;
        Completion {
            id: meta.id.clone(),
            object: "text_completion",
            created: meta.created,
            model: meta.model.clone(),
            choices,
            usage: None,
        }
    }
}

impl ChunkMaker for CompletionChunker {
    type Chunk = Completion;

    fn prelude(&mut self) -> Vec<Completion> {
        Vec::new()
    }

    fn on_message(&mut self, index: usize, m: GenerateResponse) -> Vec<Completion> {
        if let Some(usage) = &m.usage {
            self.render
                .usage
                .add(index, usage, !self.render.job.echo_only);
        }
        let prompt = (!std::mem::replace(&mut self.echoed[index], true))
            .then_some(m.prompt_logprobs.as_slice());
        let (text, logprobs) = self.render.piece(
            index,
            prompt,
            &m.text,
            &m.logprobs,
            &mut self.offsets[index],
        );
        let finish_reason = self
            .render
            .finish_reason(m.finish_reason.map(|_| m.finish_reason()));
        let empty = logprobs.as_ref().is_none_or(|l| l.tokens.is_empty());
        if text.is_empty() && empty && finish_reason.is_none() {
            return Vec::new();
        }
        let stop_reason = Some(m.stop_reason).filter(|s| !s.is_empty());
        vec![self.chunk(vec![CompletionChoice {
            index,
            text,
            logprobs,
            finish_reason,
            stop_reason,
        }])]
    }

    fn usage_chunk(&self) -> Completion {
        Completion {
            usage: Some(self.render.usage.total()),
            ..self.chunk(Vec::new())
        }
    }
}
