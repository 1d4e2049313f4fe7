//! Write-behind for ingestion: new attempts and the mastery they produce
//! wait in memory and reach sled in batches.
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
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::attempt_trees::AttemptTrees;
use crate::domain::bkt::Observation;
use crate::domain::mastery::{Attempt, MasteryState, Position};
use crate::error::{Error, Result};

/// Rows waiting for sled: attempts by id (with their ids per learner, for
/// the reads by learner) and mastery states by (learner, skill).
#[derive(Default, Clone)]
struct Rows {
    attempts: HashMap<String, Attempt>,
    by_learner: HashMap<String, Vec<String>>,
    mastery: BTreeMap<(String, String), MasteryState>,
    /// Holds the rows of a failed apply, some of which may be in sled.
    retry: bool,
}

impl Rows {
    fn len(&self) -> usize {
        self.attempts.len() + self.mastery.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add_attempt(&mut self, attempt: Attempt) {
        let id = attempt.attempt_id.clone();
        if self.attempts.insert(id.clone(), attempt.clone()).is_none() {
            self.by_learner
                .entry(attempt.learner_id)
                .or_default()
                .push(id);
        }
    }

    /// Adds `newer`'s rows over these.
    fn merge(&mut self, newer: Rows) {
        self.retry = true;
        for (_, attempt) in newer.attempts {
            self.add_attempt(attempt);
        }
        self.mastery.extend(newer.mastery);
    }

    /// The observations of a learner on each of `skills` among these rows,
    /// added to the list of that skill in `out` (same order as `skills`).
    fn observations(
        &self,
        learner: &str,
        skills: &[&str],
        out: &mut [Vec<(Position, Observation)>],
    ) {
        for id in self.by_learner.get(learner).into_iter().flatten() {
            if let Some(a) = self.attempts.get(id) {
                for (skill, list) in skills.iter().zip(out.iter_mut()) {
                    if a.skill_ids.iter().any(|s| s == skill) {
                        list.push((a.position(), a.observation()));
                    }
                }
            }
        }
    }

    /// The mastery states of a learner among these rows.
    fn states(&self, learner: &str, out: &mut BTreeMap<String, MasteryState>) {
        let from = (learner.to_string(), String::new());
        for ((l, skill), state) in self.mastery.range(from..) {
            if l != learner {
                break;
            }
            out.insert(skill.clone(), state.clone());
        }
    }
}

#[derive(Default)]
struct Generations {
    current: Rows,
    applying: Arc<Rows>,
}

/// The rows of the ingestion trees not yet in sled, and the trees they go
/// to.
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
    /// Serializes appliers (checkpoints, settles) and the writers that
    /// rewrite the same values (`WriteBehind::exclusive`).
    apply: Mutex<()>,
    trees: Arc<AttemptTrees>,
}

impl WriteBehind {
    /// Write-behind over the ingestion trees, default bound.
    #[cfg(test)]
    pub(crate) fn new(trees: Arc<AttemptTrees>) -> Self {
        Self::bounded(trees, super::budget::MemoryBudget::default().waiting_rows())
    }

    /// Write-behind holding at most `max_waiting` rows.
    pub(crate) fn bounded(trees: Arc<AttemptTrees>, max_waiting: usize) -> Self {
        Self {
            max_waiting,
            rows: RwLock::new(Generations::default()),
            order: RwLock::new(()),
            apply: Mutex::new(()),
            trees,
        }
    }

    /// Runs `log` (which writes the rows' log record), then adds the rows,
    /// before any applier can take them; if `log` fails nothing is added.
    /// Readers see the rows at once, sled at the next apply.
    pub(crate) fn put_logged<R>(
        &self,
        attempts: Vec<Attempt>,
        mastery: Vec<((String, String), MasteryState)>,
        log: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let _order = self.order.read();
        if self.rows.read().current.len() > self.max_waiting {
            return Err(Error::Unavailable(
                "ingested attempts are not reaching the store (see the server log); retry later"
                    .into(),
            ));
        }
        let logged = log()?;
        let mut rows = self.rows.write();
        let current = &mut rows.current;
        for attempt in attempts {
            current.add_attempt(attempt);
        }
        current.mastery.extend(mastery);
        Ok(logged)
    }

    /// Rows waiting in the generation that takes new writes.
    pub(crate) fn waiting(&self) -> usize {
        self.rows.read().current.len()
    }

    /// Whether so many rows wait that the writer should apply them itself
    /// before adding its own (half the bound, see `Store::commit_attempts`).
    pub(crate) fn crowded(&self) -> bool {
        self.waiting() >= self.max_waiting / 2
    }

    /// A waiting attempt; `None` means "ask sled".
    pub(crate) fn attempt(&self, id: &str) -> Option<Attempt> {
        let rows = self.rows.read();
        rows.current
            .attempts
            .get(id)
            .or_else(|| rows.applying.attempts.get(id))
            .cloned()
    }

    /// A waiting mastery state; `None` means "ask sled".
    pub(crate) fn mastery(&self, learner: &str, skill: &str) -> Option<MasteryState> {
        let rows = self.rows.read();
        let key = (learner.to_string(), skill.to_string());
        rows.current
            .mastery
            .get(&key)
            .or_else(|| rows.applying.mastery.get(&key))
            .cloned()
    }

    /// Waiting observations of a learner on each of `skills` (one list per
    /// skill, in the order given, each unsorted). Read these *before* sled:
    /// a row that leaves memory meanwhile is in sled by then.
    pub(crate) fn observations_of(
        &self,
        learner: &str,
        skills: &[&str],
    ) -> Vec<Vec<(Position, Observation)>> {
        let rows = self.rows.read();
        let mut out = vec![Vec::new(); skills.len()];
        rows.applying.observations(learner, skills, &mut out);
        rows.current.observations(learner, skills, &mut out);
        out
    }

    /// Waiting attempts of a learner; read before sled, as above.
    pub(crate) fn attempts_of(&self, learner: &str) -> Vec<Attempt> {
        let rows = self.rows.read();
        let mut out = Vec::new();
        for generation in [&*rows.applying, &rows.current] {
            for id in generation.by_learner.get(learner).into_iter().flatten() {
                out.extend(generation.attempts.get(id).cloned());
            }
        }
        out
    }

    /// Waiting mastery states of a learner by skill; read before sled, as
    /// above.
    pub(crate) fn mastery_of(&self, learner: &str) -> BTreeMap<String, MasteryState> {
        let rows = self.rows.read();
        let mut out = BTreeMap::new();
        rows.applying.states(learner, &mut out);
        rows.current.states(learner, &mut out);
        out
    }

    /// Writes every waiting row to sled and returns once sled has them (in
    /// its memory; a sled flush makes them durable). `sync_log` is called
    /// between taking the rows and writing them: it must make every log
    /// record written so far durable.
    pub(crate) fn settle(&self, sync_log: impl FnOnce() -> Result<()>) -> Result<()> {
        self.exclusive(sync_log, || Ok(()))
    }

    /// Settles, then runs `write` before any other apply: for writers that
    /// rewrite values an apply also rewrites (blocks, mastery records:
    /// retraction, erasure, recomputation).
    pub(crate) fn exclusive<T>(
        &self,
        sync_log: impl FnOnce() -> Result<()>,
        write: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _apply = self.apply.lock();
        self.settle_locked(sync_log)?;
        write()
    }

    fn settle_locked(&self, sync_log: impl FnOnce() -> Result<()>) -> Result<()> {
        let generation = {
            let _order = self.order.write();
            let mut rows = self.rows.write();
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
            self.rows.write().applying = Arc::default();
        } else {
            // Keep the rows readable and retry them with the next apply:
            // merge them back under anything newer.
            drop(generation);
            let mut rows = self.rows.write();
            let failed = std::mem::take(&mut rows.applying);
            let newer = std::mem::take(&mut rows.current);
            let mut merged = Arc::try_unwrap(failed).unwrap_or_else(|shared| (*shared).clone());
            merged.merge(newer);
            rows.current = merged;
        }
        outcome
    }

    /// Plain inserts: attempts (index entries, then blocks) before mastery,
    /// see `attempt_trees.rs` for why that order.
    fn write_to_sled(&self, rows: &Rows) -> Result<()> {
        let attempts: Vec<&Attempt> = rows.attempts.values().collect();
        self.trees.append(&attempts, rows.retry)?;
        self.trees.put_states(
            rows.mastery
                .iter()
                .map(|((learner, skill), state)| (learner.as_str(), skill.as_str(), Some(state))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::interner::Kind;

    fn attempt(id: &str) -> Attempt {
        crate::domain::mastery::test_attempt(id, 1, true)
    }

    /// Reads as `Store` does: waiting rows first, then sled.
    fn visible(behind: &WriteBehind, id: &str) -> bool {
        behind.attempt(id).is_some() || behind.trees.find(id).unwrap().is_some()
    }

    fn trees(db: &sled::Db, dir: &std::path::Path) -> Arc<AttemptTrees> {
        Arc::new(AttemptTrees::open(db, dir, 0).unwrap())
    }

    fn logged(
        behind: &WriteBehind,
        attempts: Vec<Attempt>,
        mastery: Vec<((String, String), MasteryState)>,
    ) {
        behind.trees.intern(&attempts).unwrap();
        behind.put_logged(attempts, mastery, || Ok(())).unwrap();
    }

    /// Writers add rows and read them back while an applier keeps moving
    /// generations to sled: no row is ever invisible in between, and all
    /// of them end in sled.
    #[test]
    fn rows_stay_visible_while_they_move_to_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let behind = Arc::new(WriteBehind::new(trees(&db, dir.path())));
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
                        let mut a = attempt(&format!("w{w}-{i}"));
                        a.learner_id = format!("l{w}");
                        let state = MasteryState {
                            belief: crate::domain::bkt::Belief::from_log_odds(0.0),
                            attempt_count: 1,
                            last: Position {
                                occurred_at: 1,
                                attempt_id: a.attempt_id.clone(),
                            },
                            updated_at: 1,
                        };
                        let (learner, skill) = (format!("l{w}"), format!("s{i}"));
                        behind.trees.intern(&[a.clone()]).unwrap();
                        behind.trees.ids.intern(Kind::Skill, &skill).unwrap();
                        let key = (learner.clone(), skill.clone());
                        logged(&behind, vec![a.clone()], vec![(key, state)]);
                        assert!(visible(&behind, &a.attempt_id), "{} vanished", a.attempt_id);
                        assert!(
                            behind.mastery(&learner, &skill).is_some()
                                || behind.trees.state(&learner, &skill).unwrap().is_some()
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
        for w in 0..2 {
            let learner = format!("l{w}");
            assert_eq!(
                behind.trees.learner_attempts(&learner).unwrap().len(),
                2_000
            );
            assert_eq!(behind.trees.learner_states(&learner).unwrap().len(), 2_000);
        }
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
        let behind = WriteBehind::new(trees(&db, dir.path()));
        logged(&behind, vec![attempt("a")], vec![]);
        let failed = behind.settle(|| Err(Error::Storage("log sync failed".into())));
        assert!(failed.is_err());
        assert!(behind.attempt("a").is_some());
        assert!(
            behind.trees.blocks.is_empty(),
            "nothing reached sled unlogged"
        );
        behind.settle(|| Ok(())).unwrap();
        assert!(behind.trees.find("a").unwrap().is_some());
    }
}
