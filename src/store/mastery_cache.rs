//! Each learner's P(mastered) per skill, kept in memory once read.
//!
//! Every `RecommendNext` needs the whole mastery vector of one learner; read
//! from sled it is a prefix scan and ~30 decodes, half of the call's cost.
//! The cache lives in the store because the store is the only code that
//! writes the `mastery` tree: every such write evicts the learners it
//! touched (see the callers of [`MasteryCache::evict`]), so a cached vector
//! is never older than what sled holds once the write returned.
//!
//! A fill races with writes: a reader may scan sled just before a write and
//! insert what it read just after the write evicted. A generation counter,
//! bumped by every eviction, makes such a fill a no-op: a reader inserts
//! only if no eviction happened since it started reading.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// P(mastered) per skill id of one learner.
pub type MasteryVector = Arc<BTreeMap<String, f64>>;

/// Learners kept at most; past it the cache starts over (a vector of 30
/// skills is ~1.5 kB, so this bounds the cache near 100 MB).
pub const CAPACITY: usize = 65_536;

/// The cache: learner id → mastery vector, and the eviction generation.
#[derive(Debug, Default)]
pub struct MasteryCache {
    vectors: Mutex<HashMap<String, MasteryVector>>,
    generation: AtomicU64,
}

impl MasteryCache {
    /// The cached vector of `learner`, if any.
    pub fn get(&self, learner: &str) -> Option<MasteryVector> {
        self.vectors
            .lock()
            .expect("mastery cache")
            .get(learner)
            .cloned()
    }

    /// The generation to pass to [`MasteryCache::fill`]: read it before
    /// reading sled.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches what was read from sled since `generation`, unless a write
    /// evicted anything meanwhile.
    pub fn fill(&self, learner: &str, vector: MasteryVector, generation: u64) {
        let mut vectors = self.vectors.lock().expect("mastery cache");
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if vectors.len() >= CAPACITY {
            vectors.clear();
        }
        vectors.insert(learner.to_string(), vector);
    }

    /// Forgets `learners`: call it after their mastery rows were written.
    pub fn evict<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        let mut vectors = self.vectors.lock().expect("mastery cache");
        self.generation.fetch_add(1, Ordering::SeqCst);
        for learner in learners {
            vectors.remove(learner);
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
}
