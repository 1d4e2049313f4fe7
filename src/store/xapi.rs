//! Storage of xAPI statements and of retractions (trees `xapi_statements`,
//! `xapi_unresolved`, `xapi_voids`, `retracted`; layout in [`super::keys`]).
//!
//! The statement records, the unresolved statements and the voiding index
//! of one batch are written in one transaction that also checks, under
//! sled's isolation, that no record it adds collides with a different
//! statement stored meanwhile under the same id. A retraction removes an
//! attempt (or module event) and its index entries and writes its
//! tombstone in one transaction, so a replay of the write-ahead log, which
//! honours tombstones, cannot bring it back.

use std::collections::{BTreeMap, BTreeSet};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::attempt_trees::Rewrites;
use super::table::{Rows, Table};
use super::{Store, codec, compact, keys, transaction_error};
use crate::domain::activity::StoredActivity;
use crate::domain::learner::Micros;
use crate::domain::mastery::{Attempt, MasteryState};
use crate::domain::xapi::record::{StatementRecord, Unresolved};
use crate::error::{Error, Result};

/// Tree of statement records by statement id.
const STATEMENTS: &str = "xapi_statements";
/// Tree of statements kept for a replay, by statement id.
pub(crate) const UNRESOLVED: &str = "xapi_unresolved";
/// Tree from a voided statement id to the id of the statement voiding it.
const VOIDS: &str = "xapi_voids";
/// Tree of tombstones of retracted attempts and module events.
const RETRACTED: &str = "retracted";

/// What a retraction tombstone is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retracted {
    /// An attempt id.
    Attempt,
    /// A module event id.
    Activity,
}

impl Retracted {
    fn key(self, id: &str) -> Vec<u8> {
        let kind = match self {
            Retracted::Attempt => "attempt",
            Retracted::Activity => "activity",
        };
        keys::compose(&[kind, id])
    }
}

/// The writes of one xAPI batch, committed together.
#[derive(Debug, Default)]
pub struct StatementWrite {
    /// Records of statements new in this batch: refused if another record
    /// with a different hash appeared under the id meanwhile.
    pub new: Vec<(String, StatementRecord)>,
    /// Records replaced as they are (voided flag, replayed fate).
    pub replaced: Vec<(String, StatementRecord)>,
    /// Statements kept for a later replay.
    pub unresolved: Vec<(String, Unresolved)>,
    /// Statements no longer waiting (replayed or voided).
    pub resolved: Vec<String>,
    /// (voided id, voiding id) pairs.
    pub voids: Vec<(String, String)>,
}

impl Store {
    fn statements_table(&self) -> Result<Table<StatementRecord>> {
        self.table(STATEMENTS)
    }

    fn unresolved_table(&self) -> Result<Table<Unresolved>> {
        self.table(UNRESOLVED)
    }

    fn voids_table(&self) -> Result<Table<String>> {
        self.table(VOIDS)
    }

    fn retracted_table(&self) -> Result<Table<Micros>> {
        self.table(RETRACTED)
    }

    /// The record of one statement id.
    pub fn statement_record(&self, id: &str) -> Result<Option<StatementRecord>> {
        self.statements_table()?.get(id.as_bytes())
    }

    /// The id of the statement that voids `target`, if one was received.
    pub fn voided_by(&self, target: &str) -> Result<Option<String>> {
        self.voids_table()?.get(target.as_bytes())
    }

    /// Commits the writes of one batch in one transaction. A new record
    /// that meets a stored one with another hash aborts everything with
    /// [`Error::AlreadyExists`].
    pub fn commit_statements(&self, write: &StatementWrite) -> Result<()> {
        let _gate = self.write_gate();
        let encode = |rows: &[(String, StatementRecord)]| -> Vec<(Vec<u8>, Vec<u8>, [u8; 32])> {
            rows.iter()
                .map(|(id, r)| (id.as_bytes().to_vec(), codec::encode(r), r.hash))
                .collect()
        };
        let new = encode(&write.new);
        let replaced = encode(&write.replaced);
        let unresolved: Vec<(Vec<u8>, Vec<u8>)> = write
            .unresolved
            .iter()
            .map(|(id, u)| (id.as_bytes().to_vec(), codec::encode(u)))
            .collect();
        let voids: Vec<(Vec<u8>, Vec<u8>)> = write
            .voids
            .iter()
            .map(|(target, by)| (target.as_bytes().to_vec(), codec::encode(by)))
            .collect();
        let (statements, waiting, void_index) = (
            self.statements_table()?,
            self.unresolved_table()?,
            self.voids_table()?,
        );
        let outcome = (&statements.tree, &waiting.tree, &void_index.tree).transaction(
            |(statement_tree, waiting_tree, void_tree)| {
                for (key, value, hash) in &new {
                    if let Some(stored) = statement_tree.get(key)? {
                        let stored: StatementRecord = codec::decode(STATEMENTS, key, &stored)
                            .map_err(ConflictableTransactionError::Abort)?;
                        if stored.hash != *hash {
                            return Err(ConflictableTransactionError::Abort(
                                Error::AlreadyExists {
                                    kind: "statement",
                                    id: String::from_utf8_lossy(key).into_owned(),
                                    reason: "a different statement is stored under this id".into(),
                                },
                            ));
                        }
                        continue;
                    }
                    statement_tree.insert(key.as_slice(), value.as_slice())?;
                }
                for (key, value, _) in &replaced {
                    statement_tree.insert(key.as_slice(), value.as_slice())?;
                }
                for (key, value) in &unresolved {
                    waiting_tree.insert(key.as_slice(), value.as_slice())?;
                }
                for id in &write.resolved {
                    waiting_tree.remove(id.as_bytes())?;
                }
                for (key, value) in &voids {
                    void_tree.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(())
            },
        );
        match outcome {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(err)) => Err(err),
            Err(TransactionError::Storage(err)) => Err(err.into()),
        }
    }

    /// One page of the statements waiting for a replay, with their ids.
    pub fn list_unresolved(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Rows<Unresolved>, Option<Vec<u8>>)> {
        let (rows, more) = self.unresolved_table()?.page(b"", after, limit)?;
        let next = if more {
            rows.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Every statement waiting for a replay, by id.
    pub fn all_unresolved(&self) -> Result<Vec<(String, Unresolved)>> {
        Ok(self
            .unresolved_table()?
            .scan(b"")?
            .into_iter()
            .map(|(key, u)| (String::from_utf8_lossy(&key).into_owned(), u))
            .collect())
    }

    /// How many statements wait for a replay (a full count: for start-up).
    pub fn count_unresolved(&self) -> Result<u64> {
        Ok(self.unresolved_table()?.tree.len() as u64)
    }

    /// Whether an attempt or module event id was retracted.
    pub fn is_retracted(&self, kind: Retracted, id: &str) -> Result<bool> {
        self.retracted_table()?.contains(&kind.key(id))
    }

    /// Removes attempts (from their blocks and the id index), writes the
    /// recomputed mastery (`None`: no attempt left, back to the prior) and
    /// a tombstone for every id of `ids` (stored or not), in one
    /// transaction. Call [`Store::durable`] before replying.
    pub fn retract_attempts(
        &self,
        ids: &[String],
        attempts: &[Attempt],
        mastery: &[(String, String, Option<MasteryState>)],
        at: Micros,
    ) -> Result<()> {
        let _gate = self.write_gate();
        let tombstones: Vec<Vec<u8>> = ids.iter().map(|id| Retracted::Attempt.key(id)).collect();
        let stamp = codec::encode(&at);
        let retracted = self.retracted_table()?;
        let t = &self.ingested;
        let outcome = self.exclusive(|| {
            let removed: BTreeSet<&str> = attempts.iter().map(|a| a.attempt_id.as_str()).collect();
            let learners: BTreeSet<&str> = attempts.iter().map(|a| a.learner_id.as_str()).collect();
            // (key, new value or None to remove), per tree.
            let mut blocks: Rewrites = Vec::new();
            for learner in learners {
                for (key, packed) in t.learner_blocks(learner)? {
                    let kept: Vec<_> = packed
                        .iter()
                        .filter(|p| !removed.contains(p.attempt_id.as_str()))
                        .cloned()
                        .collect();
                    if kept.len() != packed.len() {
                        let value = (!kept.is_empty()).then(|| compact::encode_block(&kept));
                        blocks.push((key, value));
                    }
                }
            }
            // One index entry per attempt, however often it is named:
            // `remove` takes one copy per entry given, and a second would
            // be another attempt's with the same tag.
            let mut seen = BTreeSet::new();
            let unique = attempts
                .iter()
                .filter(|a| seen.insert(a.attempt_id.as_str()));
            let index = t.index_entries(unique)?;
            let mut changes: BTreeMap<&str, Vec<(&str, Option<&MasteryState>)>> = BTreeMap::new();
            for (learner, skill, state) in mastery {
                changes
                    .entry(learner.as_str())
                    .or_default()
                    .push((skill.as_str(), state.as_ref()));
            }
            let mut records: Rewrites = Vec::new();
            for (learner, changes) in changes {
                records.push((
                    learner.as_bytes().to_vec(),
                    t.changed_record(learner, &changes)?,
                ));
            }
            (&t.blocks, &t.mastery, &retracted.tree)
                .transaction(|(block_tree, mastery_tree, tomb_tree)| {
                    for (tree, rows) in [(block_tree, &blocks), (mastery_tree, &records)] {
                        for (key, value) in rows {
                            match value {
                                Some(value) => tree.insert(key.as_slice(), value.as_slice())?,
                                None => tree.remove(key.as_slice())?,
                            };
                        }
                    }
                    for key in &tombstones {
                        tomb_tree.insert(key.as_slice(), stamp.as_slice())?;
                    }
                    Ok(())
                })
                .map_err(transaction_error)?;
            // After the blocks: an entry left behind (a crash in between,
            // a failed write, logged) is a candidate the blocks no longer
            // confirm, and the retraction has happened either way.
            if let Err(err) = t.index.remove(&index) {
                tracing::warn!(error = %err, "retracted attempts' index entries left in place");
            }
            Ok(())
        });
        // Evicted whatever the outcome: a cache refills, a stale one lies.
        self.mastery_written(mastery.iter().map(|(learner, _, _)| learner.as_str()));
        outcome
    }

    /// Removes module events with their per-learner index entries and
    /// writes a tombstone for every id of `ids`, in one transaction.
    pub fn retract_activities(
        &self,
        ids: &[String],
        events: &[StoredActivity],
        at: Micros,
    ) -> Result<()> {
        let _gate = self.write_gate();
        let tombstones: Vec<Vec<u8>> = ids.iter().map(|id| Retracted::Activity.key(id)).collect();
        let stamp = codec::encode(&at);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let a = &e.activity;
                (
                    a.event_id.as_bytes().to_vec(),
                    keys::learner_activity(&a.learner_id, a.occurred_at, &a.event_id),
                )
            })
            .collect();
        let retracted = self.retracted_table()?;
        (
            &self.activities.tree,
            &self.learner_activity.tree,
            &retracted.tree,
        )
            .transaction(|(by_id, by_learner, tomb_tree)| {
                for (id, learner_key) in &rows {
                    by_id.remove(id.as_slice())?;
                    by_learner.remove(learner_key.as_slice())?;
                }
                for key in &tombstones {
                    tomb_tree.insert(key.as_slice(), stamp.as_slice())?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mastery::test_attempt;

    /// An attempt named twice takes one index entry with it: a second
    /// copy of its entry (another attempt of the learner whose id shares
    /// the tag, written here by hand) stays.
    #[test]
    fn an_attempt_named_twice_removes_one_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a1 = test_attempt("a1", 1, true);
        store.commit_attempts(vec![a1.clone()], &[], None).unwrap();
        store.settle().unwrap();
        let t = &store.ingested;
        let entry = t.index_entries([&a1]).unwrap()[0];
        let held = || t.index.copies(entry).unwrap();
        t.index.add(&[entry]).unwrap();
        assert_eq!(held(), 2);
        store
            .retract_attempts(&["a1".into(), "a1".into()], &[a1.clone(), a1], &[], 5)
            .unwrap();
        assert_eq!(held(), 1);
    }
}
