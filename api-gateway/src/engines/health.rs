//! Each engine's health as the gateway sees it: probed on a timer, marked down at once when a
//! call finds it unreachable, and probed again after an exponential backoff until it answers.

use std::time::{Duration, Instant};

/// What the gateway knows of one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet: requests may go to it.
    Unknown,
    /// Its last probe or call succeeded.
    Up,
    /// Unreachable or not serving: skipped while another engine is up.
    Down {
        /// Consecutive failures.
        failures: u32,
        /// When to probe it next.
        retry_at: Instant,
    },
}

impl Health {
    /// Whether requests may be sent to it.
    pub fn available(self) -> bool {
        !matches!(self, Self::Down { .. })
    }

    /// The state after a failure at `now`.
    pub fn failed(self, now: Instant, backoff: Backoff) -> Self {
        let failures = match self {
            Self::Down { failures, .. } => failures.saturating_add(1),
            _ => 1,
        };
        Self::Down {
            failures,
            retry_at: now + backoff.delay(failures),
        }
    }

    /// Whether a probe is due at `now` (always for an engine that is not down).
    pub fn probe_due(self, now: Instant) -> bool {
        match self {
            Self::Down { retry_at, .. } => now >= retry_at,
            _ => true,
        }
    }
}

/// Exponential backoff between probes of a down engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures: `base · 2^(failures-1)`, capped.
    pub fn delay(self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base
            .checked_mul(1 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// How engines are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Time between probes of engines that are up (and between DNS lookups).
    pub interval: Duration,
    /// Backoff for engines that are down.
    pub backoff: Backoff,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            backoff: Backoff {
                base: Duration::from_millis(250),
                max: Duration::from_secs(10),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(250),
        max: Duration::from_secs(10),
    };

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let delays: Vec<u128> = (1..=8).map(|f| BACKOFF.delay(f).as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(BACKOFF.delay(u32::MAX), BACKOFF.max);
    }

    #[test]
    fn failures_accumulate_and_a_down_engine_waits_for_its_probe() {
        let t0 = Instant::now();
        let once = Health::Up.failed(t0, BACKOFF);
        assert_eq!(
            once,
            Health::Down {
                failures: 1,
                retry_at: t0 + Duration::from_millis(250)
            }
        );
        assert!(!once.available());
        assert!(!once.probe_due(t0));
        assert!(once.probe_due(t0 + Duration::from_millis(250)));
        let twice = once.failed(t0, BACKOFF);
        assert!(matches!(twice, Health::Down { failures: 2, .. }));
        assert!(Health::Unknown.available() && Health::Up.available());
    }
}
