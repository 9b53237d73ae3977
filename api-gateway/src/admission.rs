//! Admission: at most `--max-concurrent-requests` LLM requests in flight at the gateway (TGI's
//! `max_concurrent_requests`); one more is refused at once with 429 and `Retry-After: 1`
//! rather than queued: a request over the limit costs no body read and no engine work, only
//! its journey (span, metrics, journey store entry) ending `ABORTED(rejected)`.
//!
//! A request holds its [`Permit`] from before its body is read until its answer is complete:
//! a whole response until it is handed to hyper, a stream until its last chunk is handed over,
//! its client leaves, or it is cut off for not reading (`crate::streaming`). The permit is
//! given back by `Drop`, so no path can leak one.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::ApiError;

/// Default `--max-concurrent-requests` (TGI's default).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// The in-flight limit; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    limit: usize,
    in_flight: Gauge,
}

/// One admitted request's place; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    _held: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT_REQUESTS, Gauge::default())
    }
}

impl Admission {
    /// At most `limit` requests in flight (at least 1, at most the semaphore's maximum),
    /// counted in `in_flight`.
    pub fn new(limit: usize, in_flight: Gauge) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            in_flight,
        }
    }

    /// A place for one more request, or [`ApiError::TooManyRequests`] when all are taken.
    pub fn try_admit(&self) -> Result<Permit, ApiError> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(held) => {
                self.in_flight.inc();
                Ok(Permit {
                    _held: held,
                    in_flight: self.in_flight.clone(),
                })
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                Err(ApiError::TooManyRequests(self.limit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_plus_one_is_refused_until_a_permit_is_dropped() {
        let in_flight = Gauge::default();
        let admission = Admission::new(2, in_flight.clone());
        let a = admission.try_admit().unwrap();
        let _b = admission.try_admit().unwrap();
        assert_eq!(in_flight.get(), 2);
        assert_eq!(
            admission.try_admit().unwrap_err(),
            ApiError::TooManyRequests(2)
        );
        assert_eq!(in_flight.get(), 2, "a refusal takes no place");
        drop(a);
        assert_eq!(in_flight.get(), 1);
        assert!(admission.try_admit().is_ok());
    }
}
