//! A scripted stand-in for the engine: a real tonic server on `127.0.0.1:0` with canned
//! token streams, so the gateway's mapping, framing and error handling can be tested without
//! a model. Prompts that contain a magic word change its behaviour:
//!
//! - `TOO_LONG` → INVALID_ARGUMENT, `OVERLOAD` → RESOURCE_EXHAUSTED, `DOWN` → UNAVAILABLE;
//! - `MIDFAIL` → one token, then an INTERNAL status mid-stream;
//! - `HANG` → one token, then nothing until the call is dropped (counted in `dropped`).
//!
//! Otherwise each call answers the tokens `[<label>]`, ` seed=<seed>`, ` bye` (cut to
//! `max_tokens`), where the label names the prompt (`text`, `ids:1,2`, or the last chat
//! message), so choice order can be checked. Prompt tokens are the prompt's characters (or
//! `<id>` for token ids).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt, stream};
use proto::engine::engine_server::{Engine, EngineServer};
use proto::engine::generate_request::Prompt;
use proto::engine::{
    AbortRequest, AbortResponse, FinishReason, GenerateRequest, GenerateResponse,
    GetModelInfoRequest, Logprobs, ModelInfo, TokenLogprob, Usage,
};
use tokio::sync::Notify;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// The served model name.
pub const MODEL: &str = "fake-model";
/// The fake's context length.
pub const CONTEXT: u32 = 4096;

/// What the test can observe of the fake.
#[derive(Clone, Default)]
pub struct Observed {
    /// Every Generate request, in arrival order.
    pub requests: Arc<Mutex<Vec<GenerateRequest>>>,
    /// How many `HANG` streams were dropped (cancelled by the gateway).
    pub dropped: Arc<AtomicUsize>,
    /// Notified on each drop.
    pub drop_notify: Arc<Notify>,
}

impl Observed {
    /// The recorded requests, sorted by request id suffix (fan-out index).
    pub fn requests(&self) -> Vec<GenerateRequest> {
        let mut r = self.requests.lock().unwrap().clone();
        r.sort_by_key(|q| {
            q.request_id
                .rsplit('-')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
        });
        r
    }
}

#[derive(Clone)]
struct FakeEngine {
    observed: Observed,
}

/// Starts the fake engine (serving health as `serving`) and returns its URL.
pub async fn start(serving: bool) -> (String, Observed) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let observed = Observed::default();
    let (reporter, health) = tonic_health::server::health_reporter();
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    let engine = FakeEngine {
        observed: observed.clone(),
    };
    tokio::spawn(async move {
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(EngineServer::new(engine))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (url, observed)
}

/// A URL where nothing listens.
pub async fn unreachable_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

type GenStream = Pin<Box<dyn Stream<Item = Result<GenerateResponse, Status>> + Send>>;

/// Counts a drop when the stream it travels with is dropped.
struct DropGuard(Observed);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
        self.0.drop_notify.notify_one();
    }
}

fn tok(text: &str, logprob: f32) -> TokenLogprob {
    TokenLogprob {
        id: text.len() as u32,
        logprob,
        text: text.to_owned(),
    }
}

fn logprobs(text: &str, logprob: f32, k: u32) -> Logprobs {
    let top = (0..k)
        .map(|i| tok(&format!("alt{i}"), -1.0 - i as f32))
        .collect();
    Logprobs {
        token: Some(tok(text, logprob)),
        top,
    }
}

/// The prompt's label and its "tokens".
fn prompt_tokens(prompt: &Prompt) -> (String, Vec<(u32, String)>) {
    match prompt {
        Prompt::Text(t) => (
            t.clone(),
            t.chars().map(|c| (c as u32, c.to_string())).collect(),
        ),
        Prompt::TokenIds(ids) => {
            let label = ids
                .ids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            (
                format!("ids:{label}"),
                ids.ids.iter().map(|&i| (i, format!("<{i}>"))).collect(),
            )
        }
        Prompt::Chat(chat) => {
            let last = chat
                .messages
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let chars = last.chars().map(|c| (c as u32, c.to_string())).collect();
            (last, chars)
        }
    }
}

fn started(req: &GenerateRequest, tokens: &[(u32, String)]) -> GenerateResponse {
    let sampling = req.sampling.clone().unwrap_or_default();
    let mut first = GenerateResponse {
        request_id: req.request_id.clone(),
        ..Default::default()
    };
    if let Some(k) = sampling.prompt_logprobs {
        first.prompt_logprobs = tokens
            .iter()
            .enumerate()
            .map(|(i, (_, t))| {
                if i == 0 {
                    logprobs(t, f32::NAN, 0)
                } else {
                    logprobs(t, -2.0, k)
                }
            })
            .collect();
    }
    if req.return_prompt_ids {
        first.prompt_token_ids = tokens.iter().map(|(id, _)| *id).collect();
    }
    first
}

fn script(req: &GenerateRequest, label: &str, prompt_len: usize) -> Vec<GenerateResponse> {
    let sampling = req.sampling.clone().unwrap_or_default();
    let seed = sampling.seed.map_or("none".to_owned(), |s| s.to_string());
    let canned = [
        format!("[{label}]"),
        format!(" seed={seed}"),
        " bye".to_owned(),
    ];
    let max = sampling.max_tokens.map_or(canned.len(), |m| m as usize);
    let mut out: Vec<GenerateResponse> = canned
        .iter()
        .take(max)
        .map(|t| GenerateResponse {
            request_id: req.request_id.clone(),
            token_ids: vec![t.len() as u32],
            text: t.clone(),
            logprobs: sampling
                .logprobs
                .map(|k| vec![logprobs(t, -0.5, k)])
                .unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    let generated = out.len() as u32;
    let reason = if max < canned.len() {
        FinishReason::Length
    } else {
        FinishReason::Stop
    };
    out.push(GenerateResponse {
        request_id: req.request_id.clone(),
        finish_reason: Some(reason as i32),
        usage: Some(Usage {
            prompt_tokens: prompt_len as u32,
            completion_tokens: generated,
        }),
        ..Default::default()
    });
    out
}

#[tonic::async_trait]
impl Engine for FakeEngine {
    type GenerateStream = GenStream;

    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<GenStream>, Status> {
        let req = request.into_inner();
        self.observed.requests.lock().unwrap().push(req.clone());
        let prompt = req
            .prompt
            .clone()
            .ok_or_else(|| Status::invalid_argument("no prompt"))?;
        let (label, tokens) = prompt_tokens(&prompt);
        if label.contains("TOO_LONG") {
            return Err(Status::invalid_argument(
                "prompt is longer than the context (5000 > 4096 tokens)",
            ));
        }
        if label.contains("OVERLOAD") {
            return Err(Status::resource_exhausted("queue is full"));
        }
        if label.contains("DOWN") {
            return Err(Status::unavailable("engine stopped"));
        }
        let first = started(&req, &tokens);
        let messages = script(&req, &label, tokens.len());
        let stream: GenStream = if label.contains("HANG") {
            let guard = DropGuard(self.observed.clone());
            let head = stream::iter([Ok(first), Ok(messages[0].clone())]);
            let tail = stream::once(async move {
                let _guard = guard;
                std::future::pending::<Result<GenerateResponse, Status>>().await
            });
            Box::pin(head.chain(tail))
        } else if label.contains("MIDFAIL") {
            let items = [
                Ok(first),
                Ok(messages[0].clone()),
                Err(Status::internal("engine exploded")),
            ];
            Box::pin(stream::iter(items))
        } else {
            Box::pin(stream::iter(std::iter::once(first).chain(messages).map(Ok)))
        };
        Ok(Response::new(stream))
    }

    async fn abort(
        &self,
        _request: Request<AbortRequest>,
    ) -> Result<Response<AbortResponse>, Status> {
        Ok(Response::new(AbortResponse { found: false }))
    }

    async fn get_model_info(
        &self,
        _request: Request<GetModelInfoRequest>,
    ) -> Result<Response<ModelInfo>, Status> {
        Ok(Response::new(ModelInfo {
            model_name: MODEL.into(),
            architecture: "qwen3".into(),
            context_length: CONTEXT,
            ..Default::default()
        }))
    }
}
