//! Alert rules: what to tell a trainer about a learner, and why, in words.
//!
//! Three rules need no model (blocking point, inactivity, mastery drop) and
//! work from the first day of a deployment; the fourth asks the dropout model
//! when one is loaded. [`evaluate`] returns at most one draft per
//! [`AlertKind`]; keeping one open alert per learner and kind (dedup,
//! resolution) is the caller's job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::RiskModel;
use super::signals::{LearnerSignals, SignalInput, failure_streaks, mastery_falls, signals};
use crate::domain::learner::Micros;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// Repeated failures on one skill without mastery gain.
    BlockingPoint,
    /// No activity for longer than the program tolerates.
    Inactivity,
    /// P(mastered) of a skill fell well below its peak.
    MasteryDrop,
    /// The dropout model predicts the learner will not complete.
    PredictedDropout,
}

impl AlertKind {
    /// Every kind, in a stable order.
    pub const ALL: [AlertKind; 4] = [
        AlertKind::BlockingPoint,
        AlertKind::Inactivity,
        AlertKind::MasteryDrop,
        AlertKind::PredictedDropout,
    ];

    /// A stable snake_case name for files, logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BlockingPoint => "blocking_point",
            AlertKind::Inactivity => "inactivity",
            AlertKind::MasteryDrop => "mastery_drop",
            AlertKind::PredictedDropout => "predicted_dropout",
        }
    }
}

/// How urgently a trainer should look; ordered `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Worth knowing, no action expected.
    Info,
    /// Look this week.
    Warning,
    /// Look today.
    Critical,
}

/// Per-program alert thresholds. Every field has a serde default, so a
/// program's configuration only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskThresholds {
    /// Consecutive failures on one skill that make a blocking point
    /// (critical at twice as many).
    pub blocking_failures: u32,
    /// A failure run counts as blocking when P(mastered) rose by at most
    /// this much over it.
    pub blocking_max_gain: f64,
    /// Days without activity before a warning.
    pub inactivity_days: f64,
    /// Days without activity before a critical alert.
    pub inactivity_critical_days: f64,
    /// Fall of P(mastered) from its peak before a warning.
    pub mastery_drop: f64,
    /// Fall of P(mastered) from its peak before a critical alert.
    pub mastery_drop_critical: f64,
    /// Predicted dropout probability for an info alert.
    pub dropout_info: f64,
    /// Predicted dropout probability for a warning.
    pub dropout_warning: f64,
    /// Predicted dropout probability for a critical alert.
    pub dropout_critical: f64,
}

impl Default for RiskThresholds {
    /// Defaults for programs of a few weeks with weekly work expected.
    fn default() -> Self {
        Self {
            blocking_failures: 3,
            blocking_max_gain: 0.0,
            inactivity_days: 7.0,
            inactivity_critical_days: 14.0,
            mastery_drop: 0.3,
            mastery_drop_critical: 0.5,
            dropout_info: 0.5,
            dropout_warning: 0.65,
            dropout_critical: 0.8,
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
    /// One sentence a trainer can act on.
    pub reason: String,
    /// The skill concerned, for blocking points and mastery drops.
    pub skill_id: Option<String>,
    /// The figures behind the alert: all learner signals plus the
    /// rule's own (e.g. `predicted_dropout`).
    pub signals: BTreeMap<String, f64>,
}

/// Runs every rule on one learner (and the model when given one).
///
/// At most one draft per kind, in [`AlertKind::ALL`] order. A learner who
/// completed the program gets no inactivity or dropout alert.
pub fn evaluate(
    input: &SignalInput,
    thresholds: &RiskThresholds,
    model: Option<&RiskModel>,
) -> Vec<AlertDraft> {
    let s = signals(input);
    let base = s.to_map();
    let finished = input.calendar.units > 0 && input.units_completed >= input.calendar.units;
    let mut drafts = Vec::new();
    drafts.extend(blocking_point(input, thresholds, &base));
    if !finished {
        drafts.extend(inactivity(input, &s, thresholds, &base));
    }
    drafts.extend(mastery_drop(input, thresholds, &base));
    if let (Some(model), false) = (model, finished) {
        drafts.extend(predicted_dropout(model, &s, thresholds, &base));
    }
    drafts
}

fn blocking_point(
    input: &SignalInput,
    t: &RiskThresholds,
    base: &BTreeMap<String, f64>,
) -> Option<AlertDraft> {
    let mut blocked: Vec<_> = failure_streaks(&input.attempts)
        .into_iter()
        .filter(|s| {
            t.blocking_failures > 0
                && s.failures >= t.blocking_failures
                && s.gain() <= t.blocking_max_gain
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
    Some(AlertDraft {
        kind: AlertKind::BlockingPoint,
        severity: if worst.failures >= 2 * t.blocking_failures {
            Severity::Critical
        } else {
            Severity::Warning
        },
        reason,
        skill_id: Some(worst.skill_id.clone()),
        signals,
    })
}

fn inactivity(
    input: &SignalInput,
    s: &LearnerSignals,
    t: &RiskThresholds,
    base: &BTreeMap<String, f64>,
) -> Option<AlertDraft> {
    if s.days_inactive <= t.inactivity_days {
        return None;
    }
    let days = s.days_inactive.floor();
    let since = input.now - (s.days_inactive * super::signals::MICROS_PER_DAY as f64) as i64;
    let what = if input.last_activity_at.is_none() && input.attempts.is_empty() {
        "no activity since enrolment"
    } else {
        "no activity"
    };
    Some(AlertDraft {
        kind: AlertKind::Inactivity,
        severity: if s.days_inactive > t.inactivity_critical_days {
            Severity::Critical
        } else {
            Severity::Warning
        },
        reason: format!("{what} for {days} days (since {})", day_month(since)),
        skill_id: None,
        signals: base.clone(),
    })
}

fn mastery_drop(
    input: &SignalInput,
    t: &RiskThresholds,
    base: &BTreeMap<String, f64>,
) -> Option<AlertDraft> {
    let worst = mastery_falls(&input.attempts)
        .into_iter()
        .filter(|f| f.drop() > t.mastery_drop)
        .max_by(|a, b| a.drop().total_cmp(&b.drop()))?;
    let mut signals = base.clone();
    signals.insert("mastery_peak".into(), worst.peak);
    signals.insert("mastery_now".into(), worst.current);
    Some(AlertDraft {
        kind: AlertKind::MasteryDrop,
        severity: if worst.drop() > t.mastery_drop_critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
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

fn predicted_dropout(
    model: &RiskModel,
    s: &LearnerSignals,
    t: &RiskThresholds,
    base: &BTreeMap<String, f64>,
) -> Option<AlertDraft> {
    let p = model.predict(s);
    let severity = if p >= t.dropout_critical {
        Severity::Critical
    } else if p >= t.dropout_warning {
        Severity::Warning
    } else if p >= t.dropout_info {
        Severity::Info
    } else {
        return None;
    };
    // The two features pushing hardest towards dropout explain it.
    let mut factors: Vec<(usize, f64)> = model
        .contributions(s)
        .into_iter()
        .enumerate()
        .filter(|(_, c)| *c > 0.0)
        .collect();
    factors.sort_by(|a, b| b.1.total_cmp(&a.1));
    let values = s.to_array();
    let words: Vec<String> = factors
        .iter()
        .take(2)
        .map(|&(i, _)| describe(LearnerSignals::NAMES[i], values[i]))
        .collect();
    let mut reason = format!(
        "predicted risk of not completing the program: {:.0}%",
        p * 100.0
    );
    if !words.is_empty() {
        reason.push_str(&format!(" (mainly {})", words.join(", ")));
    }
    let mut signals = base.clone();
    signals.insert("predicted_dropout".into(), p);
    Some(AlertDraft {
        kind: AlertKind::PredictedDropout,
        severity,
        reason,
        skill_id: None,
        signals,
    })
}

/// A feature value in words, for model-based reasons.
fn describe(name: &str, value: f64) -> String {
    match name {
        "days_inactive" => format!("{value:.0} days inactive"),
        "pace_gap" => format!("{:.0}% of the program behind schedule", value * 100.0),
        "correctness_trend" => "answers getting worse".to_string(),
        "mastery_trend" => "mastery going down".to_string(),
        "failure_streak" => format!("{value:.0} failures in a row on one skill"),
        "mastery_drop" => format!("mastery {value:.2} below its peak"),
        "time_ratio" => format!("{:.0}% of the cohort's median time", value * 100.0),
        "recommended_started_share" => {
            format!("{:.0}% of recommended modules started", value * 100.0)
        }
        other => format!("{other} = {value:.2}"),
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
    use super::super::signals::{MICROS_PER_DAY, ProgramCalendar, SkillAttempt};
    use super::*;

    const DAY: i64 = MICROS_PER_DAY;
    /// 2024-11-01T00:00:00Z.
    const NOV_1: i64 = 1_730_419_200_000_000;

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
            now: NOV_1 + now_day * DAY,
            calendar: ProgramCalendar {
                starts_at: NOV_1,
                ends_at: NOV_1 + 56 * DAY,
                units: 12,
            },
            enrolled_at: NOV_1,
            last_activity_at: None,
            units_completed: 2,
            attempts,
            time_spent_ms: 0,
            cohort_median_time_spent_ms: 0,
            recommended_modules: 0,
            recommended_started: 0,
            skill_names: [("sql".to_string(), "SQL joins".to_string())].into(),
        }
    }

    fn kinds(drafts: &[AlertDraft]) -> Vec<AlertKind> {
        drafts.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn day_month_formats_utc_dates() {
        assert_eq!(day_month(NOV_1 + 11 * DAY), "12 Nov");
    }

    #[test]
    fn three_failures_without_gain_are_a_blocking_point() {
        let input = learner(
            13,
            vec![
                attempt("sql", true, 5, 0.2, 0.5),
                attempt("sql", false, 11, 0.5, 0.4),
                attempt("sql", false, 12, 0.4, 0.35),
                attempt("sql", false, 12, 0.35, 0.3),
            ],
        );
        let drafts = evaluate(&input, &RiskThresholds::default(), None);
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
    fn failures_that_still_raise_mastery_are_not_blocking() {
        // BKT's learning transition raised P(mastered) across the run.
        let input = learner(
            13,
            vec![
                attempt("sql", false, 11, 0.10, 0.14),
                attempt("sql", false, 12, 0.14, 0.16),
                attempt("sql", false, 12, 0.16, 0.17),
            ],
        );
        assert!(evaluate(&input, &RiskThresholds::default(), None).is_empty());
        // Two failures are not enough either.
        let input = learner(
            13,
            vec![
                attempt("sql", false, 11, 0.5, 0.4),
                attempt("sql", false, 12, 0.4, 0.3),
            ],
        );
        assert!(evaluate(&input, &RiskThresholds::default(), None).is_empty());
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
        let drafts = evaluate(&learner(12, attempts), &RiskThresholds::default(), None);
        assert_eq!(drafts[0].severity, Severity::Critical);
        assert!(
            drafts[0].reason.ends_with("(also blocked on 'window')"),
            "{}",
            drafts[0].reason
        );
    }

    #[test]
    fn inactivity_beyond_threshold_fires_with_severity() {
        let mut input = learner(20, vec![attempt("sql", true, 10, 0.2, 0.5)]);
        // 10 days since the last attempt.
        let drafts = evaluate(&input, &RiskThresholds::default(), None);
        assert_eq!(kinds(&drafts), vec![AlertKind::Inactivity]);
        assert_eq!(drafts[0].severity, Severity::Warning);
        assert_eq!(drafts[0].reason, "no activity for 10 days (since 11 Nov)");
        input.now += 5 * DAY;
        assert_eq!(
            evaluate(&input, &RiskThresholds::default(), None)[0].severity,
            Severity::Critical
        );
        // Exactly at the threshold: nothing yet.
        input.now = NOV_1 + 17 * DAY;
        assert!(evaluate(&input, &RiskThresholds::default(), None).is_empty());
        // A custom threshold per program.
        let relaxed = RiskThresholds {
            inactivity_days: 30.0,
            inactivity_critical_days: 60.0,
            ..RiskThresholds::default()
        };
        input.now = NOV_1 + 25 * DAY;
        assert!(evaluate(&input, &relaxed, None).is_empty());
    }

    #[test]
    fn finished_learners_are_not_inactive() {
        let mut input = learner(40, vec![attempt("sql", true, 10, 0.2, 0.9)]);
        input.units_completed = 12;
        assert!(evaluate(&input, &RiskThresholds::default(), None).is_empty());
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
        let drafts = evaluate(&input, &RiskThresholds::default(), None);
        assert_eq!(kinds(&drafts), vec![AlertKind::MasteryDrop]);
        assert_eq!(
            drafts[0].reason,
            "P(mastered) of skill 'SQL joins' fell from 0.90 (7 Nov) to 0.55"
        );
        assert_eq!(drafts[0].severity, Severity::Warning);
        // A drop below the program's threshold is not enough.
        let t = RiskThresholds {
            mastery_drop: 0.4,
            ..RiskThresholds::default()
        };
        assert!(evaluate(&input, &t, None).is_empty());
    }

    #[test]
    fn thresholds_deserialize_with_defaults() {
        let t: RiskThresholds = serde_json::from_str(r#"{"inactivity_days": 3}"#).unwrap();
        assert_eq!(t.inactivity_days, 3.0);
        assert_eq!(t.blocking_failures, 3);
        assert_eq!(t.mastery_drop, 0.3);
    }

    #[test]
    fn model_alert_names_its_main_factors() {
        // A hand-made model: only inactivity matters, 1 log-odd per day
        // beyond 5 days.
        let model = RiskModel {
            version: super::super::model::MODEL_FORMAT_VERSION,
            auc: 0.9,
            features: LearnerSignals::NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            means: vec![5.0, 0., 0., 0., 0., 0., 0., 0.],
            scales: vec![1.0; 8],
            coefficients: vec![1.0, 0., 0., 0., 0., 0., 0., 0.],
            intercept: 0.0,
            training: super::super::model::TrainingInfo {
                source: "hand-made".into(),
                samples: 0,
                positives: 0,
                train_size: 0,
                test_size: 0,
                alpha: 0.0,
                seed: 0,
            },
        };
        let t = RiskThresholds {
            inactivity_days: 100.0,
            inactivity_critical_days: 100.0,
            ..RiskThresholds::default()
        };
        // 8 days inactive: p = sigmoid(3) = 0.95.
        let input = learner(18, vec![attempt("sql", true, 10, 0.2, 0.5)]);
        let drafts = evaluate(&input, &t, Some(&model));
        assert_eq!(kinds(&drafts), vec![AlertKind::PredictedDropout]);
        assert_eq!(drafts[0].severity, Severity::Critical);
        assert_eq!(
            drafts[0].reason,
            "predicted risk of not completing the program: 95% (mainly 8 days inactive)"
        );
        assert!((drafts[0].signals["predicted_dropout"] - 0.9526).abs() < 1e-4);
        // 5 days inactive: p = 0.5, an info.
        let input = learner(15, vec![attempt("sql", true, 10, 0.2, 0.5)]);
        assert_eq!(
            evaluate(&input, &t, Some(&model))[0].severity,
            Severity::Info
        );
        // 2 days: below every threshold.
        let input = learner(12, vec![attempt("sql", true, 10, 0.2, 0.5)]);
        assert!(evaluate(&input, &t, Some(&model)).is_empty());
    }
}
