//! A real OTLP/gRPC trace receiver (opentelemetry-proto's `TraceServiceServer`) on a free
//! loopback port, collecting what the real processes export, with helpers to read spans,
//! events and attributes back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use tokio_stream::wrappers::TcpListenerStream;

/// One received span with where it came from.
#[derive(Clone, Debug)]
pub struct Received {
    /// `service.name` of its resource.
    pub service: String,
    /// `service.instance.id` of its resource (empty when unset).
    pub instance: String,
    /// Its instrumentation scope.
    pub scope: String,
    /// The span.
    pub span: Span,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut all = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            let instance = rs
                .resource
                .as_ref()
                .and_then(|r| {
                    string_attr(&r.attributes, proto::conventions::attr::SERVICE_INSTANCE_ID)
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                for span in ss.spans {
                    all.push(Received {
                        service: service.clone(),
                        instance: instance.clone(),
                        scope: scope.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running server: its shutdown trigger and its task.
type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// The receiver; it stops with the test's runtime, or at [`Collector::stop`].
pub struct Collector {
    sink: Sink,
    /// Where it listens.
    pub addr: SocketAddr,
    server: Option<Running>,
}

fn serve(listener: tokio::net::TcpListener, sink: Sink) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = TraceServiceServer::new(sink);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, task)
}

impl Collector {
    /// Starts a receiver on `127.0.0.1:0` (call inside a Tokio runtime).
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Sink::default();
        let server = Some(serve(listener, sink.clone()));
        Collector { sink, addr, server }
    }

    /// Stops it as a collector restart does: the port refuses connections from now on, and
    /// open connections are closed (after their calls in flight). What it received stays.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the receiver closes its connections")
                .expect("the receiver task");
        }
    }

    /// Listens again on the same port (after [`stop`](Self::stop)), keeping what it received.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}; trying again", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.server = Some(serve(listener, self.sink.clone()));
    }

    /// The endpoint to give `--otlp-traces-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.sink.0.lock().unwrap().clone()
    }

    /// Waits (polling, up to 30 s) until `done` holds for the received spans; returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() > deadline {
                let names: Vec<_> = spans.iter().map(|s| s.span.name.clone()).collect();
                panic!("timed out waiting for {what}; received {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A string attribute.
pub fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// An integer attribute.
pub fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)?.value.as_ref()? {
        Value::IntValue(v) => Some(*v),
        _ => None,
    }
}

/// A float attribute.
pub fn float_attr(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match attr(attrs, key)?.value.as_ref()? {
        Value::DoubleValue(v) => Some(*v),
        _ => None,
    }
}

/// Any attribute.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs.iter().find(|kv| kv.key == key)?.value.as_ref()
}

/// Event names in order.
pub fn event_names(span: &Span) -> Vec<&str> {
    span.events.iter().map(|e| e.name.as_str()).collect()
}

/// The events named `name`.
pub fn events<'a>(span: &'a Span, name: &str) -> Vec<&'a Event> {
    span.events.iter().filter(|e| e.name == name).collect()
}

/// Lower-case hex of an id.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
