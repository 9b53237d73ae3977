//! The `llm_core` span guard through the embedded default exporter (OTLP-JSON lines), with no
//! engine: a dropped guard still ends its span. The helpers read such files for the engine's
//! own span tests.

use opentelemetry::Context;
use proto::conventions::{attr, journey_event, scope, service};
use proto::telemetry::{Destination, Telemetry};
use serde_json::Value;

use super::{CoreSpan, CoreTracer, Progress};

/// Every span in an OTLP-JSON lines file, flattened.
pub(crate) fn spans_in(path: &std::path::Path) -> Vec<Value> {
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

pub(crate) fn event_attr<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    event["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

pub(crate) fn finished_event(span: &Value) -> &Value {
    span["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == journey_event::FINISHED)
        .expect("a FINISHED event")
}

#[test]
fn a_dropped_guard_still_ends_its_span() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.jsonl");
    let telemetry =
        Telemetry::init_always_on(service::ENGINE_CORE, &Destination::file(path.clone())).unwrap();
    let core = CoreTracer::new(
        telemetry.tracer(scope::SCHEDULER),
        1.0,
        proto::telemetry::sampling::SampleKey::random(),
    );
    let p = Progress {
        prompt_tokens: 3,
        max_tokens: 8,
        ..Progress::default()
    };
    drop(CoreSpan::queued(
        &core,
        &Context::new(),
        "dropped",
        &Default::default(),
        p,
    ));
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
