//! The gateway's store of recent journeys, read by `/journeys`: the last N requests, the
//! slowest K of each minute by TTFT and by end-to-end time, and every error and abort. Each
//! entry is one request's record as JSON, with a summary for the table. It is bounded by
//! count and by bytes (the JSON's length plus the summary: what an entry really holds), and
//! independent of trace sampling: a request not exported is still here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// Limits of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Recent requests kept (errors and the slowest are kept besides, up to a quarter of this
    /// each).
    pub max_requests: usize,
    /// Bytes all kept entries may hold.
    pub max_bytes: usize,
    /// Slowest requests kept per minute, by TTFT and by end-to-end time each.
    pub slowest_per_minute: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_requests: 1000,
            max_bytes: 64 << 20,
            slowest_per_minute: 5,
        }
    }
}

/// How a request ended, as the table shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused or failed (validation, engine error, no engine).
    Error,
    /// The client went away, or the request was cut short.
    Aborted,
}

/// One request as the table lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The OpenAI response id.
    pub request_id: String,
    /// Its trace, when it has one.
    pub trace_id: Option<String>,
    /// Its tenant, when the gateway requires API keys.
    pub tenant: Option<String>,
    /// When the gateway received it, ms since the Unix epoch.
    pub received_unix_ms: f64,
    /// The route.
    pub route: &'static str,
    /// HTTP status.
    pub status: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// Receipt to first engine message, ms (none if it never got one).
    pub ttft_ms: Option<f64>,
    /// Receipt to departure, ms.
    pub e2e_ms: f64,
    /// The engine's queue time (first choice), ms.
    pub queue_ms: Option<f64>,
    /// Prompt tokens (all choices).
    pub prompt_tokens: u64,
    /// Completion tokens (all choices).
    pub completion_tokens: u64,
    /// Preemptions (all choices).
    pub num_preemptions: u64,
}

/// A kept request: its summary and its whole record as JSON.
#[derive(Debug)]
pub struct Entry {
    /// For the table.
    pub summary: Summary,
    /// The whole journey (`GET /journeys/api/requests/{id}`).
    pub detail: String,
}

impl Entry {
    /// What it holds in memory, near enough: the JSON, the summary's strings, the structs.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Entry>()
            + self.detail.capacity()
            + self.summary.request_id.capacity()
            + self.summary.trace_id.as_ref().map_or(0, String::capacity)
    }

    fn ttft(&self) -> f64 {
        self.summary.ttft_ms.unwrap_or(self.summary.e2e_ms)
    }
}

/// One minute's slowest: by TTFT, by end-to-end time.
type Slowest = (Vec<Arc<Entry>>, Vec<Arc<Entry>>);

#[derive(Default)]
struct Inner {
    recent: VecDeque<Arc<Entry>>,
    errors: VecDeque<Arc<Entry>>,
    /// Per minute (since the epoch): the slowest by TTFT and by end-to-end time.
    slowest: BTreeMap<u64, Slowest>,
    /// Bytes of every entry in every list (an entry in two lists counts twice: an upper bound).
    bytes: usize,
}

/// The store; cheap to clone.
#[derive(Clone)]
pub struct JourneyStore {
    cfg: StoreConfig,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for JourneyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JourneyStore")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Which requests a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Every kept request (recent, errors, slowest), newest first.
    All,
    /// The slowest of each minute by TTFT.
    SlowestTtft,
    /// The slowest of each minute by end-to-end time.
    SlowestE2e,
    /// Errors and aborts.
    Errors,
}

impl JourneyStore {
    /// An empty store with limits `cfg`.
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            inner: Arc::default(),
        }
    }

    /// Its limits.
    pub fn config(&self) -> StoreConfig {
        self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `entry` where it belongs, then evicts the oldest until within the limits.
    pub fn insert(&self, entry: Entry) {
        let e = Arc::new(entry);
        let size = e.bytes();
        if size > self.cfg.max_bytes / 4 {
            return; // one entry may never crowd out the rest
        }
        let mut g = self.lock();
        let cap_side = (self.cfg.max_requests / 4).max(1);
        g.recent.push_back(Arc::clone(&e));
        g.bytes += size;
        while g.recent.len() > self.cfg.max_requests {
            let old = g.recent.pop_front().map_or(0, |o| o.bytes());
            g.bytes -= old;
        }
        if e.summary.outcome != Outcome::Ok {
            g.errors.push_back(Arc::clone(&e));
            g.bytes += size;
            while g.errors.len() > cap_side {
                let old = g.errors.pop_front().map_or(0, |o| o.bytes());
                g.bytes -= old;
            }
        }
        let minute = (e.summary.received_unix_ms / 60_000.0) as u64;
        let k = self.cfg.slowest_per_minute;
        if k > 0 {
            let (by_ttft, by_e2e) = g.slowest.entry(minute).or_default();
            let (a1, r1) = keep_slowest(by_ttft, &e, k, Entry::ttft);
            let (a2, r2) = keep_slowest(by_e2e, &e, k, |x| x.summary.e2e_ms);
            g.bytes = g.bytes + a1 + a2 - r1 - r2;
            // Minutes beyond what a quarter of the count allows go, oldest first.
            let minutes = (cap_side / (2 * k)).max(1);
            while g.slowest.len() > minutes {
                let Some((_, (a, b))) = g.slowest.pop_first() else {
                    break;
                };
                let freed: usize = a.iter().chain(&b).map(|x| x.bytes()).sum();
                g.bytes -= freed;
            }
        }
        self.evict_bytes(&mut g);
    }

    /// Drops the oldest entries (recent first, then the oldest minute, then errors) until the
    /// byte bound holds.
    fn evict_bytes(&self, g: &mut Inner) {
        while g.bytes > self.cfg.max_bytes {
            if g.recent.len() > 1 {
                let old = g.recent.pop_front().map_or(0, |o| o.bytes());
                g.bytes -= old;
            } else if let Some((_, (a, b))) = g.slowest.pop_first() {
                let freed: usize = a.iter().chain(&b).map(|x| x.bytes()).sum();
                g.bytes -= freed;
            } else if let Some(old) = g.errors.pop_front() {
                g.bytes -= old.bytes();
            } else if let Some(old) = g.recent.pop_front() {
                g.bytes -= old.bytes();
            } else {
                g.bytes = 0;
            }
        }
    }

    /// Bytes held now (an upper bound; never above the configured bound).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The summaries `view` shows, each once, newest first.
    pub fn list(&self, view: View) -> Vec<Summary> {
        let g = self.lock();
        let mut out: Vec<&Arc<Entry>> = match view {
            View::All => g
                .recent
                .iter()
                .chain(&g.errors)
                .chain(g.slowest.values().flat_map(|(a, b)| a.iter().chain(b)))
                .collect(),
            View::SlowestTtft => g.slowest.values().flat_map(|(a, _)| a).collect(),
            View::SlowestE2e => g.slowest.values().flat_map(|(_, b)| b).collect(),
            View::Errors => g.errors.iter().collect(),
        };
        out.sort_by(|a, b| {
            b.summary
                .received_unix_ms
                .total_cmp(&a.summary.received_unix_ms)
        });
        out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        out.into_iter().map(|e| e.summary.clone()).collect()
    }

    /// The whole record of `request_id`.
    pub fn get(&self, request_id: &str) -> Option<String> {
        let g = self.lock();
        g.recent
            .iter()
            .chain(&g.errors)
            .chain(g.slowest.values().flat_map(|(a, b)| a.iter().chain(b)))
            .find(|e| e.summary.request_id == request_id)
            .map(|e| e.detail.clone())
    }
}

/// Keeps `e` among the `k` largest of `list` by `key`; returns the bytes (added, removed).
fn keep_slowest(
    list: &mut Vec<Arc<Entry>>,
    e: &Arc<Entry>,
    k: usize,
    key: impl Fn(&Entry) -> f64,
) -> (usize, usize) {
    if list.len() < k {
        list.push(Arc::clone(e));
        return (e.bytes(), 0);
    }
    let Some((i, min)) = list
        .iter()
        .enumerate()
        .min_by(|a, b| key(a.1).total_cmp(&key(b.1)))
        .map(|(i, m)| (i, key(m)))
    else {
        return (0, 0);
    };
    if key(e) > min {
        let old = std::mem::replace(&mut list[i], Arc::clone(e));
        return (e.bytes(), old.bytes());
    }
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, outcome: Outcome, detail_len: usize) -> Entry {
        Entry {
            summary: Summary {
                request_id: format!("chatcmpl-{i}"),
                trace_id: None,
                tenant: None,
                received_unix_ms: 1.7e12 + (i * 50) as f64,
                route: "/v1/chat/completions",
                status: 200,
                outcome,
                ttft_ms: Some((i * 7919 % 1000) as f64),
                e2e_ms: (i * 104_729 % 5000) as f64,
                queue_ms: Some(1.0),
                prompt_tokens: 10,
                completion_tokens: 10,
                num_preemptions: 0,
            },
            detail: "x".repeat(detail_len),
        }
    }

    #[test]
    fn ten_thousand_requests_stay_within_the_byte_bound() {
        let cfg = StoreConfig {
            max_requests: 500,
            max_bytes: 64 << 10,
            slowest_per_minute: 3,
        };
        let store = JourneyStore::new(cfg);
        let mut peak = 0;
        for i in 0..10_000 {
            let outcome = if i % 17 == 0 {
                Outcome::Error
            } else {
                Outcome::Ok
            };
            store.insert(entry(i, outcome, 200 + i % 700));
            peak = peak.max(store.bytes());
        }
        assert!(peak <= cfg.max_bytes, "peak {peak} bytes");
        // The accounting is an upper bound of what the entries hold.
        let all = store.list(View::All);
        let held: usize = all
            .iter()
            .map(|s| store.get(&s.request_id).unwrap().len())
            .sum();
        assert!(held <= store.bytes());
        // The newest request is kept, and the errors view shows only errors.
        assert_eq!(all[0].request_id, "chatcmpl-9999");
        let errors = store.list(View::Errors);
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|s| s.outcome == Outcome::Error));
    }

    #[test]
    fn the_slowest_of_a_minute_outlive_the_recent_window() {
        let cfg = StoreConfig {
            max_requests: 8,
            max_bytes: 1 << 20,
            slowest_per_minute: 2,
        };
        let store = JourneyStore::new(cfg);
        let mut slow = entry(0, Outcome::Ok, 10);
        slow.summary.ttft_ms = Some(60_000.0);
        store.insert(slow);
        for i in 1..100 {
            store.insert(entry(i, Outcome::Ok, 10));
        }
        assert!(
            store.get("chatcmpl-0").is_some(),
            "the slowest by TTFT is kept"
        );
        let by_ttft = store.list(View::SlowestTtft);
        assert!(by_ttft.iter().any(|s| s.request_id == "chatcmpl-0"));
        assert_eq!(store.list(View::Errors), Vec::<Summary>::new());
        assert!(store.list(View::All).len() >= 8);
    }
}
