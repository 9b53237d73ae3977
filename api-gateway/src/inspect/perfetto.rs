//! Journeys as Chrome trace-event JSON (the "JSON Array/Object Format" that chrome://tracing
//! and ui.perfetto.dev open): each span a complete event (`ph: "X"`) on its service's track,
//! each span event an instant (`ph: "i"`) on the same track, times in µs.

use serde_json::{Value, json};

use super::{SpanRecord, TraceJourney};

/// Process ids of the two services' tracks.
const GATEWAY_PID: u64 = 1;
const ENGINE_PID: u64 = 2;

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn span_events(out: &mut Vec<Value>, s: &SpanRecord, pid: u64, tid: u64, trace: &str) {
    out.push(json!({
        "name": s.name, "cat": "span", "ph": "X", "pid": pid, "tid": tid,
        "ts": us(s.start_ns), "dur": us(s.end_ns.saturating_sub(s.start_ns)),
        "args": {"trace_id": trace, "span_id": s.span_id, "attributes": s.attributes},
    }));
    for (at, name, attrs) in &s.events {
        out.push(json!({
            "name": name, "cat": "event", "ph": "i", "s": "t", "pid": pid, "tid": tid,
            "ts": us(*at), "args": attrs,
        }));
    }
}

/// The trace-event document of `journeys`: one thread per request on each service's track.
pub fn export(journeys: &[TraceJourney]) -> Value {
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": GATEWAY_PID, "tid": 0, "args": {"name": "api-gateway"}}),
        json!({"name": "process_name", "ph": "M", "pid": ENGINE_PID, "tid": 0, "args": {"name": "engine-core"}}),
    ];
    for (i, j) in journeys.iter().enumerate() {
        let tid = i as u64 + 1;
        let label = format!("trace {}", &j.trace_id[..j.trace_id.len().min(8)]);
        for pid in [GATEWAY_PID, ENGINE_PID] {
            events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": label}}));
        }
        if let Some(r) = &j.request {
            span_events(&mut events, r, GATEWAY_PID, tid, &j.trace_id);
        }
        for c in &j.core {
            span_events(&mut events, c, ENGINE_PID, tid, &j.trace_id);
        }
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proto::conventions::{journey_event, span};

    use super::*;

    /// The structure the trace-event format requires of every event.
    pub(crate) fn check_trace_events(doc: &Value) -> usize {
        let events = doc["traceEvents"]
            .as_array()
            .expect("traceEvents is an array");
        for e in events {
            assert!(e["name"].is_string(), "{e}");
            let ph = e["ph"].as_str().expect("ph");
            assert!(["X", "i", "M"].contains(&ph), "{e}");
            assert!(e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
            if ph != "M" {
                assert!(e["ts"].as_f64().is_some_and(|t| t >= 0.0), "{e}");
            }
            if ph == "X" {
                assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
            }
            if ph == "i" {
                assert!(
                    ["g", "p", "t"].contains(&e["s"].as_str().unwrap_or("")),
                    "{e}"
                );
            }
        }
        events.len()
    }

    #[test]
    fn a_journey_exports_to_well_formed_trace_events() {
        let record = |name: &str, start: u64, end: u64| SpanRecord {
            name: name.into(),
            service: "s".into(),
            span_id: "ab".into(),
            start_ns: start,
            end_ns: end,
            attributes: BTreeMap::new(),
            events: vec![(start + 10, journey_event::QUEUED.into(), BTreeMap::new())],
        };
        let j = TraceJourney {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            request: Some(record(span::LLM_REQUEST, 1_000, 9_000)),
            core: vec![record(span::LLM_CORE, 2_000, 8_000)],
        };
        let doc = export(&[j]);
        // 2 process names, 2 thread names, 2 spans, 2 instants.
        assert_eq!(check_trace_events(&doc), 8);
        let x: Vec<&Value> = doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .collect();
        assert_eq!(x[0]["ts"], json!(1.0));
        assert_eq!(x[0]["dur"], json!(8.0));
    }
}
