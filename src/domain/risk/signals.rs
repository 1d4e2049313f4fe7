//! The per-learner signals behind at-risk alerts, from plain inputs.
//!
//! The caller (engine, simulator, CLI) gathers a [`SignalInput`] from wherever
//! the history lives; [`signals`] turns it into a fixed vector of named
//! features ([`LearnerSignals`]). The same function feeds the rules, the
//! training set of the risk model and the live prediction, so a model is
//! always scored on features computed exactly as it was trained on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::bkt::{Belief, BktParams, Observation};
use crate::domain::learner::Micros;

/// Microseconds in a day: signals count inactivity in (fractional) days.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// How many of the latest attempts the two trend signals look at: long
/// enough to smooth one unlucky answer, short enough to see a recent slide.
pub const TREND_WINDOW: usize = 10;

/// Upper bound of [`LearnerSignals::time_ratio`]: one learner who leaves a
/// module open overnight must not dominate a linear model.
pub const MAX_TIME_RATIO: f64 = 5.0;

/// One answer on one skill with the mastery it moved, oldest first in a
/// history. An attempt testing two skills appears once per skill.
///
/// `p_before`/`p_after` are what BKT said before and after this answer (see
/// [`trace_mastery`]): the rules need both to tell "failed without mastery
/// gain" from "failed but still learning".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillAttempt {
    /// The skill the answer is evidence of.
    pub skill_id: String,
    /// Whether the answer was right.
    pub correct: bool,
    /// When the learner answered.
    pub at: Micros,
    /// P(mastered) of the skill just before the answer.
    pub p_before: f64,
    /// P(mastered) of the skill just after the answer.
    pub p_after: f64,
}

/// The calendar a program's pace is measured against.
///
/// Kept separate from `learner::Program` because not every deployment has
/// dates: with an empty calendar (`units == 0` or `ends_at <=
/// starts_at`) the pace signal is neutral (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramCalendar {
    /// First day of the program.
    pub starts_at: Micros,
    /// Planned end of the program.
    pub ends_at: Micros,
    /// How many units a learner must cover to complete the program: its
    /// skills that some module teaches (see `domain::completion`).
    pub units: u32,
}

impl ProgramCalendar {
    /// Share of the program's duration elapsed at `now`, in `[0, 1]`; `None`
    /// when the calendar cannot say.
    pub fn elapsed_share(&self, now: Micros) -> Option<f64> {
        if self.units == 0 || self.ends_at <= self.starts_at {
            return None;
        }
        let share = (now - self.starts_at) as f64 / (self.ends_at - self.starts_at) as f64;
        Some(share.clamp(0.0, 1.0))
    }
}

/// Everything the signals of one learner in one program depend on.
///
/// Plain data: the engine fills it from the store, the synthetic generator
/// from a simulated history, tests by hand. Only events before `now` must be
/// included (the functions do not filter), so that a signal never sees the
/// future.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalInput {
    /// The observation time.
    pub now: Micros,
    /// The program's calendar.
    pub calendar: ProgramCalendar,
    /// When the learner enrolled (inactivity counts from here at worst).
    pub enrolled_at: Micros,
    /// Latest module event of the learner (attempts are also looked at).
    pub last_activity_at: Option<Micros>,
    /// Units covered so far: program skills with a completed module.
    pub units_completed: u32,
    /// The learner's attempts in the program's skills, oldest first.
    pub attempts: Vec<SkillAttempt>,
    /// Total time spent in the program's modules, in milliseconds.
    pub time_spent_ms: u64,
    /// Median of `time_spent_ms` over the learner's cohort at `now` (0 when
    /// unknown, which makes the time signal neutral).
    pub cohort_median_time_spent_ms: u64,
    /// Remediation modules recommended to the learner so far.
    pub recommended_modules: u32,
    /// How many of those the learner started.
    pub recommended_started: u32,
    /// Display names of skills, for alert reasons; ids are used when absent.
    #[serde(default)]
    pub skill_names: BTreeMap<String, String>,
    /// Module events in the program's modules as (time, time spent in
    /// milliseconds), oldest first: with the attempts, the sessions and
    /// effort the engagement signals compare with the learner's habit.
    #[serde(default)]
    pub module_events: Vec<(Micros, u64)>,
    /// When each covered unit got its first completed module, oldest
    /// first (as many as `units_completed`): the recent pace.
    #[serde(default)]
    pub unit_completions: Vec<Micros>,
    /// Declared pauses of the learner in the program as (start, end),
    /// those begun by `now`: left out of every gap and span.
    #[serde(default)]
    pub pauses: Vec<(Micros, Micros)>,
}

impl SignalInput {
    /// The skill's display name, or its id when none is known.
    pub fn skill_name<'a>(&'a self, skill_id: &'a str) -> &'a str {
        self.skill_names
            .get(skill_id)
            .map_or(skill_id, String::as_str)
    }
}

/// The features of one learner at one time: what the rules read and the
/// risk model is trained on. Every field is a plain `f64` so that the vector
/// can be standardized and fed to a linear model as is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LearnerSignals {
    /// Days since the latest attempt or module event (or since enrolment /
    /// program start when there is none); 0 before the program starts.
    pub days_inactive: f64,
    /// Share of the program (its completion units) the calendar expects by
    /// now minus the share done, in `[-1, 1]`: positive means behind
    /// schedule.
    pub pace_gap: f64,
    /// Least-squares slope of correctness (1/0) per attempt over the last
    /// [`TREND_WINDOW`] attempts: negative when answers get worse.
    pub correctness_trend: f64,
    /// Mean change of P(mastered) per attempt over the last
    /// [`TREND_WINDOW`] attempts: negative when mastery erodes.
    pub mastery_trend: f64,
    /// Longest current run of consecutive failed attempts on one skill.
    pub failure_streak: f64,
    /// Largest fall of P(mastered) from its peak, over the skills.
    pub mastery_drop: f64,
    /// Time spent relative to the cohort's median (1 = typical), capped at
    /// [`MAX_TIME_RATIO`].
    pub time_ratio: f64,
    /// Share of recommended remediation modules the learner started (1 when
    /// none was recommended: nothing was ignored).
    pub recommended_started_share: f64,
}

impl LearnerSignals {
    /// Number of features.
    pub const LEN: usize = 8;

    /// Feature names, in [`LearnerSignals::to_array`] order: the model file
    /// stores them and refuses to score a different layout.
    pub const NAMES: [&'static str; Self::LEN] = [
        "days_inactive",
        "pace_gap",
        "correctness_trend",
        "mastery_trend",
        "failure_streak",
        "mastery_drop",
        "time_ratio",
        "recommended_started_share",
    ];

    /// The features as a vector, in [`LearnerSignals::NAMES`] order.
    pub fn to_array(&self) -> [f64; Self::LEN] {
        [
            self.days_inactive,
            self.pace_gap,
            self.correctness_trend,
            self.mastery_trend,
            self.failure_streak,
            self.mastery_drop,
            self.time_ratio,
            self.recommended_started_share,
        ]
    }

    /// The inverse of [`LearnerSignals::to_array`].
    pub fn from_array(v: [f64; Self::LEN]) -> Self {
        Self {
            days_inactive: v[0],
            pace_gap: v[1],
            correctness_trend: v[2],
            mastery_trend: v[3],
            failure_streak: v[4],
            mastery_drop: v[5],
            time_ratio: v[6],
            recommended_started_share: v[7],
        }
    }

    /// Name → value, as attached to alerts so a reader sees what was behind
    /// one.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        Self::NAMES
            .iter()
            .zip(self.to_array())
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }
}

/// The current run of failures on one skill: the evidence of a blocking
/// point.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureStreak {
    /// The skill.
    pub skill_id: String,
    /// Consecutive failed attempts at the end of the skill's history.
    pub failures: u32,
    /// When the first failure of the run happened.
    pub since: Micros,
    /// When the latest failure of the run happened.
    pub last_at: Micros,
    /// P(mastered) before the run.
    pub p_start: f64,
    /// P(mastered) now.
    pub p_end: f64,
}

impl FailureStreak {
    /// What the run did to mastery (BKT's learning transition can raise it
    /// even after a wrong answer).
    pub fn gain(&self) -> f64 {
        self.p_end - self.p_start
    }
}

/// The fall of one skill's mastery from its peak.
#[derive(Debug, Clone, PartialEq)]
pub struct MasteryFall {
    /// The skill.
    pub skill_id: String,
    /// Highest P(mastered) reached.
    pub peak: f64,
    /// When the peak was reached.
    pub peak_at: Micros,
    /// P(mastered) now.
    pub current: f64,
    /// When the skill was last answered (the latest evidence of the fall).
    pub current_at: Micros,
}

impl MasteryFall {
    /// `peak - current`, never negative.
    pub fn drop(&self) -> f64 {
        (self.peak - self.current).max(0.0)
    }
}

/// Computes the signals of one learner. Pure and deterministic.
pub fn signals(input: &SignalInput) -> LearnerSignals {
    let last_attempt = input.attempts.iter().map(|a| a.at).max();
    let last_seen = [
        Some(input.enrolled_at),
        Some(input.calendar.starts_at),
        input.last_activity_at,
        last_attempt,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(input.now);
    let days_inactive = ((input.now - last_seen) as f64 / MICROS_PER_DAY as f64).max(0.0);

    let pace_gap = input
        .calendar
        .elapsed_share(input.now)
        .map_or(0.0, |expected| {
            let done =
                (f64::from(input.units_completed) / f64::from(input.calendar.units)).min(1.0);
            expected - done
        });

    let window = &input.attempts[input.attempts.len().saturating_sub(TREND_WINDOW)..];
    let correctness: Vec<f64> = window
        .iter()
        .map(|a| if a.correct { 1.0 } else { 0.0 })
        .collect();
    let correctness_trend = slope(&correctness);
    let mastery_trend = if window.is_empty() {
        0.0
    } else {
        window.iter().map(|a| a.p_after - a.p_before).sum::<f64>() / window.len() as f64
    };

    let failure_streak = failure_streaks(&input.attempts)
        .iter()
        .map(|s| f64::from(s.failures))
        .fold(0.0, f64::max);
    let mastery_drop = mastery_falls(&input.attempts)
        .iter()
        .map(MasteryFall::drop)
        .fold(0.0, f64::max);

    let time_ratio = if input.cohort_median_time_spent_ms == 0 {
        1.0
    } else {
        (input.time_spent_ms as f64 / input.cohort_median_time_spent_ms as f64).min(MAX_TIME_RATIO)
    };
    let recommended_started_share = if input.recommended_modules == 0 {
        1.0
    } else {
        (f64::from(input.recommended_started) / f64::from(input.recommended_modules)).min(1.0)
    };

    LearnerSignals {
        days_inactive,
        pace_gap,
        correctness_trend,
        mastery_trend,
        failure_streak,
        mastery_drop,
        time_ratio,
        recommended_started_share,
    }
}

/// Least-squares slope of `ys` against their index; 0 with fewer than two
/// points (no trend can be seen).
pub fn slope(ys: &[f64]) -> f64 {
    let n = ys.len();
    if n < 2 {
        return 0.0;
    }
    let mean_x = (n - 1) as f64 / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n as f64;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}

/// The current (trailing) failure run of every skill that ends on a failure,
/// sorted by skill id. Attempts must be oldest first.
pub fn failure_streaks(attempts: &[SkillAttempt]) -> Vec<FailureStreak> {
    let mut by_skill: BTreeMap<&str, Vec<&SkillAttempt>> = BTreeMap::new();
    for a in attempts {
        by_skill.entry(&a.skill_id).or_default().push(a);
    }
    by_skill
        .into_iter()
        .filter_map(|(skill, history)| {
            let run = history.iter().rev().take_while(|a| !a.correct).count();
            if run == 0 {
                return None;
            }
            let first = history[history.len() - run];
            let last = history[history.len() - 1];
            Some(FailureStreak {
                skill_id: skill.to_string(),
                failures: run as u32,
                since: first.at,
                last_at: last.at,
                p_start: first.p_before,
                p_end: last.p_after,
            })
        })
        .collect()
}

/// Peak and current mastery of every attempted skill, sorted by skill id.
/// Attempts must be oldest first.
pub fn mastery_falls(attempts: &[SkillAttempt]) -> Vec<MasteryFall> {
    let mut falls: BTreeMap<&str, MasteryFall> = BTreeMap::new();
    for a in attempts {
        let fall = falls.entry(&a.skill_id).or_insert_with(|| MasteryFall {
            skill_id: a.skill_id.clone(),
            peak: a.p_after,
            peak_at: a.at,
            current: a.p_after,
            current_at: a.at,
        });
        if a.p_after > fall.peak {
            fall.peak = a.p_after;
            fall.peak_at = a.at;
        }
        fall.current = a.p_after;
        fall.current_at = a.at;
    }
    falls.into_values().collect()
}

/// Replays BKT over a learner's answers (oldest first) and returns one
/// [`SkillAttempt`] per (answer, skill) with mastery before and after.
///
/// Each skill starts from its prior; `params` gives the parameters of a
/// skill. This is what the engine does when it rebuilds a learner's history
/// from stored attempts, and what the synthetic generator uses.
pub fn trace_mastery<'a>(
    answers: impl IntoIterator<Item = (&'a str, Observation, Micros)>,
    params: impl Fn(&str) -> BktParams,
) -> Vec<SkillAttempt> {
    // Beliefs as log-odds: mastery can fall again after any run of right
    // answers (see `Belief`).
    let mut current: BTreeMap<String, Belief> = BTreeMap::new();
    answers
        .into_iter()
        .map(|(skill, obs, at)| {
            let p = params(skill);
            let before = *current
                .entry(skill.to_string())
                .or_insert_with(|| p.prior_belief());
            let after = p.update(before, obs);
            current.insert(skill.to_string(), after);
            SkillAttempt {
                skill_id: skill.to_string(),
                correct: obs.correct,
                at,
                p_before: before.p_known(),
                p_after: after.p_known(),
            }
        })
        .collect()
}

/// Fixtures the risk modules' tests share.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A learner enrolled at time 0 in a program of `units` units that runs
    /// from 0 to `ends_at`, seen at `now`, with no history at all: tests set
    /// what they look at.
    pub(crate) fn quiet_learner(now: Micros, ends_at: Micros, units: u32) -> SignalInput {
        SignalInput {
            now,
            calendar: ProgramCalendar {
                starts_at: 0,
                ends_at,
                units,
            },
            enrolled_at: 0,
            last_activity_at: None,
            units_completed: 0,
            attempts: Vec::new(),
            time_spent_ms: 0,
            cohort_median_time_spent_ms: 0,
            recommended_modules: 0,
            recommended_started: 0,
            skill_names: BTreeMap::new(),
            module_events: Vec::new(),
            unit_completions: Vec::new(),
            pauses: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::quiet_learner;
    use super::*;

    const DAY: i64 = MICROS_PER_DAY;

    fn attempt(skill: &str, correct: bool, day: i64, before: f64, after: f64) -> SkillAttempt {
        SkillAttempt {
            skill_id: skill.into(),
            correct,
            at: day * DAY,
            p_before: before,
            p_after: after,
        }
    }

    fn base() -> SignalInput {
        quiet_learner(20 * DAY, 40 * DAY, 10)
    }

    #[test]
    fn empty_history_counts_inactivity_from_start_and_is_behind() {
        let s = signals(&base());
        assert_eq!(s.days_inactive, 20.0);
        // Half the calendar elapsed, nothing done.
        assert_eq!(s.pace_gap, 0.5);
        assert_eq!(s.correctness_trend, 0.0);
        assert_eq!(s.mastery_trend, 0.0);
        assert_eq!(s.failure_streak, 0.0);
        assert_eq!(s.mastery_drop, 0.0);
        assert_eq!(s.time_ratio, 1.0);
        assert_eq!(s.recommended_started_share, 1.0);
    }

    #[test]
    fn hand_built_history_gives_hand_computed_signals() {
        let mut input = base();
        input.units_completed = 3;
        input.last_activity_at = Some(15 * DAY);
        input.attempts = vec![
            attempt("sql", true, 10, 0.2, 0.5),
            attempt("sql", true, 11, 0.5, 0.8),
            attempt("sql", false, 16, 0.8, 0.6),
            attempt("joins", false, 16, 0.2, 0.15),
            attempt("sql", false, 17, 0.6, 0.4),
        ];
        input.time_spent_ms = 3_000;
        input.cohort_median_time_spent_ms = 2_000;
        input.recommended_modules = 4;
        input.recommended_started = 1;
        let s = signals(&input);
        // Last attempt on day 17, now is day 20.
        assert_eq!(s.days_inactive, 3.0);
        // Expected 0.5 of 10 modules, done 0.3.
        assert!((s.pace_gap - 0.2).abs() < 1e-12);
        // Correctness 1,1,0,0,0: slope = sum(dx*dy)/sum(dx^2) = -3/10.
        assert!((s.correctness_trend + 0.3).abs() < 1e-12);
        // Mean change (0.3 + 0.3 - 0.2 - 0.05 - 0.2) / 5 = 0.03.
        assert!((s.mastery_trend - 0.03).abs() < 1e-12);
        // Two trailing failures on sql, one on joins.
        assert_eq!(s.failure_streak, 2.0);
        // sql peaked at 0.8, now 0.4.
        assert!((s.mastery_drop - 0.4).abs() < 1e-12);
        assert_eq!(s.time_ratio, 1.5);
        assert_eq!(s.recommended_started_share, 0.25);
    }

    #[test]
    fn trend_looks_at_the_last_window_only() {
        let mut input = base();
        // 20 wrong answers then 10 right ones: the window sees only right ones.
        for i in 0..30 {
            input.attempts.push(attempt("s", i >= 20, i / 5, 0.5, 0.5));
        }
        let s = signals(&input);
        assert_eq!(s.correctness_trend, 0.0);
        assert_eq!(s.failure_streak, 0.0);
    }

    #[test]
    fn no_inactivity_before_the_program_starts() {
        let mut input = base();
        input.calendar.starts_at = 30 * DAY;
        let s = signals(&input);
        assert_eq!(s.days_inactive, 0.0);
        assert_eq!(s.pace_gap, 0.0);
    }

    #[test]
    fn time_ratio_is_capped() {
        let mut input = base();
        input.time_spent_ms = 1_000_000;
        input.cohort_median_time_spent_ms = 10;
        assert_eq!(signals(&input).time_ratio, MAX_TIME_RATIO);
    }

    #[test]
    fn names_and_array_agree() {
        let s = LearnerSignals::from_array([1., 2., 3., 4., 5., 6., 7., 8.]);
        assert_eq!(s.to_array(), [1., 2., 3., 4., 5., 6., 7., 8.]);
        let map = s.to_map();
        assert_eq!(map["failure_streak"], 5.0);
        assert_eq!(map["recommended_started_share"], 8.0);
    }

    #[test]
    fn trace_mastery_replays_each_skill_from_its_prior() {
        let params = BktParams::default();
        let wrong = Observation {
            correct: false,
            score: None,
        };
        let right = Observation {
            correct: true,
            score: None,
        };
        let trace = trace_mastery([("a", right, 1), ("b", wrong, 2), ("a", wrong, 3)], |_| {
            params
        });
        assert!((trace[0].p_before - params.prior).abs() < 1e-12);
        assert!((trace[1].p_before - params.prior).abs() < 1e-12);
        assert_eq!(trace[2].p_before, trace[0].p_after);
        let again = params.update(Belief::from_p_known(trace[0].p_after), wrong);
        assert!((trace[2].p_after - again.p_known()).abs() < 1e-12);
    }
}
