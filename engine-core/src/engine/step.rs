//! The step loop: [`EngineCore`] owns the KV pool, the scheduler and every live request, and
//! runs one step at a time. Each step: schedule, run one forward batch, record prompt logprobs,
//! sample where a chunk reached the end of a sequence's known tokens, send tokens, and finish
//! requests (freeing their blocks) in the same step.
//!
//! It states what happened, once, as lifecycle events ([`crate::lifecycle`]) to its
//! observers; it keeps no tracing or metrics code of its own.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use kernels::Backend;
use proto::telemetry::Stamp;

use super::batch::{self, Plan};
use super::events::RequestEvent;
use super::observers::Observers;
use super::sequence::{Sequence, SequenceInit};
use super::{EngineConfig, SpawnError, Submitted};
use crate::kv_cache::{KvBudget, prefix_hashes};
use crate::lifecycle::{
    AbortCause, Admission, EngineObserver, EngineStats, Event, Finish, RequestFailure, RequestRef,
    RequestSnapshot, StepBegin, StepEnd, TokenTiming, WaitClock, WaitMark, WaitReason, WaitTimes,
};
use crate::model::llama::{ForwardBatch, KvCache, Llama, ModelError};
use crate::model::tokenizer::Tokenizer;
use crate::scheduler::{
    IgnoredPrompt, KvRelease, Preemption, RequestId, ScheduleKind, Scheduler, SchedulerConfig,
    SchedulerOutput, WindowKv,
};

/// The engine's state for one model: KV pool, scheduler, live requests, observers.
pub(crate) struct EngineCore<'m, B: Backend> {
    llama: &'m Llama<B>,
    tokenizer: &'m Tokenizer,
    pool: KvCache<B>,
    sched: Scheduler,
    /// Engine-side state of every live request (the scheduler keeps its scheduling state
    /// under the same id; the handles' gate only which client ids are live).
    seqs: HashMap<RequestId, Sequence>,
    observers: Observers,
    finished_total: u64,
    /// Requests finished in the current step.
    finished_in_step: usize,
    /// Time per reason the waiting queue was held back.
    waits: WaitClock,
    /// Requests queued since the last scheduling decision (which has not seen them yet).
    unseen: Vec<RequestId>,
    /// Test-only: the step that panics.
    fault_at: Option<u64>,
    /// Deadlines of live requests, soonest first (entries of finished requests are skipped
    /// when they come up).
    deadlines: BinaryHeap<Reverse<(Instant, RequestId)>>,
}

/// The KV pool and scheduler `cfg` asks for, checked.
pub(crate) fn kv_and_scheduler<B: Backend>(
    llama: &Llama<B>,
    cfg: &EngineConfig,
) -> Result<(KvCache<B>, Scheduler), SpawnError> {
    let zero = [
        ("block_size", cfg.block_size),
        ("kv_blocks", cfg.kv_blocks),
        ("max_num_batched_tokens", cfg.max_num_batched_tokens),
        ("max_num_seqs", cfg.max_num_seqs),
    ];
    if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
        return Err(SpawnError::InvalidConfig(format!(
            "{name} must be positive"
        )));
    }
    let window_blocks = cfg.window_kv_blocks.unwrap_or(cfg.kv_blocks);
    let window = llama.kv_window().map(|window| WindowKv {
        window,
        num_blocks: window_blocks,
    });
    if let Some(w) = window {
        // One sequence alone must always fit, or it would wait forever.
        let one = KvBudget::one_sequence_window_need(
            cfg.block_size,
            Some(w.window),
            cfg.max_num_batched_tokens,
        );
        if w.num_blocks < one {
            return Err(SpawnError::InvalidConfig(format!(
                "the sliding-window KV pool has {} blocks; one sequence needs {one}",
                w.num_blocks
            )));
        }
    }
    let pool = llama.alloc_kv_cache(cfg.kv_blocks, window_blocks, cfg.block_size)?;
    let sched = Scheduler::new(SchedulerConfig {
        max_num_batched_tokens: cfg.max_num_batched_tokens,
        max_num_seqs: cfg.max_num_seqs,
        max_model_len: llama.config().context_length,
        num_kv_blocks: cfg.kv_blocks,
        block_size: cfg.block_size,
        enable_prefix_caching: cfg.enable_prefix_caching,
        window,
        policy: cfg.scheduling_policy,
    });
    Ok((pool, sched))
}

impl<'m, B: Backend> EngineCore<'m, B> {
    /// An idle engine over `pool` and `sched` (from [`kv_and_scheduler`]).
    pub fn new(
        llama: &'m Llama<B>,
        tokenizer: &'m Tokenizer,
        (pool, sched): (KvCache<B>, Scheduler),
        observers: Observers,
    ) -> Self {
        Self {
            llama,
            tokenizer,
            pool,
            sched,
            seqs: HashMap::new(),
            observers,
            finished_total: 0,
            finished_in_step: 0,
            waits: WaitClock::new(Stamp::now()),
            unseen: Vec::new(),
            fault_at: None,
            deadlines: BinaryHeap::new(),
        }
    }

    /// Test-only fault hook: step `step` panics ([`super::EngineConfig::fault_panic_at_step`]).
    pub fn with_fault_at(mut self, step: Option<u64>) -> Self {
        self.fault_at = step;
        self
    }

    /// True while any request is live.
    pub fn has_unfinished(&self) -> bool {
        self.sched.has_unfinished()
    }

    /// Queues a submitted request, or finishes it as ignored if it can never run.
    pub fn add(&mut self, sub: Submitted) {
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
        let seq = Sequence::new(SequenceInit {
            name: sub.name,
            prompt: sub.prompt,
            params: sub.params,
            max_output,
            events: sub.events,
            arrived: sub.arrived,
            tokenize: sub.tokenize,
        });
        let id = sub.id;
        let placement = sub.placement;
        if let Some(d) = sub.deadline {
            self.deadlines.push(Reverse((d, id)));
        }
        let req = RequestRef {
            id,
            name: &seq.name,
            progress: seq.progress(self.sched.step(), 0),
        };
        let queued = Event::Queued {
            trace: &sub.trace,
            placement: &placement,
            arrived: sub.arrived,
            record_journey: sub.record_journey,
        };
        self.observers.on_request(&req, &queued);
        match self.sched.add(id, n, hashes, placement) {
            Ok(()) => {
                self.seqs.insert(id, seq);
                self.unseen.push(id);
            }
            Err(IgnoredPrompt(msg)) => {
                self.retire(id, seq, Finish::Failed(RequestFailure::Ignored(msg)), 0);
            }
        }
    }

    /// Aborts live request `id` (waiting or running); unknown ids are ignored.
    pub fn abort(&mut self, id: RequestId, cause: AbortCause) {
        self.finish(id, Finish::Aborted(cause));
    }

    /// One scheduling step and its forward pass.
    pub fn step(&mut self) {
        let started = Stamp::now();
        let began = Instant::now();
        // This decision ends the interval the previous one's reason held the queue back.
        let totals = self.waits.close(started);
        let step = self.sched.step() + 1;
        for id in std::mem::take(&mut self.unseen) {
            if let Some(w) = self.seqs.get_mut(&id).and_then(|s| s.wait.as_mut()) {
                w.see(started, totals, step);
            }
        }
        assert!(
            self.fault_at != Some(step),
            "fault injection: step {step} panics"
        );
        self.expire(began);
        let out = self.sched.schedule();
        let schedule_time = began.elapsed();
        debug_assert_eq!(step, self.sched.step());
        self.observers.on_step_begin(&StepBegin {
            step,
            scheduled: &out.scheduled,
            batch: &out.stats,
            started,
        });
        self.on_scheduled(&out, step, started, totals);
        if let Some(stop) = out.admission_stop {
            self.waits.set_reason(stop);
        }
        self.finished_in_step = 0;
        let forward_began = Instant::now();
        let plan = batch::plan(&out, &self.seqs);
        match self.forward(&plan) {
            Ok(mut logits) => {
                let took = forward_began.elapsed();
                self.process(&plan, &mut logits, took);
            }
            Err(e) => {
                tracing::error!(step = out.step, "the model failed: {e}");
                for part in &plan.parts {
                    let failure = RequestFailure::Model(e.to_string());
                    self.finish(part.id, Finish::Failed(failure));
                }
            }
        }
        let model_time = forward_began.elapsed();
        let load = self.load();
        let snapshots = || snapshots(&self.sched, &self.seqs, &out);
        self.observers.on_step_end(&StepEnd {
            step,
            started,
            ended: Stamp::now(),
            schedule_time,
            model_time,
            batch: &out.stats,
            num_preempted: out.preempted.len(),
            num_finished: self.finished_in_step,
            load: &load,
            snapshots: &snapshots,
        });
    }

    /// Finishes every live request with `finish`, then tells the observers the engine stops.
    pub fn stop(&mut self, finish: &Finish) {
        let mut live: Vec<RequestId> = self.seqs.keys().copied().collect();
        live.sort_unstable();
        for id in live {
            self.finish(id, finish.clone());
        }
        self.observers.on_stop();
    }

    /// Aborts the requests whose deadline has passed by `now` (reason `timeout`).
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((d, id))) = self.deadlines.peek() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            self.finish(id, Finish::Aborted(AbortCause::Timeout));
        }
    }

    /// The scheduler's preemption count of `id`, the one place it is kept.
    fn preemptions(&self, id: RequestId) -> u32 {
        self.sched.request(id).map_or(0, |r| r.num_preemptions)
    }

    /// States the preemptions and first or resumed schedulings of a step, and moves the
    /// prefill high-water marks.
    fn on_scheduled(&mut self, out: &SchedulerOutput, step: u64, at: Stamp, totals: WaitTimes) {
        let held = self.waits.reason();
        for &Preemption { id, cause } in &out.preempted {
            let preemptions = self.preemptions(id);
            if let Some(seq) = self.seqs.get_mut(&id) {
                seq.wait = Some(WaitMark::seen_at(at, totals, step));
                let req = RequestRef {
                    id,
                    name: &seq.name,
                    progress: seq.progress(step, preemptions),
                };
                self.observers.on_request(&req, &Event::Preempted { cause });
            }
        }
        for s in &out.scheduled {
            let (preemptions, cached) = self
                .sched
                .request(s.id)
                .map_or((0, 0), |r| (r.num_preemptions, r.kv.num_cached_tokens()));
            let Some(seq) = self.seqs.get_mut(&s.id) else {
                continue;
            };
            seq.prefill_done = seq
                .prefill_done
                .max((s.start + s.num_tokens).min(seq.num_prompt));
            if s.kind == ScheduleKind::Continue {
                continue;
            }
            let (waited, wait_ended) = seq
                .wait
                .take()
                .map_or((WaitTimes::default(), WaitReason::Step), |w| {
                    w.end(totals, step, held)
                });
            let admission = if s.kind == ScheduleKind::New {
                // The decision's instant, so the wait's parts sum to scheduled - queued.
                seq.timings.scheduled = Some(at);
                seq.timings.queue_wait = waited;
                Admission::New
            } else {
                seq.timings.requeue_wait += waited;
                Admission::Resume
            };
            let req = RequestRef {
                id: s.id,
                name: &seq.name,
                progress: seq.progress(step, preemptions),
            };
            let event = Event::Scheduled {
                admission,
                num_cached_tokens: cached,
                wait_ended,
                waited,
            };
            self.observers.on_request(&req, &event);
        }
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
    fn process(&mut self, plan: &Plan, logits: &mut [f32], took: std::time::Duration) {
        let vocab = self.llama.config().vocab_size;
        let step = self.sched.step();
        for part in &plan.parts {
            let preemptions = self.preemptions(part.id);
            let Some(seq) = self.seqs.get_mut(&part.id) else {
                continue;
            };
            if part.decode {
                seq.timings.decode_time += took;
            } else {
                seq.timings.prefill_time += took;
            }
            for (j, pos) in part.prompt_positions.clone().enumerate() {
                let r = part.first_prompt_row + j;
                seq.record_prompt_logprob(pos, &logits[r * vocab..(r + 1) * vocab]);
            }
            let outcome = match part.sample_row {
                Some(r) => {
                    let row = &mut logits[r * vocab..(r + 1) * vocab];
                    let timing = seq.timings.token_sampled(Stamp::now());
                    let started = seq.take_started();
                    let out = seq.sample(self.tokenizer, row);
                    let req = RequestRef {
                        id: part.id,
                        name: &seq.name,
                        progress: seq.progress(step, preemptions),
                    };
                    let event = match timing {
                        TokenTiming::First(ttft) => Event::FirstToken { ttft },
                        TokenTiming::Next(since_previous) => Event::Token { since_previous },
                    };
                    self.observers.on_request(&req, &event);
                    let alive = started.is_none_or(|e| seq.send(e)) && seq.send(out.event);
                    if alive {
                        out.finish
                    } else {
                        Some(Finish::Aborted(AbortCause::ClientGone))
                    }
                }
                None if seq.is_client_gone() => Some(Finish::Aborted(AbortCause::ClientGone)),
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

    /// Finishes a live request: frees its blocks (discarding their contents if a failed step
    /// wrote them) and retires it.
    fn finish(&mut self, id: RequestId, finish: Finish) {
        let Some(seq) = self.seqs.remove(&id) else {
            return;
        };
        let kv = match finish {
            Finish::Failed(RequestFailure::Model(_)) => KvRelease::Discard,
            _ => KvRelease::Keep,
        };
        let preemptions = self.sched.finish(id, kv).map_or(0, |r| r.num_preemptions);
        self.retire(id, seq, finish, preemptions);
    }

    /// States a request's `Finished` (observers first, so a client that saw it sees the blocks
    /// already freed in the published stats), then sends it to the client.
    fn retire(&mut self, id: RequestId, mut seq: Sequence, finish: Finish, preemptions: u32) {
        self.finished_total += 1;
        self.finished_in_step += 1;
        let journey = self.observers.journal.finish(id, self.sched.step());
        let finished = seq.finished(finish, preemptions, journey);
        let load = self.load();
        let req = RequestRef {
            id,
            name: &seq.name,
            progress: seq.progress(self.sched.step(), preemptions),
        };
        let event = Event::Finished {
            finished: &finished,
            load: &load,
        };
        self.observers.on_request(&req, &event);
        seq.send(RequestEvent::Finished(Box::new(finished)));
    }

    /// The engine's counters now.
    fn load(&self) -> EngineStats {
        let (window_blocks_total, window_blocks_used) = self.sched.window_kv_blocks();
        EngineStats {
            kv_blocks_total: self.sched.kv_blocks_total(),
            kv_blocks_used: self.sched.kv_blocks_used(),
            kv_blocks_cached: self.sched.kv_blocks_cached(),
            window_blocks_total,
            window_blocks_used,
            num_running: self.sched.num_running(),
            num_waiting: self.sched.num_waiting(),
            num_preemptions_total: self.sched.num_preemptions(),
            num_requests_finished: self.finished_total,
        }
    }
}

/// One snapshot per request still running at the end of the step `out` scheduled.
fn snapshots(
    sched: &Scheduler,
    seqs: &HashMap<RequestId, Sequence>,
    out: &SchedulerOutput,
) -> Vec<RequestSnapshot> {
    sched
        .running()
        .iter()
        .filter_map(|id| {
            let seq = seqs.get(id)?;
            let req = sched.request(*id)?;
            let scheduled = out
                .scheduled
                .iter()
                .find(|s| s.id == *id)
                .map_or(0, |s| s.num_tokens);
            let progress = seq.progress(0, req.num_preemptions);
            Some(RequestSnapshot {
                request_id: seq.name.clone(),
                phase: progress.running_phase(),
                num_prompt_tokens: seq.num_prompt,
                num_computed_tokens: req.num_computed_tokens,
                num_output_tokens: seq.num_output(),
                num_preemptions: req.num_preemptions,
                scheduled_tokens: scheduled,
                blocks_allocated: req.kv.blocks().len(),
                blocks_cached: req.kv.num_cached_tokens() / sched.config().block_size,
                num_cached_tokens: req.kv.num_cached_tokens(),
            })
        })
        .collect()
}
