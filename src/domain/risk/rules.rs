//! Alert rules: what to tell a trainer about a learner, and why, in words.
//!
//! [`assess`] reads one learner in one program and proposes at most one
//! [`AlertDraft`] per [`AlertKind`]:
//!
//! - *blocking point* and *mastery drop* need evidence (the failure run,
//!   the fall) no older than the history window: old events update
//!   mastery and signals but raise nothing of their own, and an alert
//!   whose evidence has aged out clears;
//! - *inactivity* compares the time away with the learner's usual gap
//!   (`engagement`): warning reads "check in", critical "probably lost";
//! - *stopping* asks the stopping model (likely to stop within 21 days)
//!   once the learner has a past to compare with (3 sessions over a week);
//! - *behind schedule* asks the behind-schedule model (will not finish on
//!   time) when the program has a calendar and the learner is behind.
//!
//! During a declared pause there is no inactivity or stopping draft; after
//! the program's end none of the three engagement kinds; a learner who
//! completed the program gets no draft at all. Choosing which draft
//! becomes an alert (one per learner, within a budget) is the caller's
//! job (`domain::alerts`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::engagement::{Engagement, engagement};
use super::features::{Features, STOP_HORIZON_DAYS, features_of, pace};
use super::model::{LinearModel, RiskModels};
use super::signals::{MICROS_PER_DAY, SignalInput, failure_streaks, mastery_falls, signals};
use crate::domain::learner::Micros;

/// Sessions a learner needs before the stopping model is asked (their own
/// past to compare with).
pub const STOPPING_MIN_SESSIONS: u32 = 3;
/// Days since the first session the stopping model needs, likewise.
pub const STOPPING_MIN_DAYS: f64 = 7.0;

/// What an alert is about.
///
/// Stored with each alert: new kinds are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// Repeated failures on one skill without mastery gain.
    BlockingPoint,
    /// Away much longer than the learner's usual gap between sessions.
    Inactivity,
    /// P(mastered) of a skill fell well below its peak.
    MasteryDrop,
    /// The former single dropout model; no longer raised (its questions
    /// are now [`AlertKind::BehindSchedule`] and [`AlertKind::Stopping`]),
    /// kept so that stored alerts stay readable.
    PredictedDropout,
    /// The learner will likely not complete the program by its end.
    BehindSchedule,
    /// The learner will likely stop within the next weeks.
    Stopping,
}

impl AlertKind {
    /// Every kind, in a stable order.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::BlockingPoint,
        AlertKind::Inactivity,
        AlertKind::MasteryDrop,
        AlertKind::PredictedDropout,
        AlertKind::BehindSchedule,
        AlertKind::Stopping,
    ];

    /// A stable snake_case name for files, logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BlockingPoint => "blocking_point",
            AlertKind::Inactivity => "inactivity",
            AlertKind::MasteryDrop => "mastery_drop",
            AlertKind::PredictedDropout => "predicted_dropout",
            AlertKind::BehindSchedule => "behind_schedule",
            AlertKind::Stopping => "stopping",
        }
    }

    /// Whether a declared pause silences this kind.
    pub fn silenced_by_pause(self) -> bool {
        matches!(self, AlertKind::Inactivity | AlertKind::Stopping)
    }

    /// Order among drafts of the same severity (higher first): a learner
    /// drifting away before one stuck on a skill, before one behind
    /// schedule (a slow problem the calendar will still show next week).
    pub fn priority(self) -> u8 {
        match self {
            AlertKind::Inactivity => 5,
            AlertKind::Stopping => 4,
            AlertKind::BlockingPoint => 3,
            AlertKind::MasteryDrop => 2,
            AlertKind::BehindSchedule => 1,
            AlertKind::PredictedDropout => 0,
        }
    }
}

/// How urgently a trainer should look; ordered `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Worth knowing, no action expected.
    Info,
    /// Look this week ("check in" for inactivity).
    Warning,
    /// Look today ("probably lost" for inactivity).
    Critical,
}

/// Per-program alert thresholds. Every field has a serde default, so a
/// configuration only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskThresholds {
    /// Consecutive failures on one skill that make a blocking point
    /// (critical at twice as many).
    pub blocking_failures: u32,
    /// A failure run counts as blocking when P(mastered) rose by at most
    /// this much over it.
    pub blocking_max_gain: f64,
    /// Fewest days away before a "check in" (whatever the rhythm).
    pub inactivity_days: f64,
    /// Fewest days away before "probably lost".
    pub inactivity_critical_days: f64,
    /// Days away, in usual gaps, before a "check in".
    pub check_in_gaps: f64,
    /// Days away, in usual gaps, before "probably lost".
    pub lost_gaps: f64,
    /// Fall of P(mastered) from its peak before a warning.
    pub mastery_drop: f64,
    /// Fall of P(mastered) from its peak before a critical alert.
    pub mastery_drop_critical: f64,
    /// P(stops within 21 days) for a stopping warning.
    pub stopping_warning: f64,
    /// P(stops within 21 days) for a critical stopping alert.
    pub stopping_critical: f64,
    /// P(not completing) for an informational behind-schedule alert.
    pub behind_info: f64,
    /// P(not completing) for a behind-schedule warning.
    pub behind_warning: f64,
    /// Days an event stays news: blocking points and mastery drops need
    /// evidence this recent.
    pub history_days: f64,
}

impl Default for RiskThresholds {
    /// Defaults for programs of a few weeks with weekly work expected.
    fn default() -> Self {
        Self {
            blocking_failures: 3,
            blocking_max_gain: 0.0,
            inactivity_days: 5.0,
            inactivity_critical_days: 14.0,
            check_in_gaps: 3.0,
            lost_gaps: 6.0,
            mastery_drop: 0.3,
            mastery_drop_critical: 0.5,
            stopping_warning: 0.2,
            stopping_critical: 0.3,
            behind_info: 0.9,
            behind_warning: 0.98,
            history_days: 7.0,
        }
    }
}

/// An alert as the rules propose it, before persistence gives it an id and
/// a lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDraft {
    /// What the alert is about.
    pub kind: AlertKind,
    /// How urgent it is.
    pub severity: Severity,
    /// Rank among drafts of the same severity, in `[0, 1]` (a model's
    /// probability, or how far past its threshold a rule is): with the
    /// severity, what the budget orders by.
    pub urgency: f64,
    /// One sentence a trainer can act on.
    pub reason: String,
    /// The skill concerned, for blocking points and mastery drops.
    pub skill_id: Option<String>,
    /// When the condition began (the first failure of a run, the peak a
    /// skill fell from, the last activity), 0 for a model's estimate:
    /// with the kind and skill, what tells one episode from the next. Also
    /// in `signals` as `episode_since`.
    pub since: Micros,
    /// The figures behind the alert: every feature plus the rule's own.
    pub signals: BTreeMap<String, f64>,
}

/// The name of the signal that holds [`AlertDraft::since`].
pub const EPISODE_SINCE: &str = "episode_since";

impl AlertDraft {
    /// Whether this draft comes before `other` in the budget: severity,
    /// then kind ([`AlertKind::priority`]), then urgency.
    pub fn outranks(&self, other: &AlertDraft) -> bool {
        rank_order(
            (self.severity, self.kind, self.urgency),
            (other.severity, other.kind, other.urgency),
        )
        .is_gt()
    }
}

/// The budget's order of two (severity, kind, urgency) triples.
pub fn rank_order(
    a: (Severity, AlertKind, f64),
    b: (Severity, AlertKind, f64),
) -> std::cmp::Ordering {
    a.0.cmp(&b.0)
        .then(a.1.priority().cmp(&b.1.priority()))
        .then(a.2.total_cmp(&b.2))
}

/// Where a learner stands in a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Still learning: drafts may follow.
    Active,
    /// Every unit covered: no alert of any kind.
    Completed,
}

/// What the rules make of one learner.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Completed or not.
    pub standing: Standing,
    /// At most one draft per kind, in [`AlertKind::ALL`] order.
    pub drafts: Vec<AlertDraft>,
    /// Every feature, with the models' scores (`stopping_risk`,
    /// `behind_schedule_risk`) when models are loaded.
    pub signals: BTreeMap<String, f64>,
}

/// Runs every rule on one learner, and the models when given.
pub fn assess(
    input: &SignalInput,
    thresholds: &RiskThresholds,
    models: Option<&RiskModels>,
) -> Assessment {
    let s = signals(input);
    let e = engagement(input);
    let features = features_of(input, &s, &e);
    let mut base = features.clone();
    let stopping = models.map(|m| m.stopping.predict(&features));
    let behind = models.map(|m| m.behind_schedule.predict(&features));
    if let Some(p) = stopping {
        base.insert("stopping_risk".into(), p);
    }
    if let Some(p) = behind {
        base.insert("behind_schedule_risk".into(), p);
    }
    let completed = input.calendar.units > 0 && input.units_completed >= input.calendar.units;
    if completed {
        return Assessment {
            standing: Standing::Completed,
            drafts: Vec::new(),
            signals: base,
        };
    }
    let window = (thresholds.history_days * MICROS_PER_DAY as f64) as Micros;
    let fresh = |at: Micros| at >= input.now - window;
    let running = input.now >= input.calendar.starts_at
        && (input.calendar.ends_at <= input.calendar.starts_at
            || input.now <= input.calendar.ends_at);
    let mut drafts = Vec::new();
    drafts.extend(blocking_point(input, thresholds, &base, fresh));
    let lost = running && !e.paused && is_lost(&e, thresholds);
    if running && !e.paused {
        drafts.extend(inactivity(&e, thresholds, &base));
    }
    drafts.extend(mastery_drop(input, thresholds, &base, fresh));
    if let (Some(models), Some(p), true) = (models, behind, running) {
        drafts.extend(behind_schedule(
            input,
            &models.behind_schedule,
            p,
            thresholds,
            &base,
        ));
    }
    // The stopping model compares recent engagement with the learner's own
    // past: it needs one.
    let has_past = e.sessions >= STOPPING_MIN_SESSIONS && e.tenure_days >= STOPPING_MIN_DAYS;
    if let (Some(models), Some(p), true, false) =
        (models, stopping, running && !e.paused && has_past, lost)
    {
        drafts.extend(stopping_draft(&models.stopping, p, thresholds, &base));
    }
    drafts.sort_by_key(|d| AlertKind::ALL.iter().position(|k| *k == d.kind));
    Assessment {
        standing: Standing::Active,
        drafts,
        signals: base,
    }
}

fn blocking_point(
    input: &SignalInput,
    t: &RiskThresholds,
    base: &Features,
    fresh: impl Fn(Micros) -> bool,
) -> Option<AlertDraft> {
    let mut blocked: Vec<_> = failure_streaks(&input.attempts)
        .into_iter()
        .filter(|s| {
            t.blocking_failures > 0
                && s.failures >= t.blocking_failures
                && s.gain() <= t.blocking_max_gain
                && fresh(s.last_at)
        })
        .collect();
    // Worst first: longest run, then oldest.
    blocked.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.since.cmp(&b.since)));
    let worst = blocked.first()?;
    let mut reason = format!(
        "{} failed attempts on skill '{}' since {} without mastery gain",
        worst.failures,
        input.skill_name(&worst.skill_id),
        day_month(worst.since)
    );
    if blocked.len() > 1 {
        let others: Vec<String> = blocked[1..]
            .iter()
            .map(|s| format!("'{}'", input.skill_name(&s.skill_id)))
            .collect();
        reason.push_str(&format!(" (also blocked on {})", others.join(", ")));
    }
    let mut signals = base.clone();
    signals.insert("streak_failures".into(), f64::from(worst.failures));
    signals.insert("streak_mastery_gain".into(), worst.gain());
    signals.insert("blocked_skills".into(), blocked.len() as f64);
    signals.insert(EPISODE_SINCE.into(), worst.since as f64);
    Some(AlertDraft {
        kind: AlertKind::BlockingPoint,
        since: worst.since,
        severity: if worst.failures >= 2 * t.blocking_failures {
            Severity::Critical
        } else {
            Severity::Warning
        },
        urgency: (f64::from(worst.failures) / (3.0 * f64::from(t.blocking_failures))).min(1.0),
        reason,
        skill_id: Some(worst.skill_id.clone()),
        signals,
    })
}

/// Days away that make a "check in" and a "probably lost" for this
/// learner's rhythm.
pub fn inactivity_limits(e: &Engagement, t: &RiskThresholds) -> (f64, f64) {
    (
        t.inactivity_days.max(t.check_in_gaps * e.usual_gap),
        t.inactivity_critical_days.max(t.lost_gaps * e.usual_gap),
    )
}

fn is_lost(e: &Engagement, t: &RiskThresholds) -> bool {
    e.days_away > inactivity_limits(e, t).1
}

fn inactivity(e: &Engagement, t: &RiskThresholds, base: &Features) -> Option<AlertDraft> {
    let (check_in, lost) = inactivity_limits(e, t);
    if e.days_away <= check_in {
        return None;
    }
    let critical = e.days_away > lost;
    let days = e.days_away.floor();
    let since = e.last_seen;
    let what = if critical {
        "probably lost"
    } else {
        "check in"
    };
    let reason = if e.sessions == 0 {
        format!("{what}: no activity since enrolment, {days} days")
    } else {
        format!(
            "{what}: no activity for {days} days (since {}), {} their usual gap of {:.0} days",
            day_month(since),
            times(e.gap_ratio),
            e.usual_gap
        )
    };
    let mut signals = base.clone();
    signals.insert("check_in_days".into(), check_in);
    signals.insert("lost_days".into(), lost);
    signals.insert(EPISODE_SINCE.into(), since as f64);
    Some(AlertDraft {
        kind: AlertKind::Inactivity,
        since,
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        urgency: (e.gap_ratio / (2.0 * t.lost_gaps)).min(1.0),
        reason,
        skill_id: None,
        signals,
    })
}

fn mastery_drop(
    input: &SignalInput,
    t: &RiskThresholds,
    base: &Features,
    fresh: impl Fn(Micros) -> bool,
) -> Option<AlertDraft> {
    let worst = mastery_falls(&input.attempts)
        .into_iter()
        .filter(|f| f.drop() > t.mastery_drop && fresh(f.current_at))
        .max_by(|a, b| a.drop().total_cmp(&b.drop()))?;
    let mut signals = base.clone();
    signals.insert("mastery_peak".into(), worst.peak);
    signals.insert("mastery_now".into(), worst.current);
    signals.insert(EPISODE_SINCE.into(), worst.peak_at as f64);
    Some(AlertDraft {
        kind: AlertKind::MasteryDrop,
        since: worst.peak_at,
        severity: if worst.drop() > t.mastery_drop_critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        urgency: worst.drop().min(1.0),
        reason: format!(
            "P(mastered) of skill '{}' fell from {:.2} ({}) to {:.2}",
            input.skill_name(&worst.skill_id),
            worst.peak,
            day_month(worst.peak_at),
            worst.current
        ),
        skill_id: Some(worst.skill_id.clone()),
        signals,
    })
}

fn behind_schedule(
    input: &SignalInput,
    model: &LinearModel,
    p: f64,
    t: &RiskThresholds,
    base: &Features,
) -> Option<AlertDraft> {
    let pace = pace(input);
    let units = input.calendar.units;
    if units == 0 || pace.elapsed_share <= 0.0 || base["pace_gap"] <= 0.0 {
        return None;
    }
    let severity = if p >= t.behind_warning {
        Severity::Warning
    } else if p >= t.behind_info {
        Severity::Info
    } else {
        return None;
    };
    let expected = (pace.elapsed_share * f64::from(units)).round();
    let projected = ((1.0 - pace.projected_gap) * f64::from(units)).floor();
    let mut reason = format!(
        "behind schedule: {} of {units} units done at {:.0}% of the program ({expected} expected); \
         at the pace of the last 3 weeks, {projected} by the end",
        input.units_completed,
        pace.elapsed_share * 100.0,
    );
    reason.push_str(&format!(" ({:.0}% risk of not completing", p * 100.0));
    let words = main_factors(model, base);
    if !words.is_empty() {
        reason.push_str(&format!("; mainly {}", words.join(", ")));
    }
    reason.push(')');
    Some(model_draft(
        AlertKind::BehindSchedule,
        severity,
        p,
        reason,
        base,
    ))
}

fn stopping_draft(
    model: &LinearModel,
    p: f64,
    t: &RiskThresholds,
    base: &Features,
) -> Option<AlertDraft> {
    let severity = if p >= t.stopping_critical {
        Severity::Critical
    } else if p >= t.stopping_warning {
        Severity::Warning
    } else {
        return None;
    };
    let mut reason = format!("likely to stop within 3 weeks ({:.0}%)", p * 100.0);
    let words = main_factors(model, base);
    if !words.is_empty() {
        reason.push_str(&format!(": {}", words.join(", ")));
    }
    Some(model_draft(AlertKind::Stopping, severity, p, reason, base))
}

/// An alert of one of the two models, `p` its probability: urgent as `p`,
/// about no one skill, with the model's features as its signals, a new
/// episode.
fn model_draft(
    kind: AlertKind,
    severity: Severity,
    p: f64,
    reason: String,
    base: &Features,
) -> AlertDraft {
    let mut signals = base.clone();
    signals.insert(EPISODE_SINCE.into(), 0.0);
    AlertDraft {
        kind,
        severity,
        urgency: p,
        reason,
        skill_id: None,
        since: 0,
        signals,
    }
}

/// Features a model reads for context, never named as a reason: how much
/// of the stopping question's horizon the calendar still holds scales the
/// risk (a learner cannot stop a program that has ended) but says nothing
/// a trainer could act on.
pub const CONTEXT_FEATURES: [&str; 2] = ["horizon_days", "log_horizon_days"];

/// The two features pushing hardest towards the model's target, in words
/// ([`CONTEXT_FEATURES`] left out).
fn main_factors(model: &LinearModel, features: &Features) -> Vec<String> {
    let mut factors: Vec<(usize, f64)> = model
        .contributions(features)
        .into_iter()
        .enumerate()
        .filter(|(i, c)| *c > 0.0 && !CONTEXT_FEATURES.contains(&model.features[*i].as_str()))
        .collect();
    factors.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut words: Vec<String> = Vec::new();
    for (i, _) in factors {
        let w = describe(&model.features[i], features);
        if !words.contains(&w) {
            words.push(w);
        }
        if words.len() == 2 {
            break;
        }
    }
    words
}

/// A feature in words, for model-based reasons.
fn describe(name: &str, f: &Features) -> String {
    let v = |key: &str| f.get(key).copied().unwrap_or(0.0);
    let down = |trend: f64| ((1.0 - trend.exp()) * 100.0).round();
    match name {
        "log_gap_ratio" | "gap_ratio" | "log_days_away" | "days_away" => format!(
            "away {:.0} days, {} their usual gap",
            v("days_away"),
            times(v("gap_ratio"))
        ),
        "log_last_gap_ratio" | "last_gap_ratio" => {
            format!(
                "their last gap was {} the usual",
                times(v("last_gap_ratio"))
            )
        }
        "time_trend" => format!(
            "time spent down {:.0}% on their own past",
            down(v("time_trend"))
        ),
        "session_trend" => format!("sessions down {:.0}%", down(v("session_trend"))),
        "success_trend" => format!(
            "right answers down {:.0} points",
            -v("success_trend") * 100.0
        ),
        "recent_success" => format!("{:.0}% right lately", v("recent_success") * 100.0),
        "log_tenure_days" | "tenure_days" => format!("{:.0} days in", v("tenure_days")),
        "pace_gap" => format!(
            "{:.0}% of the program behind schedule",
            v("pace_gap") * 100.0
        ),
        "projected_gap" => format!(
            "{:.0}% missing at the end at the recent pace",
            v("projected_gap") * 100.0
        ),
        "done_share" => format!("{:.0}% of the units done", v("done_share") * 100.0),
        "elapsed_share" => format!("{:.0}% of the calendar gone", v("elapsed_share") * 100.0),
        "days_inactive" => format!("{:.0} days inactive", v("days_inactive")),
        "horizon_days" | "log_horizon_days" if v("horizon_days") >= STOP_HORIZON_DAYS => {
            "3 weeks or more of the program left".to_string()
        }
        "horizon_days" | "log_horizon_days" => {
            format!("{:.0} days of the program left", v("horizon_days"))
        }
        "days_enrolled" => format!("{:.0} days since enrolment", v("days_enrolled")),
        "sessions" => format!("{:.0} sessions so far", v("sessions")),
        "recent_sessions" => format!("{:.0} sessions in the last 14 days", v("recent_sessions")),
        "recent_minutes" => format!("{:.0} minutes in the last 14 days", v("recent_minutes")),
        "failure_streak" => format!("{:.0} wrong answers in a row", v("failure_streak")),
        other => format!("{other} = {:.2}", v(other)),
    }
}

/// A ratio in words, rounded so that a reason does not change with every
/// evaluation: "close to" under 1.5, else "3 times".
fn times(ratio: f64) -> String {
    if ratio < 1.5 {
        "close to".to_string()
    } else {
        format!("{ratio:.0} times")
    }
}

/// A UTC date as "12 Nov", short enough for a one-line reason.
pub fn day_month(at: Micros) -> String {
    jiff::Timestamp::from_microsecond(at)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%-d %b")
                .to_string()
        })
        .unwrap_or_else(|_| "an unknown date".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::model::TrainingInfo;
    use super::super::signals::tests_support::quiet_learner;
    use super::super::signals::{ProgramCalendar, SkillAttempt};
    use super::*;

    const DAY: i64 = MICROS_PER_DAY;
    /// 2024-11-01T00:00:00Z.
    const NOV_1: i64 = 1_730_419_200_000_000;

    #[test]
    fn every_feature_the_models_read_is_said_in_words() {
        // A reason naming a feature as `name = 0.42` tells a trainer
        // nothing: every feature a shipped model reads has words.
        use super::super::training::{BEHIND_SCHEDULE_FEATURES, STOPPING_FEATURES};
        let f = Features::new();
        for name in STOPPING_FEATURES.iter().chain(&BEHIND_SCHEDULE_FEATURES) {
            let words = describe(name, &f);
            assert!(!words.contains(" = "), "{name}: {words}");
        }
        assert_eq!(describe("no_such_feature", &f), "no_such_feature = 0.00");
    }

    fn attempt(skill: &str, correct: bool, day: i64, before: f64, after: f64) -> SkillAttempt {
        SkillAttempt {
            skill_id: skill.into(),
            correct,
            at: NOV_1 + day * DAY,
            p_before: before,
            p_after: after,
        }
    }

    fn learner(now_day: i64, attempts: Vec<SkillAttempt>) -> SignalInput {
        SignalInput {
            calendar: ProgramCalendar {
                starts_at: NOV_1,
                ends_at: NOV_1 + 56 * DAY,
                units: 12,
            },
            enrolled_at: NOV_1,
            units_completed: 2,
            attempts,
            skill_names: [("sql".to_string(), "SQL joins".to_string())].into(),
            unit_completions: vec![NOV_1 + DAY, NOV_1 + 2 * DAY],
            ..quiet_learner(NOV_1 + now_day * DAY, 0, 0)
        }
    }

    fn kinds(drafts: &[AlertDraft]) -> Vec<AlertKind> {
        drafts.iter().map(|d| d.kind).collect()
    }

    fn rules(input: &SignalInput) -> Vec<AlertDraft> {
        assess(input, &RiskThresholds::default(), None).drafts
    }

    /// A hand-made model of one feature: 1 log-odd per unit above `mean`.
    fn one_feature(feature: &str, mean: f64) -> LinearModel {
        let empty = super::super::model::empty_model();
        LinearModel {
            target: "test".into(),
            auc: 0.9,
            features: vec![feature.into()],
            means: vec![mean],
            scales: vec![1.0],
            coefficients: vec![1.0],
            training: TrainingInfo {
                source: "hand-made".into(),
                ..empty.training
            },
            ..empty
        }
    }

    fn models(stopping: LinearModel, behind: LinearModel) -> RiskModels {
        RiskModels::new(behind, stopping)
    }

    #[test]
    fn day_month_formats_utc_dates() {
        assert_eq!(day_month(NOV_1 + 11 * DAY), "12 Nov");
    }

    #[test]
    fn three_recent_failures_without_gain_are_a_blocking_point() {
        let input = learner(
            13,
            vec![
                attempt("sql", true, 5, 0.2, 0.5),
                attempt("sql", false, 11, 0.5, 0.4),
                attempt("sql", false, 12, 0.4, 0.35),
                attempt("sql", false, 12, 0.35, 0.3),
            ],
        );
        let drafts = rules(&input);
        assert_eq!(kinds(&drafts), vec![AlertKind::BlockingPoint]);
        let d = &drafts[0];
        assert_eq!(
            d.reason,
            "3 failed attempts on skill 'SQL joins' since 12 Nov without mastery gain"
        );
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.skill_id.as_deref(), Some("sql"));
        assert_eq!(d.signals["streak_failures"], 3.0);
        assert_eq!(d.signals["failure_streak"], 3.0);
    }

    #[test]
    fn history_is_not_news_old_evidence_raises_nothing() {
        // The same failures, read 9 days after the last one.
        let mut input = learner(
            21,
            vec![
                attempt("sql", false, 11, 0.5, 0.4),
                attempt("sql", false, 12, 0.4, 0.35),
                attempt("sql", false, 12, 0.35, 0.3),
                attempt("s2", true, 5, 0.3, 0.9),
                attempt("s2", false, 12, 0.9, 0.3),
            ],
        );
        input.module_events = vec![(NOV_1 + 20 * DAY, 60_000)];
        assert!(rules(&input).is_empty(), "{:?}", rules(&input));
        // Read within the window, both fire.
        input.now = NOV_1 + 13 * DAY;
        input.module_events.clear();
        assert_eq!(
            kinds(&rules(&input)),
            vec![AlertKind::BlockingPoint, AlertKind::MasteryDrop]
        );
    }

    #[test]
    fn failures_that_still_raise_mastery_are_not_blocking() {
        let input = learner(
            13,
            vec![
                attempt("sql", false, 11, 0.10, 0.14),
                attempt("sql", false, 12, 0.14, 0.16),
                attempt("sql", false, 12, 0.16, 0.17),
            ],
        );
        assert!(rules(&input).is_empty());
        let input = learner(
            13,
            vec![
                attempt("sql", false, 11, 0.5, 0.4),
                attempt("sql", false, 12, 0.4, 0.3),
            ],
        );
        assert!(rules(&input).is_empty());
    }

    #[test]
    fn six_failures_are_critical_and_other_blocked_skills_are_named() {
        let mut attempts: Vec<_> = (0..6)
            .map(|i| {
                attempt(
                    "sql",
                    false,
                    10,
                    0.5 - 0.05 * i as f64,
                    0.45 - 0.05 * i as f64,
                )
            })
            .collect();
        attempts.extend((0..3).map(|_| attempt("window", false, 11, 0.3, 0.3)));
        let drafts = rules(&learner(12, attempts));
        assert_eq!(drafts[0].severity, Severity::Critical);
        assert!(
            drafts[0].reason.ends_with("(also blocked on 'window')"),
            "{}",
            drafts[0].reason
        );
    }

    /// Sessions every `every` days from day 0 to `last`.
    fn rhythm(input: &mut SignalInput, every: i64, last: i64) {
        for day in (0..=last).step_by(every as usize) {
            input
                .module_events
                .push((NOV_1 + day * DAY + 10 * 3_600_000_000, 1_800_000));
        }
    }

    #[test]
    fn inactivity_is_read_against_the_learners_rhythm() {
        // A daily learner, away since day 20.
        let mut daily = learner(26, Vec::new());
        rhythm(&mut daily, 1, 20);
        let drafts = rules(&daily);
        assert_eq!(kinds(&drafts), vec![AlertKind::Inactivity]);
        assert_eq!(drafts[0].severity, Severity::Warning);
        assert!(
            drafts[0]
                .reason
                .starts_with("check in: no activity for 5 days (since 21 Nov)"),
            "{}",
            drafts[0].reason
        );
        daily.now = NOV_1 + 36 * DAY;
        let lost = rules(&daily);
        assert_eq!(lost[0].severity, Severity::Critical);
        assert!(
            lost[0].reason.starts_with("probably lost"),
            "{}",
            lost[0].reason
        );
        // A weekly learner away as long is on rhythm.
        let mut weekly = learner(26, Vec::new());
        rhythm(&mut weekly, 7, 20);
        assert!(rules(&weekly).is_empty(), "{:?}", rules(&weekly));
        // Nobody is inactive during a declared pause, or after the end.
        daily.now = NOV_1 + 30 * DAY;
        daily.pauses = vec![(NOV_1 + 21 * DAY, NOV_1 + 35 * DAY)];
        assert!(rules(&daily).is_empty());
        daily.pauses.clear();
        daily.now = NOV_1 + 60 * DAY;
        assert!(rules(&daily).is_empty());
    }

    #[test]
    fn a_program_threshold_sets_the_floor() {
        let mut daily = learner(26, Vec::new());
        rhythm(&mut daily, 1, 20);
        let relaxed = RiskThresholds {
            inactivity_days: 30.0,
            inactivity_critical_days: 60.0,
            ..RiskThresholds::default()
        };
        assert!(assess(&daily, &relaxed, None).drafts.is_empty());
    }

    #[test]
    fn completed_learners_get_nothing() {
        let mut input = learner(40, vec![attempt("sql", false, 39, 0.9, 0.2)]);
        input.units_completed = 12;
        let a = assess(&input, &RiskThresholds::default(), None);
        assert_eq!(a.standing, Standing::Completed);
        assert!(a.drafts.is_empty());
    }

    #[test]
    fn mastery_drop_from_peak_fires() {
        let input = learner(
            12,
            vec![
                attempt("sql", true, 5, 0.3, 0.6),
                attempt("sql", true, 6, 0.6, 0.9),
                attempt("sql", false, 11, 0.9, 0.7),
                attempt("sql", true, 11, 0.7, 0.8),
                attempt("sql", false, 11, 0.8, 0.55),
            ],
        );
        let drafts = rules(&input);
        assert_eq!(kinds(&drafts), vec![AlertKind::MasteryDrop]);
        assert_eq!(
            drafts[0].reason,
            "P(mastered) of skill 'SQL joins' fell from 0.90 (7 Nov) to 0.55"
        );
        let t = RiskThresholds {
            mastery_drop: 0.4,
            ..RiskThresholds::default()
        };
        assert!(assess(&input, &t, None).drafts.is_empty());
    }

    #[test]
    fn thresholds_deserialize_with_defaults() {
        let t: RiskThresholds = serde_json::from_str(r#"{"inactivity_days": 3}"#).unwrap();
        assert_eq!(t.inactivity_days, 3.0);
        assert_eq!(t.blocking_failures, 3);
        assert_eq!(t.history_days, 7.0);
    }

    /// A learner of 30 days: three weeks of daily hour-long sessions, then
    /// 10-minute ones.
    fn slowing_down() -> SignalInput {
        let mut input = learner(30, Vec::new());
        for day in 0..30 {
            let minutes = if day < 21 { 60 } else { 10 };
            input
                .module_events
                .push((NOV_1 + day * DAY + 36_000_000_000, minutes * 60_000));
        }
        input
    }

    #[test]
    fn the_stopping_model_raises_with_its_reasons_and_a_pause_silences_it() {
        // Stopping risk from the time trend alone: sigmoid(-2 x trend).
        let mut input = slowing_down();
        let stop = LinearModel {
            coefficients: vec![-2.0],
            ..one_feature("time_trend", 0.0)
        };
        let m = models(stop, one_feature("pace_gap", 10.0));
        let a = assess(&input, &RiskThresholds::default(), Some(&m));
        assert_eq!(kinds(&a.drafts), vec![AlertKind::Stopping]);
        let d = &a.drafts[0];
        assert_eq!(d.severity, Severity::Critical);
        assert!(
            d.reason.starts_with("likely to stop within 3 weeks (")
                && d.reason.contains("time spent down"),
            "{}",
            d.reason
        );
        assert_eq!(d.urgency, d.signals["stopping_risk"]);
        input.pauses = vec![(NOV_1 + 29 * DAY, NOV_1 + 40 * DAY)];
        assert!(
            assess(&input, &RiskThresholds::default(), Some(&m))
                .drafts
                .is_empty()
        );
    }

    #[test]
    fn the_horizon_scales_the_stopping_risk_but_is_never_a_reason() {
        // Falling time spent, and a model where the horizon left weighs
        // more than the trend: the reason names the trend only.
        let mut input = slowing_down();
        let stop = LinearModel {
            features: vec!["time_trend".into(), "log_horizon_days".into()],
            means: vec![0.0, 2.0],
            scales: vec![1.0, 1.0],
            coefficients: vec![-0.5, 3.0],
            ..one_feature("time_trend", 0.0)
        };
        let m = models(stop, one_feature("pace_gap", 10.0));
        let a = assess(&input, &RiskThresholds::default(), Some(&m));
        assert_eq!(a.signals["horizon_days"], 21.0);
        let contributions = m.stopping.contributions(&a.signals);
        assert!(contributions[1] > contributions[0], "{contributions:?}");
        let d = &a.drafts[0];
        assert_eq!(d.kind, AlertKind::Stopping);
        assert!(
            d.reason.contains("time spent down") && !d.reason.contains("program left"),
            "{}",
            d.reason
        );
        // Near the program's end the same learner is at lower risk.
        input.now = NOV_1 + 50 * DAY;
        input.module_events.retain(|(at, _)| *at < NOV_1 + 30 * DAY);
        let late = assess(&input, &RiskThresholds::default(), Some(&m));
        assert!((late.signals["horizon_days"] - 6.0).abs() < 1e-9);
        assert!(late.signals["stopping_risk"] < a.signals["stopping_risk"]);
        assert_eq!(
            describe("log_horizon_days", &late.signals),
            "6 days of the program left"
        );
    }

    #[test]
    fn behind_schedule_needs_a_calendar_and_a_delay() {
        // Day 28 of 56, 2 of 12 units done (6 expected).
        let mut input = learner(28, Vec::new());
        rhythm(&mut input, 1, 27);
        // P(not completing) = sigmoid(7 x pace gap): 0.91 at a third behind.
        let behind = LinearModel {
            coefficients: vec![7.0],
            ..one_feature("pace_gap", 0.0)
        };
        let m = models(one_feature("pace_gap", 100.0), behind);
        let a = assess(&input, &RiskThresholds::default(), Some(&m));
        assert_eq!(kinds(&a.drafts), vec![AlertKind::BehindSchedule]);
        let d = &a.drafts[0];
        assert!(
            d.reason.starts_with(
                "behind schedule: 2 of 12 units done at 50% of the program (6 expected)"
            ),
            "{}",
            d.reason
        );
        assert_eq!(d.severity, Severity::Info);
        // On schedule: nothing.
        input.units_completed = 7;
        assert!(
            assess(&input, &RiskThresholds::default(), Some(&m))
                .drafts
                .is_empty()
        );
        // No calendar: nothing.
        input.units_completed = 2;
        input.calendar.ends_at = 0;
        assert!(
            assess(&input, &RiskThresholds::default(), Some(&m))
                .drafts
                .is_empty()
        );
    }
}
