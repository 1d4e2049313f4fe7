//! xAPI ingestion: statements become attempts and module events through
//! the engine's own batch paths, with the semantics of a Learning Record
//! Store.
//!
//! - The statement id is the idempotency key: a statement sent again
//!   changes nothing; the same id with other content is refused
//!   ([`Error::AlreadyExists`], HTTP 409). Attempt and event ids derive
//!   from the statement id (`xapi:<id>`), so the engine's own idempotency
//!   holds beneath.
//! - A batch is all or nothing: it is validated whole (at the edge, then
//!   against the stored records) before anything is written, then goes
//!   through one `record_attempts` and one `record_activity` call.
//! - A statement about an activity the catalog does not know is stored
//!   verbatim, counted, and replayed when items or modules are written
//!   (or on request).
//! - A voiding statement undoes its target: attempts retracted (mastery
//!   recomputed, tombstones kept), module events removed.
//!
//! Durability: attempts and events are covered by the write-ahead log; the
//! statement records are flushed with sled's next checkpoint (within a
//! second), or at once when the batch holds anything else (waiting
//! statements, voidings, ignored statements, new learners). A record lost
//! to a crash in that second only costs a repeated resolution on resend:
//! the derived ids make it a duplicate, and different content still
//! collides with the stored attempt (409).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::{Catalog, Engine};
use crate::clock::now_micros;
use crate::domain::activity::Activity;
use crate::domain::learner::{Learner, Micros};
use crate::domain::limits::MAX_ID_BYTES;
use crate::domain::mastery::Attempt;
use crate::domain::xapi::aliases::Aliases;
use crate::domain::xapi::mapping::{CatalogView, Effect, ItemRef, LearnerRef, resolve};
use crate::domain::xapi::record::{
    Fate, ObjectKind, SeenActivity, StatementRecord, Unresolved, derived_id,
};
use crate::domain::xapi::statement::{Parsed, legacy_hash, parse_one};
use crate::domain::xapi::verbs;
use crate::error::{Error, Result};
use crate::store::xapi::StatementWrite;
use crate::store::{Page, Store};

/// Most statements replayed through one engine batch.
const REPLAY_CHUNK: usize = 1000;

/// Counters of xAPI ingestion since start (plus the waiting gauge, read
/// from the store at start).
#[derive(Debug, Default)]
pub struct XapiState {
    received: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    attempts: AtomicU64,
    activities: AtomicU64,
    voided: AtomicU64,
    ignored: AtomicU64,
    unresolved_total: AtomicU64,
    unresolved_now: AtomicU64,
    replayed: AtomicU64,
    learners_created: AtomicU64,
    /// One replay at a time: two would apply the same statements twice
    /// (harmless, the ids are derived) and race on their records.
    replay: tokio::sync::Mutex<()>,
    /// External ids, ignored activities and program ids, rebuilt after
    /// every write that changes them.
    aliases: RwLock<Arc<Aliases>>,
    /// Statements by (outcome, verb label), for
    /// `spoc_xapi_statements_total`.
    outcomes: Mutex<BTreeMap<(Outcome, &'static str), u64>>,
}

/// What became of a statement, as `/metrics` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// It produced an attempt.
    Attempt,
    /// It produced a module event.
    ModuleEvent,
    /// It enrolled its learner in a program.
    Enrolment,
    /// It voided another statement.
    Voided,
    /// It waits for an activity to be mapped.
    Waiting,
    /// Stored without effect (unknown verb, no evidence, ignored activity,
    /// a resend, a statement voided before it came).
    NoEffect,
    /// Refused (invalid, or in a refused batch).
    Refused,
}

impl Outcome {
    /// The label value in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Attempt => "attempt",
            Outcome::ModuleEvent => "module_event",
            Outcome::Enrolment => "enrolment",
            Outcome::Voided => "voided",
            Outcome::Waiting => "waiting",
            Outcome::NoEffect => "no_effect",
            Outcome::Refused => "refused",
        }
    }

    fn of(effect: &Effect) -> Self {
        match effect {
            Effect::Attempt { .. } => Outcome::Attempt,
            Effect::Activity { .. } => Outcome::ModuleEvent,
            Effect::Enrolment { .. } => Outcome::Enrolment,
            Effect::Void { .. } => Outcome::Voided,
            Effect::Unresolved { .. } => Outcome::Waiting,
            Effect::Ignored { .. } => Outcome::NoEffect,
            Effect::Refused { .. } => Outcome::Refused,
        }
    }
}

/// The verb label of a statement, for `/metrics` (bounded: the table's
/// labels or `other`).
pub fn verb_label(verb_id: &str) -> &'static str {
    verbs::lookup(verb_id).map_or(verbs::OTHER_LABEL, |(_, label)| label)
}

/// Reads the alias index from the store (at start and after mapping
/// writes).
pub(crate) fn load_aliases(store: &Store) -> Result<Aliases> {
    let ignored = store
        .seen_activities()?
        .into_iter()
        .filter(|(_, seen)| seen.ignored)
        .map(|(id, _)| id);
    let mut aliases = Aliases::new(store.all_mappings()?, ignored);
    aliases.add_programs(store.program_ids()?);
    Ok(aliases)
}

/// A snapshot of the counters, for `GET /metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XapiCounters {
    /// Statements received in accepted batches (duplicates included).
    pub received: u64,
    /// Statements newly stored.
    pub stored: u64,
    /// Statements already stored with the same content.
    pub duplicates: u64,
    /// Attempts produced (replays included).
    pub attempts: u64,
    /// Module events produced (replays included).
    pub activities: u64,
    /// Statements voided.
    pub voided: u64,
    /// Statements stored without effect.
    pub ignored: u64,
    /// Statements stored as unresolved, ever.
    pub unresolved_total: u64,
    /// Statements waiting for a replay now.
    pub unresolved_now: u64,
    /// Waiting statements applied by a replay.
    pub replayed: u64,
    /// Learners created from statement actors.
    pub learners_created: u64,
}

impl XapiState {
    /// Counters at zero, `waiting` statements already stored unresolved.
    pub fn new(waiting: u64, aliases: Aliases) -> Self {
        let state = Self {
            aliases: RwLock::new(Arc::new(aliases)),
            ..Self::default()
        };
        state.unresolved_now.store(waiting, Ordering::Relaxed);
        state
    }

    /// Adds statements to the outcome counters.
    pub fn count(&self, counted: impl IntoIterator<Item = (Outcome, &'static str)>) {
        let mut local: BTreeMap<(Outcome, &'static str), u64> = BTreeMap::new();
        for key in counted {
            *local.entry(key).or_default() += 1;
        }
        let mut outcomes = self.outcomes.lock();
        for (key, n) in local {
            *outcomes.entry(key).or_default() += n;
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What a replay of waiting statements did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Statements that now had an effect (or were ignored) and left the
    /// waiting list.
    pub applied: usize,
    /// Statements still waiting.
    pub waiting: usize,
}

/// The catalog as the mapping sees it.
pub(crate) struct View<'a> {
    catalog: &'a Catalog,
    aliases: &'a Aliases,
    store: &'a Store,
}

impl<'a> View<'a> {
    pub(crate) fn new(engine: &'a Engine, catalog: &'a Catalog, aliases: &'a Aliases) -> Self {
        Self {
            catalog,
            aliases,
            store: &engine.store,
        }
    }
}

impl CatalogView for View<'_> {
    fn item(&self, id: &str) -> Option<ItemRef<'_>> {
        let item = self.catalog.items.get(id).or_else(|| {
            let owner = self.aliases.owner(ObjectKind::Item, id)?;
            self.catalog.items.get(owner)
        })?;
        Some(ItemRef {
            id: &item.id,
            skill_ids: &item.skill_ids,
            pass_mark: item.pass_mark,
        })
    }

    fn module(&self, id: &str) -> Option<&str> {
        let id = self.aliases.owner(ObjectKind::Module, id).unwrap_or(id);
        let at = self.catalog.index.module(id)?;
        Some(self.catalog.modules[at].id.as_str())
    }

    fn program(&self, id: &str) -> Option<String> {
        self.aliases.program(id).map(str::to_string)
    }

    fn ignored(&self, id: &str) -> bool {
        self.aliases.is_ignored(id)
    }

    fn enrolments(&self, learner: &str) -> Vec<String> {
        // A storage error reads as "no enrolment": at worst the statement
        // waits for its course to be mapped.
        self.store
            .learner_enrolments(learner, None, 2)
            .map(|(rows, _)| rows.into_iter().map(|e| e.program_id).collect())
            .unwrap_or_default()
    }
}

/// The engine writes one batch of effects needs.
#[derive(Default)]
struct Plan {
    learners: BTreeMap<String, LearnerRef>,
    enrolments: BTreeSet<(String, String)>,
    attempts: Vec<Attempt>,
    activities: Vec<Activity>,
    retract_attempts: Vec<String>,
    retract_activities: Vec<String>,
    write: StatementWrite,
    /// Unknown activities the waiting statements named.
    seen: BTreeMap<String, SeenActivity>,
    /// What each statement came to, for `/metrics`.
    outcomes: Vec<(Outcome, &'static str)>,
    /// Whether the batch holds writes the write-ahead log does not cover.
    needs_flush: bool,
}

impl Plan {
    /// Adds the effect of statement `id`; returns its fate.
    fn add(&mut self, at: &str, id: &str, effect: Effect) -> Result<Fate> {
        Ok(match effect {
            Effect::Attempt {
                learner,
                attempt,
                program,
            } => {
                self.learner(at, learner, program)?;
                self.attempts.push(attempt);
                Fate::Attempt
            }
            Effect::Activity { learner, activity } => {
                let program = Some(activity.program_id.clone()).filter(|p| !p.is_empty());
                self.learner(at, learner, program)?;
                self.activities.push(activity);
                Fate::Activity
            }
            Effect::Enrolment { learner, program } => {
                self.learner(at, learner, Some(program))?;
                self.needs_flush = true;
                Fate::Enrolment
            }
            Effect::Ignored { reason } => {
                tracing::debug!(statement = id, %reason, "xAPI statement without effect");
                self.needs_flush = true;
                Fate::Ignored
            }
            // The whole batch is refused, as the gRPC edge refuses it.
            Effect::Refused { field, reason } => {
                return Err(Error::invalid(format!("{at}.{field}"), reason));
            }
            // Voids and waiting statements are planned by the caller.
            Effect::Void { target } => Fate::Voided(target),
            Effect::Unresolved { .. } => Fate::Unresolved,
        })
    }

    /// Keeps what a waiting statement said of the activities it needs.
    fn saw(&mut self, unknown: &[crate::domain::xapi::mapping::Unknown], at: Micros, now: Micros) {
        for activity in unknown {
            let definition = activity.definition.clone().unwrap_or_default();
            let row = self
                .seen
                .entry(activity.id.clone())
                .or_insert_with(|| SeenActivity {
                    first_seen: at,
                    last_seen: at,
                    ..SeenActivity::default()
                });
            row.first_seen = row.first_seen.min(at);
            row.last_seen = row.last_seen.max(at).min(now);
            for (new, old) in [
                (definition.name, &mut row.name),
                (definition.description, &mut row.description),
                (definition.kind, &mut row.kind),
                (definition.interaction_type, &mut row.interaction_type),
            ] {
                if !new.is_empty() {
                    *old = new;
                }
            }
        }
    }

    fn learner(&mut self, at: &str, learner: LearnerRef, program: Option<String>) -> Result<()> {
        if learner.id.len() > MAX_ID_BYTES {
            return Err(Error::invalid(
                format!("{at}.actor"),
                format!(
                    "names a learner id of {} bytes; at most {MAX_ID_BYTES} fit",
                    learner.id.len()
                ),
            ));
        }
        if let Some(program) = program {
            self.enrolments.insert((learner.id.clone(), program));
        }
        // A statement without a language does not blank an earlier one's.
        let language = match self.learners.get(&learner.id) {
            Some(seen) if learner.language.is_empty() => seen.language.clone(),
            _ => learner.language.clone(),
        };
        self.learners.insert(
            learner.id.clone(),
            LearnerRef {
                language,
                ..learner
            },
        );
        Ok(())
    }
}

/// The path of statement `i` in a batch of `n`, for error messages.
fn path(i: usize, n: usize) -> String {
    if n == 1 {
        "statement".to_string()
    } else {
        format!("statement[{i}]")
    }
}

impl Engine {
    /// Ingests a validated batch of statements, all or nothing; returns
    /// their ids in order. A refused batch counts its statements as
    /// refused in `/metrics`.
    pub async fn ingest_statements(&self, batch: Vec<Parsed>) -> Result<Vec<String>> {
        let labels: Vec<&'static str> = batch
            .iter()
            .map(|p| verb_label(&p.statement.verb_id))
            .collect();
        let result = self.ingest_batch(batch).await;
        if result.is_err() {
            self.xapi_refused(labels);
        }
        result
    }

    /// Counts refused statements (by verb label) in `/metrics`; the HTTP
    /// edge calls it for bodies refused before they reach the engine.
    pub fn xapi_refused(&self, labels: impl IntoIterator<Item = &'static str>) {
        self.xapi
            .count(labels.into_iter().map(|label| (Outcome::Refused, label)));
    }

    async fn ingest_batch(&self, batch: Vec<Parsed>) -> Result<Vec<String>> {
        let ids: Vec<String> = batch.iter().map(|p| p.statement.id.clone()).collect();
        let n = batch.len();
        let now = now_micros();

        let (fresh, duplicates) = self.fresh_statements(&batch)?;
        let catalog = self.catalog();
        let aliases = self.aliases();
        let view = View::new(self, &catalog, &aliases);
        let mut plan = Plan::default();
        plan.outcomes
            .extend((0..duplicates).map(|_| (Outcome::NoEffect, verbs::OTHER_LABEL)));
        // Statements of this batch that a later one voids.
        let in_batch: HashMap<&str, usize> = fresh
            .iter()
            .enumerate()
            .map(|(k, (_, p))| (p.statement.id.as_str(), k))
            .collect();
        let effects: Vec<Effect> = fresh
            .iter()
            .map(|(_, parsed)| resolve(&parsed.statement, &view))
            .collect();
        let voided_here = voided_in_batch(&fresh, &effects, &in_batch, n)?;

        for (k, ((i, parsed), effect)) in fresh.iter().zip(effects).enumerate() {
            let at = path(*i, n);
            let id = parsed.statement.id.as_str();
            let voided_before = voided_here.contains(&k) || self.store.voided_by(id)?.is_some();
            let label = verb_label(&parsed.statement.verb_id);
            plan.outcomes.push((
                if voided_before && !matches!(effect, Effect::Void { .. }) {
                    Outcome::NoEffect
                } else {
                    Outcome::of(&effect)
                },
                label,
            ));
            let fate = match effect {
                // Voided already: stored, without effect.
                _ if voided_before && !matches!(effect, Effect::Void { .. }) => {
                    plan.needs_flush = true;
                    XapiState::add(&self.xapi.voided, 1);
                    Fate::Ignored
                }
                Effect::Void { target } => {
                    if !in_batch.contains_key(target.as_str()) {
                        self.plan_void(&at, &target, &mut plan)?;
                    }
                    plan.write.voids.push((target.clone(), id.to_string()));
                    plan.needs_flush = true;
                    Fate::Voided(target)
                }
                Effect::Unresolved { reason, unknown } => {
                    tracing::info!(statement = id, %reason, "xAPI statement kept for a replay");
                    plan.saw(&unknown, parsed.statement.timestamp.min(now), now);
                    plan.write.unresolved.push((
                        id.to_string(),
                        Unresolved {
                            raw: parsed.raw.clone(),
                            reason,
                            received_at: now,
                        },
                    ));
                    plan.needs_flush = true;
                    Fate::Unresolved
                }
                effect => plan.add(&at, id, effect)?,
            };
            plan.write.new.push((
                id.to_string(),
                StatementRecord {
                    hash: parsed.hash,
                    voided: voided_before && !matches!(fate, Fate::Voided(_)),
                    fate,
                    stored_at: now,
                },
            ));
        }

        self.apply_plan(plan).await?;
        let x = &self.xapi;
        XapiState::add(&x.received, n);
        XapiState::add(&x.duplicates, duplicates);
        XapiState::add(&x.stored, fresh.len());
        Ok(ids)
    }

    /// The statements of `batch` not stored yet, with their index, and how
    /// many are duplicates (within the batch or of a stored statement).
    /// The same id with other content refuses the whole batch.
    fn fresh_statements<'a>(
        &self,
        batch: &'a [Parsed],
    ) -> Result<(Vec<(usize, &'a Parsed)>, usize)> {
        let n = batch.len();
        // Within the batch: one statement per id.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(n);
        let mut fresh: Vec<(usize, &Parsed)> = Vec::with_capacity(n);
        let mut duplicates = 0;
        for (i, parsed) in batch.iter().enumerate() {
            if let Some(&j) = first.get(parsed.statement.id.as_str()) {
                if batch[j].hash != parsed.hash {
                    return Err(Error::invalid(
                        format!("{}.id", path(i, n)),
                        format!(
                            "statement '{}' appears twice in the batch with different content",
                            parsed.statement.id
                        ),
                    ));
                }
                duplicates += 1;
                continue;
            }
            first.insert(&parsed.statement.id, i);
            // Against the store: same content is a duplicate, other content
            // a conflict that refuses the whole batch. Records stored before
            // equality followed the specification carry the older hash.
            match self.store.statement_record(&parsed.statement.id)? {
                Some(record)
                    if record.hash == parsed.hash || legacy_hash(parsed) == Some(record.hash) =>
                {
                    duplicates += 1
                }
                Some(_) => {
                    return Err(Error::AlreadyExists {
                        kind: "statement",
                        id: parsed.statement.id.clone(),
                        reason: format!(
                            "{} differs from the statement stored under this id",
                            path(i, n)
                        ),
                    });
                }
                None => fresh.push((i, parsed)),
            }
        }
        Ok((fresh, duplicates))
    }

    /// Plans the undoing of a stored statement's effect.
    fn plan_void(&self, at: &str, target: &str, plan: &mut Plan) -> Result<()> {
        let Some(mut record) = self.store.statement_record(target)? else {
            // Not received yet, or received just before a crash that lost
            // its record (records reach disk with the next checkpoint, its
            // attempt or event with the write-ahead log): retract whatever
            // it may have produced. The tombstones also stop it if it comes
            // later, and the voids index marks its record then.
            plan.retract_attempts.push(derived_id(target));
            plan.retract_activities.push(derived_id(target));
            return Ok(());
        };
        if let Fate::Voided(_) = record.fate {
            return Err(Error::invalid(
                format!("{at}.object.id"),
                format!("statement '{target}' is a voiding statement and cannot be voided"),
            ));
        }
        if record.voided {
            return Ok(());
        }
        match record.fate {
            Fate::Attempt => plan.retract_attempts.push(derived_id(target)),
            Fate::Activity => plan.retract_activities.push(derived_id(target)),
            Fate::Unresolved => plan.write.resolved.push(target.to_string()),
            Fate::Ignored | Fate::Voided(_) | Fate::Enrolment => {}
        }
        record.voided = true;
        plan.write.replaced.push((target.to_string(), record));
        Ok(())
    }

    /// Writes a plan: learners, enrolments, attempts, events, retractions,
    /// then the statement records.
    async fn apply_plan(&self, plan: Plan) -> Result<()> {
        let mut needs_flush = plan.needs_flush;
        let mut created = 0;
        for learner in plan.learners.values() {
            if !self.learner_exists(&learner.id)? {
                self.store.put_learner(&Learner {
                    id: learner.id.clone(),
                    company_id: learner.company_hint.chars().take(256).collect(),
                    language: learner.language.clone(),
                    time_zone: String::new(),
                    display_name: learner.display_name.chars().take(128).collect(),
                })?;
                created += 1;
                needs_flush = true;
            } else if !learner.language.is_empty() {
                // A learner created before their LMS sent a language gets
                // it once; one the LMS or an admin gave a language keeps it.
                needs_flush |= self
                    .store
                    .set_language_if_empty(&learner.id, &learner.language)?;
            }
        }
        for (learner, program) in &plan.enrolments {
            if self.store.enrolment(learner, program)?.is_none() {
                self.write_enrolment(learner, program, None)?;
                needs_flush = true;
            }
        }
        let (n_attempts, n_activities) = (plan.attempts.len(), plan.activities.len());
        if created > 0 && !(plan.attempts.is_empty() && plan.activities.is_empty()) {
            // New learners reach the disk before their entries reach the
            // log: a replay after a crash finds every logged learner.
            self.store.durable().await?;
        }
        if !plan.attempts.is_empty() {
            self.record_attempts(plan.attempts).await?;
        }
        if !plan.activities.is_empty() {
            self.record_activity(plan.activities).await?;
        }
        if !plan.retract_attempts.is_empty() {
            self.retract_attempts(&plan.retract_attempts).await?;
        }
        if !plan.retract_activities.is_empty() {
            self.retract_activities(&plan.retract_activities).await?;
        }
        let write = plan.write;
        self.store.commit_statements(&write)?;
        if !plan.seen.is_empty() {
            let seen: Vec<(String, SeenActivity)> = plan.seen.into_iter().collect();
            self.store.saw_activities(&seen)?;
            needs_flush = true;
        }
        self.xapi.count(plan.outcomes);
        if needs_flush {
            self.store.durable().await?;
        }
        let x = &self.xapi;
        XapiState::add(&x.attempts, n_attempts);
        XapiState::add(&x.activities, n_activities);
        XapiState::add(&x.learners_created, created);
        XapiState::add(
            &x.voided,
            write.replaced.iter().filter(|(_, r)| r.voided).count(),
        );
        XapiState::add(
            &x.ignored,
            write
                .new
                .iter()
                .filter(|(_, r)| r.fate == Fate::Ignored)
                .count(),
        );
        XapiState::add(&x.unresolved_total, write.unresolved.len());
        x.unresolved_now
            .fetch_add(write.unresolved.len() as u64, Ordering::Relaxed);
        let resolved = write.resolved.len() as u64;
        let _ = x
            .unresolved_now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(resolved))
            });
        Ok(())
    }

    /// Removes module events (an xAPI voiding) and keeps their tombstones.
    pub async fn retract_activities(&self, ids: &[String]) -> Result<usize> {
        let events = ids
            .iter()
            .filter_map(|id| self.store.activity(id).transpose())
            .collect::<Result<Vec<_>>>()?;
        self.store.retract_activities(ids, &events, now_micros())?;
        self.store.durable().await?;
        self.alerts_touched(events.iter().map(|e| e.activity.learner_id.as_str()));
        Ok(events.len())
    }

    /// Applies the waiting statements the catalog now resolves.
    pub async fn replay_unresolved(&self) -> Result<ReplayReport> {
        if self.xapi.unresolved_now.load(Ordering::Relaxed) == 0 {
            return Ok(ReplayReport::default());
        }
        let _one = self.xapi.replay.lock().await;
        let waiting = self.store.all_unresolved()?;
        let mut report = ReplayReport::default();
        for chunk in waiting.chunks(REPLAY_CHUNK) {
            let catalog = self.catalog();
            let aliases = self.aliases();
            let view = View::new(self, &catalog, &aliases);
            let mut plan = Plan::default();
            let now = now_micros();
            for (id, unresolved) in chunk {
                let at = format!("unresolved statement {id}");
                let value: serde_json::Value =
                    serde_json::from_str(&unresolved.raw).map_err(|e| Error::Corrupt {
                        tree: "xapi_unresolved",
                        key: id.clone(),
                        reason: e.to_string(),
                    })?;
                // Stored under the rules of its day: one that today's
                // rules refuse (e.g. a timestamp before 2000) keeps
                // waiting, listed with its reason, and stops no other.
                let parsed = match parse_one(&value, &at, now) {
                    Ok(parsed) => parsed,
                    Err(err) => {
                        tracing::warn!(statement = %id, error = %err, "a waiting xAPI statement no longer parses; it stays waiting");
                        report.waiting += 1;
                        continue;
                    }
                };
                let Some(mut record) = self.store.statement_record(id)? else {
                    plan.write.resolved.push(id.clone());
                    continue;
                };
                if record.voided {
                    plan.write.resolved.push(id.clone());
                    continue;
                }
                let fate = match resolve(&parsed.statement, &view) {
                    Effect::Unresolved { .. } => {
                        report.waiting += 1;
                        continue;
                    }
                    // As one that no longer parses: it keeps waiting.
                    Effect::Refused { field, reason } => {
                        tracing::warn!(statement = %id, %field, %reason, "a waiting xAPI statement is refused now; it stays waiting");
                        report.waiting += 1;
                        continue;
                    }
                    effect => {
                        let label = verb_label(&parsed.statement.verb_id);
                        plan.outcomes.push((Outcome::of(&effect), label));
                        plan.add(&at, id, effect)?
                    }
                };
                record.fate = fate;
                plan.write.replaced.push((id.clone(), record));
                plan.write.resolved.push(id.clone());
                report.applied += 1;
            }
            self.apply_plan(plan).await?;
        }
        XapiState::add(&self.xapi.replayed, report.applied);
        if report.applied > 0 {
            tracing::info!(
                applied = report.applied,
                waiting = report.waiting,
                "replayed waiting xAPI statements"
            );
        }
        Ok(report)
    }

    /// A page of the statements waiting for a replay: (id, what is kept).
    pub fn unresolved_statements(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<(String, Unresolved)>> {
        let (rows, next) = self.store.list_unresolved(after, limit)?;
        Ok((
            rows.into_iter()
                .map(|(key, u)| (String::from_utf8_lossy(&key).into_owned(), u))
                .collect(),
            next,
        ))
    }

    /// The alias index now.
    pub(crate) fn aliases(&self) -> Arc<Aliases> {
        self.xapi.aliases.read().clone()
    }

    /// Rebuilds the alias index from the store, after a write that changed
    /// external ids, programs or ignored activities.
    pub(crate) fn reload_aliases(&self) -> Result<()> {
        let aliases = Arc::new(load_aliases(&self.store)?);
        *self.xapi.aliases.write() = aliases;
        Ok(())
    }

    /// Statements by (outcome, verb label) since start.
    pub fn xapi_outcomes(&self) -> Vec<(Outcome, &'static str, u64)> {
        self.xapi
            .outcomes
            .lock()
            .iter()
            .map(|(&(outcome, label), &n)| (outcome, label, n))
            .collect()
    }

    /// The xAPI counters now.
    pub fn xapi_counters(&self) -> XapiCounters {
        let x = &self.xapi;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        XapiCounters {
            received: get(&x.received),
            stored: get(&x.stored),
            duplicates: get(&x.duplicates),
            attempts: get(&x.attempts),
            activities: get(&x.activities),
            voided: get(&x.voided),
            ignored: get(&x.ignored),
            unresolved_total: get(&x.unresolved_total),
            unresolved_now: get(&x.unresolved_now),
            replayed: get(&x.replayed),
            learners_created: get(&x.learners_created),
        }
    }
}

/// The statements of this batch (by index in `fresh`) that a later one
/// voids; a statement voiding itself or a voiding statement refuses the
/// batch.
fn voided_in_batch(
    fresh: &[(usize, &Parsed)],
    effects: &[Effect],
    in_batch: &HashMap<&str, usize>,
    n: usize,
) -> Result<HashSet<usize>> {
    let mut voided_here: HashSet<usize> = HashSet::new();
    for (k, effect) in effects.iter().enumerate() {
        let Effect::Void { target } = effect else {
            continue;
        };
        let (i, parsed) = fresh[k];
        if *target == parsed.statement.id {
            return Err(Error::invalid(
                format!("{}.object.id", path(i, n)),
                "a statement cannot void itself",
            ));
        }
        if let Some(&t) = in_batch.get(target.as_str()) {
            if matches!(effects[t], Effect::Void { .. }) {
                return Err(Error::invalid(
                    format!("{}.object.id", path(i, n)),
                    format!("statement '{target}' is a voiding statement and cannot be voided"),
                ));
            }
            voided_here.insert(t);
        }
    }
    Ok(voided_here)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::ActivityKind;
    use crate::domain::catalog::{Format, Module};
    use crate::engine::testing::{answers_of_l_on_s, engine, skill_s_and_learner_l};

    /// A crash may keep an attempt (write-ahead log) but lose its statement
    /// record (flushed with the next checkpoint): a voiding that then finds
    /// no record still retracts the attempt the statement produced.
    #[tokio::test]
    async fn a_voiding_without_the_target_record_still_retracts_its_attempt() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine(temp.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        let target = "2f6e8a8e-3c1b-4f5e-9a51-7f0d2b9c4e11";
        engine
            .record_attempts(vec![crate::domain::mastery::test_attempt(
                &derived_id(target),
                1,
                true,
            )])
            .await
            .unwrap();
        assert!(engine.store.statement_record(target).unwrap().is_none());
        let voiding = serde_json::json!({
            "id": "e7d6c5b4-a392-4817-8f6e-5d4c3b2a1908",
            "actor": {"mbox": "mailto:admin@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": target},
            "timestamp": "2026-11-20T11:00:00Z"
        });
        let parsed = crate::domain::xapi::statement::parse_body(&voiding, now_micros()).unwrap();
        engine.ingest_statements(parsed).await.unwrap();
        assert!(engine.store.attempt(&derived_id(target)).unwrap().is_none());
        assert_eq!(
            engine.mastery("l", &["s".into()]).unwrap()[0].attempt_count,
            0
        );
    }

    /// A waiting statement stored under older rules that today's refuse
    /// (here a timestamp before 2000) keeps waiting and does not stop the
    /// replay of the others.
    #[tokio::test]
    async fn a_waiting_statement_that_no_longer_parses_stops_no_other() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine(temp.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        let statement = |id: &str| {
            serde_json::json!({
                "id": id,
                "actor": {"account": {"homePage": "https://lms.example.com", "name": "l"}},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                "object": {"id": "https://lms.example.com/item/1"},
                "result": {"success": true},
                "timestamp": "2026-11-20T11:00:00Z"
            })
        };
        let (old, new) = (
            "0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a20",
            "1c8e2b5d-3e4f-4a6b-8c9d-0e1f2a3b4c5d",
        );
        let both = serde_json::Value::Array(vec![statement(old), statement(new)]);
        let parsed = crate::domain::xapi::statement::parse_body(&both, now_micros()).unwrap();
        engine.ingest_statements(parsed).await.unwrap();
        // As if stored before the floor on event times existed.
        let mut stored = statement(old);
        stored["timestamp"] = "1999-12-31T23:00:00Z".into();
        engine
            .store
            .commit_statements(&crate::store::xapi::StatementWrite {
                unresolved: vec![(
                    old.to_string(),
                    Unresolved {
                        raw: stored.to_string(),
                        reason: "unknown activity".into(),
                        received_at: now_micros(),
                    },
                )],
                ..Default::default()
            })
            .unwrap();

        let applied = engine
            .upsert_items(vec![crate::domain::catalog::Item {
                external_ids: Vec::new(),
                pass_mark: None,
                id: "https://lms.example.com/item/1".into(),
                skill_ids: vec!["s".into()],
                title: String::new(),
            }])
            .await
            .unwrap();
        assert_eq!(applied, 1);
        let waiting = engine.store.all_unresolved().unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].0, old);
        assert_eq!(
            engine.mastery("l", &["s".into()]).unwrap()[0].attempt_count,
            1
        );
    }

    /// The write-ahead log replays batches through `apply_attempts` and
    /// `apply_activity`: after a retraction, replaying the batch that
    /// first brought the attempt and the event restores neither.
    #[tokio::test]
    async fn a_replayed_batch_does_not_restore_what_was_retracted() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine(temp.path());
        skill_s_and_learner_l(
            &engine,
            vec![Module {
                external_ids: Vec::new(),
                id: "m".into(),
                title: "M".into(),
                skill_ids: vec!["s".into()],
                format: Format::Video,
                duration_minutes: 5,
                language: "fr".into(),
            }],
        )
        .await;
        let attempt = |id: &str, at: i64| crate::domain::mastery::test_attempt(id, at, true);
        let batch = vec![attempt("keep", 1), attempt("drop", 2)];
        engine.record_attempts(batch.clone()).await.unwrap();
        let event = Activity {
            event_id: "e".into(),
            learner_id: "l".into(),
            module_id: "m".into(),
            program_id: String::new(),
            kind: ActivityKind::Completed,
            occurred_at: 3,
            time_spent_ms: 0,
        };
        engine.record_activity(vec![event.clone()]).await.unwrap();

        assert_eq!(engine.retract_attempts(&["drop".into()]).await.unwrap(), 1);
        assert_eq!(engine.retract_activities(&["e".into()]).await.unwrap(), 1);
        let params = engine.params();
        let one = params
            .for_skill("s")
            .replay([attempt("keep", 1).observation()]);
        let state = engine.store.mastery("l", "s").unwrap().unwrap();
        assert_eq!(state.attempt_count, 1);
        assert!((state.p_mastered() - one.p_known()).abs() < 1e-12);

        let (again, _) = engine
            .apply_attempts(&batch, &[], crate::engine::mastery::Ingest::Replay)
            .unwrap();
        assert_eq!((again.recorded, again.duplicates), (0, 2));
        assert!(engine.store.attempt("drop").unwrap().is_none());
        assert_eq!(answers_of_l_on_s(&engine), 1);
        let events = engine.apply_activity(&[event]).unwrap();
        assert_eq!((events.recorded, events.duplicates), (0, 1));
        assert!(engine.store.activity("e").unwrap().is_none());

        // Retracting the last attempt takes the skill back to the prior.
        engine.retract_attempts(&["keep".into()]).await.unwrap();
        assert!(engine.store.mastery("l", "s").unwrap().is_none());
    }

    /// A learner created from xAPI takes the language of the statement's
    /// context (canonical case), which a later statement without one does
    /// not blank; a known learner without a language gets it once; one
    /// with a language keeps theirs; a malformed tag is left out.
    #[tokio::test]
    async fn learners_from_xapi_take_the_context_language() {
        let temp = tempfile::tempdir().unwrap();
        let engine = engine(temp.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        let item = "https://lms.example.com/item/1";
        engine
            .upsert_items(vec![crate::domain::catalog::Item {
                external_ids: Vec::new(),
                pass_mark: None,
                id: item.into(),
                skill_ids: vec!["s".into()],
                title: String::new(),
            }])
            .await
            .unwrap();
        engine
            .upsert_learner(Learner {
                language: "de".into(),
                ..crate::engine::testing::learner("known-de")
            })
            .await
            .unwrap();
        let answered = |id: &str, who: &str, language: Option<&str>| {
            let mut statement = serde_json::json!({
                "id": id,
                "actor": {"account": {"homePage": "https://lms.example.com", "name": who}},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                "object": {"id": item},
                "result": {"success": true},
                "timestamp": "2026-11-20T11:00:00Z"
            });
            if let Some(language) = language {
                statement["context"] = serde_json::json!({ "language": language });
            }
            statement
        };
        let batch = serde_json::Value::Array(vec![
            answered(
                "0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a21",
                "new-fr",
                Some("fr-fr"),
            ),
            answered("0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a22", "new-fr", None),
            answered("0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a23", "l", Some("en-GB")),
            answered(
                "0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a24",
                "known-de",
                Some("fr"),
            ),
            answered(
                "0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a25",
                "sloppy",
                Some("en_US!"),
            ),
        ]);
        let parsed = crate::domain::xapi::statement::parse_body(&batch, now_micros()).unwrap();
        engine.ingest_statements(parsed).await.unwrap();
        let language = |id: &str| engine.learner(id).unwrap().language;
        assert_eq!(language("new-fr"), "fr-FR");
        assert_eq!(language("l"), "en-GB");
        assert_eq!(language("known-de"), "de");
        assert_eq!(language("sloppy"), "");
        assert_eq!(
            engine.mastery("new-fr", &["s".into()]).unwrap()[0].attempt_count,
            2
        );

        // Not a string: refused, naming the field.
        let wrong = serde_json::Value::Array(vec![{
            let mut s = answered("0b9f3c6e-2d4a-4c8e-9f1a-3e5d7b9c1a26", "x", None);
            s["context"] = serde_json::json!({ "language": 7 });
            s
        }]);
        let err = crate::domain::xapi::statement::parse_body(&wrong, now_micros()).unwrap_err();
        assert!(err.to_string().contains("context.language"), "{err}");
    }
}
