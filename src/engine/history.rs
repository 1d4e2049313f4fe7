//! The observation histories of (learner, skill) pairs that received a late
//! attempt (or a log replay at start), kept in memory.
//!
//! An attempt older than a pair's latest one forces a replay of the pair's
//! whole history ([`crate::domain::mastery::rebuild_merged`]). Read from
//! the store, that is a prefix scan and a decode per observation, each time: with
//! offline devices syncing, or concurrent clients whose batches interleave,
//! late attempts are common and histories long, and ingestion slowed by an
//! order of magnitude. A pair that had one late attempt is likely to get
//! more, so its history stays here once read, and the replay is a merge in
//! memory.
//!
//! Coherence rests on the learner locks: an entry is read, filled and
//! extended only by a caller holding its learner's lock, and every other
//! writer of a learner's observations (retraction, erasure) holds that lock
//! while it writes and then forgets the learner's entries. Ingestion extends
//! an entry only after its batch is committed. When the cap is reached the
//! cache starts over: a miss costs one store read, never a wrong answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::domain::bkt::Observation;
use crate::domain::mastery::Position;

/// A pair's observations, sorted by position, without duplicates.
pub type History = Arc<Vec<(Position, Observation)>>;

/// Histories by (learner, skill).
pub struct Histories {
    /// Observations kept at most, over all pairs (from the memory budget,
    /// `store/budget.rs`).
    capacity: crate::store::budget::Capacity,
    inner: Mutex<Inner>,
    /// Whether an entry was ever filled: until then, in-order ingestion
    /// skips the lock.
    any: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Learner → skill → history: lookups borrow, no key is built.
    learners: HashMap<String, HashMap<String, History>>,
    observations: usize,
}

impl Inner {
    fn clear(&mut self) {
        self.learners.clear();
        self.observations = 0;
    }
}

impl Default for Histories {
    fn default() -> Self {
        Self::new(crate::store::budget::MemoryBudget::default().history_observations())
    }
}

impl Histories {
    /// An empty cache of at most `capacity` observations.
    pub fn new(capacity: impl Into<crate::store::budget::Capacity>) -> Self {
        Self {
            capacity: capacity.into(),
            inner: Mutex::default(),
            any: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The cached history of a pair. Caller holds the learner's lock.
    pub fn get(&self, learner: &str, skill: &str) -> Option<History> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.lock().learners.get(learner)?.get(skill).cloned()
    }

    /// Keeps a pair's history as read from the store (sorted, without
    /// duplicates). Caller holds the learner's lock.
    pub fn fill(&self, learner: &str, skill: &str, history: History) {
        if history.len() > self.capacity.get() / 4 {
            return; // one pair must not flush everyone else's
        }
        let mut inner = self.lock();
        if inner.observations + history.len() > self.capacity.get() {
            inner.clear();
        }
        inner.observations += history.len();
        let old = inner
            .learners
            .entry(learner.to_string())
            .or_default()
            .insert(skill.to_string(), history);
        inner.observations -= old.map_or(0, |h| h.len());
        self.any.store(true, Ordering::Release);
    }

    /// Adds committed observations (sorted) to a pair's history, if it is
    /// cached. Caller holds the learner's lock.
    pub fn extend(&self, learner: &str, skill: &str, new: &[(Position, Observation)]) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        let Some(entry) = inner
            .learners
            .get_mut(learner)
            .and_then(|s| s.get_mut(skill))
        else {
            return;
        };
        let history = Arc::make_mut(entry);
        let before = history.len();
        for (position, obs) in new {
            if let Err(at) = history.binary_search_by(|(p, _)| p.cmp(position)) {
                history.insert(at, (position.clone(), *obs));
            }
        }
        let added = history.len() - before;
        inner.observations += added;
        if inner.observations > self.capacity.get() {
            inner.clear(); // start over, as a fill would
        }
    }

    /// Forgets every entry of these learners (their observations changed
    /// other than by ingestion). Caller holds their locks.
    pub fn forget<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        for learner in learners {
            if let Some(skills) = inner.learners.remove(learner) {
                inner.observations -= skills.values().map(|h| h.len()).sum::<usize>();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> (Position, Observation) {
        (
            Position {
                occurred_at: t,
                attempt_id: format!("a{t}"),
            },
            Observation {
                correct: true,
                score: None,
            },
        )
    }

    #[test]
    fn extends_only_cached_pairs_in_order_and_forgets_learners() {
        let cache = Histories::default();
        assert!(cache.get("l", "s").is_none());
        cache.extend("l", "s", &[at(1)]);
        assert!(cache.get("l", "s").is_none(), "not cached: nothing kept");
        cache.fill("l", "s", Arc::new(vec![at(1), at(5)]));
        cache.fill("m", "s", Arc::new(vec![at(2)]));
        cache.extend("l", "s", &[at(3), at(5), at(9)]);
        let times: Vec<i64> = cache
            .get("l", "s")
            .unwrap()
            .iter()
            .map(|(p, _)| p.occurred_at)
            .collect();
        assert_eq!(times, [1, 3, 5, 9], "sorted, the resent 5 once");
        assert_eq!(cache.lock().observations, 5);
        cache.forget(["l"]);
        assert!(cache.get("l", "s").is_none());
        assert!(cache.get("m", "s").is_some());
        assert_eq!(cache.lock().observations, 1);
    }
}
