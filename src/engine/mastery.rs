//! Ingestion of quiz attempts and the live mastery they produce.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Engine, now_micros};
use crate::domain::bkt::Observation;
use crate::domain::mastery::{
    Attempt, MasteryState, Position, fold, is_late, rebuild, rebuild_merged,
};
use crate::error::{Error, Result};
use crate::store::wal::WalRecord;
use crate::store::xapi::Retracted;

/// One learner's mastery of one skill, as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillMastery {
    /// The learner.
    pub learner_id: String,
    /// The skill.
    pub skill_id: String,
    /// P(mastered), in `[0, 1]`.
    pub p_mastered: f64,
    /// Attempts that tested the skill.
    pub attempt_count: u32,
    /// Whether `p_mastered` reached the threshold.
    pub mastered: bool,
    /// When `p_mastered` last changed; `None` before any attempt.
    pub updated_at: Option<i64>,
}

/// Whether [`Engine::apply_attempts`] serves a call or replays the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ingest {
    /// A call: the batch is logged with its rows.
    Live,
    /// The log replay at start: the batch is logged already. Sled may hold
    /// part of it (see `store/write_behind.rs`), so every logged attempt is
    /// written again and the mastery it touches rebuilt from the stored
    /// observations; a rebuilt state equal to the stored one is kept as it
    /// is, time included.
    Replay,
}

/// What `record_attempts` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Mastery of every (learner, skill) the batch touched.
    pub mastery: Vec<SkillMastery>,
    /// Attempts newly stored.
    pub recorded: usize,
    /// Attempts already stored before this call.
    pub duplicates: usize,
}

/// Whether two states of one (learner, skill) hold the same mastery from
/// the same attempts, whenever they were computed.
fn same_value(a: &MasteryState, b: &MasteryState) -> bool {
    a.belief == b.belief && a.attempt_count == b.attempt_count && a.last == b.last
}

/// A batch applied in memory and written to the log, not yet known to be
/// on disk: [`Engine::commit_attempts`] waits for that. Not acknowledged
/// until then.
#[derive(Debug)]
#[must_use = "a staged batch is acknowledged only by commit_attempts"]
pub struct Staged {
    outcome: Recorded,
    /// The log record to wait for; `None` when nothing new was logged.
    ticket: Option<u64>,
}

impl Engine {
    /// Stores a batch of attempts, all or nothing, updates mastery in
    /// `occurred_at` order, and returns once everything is on disk.
    ///
    /// An attempt with no skill ids takes those of its item (the Q-matrix);
    /// it is stored, and logged, with them.
    pub async fn record_attempts(&self, attempts: Vec<Attempt>) -> Result<Recorded> {
        let staged = self.stage_attempts(attempts)?;
        self.commit_attempts(staged).await
    }

    /// The synchronous part of [`Engine::record_attempts`] (all its CPU
    /// work), for a caller that runs it off the async runtime; pass the
    /// result to [`Engine::commit_attempts`].
    pub fn stage_attempts(&self, mut attempts: Vec<Attempt>) -> Result<Staged> {
        let from_item: Vec<bool> = attempts.iter().map(|a| a.skill_ids.is_empty()).collect();
        self.fill_item_skills(&mut attempts)?;
        let (outcome, ticket) = self.apply_attempts(&attempts, &from_item, Ingest::Live)?;
        // Best effort: module statistics must not cost the LMS its write.
        if let Err(err) = self.effect_answers(&attempts) {
            tracing::warn!(error = %err, "could not credit modules with answers");
        }
        Ok(Staged { outcome, ticket })
    }

    /// Waits until a staged batch is on disk, then lets the alert
    /// evaluation know its learners changed.
    pub async fn commit_attempts(&self, staged: Staged) -> Result<Recorded> {
        let Staged { outcome, ticket } = staged;
        if let Some(ticket) = ticket {
            self.store.logged(ticket).await?;
        }
        self.alerts_touched(outcome.mastery.iter().map(|m| m.learner_id.as_str()));
        Ok(outcome)
    }

    /// Fills the skills of attempts that name none from their item.
    fn fill_item_skills(&self, attempts: &mut [Attempt]) -> Result<()> {
        if attempts.iter().all(|a| !a.skill_ids.is_empty()) {
            return Ok(());
        }
        let catalog = self.catalog();
        for (i, attempt) in attempts.iter_mut().enumerate() {
            if attempt.skill_ids.is_empty() {
                let item = catalog.items.get(&attempt.item_id).ok_or_else(|| {
                    Error::invalid(
                        format!("attempts[{i}].skill_ids"),
                        format!(
                            "is empty and item '{}' is not in the catalog (CatalogService.UpsertItems)",
                            attempt.item_id
                        ),
                    )
                })?;
                attempt.skill_ids = item.skill_ids.clone();
            }
        }
        Ok(())
    }

    /// The synchronous part of [`Engine::record_attempts`]: validate against
    /// the stored state, fold, store and (live) write the log record, whose
    /// ticket to wait for it returns. Also what the write-ahead log replays
    /// at start. A retracted attempt id (tombstone) counts as already
    /// stored, so neither a resend nor a replay of the log brings it back.
    ///
    /// `from_item[i]` says that attempt `i` named no skills and took its
    /// item's (missing means no): resent after the item was mapped to other
    /// skills, it is still the attempt stored under its id, since the caller
    /// sent the same thing.
    pub(crate) fn apply_attempts(
        &self,
        attempts: &[Attempt],
        from_item: &[bool],
        mode: Ingest,
    ) -> Result<(Recorded, Option<u64>)> {
        let known_learners = self.check_references(attempts)?;
        let _guards = self
            .learner_locks
            .lock_all(known_learners.iter().map(String::as_str));
        self.still_exist(&known_learners)?;
        let Split {
            fresh,
            mut as_stored,
            duplicates,
            touched,
        } = self.split_fresh(attempts, from_item, mode)?;
        let (groups, mut states) = self.fold_new(&fresh, mode)?;

        let rows: Vec<(String, String, MasteryState)> = states
            .iter()
            .map(|((l, s), state)| (l.clone(), s.clone(), state.clone()))
            .collect();
        let new_attempts: Vec<Attempt> = fresh.values().map(|a| (*a).clone()).collect();
        // The whole batch is logged, resent attempts included: a resend may
        // race with the first send's own log write, and must not be
        // acknowledged before the attempt is durable.
        let record = (mode == Ingest::Live).then(|| {
            let mut logged = attempts.to_vec();
            for (i, stored) in std::mem::take(&mut as_stored) {
                logged[i] = stored;
            }
            WalRecord::Attempts(logged)
        });
        let ticket = self
            .store
            .commit_attempts(new_attempts, &rows, record.as_ref())?;
        for (&(learner, skill), new) in &groups {
            self.histories.extend(learner, skill, new);
        }

        let mut mastery = Vec::with_capacity(touched.len());
        for (learner, skill) in touched {
            let state = match states.remove(&(learner.clone(), skill.clone())) {
                Some(state) => Some(state),
                None => self.store.mastery(&learner, &skill)?,
            };
            mastery.push(self.report(&learner, &skill, state.as_ref()));
        }
        let recorded = Recorded {
            recorded: attempts.len() - duplicates,
            mastery,
            duplicates,
        };
        Ok((recorded, ticket))
    }

    /// Phase 1 of ingestion: every learner and skill the batch names must
    /// exist; checked before any lock or write. Returns the learners.
    fn check_references(&self, attempts: &[Attempt]) -> Result<BTreeSet<String>> {
        let catalog = self.catalog();
        let mut known_learners = BTreeSet::new();
        let mut known_skills = BTreeSet::new();
        for (i, attempt) in attempts.iter().enumerate() {
            if !known_learners.contains(&attempt.learner_id) {
                if !self.learner_exists(&attempt.learner_id)? {
                    return Err(Error::not_found_at(
                        format!("attempts[{i}].learner_id"),
                        "learner",
                        attempt.learner_id.clone(),
                    ));
                }
                known_learners.insert(attempt.learner_id.clone());
            }
            // `skill_ids` is the edge's sorted copy (or the item's): the
            // edge adds the position in the request (`convert::locate_id`).
            for skill in &attempt.skill_ids {
                if !known_skills.contains(skill) {
                    if !catalog.skills.contains_key(skill) {
                        return Err(Error::not_found_at(
                            format!("attempts[{i}].skill_ids"),
                            "skill",
                            skill.clone(),
                        ));
                    }
                    known_skills.insert(skill.clone());
                }
            }
        }
        Ok(known_learners)
    }

    /// Phase 2, under the learners' locks: splits new attempts from resent
    /// ones; a resent id must carry the same content, within the batch and
    /// against the store.
    fn split_fresh<'a>(
        &self,
        attempts: &'a [Attempt],
        from_item: &[bool],
        mode: Ingest,
    ) -> Result<Split<'a>> {
        let mut fresh: BTreeMap<&str, &Attempt> = BTreeMap::new();
        // Resends logged as stored rather than as sent (see below).
        let mut as_stored: BTreeMap<usize, Attempt> = BTreeMap::new();
        let mut duplicates = 0;
        let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, attempt) in attempts.iter().enumerate() {
            // The attempt already known under this id, if any: earlier in
            // the batch, or stored.
            let earlier = fresh.get(attempt.attempt_id.as_str()).copied();
            let stored = match earlier {
                Some(_) => None,
                None => self.store.attempt(&attempt.attempt_id)?,
            };
            // A resend reports the skills its attempt was first given.
            let skills = earlier
                .or(stored.as_ref())
                .map_or(&attempt.skill_ids, |a| &a.skill_ids);
            for skill in skills {
                touched.insert((attempt.learner_id.clone(), skill.clone()));
            }
            // The same attempt as a known one: equal, or equal but for the
            // skills when this one named none and took its item's (which
            // may have changed since).
            let same = |known: &Attempt| {
                if from_item.get(i).copied().unwrap_or(false) {
                    Attempt {
                        skill_ids: known.skill_ids.clone(),
                        ..attempt.clone()
                    } == *known
                } else {
                    known == attempt
                }
            };
            if let Some(previous) = earlier {
                if !same(previous) {
                    return Err(Error::invalid(
                        format!("attempts[{i}].attempt_id"),
                        format!(
                            "attempt '{}' appears twice in the batch with different content",
                            attempt.attempt_id
                        ),
                    ));
                }
                if previous != attempt {
                    as_stored.insert(i, previous.clone()); // logged as kept
                }
                duplicates += 1;
                continue;
            }
            match stored {
                Some(stored) if same(&stored) => {
                    duplicates += 1;
                    if stored != *attempt {
                        // Took its item's current skills: the log must hold
                        // the attempt as stored, which its replay compares
                        // exactly.
                        as_stored.insert(i, stored);
                    }
                    if mode == Ingest::Replay {
                        fresh.insert(&attempt.attempt_id, attempt);
                    }
                }
                Some(_) => {
                    return Err(Error::AlreadyExists {
                        kind: "attempt",
                        id: attempt.attempt_id.clone(),
                        reason: format!(
                            "attempts[{i}] differs from the attempt stored under this id"
                        ),
                    });
                }
                None if self
                    .store
                    .is_retracted(Retracted::Attempt, &attempt.attempt_id)? =>
                {
                    duplicates += 1
                }
                None => {
                    fresh.insert(&attempt.attempt_id, attempt);
                }
            }
        }
        Ok(Split {
            fresh,
            as_stored,
            duplicates,
            touched,
        })
    }

    /// Phase 3: groups the new observations by (learner, skill) in time
    /// order and folds each group into its pair's state (replaying the
    /// history when late, or in replay mode). Returns the groups and the
    /// states that changed.
    #[allow(clippy::type_complexity)]
    fn fold_new<'a>(
        &self,
        fresh: &BTreeMap<&'a str, &'a Attempt>,
        mode: Ingest,
    ) -> Result<(
        BTreeMap<(&'a str, &'a str), Vec<(Position, Observation)>>,
        BTreeMap<(String, String), MasteryState>,
    )> {
        // Group the new observations by (learner, skill), in time order.
        let mut groups: BTreeMap<(&str, &str), Vec<(Position, Observation)>> = BTreeMap::new();
        for attempt in fresh.values() {
            for skill in &attempt.skill_ids {
                groups
                    .entry((&attempt.learner_id, skill))
                    .or_default()
                    .push((attempt.position(), attempt.observation()));
            }
        }
        let params = self.params();
        let now = now_micros();
        let mut states: BTreeMap<(String, String), MasteryState> = BTreeMap::new();
        for (&(learner, skill), new) in groups.iter_mut() {
            new.sort_by(|a, b| a.0.cmp(&b.0));
            let params = params.for_skill(skill);
            let previous = match mode {
                Ingest::Replay => None,
                Ingest::Live => self.store.mastery(learner, skill)?,
            };
            // The log replay always replays the history: sled may hold part
            // of the batch (see `Ingest::Replay`).
            let state = if mode == Ingest::Replay || is_late(previous.as_ref(), new) {
                rebuild_merged(params, &self.history(learner, skill)?, new, now)
            } else {
                fold(params, previous.as_ref(), new, now)
            };
            let Some(state) = state else { continue };
            if mode == Ingest::Replay {
                // The replay rebuilds every state a logged batch touched,
                // most of which sled already holds (the batch reached it
                // before the stop): those stay as they are, time included,
                // since their value did not change.
                let stored = self.store.mastery(learner, skill)?;
                if stored.is_some_and(|s| same_value(&s, &state)) {
                    continue;
                }
            }
            states.insert((learner.to_string(), skill.to_string()), state);
        }
        Ok((groups, states))
    }

    /// Retracts attempts (an xAPI voiding): removes them and their index
    /// entries, recomputes the mastery of every (learner, skill) they
    /// touched from the attempts left, and keeps a tombstone of each id so
    /// that ingestion and the write-ahead log replay never restore them.
    /// Unknown ids get a tombstone too. Returns once it is on disk, with
    /// the number of attempts removed.
    pub async fn retract_attempts(&self, ids: &[String]) -> Result<usize> {
        let (removed, learners) = self.apply_retraction(ids)?;
        self.store.durable().await?;
        self.alerts_touched(learners.iter().map(String::as_str));
        Ok(removed)
    }

    fn apply_retraction(&self, ids: &[String]) -> Result<(usize, BTreeSet<String>)> {
        // An id given twice (two voidings of one statement in a batch) is
        // one attempt: removed once, counted once.
        let mut seen = BTreeSet::new();
        let ids: Vec<String> = ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .cloned()
            .collect();
        let ids = ids.as_slice();
        let read = |ids: &[String]| -> Result<Vec<Attempt>> {
            ids.iter()
                .filter_map(|id| self.store.attempt(id).transpose())
                .collect()
        };
        let mut learners: BTreeSet<String> = read(ids)?.into_iter().map(|a| a.learner_id).collect();
        let (_guards, attempts) = loop {
            let guards = self
                .learner_locks
                .lock_all(learners.iter().map(String::as_str));
            // Read again under the locks: the attempts as they are now. One
            // stored meanwhile may be a learner's not locked yet: lock again.
            let attempts = read(ids)?;
            let now: BTreeSet<String> = attempts.iter().map(|a| a.learner_id.clone()).collect();
            if now.is_subset(&learners) {
                break (guards, attempts);
            }
            drop(guards);
            learners.extend(now);
        };
        let removed: BTreeSet<&str> = attempts.iter().map(|a| a.attempt_id.as_str()).collect();
        let touched: BTreeSet<(&str, &str)> = attempts
            .iter()
            .flat_map(|a| {
                a.skill_ids
                    .iter()
                    .map(|s| (a.learner_id.as_str(), s.as_str()))
            })
            .collect();
        let params = self.params();
        let now = now_micros();
        let mut rows = Vec::with_capacity(touched.len());
        for (learner, skill) in touched {
            let left: Vec<(Position, Observation)> = self
                .store
                .observations(learner, skill)?
                .into_iter()
                .filter(|(pos, _)| !removed.contains(pos.attempt_id.as_str()))
                .collect();
            let state = rebuild(params.for_skill(skill), left, now);
            rows.push((learner.to_string(), skill.to_string(), state));
        }
        let outcome = self.store.retract_attempts(ids, &attempts, &rows, now);
        // Under the locks still: the histories of these learners changed.
        self.histories.forget(learners.iter().map(String::as_str));
        outcome?;
        Ok((attempts.len(), learners))
    }

    /// The stored observations of a (learner, skill), kept in memory once
    /// read (`history.rs`). Caller holds the learner's lock.
    fn history(&self, learner: &str, skill: &str) -> Result<super::history::History> {
        if let Some(history) = self.histories.get(learner, skill) {
            return Ok(history);
        }
        let history = Arc::new(self.store.observations(learner, skill)?);
        self.histories.fill(learner, skill, history.clone());
        Ok(history)
    }

    /// Checks, under their locks, that learners seen before the locks were
    /// taken were not erased meanwhile (an erasure holds the same locks and
    /// clears the remembered learners before it lets them go, so one still
    /// remembered is still stored).
    pub(crate) fn still_exist(&self, learners: &BTreeSet<String>) -> Result<()> {
        for learner in learners {
            if !self.known_learners.contains(learner) && !self.store.has_learner(learner)? {
                return Err(Error::not_found("learner", learner.clone()));
            }
        }
        Ok(())
    }

    /// Whether a learner exists, remembered once seen (only an erasure
    /// deletes a learner, and it clears this memory).
    pub(crate) fn learner_exists(&self, id: &str) -> Result<bool> {
        if self.known_learners.contains(id) {
            return Ok(true);
        }
        let mark = self.known_learners.mark();
        let exists = self.store.has_learner(id)?;
        if exists {
            self.known_learners.insert_since(id, mark);
        }
        Ok(exists)
    }

    /// A learner's mastery: the skills asked for, or else every skill they
    /// have attempts on plus the skills of their programs.
    pub fn mastery(&self, learner_id: &str, skills: &[String]) -> Result<Vec<SkillMastery>> {
        self.learner(learner_id)?;
        let mut stored = self.store.learner_mastery(learner_id)?;
        let wanted: BTreeSet<String> = if skills.is_empty() {
            let mut wanted: BTreeSet<String> = stored.keys().cloned().collect();
            let (enrolments, _) = self
                .store
                .learner_enrolments(learner_id, None, usize::MAX)?;
            for enrolment in enrolments {
                if let Some(program) = self.store.program(&enrolment.program_id)? {
                    wanted.extend(program.skill_ids);
                }
            }
            wanted
        } else {
            // `skills` is the edge's sorted copy: the edge adds the
            // position in the request (`convert::locate_id`).
            for skill in skills {
                if !self.store.has_skill(skill)? {
                    return Err(Error::not_found_at("skill_ids", "skill", skill.clone()));
                }
            }
            skills.iter().cloned().collect()
        };
        Ok(wanted
            .into_iter()
            .map(|skill| {
                let state = stored.remove(&skill);
                self.report(learner_id, &skill, state.as_ref())
            })
            .collect())
    }

    /// Turns a stored state (or its absence: the prior) into a report.
    fn report(&self, learner: &str, skill: &str, state: Option<&MasteryState>) -> SkillMastery {
        let p_mastered = match state {
            Some(state) => state.p_mastered(),
            None => self.params().for_skill(skill).prior,
        };
        SkillMastery {
            learner_id: learner.to_string(),
            skill_id: skill.to_string(),
            p_mastered,
            attempt_count: state.map_or(0, |s| s.attempt_count),
            mastered: p_mastered >= self.mastery_threshold(),
            updated_at: state.map(|s| s.updated_at),
        }
    }
}

/// New attempts of a batch told from resent ones (`split_fresh`).
struct Split<'a> {
    /// New attempts by id, each once.
    fresh: BTreeMap<&'a str, &'a Attempt>,
    /// Resends to log as stored rather than as sent, by batch position.
    as_stored: BTreeMap<usize, Attempt>,
    /// Attempts of the batch already stored (or retracted, or repeated).
    duplicates: usize,
    /// Every (learner, skill) the batch touched, resends included.
    touched: BTreeSet<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mastery::test_attempt as attempt;
    use crate::engine::testing::{answers_of_l_on_s, engine, skill_s_and_learner_l};
    use crate::store::Store;

    /// A retraction naming an attempt twice removes it once, reports one
    /// removal and leaves the learner's other attempts findable.
    #[tokio::test]
    async fn an_attempt_retracted_twice_in_one_call_is_removed_once() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        let batch = vec![attempt("a1", 1, true), attempt("a2", 2, false)];
        engine.record_attempts(batch.clone()).await.unwrap();
        let removed = engine
            .retract_attempts(&["a1".to_string(), "a1".to_string()])
            .await
            .unwrap();
        assert_eq!(removed, 1);
        assert_eq!(engine.store.attempt("a1").unwrap(), None);
        assert_eq!(
            engine.store.attempt("a2").unwrap().as_ref(),
            Some(&batch[1])
        );
        assert_eq!(answers_of_l_on_s(&engine), 1);
    }

    /// Rows reach sled after the reply, by plain inserts: a crash may leave
    /// sled with part of a logged batch (here the attempt row of `a2`
    /// without its observation and mastery, which made the old replay see
    /// a duplicate and skip it). The replay must restore the whole batch.
    #[tokio::test]
    async fn the_log_replay_repairs_a_partly_applied_batch() {
        let dir = tempfile::tempdir().unwrap();
        let batch = vec![attempt("a1", 1, false), attempt("a2", 2, true)];
        {
            let engine = engine(dir.path());
            skill_s_and_learner_l(&engine, vec![]).await;
        }
        {
            // The state a crash in the middle of applying leaves: the batch
            // logged, one attempt in sled, no mastery.
            let store = Store::open(dir.path()).unwrap();
            store
                .commit_attempts(vec![batch[1].clone()], &[], None)
                .unwrap();
            store.flush().unwrap();
        }
        {
            let (wal, _) = crate::store::wal::Wal::open(&dir.path().join("wal")).unwrap();
            wal.append(&WalRecord::Attempts(batch.clone()))
                .await
                .unwrap();
        }
        let engine = engine(dir.path());
        let expected = engine
            .params()
            .for_skill("s")
            .replay(batch.iter().map(Attempt::observation));
        let state = engine.store.mastery("l", "s").unwrap().unwrap();
        assert_eq!(state.attempt_count, 2);
        assert!((state.p_mastered() - expected.p_known()).abs() < 1e-12);
        assert_eq!(engine.store.observations("l", "s").unwrap().len(), 2);
        assert_eq!(
            engine.store.attempt("a1").unwrap().as_ref(),
            Some(&batch[0])
        );
        // Sent again, the batch is all duplicates and changes nothing.
        let again = engine.record_attempts(batch).await.unwrap();
        assert_eq!((again.recorded, again.duplicates), (0, 2));
        assert_eq!(answers_of_l_on_s(&engine), 2);
    }

    /// A stop right after a batch leaves it in the log although sled may
    /// hold it already; its replay at start must not date the mastery it
    /// did not change to the restart (`updated_at` is when p changed).
    #[tokio::test]
    async fn the_log_replay_keeps_the_time_of_states_it_does_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let batch = vec![attempt("a1", 1, true), attempt("a2", 2, false)];
        let before = {
            let engine = engine(dir.path());
            skill_s_and_learner_l(&engine, vec![]).await;
            engine.record_attempts(batch.clone()).await.unwrap();
            engine.store.flush().unwrap(); // sled has the batch
            engine.store.mastery("l", "s").unwrap().unwrap()
        };
        {
            let (wal, _) = crate::store::wal::Wal::open(&dir.path().join("wal")).unwrap();
            wal.append(&WalRecord::Attempts(batch.clone()))
                .await
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let restarted = engine(dir.path());
        assert_eq!(restarted.store.mastery("l", "s").unwrap().unwrap(), before);
        // A state the replay does change gets a new time.
        drop(restarted);
        {
            let (wal, _) = crate::store::wal::Wal::open(&dir.path().join("wal")).unwrap();
            wal.append(&WalRecord::Attempts(vec![attempt("a3", 3, true)]))
                .await
                .unwrap();
        }
        let after = engine(dir.path()).store.mastery("l", "s").unwrap().unwrap();
        assert_eq!(after.attempt_count, 3);
        assert!(after.updated_at > before.updated_at);
    }

    /// An attempt that names no skills takes its item's. Resent unchanged
    /// after the item was mapped to other skills, it is the same attempt:
    /// a duplicate, reported with the skills it was stored with, and no
    /// other skill moves.
    #[tokio::test]
    async fn a_resend_after_the_item_moved_to_other_skills_is_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        engine
            .upsert_skill(crate::domain::catalog::Skill {
                id: "t".into(),
                name: "T".into(),
                prerequisite_ids: vec![],
            })
            .await
            .unwrap();
        let item = |skill: &str| crate::domain::catalog::Item {
            external_ids: Vec::new(),
            pass_mark: None,
            id: "i".into(),
            skill_ids: vec![skill.into()],
            title: String::new(),
        };
        engine.upsert_items(vec![item("s")]).await.unwrap();
        let mut sent = attempt("a1", 1, true);
        sent.skill_ids.clear();
        let first = engine.record_attempts(vec![sent.clone()]).await.unwrap();
        assert_eq!(
            (first.recorded, first.mastery[0].skill_id.as_str()),
            (1, "s")
        );

        engine.upsert_items(vec![item("t")]).await.unwrap();
        let again = engine.record_attempts(vec![sent.clone()]).await.unwrap();
        assert_eq!((again.recorded, again.duplicates), (0, 1));
        assert_eq!(again.mastery, first.mastery);
        assert!(engine.store.mastery("l", "t").unwrap().is_none());

        // Content that differs is still a conflict.
        let mut changed = sent.clone();
        changed.correct = false;
        let err = engine.record_attempts(vec![changed]).await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");

        // Within one batch alike: a copy that names no skills repeats the
        // one before it that did.
        let mut named = attempt("a2", 2, false);
        let mut bare = named.clone();
        bare.skill_ids.clear();
        named.skill_ids = vec!["s".into()];
        let both = engine.record_attempts(vec![named, bare]).await.unwrap();
        assert_eq!((both.recorded, both.duplicates), (1, 1));
        assert_eq!(both.mastery.len(), 1, "{:?}", both.mastery);
        assert!(engine.store.mastery("l", "t").unwrap().is_none());

        // A stop before the next checkpoint leaves the resends in the log;
        // their replay must find the attempts as kept (it compares exactly).
        drop(engine);
        let restarted = super::super::testing::engine(dir.path());
        assert_eq!(
            restarted.store.attempt("a1").unwrap().unwrap().skill_ids,
            ["s"]
        );
        assert!(restarted.store.mastery("l", "t").unwrap().is_none());
        assert_eq!(answers_of_l_on_s(&restarted), 2);
    }

    /// Concurrent callers sending attempts of a few learners in random
    /// order, batch sizes and resends: every (learner, skill) ends as the
    /// time-ordered replay of its distinct attempts, read through the
    /// caches (`store.mastery`) or the store's rows, and again after a
    /// restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_shuffled_ingestion_equals_the_time_ordered_replay() {
        use crate::domain::catalog::Skill;
        use crate::engine::testing::learner;
        use parking_lot::Mutex;
        use std::collections::VecDeque;

        let dir = tempfile::tempdir().unwrap();
        let skills: Vec<String> = (0..3).map(|k| format!("s{k}")).collect();
        let learners: Vec<String> = (0..3).map(|k| format!("l{k}")).collect();
        {
            let engine = engine(dir.path());
            let catalog = skills
                .iter()
                .map(|id| Skill {
                    id: id.clone(),
                    name: id.clone(),
                    prerequisite_ids: vec![],
                })
                .collect();
            engine.import_catalog(catalog, vec![]).await.unwrap();
            for id in &learners {
                engine.upsert_learner(learner(id)).await.unwrap();
            }
        }
        // A fixed pseudo-random sequence (xorshift), so a failure replays.
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let sent: Vec<Attempt> = (0..300)
            .map(|k| {
                let first = next(3) as usize;
                let mut skill_ids = vec![skills[first].clone()];
                if next(3) == 0 {
                    skill_ids.push(skills[(first + 1) % 3].clone());
                    skill_ids.sort();
                }
                Attempt {
                    attempt_id: format!("a{k}"),
                    learner_id: learners[next(3) as usize].clone(),
                    item_id: "i".into(),
                    skill_ids,
                    correct: next(3) != 0,
                    score: None,
                    occurred_at: next(1000) as i64,
                    time_spent_ms: 0,
                }
            })
            .collect();
        let mut batches: VecDeque<Vec<Attempt>> = VecDeque::new();
        let mut k = 0;
        while k < sent.len() {
            let size = 1 + next(7) as usize;
            let mut batch: Vec<Attempt> = sent[k..(k + size).min(sent.len())].to_vec();
            if k > 0 && next(4) == 0 {
                batch.push(sent[next(k as u64) as usize].clone()); // a resend
            }
            batches.push_back(batch);
            k += size;
        }
        let batches = Arc::new(Mutex::new(batches));
        let engine = Arc::new(engine(dir.path()));
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (engine, batches) = (engine.clone(), batches.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(batch) = batches.lock().pop_front() else {
                            break;
                        };
                        engine.record_attempts(batch).await.unwrap();
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }

        let check = |engine: &Engine, when: &str| {
            let params = engine.params();
            for l in &learners {
                let rows = engine.mastery(l, &skills).unwrap();
                for (skill, row) in skills.iter().zip(&rows) {
                    let history: Vec<_> = sent
                        .iter()
                        .filter(|a| &a.learner_id == l && a.skill_ids.contains(skill))
                        .map(|a| (a.position(), a.observation()))
                        .collect();
                    let expected = rebuild(params.for_skill(skill), history, 0).unwrap();
                    let cached = engine.store.mastery(l, skill).unwrap().unwrap();
                    for (got, count, how) in [
                        (row.p_mastered, row.attempt_count, "rows"),
                        (cached.p_mastered(), cached.attempt_count, "cache"),
                    ] {
                        assert_eq!(count, expected.attempt_count, "{when} {how} {l} {skill}");
                        assert!(
                            (got - expected.p_mastered()).abs() < 1e-12,
                            "{when} {how} {l} {skill}: {got} != {}",
                            expected.p_mastered()
                        );
                    }
                }
            }
        };
        check(&engine, "live");
        drop(engine);
        check(
            &crate::engine::testing::engine(dir.path()),
            "after a restart",
        );
    }

    /// Late attempts replay from a history kept in memory once read; it
    /// must follow every later write: in-order attempts, resends, a
    /// retraction, an erasure.
    #[tokio::test]
    async fn late_attempts_see_every_write_of_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        let mut sent: Vec<Attempt> = Vec::new();
        let expect = |sent: &[Attempt]| {
            let mut seq: Vec<_> = sent
                .iter()
                .map(|a| (a.position(), a.observation()))
                .collect();
            seq.sort_by(|a, b| a.0.cmp(&b.0));
            let params = engine.params();
            let state = rebuild(params.for_skill("s"), seq, 0).unwrap();
            (state.p_mastered(), state.attempt_count)
        };
        let check = |engine: &Engine, sent: &[Attempt], step: &str| {
            let got = engine.mastery("l", &["s".to_string()]).unwrap();
            let (p, count) = expect(sent);
            assert_eq!(got[0].attempt_count, count, "{step}");
            assert!((got[0].p_mastered - p).abs() < 1e-12, "{step}");
        };
        async fn send(engine: &Engine, sent: &mut Vec<Attempt>, batch: Vec<Attempt>) {
            for a in &batch {
                if !sent.contains(a) {
                    sent.push(a.clone());
                }
            }
            engine.record_attempts(batch).await.unwrap();
        }
        for (id, t, ok) in [("a10", 10, true), ("a20", 20, false), ("a30", 30, true)] {
            send(&engine, &mut sent, vec![attempt(id, t, ok)]).await;
        }
        // Late: fills the history.
        send(&engine, &mut sent, vec![attempt("a15", 15, false)]).await;
        check(&engine, &sent, "first late attempt");
        assert!(engine.histories.get("l", "s").is_some(), "history kept");
        // In order, then late again, then a resend: the kept history follows.
        send(&engine, &mut sent, vec![attempt("a40", 40, true)]).await;
        let late_and_resent = vec![attempt("a05", 5, true), attempt("a40", 40, true)];
        send(&engine, &mut sent, late_and_resent).await;
        check(&engine, &sent, "in order, late, resend");
        assert_eq!(engine.histories.get("l", "s").unwrap().len(), 6);
        // A retraction forgets it; the next late attempt reads the store.
        engine.retract_attempts(&["a20".to_string()]).await.unwrap();
        sent.retain(|a| a.attempt_id != "a20");
        assert!(engine.histories.get("l", "s").is_none(), "forgotten");
        // In order: folds into the state the retraction left, not into
        // the one ingestion kept before it (`store/state_cache.rs`).
        send(&engine, &mut sent, vec![attempt("a50", 50, true)]).await;
        check(&engine, &sent, "in order after a retraction");
        send(&engine, &mut sent, vec![attempt("a25", 25, false)]).await;
        check(&engine, &sent, "late after a retraction");
        // An erasure forgets it too; created again, the learner starts
        // from the prior.
        engine.erase_learner("l").unwrap();
        assert!(engine.histories.get("l", "s").is_none(), "erased");
        engine
            .upsert_learner(crate::engine::testing::learner("l"))
            .await
            .unwrap();
        sent.clear();
        send(&engine, &mut sent, vec![attempt("a60", 60, true)]).await;
        check(&engine, &sent, "created again after an erasure");
    }
}
