//! Journey spans of requests the engine cuts short.

use opentelemetry::Context;
use proto::conventions::{abort_reason, attr, scope, service, span};
use proto::telemetry::{Destination, Telemetry};
use serde_json::Value;

use super::{EngineConfig, EnginePrompt, EngineRequest, EngineTelemetry, RequestEvent};
use crate::journey::tests::{event_attr, finished_event, spans_in};
use crate::journey::{CoreTracer, TraceContext};
use crate::model::Model;
use crate::model::gguf::GgufFile;
use crate::model::tiny::{TinySpec, tiny_model_bytes};
use crate::sampling::SamplingParams;

/// An engine on the tiny model whose `llm_core` spans all go to the trace file at `path`.
fn traced_engine(path: &std::path::Path) -> (Telemetry, super::EngineHandle) {
    let telemetry =
        Telemetry::init_always_on(service::ENGINE_CORE, &Destination::file(path.to_owned()))
            .unwrap();
    let core = CoreTracer::new(
        telemetry.tracer(scope::SCHEDULER),
        1.0,
        proto::telemetry::sampling::SampleKey::random(),
    );
    let file = GgufFile::from_bytes(tiny_model_bytes(&TinySpec::default())).unwrap();
    let model = Model::from_gguf(&file, kernels::CpuBackend::new()).unwrap();
    let handle = crate::engine::spawn_engine_with(
        model,
        EngineConfig::default(),
        EngineTelemetry {
            core: Some(core),
            ..EngineTelemetry::default()
        },
    )
    .unwrap();
    (telemetry, handle)
}

/// A traced request of `max_tokens` (EOS ignored) on a three-token prompt.
fn traced_request(
    id: &str,
    max_tokens: u32,
    deadline: Option<std::time::Instant>,
) -> EngineRequest {
    EngineRequest {
        id: id.into(),
        prompt: EnginePrompt::TokenIds(vec![1, 2, 3]),
        params: SamplingParams {
            max_tokens,
            ignore_eos: true,
            ..SamplingParams::default()
        },
        trace: TraceContext::On(Context::new()),
        return_journey: false,
        deadline,
        placement: Default::default(),
    }
}

/// The one `llm_core` span in the trace file at `path`.
fn core_span(path: &std::path::Path) -> Value {
    let spans = spans_in(path);
    let core: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == span::LLM_CORE)
        .collect();
    assert_eq!(core.len(), 1, "{spans:?}");
    core[0].clone()
}

/// `core` finished `aborted` with `reason`.
fn assert_aborted_with(core: &Value, reason: &str) {
    let fin = finished_event(core);
    assert_eq!(
        event_attr(fin, attr::FINISH_STATUS).unwrap()["stringValue"],
        "aborted"
    );
    assert_eq!(
        event_attr(fin, attr::REASON).unwrap()["stringValue"],
        reason
    );
}

#[test]
fn shutdown_ends_live_spans_with_reason_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let (telemetry, handle) = traced_engine(&path);
    let mut events = handle.submit(traced_request("long", 400, None)).unwrap();
    // Running: its first token is out.
    while !matches!(events.blocking_recv(), Some(RequestEvent::Tokens { .. })) {}
    handle.shutdown();
    telemetry.shutdown();

    let core = core_span(&path);
    assert_aborted_with(&core, abort_reason::SHUTDOWN);
    assert!(core["endTimeUnixNano"].as_str().is_some_and(|t| t != "0"));
}

#[test]
fn a_request_past_its_deadline_ends_aborted_with_reason_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let (telemetry, handle) = traced_engine(&path);
    let started = std::time::Instant::now();
    let mut events = handle
        .submit(traced_request(
            "slow",
            100_000,
            Some(started + std::time::Duration::from_millis(60)),
        ))
        .unwrap();
    let finish = loop {
        match events.blocking_recv() {
            Some(RequestEvent::Finished(f)) => break f.finish,
            Some(_) => {}
            None => panic!("no Finished"),
        }
    };
    assert_eq!(
        finish,
        crate::lifecycle::Finish::Aborted(crate::lifecycle::AbortCause::Timeout)
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(60));
    handle.shutdown();
    telemetry.shutdown();
    let core = core_span(&path);
    assert_aborted_with(&core, abort_reason::TIMEOUT);
}
