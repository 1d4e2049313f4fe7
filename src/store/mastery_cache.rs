//! Each learner's P(mastered) per skill, kept in memory once read.
//!
//! Every `RecommendNext` needs the whole mastery vector of one learner; read
//! from sled it is one `learner_mastery` record read and decoded.
//! The cache lives in the store because the store is the only code that
//! writes the `learner_mastery` tree: every such write evicts the learners it
//! touched (see the callers of [`MasteryCache::evict`]), so a cached vector
//! is never older than what sled holds once the write returned.
//!
//! A fill races with writes: a reader may scan sled just before a write and
//! insert what it read just after the write evicted. A generation counter,
//! bumped by every eviction, makes such a fill a no-op: a reader inserts
//! only if no eviction happened since it started reading.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// P(mastered) per skill id of one learner.
pub type MasteryVector = Arc<BTreeMap<String, f64>>;

/// The cache: learner id → mastery vector, and the eviction generation.
#[derive(Debug)]
pub struct MasteryCache {
    vectors: Mutex<Vectors>,
    generation: AtomicU64,
    /// Skill entries kept at most, over all vectors (from the memory
    /// budget, `budget.rs`): counted in entries, not learners, because a
    /// vector's size is its learner's number of skills.
    capacity: super::budget::Capacity,
}

#[derive(Debug, Default)]
struct Vectors {
    by_learner: HashMap<String, MasteryVector>,
    /// Skill entries held in all.
    entries: usize,
}

impl Default for MasteryCache {
    fn default() -> Self {
        Self::new(super::budget::MemoryBudget::default().mastery_vector_entries())
    }
}

impl MasteryCache {
    /// An empty cache of at most `capacity` skill entries; past it the
    /// cache starts over.
    pub fn new(capacity: impl Into<super::budget::Capacity>) -> Self {
        Self {
            vectors: Mutex::default(),
            generation: AtomicU64::new(0),
            capacity: capacity.into(),
        }
    }

    /// The cached vector of `learner`, if any.
    pub fn get(&self, learner: &str) -> Option<MasteryVector> {
        self.vectors.lock().by_learner.get(learner).cloned()
    }

    /// The generation to pass to [`MasteryCache::fill`]: read it before
    /// reading sled.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches what was read from sled since `generation`, unless a write
    /// evicted anything meanwhile.
    pub fn fill(&self, learner: &str, vector: MasteryVector, generation: u64) {
        let mut vectors = self.vectors.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if vectors.entries + vector.len() > self.capacity.get() {
            *vectors = Vectors::default();
        }
        vectors.entries += vector.len();
        if let Some(old) = vectors.by_learner.insert(learner.to_string(), vector) {
            vectors.entries -= old.len();
        }
    }

    /// Forgets `learners`: call it after their mastery rows were written.
    pub fn evict<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        let mut vectors = self.vectors.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        for learner in learners {
            if let Some(old) = vectors.by_learner.remove(learner) {
                vectors.entries -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(p: f64) -> MasteryVector {
        Arc::new(BTreeMap::from([("s".to_string(), p)]))
    }

    #[test]
    fn a_fill_started_before_an_eviction_is_dropped() {
        let cache = MasteryCache::default();
        let before = cache.generation();
        cache.evict(["alice"]);
        cache.fill("alice", vector(0.1), before);
        assert!(cache.get("alice").is_none(), "stale read cached");
        let now = cache.generation();
        cache.fill("alice", vector(0.2), now);
        assert_eq!(cache.get("alice").unwrap()["s"], 0.2);
        cache.evict(["bob", "alice"]);
        assert!(cache.get("alice").is_none());
    }

    /// The bound counts skill entries: a fill past it starts over.
    #[test]
    fn a_full_cache_starts_over() {
        let cache = MasteryCache::new(2);
        let two = Arc::new(BTreeMap::from([
            ("s".to_string(), 0.1),
            ("t".to_string(), 0.2),
        ]));
        cache.fill("alice", two.clone(), cache.generation());
        cache.fill("alice", two.clone(), cache.generation());
        assert!(cache.get("alice").is_some(), "a refill replaces, not adds");
        cache.fill("bob", vector(0.3), cache.generation());
        assert!(cache.get("alice").is_none() && cache.get("bob").is_some());
    }
}
