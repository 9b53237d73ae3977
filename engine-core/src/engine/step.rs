//! The step loop: the only owner of the model, the KV pool, the scheduler and the requests.
//!
//! Each step: take every pending command (blocking only when idle), schedule, run one forward
//! batch, record prompt logprobs, sample where a chunk reached the end of a sequence's known
//! tokens, emit events, and finish requests (freeing their blocks) in the same step.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use kernels::Backend;

use proto::telemetry::Stamp;

use super::batch::{self, Plan};
use super::events::{FinishReason, epoch_now};
use super::handle::{EngineStats, Shared};
use super::sequence::{Finish, Sequence, SequenceInit};
use super::{Command, EngineTelemetry, Submitted};
use crate::journey::{
    CoreSpan, CoreTracer, StepRecord, StepSampling, StepSnapshot, StepTracer, TraceContext,
    Transition,
};
use crate::kv_cache::prefix_hashes;
use crate::metrics::EngineMetrics;
use crate::model::llama::{ForwardBatch, KvCache, Llama, ModelError};
use crate::model::tokenizer::Tokenizer;
use crate::scheduler::{IgnoredPrompt, RequestId, ScheduleKind, Scheduler, SchedulerOutput};

/// The engine thread's state.
pub(super) struct EngineLoop<B: Backend> {
    llama: Llama<B>,
    pool: KvCache<B>,
    sched: Scheduler,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    seqs: HashMap<RequestId, Sequence>,
    by_name: HashMap<String, RequestId>,
    finished_total: u64,
    /// Every handle is gone: finish what is live, then exit.
    disconnected: bool,
    /// The engine is stopping: requests still live end with reason `shutdown`.
    stopping: bool,
    core: Option<CoreTracer>,
    steps: Option<StepTracer>,
    metrics: Arc<EngineMetrics>,
    /// Requests finished in the current step.
    finished_in_step: usize,
}

fn finish(reason: FinishReason, stop_reason: Option<String>) -> Finish {
    Finish {
        reason,
        stop_reason,
    }
}

impl<B: Backend> EngineLoop<B> {
    pub fn new(
        llama: Llama<B>,
        pool: KvCache<B>,
        sched: Scheduler,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        telemetry: EngineTelemetry,
    ) -> Self {
        Self {
            stopping: false,
            core: telemetry.core,
            steps: telemetry.steps,
            metrics: telemetry.metrics,
            finished_in_step: 0,
            llama,
            pool,
            sched,
            shared,
            commands,
            seqs: HashMap::new(),
            by_name: HashMap::new(),
            finished_total: 0,
            disconnected: false,
        }
    }

    /// Runs until shutdown, or until every handle is dropped and nothing is live. A panic in a
    /// step stops the engine but still finishes every live request (with `Error`).
    pub fn run(mut self) {
        let served = std::panic::catch_unwind(AssertUnwindSafe(|| self.serve()));
        let reason = match served {
            Ok(()) => FinishReason::Aborted,
            Err(_) => {
                eprintln!("engine-step: a step panicked; stopping the engine");
                FinishReason::Error
            }
        };
        self.stop(reason);
    }

    fn serve(&mut self) {
        while self.take_commands() {
            if self.sched.has_unfinished() {
                self.step();
            }
        }
    }

    /// Applies pending commands, blocking while idle; false when the loop must end.
    fn take_commands(&mut self) -> bool {
        if !self.sched.has_unfinished() {
            if self.disconnected {
                return false;
            }
            let Ok(c) = self.commands.recv() else {
                return false;
            };
            if !self.command(c) {
                return false;
            }
        }
        loop {
            match self.commands.try_recv() {
                Ok(c) => {
                    if !self.command(c) {
                        return false;
                    }
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => {
                    self.disconnected = true;
                    return true;
                }
            }
        }
    }

    /// Applies one command; false on shutdown.
    fn command(&mut self, c: Command) -> bool {
        match c {
            Command::Submit(sub) => self.add(*sub),
            Command::Abort(name) => {
                if let Some(&id) = self.by_name.get(&name) {
                    self.finish(id, finish(FinishReason::Aborted, None));
                }
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Queues a submitted request, or finishes it as `Ignored` if it can never run.
    fn add(&mut self, sub: Submitted) {
        let n = sub.prompt.len();
        let cfg = *self.sched.config();
        // Prompt logprobs need the logits of every prompt position: no cached prefix.
        let hashes = if cfg.enable_prefix_caching && sub.params.prompt_logprobs.is_none() {
            prefix_hashes(&sub.prompt, cfg.block_size)
        } else {
            Vec::new()
        };
        let capacity = cfg.num_kv_blocks * cfg.block_size;
        // The last sampled token is never fed back: `n + max_output - 1` slots at most.
        let max_output = (sub.params.max_tokens as usize)
            .min(cfg.max_model_len.saturating_sub(n))
            .min((capacity + 1).saturating_sub(n));
        let mut seq = Sequence::new(SequenceInit {
            name: sub.id,
            prompt: sub.prompt,
            params: sub.params,
            max_output,
            events: sub.events,
            arrived: sub.arrived,
        });
        start_journey(self.core.as_ref(), &sub.trace, &mut seq, self.sched.step());
        match self.sched.add_request_with_prefix(n, hashes) {
            Ok(id) => {
                self.by_name.insert(seq.name.clone(), id);
                self.seqs.insert(id, seq);
            }
            Err(IgnoredPrompt(msg)) => self.retire(seq, finish(FinishReason::Ignored, Some(msg))),
        }
    }

    /// One scheduling step and its forward pass.
    fn step(&mut self) {
        let start = Stamp::now();
        let began = Instant::now();
        let out = self.sched.schedule();
        let schedule_us = began.elapsed().as_micros() as u64;
        let step = self.sched.step();
        let sampling = self
            .steps
            .as_ref()
            .map_or(StepSampling::Off, |t| t.sampling(step));
        self.on_scheduled(&out, step);
        let mut record = (sampling != StepSampling::Off).then(|| self.step_links(&out));
        self.finished_in_step = 0;
        let forward_began = Instant::now();
        let plan = batch::plan(&out, &self.seqs);
        match self.forward(&plan) {
            Ok(mut logits) => {
                let secs = forward_began.elapsed().as_secs_f64();
                self.process(&plan, &mut logits, secs);
            }
            Err(e) => {
                eprintln!("engine-step: step {} failed: {e}", out.step);
                for part in &plan.parts {
                    let msg = format!("the model failed: {e}");
                    self.finish(part.id, finish(FinishReason::Error, Some(msg)));
                }
            }
        }
        let model_us = forward_began.elapsed().as_micros() as u64;
        self.publish();
        self.metrics.on_step(out.num_tokens(), out.scheduled.len());
        if let Some(r) = record.as_mut() {
            self.fill_step_record(r, &out, sampling, start, (schedule_us, model_us));
        }
        if let Some(tracer) = self.steps.as_mut() {
            if let Some(r) = &record {
                tracer.record(r);
            }
            tracer.after_step(step);
        }
    }

    /// Journey bookkeeping of a schedule: preemptions, prefill high-water marks, first and
    /// resumed schedulings.
    fn on_scheduled(&mut self, out: &SchedulerOutput, step: u64) {
        for id in &out.preempted {
            if let Some(seq) = self.seqs.get_mut(id) {
                seq.num_preemptions += 1;
                self.metrics.on_preempted();
                seq.journey_event(Transition::Preempted, step);
            }
        }
        for s in &out.scheduled {
            let Some(seq) = self.seqs.get_mut(&s.id) else {
                continue;
            };
            seq.prefill_done = seq
                .prefill_done
                .max((s.start + s.num_tokens).min(seq.num_prompt));
            if s.kind != ScheduleKind::Continue {
                let cached = self.sched.request(s.id).map_or(0, |r| r.num_cached_tokens);
                self.metrics.on_prefix_lookup(seq.num_prompt, cached);
            }
            match s.kind {
                ScheduleKind::New => {
                    seq.timings.scheduled = epoch_now();
                    if std::mem::take(&mut seq.in_queue) {
                        self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                    }
                    seq.journey_event(Transition::Scheduled { resumed: false }, step);
                }
                ScheduleKind::Resumed => {
                    seq.journey_event(Transition::Scheduled { resumed: true }, step);
                }
                ScheduleKind::Continue => {}
            }
        }
    }

    /// A step record with the links to the batch's traced requests (taken before any of them
    /// finishes and leaves).
    fn step_links(&self, out: &SchedulerOutput) -> StepRecord {
        let links = out
            .scheduled
            .iter()
            .filter_map(|s| self.seqs.get(&s.id)?.journey.as_ref()?.span_context())
            .collect();
        StepRecord {
            links,
            ..StepRecord::default()
        }
    }

    /// Completes a sampled step's record; `times` is (schedule µs, model µs).
    fn fill_step_record(
        &self,
        r: &mut StepRecord,
        out: &SchedulerOutput,
        sampling: StepSampling,
        start: Stamp,
        times: (u64, u64),
    ) {
        let st = &out.stats;
        r.id = self.sched.step();
        r.start = Some(start);
        r.end = Some(Stamp::now());
        (r.schedule_us, r.model_us) = times;
        r.running_depth = st.num_running;
        r.waiting_depth = st.num_waiting;
        r.num_prefill_reqs = st.num_prefill_reqs;
        r.num_decode_reqs = st.num_decode_reqs;
        r.prefill_tokens = st.prefill_tokens;
        r.decode_tokens = st.decode_tokens;
        r.num_finished = self.finished_in_step;
        r.num_preempted = out.preempted.len();
        r.kv_blocks_total = self.sched.kv_blocks_total();
        r.kv_blocks_free = self.sched.kv_blocks_total() - self.sched.kv_blocks_used();
        if sampling == StepSampling::Rich {
            r.snapshots = self.snapshots(out);
        }
    }

    /// One snapshot per request still running at the end of the step.
    fn snapshots(&self, out: &SchedulerOutput) -> Vec<StepSnapshot> {
        self.sched
            .running()
            .iter()
            .filter_map(|id| {
                let seq = self.seqs.get(id)?;
                let req = self.sched.request(*id)?;
                let scheduled = out
                    .scheduled
                    .iter()
                    .find(|s| s.id == *id)
                    .map_or(0, |s| s.num_tokens);
                Some(StepSnapshot {
                    request_id: seq.name.clone(),
                    phase: if seq.num_output() == 0 {
                        proto::conventions::phase::PREFILL
                    } else {
                        proto::conventions::phase::DECODE
                    },
                    num_prompt_tokens: seq.num_prompt,
                    num_computed_tokens: req.num_computed_tokens,
                    num_output_tokens: seq.num_output(),
                    num_preemptions: seq.num_preemptions,
                    scheduled_tokens: scheduled,
                    blocks_allocated: req.blocks.len(),
                    blocks_cached: req.num_cached_tokens / self.sched.config().block_size,
                    num_cached_tokens: req.num_cached_tokens,
                })
            })
            .collect()
    }

    fn forward(&mut self, plan: &Plan) -> Result<Vec<f32>, ModelError> {
        let tables: Vec<&[u32]> = plan
            .parts
            .iter()
            .map(|p| self.sched.block_table(p.id).unwrap_or(&[]))
            .collect();
        let window_tables: Vec<&[u32]> = plan
            .parts
            .iter()
            .map(|p| self.sched.window_block_table(p.id).unwrap_or(&[]))
            .collect();
        let batch = ForwardBatch {
            tokens: &plan.tokens,
            positions: &plan.positions,
            token_seq: &plan.token_seq,
            block_tables: &tables,
            window_block_tables: self.llama.kv_window().map(|_| &window_tables[..]),
            block_size: self.sched.config().block_size,
            logits_rows: &plan.logits_rows,
        };
        self.llama.forward(&mut self.pool, &batch)
    }

    /// Prompt logprobs, sampling, events and finishing for every part of the batch.
    fn process(&mut self, plan: &Plan, logits: &mut [f32], secs: f64) {
        let vocab = self.llama.config().vocab_size;
        let tok = Arc::clone(&self.shared.tokenizer);
        let step = self.sched.step();
        for part in &plan.parts {
            let Some(seq) = self.seqs.get_mut(&part.id) else {
                continue;
            };
            if part.decode {
                seq.timings.decode_time += secs;
            } else {
                seq.timings.prefill_time += secs;
            }
            for (j, pos) in part.prompt_positions.clone().enumerate() {
                let r = part.first_prompt_row + j;
                seq.record_prompt_logprob(pos, &logits[r * vocab..(r + 1) * vocab]);
            }
            let outcome = match part.sample_row {
                Some(r) => {
                    let row = &mut logits[r * vocab..(r + 1) * vocab];
                    emit_token(seq, &tok, row, step, &self.metrics)
                }
                None if seq.is_client_gone() => Some(finish(FinishReason::Aborted, None)),
                None => continue,
            };
            match outcome {
                Some(f) => self.finish(part.id, f),
                None => {
                    self.sched.append_token(part.id);
                }
            }
        }
    }

    /// Finishes a live request: frees its blocks and sends `Finished`.
    fn finish(&mut self, id: RequestId, f: Finish) {
        let Some(seq) = self.seqs.remove(&id) else {
            return;
        };
        self.by_name.remove(&seq.name);
        self.sched.finish(id, f.reason);
        self.retire(seq, f);
    }

    /// The bookkeeping of a request leaving the engine, then its `Finished` event (stats are
    /// published first, so a client that saw it sees the blocks already freed).
    fn retire(&mut self, mut seq: Sequence, f: Finish) {
        self.shared.gate().live.remove(&seq.name);
        if std::mem::take(&mut seq.in_queue) {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
        self.finished_total += 1;
        self.finished_in_step += 1;
        self.publish();
        let reason = f.reason;
        let event = seq.finished_event(f);
        self.metrics
            .on_finished(reason, &seq.timings, seq.num_prompt, seq.num_output());
        if let Some(span) = seq.journey.take() {
            let p = seq.progress(self.sched.step());
            if self.stopping {
                span.finish_shutdown(reason, p);
            } else {
                span.finish(reason, p);
            }
        }
        seq.send(event);
    }

    fn publish(&self) {
        self.metrics.set_load(
            self.sched.num_running(),
            self.sched.num_waiting(),
            self.sched.kv_blocks_used(),
            self.sched.kv_blocks_total(),
        );
        self.shared.publish(EngineStats {
            kv_blocks_total: self.sched.kv_blocks_total(),
            kv_blocks_used: self.sched.kv_blocks_used(),
            kv_blocks_cached: self.sched.kv_blocks_cached(),
            num_running: self.sched.num_running(),
            num_waiting: self.sched.num_waiting(),
            num_preemptions_total: self.sched.num_preemptions(),
            num_requests_finished: self.finished_total,
        });
    }

    /// Ends the engine: refuses new requests, then finishes everything live or in flight.
    fn stop(&mut self, reason: FinishReason) {
        self.shared.gate().stopped = true;
        self.stopping = true;
        while let Ok(c) = self.commands.try_recv() {
            if let Command::Submit(sub) = c {
                self.add(*sub);
            }
        }
        let live: Vec<RequestId> = self.seqs.keys().copied().collect();
        for id in live {
            self.finish(id, finish(reason, None));
        }
        if let Some(steps) = self.steps.as_mut() {
            steps.close();
        }
        self.publish();
    }
}

/// Starts the `llm_core` span of a traced request (its `journey.QUEUED`).
// Without the `journey` feature `CoreTracer` is uninhabited and the body is dead code.
#[cfg_attr(not(feature = "journey"), allow(unreachable_code))]
fn start_journey(core: Option<&CoreTracer>, trace: &TraceContext, seq: &mut Sequence, step: u64) {
    if let (Some(core), TraceContext::On(parent)) = (core, trace) {
        let p = seq.progress(step);
        seq.journey = Some(CoreSpan::queued(core, parent, &seq.name, p));
    }
}

/// Samples one token for `seq` and sends its events; `Some` when the request is done
/// (including the client having gone away).
fn emit_token(
    seq: &mut Sequence,
    tok: &Tokenizer,
    row: &mut [f32],
    step: u64,
    metrics: &EngineMetrics,
) -> Option<Finish> {
    let now = Instant::now();
    let first = seq.timings.first_token == 0.0;
    if first {
        seq.timings.first_token = epoch_now();
        metrics.on_first_token((seq.timings.first_token - seq.timings.arrived).max(0.0));
    } else if let Some(prev) = seq.last_token_at {
        metrics.on_token(now.duration_since(prev).as_secs_f64());
    }
    seq.last_token_at = Some(now);
    let started = seq.take_started();
    let out = seq.sample(tok, row);
    if first {
        seq.journey_event(Transition::FirstToken, step);
    }
    let alive = started.is_none_or(|e| seq.send(e)) && seq.send(out.event);
    if alive {
        out.finish
    } else {
        Some(finish(FinishReason::Aborted, None))
    }
}
