//! Server-sent events for `stream: true`, after the axum `sse` example and vLLM's framing:
//! optional prelude chunks, one `data:` event per chunk as engine messages arrive, an
//! optional usage-only chunk, then `data: [DONE]`. A failure midway is sent as an
//! OpenAI-shaped `data: {"error": ...}` event followed by `[DONE]`.
//!
//! The event stream owns the merged gRPC streams, so when the client disconnects and axum
//! drops the body, the gRPC calls are dropped too and the engine aborts the requests.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use proto::engine::GenerateResponse;
use serde::Serialize;

use crate::engines::Choices;
use crate::error::ApiError;
use crate::journey::RequestJourney;

/// Turns the engine messages of one request into the endpoint's chunk objects.
pub trait ChunkMaker: Send + 'static {
    /// The endpoint's chunk type (`chat.completion.chunk`, `text_completion`).
    type Chunk: Serialize + Send;

    /// Chunks sent before any engine message.
    fn prelude(&mut self) -> Vec<Self::Chunk>;

    /// Chunks for one engine message of choice `index`.
    fn on_message(&mut self, index: usize, message: GenerateResponse) -> Vec<Self::Chunk>;

    /// The closing chunk with empty `choices` and the whole request's usage.
    fn usage_chunk(&self) -> Self::Chunk;
}

/// An SSE response streaming `choices` through `maker`. The stream owns the request's
/// journey: it departs after the last chunk, aborts on an engine failure, and, if the client
/// hangs up and the body is dropped, the journey's `Drop` records the disconnect.
pub fn sse_response<M: ChunkMaker>(
    choices: Choices,
    maker: M,
    include_usage: bool,
    journey: RequestJourney,
) -> Response {
    Sse::new(events(choices, maker, include_usage, journey))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events<M: ChunkMaker>(
    choices: Choices,
    mut maker: M,
    include_usage: bool,
    mut journey: RequestJourney,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    async_stream::stream! {
        for chunk in maker.prelude() {
            yield Ok(json_event(&chunk));
        }
        let mut merged = choices.merged();
        while let Some((index, message)) = merged.next().await {
            match message {
                Ok(message) => {
                    journey.observe(&message);
                    for chunk in maker.on_message(index, message) {
                        yield Ok(json_event(&chunk));
                    }
                }
                Err(error) => {
                    yield Ok(json_event(&error.body()));
                    journey.abort(&error);
                    yield Ok(done());
                    return;
                }
            }
        }
        if include_usage {
            yield Ok(json_event(&maker.usage_chunk()));
        }
        journey.depart();
        yield Ok(done());
    }
}

fn json_event(value: &impl Serialize) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        Err(e) => json_event(&ApiError::Internal(format!("cannot serialize a chunk: {e}")).body()),
    }
}

fn done() -> Event {
    Event::default().data("[DONE]")
}
