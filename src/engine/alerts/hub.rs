//! The alert state of a running engine: sequence numbering, commit and
//! publication of changes, the queue of learners waiting for evaluation
//! (and those held while a bulk load arrives), and the two background
//! threads (evaluation, periodic pass).
//!
//! History is not news: a learner whose newest event is older than
//! [`LIVE_LAG`] when touched was touched by a bulk load (an LMS sending
//! its history). While such touches keep coming, every touched learner is
//! held instead of evaluated, and the periodic pass waits; once none came
//! for [`LOAD_SETTLE`], one full pass evaluates everyone, so a load raises
//! its alerts once, at its end, and none that the rest of the load would
//! resolve.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{broadcast, watch};

use super::super::locks::StripedLocks;
use super::super::{Engine, now_micros};
use super::budget::{BudgetIndex, DEFAULT_ALERTS_PER_25};
use super::evaluation::Mode;
use super::{BROADCAST_CAPACITY, DEFAULT_PASS_INTERVAL, SHIPPED_RISK_MODEL};
use crate::domain::alerts::Alert;
use crate::domain::learner::Micros;
use crate::domain::risk::RiskModels;
use crate::error::{Error, Result};

/// A touched learner whose newest event is older than this was touched by
/// a bulk load, not by a learner at work.
pub const LIVE_LAG: Micros = 15 * 60 * 1_000_000;

/// A bulk load has ended once no learner was touched by one for this long.
pub const LOAD_SETTLE: Duration = Duration::from_secs(5);

/// Longest a bulk load holds evaluations: past it, a full pass runs even
/// while the load goes on.
pub const MAX_HOLD: Duration = Duration::from_secs(600);

/// How long a program's learner → cohort map is reused (moves and
/// formations show up in alerts within this delay).
const COHORT_CACHE_TTL: Duration = Duration::from_secs(1);

/// A program's learner → cohort map and when it was read.
struct CohortMap {
    read_at: Instant,
    members: HashMap<String, String>,
}

/// The alert state of a running engine.
pub struct AlertHub {
    /// The alert models in force (`None` disables model alerts).
    pub(super) model: RwLock<Option<Arc<RiskModels>>>,
    /// Publication of every alert change.
    pub(super) sender: broadcast::Sender<Arc<Alert>>,
    /// The latest sequence number and the committed changes not published
    /// yet; held while a change is numbered, committed, flushed and
    /// published.
    pub(super) sequence: Mutex<AlertSequence>,
    /// Learners waiting for evaluation.
    pending: Mutex<EvaluationQueue>,
    /// Wakes the evaluation thread.
    wake: Condvar,
    /// Serializes evaluations and trainer actions per learner.
    pub(super) locks: StripedLocks,
    /// Learner → cohort per program, cached briefly.
    cohorts: Mutex<HashMap<String, CohortMap>>,
    /// Median time spent per (program, cohort id) in milliseconds,
    /// refreshed by each full pass; `""` is the program-wide median.
    pub(super) medians: RwLock<HashMap<(String, String), u64>>,
    /// Interval of the full pass, in milliseconds.
    pass_interval_ms: AtomicU64,
    /// Quiet time that ends a bulk load, in milliseconds ([`LOAD_SETTLE`]).
    load_settle_ms: AtomicU64,
    /// Set to stop the background threads and end every watch.
    pub(super) stop: AtomicBool,
    /// Tells watchers to end (server shutdown).
    pub(super) stopped: watch::Sender<bool>,
    /// The evaluation and pass threads, once started.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Evaluations done since start (figures for benchmarks and logs).
    pub(super) evaluations: AtomicU64,
    /// The budget: open alerts per group, group sizes, the digest.
    pub(super) budget: Mutex<BudgetIndex>,
    /// Serializes full passes (the pass thread, the end of a load).
    pub(super) pass_lock: Mutex<()>,
    /// Evaluation rounds and passes running now.
    in_flight: AtomicUsize,
}

/// Counts a running evaluation round while alive.
pub(super) struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AlertHub {
    /// Marks an evaluation round as running until the guard drops.
    pub(super) fn busy(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(&self.in_flight)
    }
}

impl AlertHub {
    /// Builds the hub over a store's alert log with the shipped model.
    pub fn new(last_sequence: u64) -> Result<Self> {
        let model = RiskModels::from_json(SHIPPED_RISK_MODEL)?;
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (stopped, _) = watch::channel(false);
        Ok(Self {
            model: RwLock::new(Some(Arc::new(model))),
            sender,
            sequence: Mutex::new(AlertSequence {
                last: last_sequence,
                unpublished: Vec::new(),
            }),
            pending: Mutex::new(EvaluationQueue::default()),
            wake: Condvar::new(),
            locks: StripedLocks::new(256),
            cohorts: Mutex::new(HashMap::new()),
            medians: RwLock::new(HashMap::new()),
            pass_interval_ms: AtomicU64::new(DEFAULT_PASS_INTERVAL.as_millis() as u64),
            load_settle_ms: AtomicU64::new(LOAD_SETTLE.as_millis() as u64),
            stop: AtomicBool::new(false),
            stopped,
            threads: Mutex::new(Vec::new()),
            evaluations: AtomicU64::new(0),
            budget: Mutex::new(BudgetIndex::new(DEFAULT_ALERTS_PER_25)),
            pass_lock: Mutex::new(()),
            in_flight: AtomicUsize::new(0),
        })
    }
}

impl Engine {
    pub(super) fn hub(&self) -> &AlertHub {
        &self.alerts
    }

    /// Replaces the alert models (`None` turns model alerts off).
    pub fn set_risk_model(&self, model: Option<RiskModels>) {
        *self.hub().model.write() = model.map(Arc::new);
    }

    /// Sets the budget: open alerts per 25 learners of a group (0: no
    /// budget). Takes effect at the next seat taken.
    pub fn set_alert_budget(&self, per_25: u32) {
        self.hub().budget.lock().per_25 = per_25;
    }

    /// The drafts waiting for room in a program (or one of its cohorts),
    /// most urgent first: the digest.
    pub fn alert_digest(&self, program: &str, cohort: Option<&str>) -> Vec<super::DigestEntry> {
        self.hub().budget.lock().digest(program, cohort)
    }

    /// Open alerts and budget of a cohort of a program, or of the whole
    /// program (every group) when `cohort` is `None`.
    pub fn alert_budget_usage(
        &self,
        program: &str,
        cohort: Option<&str>,
    ) -> (usize, Option<usize>) {
        let budget = self.hub().budget.lock();
        match cohort {
            Some(c) => budget.usage(&(program.to_string(), c.to_string())),
            None => budget.program_usage(program),
        }
    }

    /// Whether alert evaluation has nothing to do: no learner queued or
    /// held by a bulk load, no round or pass running.
    pub fn alerts_idle(&self) -> bool {
        let hub = self.hub();
        let queue = hub.pending.lock();
        queue.learners.is_empty()
            && queue.held.is_empty()
            && queue.last_backfill.is_none()
            && hub.in_flight.load(Ordering::SeqCst) == 0
    }

    /// While a bulk load arrives, holds `learner` for the evaluation at its
    /// end; `backfill` says this touch belongs to one. Whether the learner
    /// was held.
    pub(super) fn hold_if_loading(&self, learner: &str, backfill: bool) -> bool {
        let mut queue = self.hub().pending.lock();
        if backfill {
            queue.last_backfill = Some(Instant::now());
            queue.hold_started.get_or_insert_with(Instant::now);
        }
        if queue.last_backfill.is_some() {
            queue.held.insert(learner.to_string());
            true
        } else {
            false
        }
    }

    /// Whether a bulk load is arriving (the periodic pass waits).
    fn loading(&self) -> bool {
        self.hub().pending.lock().last_backfill.is_some()
    }

    /// Ends the current bulk load if it settled (or held too long): forgets
    /// the held learners, whom the full pass that follows evaluates.
    /// Whether it ended.
    fn end_load_if_settled(&self) -> bool {
        let quiet = Duration::from_millis(self.hub().load_settle_ms.load(Ordering::SeqCst));
        let mut queue = self.hub().pending.lock();
        let settled = queue.last_backfill.is_some_and(|t| t.elapsed() >= quiet)
            || queue.hold_started.is_some_and(|t| t.elapsed() >= MAX_HOLD);
        if settled {
            queue.last_backfill = None;
            queue.hold_started = None;
            queue.held.clear();
        }
        settled
    }

    /// Sets the interval of the full pass; takes effect after the current
    /// wait.
    pub fn set_alert_pass_interval(&self, interval: Duration) {
        self.hub()
            .pass_interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    /// Sets the quiet time that ends a bulk load (default [`LOAD_SETTLE`]):
    /// an LMS whose history arrives with longer pauses between batches
    /// needs more, and a test on a loaded machine sets it long so that a
    /// stalled client does not end its load halfway.
    pub fn set_load_settle(&self, quiet: Duration) {
        self.hub()
            .load_settle_ms
            .store(quiet.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    /// Evaluations done since start.
    pub fn alert_evaluations(&self) -> u64 {
        self.hub().evaluations.load(Ordering::Relaxed)
    }

    /// The latest alert sequence number.
    pub fn alert_sequence(&self) -> u64 {
        self.hub().sequence.lock().last
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
        self.hub().sequence.lock().durable()
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
            .unpublished
            .retain(|a| a.learner_id != learner);
        {
            let mut queue = hub.pending.lock();
            queue.learners.remove(learner);
            queue.held.remove(learner);
        }
        hub.cohorts.lock().clear();
        hub.budget.lock().forget_learner(learner);
        if let Err(err) = self.store.erase_alert_state(learner) {
            tracing::error!(error = %err, learner, "erasing pauses and episodes failed");
        }
        out
    }

    /// Queues learners whose data just became durable for evaluation.
    /// Never blocks on evaluation: a set insert and a wake-up.
    pub fn alerts_touched<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        let hub = self.hub();
        let mut pending = hub.pending.lock();
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
        let mut threads = self.hub().threads.lock();
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
        let _pending = hub.pending.lock();
        hub.wake.notify_all();
    }

    /// [`Engine::signal_alerts_stop`], then waits for the background
    /// threads (they check the stop flag between learners).
    pub fn stop_alerts(&self) {
        self.signal_alerts_stop();
        let hub = self.hub();
        let threads = std::mem::take(&mut *hub.threads.lock());
        for thread in threads {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }

    /// Numbers, commits and publishes alert changes built by `build`
    /// (which draws sequence numbers from the closure it is given), under
    /// the sequence lock: the log, the numbers and the publication agree.
    /// Nothing is numbered if the commit fails. If the flush fails, the
    /// numbers are taken (the store holds the change) but nothing is
    /// published: the next successful flush publishes it, in order.
    pub(super) fn write_alerts(
        &self,
        publish: Publication,
        build: impl FnOnce(&mut dyn FnMut() -> u64) -> Vec<Alert>,
    ) -> Result<Vec<Alert>> {
        let hub = self.hub();
        let mut sequence_state = hub.sequence.lock();
        let mut next = sequence_state.last;
        let alerts = build(&mut || {
            next += 1;
            next
        });
        if alerts.is_empty() {
            return Ok(alerts);
        }
        self.store.commit_alerts(&alerts)?;
        sequence_state.last = next;
        sequence_state.unpublished.extend(alerts.iter().cloned());
        {
            let mut budget = hub.budget.lock();
            for a in &alerts {
                budget.record(a);
            }
        }
        if publish == Publication::Immediate {
            self.publish(&mut sequence_state)?;
        }
        Ok(alerts)
    }

    /// Stores alerts whose figures were recomputed, in place: the same
    /// sequence number, no log entry, no publication (not news). The
    /// caller holds the learner's lock, as every writer of the learner's
    /// alerts does.
    pub(super) fn refresh_alerts(&self, alerts: &[Alert]) -> Result<()> {
        for alert in alerts {
            self.store.refresh_alert(alert)?;
        }
        Ok(())
    }

    /// Flushes and publishes the changes committed but not published yet.
    pub(super) fn publish_pending(&self) -> Result<()> {
        let mut sequence_state = self.hub().sequence.lock();
        self.publish(&mut sequence_state)
    }

    /// Flushes, then publishes every unpublished change in sequence order;
    /// called with the sequence lock held.
    pub(super) fn publish(&self, sequence_state: &mut AlertSequence) -> Result<()> {
        if sequence_state.unpublished.is_empty() {
            return Ok(());
        }
        self.store.sync()?;
        let hub = self.hub();
        for alert in sequence_state.unpublished.drain(..) {
            // No receiver is fine: nobody is watching.
            let _ = hub.sender.send(Arc::new(alert));
        }
        Ok(())
    }

    /// Drops the cached learner → cohort map of a program after its cohorts
    /// changed, so that the next alert names the learner's new cohort (and
    /// reaches that cohort's trainer) at once.
    pub(crate) fn forget_cohort_members(&self, program: &str) {
        self.hub().cohorts.lock().remove(program);
        self.hub().budget.lock().forget_sizes(program);
    }

    /// The learner → cohort map of a program, read again when older than
    /// [`COHORT_CACHE_TTL`] or when `fresh`.
    pub(super) fn cohort_members(
        &self,
        program: &str,
        fresh: bool,
    ) -> Result<HashMap<String, String>> {
        let hub = self.hub();
        if !fresh {
            let cache = hub.cohorts.lock();
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
        hub.cohorts.lock().insert(
            program.to_string(),
            CohortMap {
                read_at: Instant::now(),
                members: members.clone(),
            },
        );
        Ok(members)
    }
}

/// The alert sequence and what awaits publication, under one lock.
pub(super) struct AlertSequence {
    /// The latest sequence number given.
    pub(super) last: u64,
    /// Changes committed, in sequence order, not yet flushed and
    /// published (a periodic pass publishes in groups).
    pub(super) unpublished: Vec<Alert>,
}

impl AlertSequence {
    /// The latest sequence number known to be on disk: what a watcher
    /// catching up from the log may read up to (the log holds a change as
    /// soon as it is committed, a moment before it is flushed).
    pub(super) fn durable(&self) -> u64 {
        self.unpublished
            .first()
            .map_or(self.last, |a| a.sequence - 1)
    }
}

/// When [`Engine::write_alerts`] publishes what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publication {
    /// At once: flush, then tell watchers.
    Immediate,
    /// With the next group ([`Engine::publish_pending`]): the evaluation
    /// thread and the periodic pass.
    WithGroup,
}

/// Learners a periodic pass or an evaluation round evaluates between two
/// publications (a flush each), and the longest a group lasts: together
/// they bound how long a change waits.
const PUBLISH_EVERY: usize = 256;
const PUBLISH_WITHIN: Duration = Duration::from_millis(100);

/// Learners evaluated since the last publication.
pub(super) struct PublicationGroup {
    started: Instant,
    evaluated: usize,
}

impl PublicationGroup {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            evaluated: 0,
        }
    }

    /// Counts one more learner; whether the group must be published now.
    pub(super) fn full(&mut self) -> bool {
        self.evaluated += 1;
        self.evaluated >= PUBLISH_EVERY || self.started.elapsed() >= PUBLISH_WITHIN
    }
}

/// Learners touched since the evaluation thread last took them, whether
/// it waits for more (only then does a touch need to wake it), and the
/// bulk load in progress, if any.
#[derive(Default)]
struct EvaluationQueue {
    learners: BTreeSet<String>,
    waiting: bool,
    /// Learners held until the bulk load ends.
    held: BTreeSet<String>,
    /// When a learner was last touched by a bulk load; `None` when no
    /// load is in progress.
    last_backfill: Option<Instant>,
    /// When the load in progress began holding evaluations.
    hold_started: Option<Instant>,
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
        let (batch, busy) = {
            let mut pending = hub.pending.lock();
            if pending.learners.is_empty() && !hub.stop.load(Ordering::SeqCst) {
                pending.waiting = true;
                hub.wake.wait_for(&mut pending, Duration::from_millis(200));
                pending.waiting = false;
            }
            if hub.stop.load(Ordering::SeqCst) {
                return;
            }
            // Busy from the moment the queue is taken: never idle between.
            let batch: Vec<String> = std::mem::take(&mut pending.learners).into_iter().collect();
            (batch, hub.busy())
        };
        let now = now_micros();
        let worked = !batch.is_empty();
        let evaluated = strong.evaluate_in_groups(
            batch.iter().map(String::as_str),
            now,
            Mode::Live,
            |_| {},
            |learner, err| {
                tracing::error!(error = %err, learner = %learner, "alert evaluation failed");
                Ok(())
            },
        );
        if let Err(err) = evaluated {
            tracing::error!(error = %err, "alert publication failed");
        }
        if strong.end_load_if_settled() {
            let started = Instant::now();
            match strong.evaluate_all_alerts() {
                Ok(n) => tracing::info!(
                    learners = n,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "bulk load ended: every learner evaluated once"
                ),
                Err(err) => tracing::error!(error = %err, "alert pass after a bulk load failed"),
            }
        }
        drop(busy);
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
            if strong.loading() {
                // The pass at the end of the load will do.
                drop(strong);
                std::thread::park_timeout(Duration::from_millis(200));
                continue;
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
    use crate::domain::mastery::test_attempt;
    use crate::engine::testing::{engine, learner, program, skill_s_and_learner_l};

    /// Program `p` over skill `s`, and `learners` learners `l0`, `l1`...
    /// enrolled in it, each with three failures on `s` a minute ago (a
    /// blocking point once evaluated), with no budget: every one raised.
    async fn blocked_learners(engine: &Engine, learners: usize) {
        engine.set_alert_budget(0);
        skill_s_and_learner_l(engine, vec![]).await;
        engine.upsert_program(program("p", &["s"])).await.unwrap();
        for n in 0..learners {
            let id = format!("l{n}");
            engine.upsert_learner(learner(&id)).await.unwrap();
            engine.enroll(&id, "p").await.unwrap();
            let failures = (0..3)
                .map(|k| {
                    let mut a =
                        test_attempt(&format!("{id}-{k}"), now_micros() - 60_000_000 + k, false);
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
            engine.hub().sequence.lock().durable(),
            *seen.last().unwrap()
        );
        assert!(
            engine.hub().sequence.lock().unpublished.is_empty(),
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
            .evaluate_learner_in("l0", now_micros(), Publication::WithGroup, Mode::Direct)
            .unwrap();
        engine
            .evaluate_learner_in("l1", now_micros(), Publication::WithGroup, Mode::Direct)
            .unwrap();
        let mut watcher = engine.hub().sender.subscribe();
        engine.erase_learner("l0").unwrap();
        let waiting = engine.hub().sequence.lock().unpublished.len();
        assert_eq!(waiting, 0, "published before the erasure");
        let mut seen = Vec::new();
        while let Ok(alert) = watcher.try_recv() {
            seen.push(alert.learner_id.clone());
        }
        assert_eq!(seen, ["l0", "l1"], "in order, before the erasure");
    }
}
