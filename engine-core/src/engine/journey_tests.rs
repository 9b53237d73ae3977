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

#[test]
fn shutdown_ends_live_spans_with_reason_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let telemetry =
        Telemetry::init_always_on(service::ENGINE_CORE, &Destination::file(path.clone())).unwrap();
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
    let mut events = handle
        .submit(EngineRequest {
            id: "long".into(),
            prompt: EnginePrompt::TokenIds(vec![1, 2, 3]),
            params: SamplingParams {
                max_tokens: 400,
                ignore_eos: true,
                ..SamplingParams::default()
            },
            trace: TraceContext::On(Context::new()),
            return_journey: false,
            deadline: None,
            placement: Default::default(),
        })
        .unwrap();
    // Running: its first token is out.
    while !matches!(events.blocking_recv(), Some(RequestEvent::Tokens { .. })) {}
    handle.shutdown();
    telemetry.shutdown();

    let spans = spans_in(&path);
    let core: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == span::LLM_CORE)
        .collect();
    assert_eq!(core.len(), 1, "{spans:?}");
    let fin = finished_event(core[0]);
    assert_eq!(
        event_attr(fin, attr::FINISH_STATUS).unwrap()["stringValue"],
        "aborted"
    );
    assert_eq!(
        event_attr(fin, attr::REASON).unwrap()["stringValue"],
        abort_reason::SHUTDOWN
    );
    assert!(
        core[0]["endTimeUnixNano"]
            .as_str()
            .is_some_and(|t| t != "0")
    );
}

#[test]
fn a_request_past_its_deadline_ends_aborted_with_reason_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let telemetry =
        Telemetry::init_always_on(service::ENGINE_CORE, &Destination::file(path.clone())).unwrap();
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
    let started = std::time::Instant::now();
    let mut events = handle
        .submit(EngineRequest {
            id: "slow".into(),
            prompt: EnginePrompt::TokenIds(vec![1, 2, 3]),
            params: SamplingParams {
                max_tokens: 100_000,
                ignore_eos: true,
                ..SamplingParams::default()
            },
            trace: TraceContext::On(Context::new()),
            return_journey: false,
            deadline: Some(started + std::time::Duration::from_millis(60)),
            placement: Default::default(),
        })
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
    let spans = spans_in(&path);
    let core: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == span::LLM_CORE)
        .collect();
    assert_eq!(core.len(), 1);
    let fin = finished_event(core[0]);
    assert_eq!(
        event_attr(fin, attr::FINISH_STATUS).unwrap()["stringValue"],
        "aborted"
    );
    assert_eq!(
        event_attr(fin, attr::REASON).unwrap()["stringValue"],
        abort_reason::TIMEOUT
    );
}
