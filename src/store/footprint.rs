//! Where the bytes of a data folder go: per tree, the entries and the
//! bytes of their keys and values, beside what the folder takes on disk.
//!
//! Why: bytes per stored attempt is a cost a provider pays for years; the
//! gap between what the trees hold and what sled writes is sled's own
//! overhead (page headers, the log's garbage awaiting compaction), and
//! the split between trees says which encoding to shrink first. Read from
//! a stopped server's folder (`cargo bench --bench scale` prints it).

use std::path::Path;

use crate::error::Result;

/// What one tree holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFootprint {
    /// Tree name.
    pub name: String,
    /// Entries.
    pub entries: u64,
    /// Bytes of all keys.
    pub key_bytes: u64,
    /// Bytes of all values.
    pub value_bytes: u64,
}

/// The footprint of every tree of the store in `dir` (largest first), and
/// the bytes of the sled folder on disk.
pub fn footprint(dir: &Path) -> Result<(Vec<TreeFootprint>, u64)> {
    let db = super::damage::open_sled(
        dir,
        super::sled_config(dir, &super::budget::MemoryBudget::from_mb(128))?,
    )?;
    let mut trees = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let mut fp = TreeFootprint {
            name: String::from_utf8_lossy(&name).into_owned(),
            entries: 0,
            key_bytes: 0,
            value_bytes: 0,
        };
        for entry in tree.iter() {
            let (key, value) = entry?;
            fp.entries += 1;
            fp.key_bytes += key.len() as u64;
            fp.value_bytes += value.len() as u64;
        }
        if fp.entries > 0 {
            trees.push(fp);
        }
    }
    trees.sort_by_key(|t| std::cmp::Reverse(t.key_bytes + t.value_bytes));
    drop(db);
    Ok((trees, folder_bytes(&dir.join("sled"))))
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => folder_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_trees_hold() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = super::super::Store::open(dir.path()).unwrap();
            store
                .put_learner(&crate::domain::learner::Learner {
                    id: "alice".into(),
                    company_id: "acme".into(),
                    language: "fr".into(),
                    time_zone: "Europe/Paris".into(),
                    display_name: String::new(),
                })
                .unwrap();
            store.flush().unwrap();
        }
        let (trees, bytes) = footprint(dir.path()).unwrap();
        let learners = trees.iter().find(|t| t.name == "learners").unwrap();
        assert_eq!(learners.entries, 1);
        assert_eq!(learners.key_bytes, 5);
        assert!(learners.value_bytes > 5);
        assert!(bytes > 0);
    }
}
