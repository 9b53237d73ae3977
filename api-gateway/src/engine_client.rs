//! The gateway's only door to the engine: a lazily connected tonic channel, the served model's
//! facts (cached after the first successful `GetModelInfo`), the health check, and the
//! fan-out of one OpenAI request into several `Generate` calls (one per prompt per choice,
//! prompt-major) whose streams are merged back, after TGI's router: the HTTP side only ever
//! sees token events.
//!
//! Each opened stream's first message is read before the HTTP response starts, so an engine
//! refusal (prompt too long, overloaded, down) becomes a proper HTTP status even for
//! `stream: true`. The returned [`Choices`] own the gRPC streams: dropping them (a client that
//! hung up) cancels the calls, which the engine turns into aborts.

use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt};
use proto::engine::engine_client::EngineClient;
use proto::engine::generate_request::Prompt;
use proto::engine::{
    FinishReason, GenerateRequest, GenerateResponse, GetModelInfoRequest, SamplingParams,
};
use tokio::sync::OnceCell;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::{ApiError, ApiResult};
use crate::journey::RequestJourney;
use crate::openai::common::{MAX_FANOUT, ModelMeta};
use proto::telemetry::Stamp;

/// How long `/health` and `GetModelInfo` wait for the engine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest engine message the gateway decodes (prompt logprobs of long prompts are big).
const MAX_ENGINE_MESSAGE_BYTES: usize = 64 << 20;

/// A handle on the engine; cheap to clone (the channel is shared).
#[derive(Clone)]
pub struct Engine {
    client: EngineClient<Channel>,
    health: HealthClient<Channel>,
    model_override: Option<String>,
    meta: std::sync::Arc<OnceCell<ModelMeta>>,
}

impl Engine {
    /// A handle on the engine at `url` that connects on first use, so the gateway may start
    /// before the engine. `model_override` replaces the engine's model name as the served id.
    pub fn connect_lazy(url: &str, model_override: Option<String>) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(PROBE_TIMEOUT)
            .connect_lazy();
        Ok(Self {
            client: EngineClient::new(channel.clone())
                .max_decoding_message_size(MAX_ENGINE_MESSAGE_BYTES),
            health: HealthClient::new(channel),
            model_override,
            meta: Default::default(),
        })
    }

    /// The served model's id and context length. Fetched once from the engine; with a
    /// `--model-name` the name is known even while the engine is down.
    pub async fn model_meta(&self) -> ApiResult<ModelMeta> {
        let fetched = self
            .meta
            .get_or_try_init(|| async {
                let mut client = self.client.clone();
                let info = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    client.get_model_info(GetModelInfoRequest {}),
                )
                .await
                .map_err(|_| ApiError::EngineUnavailable("GetModelInfo timed out".into()))??
                .into_inner();
                let name = self.model_override.clone().unwrap_or(info.model_name);
                Ok::<_, ApiError>(ModelMeta {
                    name,
                    context_length: info.context_length,
                })
            })
            .await;
        match (fetched, &self.model_override) {
            (Ok(meta), _) => Ok(meta.clone()),
            (Err(_), Some(name)) => Ok(ModelMeta {
                name: name.clone(),
                context_length: 0,
            }),
            (Err(e), None) => Err(e),
        }
    }

    /// Ok when the engine's `grpc.health.v1` check reports SERVING for the whole server.
    pub async fn health(&self) -> ApiResult<()> {
        let mut health = self.health.clone();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let reply = tokio::time::timeout(PROBE_TIMEOUT, health.check(request))
            .await
            .map_err(|_| ApiError::EngineUnavailable("health check timed out".into()))?
            .map_err(|s| {
                ApiError::EngineUnavailable(format!("health check failed: {}", s.message()))
            })?;
        match reply.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            status => Err(ApiError::EngineUnavailable(format!(
                "engine health is {}",
                status.as_str_name()
            ))),
        }
    }

    /// Starts every call of a fan-out with the journey's trace metadata and reads each one's
    /// first message, failing as a whole if any call is refused. The journey records the
    /// earliest hand-off (response headers) and the earliest first message.
    pub async fn open(
        &self,
        requests: Vec<GenerateRequest>,
        journey: &mut RequestJourney,
    ) -> ApiResult<Choices> {
        let metadata = journey.metadata();
        let calls = requests.into_iter().map(|request| {
            let mut client = self.client.clone();
            let mut request = tonic::Request::new(request);
            *request.metadata_mut() = metadata.clone();
            async move {
                let mut rest = client.generate(request).await?.into_inner();
                let accepted = Stamp::now();
                let first = rest.message().await?;
                let first_at = (Stamp::now(), Instant::now());
                Ok::<_, ApiError>((ChoiceStream { first, rest }, accepted, first_at))
            }
        });
        let opened = futures::future::try_join_all(calls).await?;
        if let Some(at) = opened.iter().map(|o| o.1).min_by_key(|s| s.mono_ns) {
            journey.handed_off(at);
        }
        if let Some((at, instant)) = opened.iter().map(|o| o.2).min_by_key(|s| s.1) {
            journey.first_response(at, instant);
        }
        Ok(Choices(opened.into_iter().map(|o| o.0).collect()))
    }
}

/// One engine call's stream, its first message already read.
pub struct ChoiceStream {
    first: Option<GenerateResponse>,
    rest: Streaming<GenerateResponse>,
}

/// The streams of one fan-out, in choice order.
pub struct Choices(Vec<ChoiceStream>);

/// The gRPC calls of one OpenAI request: one per prompt per choice, prompt-major, so the
/// OpenAI choice index is `prompt_idx * n + j`.
pub fn fan_out(
    request_id: &str,
    prompts: Vec<Prompt>,
    n: u32,
    sampling: &SamplingParams,
    return_prompt_ids: bool,
) -> ApiResult<Vec<GenerateRequest>> {
    let total = prompts.len().saturating_mul(n as usize);
    if total > MAX_FANOUT {
        return Err(ApiError::bad_request(format!(
            "{} prompts × n={n} is {total} generations; at most {MAX_FANOUT} per request",
            prompts.len()
        )));
    }
    let mut calls = Vec::with_capacity(total);
    for prompt in prompts {
        for j in 0..n {
            let index = calls.len();
            let mut sampling = sampling.clone();
            // Same seed for every choice would give n identical samples.
            sampling.seed = sampling.seed.map(|s| s.wrapping_add(u64::from(j)));
            calls.push(GenerateRequest {
                request_id: format!("{request_id}-{index}"),
                prompt: Some(prompt.clone()),
                sampling: Some(sampling),
                return_prompt_ids,
            });
        }
    }
    Ok(calls)
}

impl Choices {
    /// Number of choices.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no choices.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every message of every choice, tagged with the choice index, in arrival order. The
    /// stream owns the gRPC streams: dropping it cancels them.
    pub fn merged(self) -> BoxStream<'static, (usize, ApiResult<GenerateResponse>)> {
        let per_choice = self.0.into_iter().enumerate().map(|(index, choice)| {
            let first = stream::iter(choice.first.map(Ok));
            let rest = choice.rest.map(|m| m.map_err(ApiError::from));
            first
                .chain(rest)
                .map(move |m| (index, m.and_then(engine_failure)))
                .boxed()
        });
        stream::select_all(per_choice).boxed()
    }

    /// Runs every choice to the end and returns their accumulated outputs, in choice order;
    /// the journey sees every message.
    pub async fn collect(self, journey: &mut RequestJourney) -> ApiResult<Vec<ChoiceOutput>> {
        let mut outputs = vec![ChoiceOutput::default(); self.len()];
        let mut merged = self.merged();
        while let Some((index, message)) = merged.next().await {
            let message = message?;
            journey.observe(&message);
            outputs[index].absorb(message);
        }
        if outputs.iter().any(|o| o.finish_reason.is_none()) {
            return Err(ApiError::EngineUnavailable(
                "an engine stream ended before its request finished".into(),
            ));
        }
        Ok(outputs)
    }
}

/// A message that reports `FINISH_REASON_ERROR` as the error it is.
fn engine_failure(m: GenerateResponse) -> ApiResult<GenerateResponse> {
    match m.finish_reason() {
        FinishReason::Error => Err(ApiError::Internal(format!(
            "the engine failed generating {}",
            m.request_id
        ))),
        _ => Ok(m),
    }
}

/// Everything one choice produced, accumulated from its messages.
#[derive(Debug, Clone, Default)]
pub struct ChoiceOutput {
    /// Generated text.
    pub text: String,
    /// Generated token ids.
    pub token_ids: Vec<u32>,
    /// One entry per generated token, when logprobs were asked for.
    pub logprobs: Vec<proto::engine::Logprobs>,
    /// The prompt's token ids, when asked for.
    pub prompt_token_ids: Vec<u32>,
    /// One entry per prompt token, when prompt logprobs were asked for.
    pub prompt_logprobs: Vec<proto::engine::Logprobs>,
    /// Why generation ended; `None` until the last message.
    pub finish_reason: Option<FinishReason>,
    /// The stop string or token that ended generation, if any.
    pub stop_reason: String,
    /// Token counts from the last message.
    pub usage: proto::engine::Usage,
}

impl ChoiceOutput {
    /// Folds one engine message into the output.
    pub fn absorb(&mut self, m: GenerateResponse) {
        self.text.push_str(&m.text);
        self.token_ids.extend_from_slice(&m.token_ids);
        self.logprobs.extend(m.logprobs);
        self.prompt_token_ids.extend_from_slice(&m.prompt_token_ids);
        self.prompt_logprobs.extend(m.prompt_logprobs);
        if let Some(reason) = m.finish_reason {
            self.finish_reason = Some(FinishReason::try_from(reason).unwrap_or_default());
            self.stop_reason = m.stop_reason;
        }
        if let Some(usage) = m.usage {
            self.usage = usage;
        }
    }
}
