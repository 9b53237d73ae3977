//! Policy tests: chunking, caps, FCFS, preemption, refusal, block accounting.

use super::*;

fn cfg(budget: usize, seqs: usize, blocks: usize) -> SchedulerConfig {
    SchedulerConfig {
        max_num_batched_tokens: budget,
        max_num_seqs: seqs,
        max_model_len: 1024,
        num_kv_blocks: blocks,
        block_size: 4,
        enable_prefix_caching: true,
        window: None,
        policy: SchedulingPolicy::Fair,
    }
}

/// What the engine does after a step: every request that sampled gets a new token.
fn sample_all(s: &mut Scheduler, out: &SchedulerOutput) {
    for r in out.scheduled.iter().filter(|r| r.samples) {
        assert!(s.append_token(r.id));
    }
}

fn preempted(out: &SchedulerOutput) -> Vec<RequestId> {
    out.preempted.iter().map(|p| p.id).collect()
}

fn chunks(out: &SchedulerOutput) -> Vec<(u64, usize, usize)> {
    out.scheduled
        .iter()
        .map(|r| (r.id.0, r.start, r.num_tokens))
        .collect()
}

#[test]
fn long_prompt_is_prefilled_in_chunks_under_the_budget() {
    let mut s = Scheduler::new(cfg(8, 4, 64));
    let a = s.add_request(20).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = s.schedule();
        assert!(out.num_tokens() <= 8);
        seen.push((
            out.scheduled[0].start,
            out.scheduled[0].num_tokens,
            out.scheduled[0].samples,
        ));
        sample_all(&mut s, &out);
    }
    assert_eq!(seen, vec![(0, 8, false), (8, 8, false), (16, 4, true)]);
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(a.0, 20, 1)]);
    assert_eq!((out.stats.num_decode_reqs, out.stats.decode_tokens), (1, 1));
    assert_eq!(out.step, 3);
}

#[test]
fn budget_left_by_running_requests_goes_to_waiting_ones() {
    let mut s = Scheduler::new(cfg(10, 4, 64));
    s.add_request(6).unwrap();
    s.add_request(6).unwrap();
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(0, 0, 6), (1, 0, 4)]);
    assert_eq!(out.stats.prefill_tokens, 10);
}

#[test]
fn max_num_seqs_caps_running_requests() {
    let mut s = Scheduler::new(cfg(100, 2, 64));
    for _ in 0..3 {
        s.add_request(3).unwrap();
    }
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), 2);
    assert_eq!((s.num_running(), s.num_waiting()), (2, 1));
    sample_all(&mut s, &out);
    s.finish(out.scheduled[0].id, KvRelease::Keep);
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), 2);
    assert_eq!(out.scheduled[1].id, RequestId(2));
}

#[test]
fn admission_is_fcfs_and_stops_at_the_first_that_does_not_fit() {
    // 4 blocks of 4 slots: A (12 tokens, 3 blocks) fits, B (8 tokens) does not, C (2) would.
    let mut s = Scheduler::new(cfg(100, 8, 4));
    let a = s.add_request(12).unwrap();
    s.add_request(8).unwrap();
    s.add_request(2).unwrap();
    let out = s.schedule();
    assert_eq!(
        out.scheduled.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a]
    );
    assert_eq!(s.num_waiting(), 2);
}

#[test]
fn preemption_picks_the_newest_and_requeues_it_at_the_front() {
    // 3 blocks of 4: A and B take one block each for 4-token prompts; C waits.
    let mut s = Scheduler::new(cfg(100, 8, 3));
    let a = s.add_request(4).unwrap();
    let b = s.add_request(4).unwrap();
    let out = s.schedule();
    sample_all(&mut s, &out);
    let c = s.add_request(3).unwrap();
    // A and B each need a second block for token 5: A gets the last free one, B finds none
    // and, being the newest, preempts itself. C is not admitted in a preempting step.
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(a.0, 4, 1)]);
    assert_eq!(preempted(&out), vec![b]);
    assert_eq!(s.request(b).unwrap().state, RequestState::Preempted);
    assert_eq!(s.request(b).unwrap().num_computed_tokens, 0);
    assert_eq!(s.request(b).unwrap().num_preemptions, 1);
    assert_eq!(s.num_preemptions(), 1);
    assert_eq!(s.waiting_order(), vec![b, c]);
    sample_all(&mut s, &out);
    // A finishes: B resumes first (front of the queue), recomputing its 5 tokens.
    s.finish(a, KvRelease::Keep);
    let out = s.schedule();
    assert_eq!(out.scheduled[0].id, b);
    assert_eq!(out.scheduled[0].kind, ScheduleKind::Resumed);
    assert_eq!(
        (out.scheduled[0].start, out.scheduled[0].num_tokens),
        (0, 5)
    );
}

#[test]
fn a_running_request_preempts_the_newest_other_one() {
    // 4 blocks of 4. A (7 tokens, 2 blocks) and B (4, 1 block) and C (4, 1 block) run.
    let mut s = Scheduler::new(cfg(100, 8, 4));
    let a = s.add_request(7).unwrap();
    let b = s.add_request(4).unwrap();
    let c = s.add_request(4).unwrap();
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), 3);
    sample_all(&mut s, &out);
    // A's token 8 fits its 2 blocks; B needs a new block: preempts C (newest), not A.
    let out = s.schedule();
    assert_eq!(preempted(&out), vec![c]);
    assert_eq!(chunks(&out), vec![(a.0, 7, 1), (b.0, 4, 1)]);
    assert_eq!(s.running, vec![a, b]);
}

#[test]
fn prompts_that_can_never_run_are_ignored() {
    let mut s = Scheduler::new(cfg(100, 8, 4));
    let err = s.add_request(16).unwrap_err();
    assert!(err.0.contains("exceeds the KV cache of 16 tokens"), "{err}");
    assert!(s.add_request(0).is_err());
    let mut long_ctx = Scheduler::new(SchedulerConfig {
        max_model_len: 10,
        ..cfg(100, 8, 100)
    });
    assert!(long_ctx.add_request(10).unwrap_err().0.contains("context"));
    assert!(!s.has_unfinished());
}

#[test]
fn blocks_are_all_returned_after_finish_and_abort() {
    let mut s = Scheduler::new(cfg(6, 8, 16));
    let ids: Vec<_> = (0..4).map(|_| s.add_request(9).unwrap()).collect();
    for _ in 0..4 {
        let out = s.schedule();
        sample_all(&mut s, &out);
    }
    assert!(s.kv_blocks_used() > 0);
    s.finish(ids[0], KvRelease::Keep);
    s.finish(ids[3], KvRelease::Keep); // still waiting or mid-prefill
    for &id in &ids[1..3] {
        s.finish(id, KvRelease::Keep);
    }
    assert_eq!(s.kv_blocks_used(), 0);
    assert_eq!((s.num_running(), s.num_waiting()), (0, 0));
    assert!(s.finish(ids[0], KvRelease::Keep).is_none());
}

#[test]
fn step_counter_counts_every_call() {
    let mut s = Scheduler::new(cfg(8, 8, 8));
    assert_eq!(s.schedule().step, 0);
    assert_eq!(s.schedule().step, 1);
    assert_eq!(s.step(), 2);
}

/// Chain hashes of a prompt of `n` tokens drawn from `salt` (same salt, same prefix).
fn hashes(salt: u32, n: usize) -> Vec<BlockHash> {
    let tokens: Vec<u32> = (0..n as u32).map(|i| i * 31 + salt).collect();
    crate::kv_cache::prefix_hashes(&tokens, 4)
}

fn run_to_end(s: &mut Scheduler, id: RequestId) {
    let out = s.schedule();
    sample_all(s, &out);
    s.finish(id, KvRelease::Keep);
}

#[test]
fn a_shared_prefix_is_not_recomputed() {
    let mut s = Scheduler::new(cfg(64, 4, 16));
    let a = s.add_request_with_prefix(10, hashes(0, 10)).unwrap();
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(a.0, 0, 10)]);
    sample_all(&mut s, &out);
    assert_eq!(s.kv_blocks_cached(), 2, "two full blocks of 4");
    // The same 10-token prompt: 8 tokens come from the cache, 2 are computed.
    let b = s.add_request_with_prefix(10, hashes(0, 10)).unwrap();
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(a.0, 10, 1), (b.0, 8, 2)]);
    assert_eq!(s.request(b).unwrap().kv.num_cached_tokens(), 8);
    assert_eq!(out.stats.prefill_tokens, 2, "cached tokens cost no budget");
    // A and B share their first two blocks.
    assert_eq!(
        s.block_table(a).unwrap()[..2],
        s.block_table(b).unwrap()[..2]
    );
    assert_eq!(s.kv_blocks_used(), 3 + 1);
    s.finish(a, KvRelease::Keep);
    s.finish(b, KvRelease::Keep);
    assert_eq!(s.kv_blocks_used(), 0);
    assert_eq!(s.kv_blocks_cached(), 2, "the prefix outlives its requests");
}

#[test]
fn a_fully_cached_prompt_still_computes_its_last_token() {
    let mut s = Scheduler::new(cfg(64, 4, 16));
    let a = s.add_request_with_prefix(8, hashes(1, 8)).unwrap();
    run_to_end(&mut s, a);
    let b = s.add_request_with_prefix(8, hashes(1, 8)).unwrap();
    let out = s.schedule();
    // Only the first block may come from the cache: the last token's logits are needed.
    assert_eq!(chunks(&out), vec![(b.0, 4, 4)]);
    assert!(out.scheduled[0].samples);
}

#[test]
fn different_prefixes_share_nothing_and_cached_blocks_yield_to_new_requests() {
    let mut s = Scheduler::new(cfg(64, 4, 4));
    let a = s.add_request_with_prefix(12, hashes(2, 12)).unwrap();
    run_to_end(&mut s, a);
    assert_eq!(s.kv_blocks_cached(), 3);
    // Another prefix needs all 4 blocks: the cached ones are evicted for it.
    let b = s.add_request_with_prefix(15, hashes(3, 15)).unwrap();
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(b.0, 0, 15)]);
    assert_eq!(s.kv_blocks_used(), 4);
    assert_eq!(s.kv_blocks_cached(), 3, "b's own three full blocks");
}

#[test]
fn a_preempted_request_resumes_from_its_cached_prefix() {
    // 6 blocks of 4: a and b fill them, a's growth preempts b.
    let mut s = Scheduler::new(cfg(64, 4, 6));
    let a = s.add_request_with_prefix(11, hashes(4, 11)).unwrap();
    let b = s.add_request_with_prefix(11, hashes(5, 11)).unwrap();
    let mut preempted = false;
    for _ in 0..4 {
        let out = s.schedule();
        preempted |= self::preempted(&out).contains(&b);
        if preempted {
            break;
        }
        sample_all(&mut s, &out);
    }
    assert!(preempted, "b was never preempted");
    s.finish(a, KvRelease::Keep);
    let out = s.schedule();
    let resumed = out.scheduled.iter().find(|r| r.id == b).expect("b resumes");
    assert_eq!(resumed.kind, ScheduleKind::Resumed);
    assert_eq!(
        resumed.start, 8,
        "its two full prompt blocks were still cached"
    );
}

#[test]
fn without_prefix_caching_nothing_is_shared() {
    let mut s = Scheduler::new(SchedulerConfig {
        enable_prefix_caching: false,
        window: None,
        ..cfg(64, 4, 16)
    });
    let a = s.add_request_with_prefix(10, hashes(0, 10)).unwrap();
    run_to_end(&mut s, a);
    let b = s.add_request_with_prefix(10, hashes(0, 10)).unwrap();
    let out = s.schedule();
    assert_eq!(chunks(&out), vec![(b.0, 0, 10)]);
    assert_eq!(s.kv_blocks_cached(), 0);
}

#[test]
fn sliding_window_blocks_are_given_back_as_the_sequence_grows() {
    // Window 10 over blocks of 4: a query at position p reads keys p-9..=p, so a request
    // never needs more than 4 window blocks held at once (plus those of its chunk).
    let mut s = Scheduler::new(SchedulerConfig {
        window: Some(WindowKv {
            window: 10,
            num_blocks: 12,
        }),
        ..cfg(8, 4, 64)
    });
    assert!(
        !s.config().enable_prefix_caching,
        "off with a sliding window"
    );
    let a = s.add_request(20).unwrap();
    let b = s.add_request(6).unwrap();
    let placeholder = s.kv.window_placeholder().unwrap();
    for _ in 0..40 {
        let out = s.schedule();
        assert!(out.preempted.is_empty(), "the window pool suffices");
        for id in [a, b] {
            let req = s.request(id).unwrap();
            // Blocks wholly before the window of the next query are gone.
            let next = req.num_computed_tokens;
            let first_needed = (next + 1).saturating_sub(10) / 4;
            let first_scheduled = out
                .scheduled
                .iter()
                .find(|r| r.id == id)
                .map_or(next, |r| r.start);
            let first_kept = (first_scheduled + 1).saturating_sub(10) / 4;
            assert!(first_kept <= first_needed);
            let raw = s.window_block_table(id).unwrap();
            assert!(raw[..first_kept].iter().all(|&b| b == placeholder));
            assert!(raw[first_kept..].iter().all(|&b| b != placeholder));
            assert!(req.kv.window_blocks().num_held() <= 6, "{:?}", req.kv);
            // The full-attention table keeps everything.
            assert_eq!(req.kv.blocks().len(), req.num_computed_tokens.div_ceil(4));
        }
        sample_all(&mut s, &out);
    }
    assert!(s.request(a).unwrap().num_computed_tokens > 40);
    let (total, used) = s.window_kv_blocks();
    assert_eq!(total, 12);
    assert!(used < 12, "the placeholder is never handed out");
    s.finish(a, KvRelease::Keep);
    s.finish(b, KvRelease::Keep);
    assert_eq!(s.window_kv_blocks(), (12, 0), "everything given back");
    assert_eq!(s.kv_blocks_used(), 0);
}

#[test]
fn a_full_window_pool_preempts_like_a_full_pool() {
    // 5 usable window blocks (+ the placeholder) against 64 full ones: two requests of 12
    // prompt tokens that keep decoding need up to 4 window blocks each, so the window pool
    // is what runs out, and preemption frees it as it frees the full pool.
    let mut s = Scheduler::new(SchedulerConfig {
        window: Some(WindowKv {
            window: 10,
            num_blocks: 6,
        }),
        ..cfg(16, 4, 64)
    });
    let ids = [s.add_request(12).unwrap(), s.add_request(12).unwrap()];
    for _ in 0..12 {
        let out = s.schedule();
        assert!(s.window_kv_blocks().1 <= 5);
        assert!(s.kv_blocks_used() < 64);
        sample_all(&mut s, &out);
    }
    assert!(s.num_preemptions() > 0, "the window pool must have run out");
    for id in ids {
        s.finish(id, KvRelease::Keep);
    }
    assert_eq!(s.window_kv_blocks(), (6, 0));
}

#[test]
fn each_step_says_what_the_still_waiting_wait_for() {
    // Token budget: 8 tokens, a 6-token prompt first; the second does not start this step...
    let mut s = Scheduler::new(cfg(8, 4, 64));
    s.add_request(8).unwrap();
    s.add_request(6).unwrap();
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), 1);
    assert_eq!(out.admission_stop, Some(AdmissionStop::TokenBudget));
    // Nobody left waiting: no reason.
    sample_all(&mut s, &out);
    let out = s.schedule();
    assert_eq!(out.admission_stop, None, "{:?}", chunks(&out));

    // Running slots: one slot, two requests.
    let mut s = Scheduler::new(cfg(64, 1, 64));
    s.add_request(4).unwrap();
    s.add_request(4).unwrap();
    let out = s.schedule();
    assert_eq!(out.admission_stop, Some(AdmissionStop::RunningSlot));

    // KV blocks: 3 blocks of 4; the second's prompt of 8 needs 2 more than are free.
    let mut s = Scheduler::new(SchedulerConfig {
        enable_prefix_caching: false,
        ..cfg(64, 4, 3)
    });
    s.add_request(7).unwrap();
    s.add_request(8).unwrap();
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), 1);
    assert_eq!(out.admission_stop, Some(AdmissionStop::KvBlocks));
}

// --- policies

fn with_policy(policy: SchedulingPolicy, base: SchedulerConfig) -> Scheduler {
    Scheduler::new(SchedulerConfig { policy, ..base })
}

/// Queues a request of `tenant` at `priority` with a prompt of `n` tokens.
fn add_as(s: &mut Scheduler, tenant: &str, priority: i32, n: usize) -> RequestId {
    let id = RequestId(s.next_id);
    let placement = Placement {
        tenant: tenant.into(),
        priority,
    };
    s.add(id, n, Vec::new(), placement).unwrap();
    id
}

fn running_of(s: &Scheduler, tenant: &str) -> usize {
    s.running()
        .iter()
        .filter(|id| &*s.request(**id).unwrap().placement.tenant == tenant)
        .count()
}

/// One step's decisions: (request, start, tokens) of each scheduled chunk, and the
/// preempted requests.
type StepDecisions = (Vec<(u64, usize, usize)>, Vec<u64>);

/// Every step's decisions, for a workload of one tenant with arrivals, growth and finishes
/// driven by a fixed pseudo-random sequence.
fn one_tenant_trace(policy: SchedulingPolicy) -> Vec<StepDecisions> {
    let mut s = with_policy(policy, cfg(24, 5, 16));
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut trace = Vec::new();
    for _ in 0..300 {
        if next() % 3 == 0 {
            add_as(&mut s, "", 0, 1 + (next() % 30) as usize);
        }
        let out = s.schedule();
        sample_all(&mut s, &out);
        for r in out.scheduled.iter().filter(|r| r.samples) {
            if next() % 9 == 0 {
                s.finish(r.id, KvRelease::Keep);
            }
        }
        let preempted = out.preempted.iter().map(|p| p.id.0).collect();
        trace.push((chunks(&out), preempted));
    }
    trace
}

#[test]
fn with_one_tenant_and_one_priority_every_policy_is_fcfs() {
    let fcfs = one_tenant_trace(SchedulingPolicy::Fcfs);
    assert!(
        fcfs.iter().any(|(_, p)| !p.is_empty()),
        "the workload must preempt for the comparison to mean something"
    );
    assert_eq!(one_tenant_trace(SchedulingPolicy::Fair), fcfs);
    assert_eq!(one_tenant_trace(SchedulingPolicy::Priority), fcfs);
}

#[test]
fn fair_gives_a_waiting_tenant_a_slot_in_the_next_step() {
    for policy in [SchedulingPolicy::Fcfs, SchedulingPolicy::Fair] {
        let mut s = with_policy(policy, cfg(64, 4, 64));
        for _ in 0..8 {
            add_as(&mut s, "flood", 0, 4);
        }
        let out = s.schedule();
        sample_all(&mut s, &out);
        assert_eq!(running_of(&s, "flood"), 4);
        let victim = add_as(&mut s, "victim", 0, 4);
        let out = s.schedule();
        let admitted = out.scheduled.iter().any(|r| r.id == victim);
        match policy {
            SchedulingPolicy::Fair => {
                assert!(admitted, "fair admits the other tenant at once");
                // The flood's newest running request made room, and says why.
                assert_eq!(
                    out.preempted,
                    vec![Preemption {
                        id: RequestId(3),
                        cause: PreemptCause::FairShare
                    }]
                );
                // It keeps its blocks while nobody needs them.
                let flood = s.request(RequestId(3)).unwrap();
                assert_eq!(flood.state, RequestState::Suspended);
                assert_eq!(flood.num_computed_tokens, 4);
                // The preempted request goes back ahead of its tenant's later arrivals.
                assert_eq!(s.waiting_order()[0], RequestId(3));
            }
            _ => assert!(!admitted && out.preempted.is_empty(), "fcfs makes it wait"),
        }
    }
}

#[test]
fn fair_shares_running_slots_equally_and_then_stops_preempting() {
    let mut s = with_policy(SchedulingPolicy::Fair, cfg(64, 6, 128));
    for _ in 0..10 {
        add_as(&mut s, "a", 0, 4);
    }
    let out = s.schedule();
    sample_all(&mut s, &out);
    for _ in 0..10 {
        add_as(&mut s, "b", 0, 4);
    }
    add_as(&mut s, "c", 0, 4);
    let out = s.schedule();
    sample_all(&mut s, &out);
    assert_eq!(out.preempted.len(), 3, "{:?}", out.preempted);
    assert!(
        out.preempted
            .iter()
            .all(|p| p.cause == PreemptCause::FairShare)
    );
    // c wants one slot; a and b split the other five as evenly as they go.
    assert_eq!(
        (
            running_of(&s, "a"),
            running_of(&s, "b"),
            running_of(&s, "c")
        ),
        (3, 2, 1)
    );
    for _ in 0..5 {
        let out = s.schedule();
        sample_all(&mut s, &out);
        assert!(out.preempted.is_empty(), "a balanced set is left alone");
    }
    // A slot that frees goes to the tenant with the fewest running requests.
    let a_running = s.running()[0];
    assert_eq!(&*s.request(a_running).unwrap().placement.tenant, "a");
    s.finish(a_running, KvRelease::Keep);
    let out = s.schedule();
    let new: Vec<&str> = out
        .scheduled
        .iter()
        .filter(|r| r.kind != ScheduleKind::Continue)
        .map(|r| &*s.request(r.id).unwrap().placement.tenant)
        .collect();
    assert_eq!(new, vec!["a"]);
}

#[test]
fn fair_budgets_the_smaller_tenants_prefill_first() {
    // Budget 8: tenant a's 20-token prompt is mid-prefill when b's 6-token prompt arrives;
    // the step after b's arrival, and b.
    let step_after_b = |policy| {
        let mut s = with_policy(policy, cfg(8, 4, 64));
        add_as(&mut s, "a", 0, 20);
        add_as(&mut s, "a", 0, 20);
        let out = s.schedule();
        sample_all(&mut s, &out);
        let b = add_as(&mut s, "b", 0, 6);
        (s.schedule(), b)
    };
    let (out, b) = step_after_b(SchedulingPolicy::Fair);
    assert_eq!(chunks(&out)[0], (b.0, 0, 6), "{:?}", chunks(&out));
    // Under fcfs, the running prefills take the whole budget first.
    let (out, b) = step_after_b(SchedulingPolicy::Fcfs);
    assert!(out.scheduled.iter().all(|r| r.id != b));
}

#[test]
fn fair_preempts_the_fullest_tenant_for_kv_blocks() {
    // 8 blocks of 4 tokens. Tenant a runs three 8-token requests (6 blocks), b one 7-token
    // request (2 blocks); when b's needs a new block, a's newest gives its blocks up, not b.
    let mut s = with_policy(
        SchedulingPolicy::Fair,
        SchedulerConfig {
            enable_prefix_caching: false,
            ..cfg(64, 8, 8)
        },
    );
    let b = add_as(&mut s, "b", 0, 7);
    let a: Vec<RequestId> = (0..3).map(|_| add_as(&mut s, "a", 0, 8)).collect();
    let out = s.schedule();
    assert_eq!(out.scheduled.len(), 4);
    sample_all(&mut s, &out);
    let out = s.schedule();
    assert_eq!(
        out.preempted
            .iter()
            .map(|p| (p.id, p.cause))
            .collect::<Vec<_>>(),
        vec![(a[2], PreemptCause::KvBlocks)]
    );
    assert!(out.scheduled.iter().any(|r| r.id == b));
}

#[test]
fn priority_preempts_only_for_a_strictly_higher_priority() {
    let mut s = with_policy(SchedulingPolicy::Priority, cfg(64, 2, 64));
    let low = add_as(&mut s, "", 5, 4);
    let mid = add_as(&mut s, "", 1, 4);
    let out = s.schedule();
    sample_all(&mut s, &out);
    let same = add_as(&mut s, "", 5, 4);
    let out = s.schedule();
    sample_all(&mut s, &out);
    assert!(out.preempted.is_empty(), "an equal priority waits its turn");
    let urgent = add_as(&mut s, "", -1, 4);
    let out = s.schedule();
    assert_eq!(
        out.preempted,
        vec![Preemption {
            id: low,
            cause: PreemptCause::Priority
        }]
    );
    assert!(out.scheduled.iter().any(|r| r.id == urgent));
    assert!(out.scheduled.iter().any(|r| r.id == mid));
    // The preempted request goes back ahead of the later one of its priority.
    assert_eq!(s.waiting_order(), vec![low, same]);
}

#[test]
fn a_suspended_request_resumes_where_it_stopped_unless_its_blocks_were_needed() {
    // 12 blocks of 4 tokens, two slots; no prefix cache, so blocks are only what requests hold.
    let base = SchedulerConfig {
        enable_prefix_caching: false,
        ..cfg(64, 2, 12)
    };
    let mut s = with_policy(SchedulingPolicy::Fair, base);
    add_as(&mut s, "a", 0, 6);
    let a2 = add_as(&mut s, "a", 0, 6);
    let out = s.schedule();
    sample_all(&mut s, &out);
    // b takes a2's slot; a2 keeps its two blocks.
    let b = add_as(&mut s, "b", 0, 4);
    let out = s.schedule();
    sample_all(&mut s, &out);
    assert_eq!(preempted(&out), vec![a2]);
    assert_eq!(s.request(a2).unwrap().state, RequestState::Suspended);
    assert_eq!(s.kv_blocks_used(), 2 + 2 + 1, "a, a2 (kept) and b");
    // b leaves: a2 resumes at position 6, computing its one sampled token, not seven.
    s.finish(b, KvRelease::Keep);
    let out = s.schedule();
    let resumed = out.scheduled.iter().find(|r| r.id == a2).unwrap();
    assert_eq!(
        (resumed.kind, resumed.start, resumed.num_tokens),
        (ScheduleKind::Resumed, 6, 1)
    );

    // Under KV pressure a suspended request's blocks go first, before any running request's.
    let mut s = with_policy(SchedulingPolicy::Fair, base);
    let a = [0, 1].map(|_| add_as(&mut s, "a", 0, 8));
    let out = s.schedule();
    sample_all(&mut s, &out);
    let b = add_as(&mut s, "b", 0, 12);
    let out = s.schedule(); // b displaces a[1], which keeps its 3 blocks
    sample_all(&mut s, &out);
    assert_eq!(preempted(&out), vec![a[1]]);
    assert_eq!(s.request(a[1]).unwrap().state, RequestState::Suspended);
    // Growing a and b soon needs more than the free blocks: a[1]'s are taken, nobody
    // running is preempted.
    for _ in 0..12 {
        let out = s.schedule();
        assert!(out.preempted.is_empty(), "{:?}", out.preempted);
        sample_all(&mut s, &out);
    }
    let evicted = s.request(a[1]).unwrap();
    assert_eq!(
        (evicted.state, evicted.num_computed_tokens),
        (RequestState::Preempted, 0)
    );
    assert!(s.running().contains(&a[0]) && s.running().contains(&b));
}
