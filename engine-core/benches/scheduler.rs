//! Scheduler step cost alone (no model): a fixed running set of decoding requests with 10, 1k
//! and 10k requests waiting behind it. Admission only ever looks at the head of the waiting
//! queue, so the cost must not grow with its length (target: 10k waiting ≤ 2× 10 waiting).
//!
//! `cargo bench -p engine-core --bench scheduler`. Two scenarios: admission blocked by
//! `max_num_seqs`, and admission blocked by KV blocks (the head's prompt does not fit).

use std::time::Instant;

use engine_core::scheduler::{Scheduler, SchedulerConfig, SchedulingPolicy};

const RUNNING: usize = 64;
const PROMPT: usize = 32;
const STEPS: usize = 2000;
const ROUNDS: usize = 5;
const BLOCK: usize = 16;

/// What stops the waiting requests from being admitted.
#[derive(Clone, Copy)]
enum Blocker {
    MaxNumSeqs,
    KvBlocks,
}

/// A scheduler with `RUNNING` requests past their prefill and `waiting` queued behind them.
fn setup(blocker: Blocker, waiting: usize) -> Scheduler {
    // Blocks the running set needs for its prompts plus every measured step, and a little more.
    let num_kv_blocks = RUNNING * (PROMPT + STEPS + 1).div_ceil(BLOCK) + 100;
    let (max_num_seqs, waiting_prompt) = match blocker {
        Blocker::MaxNumSeqs => (RUNNING, PROMPT),
        // One block more than is ever free once the running set holds its prompts: never fits
        // (the budget is large enough that the whole prompt is its first chunk).
        Blocker::KvBlocks => {
            let free_at_most = num_kv_blocks - RUNNING * PROMPT.div_ceil(BLOCK);
            (usize::MAX, (free_at_most + 1) * BLOCK)
        }
    };
    let mut s = Scheduler::new(SchedulerConfig {
        max_num_batched_tokens: 1 << 20,
        max_num_seqs,
        max_model_len: 1 << 20,
        num_kv_blocks,
        block_size: BLOCK,
        enable_prefix_caching: true,
        window: None,
        policy: SchedulingPolicy::default(),
    });
    for _ in 0..RUNNING {
        s.add_request(PROMPT).expect("fits");
    }
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), RUNNING);
    for r in &out.scheduled {
        s.append_token(r.id);
    }
    for _ in 0..waiting {
        s.add_request(waiting_prompt).expect("fits");
    }
    s
}

/// Nanoseconds per step (best of `ROUNDS`), checking nobody waiting was admitted.
fn step_cost(blocker: Blocker, waiting: usize) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let mut s = setup(blocker, waiting);
        let t = Instant::now();
        for _ in 0..STEPS {
            let out = s.schedule();
            for r in out.scheduled.iter().filter(|r| r.samples) {
                s.append_token(r.id);
            }
            std::hint::black_box(&out);
        }
        let ns = t.elapsed().as_nanos() as f64 / STEPS as f64;
        assert_eq!((s.num_running(), s.num_waiting()), (RUNNING, waiting));
        assert_eq!(s.num_preemptions(), 0);
        best = best.min(ns);
    }
    best
}

fn main() {
    println!("scheduler step cost: {RUNNING} running (decode), {STEPS} steps, best of {ROUNDS}");
    println!(
        "{:<14} {:>8} {:>12} {:>10}",
        "blocked by", "waiting", "ns/step", "vs 10"
    );
    for (name, blocker) in [
        ("max_num_seqs", Blocker::MaxNumSeqs),
        ("kv_blocks", Blocker::KvBlocks),
    ] {
        let base = step_cost(blocker, 10);
        for waiting in [10, 1_000, 10_000] {
            let ns = if waiting == 10 {
                base
            } else {
                step_cost(blocker, waiting)
            };
            println!("{name:<14} {waiting:>8} {ns:>12.0} {:>9.2}x", ns / base);
        }
    }
}
