//! The metrics as an [`EngineObserver`]: each lifecycle event updates the metrics that count it.

use std::sync::Arc;

use std::time::Duration;

use proto::conventions::{metric, stage};

use super::EngineMetrics;
use crate::lifecycle::{
    EngineObserver, EngineStats, Event, Finished, RequestRef, StepEnd, Timings, between,
};

impl EngineObserver for Arc<EngineMetrics> {
    fn on_request(&mut self, req: &RequestRef<'_>, event: &Event<'_>) {
        match event {
            Event::Queued { .. } => {}
            Event::Scheduled {
                num_cached_tokens, ..
            } => {
                self.prefix_queries
                    .inc_by(req.progress.prompt_tokens as u64);
                self.prefix_hits.inc_by(*num_cached_tokens as u64);
            }
            Event::Preempted { .. } => {
                self.preemptions.inc();
            }
            Event::FirstToken { ttft } => self.ttft.observe(ttft.as_secs_f64()),
            Event::Token { since_previous } => self.itl.observe(since_previous.as_secs_f64()),
            Event::Finished { finished, .. } => self.finished(finished),
        }
    }

    fn on_step_end(&mut self, step: &StepEnd<'_>) {
        let b = step.batch;
        self.iteration_tokens
            .observe((b.prefill_tokens + b.decode_tokens) as f64);
        self.batch_size
            .observe((b.num_prefill_reqs + b.num_decode_reqs) as f64);
        self.set_load(step.load);
    }
}

impl EngineMetrics {
    fn finished(&self, f: &Finished) {
        self.finished
            .get_or_create(&vec![(
                metric::LABEL_FINISHED_REASON,
                f.finish.reason().status(),
            )])
            .inc();
        self.prompt_tokens.inc_by(u64::from(f.usage.prompt_tokens));
        self.generation_tokens
            .inc_by(u64::from(f.usage.completion_tokens));
        let t = &f.timings;
        self.observe_stages(t);
        if let Some(e2e) = t.e2e() {
            self.e2e.observe(e2e.as_secs_f64());
        }
        if let Some(queue) = t.queue_time() {
            self.queue.observe(queue.as_secs_f64());
            self.prefill.observe(t.prefill_time.as_secs_f64());
            self.decode.observe(t.decode_time.as_secs_f64());
        }
    }

    /// Each stage the request went through (a request refused before its first scheduling
    /// has only the first ones).
    fn observe_stages(&self, t: &Timings) {
        let observe = |stage: &'static str, d: Duration| {
            self.stages
                .get_or_create(&vec![(metric::LABEL_STAGE, stage)])
                .observe(d.as_secs_f64());
        };
        observe(stage::TOKENIZE, t.tokenize);
        if let Some(h) = t.handoff() {
            observe(stage::HANDOFF, h);
        }
        if t.scheduled.is_some() {
            let q = &t.queue_wait;
            observe(stage::QUEUE_STEP, q.step);
            observe(stage::QUEUE_RUNNING_SLOT, q.running_slot);
            observe(stage::QUEUE_KV_BLOCKS, q.kv_blocks);
            observe(stage::QUEUE_TOKEN_BUDGET, q.token_budget);
        }
        if let (Some(s), Some(f)) = (t.scheduled, t.first_token) {
            observe(stage::PREFILL, between(s, f));
            observe(stage::DECODE, t.decode_time);
            observe(stage::DETOKENIZE, t.detokenize);
        }
    }

    fn set_load(&self, load: &EngineStats) {
        self.running.set(load.num_running as i64);
        self.waiting.set(load.num_waiting as i64);
        self.kv_usage
            .set(load.kv_blocks_used as f64 / load.kv_blocks_total.max(1) as f64);
        self.window_usage
            .set(load.window_blocks_used as f64 / load.window_blocks_total.max(1) as f64);
    }
}

#[cfg(test)]
mod tests {
    use proto::telemetry::Stamp;

    use super::*;
    use crate::lifecycle::{Finish, Progress, StopReason, Timings, Usage};
    use crate::scheduler::{BatchStats, RequestId};

    #[test]
    fn names_and_values_render() {
        let mut m = Arc::new(EngineMetrics::new());
        let req = RequestRef {
            id: RequestId(0),
            name: "r",
            progress: Progress::default(),
        };
        m.on_request(
            &req,
            &Event::Preempted {
                cause: crate::scheduler::PreemptCause::KvBlocks,
            },
        );
        let finished = Finished {
            finish: Finish::Stop(StopReason::Eos),
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
            },
            timings: Timings::new(Stamp::now()),
            num_preemptions: 1,
            journey: None,
        };
        m.on_request(
            &req,
            &Event::Finished {
                finished: &finished,
                load: &EngineStats::default(),
            },
        );
        let load = EngineStats {
            num_running: 2,
            num_waiting: 3,
            kv_blocks_used: 1,
            kv_blocks_total: 4,
            ..EngineStats::default()
        };
        m.on_step_end(&StepEnd {
            step: 0,
            started: Stamp::now(),
            ended: Stamp::now(),
            schedule_time: std::time::Duration::ZERO,
            model_time: std::time::Duration::ZERO,
            batch: &BatchStats::default(),
            num_preempted: 0,
            num_finished: 0,
            load: &load,
            snapshots: &Vec::new,
        });
        let text = m.render();
        for needle in [
            "journey:num_preemptions_total 1",
            "journey:request_success_total{finished_reason=\"stopped\"} 1",
            "journey:prompt_tokens_total 5",
            "journey:generation_tokens_total 7",
            "journey:num_requests_running 2",
            "journey:kv_cache_usage_perc 0.25",
            "journey:time_to_first_token_seconds_bucket{le=\"0.001\"} 0",
            // A request that never ran has a tokenize stage and no queue stages.
            "journey:request_stage_seconds_count{stage=\"tokenize\"} 1",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!text.contains("stage=\"queue_kv_blocks\""), "{text}");
    }
}
