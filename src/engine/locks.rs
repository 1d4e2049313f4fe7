//! Striped locks: one mutex per hash bucket of ids.
//!
//! Mastery updates read a state, compute, and write it back; two calls for
//! the same learner must not interleave. A lock per learner would grow
//! without bound, one global lock would serialize everyone: a fixed array of
//! stripes bounds memory and keeps unrelated learners parallel.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use parking_lot::{Mutex, MutexGuard};

/// A fixed set of mutexes selected by hashing an id.
pub struct StripedLocks {
    stripes: Vec<Mutex<()>>,
}

impl StripedLocks {
    /// Creates `n` stripes.
    pub fn new(n: usize) -> Self {
        Self {
            stripes: (0..n.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// How many stripes there are.
    pub fn stripes(&self) -> usize {
        self.stripes.len()
    }

    /// The stripe `id` locks: callers that work through many ids (a
    /// recomputation) group them by stripe so that their groups do not
    /// wait for each other.
    pub fn stripe_of(&self, id: &str) -> usize {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        (hasher.finish() % self.stripes.len() as u64) as usize
    }

    /// Locks the stripes of every id, in stripe order so that two callers
    /// with overlapping sets cannot deadlock.
    pub fn lock_all<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<MutexGuard<'_, ()>> {
        let mut indices: Vec<usize> = ids.into_iter().map(|id| self.stripe_of(id)).collect();
        indices.sort_unstable();
        indices.dedup();
        indices
            .into_iter()
            .map(|i| self.stripes[i].lock())
            .collect()
    }
}
