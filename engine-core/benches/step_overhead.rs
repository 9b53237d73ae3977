//! The engine's step loop with tracing disabled, to compare a default build (tracing code
//! built, switched off at run time) with one built `--no-default-features` (tracing code not
//! built). `scripts/bench_tracing_overhead.sh` runs both and prints the ratio.
//!
//! Workload: 16 greedy requests of 128 tokens on the tiny model, submitted at once, run to the
//! end; the tiny model keeps the forward pass short, so the step loop's own cost shows.
//! Prints `{"journey_feature": bool, "per_step_us_min": f64, "per_step_us_median": f64}`.

use std::time::Instant;

use engine_core::engine::{EngineConfig, EnginePrompt, EngineRequest, RequestEvent, spawn_engine};
use engine_core::journey::TraceContext;
use engine_core::model::Model;
use engine_core::model::gguf::GgufFile;
use engine_core::model::tiny::{TinySpec, tiny_model_bytes};
use engine_core::sampling::SamplingParams;

const REQUESTS: usize = 16;
const TOKENS: u32 = 128;
const ROUNDS: usize = 15;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let file = GgufFile::from_bytes(tiny_model_bytes(&TinySpec::default())).expect("tiny");
    let model = Model::from_gguf(&file, kernels::CpuBackend::new()).expect("model");
    let handle = spawn_engine(model, EngineConfig::default()).expect("engine");
    let mut per_step = Vec::new();
    for round in 0..ROUNDS + 1 {
        let began = Instant::now();
        let streams: Vec<_> = (0..REQUESTS)
            .map(|i| {
                handle
                    .submit(EngineRequest {
                        id: format!("r{round}-{i}"),
                        prompt: EnginePrompt::TokenIds(vec![1 + i as u32, 2, 3, 4]),
                        params: SamplingParams {
                            temperature: 0.0,
                            max_tokens: TOKENS,
                            ignore_eos: true,
                            ..SamplingParams::default()
                        },
                        trace: TraceContext::Off,
                        return_journey: false,
                        deadline: None,
                        placement: Default::default(),
                    })
                    .expect("submit")
            })
            .collect();
        for mut s in streams {
            while let Some(e) = s.blocking_recv() {
                if matches!(e, RequestEvent::Finished { .. }) {
                    break;
                }
            }
        }
        // All requests run together: one prefill step, then one step per further token.
        let steps = f64::from(TOKENS);
        if round > 0 {
            per_step.push(began.elapsed().as_secs_f64() * 1e6 / steps);
        }
    }
    handle.shutdown();
    per_step.sort_by(f64::total_cmp);
    println!(
        "{{\"journey_feature\": {}, \"per_step_us_min\": {:.2}, \"per_step_us_median\": {:.2}}}",
        cfg!(feature = "journey"),
        per_step[0],
        per_step[per_step.len() / 2]
    );
}
