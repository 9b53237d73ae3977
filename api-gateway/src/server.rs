//! The gateway's HTTP server: axum's `serve` loop (accept, one task per connection, graceful
//! shutdown) with the client deadlines it cannot set. hyper's HTTP/1 `header_read_timeout`
//! needs a timer, which `axum::serve` does not give it, so connections are served here with
//! hyper-util's builder (HTTP/1 and HTTP/2, as `axum::serve` does).
//!
//! - **Header read timeout.** A connection that sends no byte within it, or whose request
//!   headers are not complete within it of their first byte, is closed without an answer
//!   (hyper's HTTP/1 behaviour). An idle keep-alive connection is waiting for headers too,
//!   so it is closed after the same time. HTTP/2 (prior knowledge) gets only the first-byte
//!   deadline: hyper has no header timeout for its streams.
//! - **Hang-up.** Each request carries a [`Hangup`] for its connection, so a streamed
//!   response whose client stopped reading can close the connection: hyper no longer polls
//!   the body of a client that does not read, so ending the body would not.
//!
//! The body read timeout and the stream write deadline are the handlers' (see
//! [`crate::extract`] and [`crate::streaming`]); their values travel in [`Timeouts`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// The client deadlines; `None` waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection's request headers must be complete within it (`--header-read-timeout`).
    pub header_read: Option<Duration>,
    /// A request body must be complete within it of the handler's start (`--body-read-timeout`).
    pub body_read: Option<Duration>,
    /// A streamed chunk must be taken by the client within it (`--stream-write-timeout`).
    pub stream_write: Option<Duration>,
}

impl Default for Timeouts {
    /// The flags' defaults: 10 s for headers, 30 s for a body, 30 s per streamed chunk.
    fn default() -> Self {
        Self {
            header_read: Some(Duration::from_secs(10)),
            body_read: Some(Duration::from_secs(30)),
            stream_write: Some(Duration::from_secs(30)),
        }
    }
}

/// Closes the connection a request came on; a request extension.
#[derive(Debug, Clone, Default)]
pub struct Hangup(Arc<Notify>);

impl Hangup {
    /// Closes the connection now, dropping whatever it still had to send or receive.
    pub fn now(&self) {
        // `notify_one` keeps the wake-up if the connection task is not waiting yet.
        self.0.notify_one();
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets each
/// connection finish its requests in flight, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // Connections hold `stop_rx` clones and watch it; `done_tx` sees every clone of
    // `done_rx` dropped once the last connection task ends (axum's own scheme).
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stop_rx);
    });
    let (done_tx, done_rx) = watch::channel(());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stop_tx.closed() => break,
        };
        let stop = stop_tx.clone();
        let done = done_rx.clone();
        let app = app.clone();
        tokio::spawn(async move {
            connection(stream, app, header_read, stop).await;
            drop(done);
        });
    }
    drop(done_rx);
    drop(listener);
    done_tx.closed().await;
}

/// Serves one connection until it closes, is hung up, or times out reading headers.
async fn connection(
    stream: TcpStream,
    app: Router,
    header_read: Option<Duration>,
    stop: watch::Sender<()>,
) {
    // hyper's timer starts once it knows the protocol, which takes a first byte.
    if let Some(within) = header_read {
        let mut byte = [0u8; 1];
        tokio::select! {
            peeked = tokio::time::timeout(within, stream.peek(&mut byte)) => {
                if !matches!(peeked, Ok(Ok(n)) if n > 0) {
                    return;
                }
            }
            () = stop.closed() => return,
        }
    }
    let hangup = Hangup::default();
    let on_request = hangup.clone();
    let service = app.map_request(move |request: Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(on_request.clone());
        request
    });
    let service = TowerToHyperService::new(service);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    // As axum::serve: the CONNECT protocol for HTTP/2 websockets.
    builder.http2().enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = std::pin::pin!(stop.closed());
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = hangup.0.notified() => {
                tracing::debug!("connection hung up: a streaming client stopped reading");
                return;
            }
            () = &mut stopping, if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// An accept that failed: a connection error is the client's; anything else (out of file
/// descriptors) is logged and waited out for a second, as hyper 0.14 and axum do.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
