//! Step-tracing settings and decisions; plain data, built whether or not the tracing code is.

/// Step-tracing settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTracingConfig {
    /// Fraction of steps traced.
    pub sample_rate: f64,
    /// Fraction of traced steps that also get per-request snapshots.
    pub rich_subsample_rate: f64,
    /// Steps per window.
    pub closure_interval: u64,
    /// The KV pool's device, for `kv.device`.
    pub kv_device: String,
}

/// Whether a step is traced, and how richly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepSampling {
    /// Not traced.
    #[default]
    Off,
    /// Batch summary only.
    Summary,
    /// Summary plus a snapshot per running request.
    Rich,
}
