//! The engine's journey spans through the embedded default exporter (OTLP-JSON lines), with
//! no processes: shutdown ends live spans with reason `shutdown`; a dropped guard still ends
//! its span.

use opentelemetry::Context;
use proto::conventions::{abort_reason, attr, journey_event, scope, service, span};
use proto::telemetry::{Destination, Telemetry};
use serde_json::Value;

use super::{CoreSpan, CoreTracer, Progress, TraceContext};
use crate::engine::{EngineConfig, EnginePrompt, EngineRequest, EngineTelemetry, RequestEvent};
use crate::model::Model;
use crate::model::gguf::GgufFile;
use crate::model::tiny::{TinySpec, tiny_model_bytes};
use crate::sampling::SamplingParams;

/// Every span in an OTLP-JSON lines file, flattened.
fn spans_in(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("trace file");
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON object per line");
        for rs in v["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                assert_eq!(ss["scope"]["name"], scope::SCHEDULER);
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

fn event_attr<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    event["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

fn finished_event(span: &Value) -> &Value {
    span["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == journey_event::FINISHED)
        .expect("a FINISHED event")
}

#[test]
fn shutdown_ends_live_spans_with_reason_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let telemetry =
        Telemetry::init_always_on(service::ENGINE_CORE, &Destination::File(path.clone())).unwrap();
    let core = CoreTracer::new(telemetry.tracer(scope::SCHEDULER), 1.0);
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
fn a_dropped_guard_still_ends_its_span() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let telemetry =
        Telemetry::init_always_on(service::ENGINE_CORE, &Destination::File(path.clone())).unwrap();
    let core = CoreTracer::new(telemetry.tracer(scope::SCHEDULER), 1.0);
    let p = Progress {
        prompt_tokens: 3,
        max_tokens: 8,
        ..Progress::default()
    };
    drop(CoreSpan::queued(&core, &Context::new(), "dropped", p));
    telemetry.shutdown();
    let spans = spans_in(&path);
    assert_eq!(spans.len(), 1);
    let names: Vec<&str> = spans[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [journey_event::QUEUED, journey_event::FINISHED]);
    let fin = finished_event(&spans[0]);
    assert_eq!(
        event_attr(fin, attr::FINISH_STATUS).unwrap()["stringValue"],
        "aborted"
    );
}
