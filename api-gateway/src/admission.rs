//! Admission: at most `--max-concurrent-requests` LLM requests in flight at the gateway (TGI's
//! `max_concurrent_requests`); one more is refused at once with 429 and `Retry-After: 1`
//! rather than queued: a request over the limit costs no body read and no engine work, only
//! its journey (span, metrics, journey store entry) ending `ABORTED(rejected)`.
//!
//! With API-key tenants, one tenant may hold at most `--max-concurrent-requests-per-tenant`
//! of the places (three quarters of them by default), so a flood from one key leaves room for
//! the others.
//!
//! A request holds its [`Permit`] from before its body is read until its answer is complete:
//! a whole response until it is handed to hyper, a stream until its last chunk is handed over,
//! its client leaves, or it is cut off for not reading (`crate::streaming`). The permit is
//! given back by `Drop`, so no path can leak one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::ApiError;

/// Default `--max-concurrent-requests` (TGI's default).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// Places held per tenant (tenants holding none are absent).
type TenantCounts = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// The in-flight limit; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    limit: usize,
    tenant_limit: usize,
    tenants: TenantCounts,
    in_flight: Gauge,
}

/// One admitted request's place; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    _held: OwnedSemaphorePermit,
    in_flight: Gauge,
    tenant: Option<(TenantCounts, Arc<str>)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.dec();
        if let Some((tenants, name)) = &self.tenant {
            let mut held = tenants.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = held.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    held.remove(name);
                }
            }
        }
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT_REQUESTS, None, Gauge::default())
    }
}

/// The default per-tenant share of `limit`: three quarters of it (at least one place).
pub fn default_tenant_limit(limit: usize) -> usize {
    (limit - limit / 4).max(1)
}

impl Admission {
    /// At most `limit` requests in flight (at least 1, at most the semaphore's maximum), and
    /// at most `tenant_limit` (default [`default_tenant_limit`]) of one tenant's, counted in
    /// `in_flight`.
    pub fn new(limit: usize, tenant_limit: Option<usize>, in_flight: Gauge) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            tenant_limit: tenant_limit.unwrap_or_else(|| default_tenant_limit(limit)),
            tenants: Arc::default(),
            in_flight,
        }
    }

    /// A place for one more request of `tenant` (none without API keys), or
    /// [`ApiError::TooManyRequests`] when all are taken or the tenant holds its share.
    pub fn try_admit(&self, tenant: Option<&Arc<str>>) -> Result<Permit, ApiError> {
        let held = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(held) => held,
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                return Err(ApiError::TooManyRequests(self.limit));
            }
        };
        let tenant = match tenant {
            None => None,
            Some(name) => {
                let mut counts = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
                if counts.get(name).is_some_and(|&n| n >= self.tenant_limit) {
                    return Err(ApiError::TooManyRequests(self.tenant_limit));
                }
                *counts.entry(Arc::clone(name)).or_default() += 1;
                Some((Arc::clone(&self.tenants), Arc::clone(name)))
            }
        };
        self.in_flight.inc();
        Ok(Permit {
            _held: held,
            in_flight: self.in_flight.clone(),
            tenant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_plus_one_is_refused_until_a_permit_is_dropped() {
        let in_flight = Gauge::default();
        let admission = Admission::new(2, None, in_flight.clone());
        let a = admission.try_admit(None).unwrap();
        let _b = admission.try_admit(None).unwrap();
        assert_eq!(in_flight.get(), 2);
        assert_eq!(
            admission.try_admit(None).unwrap_err(),
            ApiError::TooManyRequests(2)
        );
        assert_eq!(in_flight.get(), 2, "a refusal takes no place");
        drop(a);
        assert_eq!(in_flight.get(), 1);
        assert!(admission.try_admit(None).is_ok());
    }

    #[test]
    fn one_tenant_holds_at_most_its_share() {
        let admission = Admission::new(8, None, Gauge::default());
        let (flood, other): (Arc<str>, Arc<str>) = ("flood".into(), "other".into());
        let held: Vec<Permit> = (0..6)
            .map(|_| admission.try_admit(Some(&flood)).unwrap())
            .collect();
        assert_eq!(
            admission.try_admit(Some(&flood)).unwrap_err(),
            ApiError::TooManyRequests(6),
            "three quarters of 8"
        );
        let o1 = admission.try_admit(Some(&other)).unwrap();
        let _o2 = admission.try_admit(Some(&other)).unwrap();
        assert!(admission.try_admit(Some(&other)).is_err(), "all 8 taken");
        drop(o1);
        assert!(
            admission.try_admit(Some(&flood)).is_err(),
            "still its share"
        );
        drop(held);
        assert!(admission.tenants.lock().unwrap().get(&flood).is_none());
        assert!(admission.try_admit(Some(&flood)).is_ok());
    }
}
