//! Attempts, their observation index and mastery in the store: the
//! ingestion path (through the write-behind rows and the write-ahead log)
//! and its readers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

impl Store {
    // ---- attempts and mastery -----------------------------------------

    /// One stored attempt.
    pub fn attempt(&self, id: &str) -> Result<Option<Attempt>> {
        match self.behind.attempt(id) {
            Some(attempt) => Ok(Some(attempt)),
            None => self.attempts.get(id.as_bytes()),
        }
    }

    /// Applies every waiting ingestion row to sled: call it before reading
    /// the `attempts`, `observations` or `mastery` trees directly.
    pub(crate) fn settle(&self) -> Result<()> {
        self.checkpoints.settle()
    }

    /// Every stored observation of one (learner, skill), in time order.
    pub fn observations(&self, learner: &str, skill: &str) -> Result<Vec<(Position, Observation)>> {
        let prefix = keys::prefix(&[learner, skill]);
        let waiting = self.behind.observations_under(&prefix);
        let mut rows: BTreeMap<Vec<u8>, StoredObservation> =
            self.observations.scan(&prefix)?.into_iter().collect();
        rows.extend(waiting);
        rows.into_iter()
            .map(|(key, stored)| {
                let rest = &key[prefix.len()..];
                if rest.len() < 8 {
                    return Err(Error::Corrupt {
                        tree: "observations",
                        key: keys::display(&key),
                        reason: "key too short".into(),
                    });
                }
                let (time, id) = rest.split_at(8);
                let occurred_at =
                    (u64::from_be_bytes(time.try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
                let position = Position {
                    occurred_at,
                    attempt_id: String::from_utf8_lossy(id).into_owned(),
                };
                let obs = Observation {
                    correct: stored.correct,
                    score: stored.score,
                };
                Ok((position, obs))
            })
            .collect()
    }

    /// Visits every stored observation in (learner, skill, time, attempt
    /// id) order, one sequential scan of the `observations` index with
    /// nothing kept: the training data of a fit, read without holding
    /// every attempt in memory. `visit(learner, skill, occurred_at,
    /// attempt id, observation)`.
    pub fn for_each_observation(
        &self,
        mut visit: impl FnMut(&str, &str, i64, &str, Observation) -> Result<()>,
    ) -> Result<()> {
        self.settle()?;
        for entry in self.observations.tree.iter() {
            let (key, bytes) = entry?;
            let corrupt = |reason: &str| Error::Corrupt {
                tree: "observations",
                key: keys::display(&key),
                reason: reason.into(),
            };
            let stored: StoredObservation = codec::decode(self.observations.name, &key, &bytes)?;
            // Ids hold no NUL byte: the first two separate learner and
            // skill; the time after them may hold any byte.
            let mut parts = key.splitn(3, |b| *b == keys::SEP);
            let (Some(learner), Some(skill), Some(rest)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("key has fewer than three parts"));
            };
            if rest.len() < 8 {
                return Err(corrupt("key too short"));
            }
            let (time, id) = rest.split_at(8);
            let occurred_at =
                (u64::from_be_bytes(time.try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
            let text = |b| std::str::from_utf8(b).map_err(|_| corrupt("id is not UTF-8"));
            let observation = Observation {
                correct: stored.correct,
                score: stored.score,
            };
            visit(
                text(learner)?,
                text(skill)?,
                occurred_at,
                text(id)?,
                observation,
            )?;
        }
        Ok(())
    }

    /// The stored mastery of one (learner, skill).
    pub fn mastery(&self, learner: &str, skill: &str) -> Result<Option<MasteryState>> {
        if let Some(state) = self.state_cache.get(learner, skill) {
            return Ok(Some(state));
        }
        let key = keys::compose(&[learner, skill]);
        match self.behind.mastery(&key) {
            Some(state) => Ok(Some(state)),
            None => self.mastery.get(&key),
        }
    }

    /// Whether any attempt is stored.
    pub fn has_attempts(&self) -> Result<bool> {
        self.settle()?;
        Ok(!self.attempts.tree.is_empty())
    }

    /// Every stored attempt, in attempt id order (the training data of a fit).
    pub fn all_attempts(&self) -> Result<Vec<Attempt>> {
        self.settle()?;
        Ok(self
            .attempts
            .scan(b"")?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// Every (learner, skill) that has a mastery state.
    pub fn mastery_keys(&self) -> Result<Vec<(String, String)>> {
        self.settle()?;
        self.mastery
            .tree
            .iter()
            .keys()
            .map(|key| {
                let key = key?;
                let text = String::from_utf8_lossy(&key);
                let (learner, skill) = text.split_once('\0').ok_or_else(|| Error::Corrupt {
                    tree: "mastery",
                    key: keys::display(&key),
                    reason: "key has no separator".into(),
                })?;
                Ok((learner.to_string(), skill.to_string()))
            })
            .collect()
    }

    /// Replaces mastery states (a recomputation with new parameters).
    pub fn put_mastery(&self, rows: &[(String, String, MasteryState)]) -> Result<()> {
        let _gate = self.write_gate();
        // Waiting rows first, so that none of them shadows a new state.
        self.settle()?;
        let mut batch = sled::Batch::default();
        for (learner, skill, state) in rows {
            batch.insert(keys::compose(&[learner, skill]), codec::encode(state));
        }
        self.mastery.tree.apply_batch(batch)?;
        self.mastery_written(rows.iter().map(|(learner, _, _)| learner.as_str()));
        Ok(())
    }

    /// P(mastered) per skill id of a learner (skills without attempts are
    /// absent), from memory once read: the hot path of recommendations.
    pub fn learner_p_mastered(&self, learner: &str) -> Result<mastery_cache::MasteryVector> {
        if let Some(vector) = self.mastery_cache.get(learner) {
            return Ok(vector);
        }
        let generation = self.mastery_cache.generation();
        let vector: BTreeMap<String, f64> = self
            .learner_mastery(learner)?
            .into_iter()
            .map(|(skill, state)| (skill, state.p_mastered()))
            .collect();
        let vector = Arc::new(vector);
        self.mastery_cache.fill(learner, vector.clone(), generation);
        Ok(vector)
    }

    /// Every stored mastery state of a learner, by skill id.
    pub fn learner_mastery(&self, learner: &str) -> Result<BTreeMap<String, MasteryState>> {
        let prefix = keys::prefix(&[learner]);
        let waiting = self.behind.mastery_under(&prefix);
        let mut rows: BTreeMap<Vec<u8>, MasteryState> =
            self.mastery.scan(&prefix)?.into_iter().collect();
        rows.extend(waiting);
        Ok(rows
            .into_iter()
            .map(|(key, state)| {
                let skill = String::from_utf8_lossy(keys::last_part(&key)).into_owned();
                (skill, state)
            })
            .collect())
    }

    /// Stores new attempts, their index entries and the mastery states they
    /// produced (in memory at once, in sled within [`APPLY_EVERY`], see
    /// `write_behind.rs`) and writes `logged` to the write-ahead log.
    /// Returns the log ticket to wait for ([`Store::logged`]) before
    /// replying; `None` when nothing needed logging.
    pub fn commit_attempts(
        &self,
        attempts: Vec<Attempt>,
        mastery: &[(String, String, MasteryState)],
        logged: Option<&WalRecord>,
    ) -> Result<Option<u64>> {
        let _gate = self.write_gate();
        if self.behind.crowded() {
            // Backpressure: sled's applies fall behind ingestion (a busy
            // disk, or CPU taken by others), so this writer applies the
            // waiting rows itself before adding its own, rather than let
            // them grow in memory. Only if that keeps failing does the
            // bound refuse batches (`write_behind.rs`).
            if let Err(err) = self.checkpoints.settle() {
                tracing::warn!(error = %err, "applying waiting rows before a batch failed");
            }
        }
        let mut observation_rows = Vec::new();
        for attempt in &attempts {
            let stored = StoredObservation {
                correct: attempt.correct,
                score: attempt.score,
            };
            for skill in &attempt.skill_ids {
                let key = keys::observation(
                    &attempt.learner_id,
                    skill,
                    attempt.occurred_at,
                    &attempt.attempt_id,
                );
                observation_rows.push((key, stored));
            }
        }
        let mastery_rows = mastery
            .iter()
            .map(|(learner, skill, state)| (keys::compose(&[learner, skill]), state.clone()))
            .collect();
        let ticket = self
            .behind
            .put_logged(attempts, observation_rows, mastery_rows, || match logged {
                Some(record) => self.checkpoints.wal.write(record),
                None => Ok(None),
            })?;
        self.mastery_cache
            .evict(mastery.iter().map(|(learner, _, _)| learner.as_str()));
        self.state_cache.put(mastery);
        Ok(ticket)
    }

    /// Waits until the log record of `ticket` is on disk.
    pub async fn logged(&self, ticket: u64) -> Result<()> {
        self.checkpoints.wal.wait(ticket).await
    }

    /// Forgets the cached mastery of `learners` after a writer other than
    /// ingestion changed, or may have changed, their `mastery` rows
    /// (recomputation, retraction, erasure).
    pub(crate) fn mastery_written<'a>(&self, learners: impl IntoIterator<Item = &'a str> + Clone) {
        self.mastery_cache.evict(learners.clone());
        self.state_cache.evict(learners);
    }
}
