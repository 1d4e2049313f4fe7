//! A bounded in-memory set of facts already established, to spare the
//! store a lookup on hot paths ("this learner exists", "this module was
//! already recommended to this learner").
//!
//! Only facts that never become false belong here (learners are deleted
//! only by a GDPR erasure, which clears the sets; a first recommendation
//! stays first). When the set is full it is simply cleared: a miss costs
//! one store lookup, never a wrong answer.

use std::collections::HashSet;
use std::sync::Mutex;

/// A set of keys with a size cap.
pub struct SeenSet {
    keys: Mutex<HashSet<String>>,
    cap: usize,
}

impl SeenSet {
    /// An empty set holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Self {
            keys: Mutex::new(HashSet::new()),
            cap,
        }
    }

    /// Whether `key` was recorded.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.lock().expect("seen lock").contains(key)
    }

    /// Forgets everything (an erasure made some facts false).
    pub fn clear(&self) {
        self.keys.lock().expect("seen lock").clear();
    }

    /// Records `key`.
    pub fn insert(&self, key: &str) {
        let mut keys = self.keys.lock().expect("seen lock");
        if keys.len() >= self.cap {
            keys.clear();
        }
        keys.insert(key.to_string());
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
}
