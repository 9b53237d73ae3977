//! Reading journeys without a browser or a tracing backend: the `journey` command's library.
//!
//! - [`otlp_file`]: the spans of the embedded default exporter's file (OTLP-JSON lines),
//!   grouped by trace into [`TraceJourney`]s (the gateway's `llm_request` and the engine's
//!   `llm_core` spans of one request).
//! - [`text`]: a journey as a text waterfall (`journey show`), and the slowest (`journey top`).
//! - [`perfetto`]: journeys as Chrome trace-event JSON, which ui.perfetto.dev opens.

pub mod otlp_file;
pub mod perfetto;
pub mod text;

pub use otlp_file::{SpanRecord, TraceJourney, read_journeys};
