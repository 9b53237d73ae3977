//! Journey's engine: loads a Llama-family GGUF model and runs it.
//!
//! - [`model`]: GGUF reading, the Llama forward pass, tokenizer, chat template, tiny test model.
//! - [`sampling`]: logits to tokens (greedy, temperature, top-k/p, min-p, penalties, stops).
//! - [`kv_cache`]: the paged KV block allocator.
//! - [`generate`]: a single-request generation loop (the `generate` CLI).
//! - [`scheduler`]: the batching policy (token budget, chunked prefill, KV admission, preemption).
//! - [`engine`]: the step loop on its own thread that owns the model, KV pool and requests.
//! - [`journey`]: the `llm_core` and step spans the step loop emits when tracing is on.
//! - [`metrics`]: Prometheus metrics from the same lifecycle, traced or not.
//! - [`server`]: the gRPC service.

pub mod engine;
pub mod generate;
pub mod journal;
pub mod journey;
pub mod kv_cache;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod sampling;
pub mod scheduler;
pub mod server;
