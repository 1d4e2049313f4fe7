//! Everything stored about one learner: gathered for an export, removed
//! for an erasure (GDPR articles 15 and 17).
//!
//! A learner's records sit under keys that start with their id
//! (`learners`, `enrolments`, `attempt_blocks`, `learner_mastery`,
//! `learner_activity`, `recommended`, `alert_active`), under keys found
//! through those (`activities` by id, `program_members` by program, the
//! learner's number in `ids`), and inside values that list them
//! (`cohorts` member lists, `alerts` and the append-only `alert_log`), and
//! in the xAPI statements still waiting for the catalog (`xapi_unresolved`,
//! matched by their actor).
//! [`Store::erase_learner`] removes or rewrites all of it in one sled
//! transaction, then the attempts' entries in the attempt index (a file,
//! `attempt_index.rs`, holding a hash of each attempt id and the
//! learner's number). Alert log entries are not removed but redacted (learner,
//! cohort, reason, figures and notes blanked): the sequence numbers stay,
//! so a watcher resuming from a sequence number never sees a gap reused.
//!
//! A tree added later that mentions learners must be added here too; the
//! privacy test scans every tree for the id and fails until it is.

use std::collections::BTreeMap;

use serde::Serialize;
use sled::Transactional;

use super::interner::Kind;
use super::table::Table;
use super::xapi::UNRESOLVED;
use super::{Store, codec, keys};
use crate::domain::activity::StoredActivity;
use crate::domain::alerts::{Alert, AlertStatus, ClosedEpisode};
use crate::domain::cohorts::records::StoredCohort;
use crate::domain::learner::{Enrolment, Learner, Micros};
use crate::domain::mastery::{Attempt, MasteryState};
use crate::domain::pauses::{Pause, Withdrawal};
use crate::domain::xapi::mapping::learner as actor_learner;
use crate::domain::xapi::record::Unresolved;
use crate::domain::xapi::statement::parse_one;
use crate::error::{Error, Result};

/// Who a redacted alert log entry was about, once erased.
pub const ERASED: &str = "";

/// Every record the store holds about one learner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerRecords {
    /// The learner.
    pub learner: Learner,
    /// Their enrolments, by program id.
    pub enrolments: Vec<Enrolment>,
    /// Their quiz attempts, by attempt id.
    pub attempts: Vec<Attempt>,
    /// Their mastery per skill id.
    pub mastery: BTreeMap<String, MasteryState>,
    /// Their module events, oldest first.
    pub activities: Vec<StoredActivity>,
    /// Modules recommended to them, with when first (µs since the epoch).
    pub recommended: BTreeMap<String, Micros>,
    /// The cohorts they are a member of: (program id, cohort id).
    pub cohorts: Vec<CohortMembership>,
    /// Their at-risk alerts, in id order, with their current state.
    pub alerts: Vec<Alert>,
    /// Every logged change of their alerts, by sequence number.
    pub alert_history: Vec<Alert>,
    /// xAPI statements about them still waiting for the catalog to name
    /// what they are about (kept verbatim).
    pub xapi_waiting: Vec<Unresolved>,
    /// Breaks declared for them (by their LMS or a trainer), with notes.
    pub pauses: Vec<Pause>,
    /// Programs they were withdrawn from, with notes.
    pub withdrawals: Vec<Withdrawal>,
    /// Alert episodes a trainer closed while their condition held (no
    /// alert of that kind is raised again until it clears).
    pub alert_episodes: Vec<ClosedEpisode>,
}

/// Membership of one cohort.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortMembership {
    /// The program.
    pub program_id: String,
    /// The cohort.
    pub cohort_id: String,
}

/// What an erasure removed or rewrote, in entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Erased {
    /// Entries removed, over all trees (an attempt and its index entry
    /// count one each, though they are stored many to a key).
    pub removed: u64,
    /// Entries rewritten without the learner (cohorts, alert log).
    pub rewritten: u64,
}

/// One stored entry of any tree, as raw bytes.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// The tree.
    pub tree: String,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

impl Store {
    /// Every entry of every tree as raw bytes (audits and tests: "does any
    /// byte mention this id"). Reads the whole store.
    pub fn raw_entries(&self) -> Result<Vec<RawEntry>> {
        self.settle()?;
        let mut out = Vec::new();
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            let tree = self.db.open_tree(&name)?;
            for entry in tree.iter() {
                let (key, value) = entry?;
                out.push(RawEntry {
                    tree: String::from_utf8_lossy(&name).into_owned(),
                    key: key.to_vec(),
                    value: value.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// Every record about `learner`; `None` if the learner is unknown.
    pub fn learner_records(&self, learner: &str) -> Result<Option<LearnerRecords>> {
        self.settle()?;
        let Some(record) = self.learner(learner)? else {
            return Ok(None);
        };
        let (enrolments, _) = self.learner_enrolments(learner, None, usize::MAX)?;
        let mut attempts = self.ingested.learner_attempts(learner)?;
        attempts.sort_by(|a, b| a.attempt_id.cmp(&b.attempt_id));
        let recommended = self.recommended(learner)?.into_iter().collect();
        let cohorts = self
            .cohorts_of(learner)?
            .into_iter()
            .map(|(_, c)| CohortMembership {
                program_id: c.program_id,
                cohort_id: c.id,
            })
            .collect();
        let alerts = self
            .alerts_of(learner)?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let alert_history = self
            .alert_log_of(learner)?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let xapi_waiting = self
            .unresolved_of(learner)?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        Ok(Some(LearnerRecords {
            xapi_waiting,
            pauses: self.learner_pauses(learner)?,
            withdrawals: self.learner_withdrawals(learner)?,
            alert_episodes: self.learner_episodes(learner)?,
            learner: record,
            enrolments,
            attempts,
            mastery: self.learner_mastery(learner)?,
            activities: self.learner_activities(learner)?,
            recommended,
            cohorts,
            alerts,
            alert_history,
        }))
    }

    /// Removes every record about `learner` in one transaction: keys under
    /// their id, the attempts and events they index, their program-side
    /// enrolment entries and alerts; their id is taken out of cohort member
    /// lists and their alert log entries are redacted. `None` if the
    /// learner is unknown. The caller holds the learner's locks, so no
    /// ingestion for them runs meanwhile; call [`Store::flush`] afterwards
    /// to make the erasure durable and trim the write-ahead log.
    pub fn erase_learner(&self, learner: &str) -> Result<Option<Erased>> {
        let _gate = self.write_gate();
        // No apply of waiting rows meanwhile: the blocks and records
        // read here are rewritten from what was read.
        let erased = self.exclusive(|| self.erase_settled(learner));
        // Evicted whatever the outcome: a cache refills, a stale one lies.
        self.mastery_written([learner]);
        let erased = erased?;
        if erased.is_some() {
            self.ingested.ids.forget(Kind::Learner, learner);
        }
        Ok(erased)
    }

    /// [`Store::erase_learner`], once every waiting row is in sled.
    fn erase_settled(&self, learner: &str) -> Result<Option<Erased>> {
        if !self.has_learner(learner)? {
            return Ok(None);
        }
        let removals = self.removals(learner)?;
        let t = &self.ingested;
        let attempts = t.learner_attempts(learner)?;
        let index = t.index_entries(&attempts)?;
        let block_keys = keys_under(&t.blocks, &keys::prefix(&[learner]))?;

        // Values rewritten without the learner, re-read inside the
        // transaction so that a concurrent cohort move is not undone.
        let cohorts = self.table::<StoredCohort>("cohorts")?.tree;
        let cohort_keys: Vec<Vec<u8>> = self
            .cohorts_of(learner)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let log = self.table::<Alert>("alert_log")?.tree;
        let log_keys: Vec<Vec<u8>> = self
            .alert_log_of(learner)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();

        let mut trees: Vec<&sled::Tree> = removals.iter().map(|(t, _)| t).collect();
        trees.push(&cohorts);
        trees.push(&log);
        trees.push(&t.blocks);
        let now = crate::clock::now_micros();
        let erased = trees
            .as_slice()
            .transaction(|views| {
                let mut erased = Erased::default();
                for (view, (_, keys)) in views.iter().zip(&removals) {
                    for key in keys {
                        if view.remove(key.as_slice())?.is_some() {
                            erased.removed += 1;
                        }
                    }
                }
                let (cohort_view, log_view) = (&views[removals.len()], &views[removals.len() + 1]);
                let block_view = &views[removals.len() + 2];
                for key in &block_keys {
                    block_view.remove(key.as_slice())?;
                }
                // An attempt and its index entry count one each.
                erased.removed += 2 * attempts.len() as u64;
                for key in &cohort_keys {
                    let Some(bytes) = cohort_view.get(key.as_slice())? else {
                        continue;
                    };
                    let mut cohort: StoredCohort = decode_in_txn("cohorts", key, &bytes)?;
                    cohort.members.retain(|m| m != learner);
                    cohort.updated_at = now;
                    cohort_view.insert(key.as_slice(), codec::encode(&cohort))?;
                    erased.rewritten += 1;
                }
                for key in &log_keys {
                    let Some(bytes) = log_view.get(key.as_slice())? else {
                        continue;
                    };
                    let alert: Alert = decode_in_txn("alert_log", key, &bytes)?;
                    log_view.insert(key.as_slice(), codec::encode(&redacted(alert)))?;
                    erased.rewritten += 1;
                }
                Ok(erased)
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(err) => err,
                sled::transaction::TransactionError::Storage(err) => err.into(),
            })?;
        // After the blocks: entries left behind (a crash in between, a
        // failed write, logged) name a number no block holds any more,
        // candidates never confirmed; the erasure has happened either way.
        if let Err(err) = t.index.remove(&index) {
            tracing::warn!(error = %err, "an erased learner's index entries left in place");
        }
        Ok(Some(erased))
    }

    /// The records of `learner` an erasure removes, tree by tree (the
    /// attempts, their blocks and index entries apart).
    fn removals(&self, learner: &str) -> Result<Vec<(sled::Tree, Vec<Vec<u8>>)>> {
        let prefix = keys::prefix(&[learner]);
        // (tree, keys to remove)
        let mut removals: Vec<(sled::Tree, Vec<Vec<u8>>)> = Vec::new();
        let under = |tree: &sled::Tree| keys_under(tree, &prefix);
        removals.push((
            self.learners.tree.clone(),
            vec![learner.as_bytes().to_vec()],
        ));
        let enrolment_keys = under(&self.enrolments.tree)?;
        let member_keys = enrolment_keys
            .iter()
            .map(|k| {
                let program = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                keys::compose(&[&program, learner])
            })
            .collect();
        removals.push((self.enrolments.tree.clone(), enrolment_keys));
        removals.push((self.program_members.tree.clone(), member_keys));
        let t = &self.ingested;
        removals.push((t.mastery.clone(), vec![learner.as_bytes().to_vec()]));
        removals.push((t.ids.tree().clone(), t.ids.keys_of(Kind::Learner, learner)));
        let activity_index = under(&self.learner_activity.tree)?;
        let event_keys = activity_index
            .iter()
            .filter_map(|k| k.get(prefix.len() + 8..).map(<[u8]>::to_vec))
            .collect();
        removals.push((self.activities.tree.clone(), event_keys));
        removals.push((self.learner_activity.tree.clone(), activity_index));
        let recommended = self.table::<Micros>("recommended")?.tree;
        removals.push((recommended.clone(), under(&recommended)?));
        let active = self.table::<String>("alert_active")?.tree;
        removals.push((active.clone(), under(&active)?));
        let alert_keys = self
            .alerts_of(learner)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        removals.push((self.table::<Alert>("alerts")?.tree, alert_keys));
        let waiting = self
            .unresolved_of(learner)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        removals.push((self.table::<Unresolved>(UNRESOLVED)?.tree, waiting));
        Ok(removals)
    }

    /// Makes the write-ahead log drop `learner`'s entries from now on; an
    /// erasure calls it before its checkpoint (see `wal.rs`).
    pub fn forget_in_log(&self, learner: &str) {
        self.checkpoints.wal.forget_learner(learner);
    }

    /// The cohorts listing `learner` as a member, with their keys.
    fn cohorts_of(&self, learner: &str) -> Result<Vec<(Vec<u8>, StoredCohort)>> {
        self.entries_where("cohorts", |c: &StoredCohort| {
            c.has_member(learner) || c.members.iter().any(|m| m == learner)
        })
    }

    /// The learner's alerts (every status), with their keys.
    fn alerts_of(&self, learner: &str) -> Result<Vec<(Vec<u8>, Alert)>> {
        self.entries_where("alerts", |a: &Alert| a.learner_id == learner)
    }

    /// The waiting xAPI statements whose actor is the learner, with their
    /// keys (a statement that no longer parses names nobody).
    fn unresolved_of(&self, learner: &str) -> Result<Vec<(Vec<u8>, Unresolved)>> {
        self.entries_where(UNRESOLVED, |u: &Unresolved| {
            serde_json::from_str(&u.raw)
                .ok()
                .and_then(|json| parse_one(&json, "statement", crate::clock::now_micros()).ok())
                .and_then(|parsed| actor_learner(&parsed.statement.actor))
                .is_some_and(|who| who.id == learner)
        })
    }

    /// The alert log entries about the learner, with their keys.
    fn alert_log_of(&self, learner: &str) -> Result<Vec<(Vec<u8>, Alert)>> {
        self.entries_where("alert_log", |a: &Alert| a.learner_id == learner)
    }

    /// The entries of tree `tree` that `keep` selects, with their keys (a
    /// scan of the whole tree).
    fn entries_where<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        tree: &'static str,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<(Vec<u8>, T)>> {
        let table: Table<T> = self.table(tree)?;
        Ok(table
            .scan(b"")?
            .into_iter()
            .filter(|(_, v)| keep(v))
            .collect())
    }
}

/// An alert log entry with nothing left that points at a person: the
/// sequence number, program, kind, severity and times stay (aggregate
/// figures), the learner, cohort, reason, figures and notes go.
fn redacted(alert: Alert) -> Alert {
    Alert {
        learner_id: ERASED.to_string(),
        cohort_id: String::new(),
        reason: "erased on request".into(),
        skill_id: None,
        signals: BTreeMap::new(),
        status: AlertStatus::Resolved,
        status_by: String::new(),
        note: String::new(),
        resolved_at: alert.resolved_at.or(Some(alert.updated_at)),
        ..alert
    }
}

/// Decodes a value read inside a transaction, aborting it on damage.
fn decode_in_txn<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> std::result::Result<T, sled::transaction::ConflictableTransactionError<Error>> {
    codec::decode(tree, key, bytes).map_err(sled::transaction::ConflictableTransactionError::Abort)
}

/// The keys of `tree` under `prefix`.
fn keys_under(tree: &sled::Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
    tree.scan_prefix(prefix)
        .keys()
        .map(|k| Ok(k?.to_vec()))
        .collect()
}
