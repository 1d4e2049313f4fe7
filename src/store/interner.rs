//! Interned ids: learners, items and skills as small numbers in the compact
//! ingestion trees (`compact.rs`), with the `ids` tree mapping both ways.
//!
//! Why: an attempt names a learner, an item and skills, and spelling them
//! out in every stored row cost more than the attempt itself. The table is
//! small (one entry per learner, item and skill: number to id; the map
//! from id to number is built from it) and held in memory whole, loaded at
//! open. A number is written to sled (plain inserts) when first
//! assigned, before any row that uses it can reach sled, and never reused:
//! an erased learner's entries go, the high-water mark stays.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};

/// What an interned id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A learner id.
    Learner,
    /// A quiz item id.
    Item,
    /// A skill id.
    Skill,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Learner => b'l',
            Kind::Item => b'i',
            Kind::Skill => b's',
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Learner => 0,
            Kind::Item => 1,
            Kind::Skill => 2,
        }
    }

    const ALL: [Kind; 3] = [Kind::Learner, Kind::Item, Kind::Skill];
}

/// Key of a number's id: tag, `01`, the number (`u32` big-endian).
pub fn reverse_key(kind: Kind, n: u32) -> Vec<u8> {
    let mut key = vec![kind.tag(), 1];
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// Key of the next number to assign: tag, `02`.
fn next_key(kind: Kind) -> [u8; 2] {
    [kind.tag(), 2]
}

#[derive(Default)]
struct Table {
    numbers: HashMap<Arc<str>, u32>,
    names: Vec<Option<Arc<str>>>,
    next: u32,
}

/// The interned ids of the store, in memory and in the `ids` tree.
pub struct Interner {
    tree: sled::Tree,
    tables: RwLock<[Table; 3]>,
    /// Serializes assignments (and their sled writes).
    assign: Mutex<()>,
}

impl Interner {
    /// Loads every interned id of `tree`.
    pub fn open(tree: sled::Tree) -> Result<Self> {
        let mut tables: [Table; 3] = Default::default();
        // Each kind's counter is written before any number it hands out:
        // a number at or past it is damage, refused before it can size
        // the table (a flipped high bit would allocate gigabytes).
        let mut counters = [None; 3];
        for kind in Kind::ALL {
            if let Some(value) = tree.get(next_key(kind))? {
                let next = <[u8; 4]>::try_from(value.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::Corrupt {
                        tree: "ids",
                        key: super::keys::display(&next_key(kind)),
                        reason: "not a number".into(),
                    })?;
                counters[kind.index()] = Some(next);
            }
        }
        for entry in tree.iter() {
            let (key, value) = entry?;
            let bad = |reason: &str| Error::Corrupt {
                tree: "ids",
                key: super::keys::display(&key),
                reason: reason.into(),
            };
            let Some(kind) = Kind::ALL.iter().find(|k| key.first() == Some(&k.tag())) else {
                return Err(bad("unknown kind"));
            };
            let table = &mut tables[kind.index()];
            match key.get(1) {
                Some(1) => {
                    let n = key
                        .get(2..)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_be_bytes)
                        .ok_or_else(|| bad("not a number"))?;
                    let name: Arc<str> = std::str::from_utf8(&value)
                        .map_err(|_| bad("id is not UTF-8"))?
                        .into();
                    if counters[kind.index()].is_none_or(|next| n >= next) {
                        return Err(bad("number at or past the kind's counter"));
                    }
                    let i = n as usize;
                    if table.names.len() <= i {
                        table.names.resize(i + 1, None);
                    }
                    table.names[i] = Some(name.clone());
                    table.numbers.insert(name, n);
                    table.next = table.next.max(n.saturating_add(1));
                }
                Some(2) => {
                    let next = <[u8; 4]>::try_from(value.as_ref())
                        .map(u32::from_be_bytes)
                        .map_err(|_| bad("not a number"))?;
                    table.next = table.next.max(next);
                }
                _ => return Err(bad("unknown entry")),
            }
        }
        Ok(Self {
            tree,
            tables: RwLock::new(tables),
            assign: Mutex::new(()),
        })
    }

    /// The number of `id`, if interned.
    pub fn get(&self, kind: Kind, id: &str) -> Option<u32> {
        self.tables.read()[kind.index()].numbers.get(id).copied()
    }

    /// The id numbered `n`, if any.
    pub fn name(&self, kind: Kind, n: u32) -> Option<Arc<str>> {
        self.tables.read()[kind.index()]
            .names
            .get(n as usize)
            .cloned()
            .flatten()
    }

    /// The number of `id`, assigned (and written to sled) if new.
    pub fn intern(&self, kind: Kind, id: &str) -> Result<u32> {
        if let Some(n) = self.get(kind, id) {
            return Ok(n);
        }
        let _assign = self.assign.lock();
        if let Some(n) = self.get(kind, id) {
            return Ok(n);
        }
        let n = self.tables.read()[kind.index()].next;
        let next = n
            .checked_add(1)
            .ok_or_else(|| Error::Storage(format!("no {kind:?} number left to assign")))?;
        self.tree.insert(next_key(kind), &next.to_be_bytes())?;
        self.tree.insert(reverse_key(kind, n), id.as_bytes())?;
        let mut tables = self.tables.write();
        let table = &mut tables[kind.index()];
        let name: Arc<str> = id.into();
        if table.names.len() <= n as usize {
            table.names.resize(n as usize + 1, None);
        }
        table.names[n as usize] = Some(name.clone());
        table.numbers.insert(name, n);
        table.next = next;
        Ok(n)
    }

    /// The `ids` keys of `id` (to remove in an erasure's transaction);
    /// empty if it was never interned.
    pub fn keys_of(&self, kind: Kind, id: &str) -> Vec<Vec<u8>> {
        match self.get(kind, id) {
            Some(n) => vec![reverse_key(kind, n)],
            None => Vec::new(),
        }
    }

    /// Forgets `id` in memory, once its keys are removed from sled.
    pub fn forget(&self, kind: Kind, id: &str) {
        let mut tables = self.tables.write();
        let table = &mut tables[kind.index()];
        if let Some(n) = table.numbers.remove(id) {
            if let Some(slot) = table.names.get_mut(n as usize) {
                *slot = None;
            }
        }
    }

    /// The `ids` tree.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Interned ids of `kind`.
    pub fn len(&self, kind: Kind) -> usize {
        self.tables.read()[kind.index()].numbers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_survive_a_reopen_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let ids = Interner::open(db.open_tree("ids").unwrap()).unwrap();
        assert_eq!(ids.intern(Kind::Learner, "alice").unwrap(), 0);
        assert_eq!(ids.intern(Kind::Learner, "bob").unwrap(), 1);
        assert_eq!(ids.intern(Kind::Skill, "alice").unwrap(), 0, "kinds apart");
        assert_eq!(ids.intern(Kind::Learner, "alice").unwrap(), 0);
        // Erase bob: his entries go, his number is not handed out again.
        for key in ids.keys_of(Kind::Learner, "bob") {
            db.open_tree("ids").unwrap().remove(key).unwrap();
        }
        ids.forget(Kind::Learner, "bob");
        drop(ids);
        let ids = Interner::open(db.open_tree("ids").unwrap()).unwrap();
        assert_eq!(ids.get(Kind::Learner, "alice"), Some(0));
        assert_eq!(ids.get(Kind::Learner, "bob"), None);
        assert_eq!(ids.name(Kind::Learner, 1), None);
        assert_eq!(ids.intern(Kind::Learner, "bob").unwrap(), 2);
        assert_eq!(&*ids.name(Kind::Skill, 0).unwrap(), "alice");
    }

    #[test]
    fn a_damaged_number_is_named_not_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("ids").unwrap();
        let ids = Interner::open(tree.clone()).unwrap();
        ids.intern(Kind::Learner, "alice").unwrap();
        drop(ids);
        // A flipped high bit: number 0xF000_0000 past the counter (1).
        tree.insert(
            reverse_key(Kind::Learner, 0xF000_0000),
            "mallory".as_bytes(),
        )
        .unwrap();
        let Err(err) = Interner::open(tree.clone()) else {
            panic!("a number past the counter must be refused");
        };
        let text = err.to_string();
        assert!(text.contains("ids") && text.contains("counter"), "{text}");
    }
}
