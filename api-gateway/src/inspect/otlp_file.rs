//! The spans of an OTLP-JSON lines file (one `ExportTraceServiceRequest` per line, as the
//! embedded default exporter writes them), grouped into one [`TraceJourney`] per trace. The
//! file's rotated predecessors (`<file>.1` …) are read too, oldest first: a request whose spans
//! straddle a rotation is still one journey.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use proto::conventions::{api_event, span};
use serde_json::Value;

/// One span with what `journey` reads of it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// Its name (`llm_request`, `llm_core`, ...).
    pub name: String,
    /// Its service (`service.name` of its resource).
    pub service: String,
    /// Span id, hex.
    pub span_id: String,
    /// Start and end, ns since the Unix epoch.
    pub start_ns: u64,
    /// End, ns since the Unix epoch.
    pub end_ns: u64,
    /// Attributes (values as JSON: strings, numbers, booleans).
    pub attributes: BTreeMap<String, Value>,
    /// Events: (ns since the Unix epoch, name, attributes), in time order.
    pub events: Vec<(u64, String, BTreeMap<String, Value>)>,
}

impl SpanRecord {
    /// A numeric attribute.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.attributes.get(key).and_then(Value::as_f64)
    }

    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// When its first event named `name` happened, ns since the epoch.
    pub fn event_ns(&self, name: &str) -> Option<u64> {
        self.events.iter().find(|e| e.1 == name).map(|e| e.0)
    }
}

/// One trace's request: its gateway span and its engine spans (one per choice).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceJourney {
    /// Trace id, hex.
    pub trace_id: String,
    /// The gateway's `llm_request` span, when exported.
    pub request: Option<SpanRecord>,
    /// The engine's `llm_core` spans.
    pub core: Vec<SpanRecord>,
}

impl TraceJourney {
    /// When it started: the gateway's receipt, else the first engine span.
    pub fn start_ns(&self) -> u64 {
        self.request
            .as_ref()
            .map(|r| r.start_ns)
            .into_iter()
            .chain(self.core.iter().map(|c| c.start_ns))
            .min()
            .unwrap_or(0)
    }

    /// When it ended.
    pub fn end_ns(&self) -> u64 {
        self.request
            .as_ref()
            .map(|r| r.end_ns)
            .into_iter()
            .chain(self.core.iter().map(|c| c.end_ns))
            .max()
            .unwrap_or(0)
    }

    /// Receipt to the first engine message, ms (the gateway's TTFT).
    pub fn ttft_ms(&self) -> Option<f64> {
        let r = self.request.as_ref()?;
        let first = r.event_ns(api_event::FIRST_RESPONSE_FROM_CORE)?;
        Some(first.saturating_sub(r.start_ns) as f64 / 1e6)
    }

    /// Start to end, ms.
    pub fn e2e_ms(&self) -> f64 {
        self.end_ns().saturating_sub(self.start_ns()) as f64 / 1e6
    }
}

/// Every request journey in the OTLP-JSON lines file at `path` and its rotated files, oldest
/// first (step spans and windows are left out).
pub fn read_journeys(path: &Path) -> anyhow::Result<Vec<TraceJourney>> {
    let files = proto::telemetry::trace_files(path);
    if files.is_empty() {
        // Neither the file nor a rotated one: say why opening it fails.
        std::fs::File::open(path)
            .with_context(|| format!("reading the trace file {}", path.display()))?;
    }
    let mut by_trace: BTreeMap<String, TraceJourney> = BTreeMap::new();
    for file in &files {
        let open = std::fs::File::open(file)
            .with_context(|| format!("reading the trace file {}", file.display()))?;
        // Line by line: a full set of rotated files is hundreds of MiB.
        for (n, line) in std::io::BufReader::new(open).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not OTLP JSON", file.display(), n + 1))?;
            add_spans(&v, &mut by_trace);
        }
    }
    let mut all: Vec<TraceJourney> = by_trace.into_values().collect();
    for j in &mut all {
        j.core.sort_by_key(|c| c.start_ns);
    }
    all.sort_by_key(TraceJourney::start_ns);
    Ok(all)
}

/// Files the journey spans of one export line (an `ExportTraceServiceRequest`) by trace.
fn add_spans(v: &Value, by_trace: &mut BTreeMap<String, TraceJourney>) {
    for rs in v["resourceSpans"].as_array().into_iter().flatten() {
        let service = attributes(&rs["resource"]["attributes"])
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let name = s["name"].as_str().unwrap_or_default();
                if name != span::LLM_REQUEST && name != span::LLM_CORE {
                    continue;
                }
                let trace_id = s["traceId"].as_str().unwrap_or_default().to_owned();
                let mut events: Vec<_> = s["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        (
                            nanos(&e["timeUnixNano"]),
                            e["name"].as_str().unwrap_or_default().to_owned(),
                            attributes(&e["attributes"]),
                        )
                    })
                    .collect();
                events.sort_by_key(|e| e.0);
                let rec = SpanRecord {
                    name: name.to_owned(),
                    service: service.clone(),
                    span_id: s["spanId"].as_str().unwrap_or_default().to_owned(),
                    start_ns: nanos(&s["startTimeUnixNano"]),
                    end_ns: nanos(&s["endTimeUnixNano"]),
                    attributes: attributes(&s["attributes"]),
                    events,
                };
                let j = by_trace
                    .entry(trace_id.clone())
                    .or_insert_with(|| TraceJourney {
                        trace_id,
                        ..TraceJourney::default()
                    });
                if rec.name == span::LLM_REQUEST {
                    j.request = Some(rec);
                } else {
                    j.core.push(rec);
                }
            }
        }
    }
}

/// OTLP JSON writes 64-bit integers as strings.
fn nanos(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
        .unwrap_or(0)
}

fn attributes(v: &Value) -> BTreeMap<String, Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let key = kv["key"].as_str()?.to_owned();
            let val = &kv["value"];
            let value = if let Some(s) = val.get("stringValue") {
                s.clone()
            } else if let Some(i) = val.get("intValue") {
                i.as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .map_or_else(|| i.clone(), Value::from)
            } else if let Some(d) = val.get("doubleValue") {
                d.clone()
            } else if let Some(b) = val.get("boolValue") {
                b.clone()
            } else {
                val.clone()
            };
            Some((key, value))
        })
        .collect()
}
