//! The waiting queue: one lane per tenant (a single lane unless the policy is `fair`), each
//! ordered by [`QueueKey`], and each lane's count of running requests.
//!
//! Admission takes the first request of the lane with the fewest running requests (ties: the
//! earlier key), so with one lane it is the queue's head. Lanes disappear when they hold nothing,
//! so the table grows with the tenants that have work, not with every name ever seen.

use std::collections::{BTreeSet, HashMap, btree_set};
use std::iter::Peekable;
use std::sync::Arc;

use super::policy::QueueKey;

#[derive(Debug, Default)]
struct Lane {
    waiting: BTreeSet<QueueKey>,
    running: usize,
}

/// Waiting requests by lane, and running counts.
#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    lanes: HashMap<Arc<str>, Lane>,
    len: usize,
}

impl WaitQueue {
    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `key` in `lane`.
    pub fn push(&mut self, lane: &Arc<str>, key: QueueKey) {
        if self.lane_mut(lane).waiting.insert(key) {
            self.len += 1;
        }
    }

    /// Takes `key` out of `lane`'s queue; false if it was not there.
    pub fn remove(&mut self, lane: &str, key: &QueueKey) -> bool {
        let removed = self
            .lanes
            .get_mut(lane)
            .is_some_and(|l| l.waiting.remove(key));
        if removed {
            self.len -= 1;
            self.drop_if_empty(lane);
        }
        removed
    }

    /// Running requests of `lane`.
    pub fn running(&self, lane: &str) -> usize {
        self.lanes.get(lane).map_or(0, |l| l.running)
    }

    /// A request of `lane` started running.
    pub fn started(&mut self, lane: &Arc<str>) {
        self.lane_mut(lane).running += 1;
    }

    /// A request of `lane` stopped running (preempted or finished).
    pub fn stopped(&mut self, lane: &str) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.running = l.running.saturating_sub(1);
        }
        self.drop_if_empty(lane);
    }

    /// The next request to admit and its lane.
    pub fn next(&self) -> Option<(&Arc<str>, QueueKey)> {
        self.lanes
            .iter()
            .filter_map(|(name, l)| l.waiting.first().map(|k| (l.running, *k, name)))
            .min_by_key(|&(running, key, _)| (running, key))
            .map(|(_, key, name)| (name, key))
    }

    /// Every waiting request in the order admission would take them if each admitted one
    /// ran, with counts the caller can also move ([`AdmissionOrder::release`]).
    pub fn admission_order(&self) -> AdmissionOrder<'_> {
        AdmissionOrder {
            lanes: self
                .lanes
                .iter()
                .map(|(name, l)| (&**name, l.running, l.waiting.iter().peekable()))
                .collect(),
        }
    }

    fn lane_mut(&mut self, lane: &Arc<str>) -> &mut Lane {
        if !self.lanes.contains_key(&**lane) {
            self.lanes.insert(Arc::clone(lane), Lane::default());
        }
        self.lanes.get_mut(&**lane).expect("inserted above")
    }

    fn drop_if_empty(&mut self, lane: &str) {
        if self
            .lanes
            .get(lane)
            .is_some_and(|l| l.running == 0 && l.waiting.is_empty())
        {
            self.lanes.remove(lane);
        }
    }
}

/// A simulation of admission order over a [`WaitQueue`] (see
/// [`WaitQueue::admission_order`]).
pub(super) struct AdmissionOrder<'a> {
    lanes: Vec<(&'a str, usize, Peekable<btree_set::Iter<'a, QueueKey>>)>,
}

impl<'a> AdmissionOrder<'a> {
    /// Running count of `lane` in the simulation.
    pub fn running(&self, lane: &str) -> usize {
        self.lanes
            .iter()
            .find(|(name, ..)| *name == lane)
            .map_or(0, |&(_, running, _)| running)
    }

    /// The lane with the most running requests among those `eligible` says may give one up.
    pub fn fullest(&self, eligible: impl Fn(&str) -> bool) -> Option<(&'a str, usize)> {
        self.lanes
            .iter()
            .filter(|(name, ..)| eligible(name))
            .max_by_key(|&&(name, running, _)| (running, std::cmp::Reverse(name)))
            .map(|&(name, running, _)| (name, running))
    }

    /// One request of `lane` stops running in the simulation.
    pub fn release(&mut self, lane: &str) {
        if let Some(l) = self.lanes.iter_mut().find(|(name, ..)| *name == lane) {
            l.1 = l.1.saturating_sub(1);
        }
    }
}

impl<'a> Iterator for AdmissionOrder<'a> {
    /// The lane and key admitted next; that lane's running count grows by one.
    type Item = (&'a str, QueueKey);

    fn next(&mut self) -> Option<Self::Item> {
        let best = self
            .lanes
            .iter_mut()
            .filter_map(|(name, running, keys)| keys.peek().map(|k| (*running, **k, *name)))
            .min_by_key(|&(running, key, _)| (running, key))?;
        let (_, key, name) = best;
        let lane = self.lanes.iter_mut().find(|(n, ..)| *n == name)?;
        lane.1 += 1;
        lane.2.next();
        Some((name, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::RequestId;

    fn key(priority: i32, arrival: u64) -> QueueKey {
        QueueKey {
            priority,
            arrival,
            id: RequestId(arrival),
        }
    }

    #[test]
    fn next_is_the_head_of_the_lane_with_the_fewest_running() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut q = WaitQueue::default();
        for i in 0..3 {
            q.push(&a, key(0, i));
        }
        q.push(&b, key(0, 10));
        assert_eq!(q.next().map(|(l, k)| (&**l, k.arrival)), Some(("a", 0)));
        q.started(&a);
        assert_eq!(q.next().map(|(l, k)| (&**l, k.arrival)), Some(("b", 10)));
        let order: Vec<u64> = q.admission_order().map(|(_, k)| k.arrival).collect();
        assert_eq!(order, vec![10, 0, 1, 2]);
        assert!(q.remove("b", &key(0, 10)));
        assert!(!q.remove("b", &key(0, 10)));
        assert_eq!(q.len(), 3);
        q.stopped("a");
        for i in 0..3 {
            assert!(q.remove("a", &key(0, i)));
        }
        assert!(
            q.is_empty() && q.lanes.is_empty(),
            "empty lanes are dropped"
        );
    }

    #[test]
    fn priority_orders_within_a_lane_and_arrival_breaks_ties() {
        let a: Arc<str> = "".into();
        let mut q = WaitQueue::default();
        q.push(&a, key(5, 0));
        q.push(&a, key(-1, 1));
        q.push(&a, key(5, 2));
        q.push(&a, key(0, 3));
        let order: Vec<u64> = q.admission_order().map(|(_, k)| k.arrival).collect();
        assert_eq!(order, vec![1, 3, 0, 2]);
    }
}
