//! The store format version and the migration of an older data folder, run
//! at open (`spoc serve`, and every command that opens the store) before
//! anything reads the ingestion trees.
//!
//! Format 1 kept one `attempts` row per attempt (ids spelt out), one
//! `observations` row per (attempt, skill) and one `mastery` row per
//! (learner, skill): 658 bytes on disk per attempt, mostly sled's cost per
//! key. Format 2 packs them (`attempt_trees.rs`); format 3 writes
//! smaller mastery records and reads format 2 as it is (only the version
//! is rewritten); format 4 likewise writes smaller attempt index pages
//! (16-bit fingerprints) and reads format 3's. The migration reads the
//! format-1 trees in chunks, writes the format-2 trees, flushes, and only
//! then records format 2 and drops the old trees: a migration stopped
//! halfway leaves format 1 in `meta` and is started again from the
//! beginning (the new trees are cleared first); one stopped after the
//! version was written finds the old trees and drops them.
//!
//! A format-1 row that cannot be decoded does not stop the migration: the
//! rest of the store is worth more than one damaged row. It is logged
//! (warn, naming the tree and key), counted, and kept verbatim in
//! [`SKIPPED`] (key: old tree name `00` old key), which `spoc verify`
//! reports as damage until an operator restores the rows from a backup and
//! removes the entries.

use std::path::Path;

use super::attempt_trees::{self, AttemptTrees};
use super::codec;
use super::keys::{self, FORMAT_VERSION, FORMAT_VERSION_KEY};
use crate::domain::mastery::{Attempt, MasteryState};
use crate::error::{Error, Result};

/// The format-1 trees a migration replaces.
pub const OLD_TREES: [&str; 3] = ["attempts", "observations", "mastery"];

/// Attempts migrated per chunk (one chunk in memory at a time).
const CHUNK: usize = 20_000;

/// Tree of the format-1 rows the migration could not decode.
pub const SKIPPED: &str = "migration_skipped";

/// Key of a skipped row in [`SKIPPED`]: old tree `00` old key.
pub fn skipped_key(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tree.len() + 1 + key.len());
    out.extend_from_slice(tree.as_bytes());
    out.push(keys::SEP);
    out.extend_from_slice(key);
    out
}

/// Keeps an undecodable format-1 row in [`SKIPPED`] and logs it.
fn skip(skipped: &sled::Tree, tree: &str, key: &[u8], value: &[u8], err: &Error) -> Result<()> {
    tracing::warn!(
        tree,
        key = %keys::display(key),
        error = %err,
        "store migration: skipped a format-1 row that cannot be decoded (kept in {SKIPPED}; \
         `spoc verify` reports it)"
    );
    skipped.insert(skipped_key(tree, key), value)?;
    Ok(())
}

/// Checks the format version of `db`, writes it on a new store, migrates
/// an older one, and opens the ingestion trees and the attempt index of
/// the data folder `dir` (at checkpoint `generation`).
pub fn open_current(db: &sled::Db, dir: &Path, generation: u64) -> Result<AttemptTrees> {
    let meta = db.open_tree("meta")?;
    let version = match meta.get(FORMAT_VERSION_KEY)? {
        None => {
            meta.insert(FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
            FORMAT_VERSION
        }
        Some(bytes) => <[u8; 4]>::try_from(bytes.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| Error::Corrupt {
                tree: "meta",
                key: "format_version".into(),
                reason: format!("store format {:?} is not 4 bytes", bytes.as_ref()),
            })?,
    };
    match version {
        1 => migrate_from_1(db, &meta, dir, generation),
        2..=4 => {
            // Formats 3 and 4 only wrote mastery records (3) and attempt
            // index pages (4) in smaller encodings and read the older ones
            // as they are; format 5 keeps the attempt index in a file of
            // its own, built here from the blocks (`attempt_index.rs`),
            // and synced before the old tree goes.
            let trees = AttemptTrees::open(db, dir, generation)?;
            trees.index.sync(generation)?;
            meta.insert(FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
            tracing::info!(
                attempts = trees.index.len(),
                "store format {version} is now format {FORMAT_VERSION} (the attempt index in a \
                 file of its own)"
            );
            drop_old_trees(db)?;
            Ok(trees)
        }
        FORMAT_VERSION => {
            drop_old_trees(db)?;
            AttemptTrees::open(db, dir, generation)
        }
        other => Err(Error::Corrupt {
            tree: "meta",
            key: "format_version".into(),
            reason: format!(
                "store format {other} is not the supported version {FORMAT_VERSION} \
                 (written by a newer release?)"
            ),
        }),
    }
}

/// Drops the format-1 trees left by a migration stopped after it recorded
/// format 2, and the attempt index tree of formats 2 to 4.
fn drop_old_trees(db: &sled::Db) -> Result<()> {
    let names = db.tree_names();
    for old in OLD_TREES.iter().chain([&attempt_trees::INDEX]) {
        if names.iter().any(|n| n.as_ref() == old.as_bytes()) {
            db.drop_tree(old)?;
        }
    }
    Ok(())
}

/// Rewrites the format-1 ingestion trees of `db` in format 2.
fn migrate_from_1(
    db: &sled::Db,
    meta: &sled::Tree,
    dir: &Path,
    generation: u64,
) -> Result<AttemptTrees> {
    let started = std::time::Instant::now();
    for name in [
        attempt_trees::BLOCKS,
        attempt_trees::INDEX,
        attempt_trees::MASTERY,
        attempt_trees::IDS,
    ] {
        db.drop_tree(name)?;
    }
    let trees = AttemptTrees::open(db, dir, generation)?;
    // A migration started again finds the entries of the first try.
    trees.index.clear()?;
    let skipped = db.open_tree(SKIPPED)?;
    skipped.clear()?;
    let mut damaged = 0usize;
    let old_attempts = db.open_tree("attempts")?;
    let mut chunk: Vec<Attempt> = Vec::with_capacity(CHUNK);
    let mut migrated = 0usize;
    let mut flush = |chunk: &mut Vec<Attempt>| -> Result<()> {
        trees.intern(chunk)?;
        trees.append(&chunk.iter().collect::<Vec<_>>(), false)?;
        migrated += chunk.len();
        chunk.clear();
        Ok(())
    };
    for entry in old_attempts.iter() {
        let (key, value) = entry?;
        match codec::decode("attempts", &key, &value) {
            Ok(attempt) => chunk.push(attempt),
            Err(err) => {
                skip(&skipped, "attempts", &key, &value, &err)?;
                damaged += 1;
                continue;
            }
        }
        if chunk.len() == CHUNK {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    // Mastery rows are keyed learner 00 skill: a learner's rows are
    // consecutive, written as one record.
    let old_mastery = db.open_tree("mastery")?;
    let mut learner: Option<String> = None;
    let mut states: Vec<(String, MasteryState)> = Vec::new();
    let write = |learner: &str, states: &mut Vec<(String, MasteryState)>| -> Result<()> {
        trees.put_states(
            states
                .iter()
                .map(|(skill, state)| (learner, skill.as_str(), Some(state))),
        )?;
        states.clear();
        Ok(())
    };
    let mut learners = 0usize;
    for entry in old_mastery.iter() {
        let (key, value) = entry?;
        let text = String::from_utf8_lossy(&key).into_owned();
        let decoded = codec::decode::<MasteryState>("mastery", &key, &value).and_then(|state| {
            let (l, skill) = text.split_once('\0').ok_or_else(|| Error::Corrupt {
                tree: "mastery",
                key: keys::display(&key),
                reason: "key has no separator".into(),
            })?;
            Ok((l, skill, state))
        });
        let (l, skill, state) = match decoded {
            Ok(row) => row,
            Err(err) => {
                skip(&skipped, "mastery", &key, &value, &err)?;
                damaged += 1;
                continue;
            }
        };
        if learner.as_deref() != Some(l) {
            if let Some(previous) = learner.take() {
                write(&previous, &mut states)?;
            }
            learner = Some(l.to_string());
            learners += 1;
        }
        states.push((skill.to_string(), state));
    }
    if let Some(previous) = learner {
        write(&previous, &mut states)?;
    }
    db.flush()?;
    trees.index.sync(generation)?;
    meta.insert(FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
    drop_old_trees(db)?;
    db.flush()?;
    tracing::info!(
        attempts = migrated,
        learners,
        skipped = damaged,
        seconds = started.elapsed().as_secs_f64(),
        "store migrated from format 1 to format {FORMAT_VERSION} (compact attempts)"
    );
    Ok(trees)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bkt::Belief;
    use crate::domain::mastery::{Position, test_attempt};

    /// Writes a format-1 store into `dir` (as the format-1 release did):
    /// two good attempts and one damaged, one good mastery row and one
    /// damaged.
    fn format_1_folder(dir: &std::path::Path) {
        let db = super::super::damage::open_sled(
            dir,
            super::super::sled_config(dir, &super::super::budget::MemoryBudget::from_mb(64))
                .unwrap(),
        )
        .unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(FORMAT_VERSION_KEY, &1u32.to_be_bytes())
            .unwrap();
        let attempts = db.open_tree("attempts").unwrap();
        for a in [test_attempt("a1", 1, true), test_attempt("a3", 3, false)] {
            attempts
                .insert(a.attempt_id.as_bytes(), codec::encode(&a))
                .unwrap();
        }
        attempts.insert("a2", &[1u8, 0xff, 0xff][..]).unwrap();
        let mastery = db.open_tree("mastery").unwrap();
        let state = MasteryState {
            belief: Belief::from_log_odds(0.5),
            attempt_count: 2,
            last: Position {
                occurred_at: 3,
                attempt_id: "a3".into(),
            },
            updated_at: 4,
        };
        mastery
            .insert(keys::compose(&["l", "s"]), codec::encode(&state))
            .unwrap();
        mastery
            .insert(keys::compose(&["l", "t"]), &[7u8][..])
            .unwrap();
        db.flush().unwrap();
    }

    /// Undecodable format-1 rows are skipped and kept, the rest migrated,
    /// and `spoc verify` names the skipped rows as damage.
    #[test]
    fn undecodable_rows_are_skipped_kept_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        format_1_folder(dir.path());
        {
            let store = super::super::Store::open(dir.path()).unwrap();
            let ids: Vec<String> = store
                .all_attempts()
                .unwrap()
                .into_iter()
                .map(|a| a.attempt_id)
                .collect();
            assert_eq!(ids, ["a1", "a3"]);
            assert_eq!(store.mastery("l", "s").unwrap().unwrap().attempt_count, 2);
            assert!(store.mastery("l", "t").unwrap().is_none());
            store.flush().unwrap();
        }
        let report = super::super::verify::verify(dir.path()).unwrap();
        let places: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.what.contains("could not decode"))
            .map(|f| f.place.as_str())
            .collect();
        assert_eq!(
            places,
            [
                "tree migration_skipped, key attempts/a2",
                "tree migration_skipped, key mastery/l/t"
            ],
            "{:?}",
            report.findings
        );
    }

    /// A format-4 folder (the attempt index a tree) opens in format 5:
    /// the index file is built from the blocks, attempts are found by id
    /// alone, and the old tree is gone.
    #[test]
    fn a_format_4_folder_gets_its_attempt_index_built_from_the_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = test_attempt("b1", 2, false);
        other.learner_id = "m".into();
        let attempts = [test_attempt("a1", 1, true), other];
        let sled_dir = || {
            super::super::damage::open_sled(
                dir.path(),
                super::super::sled_config(
                    dir.path(),
                    &super::super::budget::MemoryBudget::from_mb(64),
                )
                .unwrap(),
            )
            .unwrap()
        };
        {
            let db = sled_dir();
            db.open_tree("meta")
                .unwrap()
                .insert(FORMAT_VERSION_KEY, &4u32.to_be_bytes())
                .unwrap();
            let trees = AttemptTrees::open(&db, dir.path(), 0).unwrap();
            trees.intern(&attempts).unwrap();
            trees
                .append(&attempts.iter().collect::<Vec<_>>(), false)
                .unwrap();
            db.open_tree(attempt_trees::INDEX)
                .unwrap()
                .insert([0u8; 8], vec![2u8])
                .unwrap();
            db.flush().unwrap();
        }
        std::fs::remove_file(dir.path().join(super::super::attempt_index::FILE)).unwrap();
        let store = super::super::Store::open(dir.path()).unwrap();
        for a in &attempts {
            assert_eq!(store.attempt(&a.attempt_id).unwrap().as_ref(), Some(a));
        }
        assert_eq!(store.attempt("c1").unwrap(), None);
        drop(store);
        {
            let db = sled_dir();
            let meta = db.open_tree("meta").unwrap();
            assert_eq!(
                meta.get(FORMAT_VERSION_KEY).unwrap().unwrap().as_ref(),
                FORMAT_VERSION.to_be_bytes()
            );
            assert!(
                !db.tree_names()
                    .iter()
                    .any(|n| n.as_ref() == attempt_trees::INDEX.as_bytes())
            );
        }
        // (Learners and mastery rows this test did not write are found
        // missing; the index is whole.)
        let report = super::super::verify::verify(dir.path()).unwrap();
        assert_eq!(report.findings.len(), 4, "{:?}", report.findings);
        assert!(
            report.findings.iter().all(|f| !f.what.contains("index")),
            "{:?}",
            report.findings
        );
    }

    /// A format-2 folder opens in the current format: its version-1 mastery records
    /// read as they are, a rewrite uses the new encoding.
    #[test]
    fn a_format_2_folder_reads_its_records_and_writes_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = MasteryState {
            belief: Belief::from_log_odds(0.25),
            attempt_count: 1,
            last: Position {
                occurred_at: 1,
                attempt_id: "a1".into(),
            },
            updated_at: 2,
        };
        {
            let db = super::super::damage::open_sled(
                dir.path(),
                super::super::sled_config(
                    dir.path(),
                    &super::super::budget::MemoryBudget::from_mb(64),
                )
                .unwrap(),
            )
            .unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(FORMAT_VERSION_KEY, &2u32.to_be_bytes())
                .unwrap();
            let trees = AttemptTrees::open(&db, dir.path(), 0).unwrap();
            trees.intern(&[test_attempt("a1", 1, true)]).unwrap();
            // Version 1 of the record, as format 2 wrote it.
            let mut v1 = vec![super::super::compact::COMPACT_VERSION, 1];
            super::super::compact::put_varint(&mut v1, 0);
            v1.extend_from_slice(&state.belief.log_odds().to_le_bytes());
            v1.push(1);
            super::super::compact::put_signed(&mut v1, 1);
            v1.extend_from_slice(&[2, b'a', b'1']);
            super::super::compact::put_signed(&mut v1, 2);
            trees.mastery.insert("l", v1).unwrap();
            db.flush().unwrap();
        }
        let store = super::super::Store::open(dir.path()).unwrap();
        assert_eq!(store.mastery("l", "s").unwrap(), Some(state.clone()));
        let mut later = state;
        later.attempt_count = 2;
        store
            .put_mastery(&[("l".into(), "s".into(), later.clone())])
            .unwrap();
        assert_eq!(store.mastery("l", "s").unwrap(), Some(later));
        drop(store);
        let db = super::super::damage::open_sled(
            dir.path(),
            super::super::sled_config(dir.path(), &super::super::budget::MemoryBudget::from_mb(64))
                .unwrap(),
        )
        .unwrap();
        let meta = db.open_tree("meta").unwrap();
        assert_eq!(
            meta.get(FORMAT_VERSION_KEY).unwrap().unwrap().as_ref(),
            FORMAT_VERSION.to_be_bytes()
        );
        let record = db
            .open_tree(attempt_trees::MASTERY)
            .unwrap()
            .get("l")
            .unwrap()
            .unwrap();
        assert_eq!(record[0], super::super::compact::STATES_VERSION);
    }
}
