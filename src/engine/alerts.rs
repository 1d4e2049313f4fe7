//! At-risk alerts: evaluation as events arrive, a periodic pass, trainer
//! actions, and live watching.
//!
//! Ingestion never waits for alerts: `record_attempts` / `record_activity`
//! only put the touched learner ids in a pending set (bounded by the number
//! of learners, deduplicated) once their batch is durable, and wake a
//! dedicated thread that evaluates them. A second thread runs a full pass
//! every interval for time-based rules (inactivity) and refreshes the
//! cohort medians of time spent.
//!
//! Every alert change gets the next sequence number, is committed (alert,
//! dedup index, log entry) in one transaction, flushed to disk (so that a
//! number a watcher saw is never reused after a crash) and then published on a
//! broadcast channel, all under one mutex so that log order, sequence order
//! and publication order agree. The evaluation thread and the periodic
//! pass flush and publish their changes in groups of learners, one flush
//! for many. Publishing never blocks: a watcher that falls behind the
//! channel's capacity is told it lagged and catches up from the log, and a
//! reconnecting watcher replays the log from the last sequence it saw, so
//! no change is ever missed.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, watch};

use super::locks::StripedLocks;
use super::{Engine, now_micros};
use crate::domain::access::Principal;
use crate::domain::alerts::{
    Alert, AlertChange, AlertStatus, RESOLVED_BY_ENGINE, alert_id, reconcile,
};
use crate::domain::bkt::Observation;
use crate::domain::completion::CompletionPlan;
use crate::domain::learner::{Enrolment, Micros, Program, RiskRules};
use crate::domain::reports::quantile;
use crate::domain::risk::signals::trace_mastery;
use crate::domain::risk::{
    AlertKind, ProgramCalendar, RiskModel, RiskThresholds, SignalInput, SkillAttempt, evaluate,
};
use crate::error::{Error, Result};
use crate::store::Page;

/// The shipped dropout model, embedded at compile time: a server started
/// from another directory still scores learners.
pub const SHIPPED_RISK_MODEL: &str = include_str!("../../models/risk.json");

/// Default interval of the full evaluation pass (inactivity needs no event
/// to become true).
pub const DEFAULT_PASS_INTERVAL: Duration = Duration::from_secs(60);

/// Alert changes buffered for watchers; a watcher further behind catches
/// up from the log.
pub const BROADCAST_CAPACITY: usize = 4096;

/// Events buffered per watcher between its task and its gRPC stream.
pub const WATCH_BUFFER: usize = 256;

/// Log entries read per catch-up step.
const CATCH_UP_BATCH: usize = 1000;

/// How long a program's learner → cohort map is reused (moves and
/// formations show up in alerts within this delay).
const COHORT_CACHE_TTL: Duration = Duration::from_secs(1);

/// Whose alerts a watcher wants: an alert matches when it is in one of the
/// cohorts or in the program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertScope {
    /// Cohort ids.
    pub cohorts: BTreeSet<String>,
    /// A program id.
    pub program: Option<String>,
}

impl AlertScope {
    /// Whether `alert` is in scope.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.cohorts.contains(&alert.cohort_id) || self.program.as_ref() == Some(&alert.program_id)
    }
}

/// Filters of a listing; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Only this program.
    pub program: Option<String>,
    /// Only this cohort.
    pub cohort: Option<String>,
    /// Only this learner.
    pub learner: Option<String>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// Only this status.
    pub status: Option<AlertStatus>,
}

impl AlertFilter {
    /// Whether `alert` passes every set filter.
    pub fn matches(&self, a: &Alert) -> bool {
        self.program.as_ref().is_none_or(|p| *p == a.program_id)
            && self.cohort.as_ref().is_none_or(|c| *c == a.cohort_id)
            && self.learner.as_ref().is_none_or(|l| *l == a.learner_id)
            && self.kind.is_none_or(|k| k == a.kind)
            && self.status.is_none_or(|s| s == a.status)
    }
}

/// One message for a watcher: an alert and whether it belongs to the
/// initial snapshot of active alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// The alert after the change.
    pub alert: Arc<Alert>,
    /// Part of the initial snapshot.
    pub snapshot: bool,
}

/// A trainer's action on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainerAction {
    /// Seen, being handled.
    Acknowledge,
    /// Closed.
    Resolve,
}

/// A program's learner → cohort map and when it was read.
struct CohortMap {
    read_at: Instant,
    members: HashMap<String, String>,
}

/// The alert state of a running engine.
pub struct AlertHub {
    /// The dropout model in force (`None` disables model alerts).
    model: RwLock<Option<Arc<RiskModel>>>,
    /// Publication of every alert change.
    sender: broadcast::Sender<Arc<Alert>>,
    /// The latest sequence number and the committed changes not published
    /// yet; held while a change is numbered, committed, flushed and
    /// published.
    sequence: Mutex<Numbering>,
    /// Learners waiting for evaluation.
    pending: Mutex<Pending>,
    /// Wakes the evaluation thread.
    wake: Condvar,
    /// Serializes evaluations and trainer actions per learner.
    locks: StripedLocks,
    /// Learner → cohort per program, cached briefly.
    cohorts: Mutex<HashMap<String, CohortMap>>,
    /// Median time spent per (program, cohort id) in milliseconds,
    /// refreshed by each full pass; `""` is the program-wide median.
    medians: RwLock<HashMap<(String, String), u64>>,
    /// Interval of the full pass, in milliseconds.
    pass_interval_ms: AtomicU64,
    /// Set to stop the background threads and end every watch.
    stop: AtomicBool,
    /// Tells watchers to end (server shutdown).
    stopped: watch::Sender<bool>,
    /// The evaluation and pass threads, once started.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Evaluations done since start (figures for benchmarks and logs).
    evaluations: AtomicU64,
}

impl AlertHub {
    /// Builds the hub over a store's alert log with the shipped model.
    pub fn new(last_sequence: u64) -> Result<Self> {
        let model = RiskModel::from_json(SHIPPED_RISK_MODEL)?;
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (stopped, _) = watch::channel(false);
        Ok(Self {
            model: RwLock::new(Some(Arc::new(model))),
            sender,
            sequence: Mutex::new(Numbering {
                last: last_sequence,
                unpublished: Vec::new(),
            }),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            locks: StripedLocks::new(256),
            cohorts: Mutex::new(HashMap::new()),
            medians: RwLock::new(HashMap::new()),
            pass_interval_ms: AtomicU64::new(DEFAULT_PASS_INTERVAL.as_millis() as u64),
            stop: AtomicBool::new(false),
            stopped,
            threads: Mutex::new(Vec::new()),
            evaluations: AtomicU64::new(0),
        })
    }
}

/// The program's thresholds: defaults overridden by its rules. A changed
/// warning threshold moves the critical one with it (twice the days, 0.2
/// further for a drop), as the defaults are set.
pub fn thresholds(rules: &RiskRules) -> RiskThresholds {
    let mut t = RiskThresholds::default();
    if let Some(days) = rules.inactivity_days {
        t.inactivity_days = days;
        t.inactivity_critical_days = 2.0 * days;
    }
    if let Some(n) = rules.blocking_failures {
        t.blocking_failures = n;
    }
    if let Some(drop) = rules.mastery_drop {
        t.mastery_drop = drop;
        t.mastery_drop_critical = (drop + 0.2).min(1.0);
    }
    t
}

/// Loads a dropout model file (`--risk-model`).
pub fn load_risk_model(path: &std::path::Path) -> Result<RiskModel> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(path.display().to_string(), format!("cannot read: {e}")))?;
    RiskModel::from_json(&text).map_err(|e| match e {
        Error::InvalidArgument { field, reason } => {
            Error::invalid(format!("{}: {field}", path.display()), reason)
        }
        other => other,
    })
}

impl Engine {
    fn hub(&self) -> &AlertHub {
        &self.alerts
    }

    /// Replaces the dropout model (`None` turns model alerts off).
    pub fn set_risk_model(&self, model: Option<RiskModel>) {
        *self.hub().model.write().expect("model lock") = model.map(Arc::new);
    }

    /// Sets the interval of the full pass; takes effect after the current
    /// wait.
    pub fn set_alert_pass_interval(&self, interval: Duration) {
        self.hub()
            .pass_interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    /// Evaluations done since start.
    pub fn alert_evaluations(&self) -> u64 {
        self.hub().evaluations.load(Ordering::Relaxed)
    }

    /// The latest alert sequence number.
    pub fn alert_sequence(&self) -> u64 {
        self.hub().sequence.lock().expect("sequence lock").last
    }

    /// Follows every alert change, for in-process consumers (webhook
    /// delivery, `engine/webhooks`): a receiver of the changes published
    /// from now on, and the latest sequence on disk, up to which the log
    /// holds them ([`crate::store::Store::alert_changes_after`]). Blocks
    /// while a flush holds the sequence lock.
    pub fn follow_alert_changes(&self) -> (broadcast::Receiver<Arc<Alert>>, u64) {
        // Subscribe before reading the bound: nothing falls in between.
        let receiver = self.hub().sender.subscribe();
        (receiver, self.durable_alert_sequence())
    }

    /// The latest alert sequence on disk: what a log reader may read up
    /// to; later changes are published on the channel once flushed.
    pub fn durable_alert_sequence(&self) -> u64 {
        self.hub().sequence.lock().expect("sequence lock").durable()
    }

    /// Runs `erase` while the learner's alert evaluations are held off,
    /// then forgets what the hub remembers of them (pending evaluation,
    /// cached cohort maps). Used by a GDPR erasure.
    pub(crate) fn with_alerts_held<T>(&self, learner: &str, erase: impl FnOnce() -> T) -> T {
        let hub = self.hub();
        let _guard = hub.locks.lock_all([learner]);
        // Changes about the learner as they were go out first; any a failed
        // flush keeps back are dropped after the erasure, never published.
        if let Err(err) = self.publish_pending() {
            tracing::error!(error = %err, "alert publication failed");
        }
        let out = erase();
        hub.sequence
            .lock()
            .expect("sequence lock")
            .unpublished
            .retain(|a| a.learner_id != learner);
        hub.pending
            .lock()
            .expect("pending lock")
            .learners
            .remove(learner);
        hub.cohorts.lock().expect("cohort cache lock").clear();
        out
    }

    /// Queues learners whose data just became durable for evaluation.
    /// Never blocks on evaluation: a set insert and a wake-up.
    pub fn alerts_touched<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        let hub = self.hub();
        let mut pending = hub.pending.lock().expect("pending lock");
        for learner in learners {
            if !pending.learners.contains(learner) {
                pending.learners.insert(learner.to_string());
            }
        }
        // A notification is a syscall even when nobody waits: most calls
        // come while the thread works or coalesces, and it drains the set
        // before it waits again.
        if pending.waiting && !pending.learners.is_empty() {
            hub.wake.notify_one();
            pending.waiting = false; // one wake is enough until it waits again
        }
    }

    /// Starts the evaluation thread and the periodic pass (the first pass
    /// runs at once). Idempotent.
    pub fn start_alerts(self: &Arc<Self>) -> Result<()> {
        let mut threads = self.hub().threads.lock().expect("threads lock");
        if !threads.is_empty() {
            return Ok(());
        }
        let weak = Arc::downgrade(self);
        threads.push(
            std::thread::Builder::new()
                .name("spoc-alerts".into())
                .spawn(move || evaluation_loop(weak))
                .map_err(|e| Error::Storage(format!("cannot start alert thread: {e}")))?,
        );
        let weak = Arc::downgrade(self);
        threads.push(
            std::thread::Builder::new()
                .name("spoc-alert-pass".into())
                .spawn(move || pass_loop(weak))
                .map_err(|e| Error::Storage(format!("cannot start alert pass thread: {e}")))?,
        );
        Ok(())
    }

    /// Ends every watch and tells the background threads to stop, without
    /// waiting (called when shutdown starts, from async code).
    pub fn signal_alerts_stop(&self) {
        let hub = self.hub();
        hub.stop.store(true, Ordering::SeqCst);
        let _ = hub.stopped.send(true);
        let _pending = hub.pending.lock().expect("pending lock");
        hub.wake.notify_all();
    }

    /// [`Engine::signal_alerts_stop`], then waits for the background
    /// threads (they check the stop flag between learners).
    pub fn stop_alerts(&self) {
        self.signal_alerts_stop();
        let hub = self.hub();
        let threads = std::mem::take(&mut *hub.threads.lock().expect("threads lock"));
        for thread in threads {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }

    /// Evaluates every learner enrolled in any program: the periodic pass.
    /// Refreshes the cohort medians of time spent first. CPU-heavy: runs
    /// on its own thread.
    pub fn evaluate_all_alerts(&self) -> Result<usize> {
        let now = now_micros();
        let (programs, _) = self.store.list_programs(None, usize::MAX)?;
        let mut learners = BTreeSet::new();
        let mut medians = HashMap::new();
        let catalog = self.catalog();
        for program in &programs {
            let (enrolments, _) = self
                .store
                .program_enrolments(&program.id, None, usize::MAX)?;
            let plan = completion_plan(&catalog, program);
            let modules = plan.modules();
            let members = self.cohort_members(&program.id, true)?;
            let mut times: HashMap<String, Vec<f64>> = HashMap::new();
            for e in &enrolments {
                if self.hub().stop.load(Ordering::Relaxed) {
                    return Ok(0);
                }
                let spent: u64 = self
                    .store
                    .learner_activities(&e.learner_id)?
                    .iter()
                    .filter(|a| modules.contains(a.activity.module_id.as_str()))
                    .map(|a| a.activity.time_spent_ms)
                    .sum();
                let cohort = members.get(&e.learner_id).cloned().unwrap_or_default();
                times.entry(cohort).or_default().push(spent as f64);
                times.entry(String::new()).or_default().push(spent as f64);
                learners.insert(e.learner_id.clone());
            }
            for (cohort, mut values) in times {
                values.sort_by(f64::total_cmp);
                medians.insert(
                    (program.id.clone(), cohort),
                    quantile(&values, 0.5).round() as u64,
                );
            }
        }
        *self.hub().medians.write().expect("medians lock") = medians;
        self.evaluate_in_groups(learners.iter().map(String::as_str), now, |_, err| Err(err))?;
        Ok(learners.len())
    }

    /// Evaluates `learners`, publishing their changes per [`Group`] (one
    /// flush for many learners) and at the end, until a stop. `failed`
    /// decides what an evaluation error does: end the run (`Err`) or not.
    /// A failed publication keeps the changes for the next one; the last
    /// one's error is returned.
    fn evaluate_in_groups<'a>(
        &self,
        learners: impl IntoIterator<Item = &'a str>,
        now: Micros,
        mut failed: impl FnMut(&str, Error) -> Result<()>,
    ) -> Result<()> {
        let mut group = Group::new();
        let mut outcome = Ok(());
        for learner in learners {
            if self.hub().stop.load(Ordering::Relaxed) {
                break;
            }
            if let Err(err) = self.evaluate_learner_in(learner, now, Publish::Later) {
                outcome = failed(learner, err);
                if outcome.is_err() {
                    break;
                }
            }
            if group.full() {
                if let Err(err) = self.publish_pending() {
                    tracing::error!(error = %err, "alert publication failed");
                }
                group = Group::new();
            }
        }
        let published = self.publish_pending();
        if let (Err(_), Err(also)) = (&outcome, &published) {
            tracing::error!(error = %also, "alert publication failed");
        }
        outcome.and(published)
    }

    /// Evaluates one learner in each program they are enrolled in and
    /// writes the resulting alert changes.
    pub fn evaluate_learner(&self, learner: &str, now: Micros) -> Result<()> {
        self.evaluate_learner_in(learner, now, Publish::Now)
    }

    fn evaluate_learner_in(&self, learner: &str, now: Micros, publish: Publish) -> Result<()> {
        let (enrolments, _) = self.store.learner_enrolments(learner, None, usize::MAX)?;
        if enrolments.is_empty() {
            return Ok(());
        }
        let model = self.hub().model.read().expect("model lock").clone();
        let _guard = self.hub().locks.lock_all([learner]);
        if !self.store.has_learner(learner)? {
            return Ok(()); // erased since the enrolments were read
        }
        for enrolment in &enrolments {
            let Some(program) = self.store.program(&enrolment.program_id)? else {
                continue;
            };
            let cohort = self
                .cohort_members(&program.id, false)?
                .get(learner)
                .cloned()
                .unwrap_or_default();
            let median = self
                .hub()
                .medians
                .read()
                .expect("medians lock")
                .get(&(program.id.clone(), cohort.clone()))
                .copied()
                .unwrap_or(0);
            let input = self.signal_input(&program, enrolment, now, median)?;
            let drafts = evaluate(&input, &thresholds(&program.risk_rules), model.as_deref());
            let active = self.store.active_alerts(learner, &program.id)?;
            let changes = reconcile(&active, drafts, &cohort);
            if changes.is_empty() {
                continue;
            }
            self.write_alerts(publish, |sequence| {
                changes
                    .into_iter()
                    .map(|change| {
                        let n = sequence();
                        match change {
                            AlertChange::Raise(d) => Alert {
                                id: alert_id(n),
                                learner_id: learner.to_string(),
                                program_id: program.id.clone(),
                                cohort_id: cohort.clone(),
                                kind: d.kind,
                                severity: d.severity,
                                reason: d.reason,
                                skill_id: d.skill_id,
                                signals: d.signals,
                                created_at: now,
                                updated_at: now,
                                status: AlertStatus::Open,
                                status_by: String::new(),
                                note: String::new(),
                                resolved_at: None,
                                sequence: n,
                            },
                            AlertChange::Update {
                                index,
                                draft,
                                reopen,
                            } => {
                                let mut a = active[index].clone();
                                a.severity = draft.severity;
                                a.reason = draft.reason;
                                a.skill_id = draft.skill_id;
                                a.signals = draft.signals;
                                a.cohort_id = cohort.clone();
                                a.updated_at = now;
                                if reopen {
                                    a.status = AlertStatus::Open;
                                    a.status_by.clear();
                                    a.note.clear();
                                }
                                a.sequence = n;
                                a
                            }
                            AlertChange::Clear { index } => {
                                let mut a = active[index].clone();
                                a.status = AlertStatus::Resolved;
                                a.status_by = RESOLVED_BY_ENGINE.to_string();
                                a.note = "condition cleared".to_string();
                                a.resolved_at = Some(now);
                                a.updated_at = now;
                                a.sequence = n;
                                a
                            }
                        }
                    })
                    .collect()
            })?;
        }
        self.hub().evaluations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Numbers, commits and publishes alert changes built by `build`
    /// (which draws sequence numbers from the closure it is given), under
    /// the sequence lock: the log, the numbers and the publication agree.
    /// Nothing is numbered if the commit fails. If the flush fails, the
    /// numbers are taken (the store holds the change) but nothing is
    /// published: the next successful flush publishes it, in order.
    fn write_alerts(
        &self,
        publish: Publish,
        build: impl FnOnce(&mut dyn FnMut() -> u64) -> Vec<Alert>,
    ) -> Result<Vec<Alert>> {
        let hub = self.hub();
        let mut numbering = hub.sequence.lock().expect("sequence lock");
        let mut next = numbering.last;
        let alerts = build(&mut || {
            next += 1;
            next
        });
        if alerts.is_empty() {
            return Ok(alerts);
        }
        self.store.commit_alerts(&alerts)?;
        numbering.last = next;
        numbering.unpublished.extend(alerts.iter().cloned());
        if publish == Publish::Now {
            self.publish(&mut numbering)?;
        }
        Ok(alerts)
    }

    /// Flushes and publishes the changes committed but not published yet.
    fn publish_pending(&self) -> Result<()> {
        let mut numbering = self.hub().sequence.lock().expect("sequence lock");
        self.publish(&mut numbering)
    }

    /// Flushes, then publishes every unpublished change in sequence order;
    /// called with the sequence lock held.
    fn publish(&self, numbering: &mut Numbering) -> Result<()> {
        if numbering.unpublished.is_empty() {
            return Ok(());
        }
        self.store.sync()?;
        let hub = self.hub();
        for alert in numbering.unpublished.drain(..) {
            // No receiver is fine: nobody is watching.
            let _ = hub.sender.send(Arc::new(alert));
        }
        Ok(())
    }

    /// Drops the cached learner → cohort map of a program after its cohorts
    /// changed, so that the next alert names the learner's new cohort (and
    /// reaches that cohort's trainer) at once.
    pub(crate) fn forget_cohort_members(&self, program: &str) {
        self.hub()
            .cohorts
            .lock()
            .expect("cohort cache lock")
            .remove(program);
    }

    /// The learner → cohort map of a program, read again when older than
    /// [`COHORT_CACHE_TTL`] or when `fresh`.
    fn cohort_members(&self, program: &str, fresh: bool) -> Result<HashMap<String, String>> {
        let hub = self.hub();
        if !fresh {
            let cache = hub.cohorts.lock().expect("cohort cache lock");
            if let Some(map) = cache.get(program) {
                if map.read_at.elapsed() < COHORT_CACHE_TTL {
                    return Ok(map.members.clone());
                }
            }
        }
        let mut members = HashMap::new();
        for cohort in self.store.program_cohorts(program)? {
            for learner in cohort.members {
                members.insert(learner, cohort.id.clone());
            }
        }
        hub.cohorts.lock().expect("cohort cache lock").insert(
            program.to_string(),
            CohortMap {
                read_at: Instant::now(),
                members: members.clone(),
            },
        );
        Ok(members)
    }

    /// Gathers what the signals of one learner in one program depend on,
    /// from the store, as of `now`.
    pub fn signal_input(
        &self,
        program: &Program,
        enrolment: &Enrolment,
        now: Micros,
        cohort_median_time_spent_ms: u64,
    ) -> Result<SignalInput> {
        let learner = enrolment.learner_id.as_str();
        let catalog = self.catalog();
        let plan = completion_plan(&catalog, program);
        let modules = plan.modules();
        let attempts = self.skill_history(learner, &program.skill_ids, now)?;
        let activities = self.store.learner_activities(learner)?;
        let mut last_activity_at = None;
        let mut completed = BTreeSet::new();
        let mut time_spent_ms = 0;
        for a in activities.iter().map(|s| &s.activity) {
            if a.occurred_at > now {
                continue;
            }
            last_activity_at = last_activity_at.max(Some(a.occurred_at));
            if modules.contains(a.module_id.as_str()) {
                time_spent_ms += a.time_spent_ms;
                if a.kind == crate::domain::activity::ActivityKind::Completed {
                    completed.insert(a.module_id.as_str());
                }
            }
        }
        // Program modules recommended to the learner, and how many of them
        // the learner opened after the first recommendation.
        let mut recommended_modules = 0;
        let mut recommended_started = 0;
        for (module, first) in self.store.recommended(learner)? {
            if first > now || !modules.contains(module.as_str()) {
                continue;
            }
            recommended_modules += 1;
            let opened = activities.iter().any(|a| {
                a.activity.module_id == module
                    && a.activity.occurred_at >= first
                    && a.activity.occurred_at <= now
            });
            if opened {
                recommended_started += 1;
            }
        }
        Ok(SignalInput {
            now,
            calendar: ProgramCalendar {
                starts_at: program.start_date.unwrap_or(0),
                ends_at: program.end_date.unwrap_or(0),
                units: plan.units() as u32,
            },
            enrolled_at: enrolment.enrolled_at,
            last_activity_at,
            units_completed: plan.covered(|m| completed.contains(m)) as u32,
            attempts,
            time_spent_ms,
            cohort_median_time_spent_ms,
            recommended_modules,
            recommended_started,
            skill_names: program
                .skill_ids
                .iter()
                .filter_map(|s| {
                    catalog
                        .skills
                        .get(s)
                        .filter(|k| !k.name.is_empty())
                        .map(|k| (s.clone(), k.name.clone()))
                })
                .collect(),
        })
    }

    /// A learner's answers on `skills` up to `now`, oldest first, with the
    /// P(mastered) before and after each under the parameters in force.
    pub fn skill_history(
        &self,
        learner: &str,
        skills: &[String],
        now: Micros,
    ) -> Result<Vec<SkillAttempt>> {
        let params = self.params();
        let mut answers: Vec<(Micros, String, &str, Observation)> = Vec::new();
        for skill in skills {
            for (position, obs) in self.store.observations(learner, skill)? {
                if position.occurred_at <= now {
                    answers.push((position.occurred_at, position.attempt_id, skill, obs));
                }
            }
        }
        answers.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        Ok(trace_mastery(
            answers
                .iter()
                .map(|(at, _, skill, obs)| (*skill, *obs, *at)),
            |skill| *params.for_skill(skill),
        ))
    }

    /// One alert, or NOT_FOUND. Blocking: changes waiting for publication
    /// are flushed first, so that no alert is shown before it is durable.
    pub fn alert(&self, id: &str) -> Result<Alert> {
        self.publish_pending()?;
        self.store
            .alert(id)?
            .ok_or_else(|| Error::not_found("alert", id))
    }

    /// A page of alerts in creation order; filters on unknown programs,
    /// cohorts or learners are NOT_FOUND. Blocking, as [`Engine::alert`].
    pub fn list_alerts(
        &self,
        who: &Principal,
        filter: AlertFilter,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Alert>> {
        if let Some(program) = &filter.program {
            self.program(program)?;
        }
        if let Some(learner) = &filter.learner {
            self.learner(learner)?;
        }
        if let Some(cohort) = &filter.cohort {
            if self.store.cohort(cohort)?.is_none() {
                return Err(Error::not_found("cohort", cohort.clone()));
            }
        }
        self.publish_pending()?;
        // Scope first, then page: a scoped key's pages and tokens only
        // ever hold alerts it may see.
        self.store.list_alerts(
            |a| Ok(filter.matches(a) && self.sees_row(who, &a.learner_id, &a.cohort_id)?),
            after,
            limit,
        )
    }

    /// Acknowledges or resolves an alert for a trainer. Acting twice is a
    /// no-op; acknowledging a resolved alert is refused. The caller waits
    /// for durability before replying.
    pub fn act_on_alert(
        &self,
        id: &str,
        action: TrainerAction,
        by: &str,
        note: &str,
    ) -> Result<Alert> {
        let learner = self.alert(id)?.learner_id;
        let _guard = self.hub().locks.lock_all([learner.as_str()]);
        // Read again under the lock: an evaluation may have changed it.
        let current = self.alert(id)?;
        let target = match action {
            TrainerAction::Acknowledge => AlertStatus::Acknowledged,
            TrainerAction::Resolve => AlertStatus::Resolved,
        };
        if current.status == target {
            return Ok(current);
        }
        if current.status == AlertStatus::Resolved {
            return Err(Error::FailedPrecondition(format!(
                "alert '{id}' is resolved and cannot be acknowledged"
            )));
        }
        let now = now_micros();
        let mut written = self.write_alerts(Publish::Now, |sequence| {
            let mut a = current;
            a.status = target;
            a.status_by = by.to_string();
            a.note = note.to_string();
            a.updated_at = now;
            if target == AlertStatus::Resolved {
                a.resolved_at = Some(now);
            }
            a.sequence = sequence();
            vec![a]
        })?;
        Ok(written.remove(0))
    }

    /// Starts a watch: checks the scope and position, then streams the
    /// active alerts in scope (or every change after `after_sequence`)
    /// followed by live changes, on a bounded channel fed by a task of its
    /// own. A slow reader only slows its own task; ingestion never waits.
    pub fn watch_alerts(
        self: &Arc<Self>,
        scope: AlertScope,
        after_sequence: u64,
    ) -> Result<mpsc::Receiver<Result<WatchEvent>>> {
        for cohort in &scope.cohorts {
            if self.store.cohort(cohort)?.is_none() {
                return Err(Error::not_found("cohort", cohort.clone()));
            }
        }
        if let Some(program) = &scope.program {
            self.program(program)?;
        }
        // Subscribe before reading the state: nothing falls in between.
        let receiver = self.hub().sender.subscribe();
        let latest = self.alert_sequence();
        if after_sequence > latest {
            return Err(Error::invalid(
                "after_sequence",
                format!("is beyond the latest alert sequence {latest}"),
            ));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let engine = self.clone();
        let stopped = self.hub().stopped.subscribe();
        tokio::spawn(async move {
            if let Err(err) = engine
                .run_watch(scope, after_sequence, receiver, stopped, &tx)
                .await
            {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(rx)
    }

    /// The body of one watch; returns when the client is gone, the server
    /// stops, or a read fails.
    async fn run_watch(
        self: Arc<Self>,
        scope: AlertScope,
        after_sequence: u64,
        mut receiver: broadcast::Receiver<Arc<Alert>>,
        mut stopped: watch::Receiver<bool>,
        tx: &mpsc::Sender<Result<WatchEvent>>,
    ) -> Result<()> {
        let send = |alert: Arc<Alert>, snapshot: bool| async move {
            tx.send(Ok(WatchEvent { alert, snapshot })).await.is_ok()
        };
        if *stopped.borrow_and_update() {
            return Ok(());
        }
        let mut last = if after_sequence == 0 {
            // The snapshot and its sequence are read under the sequence
            // lock, so they describe one moment.
            let engine = self.clone();
            let (latest, active) = tokio::task::spawn_blocking(move || {
                let mut numbering = engine.hub().sequence.lock().expect("sequence lock");
                // Only durable changes may be shown: publish what waits.
                engine.publish(&mut numbering)?;
                engine
                    .store
                    .all_active_alerts()
                    .map(|a| (numbering.last, a))
            })
            .await
            .map_err(|e| Error::Storage(format!("alert snapshot task failed: {e}")))??;
            let mut active: Vec<Alert> = active.into_iter().filter(|a| scope.matches(a)).collect();
            active.sort_by_key(|a| a.sequence);
            for alert in active {
                if !send(Arc::new(alert), true).await {
                    return Ok(());
                }
            }
            latest
        } else {
            after_sequence
        };
        // Replay the log from `last`, then follow the channel; a lag sends
        // us back to the log.
        let mut catch_up = after_sequence != 0;
        loop {
            if catch_up {
                loop {
                    let engine = self.clone();
                    let from = last;
                    let batch = tokio::task::spawn_blocking(move || {
                        // Read after subscribing (and off the runtime: a
                        // flush may hold the lock): a change past this
                        // bound is published later, so the channel brings it.
                        let through = engine
                            .hub()
                            .sequence
                            .lock()
                            .expect("sequence lock")
                            .durable();
                        engine
                            .store
                            .alert_changes_after(from, through, CATCH_UP_BATCH)
                    })
                    .await
                    .map_err(|e| Error::Storage(format!("alert log task failed: {e}")))??;
                    let done = batch.len() < CATCH_UP_BATCH;
                    for alert in batch {
                        last = alert.sequence;
                        if scope.matches(&alert) && !send(Arc::new(alert), false).await {
                            return Ok(());
                        }
                    }
                    if done {
                        break;
                    }
                }
                catch_up = false;
            }
            tokio::select! {
                received = receiver.recv() => match received {
                    Ok(alert) => {
                        if alert.sequence <= last {
                            continue;
                        }
                        last = alert.sequence;
                        if scope.matches(&alert) && !send(alert, false).await {
                            return Ok(());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => catch_up = true,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = stopped.changed() => return Ok(()),
                _ = tx.closed() => return Ok(()),
            }
        }
    }
}

/// What completing a program takes, from the catalog: one module per
/// program skill that has any. Its `modules()` are the program's modules
/// (those teaching at least one of its skills).
pub fn completion_plan(catalog: &super::Catalog, program: &Program) -> CompletionPlan {
    CompletionPlan::new(
        program.skill_ids.iter().map(String::as_str),
        catalog
            .modules
            .iter()
            .map(|m| (m.id.as_str(), m.skill_ids.iter().map(String::as_str))),
    )
}

/// The alert sequence and what awaits publication, under one lock.
struct Numbering {
    /// The latest sequence number given.
    last: u64,
    /// Changes committed, in sequence order, not yet flushed and
    /// published (a periodic pass publishes in groups).
    unpublished: Vec<Alert>,
}

impl Numbering {
    /// The latest sequence number known to be on disk: what a watcher
    /// catching up from the log may read up to (the log holds a change as
    /// soon as it is committed, a moment before it is flushed).
    fn durable(&self) -> u64 {
        self.unpublished
            .first()
            .map_or(self.last, |a| a.sequence - 1)
    }
}

/// When [`Engine::write_alerts`] publishes what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// At once: flush, then tell watchers.
    Now,
    /// With the next group ([`Engine::publish_pending`]): the evaluation
    /// thread and the periodic pass.
    Later,
}

/// Learners a periodic pass or an evaluation round evaluates between two
/// publications (a flush each), and the longest a group lasts: together
/// they bound how long a change waits.
const PUBLISH_EVERY: usize = 256;
const PUBLISH_WITHIN: Duration = Duration::from_millis(100);

/// Learners evaluated since the last publication.
struct Group {
    started: Instant,
    evaluated: usize,
}

impl Group {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            evaluated: 0,
        }
    }

    /// Counts one more learner; whether the group must be published now.
    fn full(&mut self) -> bool {
        self.evaluated += 1;
        self.evaluated >= PUBLISH_EVERY || self.started.elapsed() >= PUBLISH_WITHIN
    }
}

/// Learners touched since the evaluation thread last took them, and
/// whether it waits for more (only then does a touch need to wake it).
#[derive(Default)]
struct Pending {
    learners: BTreeSet<String>,
    waiting: bool,
}

/// The evaluation thread: drains the pending set whenever woken.
fn evaluation_loop(engine: Weak<Engine>) {
    loop {
        // The engine is held for one round at a time (a wait included), so
        // that dropping it is delayed by one wait at most.
        let Some(strong) = engine.upgrade() else {
            return;
        };
        let hub = strong.hub();
        let batch: Vec<String> = {
            let mut pending = hub.pending.lock().expect("pending lock");
            if pending.learners.is_empty() && !hub.stop.load(Ordering::SeqCst) {
                pending.waiting = true;
                pending = hub
                    .wake
                    .wait_timeout(pending, Duration::from_millis(200))
                    .expect("pending lock")
                    .0;
                pending.waiting = false;
            }
            if hub.stop.load(Ordering::SeqCst) {
                return;
            }
            std::mem::take(&mut pending.learners).into_iter().collect()
        };
        let now = now_micros();
        let worked = !batch.is_empty();
        let evaluated =
            strong.evaluate_in_groups(batch.iter().map(String::as_str), now, |learner, err| {
                tracing::error!(error = %err, learner = %learner, "alert evaluation failed");
                Ok(())
            });
        if let Err(err) = evaluated {
            tracing::error!(error = %err, "alert publication failed");
        }
        drop(strong);
        if worked {
            // Let touches accumulate: under load a learner answering ten
            // times a second is evaluated a few times a second, not ten,
            // and ingestion keeps the CPU; alerts still arrive well within
            // the one-second promise.
            std::thread::sleep(EVALUATION_COALESCE);
        }
    }
}

/// Pause after an evaluation round, so that touches coalesce.
pub const EVALUATION_COALESCE: Duration = Duration::from_millis(200);

/// The periodic pass thread: one pass at start, then one per interval.
fn pass_loop(engine: Weak<Engine>) {
    loop {
        let interval = {
            let Some(strong) = engine.upgrade() else {
                return;
            };
            if strong.hub().stop.load(Ordering::SeqCst) {
                return;
            }
            let started = Instant::now();
            match strong.evaluate_all_alerts() {
                Ok(n) => tracing::debug!(
                    learners = n,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "alert pass done"
                ),
                Err(err) => tracing::error!(error = %err, "alert pass failed"),
            }
            Duration::from_millis(strong.hub().pass_interval_ms.load(Ordering::SeqCst))
        };
        // Sleep in short steps so that a stop is seen quickly.
        let deadline = Instant::now() + interval;
        while Instant::now() < deadline {
            std::thread::park_timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200)),
            );
            match engine.upgrade() {
                Some(e) if !e.hub().stop.load(Ordering::SeqCst) => {}
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::learner::CohortRules;
    use crate::domain::mastery::test_attempt;
    use crate::engine::testing::{engine, learner, skill_s_and_learner_l};

    /// Program `p` over skill `s`, and `learners` learners `l0`, `l1`...
    /// enrolled in it, each with three failures on `s` (a blocking point
    /// once evaluated).
    async fn blocked_learners(engine: &Engine, learners: usize) {
        skill_s_and_learner_l(engine, vec![]).await;
        engine
            .upsert_program(Program {
                external_ids: Vec::new(),
                id: "p".into(),
                name: "P".into(),
                skill_ids: vec!["s".into()],
                cohort_rules: CohortRules::default(),
                start_date: None,
                end_date: None,
                risk_rules: Default::default(),
            })
            .await
            .unwrap();
        for n in 0..learners {
            let id = format!("l{n}");
            engine.upsert_learner(learner(&id)).await.unwrap();
            engine.enroll(&id, "p").await.unwrap();
            let failures = (0..3)
                .map(|k| {
                    let mut a =
                        test_attempt(&format!("{id}-{k}"), 1_700_000_000_000_000 + k, false);
                    a.learner_id = id.clone();
                    a
                })
                .collect();
            engine.record_attempts(failures).await.unwrap();
        }
    }

    /// A periodic pass publishes its changes in groups: every change
    /// reaches watchers, in sequence order, and only once durable.
    #[tokio::test]
    async fn a_pass_publishes_every_change_in_order_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        // More learners than one publication group.
        let learners = PUBLISH_EVERY + 44;
        blocked_learners(&engine, learners).await;
        let mut watcher = engine.hub().sender.subscribe();
        assert_eq!(engine.evaluate_all_alerts().unwrap(), learners);
        let mut seen = Vec::new();
        while let Ok(alert) = watcher.try_recv() {
            seen.push(alert.sequence);
        }
        assert_eq!(seen.len(), learners, "one blocking point each");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in sequence order");
        assert_eq!(
            engine.hub().sequence.lock().unwrap().durable(),
            *seen.last().unwrap()
        );
        assert!(
            engine.hub().sequence.lock().unwrap().unpublished.is_empty(),
            "nothing left waiting"
        );
    }

    /// An erasure publishes the learner's waiting changes first and leaves
    /// none of them waiting: nothing about the learner goes out after it.
    #[tokio::test]
    async fn an_erasure_leaves_no_change_of_the_learner_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        blocked_learners(&engine, 2).await;
        engine
            .evaluate_learner_in("l0", now_micros(), Publish::Later)
            .unwrap();
        engine
            .evaluate_learner_in("l1", now_micros(), Publish::Later)
            .unwrap();
        let mut watcher = engine.hub().sender.subscribe();
        engine.erase_learner("l0").unwrap();
        let waiting = engine.hub().sequence.lock().unwrap().unpublished.len();
        assert_eq!(waiting, 0, "published before the erasure");
        let mut seen = Vec::new();
        while let Ok(alert) = watcher.try_recv() {
            seen.push(alert.learner_id.clone());
        }
        assert_eq!(seen, ["l0", "l1"], "in order, before the erasure");
    }
}
