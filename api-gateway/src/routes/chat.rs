//! `POST /v1/chat/completions`: validate, fan out `n` engine calls for the one conversation,
//! answer with a `chat.completion` or stream `chat.completion.chunk`s (role deltas first,
//! then content deltas, the finish reason on each choice's last delta).

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use proto::conventions::value;
use proto::engine::GenerateResponse;

use super::{Reply, ResponseMeta, admit, facts, reply};
use crate::AppState;
use crate::engines::{ChoiceOutput, fan_out};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::journey::RequestJourney;
use crate::openai::chat::{
    AssistantMessage, ChatChoice, ChatChunk, ChatCompletion, ChatCompletionRequest, ChatLogprobs,
    ChunkChoice, Delta,
};
use crate::openai::common::{
    Delivery, UsageTally, check_prompt_sizes, check_whole_response, finish_reason_name,
};
use crate::streaming::{ChunkMaker, sse_response};

/// The route, as `http.route` names it.
const ROUTE: &str = "/v1/chat/completions";

/// Handles one chat completion request; its journey starts, and it is admitted,
/// before the body is read.
pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    let mut admitted = match admit(&state, &request, ROUTE, value::OPERATION_CHAT) {
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
    let ApiJson(request) = ApiJson::<ChatCompletionRequest>::from_request(request, state).await?;
    let job = request.validate()?;
    let model = state.engines.model_meta().await?;
    job.common.admit(&model)?;
    check_prompt_sizes(std::slice::from_ref(&job.prompt), &model)?;
    check_whole_response(1, &job.common, &model)?;
    let meta = ResponseMeta::new("chatcmpl-", model.name);
    journey.set_request(&facts(&meta, &job.common));
    let n = job.common.n;
    let calls = fan_out(&meta.id, vec![job.prompt], &job.common, false)?;
    let choices = state.engines.open(calls, journey).await?;
    let with_logprobs = job.top_logprobs.is_some();
    match job.common.delivery {
        Delivery::Stream { include_usage } => {
            let maker = ChatChunker {
                meta,
                choices: choices.len(),
                with_logprobs,
                usage: UsageTally::new(n),
            };
            Ok(Reply::Stream(Box::new(move |request| {
                sse_response(choices, maker, include_usage, request)
            })))
        }
        Delivery::Whole => {
            let outputs = choices.collect(journey).await?;
            let body = completion(meta, outputs, n, with_logprobs);
            Ok(Reply::Whole(Json(body).into_response()))
        }
    }
}

fn completion(
    meta: ResponseMeta,
    outputs: Vec<ChoiceOutput>,
    n: u32,
    with_logprobs: bool,
) -> ChatCompletion {
    let mut usage = UsageTally::new(n);
    let choices = outputs
        .into_iter()
        .enumerate()
        .map(|(index, out)| {
            usage.add(index, &out.usage, true);
            ChatChoice {
                index,
                logprobs: with_logprobs.then(|| ChatLogprobs::from_engine(&out.logprobs)),
                finish_reason: out.finish_reason.map(finish_reason_name),
                stop_reason: Some(out.stop_reason).filter(|s| !s.is_empty()),
                message: AssistantMessage {
                    role: "assistant",
                    content: out.text,
                },
            }
        })
        .collect();
    ChatCompletion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices,
        usage: usage.total(),
    }
}

/// Builds `chat.completion.chunk`s from engine messages.
struct ChatChunker {
    meta: ResponseMeta,
    choices: usize,
    with_logprobs: bool,
    usage: UsageTally,
}

impl ChatChunker {
    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        ChatChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk",
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices,
            usage: None,
        }
    }
}

impl ChunkMaker for ChatChunker {
    type Chunk = ChatChunk;

    fn prelude(&mut self) -> Vec<ChatChunk> {
        (0..self.choices)
            .map(|index| {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                };
                self.chunk(vec![ChunkChoice {
                    index,
                    delta,
                    logprobs: None,
                    finish_reason: None,
                    stop_reason: None,
                }])
            })
            .collect()
    }

    fn on_message(&mut self, index: usize, m: GenerateResponse) -> Vec<ChatChunk> {
        if let Some(usage) = &m.usage {
            self.usage.add(index, usage, true);
        }
        let finish_reason = m
            .finish_reason
            .map(|_| finish_reason_name(m.finish_reason()));
        if m.text.is_empty() && m.logprobs.is_empty() && finish_reason.is_none() {
            return Vec::new();
        }
        let choice = ChunkChoice {
            index,
            logprobs: (self.with_logprobs && !m.logprobs.is_empty())
                .then(|| ChatLogprobs::from_engine(&m.logprobs)),
            delta: Delta {
                role: None,
                content: Some(m.text).filter(|t| !t.is_empty()),
            },
            finish_reason,
            stop_reason: Some(m.stop_reason).filter(|s| !s.is_empty()),
        };
        vec![self.chunk(vec![choice])]
    }

    fn usage_chunk(&self) -> ChatChunk {
        ChatChunk {
            usage: Some(self.usage.total()),
            ..self.chunk(Vec::new())
        }
    }
}
