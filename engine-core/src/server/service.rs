//! `journey.engine.v1.Engine` handlers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proto::engine::engine_server::Engine;
use proto::engine::{
    AbortRequest, AbortResponse, GenerateRequest, GenerateResponse, GetModelInfoRequest, ModelInfo,
};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert;
use crate::engine::{EngineHandle, EnginePrompt, EngineRequest, RequestEvent};
use crate::journey::{CoreTracer, TraceContext};
use crate::sampling::SamplingParams;
use proto::telemetry::propagation;

/// Aborts its request when dropped (with the response stream: the client left, or the stream
/// ended, in which case the request has already finished and nothing happens).
struct ClientGone {
    handle: EngineHandle,
    id: crate::scheduler::RequestId,
}

impl Drop for ClientGone {
    fn drop(&mut self) {
        self.handle.client_gone(self.id);
    }
}

/// The gRPC service over one engine.
#[derive(Clone)]
pub struct EngineService {
    handle: EngineHandle,
    journey: Option<CoreTracer>,
    /// Rendering and tokenizing run on blocking threads, this many at once: a flood of huge
    /// prompts waits here instead of occupying the async threads that answer health probes.
    tokenizers: Arc<tokio::sync::Semaphore>,
}

impl EngineService {
    /// Serves `handle`; with `journey`, requests are traced as their metadata and the
    /// engine's sample rate decide.
    pub fn new(handle: EngineHandle, journey: Option<CoreTracer>) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            handle,
            journey,
            tokenizers: Arc::new(tokio::sync::Semaphore::new(slots)),
        }
    }

    fn trace_context(&self, metadata: &tonic::metadata::MetadataMap) -> TraceContext {
        match &self.journey {
            None => TraceContext::Off,
            Some(j) => j.decide(
                propagation::extract_metadata(metadata),
                propagation::sampled(metadata),
            ),
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<GenerateResponse, Status>> + Send>>;

/// Ids for requests that came without one.
fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("engine-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[tonic::async_trait]
impl Engine for EngineService {
    type GenerateStream = ResponseStream;

    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<ResponseStream>, Status> {
        let trace = self.trace_context(request.metadata());
        let deadline = convert::deadline(request.metadata(), std::time::Instant::now());
        let tenant = convert::tenant(request.metadata())?;
        let req = request.into_inner();
        let id = if req.request_id.is_empty() {
            next_request_id()
        } else {
            req.request_id.clone()
        };
        let return_prompt_ids = req.return_prompt_ids;
        let engine_req = convert::engine_request(id.clone(), req, trace, deadline, tenant)?;
        let permit = Arc::clone(&self.tokenizers)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the engine is stopping"))?;
        let handle = self.handle.clone();
        // The guard is made on the blocking thread: if the client cancels meanwhile, tokio
        // drops the task's output, and with it the guard, which aborts the request.
        let (gone, events) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let (id, events) = handle.submit_as(engine_req)?;
            Ok((ClientGone { handle, id }, events))
        })
        .await
        .map_err(|e| Status::internal(format!("tokenizing failed: {e}")))?
        .map_err(convert::submit_status)?;
        let tokenizer = self.handle.tokenizer();
        // Tonic drops the stream when the client cancels: the request is aborted at once.
        let stream = UnboundedReceiverStream::new(events).map(move |event| {
            let _ = &gone;
            Ok(convert::response(&id, event, return_prompt_ids, &tokenizer))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn abort(
        &self,
        request: Request<AbortRequest>,
    ) -> Result<Response<AbortResponse>, Status> {
        let found = self.handle.abort(&request.into_inner().request_id);
        Ok(Response::new(AbortResponse { found }))
    }

    async fn get_model_info(
        &self,
        _: Request<GetModelInfoRequest>,
    ) -> Result<Response<ModelInfo>, Status> {
        Ok(Response::new(convert::model_info(&self.handle)))
    }
}

/// Runs one short greedy request through the whole engine so the first client pays no
/// first-touch costs (page faults on the weights, allocator growth).
pub(super) fn warm_up(handle: &EngineHandle) -> anyhow::Result<()> {
    let req = EngineRequest {
        id: "warm-up".into(),
        prompt: EnginePrompt::TokenIds(vec![0, 1, 2, 3]),
        params: SamplingParams {
            temperature: 0.0,
            max_tokens: 2,
            ignore_eos: true,
            ..SamplingParams::default()
        },
        trace: TraceContext::Off,
        return_journey: false,
        deadline: None,
        placement: Default::default(),
    };
    let mut events = handle
        .submit(req)
        .map_err(|e| anyhow::anyhow!("warm-up: {e}"))?;
    while let Some(event) = events.blocking_recv() {
        if let RequestEvent::Finished { .. } = event {
            return Ok(());
        }
    }
    anyhow::bail!("warm-up: the engine stopped")
}
