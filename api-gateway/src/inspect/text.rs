//! Journeys as text: one request's waterfall (`journey show`) and the slowest (`journey top`).

use std::fmt::Write;

use proto::conventions::attr;

use super::{SpanRecord, TraceJourney};

/// Columns of the bars.
const WIDTH: usize = 60;

/// Which duration `top` ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankBy {
    /// Receipt to first engine message.
    Ttft,
    /// Start to end.
    E2e,
}

fn ms(ns: u64, from: u64) -> f64 {
    ns.saturating_sub(from) as f64 / 1e6
}

/// A bar of `WIDTH` columns with `[a, b]` of `[0, total]` filled.
fn bar(a: f64, b: f64, total: f64) -> String {
    let col = |x: f64| {
        ((x / total.max(1e-9)) * WIDTH as f64)
            .round()
            .clamp(0.0, WIDTH as f64) as usize
    };
    let (from, to) = (col(a), col(b).max(col(a) + 1).min(WIDTH));
    format!(
        "|{}{}{}|",
        " ".repeat(from),
        "█".repeat(to.saturating_sub(from)),
        " ".repeat(WIDTH - to.max(from))
    )
}

fn span_lines(out: &mut String, label: &str, s: &SpanRecord, t0: u64, total: f64) {
    let _ = writeln!(
        out,
        "{label:<22}{} {:>9.1} ms",
        bar(ms(s.start_ns, t0), ms(s.end_ns, t0), total),
        ms(s.end_ns, s.start_ns)
    );
    for (at, name, a) in &s.events {
        let mut what = String::new();
        if let Some(step) = a.get(attr::SCHEDULER_STEP).and_then(|v| v.as_i64()) {
            let _ = write!(what, "step {step}");
        }
        for key in [
            attr::PHASE,
            attr::SCHEDULE_KIND,
            attr::WAIT_ENDED,
            attr::FINISH_STATUS,
            attr::REASON,
        ] {
            if let Some(v) = a.get(key).and_then(|v| v.as_str()) {
                let _ = write!(what, "{}{key}={v}", if what.is_empty() { "" } else { "  " });
            }
        }
        let _ = writeln!(out, "  {name:<28}{:>10.1} ms  {what}", ms(*at, t0));
    }
}

/// `trace`'s journey as a text waterfall: the gateway span and each engine span with their
/// events on one time axis, then the engine's stage times.
pub fn show(trace: &TraceJourney) -> String {
    let t0 = trace.start_ns();
    let total = trace.e2e_ms();
    let mut out = String::new();
    let route = trace
        .request
        .as_ref()
        .and_then(|r| r.str(attr::HTTP_ROUTE))
        .unwrap_or("(engine only)");
    let status = trace
        .request
        .as_ref()
        .and_then(|r| r.num(attr::HTTP_RESPONSE_STATUS_CODE))
        .map_or_else(|| "-".to_owned(), |s| format!("{s}"));
    let ttft = trace
        .ttft_ms()
        .map_or_else(|| "-".to_owned(), |t| format!("{t:.1} ms"));
    let _ = writeln!(
        out,
        "trace {}  {route}  status {status}  TTFT {ttft}  e2e {total:.1} ms",
        trace.trace_id
    );
    if let Some(r) = &trace.request {
        span_lines(&mut out, "gateway llm_request", r, t0, total);
    }
    for (i, c) in trace.core.iter().enumerate() {
        span_lines(
            &mut out,
            &format!("engine llm_core #{}", i + 1),
            c,
            t0,
            total,
        );
        let stage = |k: &str| c.num(k).map(|s| s * 1e3);
        let parts = [
            ("tokenize", attr::TIME_TOKENIZE),
            ("handoff", attr::TIME_HANDOFF),
            ("queue.step", attr::TIME_QUEUE_STEP),
            ("queue.running_slot", attr::TIME_QUEUE_RUNNING_SLOT),
            ("queue.kv_blocks", attr::TIME_QUEUE_KV_BLOCKS),
            ("queue.token_budget", attr::TIME_QUEUE_TOKEN_BUDGET),
            ("requeue", attr::TIME_REQUEUE),
            ("detokenize", attr::TIME_DETOKENIZE),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter_map(|(name, key)| stage(key).map(|v| format!("{name} {v:.2} ms")))
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(out, "  stages: {}", shown.join(" · "));
        }
    }
    out
}

/// The `limit` slowest journeys by `by`, one line each.
pub fn top(journeys: &[TraceJourney], by: RankBy, limit: usize) -> String {
    let key = |j: &TraceJourney| match by {
        RankBy::Ttft => j.ttft_ms().unwrap_or(-1.0),
        RankBy::E2e => j.e2e_ms(),
    };
    let mut ranked: Vec<&TraceJourney> = journeys.iter().collect();
    ranked.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let mut out = format!(
        "{:<34}{:<24}{:>7}{:>11}{:>11}{:>9}\n",
        "trace", "route", "status", "TTFT ms", "e2e ms", "preempt"
    );
    for j in ranked.into_iter().take(limit) {
        let r = j.request.as_ref();
        let preempt: f64 = j
            .core
            .iter()
            .filter_map(|c| c.num(attr::NUM_PREEMPTIONS))
            .sum();
        let _ = writeln!(
            out,
            "{:<34}{:<24}{:>7}{:>11}{:>11.1}{:>9}",
            j.trace_id,
            r.and_then(|r| r.str(attr::HTTP_ROUTE)).unwrap_or("-"),
            r.and_then(|r| r.num(attr::HTTP_RESPONSE_STATUS_CODE))
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            j.ttft_ms()
                .map_or_else(|| "-".to_owned(), |t| format!("{t:.1}")),
            j.e2e_ms(),
            preempt
        );
    }
    out
}
