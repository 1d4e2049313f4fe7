//! Attempts and mastery in the store: the ingestion path (through the
//! write-behind rows and the write-ahead log) and its readers, over the
//! compact trees of `attempt_trees.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::*;

/// One stored answer of a learner on a skill, with its item.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Where it sits in the learner's timeline.
    pub at: Position,
    /// Whether right (and its partial credit).
    pub observation: Observation,
    /// The item answered.
    pub item_id: Arc<str>,
}

impl Store {
    // ---- attempts and mastery -----------------------------------------

    /// One stored attempt.
    pub fn attempt(&self, id: &str) -> Result<Option<Attempt>> {
        match self.behind.attempt(id) {
            Some(attempt) => Ok(Some(attempt)),
            None => self.ingested.find(id),
        }
    }

    /// About how many attempts are stored: the attempt index's entries
    /// (an attempt whose entry a crash left twice counts twice).
    pub fn attempt_count(&self) -> u64 {
        self.ingested.index.len()
    }

    /// Applies every waiting ingestion row to sled: call it before reading
    /// the ingestion trees directly.
    pub(crate) fn settle(&self) -> Result<()> {
        self.checkpoints.settle()
    }

    /// Settles, then runs `write` with no apply of waiting rows in between:
    /// for writes that rewrite blocks or mastery records.
    pub(crate) fn exclusive<T>(&self, write: impl FnOnce() -> Result<T>) -> Result<T> {
        self.behind.exclusive(|| self.checkpoints.wal.sync(), write)
    }

    /// Every stored observation of one (learner, skill), in time order.
    pub fn observations(&self, learner: &str, skill: &str) -> Result<Vec<(Position, Observation)>> {
        Ok(self.observations_of_skills(learner, &[skill])?.remove(0))
    }

    /// [`Store::observations`] of each of `skills`, in the order given: one
    /// read of the learner's attempts for all of them.
    pub fn observations_of_skills(
        &self,
        learner: &str,
        skills: &[&str],
    ) -> Result<Vec<Vec<(Position, Observation)>>> {
        let waiting = self.behind.observations_of(learner, skills);
        let stored = self.ingested.observations_of_skills(learner, skills)?;
        Ok(stored
            .into_iter()
            .zip(waiting)
            .map(|(stored, waiting)| {
                let mut rows: BTreeMap<Position, Observation> = stored.into_iter().collect();
                rows.extend(waiting);
                rows.into_iter().collect()
            })
            .collect())
    }

    /// Every stored observation of a learner by skill, each in time order:
    /// one read of the learner's attempts for all their skills.
    pub fn learner_observations(
        &self,
        learner: &str,
    ) -> Result<BTreeMap<String, Vec<(Position, Observation)>>> {
        Ok(self
            .learner_rows(learner, false)?
            .into_iter()
            .map(|(skill, rows)| {
                let rows = rows.into_iter().map(|a| (a.at, a.observation)).collect();
                (skill, rows)
            })
            .collect())
    }

    /// [`Store::learner_observations`] with the item of each answer: what
    /// the remediation policy reads (which items a check already asked).
    pub fn learner_answers(&self, learner: &str) -> Result<BTreeMap<String, Vec<Answer>>> {
        self.learner_rows(learner, true)
    }

    /// The rows of both readers above; without `items` every row names the
    /// empty item (no look-up per row for readers that drop it).
    fn learner_rows(&self, learner: &str, items: bool) -> Result<BTreeMap<String, Vec<Answer>>> {
        let no_item: Arc<str> = Arc::from("");
        let waiting = self.behind.attempts_of(learner);
        // Stored attempts as the blocks hold them, by interned skill number:
        // each skill's name is looked up once, the item's is shared with the
        // interner, and rows are sorted once per skill (blocks are nearly in
        // time order already).
        let mut by_number: HashMap<u32, Vec<Answer>> = HashMap::new();
        for mut p in self.ingested.learner_packed(learner)? {
            let skills = std::mem::take(&mut p.skills);
            let item_id = if items {
                self.ingested
                    .name_in(learner, interner::Kind::Item, p.item)?
            } else {
                no_item.clone()
            };
            let (at, observation) = attempt_trees::observation(p);
            let row = Answer {
                at,
                observation,
                item_id,
            };
            if let Some((last, others)) = skills.split_last() {
                for n in others {
                    by_number.entry(*n).or_default().push(row.clone());
                }
                by_number.entry(*last).or_default().push(row);
            }
        }
        let mut by_skill: BTreeMap<String, Vec<Answer>> = BTreeMap::new();
        for (n, rows) in by_number {
            let skill = self.ingested.name_in(learner, interner::Kind::Skill, n)?;
            by_skill.entry(skill.to_string()).or_default().extend(rows);
        }
        for attempt in waiting {
            let item_id: Arc<str> = if items {
                Arc::from(attempt.item_id.as_str())
            } else {
                no_item.clone()
            };
            for skill in &attempt.skill_ids {
                by_skill.entry(skill.clone()).or_default().push(Answer {
                    at: attempt.position(),
                    observation: attempt.observation(),
                    item_id: item_id.clone(),
                });
            }
        }
        for rows in by_skill.values_mut() {
            // Stable: an attempt both waiting and already stored (being
            // applied) keeps one row, the same either way.
            rows.sort_by(|a, b| a.at.cmp(&b.at));
            rows.dedup_by(|later, earlier| later.at == earlier.at);
        }
        Ok(by_skill)
    }

    /// Visits every stored observation in (learner, skill, time, attempt
    /// id) order, one learner in memory at a time: the training data of a
    /// fit, read without holding every attempt in memory. `visit(learner,
    /// skill, occurred_at, attempt id, item id, observation)`.
    pub fn for_each_observation(
        &self,
        mut visit: impl FnMut(&str, &str, i64, &str, &str, Observation) -> Result<()>,
    ) -> Result<()> {
        self.settle()?;
        // Blocks as they are (ids interned): each number's name is looked
        // up once per scan, instead of three strings allocated per attempt
        // or a lookup in the shared interner per row.
        let mut skills = NameCache::new(interner::Kind::Skill);
        let mut items = NameCache::new(interner::Kind::Item);
        self.ingested.for_each_learner_packed(|learner, packed| {
            for p in &packed {
                for n in &p.skills {
                    skills.fill(&self.ingested, learner, *n)?;
                }
                items.fill(&self.ingested, learner, p.item)?;
            }
            let mut rows: Vec<(&str, &compact::Packed)> = Vec::with_capacity(packed.len());
            for p in &packed {
                for n in &p.skills {
                    rows.push((skills.get(*n), p));
                }
            }
            let order = |(s1, a1): &(&str, &compact::Packed),
                         (s2, a2): &(&str, &compact::Packed)| {
                (s1, a1.occurred_at, &a1.attempt_id).cmp(&(s2, a2.occurred_at, &a2.attempt_id))
            };
            if !rows.is_sorted_by(|a, b| order(a, b).is_le()) {
                rows.sort_by(order);
            }
            rows.dedup_by(|(s1, a1), (s2, a2)| s1 == s2 && a1.attempt_id == a2.attempt_id);
            for (skill, p) in rows {
                visit(
                    learner,
                    skill,
                    p.occurred_at,
                    &p.attempt_id,
                    items.get(p.item),
                    Observation {
                        correct: p.correct,
                        score: p.score,
                    },
                )?;
            }
            Ok(())
        })
    }

    /// The stored mastery of one (learner, skill).
    pub fn mastery(&self, learner: &str, skill: &str) -> Result<Option<MasteryState>> {
        if let Some(state) = self.state_cache.get(learner, skill) {
            return Ok(Some(state));
        }
        match self.behind.mastery(learner, skill) {
            Some(state) => Ok(Some(state)),
            None => self.ingested.state(learner, skill),
        }
    }

    /// Whether any attempt is stored.
    pub fn has_attempts(&self) -> Result<bool> {
        self.settle()?;
        Ok(!self.ingested.blocks.is_empty())
    }

    /// Every stored attempt, in attempt id order.
    pub fn all_attempts(&self) -> Result<Vec<Attempt>> {
        self.settle()?;
        let mut out = Vec::new();
        self.ingested.for_each_learner(|_, attempts| {
            out.extend(attempts);
            Ok(())
        })?;
        out.sort_by(|a, b| a.attempt_id.cmp(&b.attempt_id));
        Ok(out)
    }

    /// Every learner that has a mastery state, in id order (the keys of
    /// `learner_mastery`, records not decoded).
    pub fn mastery_learners(&self) -> Result<Vec<String>> {
        self.settle()?;
        self.ingested
            .mastery
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// Replaces mastery states (a recomputation with new parameters).
    pub fn put_mastery(&self, rows: &[(String, String, MasteryState)]) -> Result<()> {
        let _gate = self.write_gate();
        // Waiting rows first, so that none of them shadows a new state, and
        // no apply rewrites these records meanwhile.
        self.exclusive(|| {
            self.ingested.put_states(
                rows.iter()
                    .map(|(learner, skill, state)| (learner.as_str(), skill.as_str(), Some(state))),
            )
        })?;
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
        let waiting = self.behind.mastery_of(learner);
        let mut rows = self.ingested.learner_states(learner)?;
        rows.extend(waiting);
        Ok(rows)
    }

    /// Stores new attempts and the mastery states they produced (in memory
    /// at once, in sled within [`APPLY_EVERY`], see `write_behind.rs`) and
    /// writes `logged` to the write-ahead log. Returns the log ticket to
    /// wait for ([`Store::logged`]) before replying; `None` when nothing
    /// needed logging. Without `logged` (the log's replay), attempts the
    /// store already holds are not stored again.
    pub fn commit_attempts(
        &self,
        mut attempts: Vec<Attempt>,
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
        if logged.is_none() {
            let mut fresh = Vec::with_capacity(attempts.len());
            for attempt in attempts {
                if self.attempt(&attempt.attempt_id)?.is_none() {
                    fresh.push(attempt);
                }
            }
            attempts = fresh;
        }
        // Numbers for new ids are in sled before any row using them.
        self.ingested.intern(&attempts)?;
        let mastery_rows = mastery
            .iter()
            .map(|(learner, skill, state)| ((learner.clone(), skill.clone()), state.clone()))
            .collect();
        let ticket = self
            .behind
            .put_logged(attempts, mastery_rows, || match logged {
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
    /// ingestion changed, or may have changed, their mastery records
    /// (recomputation, retraction, erasure).
    pub(crate) fn mastery_written<'a>(&self, learners: impl IntoIterator<Item = &'a str> + Clone) {
        self.mastery_cache.evict(learners.clone());
        self.state_cache.evict(learners);
    }
}

/// The names of one kind of interned number met in a scan, by number.
struct NameCache {
    kind: interner::Kind,
    names: Vec<Option<Arc<str>>>,
}

impl NameCache {
    fn new(kind: interner::Kind) -> Self {
        Self {
            kind,
            names: Vec::new(),
        }
    }

    /// Looks up `n`'s name if not yet known; an unknown number is damage
    /// in `learner`'s blocks. The name is looked up before the table
    /// grows: a damaged block's huge number is refused, not allocated for.
    fn fill(&mut self, trees: &AttemptTrees, learner: &str, n: u32) -> Result<()> {
        let i = n as usize;
        if self.names.get(i).is_some_and(Option::is_some) {
            return Ok(());
        }
        let name = trees.name_in(learner, self.kind, n)?;
        if self.names.len() <= i {
            self.names.resize(i + 1, None);
        }
        self.names[i] = Some(name);
        Ok(())
    }

    /// The name of `n`, filled before.
    fn get(&self, n: u32) -> &str {
        self.names[n as usize].as_deref().expect("filled before")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A damaged block naming a huge unknown number is reported as damage
    /// by a fit's scan, instead of sizing the name table after it.
    #[test]
    fn a_huge_unknown_number_in_a_block_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (item, skills) in [(0xFFFF_FFF0, vec![]), (0, vec![0xFFFF_FFF0])] {
            let block = compact::encode_block(&[compact::Packed {
                attempt_id: "att-1".into(),
                item,
                skills,
                correct: true,
                score: None,
                occurred_at: 1,
                time_spent_ms: 0,
            }]);
            store
                .ingested
                .blocks
                .insert(attempt_trees::block_key("l", 0), block)
                .unwrap();
            let err = store
                .for_each_observation(|_, _, _, _, _, _| Ok(()))
                .unwrap_err();
            assert!(
                matches!(&err, Error::Corrupt { tree, key, .. }
                    if *tree == attempt_trees::BLOCKS && key == "l"),
                "{err:?}"
            );
        }
    }
}
