//! Request-level sampling parameters and their validation.

use serde::{Deserialize, Serialize};

/// Temperatures below this are treated as greedy decoding (same threshold as vLLM).
pub const GREEDY_TEMPERATURE_EPS: f32 = 1e-5;

/// Largest `logprobs` / `prompt_logprobs` a request may ask for.
pub const MAX_LOGPROBS: u32 = 20;

/// Errors produced by the sampling module.
#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    /// A request parameter is out of range; the message names the field and the offending value.
    #[error("{0}")]
    InvalidParam(String),
}

/// Per-request sampling parameters (OpenAI / vLLM semantics).
///
/// Deserialization fills missing fields from [`SamplingParams::default`], so a partial JSON
/// object such as `{"temperature": 0}` is accepted. Call [`SamplingParams::validate`] before
/// using a request's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature in `[0, 2]`; `0` (anything below [`GREEDY_TEMPERATURE_EPS`]) means
    /// greedy decoding. Default `1.0`.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables the filter, `1` is greedy.
    pub top_k: u32,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability mass
    /// reaches `top_p`; range `(0, 1]`, `1.0` disables the filter.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the most likely token's
    /// probability; range `[0, 1]`, `0.0` disables the filter.
    pub min_p: f32,
    /// RNG seed; the same seed (with the same parameters and logits) yields the same tokens.
    /// `None` draws a fresh random seed per sequence.
    pub seed: Option<u64>,
    /// OpenAI presence penalty in `[-2, 2]`: subtracted once from the logit of every token
    /// that already appears in the generated output.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty in `[-2, 2]`: subtracted from a token's logit once per
    /// occurrence of that token in the generated output.
    pub frequency_penalty: f32,
    /// HF/vLLM repetition penalty in `(0, 2]` over prompt and generated tokens: positive
    /// logits are divided by it, negative logits multiplied; `1.0` disables it.
    pub repetition_penalty: f32,
    /// Maximum number of tokens to generate (at least 1). Default 16, as in vLLM.
    pub max_tokens: u32,
    /// Stop strings. They may span several tokens; the matched stop string is not included
    /// in the output text.
    pub stop: Vec<String>,
    /// Token ids that end generation when sampled (in addition to EOS).
    pub stop_token_ids: Vec<u32>,
    /// Keep generating past the model's EOS token.
    pub ignore_eos: bool,
    /// Return this many top log-probabilities per generated token (at most 20), plus the
    /// sampled token's own log-probability.
    pub logprobs: Option<u32>,
    /// Return this many top log-probabilities per prompt position (at most 20).
    pub prompt_logprobs: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: 1.0,
            max_tokens: 16,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            logprobs: None,
            prompt_logprobs: None,
        }
    }
}

/// Checks `value` lies in the closed range `[lo, hi]` (NaN fails).
fn check_closed(name: &str, value: f32, lo: f32, hi: f32) -> Result<(), SamplingError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SamplingError::InvalidParam(format!(
            "{name} must be in [{lo}, {hi}], got {value}"
        )))
    }
}

/// Checks `value` lies in the half-open range `(lo, hi]` (NaN fails).
fn check_open_closed(name: &str, value: f32, lo: f32, hi: f32) -> Result<(), SamplingError> {
    if value > lo && value <= hi {
        Ok(())
    } else {
        Err(SamplingError::InvalidParam(format!(
            "{name} must be in ({lo}, {hi}], got {value}"
        )))
    }
}

/// Most stop strings a request may give (OpenAI allows 4; the stop matcher's cost per token
/// grows with their number and length).
pub const MAX_STOP_STRINGS: usize = 16;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 256;
/// Most `stop_token_ids` a request may give.
pub const MAX_STOP_TOKEN_IDS: usize = 256;

impl SamplingParams {
    /// Checks every field's range and returns an error whose message names the first bad
    /// field, e.g. `temperature must be in [0, 2], got 3`.
    ///
    /// Ranges: `temperature` `[0, 2]`, `top_p` `(0, 1]`, `min_p` `[0, 1]`, `presence_penalty`
    /// and `frequency_penalty` `[-2, 2]`, `repetition_penalty` `(0, 2]`, `max_tokens >= 1`,
    /// `logprobs` and `prompt_logprobs` `<= 20`; stop strings must be non-empty; at most
    /// [`MAX_STOP_STRINGS`] stop strings of at most [`MAX_STOP_BYTES`] bytes, and
    /// [`MAX_STOP_TOKEN_IDS`] stop token ids.
    pub fn validate(&self) -> Result<(), SamplingError> {
        check_closed("temperature", self.temperature, 0.0, 2.0)?;
        check_open_closed("top_p", self.top_p, 0.0, 1.0)?;
        check_closed("min_p", self.min_p, 0.0, 1.0)?;
        check_closed("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        check_closed("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        check_open_closed("repetition_penalty", self.repetition_penalty, 0.0, 2.0)?;
        if self.max_tokens < 1 {
            return Err(SamplingError::InvalidParam(format!(
                "max_tokens must be at least 1, got {}",
                self.max_tokens
            )));
        }
        for (name, value) in [
            ("logprobs", self.logprobs),
            ("prompt_logprobs", self.prompt_logprobs),
        ] {
            if let Some(n) = value.filter(|&n| n > MAX_LOGPROBS) {
                return Err(SamplingError::InvalidParam(format!(
                    "{name} must be in [0, {MAX_LOGPROBS}], got {n}"
                )));
            }
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(SamplingError::InvalidParam(
                "stop strings must be non-empty".to_owned(),
            ));
        }
        if self.stop.len() > MAX_STOP_STRINGS {
            return Err(SamplingError::InvalidParam(format!(
                "stop takes at most {MAX_STOP_STRINGS} strings, got {}",
                self.stop.len()
            )));
        }
        if let Some(long) = self.stop.iter().find(|s| s.len() > MAX_STOP_BYTES) {
            return Err(SamplingError::InvalidParam(format!(
                "stop strings must be at most {MAX_STOP_BYTES} bytes, got one of {}",
                long.len()
            )));
        }
        if self.stop_token_ids.len() > MAX_STOP_TOKEN_IDS {
            return Err(SamplingError::InvalidParam(format!(
                "stop_token_ids takes at most {MAX_STOP_TOKEN_IDS} ids, got {}",
                self.stop_token_ids.len()
            )));
        }
        Ok(())
    }

    /// True when decoding is deterministic argmax: temperature below
    /// [`GREEDY_TEMPERATURE_EPS`] or `top_k == 1`. Greedy sampling consumes no randomness.
    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_TEMPERATURE_EPS || self.top_k == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(p: SamplingParams) -> String {
        match p.validate() {
            Err(SamplingError::InvalidParam(msg)) => msg,
            Ok(()) => panic!("expected an error for {p:?}"),
        }
    }

    #[test]
    fn stop_conditions_are_bounded() {
        let many = SamplingParams {
            stop: vec!["x".into(); MAX_STOP_STRINGS + 1],
            ..SamplingParams::default()
        };
        assert!(err_of(many).contains("stop takes at most 16"));
        let long = SamplingParams {
            stop: vec!["y".repeat(MAX_STOP_BYTES + 1)],
            ..SamplingParams::default()
        };
        assert!(err_of(long).contains("at most 256 bytes"));
        let ids = SamplingParams {
            stop_token_ids: vec![1; MAX_STOP_TOKEN_IDS + 1],
            ..SamplingParams::default()
        };
        assert!(err_of(ids).contains("stop_token_ids takes at most 256"));
        SamplingParams {
            stop: vec!["z".repeat(MAX_STOP_BYTES); MAX_STOP_STRINGS],
            stop_token_ids: vec![2; MAX_STOP_TOKEN_IDS],
            ..SamplingParams::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn default_is_valid_and_not_greedy() {
        let p = SamplingParams::default();
        p.validate().unwrap();
        assert!(!p.is_greedy());
        assert_eq!(p.temperature, 1.0);
        assert_eq!(p.top_p, 1.0);
        assert_eq!(p.repetition_penalty, 1.0);
    }

    #[test]
    fn greedy_detection() {
        let mut p = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        assert!(p.is_greedy());
        p.temperature = 0.7;
        assert!(!p.is_greedy());
        p.top_k = 1;
        assert!(p.is_greedy());
    }

    #[test]
    fn validate_rejects_each_bad_field() {
        let d = SamplingParams::default;
        let cases: Vec<(SamplingParams, &str)> = vec![
            (
                SamplingParams {
                    temperature: 3.0,
                    ..d()
                },
                "temperature must be in [0, 2], got 3",
            ),
            (
                SamplingParams {
                    temperature: -0.5,
                    ..d()
                },
                "temperature must be in [0, 2], got -0.5",
            ),
            (
                SamplingParams {
                    temperature: f32::NAN,
                    ..d()
                },
                "temperature must be in [0, 2], got NaN",
            ),
            (
                SamplingParams { top_p: 0.0, ..d() },
                "top_p must be in (0, 1], got 0",
            ),
            (
                SamplingParams { top_p: 1.5, ..d() },
                "top_p must be in (0, 1], got 1.5",
            ),
            (
                SamplingParams { min_p: -0.1, ..d() },
                "min_p must be in [0, 1], got -0.1",
            ),
            (
                SamplingParams { min_p: 1.1, ..d() },
                "min_p must be in [0, 1], got 1.1",
            ),
            (
                SamplingParams {
                    presence_penalty: 2.5,
                    ..d()
                },
                "presence_penalty must be in [-2, 2], got 2.5",
            ),
            (
                SamplingParams {
                    frequency_penalty: -3.0,
                    ..d()
                },
                "frequency_penalty must be in [-2, 2], got -3",
            ),
            (
                SamplingParams {
                    repetition_penalty: 0.0,
                    ..d()
                },
                "repetition_penalty must be in (0, 2], got 0",
            ),
            (
                SamplingParams {
                    repetition_penalty: 2.5,
                    ..d()
                },
                "repetition_penalty must be in (0, 2], got 2.5",
            ),
            (
                SamplingParams {
                    max_tokens: 0,
                    ..d()
                },
                "max_tokens must be at least 1, got 0",
            ),
            (
                SamplingParams {
                    logprobs: Some(21),
                    ..d()
                },
                "logprobs must be in [0, 20], got 21",
            ),
            (
                SamplingParams {
                    prompt_logprobs: Some(100),
                    ..d()
                },
                "prompt_logprobs must be in [0, 20], got 100",
            ),
            (
                SamplingParams {
                    stop: vec!["ok".into(), String::new()],
                    ..d()
                },
                "stop strings must be non-empty",
            ),
        ];
        for (p, want) in cases {
            assert_eq!(err_of(p), want);
        }
    }

    #[test]
    fn validate_accepts_boundaries() {
        let p = SamplingParams {
            temperature: 2.0,
            top_p: 1.0,
            min_p: 1.0,
            presence_penalty: -2.0,
            frequency_penalty: 2.0,
            repetition_penalty: 2.0,
            max_tokens: 1,
            logprobs: Some(20),
            prompt_logprobs: Some(0),
            ..Default::default()
        };
        p.validate().unwrap();
        let p = SamplingParams {
            temperature: 0.0,
            min_p: 0.0,
            ..Default::default()
        };
        p.validate().unwrap();
    }

    #[test]
    fn serde_partial_json_uses_defaults() {
        let p: SamplingParams =
            serde_json::from_str(r#"{"temperature":0.5,"stop":["\n"],"seed":7}"#).unwrap();
        assert_eq!(p.temperature, 0.5);
        assert_eq!(p.stop, vec!["\n".to_owned()]);
        assert_eq!(p.seed, Some(7));
        assert_eq!(p.top_p, 1.0);
        assert_eq!(p.max_tokens, 16);
        let back: SamplingParams =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
