//! Logit penalties: HF/vLLM repetition penalty and OpenAI frequency/presence penalties.
//!
//! The sampler applies the repetition penalty first, then frequency/presence, as vLLM does.
//! Token ids outside the logits row are ignored.

/// HF/vLLM repetition penalty for one logit: a positive logit is divided by `penalty`, a
/// non-positive one multiplied, so `penalty > 1` always makes the token less likely.
#[inline]
pub fn repetition_penalized(logit: f32, penalty: f32) -> f32 {
    if logit > 0.0 {
        logit / penalty
    } else {
        logit * penalty
    }
}

/// Applies the repetition penalty to every token in `tokens` (each id should appear once;
/// the sampler passes the set of prompt and generated tokens). `penalty == 1.0` is a no-op.
pub fn apply_repetition_penalty(
    logits: &mut [f32],
    tokens: impl IntoIterator<Item = u32>,
    penalty: f32,
) {
    if penalty == 1.0 {
        return;
    }
    for t in tokens {
        if let Some(v) = logits.get_mut(t as usize) {
            *v = repetition_penalized(*v, penalty);
        }
    }
}

/// Applies OpenAI frequency and presence penalties from `(token, count)` pairs of generated
/// tokens (each id once): `logit -= frequency * count + presence` for every `count > 0`.
pub fn apply_frequency_presence_penalties(
    logits: &mut [f32],
    counts: impl IntoIterator<Item = (u32, u32)>,
    frequency: f32,
    presence: f32,
) {
    if frequency == 0.0 && presence == 0.0 {
        return;
    }
    for (t, count) in counts {
        if count == 0 {
            continue;
        }
        if let Some(v) = logits.get_mut(t as usize) {
            *v -= frequency * count as f32 + presence;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_divides_positive_multiplies_negative() {
        let mut logits = [2.0f32, -1.0, 3.0, 0.0, 4.0];
        apply_repetition_penalty(&mut logits, [0, 1, 3, 99], 2.0);
        assert_eq!(logits, [1.0, -2.0, 3.0, 0.0, 4.0]);
        // Penalty below 1 rewards instead.
        let mut logits = [2.0f32, -1.0];
        apply_repetition_penalty(&mut logits, [0, 1], 0.5);
        assert_eq!(logits, [4.0, -0.5]);
        let mut logits = [2.0f32, -1.0];
        apply_repetition_penalty(&mut logits, [0, 1], 1.0);
        assert_eq!(logits, [2.0, -1.0]);
    }

    #[test]
    fn frequency_and_presence_penalties() {
        let mut logits = [1.0f32, 1.0, 1.0, 1.0];
        // Token 0 seen 3 times, token 2 once, token 3 zero times (ignored).
        apply_frequency_presence_penalties(&mut logits, [(0, 3), (2, 1), (3, 0)], 0.5, 0.25);
        assert_eq!(logits, [1.0 - 1.5 - 0.25, 1.0, 1.0 - 0.5 - 0.25, 1.0]);
        // Negative values encourage repetition.
        let mut logits = [0.0f32, 0.0];
        apply_frequency_presence_penalties(&mut logits, [(1, 2)], -1.0, -0.5);
        assert_eq!(logits, [0.0, 2.5]);
    }
}
