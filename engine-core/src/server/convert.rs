//! Between the wire types of `journey.engine.v1` and the engine's own.

use proto::engine as pb;
use proto::engine::generate_request::Prompt;
use tonic::Status;

use crate::engine::{
    EngineError, EngineHandle, EnginePrompt, EngineRequest, FinishReason, RequestEvent,
};
use crate::journey::TraceContext;
use std::time::Duration;

use crate::lifecycle::{
    AdmissionStop, BatchContext, Finish, MarkKind, RequestJourney, StopReason, Timings, WaitReason,
    WaitTimes, epoch_secs,
};
use crate::model::chat_template::ChatMessage;
use crate::model::tokenizer::Tokenizer;
use crate::sampling::{SamplingParams, TokenLogprob};
use crate::scheduler::Placement;
use proto::telemetry::Stamp;

/// A validated engine request from the wire form.
pub(super) fn engine_request(
    id: String,
    req: pb::GenerateRequest,
    trace: TraceContext,
    deadline: Option<std::time::Instant>,
    tenant: std::sync::Arc<str>,
) -> Result<EngineRequest, Status> {
    let prompt = match req.prompt {
        Some(Prompt::Text(text)) => EnginePrompt::Text(text),
        Some(Prompt::TokenIds(ids)) => EnginePrompt::TokenIds(ids.ids),
        Some(Prompt::Chat(chat)) => EnginePrompt::Chat {
            messages: chat
                .messages
                .into_iter()
                .map(|m| ChatMessage {
                    role: m.role,
                    content: m.content,
                })
                .collect(),
            add_generation_prompt: chat.add_generation_prompt,
        },
        None => {
            return Err(Status::invalid_argument(
                "GenerateRequest has no prompt: set text, token_ids or chat",
            ));
        }
    };
    Ok(EngineRequest {
        id,
        prompt,
        params: sampling(req.sampling.unwrap_or_default()),
        trace,
        return_journey: req.return_journey,
        deadline,
        placement: Placement {
            tenant,
            priority: req.priority,
        },
    })
}

/// The caller's tenant from `x-journey-tenant` (empty when absent); refuses a name that is
/// not [`proto::auth::valid_tenant`].
pub(super) fn tenant(
    metadata: &tonic::metadata::MetadataMap,
) -> Result<std::sync::Arc<str>, Status> {
    let Some(v) = metadata.get(proto::conventions::metadata::JOURNEY_TENANT) else {
        return Ok("".into());
    };
    let name = v
        .to_str()
        .ok()
        .filter(|s| proto::auth::valid_tenant(s))
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "{}: at most {} visible ASCII characters",
                proto::conventions::metadata::JOURNEY_TENANT,
                proto::auth::MAX_TENANT_BYTES
            ))
        })?;
    Ok(name.into())
}

/// Wire sampling parameters; unset fields take the engine's defaults (vLLM's), and an unset
/// `max_tokens` means "up to the context length".
fn sampling(p: pb::SamplingParams) -> SamplingParams {
    let d = SamplingParams::default();
    SamplingParams {
        temperature: p.temperature.unwrap_or(d.temperature),
        top_p: p.top_p.unwrap_or(d.top_p),
        top_k: p.top_k.unwrap_or(d.top_k),
        min_p: p.min_p.unwrap_or(d.min_p),
        seed: p.seed,
        presence_penalty: p.presence_penalty.unwrap_or(d.presence_penalty),
        frequency_penalty: p.frequency_penalty.unwrap_or(d.frequency_penalty),
        repetition_penalty: p.repetition_penalty.unwrap_or(d.repetition_penalty),
        max_tokens: p.max_tokens.unwrap_or(u32::MAX),
        stop: p.stop,
        stop_token_ids: p.stop_token_ids,
        ignore_eos: p.ignore_eos,
        logprobs: p.logprobs,
        prompt_logprobs: p.prompt_logprobs,
    }
}

/// The gRPC status of a refused submission.
pub(super) fn submit_status(e: EngineError) -> Status {
    match e {
        EngineError::InvalidRequest(m) => Status::invalid_argument(m),
        EngineError::Overloaded => Status::resource_exhausted(e.to_string()),
        EngineError::Stopped => Status::unavailable(e.to_string()),
    }
}

fn token(tok: &Tokenizer, t: &TokenLogprob) -> pb::TokenLogprob {
    pb::TokenLogprob {
        id: t.id,
        logprob: t.logprob,
        text: tok.decode(&[t.id], false).unwrap_or_default(),
    }
}

fn logprobs(tok: &Tokenizer, chosen: &TokenLogprob, top: &[TokenLogprob]) -> pb::Logprobs {
    pb::Logprobs {
        token: Some(token(tok, chosen)),
        top: top.iter().map(|t| token(tok, t)).collect(),
    }
}

/// The wire form of a request's journey; `t` gives the stage times.
fn journey(j: &RequestJourney, t: &Timings) -> pb::EngineJourney {
    use pb::journey_event::Kind;
    let secs = |d: Duration| d.as_secs_f64();
    let batch = |b: &BatchContext| pb::BatchContext {
        step: b.step,
        num_requests: b.num_requests as u32,
        num_tokens: (b.prefill_tokens + b.decode_tokens) as u32,
        prefill_tokens: b.prefill_tokens as u32,
        decode_tokens: b.decode_tokens as u32,
        duration: secs(b.duration),
        num_running: b.num_running as u32,
        num_waiting: b.num_waiting as u32,
    };
    let waits = |w: &WaitTimes| pb::WaitTimes {
        step: secs(w.step),
        running_slot: secs(w.running_slot),
        kv_blocks: secs(w.kv_blocks),
        token_budget: secs(w.token_budget),
    };
    let events = j
        .events
        .iter()
        .map(|m| {
            let (kind, resumed, wait_ended, preempt_cause) = match m.kind {
                MarkKind::Queued => (Kind::Queued, false, None, ""),
                MarkKind::Scheduled {
                    resumed,
                    wait_ended,
                } => (Kind::Scheduled, resumed, Some(wait_reason(wait_ended)), ""),
                MarkKind::Preempted(cause) => (Kind::Preempted, false, None, cause.as_str()),
                MarkKind::FirstToken => (Kind::FirstToken, false, None, ""),
                MarkKind::Finished => (Kind::Finished, false, None, ""),
            };
            pb::JourneyEvent {
                kind: kind as i32,
                step: m.step,
                offset: secs(m.offset),
                resumed,
                wait_ended: wait_ended.unwrap_or(pb::WaitReason::Unspecified) as i32,
                batch: m.batch.as_ref().map(batch),
                preempt_cause: preempt_cause.to_owned(),
            }
        })
        .collect();
    pb::EngineJourney {
        events,
        prefill_chunks: j
            .prefill_chunks
            .iter()
            .map(|c| pb::PrefillChunk {
                offset: secs(c.offset),
                start: c.start as u32,
                num_tokens: c.num_tokens as u32,
                batch: Some(batch(&c.batch)),
            })
            .collect(),
        token_offsets: j.token_offsets.iter().map(|&d| secs(d)).collect(),
        tokenize: secs(t.tokenize),
        detokenize: secs(t.detokenize),
        handoff: t.handoff().map_or(0.0, secs),
        queue: Some(waits(&t.queue_wait)),
        requeue: Some(waits(&t.requeue_wait)),
    }
}

fn wait_reason(w: WaitReason) -> pb::WaitReason {
    match w {
        WaitReason::Step => pb::WaitReason::Step,
        WaitReason::Admission(AdmissionStop::RunningSlot) => pb::WaitReason::RunningSlot,
        WaitReason::Admission(AdmissionStop::KvBlocks) => pb::WaitReason::KvBlocks,
        WaitReason::Admission(AdmissionStop::TokenBudget) => pb::WaitReason::TokenBudget,
    }
}

/// The caller's deadline from its `grpc-timeout` header (`<digits><H|M|S|m|u|n>`, gRPC's
/// HTTP/2 protocol), counted from `now`; `None` without a (valid) one.
pub(super) fn deadline(
    md: &tonic::metadata::MetadataMap,
    now: std::time::Instant,
) -> Option<std::time::Instant> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    now.checked_add(d)
}

/// The wire's `stop_reason`: the stop string, or the stop token id in decimal, that ended the
/// request; for a refused or failed one, the reason in words; empty otherwise.
fn stop_reason(f: &Finish) -> String {
    match f {
        Finish::Stop(StopReason::Text(s)) => s.clone(),
        Finish::Stop(StopReason::Token(t)) => t.to_string(),
        Finish::Failed(failure) => failure.to_string(),
        Finish::Stop(StopReason::Eos) | Finish::Length | Finish::Aborted(_) => String::new(),
    }
}

fn finish_reason(r: FinishReason) -> pb::FinishReason {
    match r {
        FinishReason::Stop => pb::FinishReason::Stop,
        FinishReason::Length => pb::FinishReason::Length,
        FinishReason::Aborted => pb::FinishReason::Aborted,
        FinishReason::Ignored => pb::FinishReason::Ignored,
        FinishReason::Error => pb::FinishReason::Error,
    }
}

/// One engine event as a wire message.
pub(super) fn response(
    id: &str,
    event: RequestEvent,
    return_prompt_ids: bool,
    tok: &Tokenizer,
) -> pb::GenerateResponse {
    let mut r = pb::GenerateResponse {
        request_id: id.to_owned(),
        ..Default::default()
    };
    match event {
        RequestEvent::Started {
            prompt_token_ids,
            prompt_logprobs,
        } => {
            if let Some(entries) = prompt_logprobs {
                r.prompt_logprobs = entries
                    .iter()
                    .zip(&prompt_token_ids)
                    .map(|(entry, &id)| match entry {
                        Some(p) => logprobs(
                            tok,
                            &TokenLogprob {
                                id,
                                logprob: p.logprob,
                            },
                            &p.top,
                        ),
                        None => pb::Logprobs {
                            token: Some(token(
                                tok,
                                &TokenLogprob {
                                    id,
                                    logprob: f32::NAN,
                                },
                            )),
                            top: Vec::new(),
                        },
                    })
                    .collect();
            }
            if return_prompt_ids {
                r.prompt_token_ids = prompt_token_ids;
            }
        }
        RequestEvent::Tokens {
            token_ids,
            text,
            logprobs: lps,
        } => {
            if let Some(lps) = lps {
                r.logprobs = lps
                    .iter()
                    .map(|l| {
                        logprobs(
                            tok,
                            &TokenLogprob {
                                id: l.token,
                                logprob: l.logprob,
                            },
                            &l.top,
                        )
                    })
                    .collect();
            }
            r.token_ids = token_ids;
            r.text = text;
        }
        RequestEvent::Finished(f) => {
            r.finish_reason = Some(finish_reason(f.finish.reason()) as i32);
            r.stop_reason = stop_reason(&f.finish);
            r.usage = Some(pb::Usage {
                prompt_tokens: f.usage.prompt_tokens,
                completion_tokens: f.usage.completion_tokens,
            });
            let t = &f.timings;
            // The wire's instants are epoch seconds, 0 for one that never happened.
            let secs = |s: Option<Stamp>| s.map_or(0.0, epoch_secs);
            r.timings = Some(pb::Timings {
                arrived: epoch_secs(t.arrived),
                queued: secs(t.queued),
                scheduled: secs(t.scheduled),
                first_token: secs(t.first_token),
                finished: secs(t.finished),
                prefill_time: t.prefill_time.as_secs_f64(),
                decode_time: t.decode_time.as_secs_f64(),
                num_preemptions: f.num_preemptions,
            });
            r.journey = f.journey.as_deref().map(|j| journey(j, t));
        }
    }
    r
}

/// Model facts and live stats.
pub(super) fn model_info(handle: &EngineHandle) -> pb::ModelInfo {
    let facts = handle.model_facts();
    let stats = handle.stats();
    pb::ModelInfo {
        model_name: facts.name.clone(),
        architecture: facts.architecture.clone(),
        context_length: facts.context_length as u32,
        vocab_size: facts.vocab_size as u32,
        has_chat_template: facts.has_chat_template,
        eos_token_ids: facts.eos_token_ids.clone(),
        bos_token_id: facts.bos_token_id,
        add_bos: facts.add_bos,
        kv_block_size: facts.block_size as u32,
        kv_blocks_total: stats.kv_blocks_total as u32,
        kv_blocks_used: stats.kv_blocks_used as u32,
        num_running: stats.num_running as u32,
        num_waiting: stats.num_waiting as u32,
        num_preemptions_total: stats.num_preemptions_total,
        num_requests_finished: stats.num_requests_finished,
        device: facts.device.clone(),
        max_token_bytes: handle.tokenizer().max_token_bytes() as u32,
        kv_window_blocks_total: stats.window_blocks_total as u32,
        kv_window_blocks_used: stats.window_blocks_used as u32,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tonic::metadata::MetadataMap;

    use super::deadline;

    #[test]
    fn grpc_timeouts_become_deadlines() {
        let now = Instant::now();
        let at = |v: &str| {
            let mut md = MetadataMap::new();
            md.insert("grpc-timeout", v.parse().unwrap());
            deadline(&md, now).map(|d| d - now)
        };
        assert_eq!(at("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(at("2S"), Some(Duration::from_secs(2)));
        assert_eq!(at("3M"), Some(Duration::from_secs(180)));
        assert_eq!(at("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(at("250u"), Some(Duration::from_micros(250)));
        assert_eq!(at("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "12", "123456789S", "1x", "-1S"] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
        assert_eq!(deadline(&MetadataMap::new(), now), None);
    }
}
