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
//!
//! Files: `hub.rs` (the shared state, numbering, publication, bulk loads
//! and the two background threads), `input.rs` (what the signals read,
//! from the store), `evaluation.rs` (rules, models and the changes they
//! make), `budget.rs` (open alerts per group, the digest), `pauses.rs`
//! (declared pauses and withdrawals), `actions.rs` (reads and trainer
//! actions), `watch.rs` (live streams with catch-up from the log).

mod actions;
mod budget;
mod evaluation;
mod hub;
mod input;
mod pauses;
mod watch;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::alerts::{Alert, AlertStatus};
use crate::domain::completion::CompletionPlan;
use crate::domain::learner::{Program, RiskRules};
use crate::domain::risk::{AlertKind, RiskModels, RiskThresholds};
use crate::error::{Error, Result};
pub use budget::{DEFAULT_ALERTS_PER_25, DigestEntry};
pub use hub::{AlertHub, EVALUATION_COALESCE, LIVE_LAG, LOAD_SETTLE, MAX_HOLD};

/// The shipped alert models, embedded at compile time: a server started
/// from another directory still scores learners.
pub const SHIPPED_RISK_MODEL: &str = include_str!("../../../models/risk.json");

/// Default interval of the full evaluation pass (inactivity needs no event
/// to become true).
pub const DEFAULT_PASS_INTERVAL: Duration = Duration::from_secs(60);

/// Alert changes buffered for watchers; a watcher further behind catches
/// up from the log.
pub const BROADCAST_CAPACITY: usize = 4096;

/// Events buffered per watcher between its task and its gRPC stream.
pub const WATCH_BUFFER: usize = 256;

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
    /// Only this kind; [`AlertKind::PredictedDropout`], the retired kind,
    /// also matches the two that replace it (behind schedule, stopping), so
    /// that a client filtering on it keeps seeing model alerts.
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
            && self.kind.is_none_or(|k| {
                k == a.kind
                    || (k == AlertKind::PredictedDropout
                        && matches!(a.kind, AlertKind::BehindSchedule | AlertKind::Stopping))
            })
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

/// The program's thresholds: defaults overridden by its rules. A changed
/// warning threshold moves the critical one with it (twice the days, 0.2
/// further for a drop). A program's `inactivity_days` is the fewest days
/// away before a "check in" whatever the learner's rhythm.
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

/// Loads an alert model file (`--risk-model`).
pub fn load_risk_model(path: &std::path::Path) -> Result<RiskModels> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(path.display().to_string(), format!("cannot read: {e}")))?;
    RiskModels::from_json(&text).map_err(|e| match e {
        Error::InvalidArgument { field, reason } => {
            Error::invalid(format!("{}: {field}", path.display()), reason)
        }
        other => other,
    })
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
