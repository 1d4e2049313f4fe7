//! The last mastery state ingestion wrote for each (learner, skill), kept in
//! memory for the next attempt of the pair.
//!
//! Every attempt folds into the pair's previous state; read from sled, that
//! state cost a tree lookup per attempt (about 4% of a single-attempt call,
//! measured with perf). Only ingestion fills the cache, with the state it
//! has just written, and it does so under the learner's lock; every other
//! writer of the `learner_mastery` tree (model recomputation, retraction, erasure)
//! evicts the learner after its write, also under the learner's lock. So a
//! cached state is always the newest one, and a reader that finds none asks
//! the write-behind rows, then sled.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::domain::mastery::MasteryState;

/// learner id → skill id → the last state written.
#[derive(Debug)]
pub struct StateCache {
    inner: Mutex<Inner>,
    /// States kept at most (from the memory budget, `budget.rs`); past it
    /// the cache starts over.
    capacity: super::budget::Capacity,
}

#[derive(Debug, Default)]
struct Inner {
    learners: HashMap<String, HashMap<String, MasteryState>>,
    states: usize,
}

impl Default for StateCache {
    fn default() -> Self {
        Self::new(super::budget::MemoryBudget::default().cached_states())
    }
}

impl StateCache {
    /// An empty cache of at most `capacity` states.
    pub fn new(capacity: impl Into<super::budget::Capacity>) -> Self {
        Self {
            inner: Mutex::default(),
            capacity: capacity.into(),
        }
    }

    /// The state last written for (`learner`, `skill`), if kept.
    pub fn get(&self, learner: &str, skill: &str) -> Option<MasteryState> {
        let inner = self.inner.lock();
        inner.learners.get(learner)?.get(skill).cloned()
    }

    /// Keeps states just written. Call it under the learners' locks, after
    /// the write succeeded.
    pub fn put(&self, rows: &[(String, String, MasteryState)]) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        for (learner, skill, state) in rows {
            let kept = inner
                .learners
                .get_mut(learner.as_str())
                .and_then(|skills| skills.get_mut(skill.as_str()));
            if let Some(kept) = kept {
                *kept = state.clone();
                continue;
            }
            if inner.states >= self.capacity.get() {
                *inner = Inner::default();
            }
            inner
                .learners
                .entry(learner.clone())
                .or_default()
                .insert(skill.clone(), state.clone());
            inner.states += 1;
        }
    }

    /// Forgets `learners`: call it after another writer changed their rows.
    pub fn evict<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.lock();
        for learner in learners {
            if let Some(skills) = inner.learners.remove(learner) {
                inner.states -= skills.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mastery::Position;

    fn state(p: f64) -> MasteryState {
        MasteryState {
            belief: crate::domain::bkt::Belief::from_log_odds(p),
            attempt_count: 1,
            last: Position {
                occurred_at: 1,
                attempt_id: "a".into(),
            },
            updated_at: 1,
        }
    }

    fn row(learner: &str, skill: &str, p: f64) -> (String, String, MasteryState) {
        (learner.into(), skill.into(), state(p))
    }

    /// Under the budget's pressure the cache holds a cut of its share:
    /// past it, it starts over (what gives the memory back).
    #[test]
    fn a_cut_capacity_makes_the_cache_start_over_sooner() {
        let pressure = std::sync::Arc::new(crate::store::budget::Pressure::default());
        let budget = crate::store::budget::MemoryBudget::default();
        let cache = StateCache::new(crate::store::budget::Capacity::new(100, pressure.clone()));
        let fill = |prefix: &str, n: usize| {
            for i in 0..n {
                cache.put(&[row(&format!("{prefix}{i}"), "s", 0.1)]);
            }
        };
        fill("l", 60);
        assert!(cache.get("l0", "s").is_some(), "60 of 100 fit");
        // Resident memory over the budget: 80, then 60, then 40 of 100.
        for _ in 0..3 {
            pressure.adjust(u64::MAX, &budget);
        }
        // 90 states would fit the whole share; 40 do not.
        fill("m", 30);
        assert!(cache.get("l0", "s").is_none(), "started over past 40");
        assert!(cache.get("m29", "s").is_some());
    }

    #[test]
    fn the_last_put_wins_and_an_eviction_forgets_the_learner() {
        let cache = StateCache::default();
        assert!(cache.get("alice", "s").is_none());
        cache.put(&[row("alice", "s", 0.2), row("alice", "t", 0.3)]);
        cache.put(&[row("alice", "s", 0.4), row("bob", "s", 0.5)]);
        assert_eq!(cache.get("alice", "s").unwrap().belief.log_odds(), 0.4);
        assert_eq!(cache.get("alice", "t").unwrap().belief.log_odds(), 0.3);
        cache.evict(["alice"]);
        assert!(cache.get("alice", "s").is_none());
        assert!(cache.get("alice", "t").is_none());
        assert_eq!(cache.get("bob", "s").unwrap().belief.log_odds(), 0.5);
        assert_eq!(cache.inner.lock().states, 1);
    }

    #[test]
    fn a_full_cache_starts_over() {
        const CAPACITY: usize = 1000;
        let cache = StateCache::new(CAPACITY);
        let rows: Vec<_> = (0..CAPACITY)
            .map(|i| row(&format!("l{}", i % 1000), &format!("s{i}"), 0.1))
            .collect();
        cache.put(&rows);
        assert_eq!(cache.inner.lock().states, CAPACITY);
        // A state replaced is no new entry: nothing is dropped.
        cache.put(&[row("l0", "s0", 0.3)]);
        assert_eq!(cache.get("l0", "s0").unwrap().belief.log_odds(), 0.3);
        assert_eq!(cache.inner.lock().states, CAPACITY);
        cache.put(&[row("late", "s", 0.9)]);
        assert_eq!(cache.inner.lock().states, 1);
        assert!(cache.get("l0", "s0").is_none());
        assert_eq!(cache.get("late", "s").unwrap().belief.log_odds(), 0.9);
    }
}
