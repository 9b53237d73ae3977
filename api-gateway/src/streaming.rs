//! Server-sent events for `stream: true`, after the axum `sse` example and vLLM's framing:
//! optional prelude chunks, one `data:` event per chunk as engine messages arrive, an
//! optional usage-only chunk, then `data: [DONE]`. A failure midway is sent as an
//! OpenAI-shaped `data: {"error": ...}` event followed by `[DONE]`.
//!
//! A pump task, not the body, reads the engine: it turns messages into events and hands
//! them to the SSE body through a small bounded channel. It keeps reading the engine while
//! the client is slow (what waits is kept in the pump's backlog, at most the request's whole
//! output, as a non-streaming answer would be), so one slow reader never leaves its gRPC
//! stream unread on the engine connection every request shares. Two things end it early:
//!
//! - the client leaves (axum drops the body, the channel closes): the pump drops the engine
//!   streams, which cancels the calls (the engine aborts them), and the journey's `Drop`
//!   records `client_disconnect`;
//! - the client stops reading: a chunk that cannot be handed over within
//!   `--stream-write-timeout` of reaching the head of the backlog cuts the request off. The
//!   engine calls are cancelled the same way, the journey ends `ABORTED` with reason
//!   `timeout` (a deadline passed; the client did not leave) and status 408, and the
//!   connection is closed through its [`Hangup`] (hyper does not poll the body of a client
//!   that does not read, so ending the body would not free it).
//!
//! The pump also holds the request's admission permit: a stream counts against
//! `--max-concurrent-requests` until its last chunk is handed over or it ends early.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use proto::engine::GenerateResponse;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::admission::Permit;
use crate::engines::Choices;
use crate::error::ApiError;
use crate::journey::RequestJourney;
use crate::server::Hangup;

/// Events between the pump and the SSE body; hyper buffers a few more before the socket.
const HANDOVER_EVENTS: usize = 16;

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

/// What a streamed request keeps until its last chunk is handed over or it ends early.
pub struct InFlight {
    /// The request's journey.
    pub journey: RequestJourney,
    /// Its admission place.
    pub permit: Permit,
    /// How long a chunk may wait for the client (`--stream-write-timeout`; `None`: forever).
    pub write_timeout: Option<Duration>,
    /// Closes the client's connection (absent when the router is driven without a server).
    pub hangup: Option<Hangup>,
}

/// An SSE response streaming `choices` through `maker`. A pump task owns the request (its
/// journey, permit and engine streams) and feeds the body; see the module doc.
pub fn sse_response<M: ChunkMaker>(
    choices: Choices,
    maker: M,
    include_usage: bool,
    request: InFlight,
) -> Response {
    let (tx, rx) = mpsc::channel(HANDOVER_EVENTS);
    tokio::spawn(pump(choices, maker, include_usage, request, tx));
    let events = ReceiverStream::new(rx).map(Ok::<Event, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Reads the engine streams into `tx` until the request ends, the client leaves, or it
/// stops reading.
async fn pump<M: ChunkMaker>(
    choices: Choices,
    mut maker: M,
    include_usage: bool,
    request: InFlight,
    tx: mpsc::Sender<Event>,
) {
    let InFlight {
        mut journey,
        permit,
        write_timeout,
        hangup,
    } = request;
    let mut out = Outlet::new(tx, write_timeout);
    for chunk in maker.prelude() {
        out.push(json_event(&chunk));
    }
    let mut merged = choices.merged();
    let failure = loop {
        // The select's borrows of `out` end with it; the step is handled below.
        let step = tokio::select! {
            biased;
            stop = out.keep_flowing() => Err(stop),
            next = merged.next() => Ok(next),
        };
        match step {
            Err(stop) => {
                drop(merged);
                return cut_off(stop, journey, write_timeout, hangup.as_ref());
            }
            Ok(Some((index, Ok(message)))) => {
                journey.observe(&message);
                for chunk in maker.on_message(index, message) {
                    out.push(json_event(&chunk));
                }
            }
            Ok(Some((_, Err(error)))) => break Some(error),
            Ok(None) => break None,
        }
    };
    // The engine calls are over (or failed): free them before waiting for the client.
    drop(merged);
    match failure {
        Some(error) => {
            out.push(json_event(&error.body()));
            journey.abort(&error);
        }
        None => {
            if include_usage {
                out.push(json_event(&maker.usage_chunk()));
            }
            if let Err(stop) = out.drain().await {
                return cut_off(stop, journey, write_timeout, hangup.as_ref());
            }
            journey.depart();
        }
    }
    out.push(done());
    if let Err(Stop::Stalled) = out.drain().await
        && let Some(h) = &hangup
    {
        h.now();
    }
    drop(permit);
}

/// Ends a request whose client left (`Drop` records it) or stopped reading.
fn cut_off(
    stop: Stop,
    journey: RequestJourney,
    write_timeout: Option<Duration>,
    hangup: Option<&Hangup>,
) {
    match stop {
        Stop::Gone => drop(journey),
        Stop::Stalled => {
            let waited = write_timeout.unwrap_or_default().as_secs_f64();
            journey.abort(&ApiError::ClientTimeout(format!(
                "The client did not read the stream for {waited} s."
            )));
            if let Some(h) = hangup {
                h.now();
            }
        }
    }
}

/// Why the handover stopped.
enum Stop {
    /// The SSE body was dropped: the client left.
    Gone,
    /// A chunk waited `--stream-write-timeout` for the client.
    Stalled,
}

/// The pump's end of the handover: events the body has not taken yet, oldest first.
struct Outlet {
    tx: mpsc::Sender<Event>,
    backlog: VecDeque<Event>,
    limit: Option<Duration>,
    /// When the event at the head of the backlog must be taken by.
    due: Option<Instant>,
}

impl Outlet {
    fn new(tx: mpsc::Sender<Event>, limit: Option<Duration>) -> Self {
        Self {
            tx,
            backlog: VecDeque::new(),
            limit,
            due: None,
        }
    }

    fn push(&mut self, event: Event) {
        if self.backlog.is_empty() {
            self.due = self.deadline();
        }
        self.backlog.push_back(event);
    }

    fn deadline(&self) -> Option<Instant> {
        self.limit.map(|l| Instant::now() + l)
    }

    /// Hands the backlog over as fast as the client reads; `Ok` once it is empty. Cancel
    /// safe: an event leaves the backlog only together with its place in the channel.
    async fn drain(&mut self) -> Result<(), Stop> {
        while !self.backlog.is_empty() {
            let place = match self.due {
                Some(due) => tokio::time::timeout_at(due, self.tx.reserve())
                    .await
                    .map_err(|_| Stop::Stalled)?,
                None => self.tx.reserve().await,
            };
            let place = place.map_err(|_| Stop::Gone)?;
            if let Some(event) = self.backlog.pop_front() {
                place.send(event);
            }
            // The next event's wait starts now: the client is reading.
            self.due = self.deadline();
        }
        Ok(())
    }

    /// Drains, then watches for the client leaving: resolves only when the request must
    /// stop, so it can race the engine's next message.
    async fn keep_flowing(&mut self) -> Stop {
        if let Err(stop) = self.drain().await {
            return stop;
        }
        self.tx.closed().await;
        Stop::Gone
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
