//! GDPR requests: export everything about a learner, erase it all.
//!
//! An erasure must not come back and must not linger: it runs under the
//! learner's ingestion lock and alert lock (no batch for them is applied
//! meanwhile, and one checked before is refused after, see
//! `Engine::still_exist`), removes every stored record in one transaction
//! (`store/privacy.rs`), tells the write-ahead log to drop the learner from
//! later appends, clears the in-memory caches that remember them, and then
//! checkpoints: sled is flushed and the log segments that held their
//! batches are deleted, so neither a replay nor a file scan finds them.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;

use parking_lot::Mutex;
use serde::Serialize;

use super::Engine;
use crate::clock::now_micros;
use crate::domain::learner::Micros;
use crate::error::{Error, Result};
use crate::store::privacy::{Erased, LearnerRecords};
use crate::store::wal::WalRecord;

/// Version tag of the export document.
pub const EXPORT_FORMAT: &str = "spoc-learner-export/1";

/// How many recent erasures are remembered for retries.
const RECENT_ERASURES: usize = 4096;

/// The export document, serialized as JSON.
#[derive(Debug, Serialize)]
struct Export<'a> {
    /// [`EXPORT_FORMAT`].
    format: &'static str,
    /// When the export was made, µs since the epoch.
    exported_at: Micros,
    /// Every record, by kind.
    #[serde(flatten)]
    records: &'a LearnerRecords,
}

/// Recent erasures, remembered as keyed hashes (never the id itself, and
/// the key is random per process) so that a retried erase succeeds again
/// instead of answering NOT_FOUND. Forgotten at restart.
pub struct RecentErasures {
    hasher: RandomState,
    seen: Mutex<HashSet<u64>>,
}

impl Default for RecentErasures {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            seen: Mutex::new(HashSet::new()),
        }
    }
}

impl RecentErasures {
    fn note(&self, id: &str) {
        let mut seen = self.seen.lock();
        if seen.len() >= RECENT_ERASURES {
            seen.clear();
        }
        seen.insert(self.hasher.hash_one(id));
    }

    fn contains(&self, id: &str) -> bool {
        self.seen.lock().contains(&self.hasher.hash_one(id))
    }
}

impl Engine {
    /// Everything stored about a learner as one JSON document; NOT_FOUND
    /// if the learner is unknown.
    pub fn export_learner(&self, learner: &str) -> Result<String> {
        let records = self
            .store
            .learner_records(learner)?
            .ok_or_else(|| Error::not_found("learner", learner))?;
        serde_json::to_string_pretty(&Export {
            format: EXPORT_FORMAT,
            exported_at: now_micros(),
            records: &records,
        })
        .map_err(|e| Error::Storage(format!("cannot serialize the export: {e}")))
    }

    /// Erases every record about a learner and returns once the erasure is
    /// on disk and out of the write-ahead log. NOT_FOUND if the learner is
    /// unknown, unless this process erased them recently (a retry).
    pub fn erase_learner(&self, learner: &str) -> Result<Erased> {
        let erased = self.with_alerts_held(learner, || -> Result<Option<Erased>> {
            // Program cohort locks first (formations take them without any
            // learner lock), then the learner's.
            let (enrolments, _) = self.store.learner_enrolments(learner, None, usize::MAX)?;
            let _programs =
                super::cohorts::program_locks(enrolments.iter().map(|e| e.program_id.as_str()));
            let _guards = self.learner_locks.lock_all([learner]);
            let outcome = self.store.erase_learner(learner);
            // Whatever the outcome, part of the learner may be gone: facts
            // remembered about them no longer hold.
            self.known_learners.clear();
            self.noted_recommendations.clear();
            self.histories.forget([learner]);
            self.effects.forget([learner]);
            let Some(mut erased) = outcome? else {
                return Ok(None);
            };
            // Webhook messages, dead letters and digest rows naming them.
            erased.removed += self.erase_webhook_rows(learner)?;
            self.store.forget_in_log(learner);
            self.store.flush()?;
            Ok(Some(erased))
        })?;
        match erased {
            Some(erased) => {
                self.recent_erasures.note(learner);
                tracing::info!(
                    removed = erased.removed,
                    rewritten = erased.rewritten,
                    "learner erased on request"
                );
                Ok(erased)
            }
            None if self.recent_erasures.contains(learner) => Ok(Erased::default()),
            None => Err(Error::not_found("learner", learner)),
        }
    }

    /// A logged batch without the entries of learners the store does not
    /// hold, and how many entries were dropped. Such a learner was either
    /// erased after the batch was logged (replaying it would bring erased
    /// data back), or created by a call that never finished: its batch
    /// reached the log, its learner never reached sled before the stop
    /// (xAPI makes a new learner durable before logging its attempts, but
    /// a `RecordAttempts` racing an unacknowledged `UpsertLearner` can log
    /// first). Without the learner the entries cannot be applied either
    /// way; the replay reports the count once.
    pub(crate) fn without_missing_learners(
        &self,
        record: &WalRecord,
    ) -> Result<(WalRecord, usize)> {
        let mut exists: BTreeMap<String, bool> = BTreeMap::new();
        let mut dropped = 0;
        let mut keep = |learner: &str| -> Result<bool> {
            let found = match exists.get(learner) {
                Some(known) => *known,
                None => {
                    let found = self.store.has_learner(learner)?;
                    exists.insert(learner.to_string(), found);
                    found
                }
            };
            if !found {
                dropped += 1;
            }
            Ok(found)
        };
        let record = match record {
            WalRecord::Attempts(batch) => {
                let mut out = Vec::with_capacity(batch.len());
                for a in batch {
                    if keep(&a.learner_id)? {
                        out.push(a.clone());
                    }
                }
                WalRecord::Attempts(out)
            }
            WalRecord::Activities(batch) => {
                let mut out = Vec::with_capacity(batch.len());
                for a in batch {
                    if keep(&a.learner_id)? {
                        out.push(a.clone());
                    }
                }
                WalRecord::Activities(out)
            }
        };
        Ok((record, dropped))
    }
}
