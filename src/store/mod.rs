//! Storage: sled behind a small interface.
//!
//! Only this module knows sled and the key layout ([`keys`]). The engine asks
//! for domain objects and hands back domain objects; multi-tree writes that
//! must stay consistent happen in one sled transaction. Durability comes
//! two ways: high-rate ingestion (attempts, module activity) is logged to
//! the write-ahead log ([`wal`], [`Store::commit_attempts`], [`Store::log`])
//! and sled is checkpointed in the background, attempts reaching sled
//! through the write-behind rows ([`write_behind`]); low-rate writes
//! (catalog, learners...) wait for a sled flush ([`Store::durable`], group
//! commit, see [`durability`]).

pub mod alerts;
pub mod api_keys;
pub mod backup;
pub mod codec;
pub mod cohorts;
pub mod damage;
pub mod durability;
pub mod items;
pub mod keys;
pub mod mapping;
pub mod mastery_cache;
pub mod models;
pub mod pauses;
pub mod privacy;
pub mod private;
pub mod recommended;
pub mod state_cache;
pub mod table;
pub mod verify;
pub mod wal;
pub mod write_behind;
pub mod xapi;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::domain::activity::{ActivityKind, StoredActivity};
use crate::domain::bkt::Observation;
use crate::domain::catalog::{Module, Skill};
use crate::domain::learner::{Enrolment, Learner, Program};
use crate::domain::mastery::{Attempt, MasteryState, Position};
use crate::error::{Error, Result};
use durability::GroupCommit;
use table::Table;
use wal::{Wal, WalRecord};
use write_behind::WriteBehind;

/// How often sled is flushed in the background so that the write-ahead log
/// can be trimmed.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often waiting ingestion rows are applied to sled between
/// checkpoints: small, frequent applies spread sled's disk writes instead
/// of one burst per checkpoint that would delay the log's syncs.
pub const APPLY_EVERY: Duration = Duration::from_millis(100);

/// The stored form of one observation in the `observations` index: enough to
/// replay BKT without reading the attempt itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StoredObservation {
    /// Whether the answer was right.
    pub correct: bool,
    /// Optional partial credit.
    pub score: Option<f64>,
}

/// A page of results and the key to continue after, if more follow.
pub type Page<T> = (Vec<T>, Option<Vec<u8>>);

/// The whole persistent state of one deployment.
pub struct Store {
    /// The data folder (sled, write-ahead log, model files).
    dir: std::path::PathBuf,
    db: sled::Db,
    skills: Table<Skill>,
    modules: Table<Module>,
    learners: Table<Learner>,
    programs: Table<Program>,
    enrolments: Table<Enrolment>,
    program_members: Table<Enrolment>,
    attempts: Table<Attempt>,
    observations: Table<StoredObservation>,
    mastery: Table<MasteryState>,
    activities: Table<StoredActivity>,
    learner_activity: Table<StoredActivity>,
    commit: GroupCommit,
    checkpoints: Arc<Checkpoints>,
    /// Records found in the log at open, until the engine replays them.
    backlog: Mutex<Vec<WalRecord>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    /// Held shared by every write, exclusive by a snapshot (`backup.rs`).
    gate: std::sync::RwLock<()>,
    /// P(mastered) vectors read lately; every write of `mastery` evicts.
    mastery_cache: mastery_cache::MasteryCache,
    /// The last state ingestion wrote per (learner, skill); other writes
    /// of `mastery` evict.
    state_cache: state_cache::StateCache,
    /// Ingested rows not yet in sled (see `write_behind.rs`).
    behind: Arc<WriteBehind>,
}

/// What the background checkpointer shares with the store.
struct Checkpoints {
    /// The data folder (the `checkpoint` file).
    dir: std::path::PathBuf,
    /// The last checkpoint generation (see `damage.rs`).
    generation: AtomicU64,
    db: sled::Db,
    wal: Wal,
    behind: Arc<WriteBehind>,
    /// Log records already covered by a checkpoint.
    covered: AtomicU64,
    /// Serializes checkpoints (background thread, shutdown).
    running: Mutex<()>,
    stop: AtomicBool,
}

impl Checkpoints {
    /// Applies the waiting ingestion rows to sled, once the log holds them.
    fn settle(&self) -> Result<()> {
        self.behind.settle(|| self.wal.sync())
    }

    /// Rotates the log, applies the waiting rows to sled, flushes sled and
    /// drops the covered segments. Every record of a closed segment was
    /// applied (to memory) before it was logged, so the settle covers it.
    fn run(&self) -> Result<()> {
        let _guard = self.running.lock().expect("checkpoint lock");
        let appended = self.wal.appended();
        let keep_from = self.wal.rotate()?;
        self.settle()?;
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        damage::mark_in_sled(&self.db, generation)?;
        self.db.flush()?;
        damage::mark_in_file(&self.dir, generation)?;
        self.generation.store(generation, Ordering::SeqCst);
        self.wal.remove_before(keep_from)?;
        self.covered.store(appended, Ordering::SeqCst);
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking its format version.
    pub fn open(dir: &Path) -> Result<Self> {
        // 0700, refused if others can write it, umask 0077 for what sled
        // creates, leftovers of killed backups and fits removed.
        private::open_private(dir)?;
        // A panic or damage is reported naming the file; a sled that lost
        // flushed writes is refused (`damage.rs`).
        let db = damage::open_sled(dir, sled_config(dir))?;
        check_format(&db)?;
        let generation = damage::check_generation(dir, &db)?;
        let (wal, backlog) = Wal::open(&dir.join("wal"))?;
        let attempts = Table::open(&db, "attempts")?;
        let observations = Table::open(&db, "observations")?;
        let mastery = Table::open(&db, "mastery")?;
        let behind = Arc::new(WriteBehind::new(
            attempts.tree.clone(),
            observations.tree.clone(),
            mastery.tree.clone(),
        ));
        let checkpoints = Arc::new(Checkpoints {
            dir: dir.to_path_buf(),
            generation: AtomicU64::new(generation),
            db: db.clone(),
            wal,
            behind: behind.clone(),
            covered: AtomicU64::new(0),
            running: Mutex::new(()),
            stop: AtomicBool::new(false),
        });
        let background = checkpoints.clone();
        let checkpointer = std::thread::Builder::new()
            .name("spoc-checkpoint".into())
            .spawn(move || {
                let mut last_checkpoint = std::time::Instant::now();
                while !background.stop.load(Ordering::SeqCst) {
                    std::thread::park_timeout(APPLY_EVERY);
                    if background.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if last_checkpoint.elapsed() < CHECKPOINT_EVERY {
                        if let Err(err) = background.settle() {
                            tracing::error!(error = %err, "applying ingested rows failed");
                        }
                        continue;
                    }
                    last_checkpoint = std::time::Instant::now();
                    let pending =
                        background.wal.appended() > background.covered.load(Ordering::SeqCst);
                    if pending {
                        if let Err(err) = background.run() {
                            tracing::error!(error = %err, "checkpoint failed");
                        }
                    }
                }
            })
            .map_err(|e| Error::Storage(format!("cannot start checkpoint thread: {e}")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            checkpoints,
            backlog: Mutex::new(backlog),
            checkpointer: Some(checkpointer),
            skills: Table::open(&db, "skills")?,
            modules: Table::open(&db, "modules")?,
            learners: Table::open(&db, "learners")?,
            programs: Table::open(&db, "programs")?,
            enrolments: Table::open(&db, "enrolments")?,
            program_members: Table::open(&db, "program_members")?,
            attempts,
            observations,
            mastery,
            behind,
            activities: Table::open(&db, "activities")?,
            learner_activity: Table::open(&db, "learner_activity")?,
            commit: GroupCommit::start(db.clone()),
            gate: std::sync::RwLock::new(()),
            mastery_cache: mastery_cache::MasteryCache::default(),
            state_cache: state_cache::StateCache::default(),
            db,
        })
    }

    /// A typed view of the tree `name`, opened on demand: lets a feature keep
    /// its storage code in its own file (`impl Store` blocks next to this
    /// one) without widening this struct. Document every tree in `keys.rs`.
    #[allow(dead_code)] // first callers arrive with the cohort and alert stores
    pub(crate) fn table<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
    ) -> Result<Table<T>> {
        Table::open(&self.db, name)
    }

    /// Waits until every write made before this call is on disk.
    pub async fn durable(&self) -> Result<()> {
        self.commit.durable().await
    }

    /// Logs a batch of ingested records and waits until the log is on
    /// disk. Call it after the batch was applied to sled (see [`wal`]).
    pub async fn log(&self, record: &WalRecord) -> Result<()> {
        self.checkpoints.wal.append(record).await
    }

    /// The records the log held at open, for the engine to replay; empty
    /// afterwards.
    pub fn take_backlog(&self) -> Vec<WalRecord> {
        std::mem::take(&mut *self.backlog.lock().expect("backlog lock"))
    }

    /// Puts every sled write made so far on disk, blocking (one fsync):
    /// for rare writes that must be durable before anyone hears of them,
    /// off the async runtime. Frequent writers use [`Store::durable`].
    pub fn sync(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Flushes sled and trims the log; used after a replay and at shutdown.
    pub fn flush(&self) -> Result<()> {
        self.checkpoints.run()
    }

    // ---- catalog -------------------------------------------------------

    /// Every skill, keyed by id: the graph checks need the whole catalog.
    pub fn all_skills(&self) -> Result<BTreeMap<String, Skill>> {
        Ok(self
            .skills
            .scan(b"")?
            .into_iter()
            .map(|(_, skill)| (skill.id.clone(), skill))
            .collect())
    }

    /// One skill.
    pub fn skill(&self, id: &str) -> Result<Option<Skill>> {
        self.skills.get(id.as_bytes())
    }

    /// Whether a skill exists.
    pub fn has_skill(&self, id: &str) -> Result<bool> {
        self.skills.contains(id.as_bytes())
    }

    /// A page of skills in id order.
    pub fn list_skills(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Skill>> {
        page(&self.skills, b"", after, limit)
    }

    /// Every module.
    pub fn all_modules(&self) -> Result<Vec<Module>> {
        let mut modules: Vec<Module> = self
            .modules
            .scan(b"")?
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        self.fill_mapping(&mut modules)?;
        Ok(modules)
    }

    /// One module.
    pub fn module(&self, id: &str) -> Result<Option<Module>> {
        self.filled(self.modules.get(id.as_bytes())?)
    }

    /// A page of modules in id order.
    pub fn list_modules(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Module>> {
        let (mut modules, next) = page(&self.modules, b"", after, limit)?;
        self.fill_mapping(&mut modules)?;
        Ok((modules, next))
    }

    /// One object with its mapping fields filled in.
    fn filled<T: mapping::Mapped>(&self, object: Option<T>) -> Result<Option<T>> {
        let mut objects: Vec<T> = object.into_iter().collect();
        self.fill_mapping(&mut objects)?;
        Ok(objects.pop())
    }

    // ---- learners, programs, enrolments --------------------------------

    /// One learner.
    pub fn learner(&self, id: &str) -> Result<Option<Learner>> {
        self.learners.get(id.as_bytes())
    }

    /// Whether a learner exists.
    pub fn has_learner(&self, id: &str) -> Result<bool> {
        self.learners.contains(id.as_bytes())
    }

    /// Creates or replaces a learner.
    pub fn put_learner(&self, learner: &Learner) -> Result<()> {
        let _gate = self.write_gate();
        // An id erased earlier may be reused by a new learner, whose
        // writes the log must carry again.
        self.checkpoints.wal.remember_learner(&learner.id);
        self.learners.put(learner.id.as_bytes(), learner)
    }

    /// A page of learners in id order, optionally of one company.
    ///
    /// The company filter scans learners in id order; pages stay bounded by
    /// `limit` results but may read past non-matching learners.
    pub fn list_learners(
        &self,
        company: Option<&str>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Learner>> {
        let Some(company) = company else {
            return page(&self.learners, b"", after, limit);
        };
        let start = after.map(|a| {
            let mut s = a.to_vec();
            s.push(0);
            s
        });
        let mut out = Vec::new();
        let mut last_key = None;
        let range = match start {
            Some(start) => self.learners.tree.range(start..),
            None => self.learners.tree.range::<&[u8], _>(..),
        };
        for entry in range {
            let (key, bytes) = entry?;
            let learner: Learner = codec::decode(self.learners.name, &key, &bytes)?;
            if learner.company_id != company {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(key.to_vec());
            out.push(learner);
        }
        Ok((out, None))
    }

    /// One program.
    pub fn program(&self, id: &str) -> Result<Option<Program>> {
        self.filled(self.programs.get(id.as_bytes())?)
    }

    /// Creates or replaces a program with its mapping row, in one
    /// transaction.
    pub fn put_program(&self, program: &Program) -> Result<()> {
        use mapping::Mapped;
        let _gate = self.write_gate();
        let mappings = self.mapping_table()?;
        let row = program.mapping();
        (&self.programs.tree, &mappings.tree)
            .transaction(|(programs, mappings)| {
                programs.insert(program.id.as_bytes(), codec::encode(program))?;
                let key = mapping::mapping_key(Program::KIND, &program.id);
                if row.is_empty() {
                    mappings.remove(key)?;
                } else {
                    mappings.insert(key, codec::encode(&row))?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Every program id (the xAPI mapping resolves context activities
    /// against them).
    pub fn program_ids(&self) -> Result<Vec<String>> {
        self.programs
            .tree
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// A page of programs in id order.
    pub fn list_programs(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Program>> {
        let (mut programs, next) = page(&self.programs, b"", after, limit)?;
        self.fill_mapping(&mut programs)?;
        Ok((programs, next))
    }

    /// The enrolment of a learner in a program, if any.
    pub fn enrolment(&self, learner: &str, program: &str) -> Result<Option<Enrolment>> {
        self.enrolments.get(&keys::compose(&[learner, program]))
    }

    /// Records an enrolment and its program-side index entry together.
    pub fn put_enrolment(&self, enrolment: &Enrolment) -> Result<()> {
        let _gate = self.write_gate();
        let by_learner = keys::compose(&[&enrolment.learner_id, &enrolment.program_id]);
        let by_program = keys::compose(&[&enrolment.program_id, &enrolment.learner_id]);
        let value = codec::encode(enrolment);
        (&self.enrolments.tree, &self.program_members.tree)
            .transaction(|(learners, programs)| {
                learners.insert(by_learner.as_slice(), value.clone())?;
                programs.insert(by_program.as_slice(), value.clone())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// A page of the enrolments of one learner, in program id order.
    pub fn learner_enrolments(
        &self,
        learner: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Enrolment>> {
        page(&self.enrolments, &keys::prefix(&[learner]), after, limit)
    }

    /// A page of the enrolments of one program, in learner id order.
    pub fn program_enrolments(
        &self,
        program: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Enrolment>> {
        page(
            &self.program_members,
            &keys::prefix(&[program]),
            after,
            limit,
        )
    }

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

impl Store {
    // ---- module activity -----------------------------------------------

    /// One stored module event.
    pub fn activity(&self, event_id: &str) -> Result<Option<StoredActivity>> {
        self.activities.get(event_id.as_bytes())
    }

    /// Stores module events and their per-learner index in one transaction.
    pub fn put_activities(&self, events: &[StoredActivity]) -> Result<()> {
        let _gate = self.write_gate();
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let a = &e.activity;
                (
                    a.event_id.as_bytes().to_vec(),
                    keys::learner_activity(&a.learner_id, a.occurred_at, &a.event_id),
                    codec::encode(e),
                )
            })
            .collect();
        (&self.activities.tree, &self.learner_activity.tree)
            .transaction(|(by_id, by_learner)| {
                for (id, learner_key, value) in &rows {
                    by_id.insert(id.as_slice(), value.as_slice())?;
                    by_learner.insert(learner_key.as_slice(), value.as_slice())?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// The learner's latest `limit` events of `kind`, oldest first.
    pub fn recent_activities(
        &self,
        learner: &str,
        kind: ActivityKind,
        limit: usize,
    ) -> Result<Vec<StoredActivity>> {
        let mut out = Vec::new();
        for entry in self
            .learner_activity
            .tree
            .scan_prefix(keys::prefix(&[learner]))
            .rev()
        {
            let (key, bytes) = entry?;
            let event: StoredActivity = codec::decode(self.learner_activity.name, &key, &bytes)?;
            if event.activity.kind == kind {
                out.push(event);
                if out.len() == limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.checkpoints.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.checkpointer.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Pages a table and turns "more follow" into the key to continue after.
fn page<T: Serialize + serde::de::DeserializeOwned>(
    table: &Table<T>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Page<T>> {
    let (rows, more) = table.page(prefix, after, limit)?;
    let next = if more {
        rows.last().map(|(key, _)| key.clone())
    } else {
        None
    };
    Ok((rows.into_iter().map(|(_, v)| v).collect(), next))
}

/// Writes the format version on a new store, refuses an unknown one.
/// How the store opens sled in `dir/sled`.
pub(crate) fn sled_config(dir: &Path) -> sled::Config {
    // Throughput mode and no timer flush: durability comes from the
    // write-ahead log and explicit flushes (checkpoints, group commit),
    // so sled's own 500 ms flush would only add write amplification.
    sled::Config::new()
        .path(dir.join("sled"))
        .cache_capacity(256 * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
}

fn check_format(db: &sled::Db) -> Result<()> {
    let meta = db.open_tree("meta")?;
    match meta.get(keys::FORMAT_VERSION_KEY)? {
        None => {
            meta.insert(
                keys::FORMAT_VERSION_KEY,
                &keys::FORMAT_VERSION.to_be_bytes(),
            )?;
            Ok(())
        }
        Some(bytes) if bytes.as_ref() == keys::FORMAT_VERSION.to_be_bytes() => Ok(()),
        Some(bytes) => Err(Error::Corrupt {
            tree: "meta",
            key: "format_version".into(),
            reason: format!(
                "store format {:?} is not the supported version {}",
                bytes.as_ref(),
                keys::FORMAT_VERSION
            ),
        }),
    }
}

fn transaction_error(err: sled::transaction::TransactionError<()>) -> Error {
    match err {
        sled::transaction::TransactionError::Abort(()) => {
            Error::Storage("transaction aborted".into())
        }
        sled::transaction::TransactionError::Storage(e) => e.into(),
    }
}

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        match &err {
            // A full disk is temporary: the client retries once space is
            // freed (UNAVAILABLE), as for the write-ahead log.
            sled::Error::Io(io)
                if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
            {
                Error::Unavailable(format!("disk full: {err}; retry in a few seconds"))
            }
            _ => Error::Storage(err.to_string()),
        }
    }
}
