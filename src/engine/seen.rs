//! A bounded in-memory set of facts already established, to spare the
//! store a lookup on hot paths ("this learner exists", "this module was
//! already recommended to this learner").
//!
//! Only facts that never become false belong here (learners are deleted
//! only by a GDPR erasure, which clears the sets; a first recommendation
//! stays first). When the set is full it is simply cleared: a miss costs
//! one store lookup, never a wrong answer.

use std::collections::HashSet;

use parking_lot::{Mutex, MutexGuard};

/// A set of keys with a size cap.
pub struct SeenSet {
    inner: Mutex<Inner>,
    cap: crate::store::budget::Capacity,
}

#[derive(Default)]
struct Inner {
    keys: HashSet<String>,
    /// Bumped by every [`SeenSet::clear`]: a fact read from the store
    /// before a clear may be the one the clear is about.
    clears: u64,
}

impl SeenSet {
    /// An empty set holding at most `cap` keys.
    pub fn new(cap: impl Into<crate::store::budget::Capacity>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            cap: cap.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Whether `key` was recorded.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().keys.contains(key)
    }

    /// Forgets everything (an erasure made some facts false).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.keys.clear();
        inner.clears += 1;
    }

    /// A mark to take *before* reading a fact from the store, for
    /// [`SeenSet::insert_since`].
    pub fn mark(&self) -> u64 {
        self.lock().clears
    }

    /// Records `key`. Only for facts no erasure can undo meanwhile (the
    /// caller holds the lock an erasure takes, or wrote the fact itself);
    /// a fact read from the store goes through [`SeenSet::insert_since`].
    pub fn insert(&self, key: &str) {
        self.insert_if(key, |_| true);
    }

    /// Records `key`, read from the store after `mark` was taken, unless
    /// the set was cleared since: then the read may predate the erasure
    /// that cleared it. So a key in the set is a fact no clear has undone,
    /// which a caller holding the lock an erasure takes can rely on.
    pub fn insert_since(&self, key: &str, mark: u64) {
        self.insert_if(key, |inner| inner.clears == mark);
    }

    fn insert_if(&self, key: &str, still_true: impl FnOnce(&Inner) -> bool) {
        let mut inner = self.lock();
        if !still_true(&inner) {
            return;
        }
        if inner.keys.len() >= self.cap.get() {
            inner.keys.clear();
        }
        inner.keys.insert(key.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_full_then_starts_over() {
        let set = SeenSet::new(2);
        set.insert("a");
        set.insert("b");
        assert!(set.contains("a") && set.contains("b"));
        set.insert("c");
        assert!(!set.contains("a"), "cleared when full");
        assert!(set.contains("c"));
    }

    #[test]
    fn a_fact_read_before_a_clear_is_not_kept() {
        let set = SeenSet::new(8);
        let mark = set.mark();
        set.clear(); // an erasure between the store read and the insert
        set.insert_since("a", mark);
        assert!(!set.contains("a"));
        let mark = set.mark();
        set.insert_since("a", mark);
        assert!(set.contains("a"));
    }
}
