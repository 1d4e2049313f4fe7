//! Every named figure the alert models may read, from one [`SignalInput`].
//!
//! One function computes them all for the rules, the models' training
//! (from simulated worlds or a deployment's history) and the live
//! prediction, so that a model is always scored on figures computed as it
//! was trained on. Models name the features they use; a model file naming
//! one that is not in [`FEATURE_NAMES`] is refused at load. The same map is
//! attached to alerts as their `signals`.

use std::collections::BTreeMap;

use super::engagement::{Engagement, engagement};
use super::signals::{LearnerSignals, MICROS_PER_DAY, SignalInput, signals};

/// Named figures of one learner at one time.
pub type Features = BTreeMap<String, f64>;

/// Days of recent progress the projected pace looks at.
pub const PACE_WINDOW_DAYS: f64 = 21.0;

/// Days ahead the stopping question looks ("stops within the next 21
/// days"): the horizon features say how much of it the program's calendar
/// still holds.
pub const STOP_HORIZON_DAYS: f64 = 21.0;

/// Every feature [`features`] computes, beyond [`LearnerSignals::NAMES`]:
/// what a model file may name.
pub const EXTRA_FEATURE_NAMES: [&str; 23] = [
    // Engagement against the learner's own habit (see `engagement`).
    "days_away",
    "log_days_away",
    "usual_gap",
    "gap_ratio",
    "log_gap_ratio",
    "last_gap_ratio",
    "log_last_gap_ratio",
    "sessions",
    "recent_sessions",
    "recent_minutes",
    "time_trend",
    "session_trend",
    "recent_success",
    "success_trend",
    "tenure_days",
    "log_tenure_days",
    // Pace against the calendar.
    "elapsed_share",
    "done_share",
    "recent_units",
    "projected_gap",
    "horizon_days",
    "log_horizon_days",
    // Plain observables.
    "days_enrolled",
];

/// Whether `name` is a feature [`features`] computes.
pub fn is_feature(name: &str) -> bool {
    LearnerSignals::NAMES.contains(&name) || EXTRA_FEATURE_NAMES.contains(&name)
}

/// The pace of a learner against the program's calendar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Share of the calendar elapsed (0 without a calendar).
    pub elapsed_share: f64,
    /// Share of the units covered (0 without units).
    pub done_share: f64,
    /// Units covered in the last [`PACE_WINDOW_DAYS`].
    pub recent_units: u32,
    /// Share of the units still missing at the end if the learner keeps
    /// the pace of the last [`PACE_WINDOW_DAYS`] (0 without a calendar).
    pub projected_gap: f64,
}

/// The pace of one learner. Pure.
pub fn pace(input: &SignalInput) -> Pace {
    let calendar = &input.calendar;
    let units = f64::from(calendar.units);
    let done_share = if calendar.units == 0 {
        0.0
    } else {
        (f64::from(input.units_completed) / units).min(1.0)
    };
    let window = (PACE_WINDOW_DAYS * MICROS_PER_DAY as f64) as i64;
    let recent_units = input
        .unit_completions
        .iter()
        .filter(|t| **t > input.now - window && **t <= input.now)
        .count() as u32;
    let Some(elapsed_share) = calendar.elapsed_share(input.now) else {
        return Pace {
            elapsed_share: 0.0,
            done_share,
            recent_units,
            projected_gap: 0.0,
        };
    };
    let day = MICROS_PER_DAY as f64;
    let since_start = ((input.now - calendar.starts_at) as f64 / day).max(0.0);
    let remaining = ((calendar.ends_at - input.now) as f64 / day).max(0.0);
    let span = since_start.clamp(1.0, PACE_WINDOW_DAYS);
    let projected = f64::from(input.units_completed) + f64::from(recent_units) / span * remaining;
    Pace {
        elapsed_share,
        done_share,
        recent_units,
        projected_gap: (1.0 - projected / units).clamp(0.0, 1.0),
    }
}

/// Days of the next [`STOP_HORIZON_DAYS`] before the program's end (all of
/// them without a calendar): a learner cannot stop a program that has
/// ended, so the chance of a stop within the horizon shrinks with what is
/// left of it, whatever the program's length.
pub fn horizon_days(input: &SignalInput) -> f64 {
    let calendar = &input.calendar;
    if calendar.ends_at <= calendar.starts_at {
        return STOP_HORIZON_DAYS;
    }
    ((calendar.ends_at - input.now) as f64 / MICROS_PER_DAY as f64).clamp(0.0, STOP_HORIZON_DAYS)
}

/// Computes every feature of one learner. Pure and deterministic.
pub fn features(input: &SignalInput) -> Features {
    features_of(input, &signals(input), &engagement(input))
}

/// [`features`] from signals and engagement already computed.
pub fn features_of(input: &SignalInput, s: &LearnerSignals, e: &Engagement) -> Features {
    let p = pace(input);
    let horizon = horizon_days(input);
    let mut out = s.to_map();
    let days_enrolled = ((input.now - input.enrolled_at) as f64 / MICROS_PER_DAY as f64).max(0.0);
    for (name, value) in [
        ("days_away", e.days_away),
        ("log_days_away", e.days_away.ln_1p()),
        ("usual_gap", e.usual_gap),
        ("gap_ratio", e.gap_ratio),
        ("log_gap_ratio", e.gap_ratio.ln_1p()),
        ("last_gap_ratio", e.last_gap_ratio),
        ("log_last_gap_ratio", e.last_gap_ratio.ln_1p()),
        ("sessions", f64::from(e.sessions)),
        ("recent_sessions", f64::from(e.recent_sessions)),
        ("recent_minutes", e.recent_minutes),
        ("time_trend", e.time_trend),
        ("session_trend", e.session_trend),
        ("recent_success", e.recent_success),
        ("success_trend", e.success_trend),
        ("tenure_days", e.tenure_days),
        ("log_tenure_days", e.tenure_days.ln_1p()),
        ("elapsed_share", p.elapsed_share),
        ("done_share", p.done_share),
        ("recent_units", f64::from(p.recent_units)),
        ("projected_gap", p.projected_gap),
        ("horizon_days", horizon),
        ("log_horizon_days", horizon.ln_1p()),
        ("days_enrolled", days_enrolled),
    ] {
        out.insert(name.to_string(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::signals::tests_support::quiet_learner;
    use super::*;

    const DAY: i64 = MICROS_PER_DAY;

    fn input(now_day: i64, done: &[i64]) -> SignalInput {
        SignalInput {
            units_completed: done.len() as u32,
            unit_completions: done.iter().map(|d| d * DAY).collect(),
            ..quiet_learner(now_day * DAY, 40 * DAY, 10)
        }
    }

    #[test]
    fn pace_projects_the_recent_rate_to_the_end() {
        // Day 20 of 40, 4 units done, all in the last 21 days (20 elapsed):
        // 4/20 a day over 20 more days is 4 more, 8 of 10: 0.2 missing.
        let p = pace(&input(20, &[1, 8, 12, 19]));
        assert_eq!(p.recent_units, 4);
        assert!((p.done_share - 0.4).abs() < 1e-12);
        assert!((p.elapsed_share - 0.5).abs() < 1e-12);
        assert!((p.projected_gap - 0.2).abs() < 1e-12, "{p:?}");
        // Nothing lately: the gap is what is missing now.
        let p = pace(&input(35, &[1, 2]));
        assert_eq!(p.recent_units, 0);
        assert!((p.projected_gap - 0.8).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn the_horizon_is_what_the_calendar_holds_of_the_next_21_days() {
        // A 40-day program: all 21 days ahead on day 10, 6 on day 34,
        // none after the end; without a calendar, all of them.
        assert_eq!(horizon_days(&input(10, &[])), 21.0);
        assert_eq!(horizon_days(&input(34, &[])), 6.0);
        assert_eq!(horizon_days(&input(45, &[])), 0.0);
        let mut open = input(34, &[]);
        open.calendar.ends_at = 0;
        assert_eq!(horizon_days(&open), 21.0);
        let f = features(&input(34, &[]));
        assert_eq!(f["horizon_days"], 6.0);
        assert!((f["log_horizon_days"] - 7f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn every_named_feature_is_computed_and_known() {
        let f = features(&input(10, &[2]));
        let names: Vec<&str> = LearnerSignals::NAMES
            .iter()
            .chain(EXTRA_FEATURE_NAMES.iter())
            .copied()
            .collect();
        assert_eq!(f.len(), names.len(), "names are unique");
        for name in names {
            assert!(f.contains_key(name), "{name}");
            assert!(is_feature(name));
        }
        assert!(!is_feature("nope"));
    }
}
