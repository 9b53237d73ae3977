//! Incremental stop-string matching over streamed text.

/// Result of feeding one text delta to a [`StopMatcher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// No stop string completed; `emit` is the text that is safe to stream now (possibly
    /// empty while a potential stop-string prefix is held back).
    Continue {
        /// Text to emit.
        emit: String,
    },
    /// A stop string completed. `emit` is the remaining text before it; the stop string and
    /// anything after it are dropped. Generation should end.
    Stopped {
        /// Text to emit (everything before the stop string not emitted earlier).
        emit: String,
        /// The stop string that matched.
        stop: String,
    },
}

/// Incremental stop-string matcher.
///
/// Feed each decoded text delta to [`push`](Self::push). The matcher emits the text that can
/// no longer be part of a stop string and holds back the longest suffix that is a proper
/// prefix of some stop string. When several stop strings occur, the one that *completes*
/// first in the text wins (ties: the one that starts first, i.e. the longer one); this makes
/// the result independent of how the text is split into deltas. After a stop, further input
/// is ignored.
///
/// Deltas are expected to consist of whole UTF-8 characters (Rust `&str`), which keeps
/// every split point a character boundary. Empty stop strings are ignored.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet emitted (a possible stop-string prefix).
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// Creates a matcher for `stops` (empty strings are dropped; an empty list passes all
    /// text straight through).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string has been matched.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds one text delta and returns what may be emitted now.
    pub fn push(&mut self, delta: &str) -> StopOutcome {
        if self.stopped {
            return StopOutcome::Continue {
                emit: String::new(),
            };
        }
        if self.stops.is_empty() {
            return StopOutcome::Continue {
                emit: delta.to_owned(),
            };
        }
        self.held.push_str(delta);

        // Invariant: `held` contained no complete stop string before this delta, and every
        // match must start inside `held` (we held back the longest possible prefix).
        let mut best: Option<(usize, usize, usize)> = None; // (end, start, stop index)
        for (i, s) in self.stops.iter().enumerate() {
            if let Some(start) = self.held.find(s.as_str()) {
                let cand = (start + s.len(), start, i);
                // Earliest end first; on equal end, earliest start (the longer stop).
                if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                    best = Some(cand);
                }
            }
        }
        if let Some((_, start, i)) = best {
            self.held.truncate(start);
            self.stopped = true;
            return StopOutcome::Stopped {
                emit: std::mem::take(&mut self.held),
                stop: self.stops[i].clone(),
            };
        }

        let keep = self.held_back_len();
        let emit_len = self.held.len() - keep;
        let rest = self.held.split_off(emit_len);
        let emit = std::mem::replace(&mut self.held, rest);
        StopOutcome::Continue { emit }
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop
    /// string. Byte comparison is enough: a matching suffix starts with the first byte of a
    /// stop string, which is never a UTF-8 continuation byte, so the split is a char boundary.
    fn held_back_len(&self) -> usize {
        let held = self.held.as_bytes();
        let mut keep = 0;
        for s in &self.stops {
            let s = s.as_bytes();
            let max = (s.len() - 1).min(held.len());
            for k in (keep + 1..=max).rev() {
                if held.ends_with(&s[..k]) {
                    keep = k;
                    break;
                }
            }
        }
        keep
    }

    /// Ends the stream (EOS or length limit): returns any held-back text, which is then known
    /// not to be a stop string. Returns an empty string after a stop.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(stops: &[&str]) -> StopMatcher {
        StopMatcher::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Feeds all deltas; returns the full emitted text and the stop string, if any.
    fn run(m: &mut StopMatcher, deltas: &[&str]) -> (String, Option<String>) {
        let mut out = String::new();
        for d in deltas {
            match m.push(d) {
                StopOutcome::Continue { emit } => out.push_str(&emit),
                StopOutcome::Stopped { emit, stop } => {
                    out.push_str(&emit);
                    return (out, Some(stop));
                }
            }
        }
        out.push_str(&m.flush());
        (out, None)
    }

    fn cont(s: &str) -> StopOutcome {
        StopOutcome::Continue { emit: s.into() }
    }

    #[test]
    fn empty_stop_list_passes_through() {
        let mut m = matcher(&[]);
        assert_eq!(m.push("hello "), cont("hello "));
        assert_eq!(m.push("world"), cont("world"));
        assert_eq!(m.flush(), "");
        let mut m = matcher(&[""]);
        assert_eq!(m.push("abc"), cont("abc"));
    }

    #[test]
    fn stop_within_one_delta() {
        let mut m = matcher(&["END"]);
        assert_eq!(
            m.push("fooENDbar"),
            StopOutcome::Stopped {
                emit: "foo".into(),
                stop: "END".into()
            }
        );
        assert!(m.is_stopped());
        assert_eq!(m.push("more"), cont(""));
        assert_eq!(m.flush(), "");
    }

    #[test]
    fn stop_split_across_many_deltas() {
        let mut m = matcher(&["<|end|>"]);
        assert_eq!(m.push("Hi <"), cont("Hi "));
        assert_eq!(m.push("|"), cont(""));
        assert_eq!(m.push("en"), cont(""));
        assert_eq!(m.push("d|"), cont(""));
        assert_eq!(
            m.push(">tail"),
            StopOutcome::Stopped {
                emit: String::new(),
                stop: "<|end|>".into()
            }
        );
    }

    #[test]
    fn held_prefix_released_when_not_a_stop() {
        let mut m = matcher(&["stop"]);
        assert_eq!(m.push("a st"), cont("a "));
        assert_eq!(m.push("o"), cont(""));
        assert_eq!(m.push("ry"), cont("story"));
        // Held prefix at the end of generation is flushed.
        assert_eq!(m.push(" sto"), cont(" "));
        assert_eq!(m.flush(), "sto");
    }

    #[test]
    fn held_prefix_partially_released() {
        // "aab" with stop "ab": after "a", "a" is held; "a" again -> first released.
        let mut m = matcher(&["ab"]);
        assert_eq!(m.push("a"), cont(""));
        assert_eq!(m.push("a"), cont("a"));
        assert_eq!(
            m.push("b"),
            StopOutcome::Stopped {
                emit: String::new(),
                stop: "ab".into()
            }
        );
        // Overlapping self-prefix: stop "aab" on "aaab".
        let mut m = matcher(&["aab"]);
        assert_eq!(
            run(&mut m, &["a", "a", "a", "b", "c"]),
            ("a".into(), Some("aab".into()))
        );
    }

    #[test]
    fn multiple_stops_earliest_wins() {
        let mut m = matcher(&["world", "lo"]);
        assert_eq!(
            m.push("hello world"),
            StopOutcome::Stopped {
                emit: "hel".into(),
                stop: "lo".into()
            }
        );
        // Same start: the shorter one completes first.
        let mut m = matcher(&["abc", "ab"]);
        assert_eq!(run(&mut m, &["xabcd"]), ("x".into(), Some("ab".into())));
        // Chunking does not change the result.
        let stops = ["xyz", "y", "foo bar"];
        let text = "a foo baxyz";
        let whole = run(&mut matcher(&stops), &[text]);
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(run(&mut matcher(&stops), &refs), whole);
        assert_eq!(whole, ("a foo bax".into(), Some("y".into())));
    }

    #[test]
    fn multibyte_utf8() {
        let mut m = matcher(&["é終", "🙂!"]);
        assert_eq!(m.push("café"), cont("caf"));
        assert_eq!(m.push(" ok"), cont("é ok"));
        assert_eq!(m.push("é"), cont(""));
        assert_eq!(
            m.push("終わり"),
            StopOutcome::Stopped {
                emit: String::new(),
                stop: "é終".into()
            }
        );
        let mut m = matcher(&["🙂!"]);
        assert_eq!(
            run(&mut m, &["日本", "🙂", "?", "🙂", "!", "x"]),
            ("日本🙂?".into(), Some("🙂!".into()))
        );
        // Stop sharing a leading byte pattern with other chars must not split a char.
        let mut m = matcher(&["éa"]);
        assert_eq!(m.push("è"), cont("è"));
        assert_eq!(m.push("é"), cont(""));
        assert_eq!(m.flush(), "é");
    }

    #[test]
    fn chunking_invariance_randomized() {
        let stops: Vec<String> = ["\n\n", "Human:", "</s>", "ab"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let texts = [
            "Hello there.\nHuman: hi",
            "no stops in here at all < / s >",
            "a\n b\n\nc",
            "<</s>",
            "Huma Human",
            "xaxbxab",
        ];
        for text in texts {
            let whole = run(&mut StopMatcher::new(&stops), &[text]);
            let chars: Vec<char> = text.chars().collect();
            for step in 1..5 {
                let pieces: Vec<String> = chars.chunks(step).map(|c| c.iter().collect()).collect();
                let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
                assert_eq!(
                    run(&mut StopMatcher::new(&stops), &refs),
                    whole,
                    "{text:?} step {step}"
                );
            }
        }
    }
}
