//! Write-behind for ingestion: new attempts, their observation index entries
//! and the mastery they produce wait in memory and reach sled in batches.
//!
//! Why: sled 0.34 rolls its IO buffer to disk (a `pwrite` and a waiting
//! `sync_file_range`) on every transaction and batch, and a transaction
//! locks every tree of the database while it runs. One transaction per
//! `RecordAttempts` call therefore cost an IO per call and serialized all
//! readers. Durability does not need sled at all on the hot path: the
//! write-ahead log ([`super::wal`]) already holds every acknowledged batch,
//! and the checkpoint that trims the log first applies what waits here.
//!
//! Rows live in two generations: `current` takes new writes, `applying` is
//! the generation being written to sled. Readers look in `current`, then
//! `applying`, then sled, in that order: a row leaves `applying` only
//! after sled has it, so a reader never misses a row in between. Paths
//! that read sled directly (retraction, erasure, export, snapshots, model
//! fitting) call `WriteBehind::settle` first.
//!
//! Rows reach sled by plain inserts, not transactions (which lock the
//! whole database and cost an IO each), so a crash may leave sled with part
//! of a generation. That is safe because only logged rows reach sled: a
//! writer writes its log record and adds its rows under the shared side of
//! `order`, the applier takes the generation under the exclusive side and
//! syncs the log before writing to sled. The log replay at start then puts
//! every logged row again and rebuilds the mastery it touched from the
//! observations (`Engine::apply_attempts` in replay mode), which repairs a
//! partial write.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use super::{StoredObservation, codec};
use crate::domain::mastery::{Attempt, MasteryState};
use crate::error::{Error, Result};

/// Rows waiting for sled, keyed as in sled (see `keys.rs`).
#[derive(Default)]
struct Rows {
    attempts: HashMap<String, Attempt>,
    observations: BTreeMap<Vec<u8>, StoredObservation>,
    mastery: BTreeMap<Vec<u8>, MasteryState>,
}

impl Rows {
    fn len(&self) -> usize {
        self.attempts.len() + self.observations.len() + self.mastery.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Default)]
struct Generations {
    current: Rows,
    applying: Arc<Rows>,
}

/// The rows of the `attempts`, `observations` and `mastery` trees not yet
/// in sled, and the sled trees they go to.
pub(crate) struct WriteBehind {
    rows: RwLock<Generations>,
    /// Rows that may wait at most (from the memory budget, `budget.rs`).
    /// Normally a generation holds 100 ms of ingestion (a few thousand
    /// rows); this many means sled writes keep failing, and new batches are
    /// refused rather than held in memory.
    max_waiting: usize,
    /// Shared by a writer while it logs its rows and adds them; exclusive
    /// when a generation is taken, so every row taken is logged.
    order: RwLock<()>,
    /// Serializes appliers (checkpoints, settles).
    apply: Mutex<()>,
    attempts: sled::Tree,
    observations: sled::Tree,
    mastery: sled::Tree,
}

impl WriteBehind {
    /// Write-behind over the three ingestion trees, default bound.
    #[cfg(test)]
    pub(crate) fn new(attempts: sled::Tree, observations: sled::Tree, mastery: sled::Tree) -> Self {
        Self::bounded(
            attempts,
            observations,
            mastery,
            super::budget::MemoryBudget::default().waiting_rows(),
        )
    }

    /// Write-behind holding at most `max_waiting` rows.
    pub(crate) fn bounded(
        attempts: sled::Tree,
        observations: sled::Tree,
        mastery: sled::Tree,
        max_waiting: usize,
    ) -> Self {
        Self {
            max_waiting,
            rows: RwLock::new(Generations::default()),
            order: RwLock::new(()),
            apply: Mutex::new(()),
            attempts,
            observations,
            mastery,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Generations> {
        self.rows.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Generations> {
        self.rows.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `log` (which writes the rows' log record), then adds the rows,
    /// before any applier can take them; if `log` fails nothing is added.
    /// Readers see the rows at once, sled at the next apply.
    pub(crate) fn put_logged<R>(
        &self,
        attempts: Vec<Attempt>,
        observations: Vec<(Vec<u8>, StoredObservation)>,
        mastery: Vec<(Vec<u8>, MasteryState)>,
        log: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let _order = self.order.read().unwrap_or_else(|p| p.into_inner());
        if self.read().current.len() > self.max_waiting {
            return Err(Error::Unavailable(
                "ingested attempts are not reaching the store (see the server log); retry later"
                    .into(),
            ));
        }
        let logged = log()?;
        let mut rows = self.write();
        let current = &mut rows.current;
        current
            .attempts
            .extend(attempts.into_iter().map(|a| (a.attempt_id.clone(), a)));
        current.observations.extend(observations);
        current.mastery.extend(mastery);
        Ok(logged)
    }

    /// Rows waiting in the generation that takes new writes.
    pub(crate) fn waiting(&self) -> usize {
        self.read().current.len()
    }

    /// Whether so many rows wait that the writer should apply them itself
    /// before adding its own (half the bound, see `Store::commit_attempts`).
    pub(crate) fn crowded(&self) -> bool {
        self.waiting() >= self.max_waiting / 2
    }

    /// A waiting attempt; `None` means "ask sled".
    pub(crate) fn attempt(&self, id: &str) -> Option<Attempt> {
        let rows = self.read();
        rows.current
            .attempts
            .get(id)
            .or_else(|| rows.applying.attempts.get(id))
            .cloned()
    }

    /// A waiting mastery state; `None` means "ask sled".
    pub(crate) fn mastery(&self, key: &[u8]) -> Option<MasteryState> {
        let rows = self.read();
        rows.current
            .mastery
            .get(key)
            .or_else(|| rows.applying.mastery.get(key))
            .cloned()
    }

    /// Waiting observations under `prefix`. Read these *before* sled: a row
    /// that leaves memory meanwhile is in sled by then.
    pub(crate) fn observations_under(&self, prefix: &[u8]) -> Vec<(Vec<u8>, StoredObservation)> {
        let rows = self.read();
        let mut out: BTreeMap<Vec<u8>, StoredObservation> =
            under(&rows.applying.observations, prefix);
        out.extend(under(&rows.current.observations, prefix));
        out.into_iter().collect()
    }

    /// Waiting mastery states under `prefix`; read before sled, as above.
    pub(crate) fn mastery_under(&self, prefix: &[u8]) -> Vec<(Vec<u8>, MasteryState)> {
        let rows = self.read();
        let mut out = under(&rows.applying.mastery, prefix);
        out.extend(under(&rows.current.mastery, prefix));
        out.into_iter().collect()
    }

    /// Writes every waiting row to sled and returns once sled has them (in
    /// its memory; a sled flush makes them durable). `sync_log` is called
    /// between taking the rows and writing them: it must make every log
    /// record written so far durable.
    pub(crate) fn settle(&self, sync_log: impl FnOnce() -> Result<()>) -> Result<()> {
        let _apply = self.apply.lock().unwrap_or_else(|p| p.into_inner());
        let generation = {
            let _order = self.order.write().unwrap_or_else(|p| p.into_inner());
            let mut rows = self.write();
            if rows.current.is_empty() {
                return Ok(());
            }
            // The next generation is likely as large as this one: sizing
            // its map up front spares the rehashes of a growing one
            // (1% of ingestion CPU under load).
            let next = Rows {
                // Capped: a replay or a backlog after sled failures can
                // be far larger than normal ingestion.
                attempts: HashMap::with_capacity(rows.current.attempts.len().min(1 << 16)),
                ..Rows::default()
            };
            let taken = Arc::new(std::mem::replace(&mut rows.current, next));
            rows.applying = taken.clone();
            taken
        };
        let outcome = sync_log().and_then(|()| self.write_to_sled(&generation));
        if outcome.is_ok() {
            self.write().applying = Arc::default();
        } else {
            // Keep the rows readable and retry them with the next apply:
            // merge them back under anything newer.
            drop(generation);
            let mut rows = self.write();
            let failed = std::mem::take(&mut rows.applying);
            let newer = std::mem::take(&mut rows.current);
            let mut merged = Arc::try_unwrap(failed).unwrap_or_else(|shared| Rows {
                attempts: shared.attempts.clone(),
                observations: shared.observations.clone(),
                mastery: shared.mastery.clone(),
            });
            merged.attempts.extend(newer.attempts);
            merged.observations.extend(newer.observations);
            merged.mastery.extend(newer.mastery);
            rows.current = merged;
        }
        outcome
    }

    /// Plain inserts: observations and mastery first, attempts last (an
    /// attempt row is what marks a resend as a duplicate). Each tree gets
    /// its rows in key order: consecutive inserts then walk to the same or
    /// a neighbouring leaf, which saves sled 10-20% of its insert time on
    /// attempts, whose map has no order.
    fn write_to_sled(&self, rows: &Rows) -> Result<()> {
        for (key, value) in &rows.observations {
            self.observations
                .insert(key.as_slice(), codec::encode(value))?;
        }
        for (key, value) in &rows.mastery {
            self.mastery.insert(key.as_slice(), codec::encode(value))?;
        }
        let mut attempts: Vec<_> = rows.attempts.iter().collect();
        attempts.sort_unstable_by_key(|(id, _)| id.as_str());
        for (id, attempt) in attempts {
            self.attempts
                .insert(id.as_bytes(), codec::encode(attempt))?;
        }
        Ok(())
    }
}

/// The entries of `map` whose key starts with `prefix`.
fn under<V: Clone>(map: &BTreeMap<Vec<u8>, V>, prefix: &[u8]) -> BTreeMap<Vec<u8>, V> {
    map.range(prefix.to_vec()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mastery::Position;

    fn attempt(id: &str) -> Attempt {
        crate::domain::mastery::test_attempt(id, 1, true)
    }

    /// Reads as `Store` does: waiting rows first, then sled.
    fn visible(behind: &WriteBehind, id: &str) -> bool {
        behind.attempt(id).is_some() || behind.attempts.get(id.as_bytes()).unwrap().is_some()
    }

    /// Writers add rows and read them back while an applier keeps moving
    /// generations to sled: no row is ever invisible in between, and all
    /// of them end in sled.
    #[test]
    fn rows_stay_visible_while_they_move_to_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let behind = Arc::new(WriteBehind::new(
            db.open_tree("attempts").unwrap(),
            db.open_tree("observations").unwrap(),
            db.open_tree("mastery").unwrap(),
        ));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let applier = {
            let (behind, done) = (behind.clone(), done.clone());
            std::thread::spawn(move || {
                let mut settles = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    behind.settle(|| Ok(())).unwrap();
                    settles += 1;
                }
                settles
            })
        };
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let behind = behind.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let a = attempt(&format!("w{w}-{i}"));
                        let state = MasteryState {
                            belief: crate::domain::bkt::Belief::from_log_odds(0.0),
                            attempt_count: 1,
                            last: Position {
                                occurred_at: 1,
                                attempt_id: a.attempt_id.clone(),
                            },
                            updated_at: 1,
                        };
                        let key = format!("l{w}\0s{i}").into_bytes();
                        behind
                            .put_logged(vec![a.clone()], vec![], vec![(key.clone(), state)], || {
                                Ok(())
                            })
                            .unwrap();
                        assert!(visible(&behind, &a.attempt_id), "{} vanished", a.attempt_id);
                        assert!(
                            behind.mastery(&key).is_some()
                                || behind.mastery.get(&key).unwrap().is_some()
                        );
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(applier.join().unwrap() > 0);
        behind.settle(|| Ok(())).unwrap();
        assert_eq!(behind.attempts.len(), 4_000);
        assert_eq!(behind.mastery.len(), 4_000);
        assert!(
            behind.attempt("w0-0").is_none(),
            "nothing waits after a settle"
        );
    }

    /// A failed apply keeps the rows readable and applies them next time.
    #[test]
    fn a_failed_apply_keeps_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let behind = WriteBehind::new(
            db.open_tree("attempts").unwrap(),
            db.open_tree("observations").unwrap(),
            db.open_tree("mastery").unwrap(),
        );
        behind
            .put_logged(vec![attempt("a")], vec![], vec![], || Ok(()))
            .unwrap();
        let failed = behind.settle(|| Err(Error::Storage("log sync failed".into())));
        assert!(failed.is_err());
        assert!(behind.attempt("a").is_some());
        assert!(behind.attempts.is_empty(), "nothing reached sled unlogged");
        behind.settle(|| Ok(())).unwrap();
        assert!(behind.attempts.get(b"a").unwrap().is_some());
    }
}
