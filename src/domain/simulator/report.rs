//! The figures of a simulation, as JSON for machines and a table for people.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::SimOptions;
use super::policies::PolicyKind;
use super::run::{End, LearnerOutcome};
use crate::domain::reports::kpi::quantile;

/// Learners after which a skill counts as "seen by the population": the
/// near-useless share is also reported over the learners served after them.
pub const WARMED_UP: usize = 50;

/// The whole report: `{"policies": {"adaptive": {...}, "mastery_learning":
/// {...}, ...}}`, nothing else at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// One summary per policy, by name (see [`PolicyKind::name`]).
    pub policies: BTreeMap<String, PolicyReport>,
}

/// What one policy achieved over the population.
///
/// Learner time counts the placement quiz, the modules, the quizzes and the
/// exams. A learner who did not reach full true mastery (censored by the
/// time cap, left without usable content, or falsely certified) counts at
/// the time cap in the quantiles, so quantiles are lower bounds whenever
/// `mastered_share` is below one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Learners simulated.
    pub learners: usize,
    /// Share of learners who truly mastered every program skill.
    pub mastered_share: f64,
    /// Share of learners certified (policy done, final exam passed) while a
    /// program skill was truly unmastered.
    pub false_certification_rate: f64,
    /// Share of learners stopped by the time cap or left without content.
    pub censored_share: f64,
    /// Median learner minutes to full true mastery.
    pub median_minutes: f64,
    /// 90th percentile of learner minutes to full true mastery.
    pub p90_minutes: f64,
    /// Mean learner minutes (unmastered learners at the cap).
    pub mean_minutes: f64,
    /// Relative change of the median against mastery learning with the
    /// placement skip (−0.35 means 35 % less time).
    pub median_vs_mastery_learning: f64,
    /// Share of modules served that targeted a skill not truly mastered
    /// yet whose prerequisites were truly mastered.
    pub useful_share: f64,
    /// Share of modules served that were near-useless.
    pub useless_share: f64,
    /// The same over the learners served after the first [`WARMED_UP`] of
    /// each seed (every skill has then been through 50 learners).
    pub useless_share_warm: f64,
    /// Mean number of modules done per learner.
    pub mean_modules: f64,
    /// Mean number of diagnostic items the policy asked per learner.
    pub mean_diagnostic_items: f64,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Summarises one policy: `(index of the learner in its seed, outcome)`.
pub(crate) fn summarise_one(
    options: &SimOptions,
    outcomes: &[(usize, LearnerOutcome)],
) -> PolicyReport {
    let cap = f64::from(options.max_minutes);
    let mut minutes: Vec<f64> = outcomes
        .iter()
        .map(|(_, o)| match o.end {
            End::Mastered => f64::from(o.minutes),
            End::Stopped | End::Capped => cap.max(f64::from(o.minutes)),
        })
        .collect();
    minutes.sort_by(f64::total_cmp);
    let n = outcomes.len();
    let count = |end: End| outcomes.iter().filter(|(_, o)| o.end == end).count() as u64;
    let sum = |f: &dyn Fn(&LearnerOutcome) -> u32, warm: bool| -> u64 {
        outcomes
            .iter()
            .filter(|(i, _)| !warm || *i >= WARMED_UP)
            .map(|(_, o)| u64::from(f(o)))
            .sum()
    };
    let recs = sum(&|o| o.recommendations, false);
    PolicyReport {
        learners: n,
        mastered_share: share(count(End::Mastered), n as u64),
        false_certification_rate: share(count(End::Stopped), n as u64),
        censored_share: share(count(End::Capped), n as u64),
        median_minutes: quantile(&minutes, 0.5),
        p90_minutes: quantile(&minutes, 0.9),
        mean_minutes: if n == 0 {
            0.0
        } else {
            minutes.iter().sum::<f64>() / n as f64
        },
        median_vs_mastery_learning: 0.0,
        useful_share: share(sum(&|o| o.useful, false), recs),
        useless_share: share(sum(&|o| o.useless, false), recs),
        useless_share_warm: share(sum(&|o| o.useless, true), sum(&|o| o.recommendations, true)),
        mean_modules: share(recs, n as u64),
        mean_diagnostic_items: share(sum(&|o| o.diagnostic_items, false), n as u64),
    }
}

/// Builds the report from per-learner outcomes (in [`PolicyKind::ALL`]
/// order), each with the learner's index in its seed.
pub(crate) fn summarise(
    options: &SimOptions,
    outcomes: &[(usize, [LearnerOutcome; 5])],
) -> SimReport {
    let mut policies: BTreeMap<String, PolicyReport> = PolicyKind::ALL
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let column: Vec<(usize, LearnerOutcome)> =
                outcomes.iter().map(|(i, o)| (*i, o[k])).collect();
            (kind.name().to_string(), summarise_one(options, &column))
        })
        .collect();
    let base = policies[PolicyKind::MasteryLearning.name()].median_minutes;
    for r in policies.values_mut() {
        r.median_vs_mastery_learning = if base > 0.0 {
            r.median_minutes / base - 1.0
        } else {
            0.0
        };
    }
    SimReport { policies }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<21} {:>8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>6}",
            "policy",
            "learners",
            "median",
            "p90",
            "vs ML",
            "mastered",
            "false ok",
            "useful",
            "useless",
            "warm",
            "modules",
            "items"
        )?;
        for kind in PolicyKind::ALL {
            let Some(r) = self.policies.get(kind.name()) else {
                continue;
            };
            writeln!(
                f,
                "{:<21} {:>8} {:>7.0} {:>7.0} {:>+8.1}% {:>7.1}% {:>7.1}% {:>6.1}% {:>7.1}% {:>6.1}% {:>7.1} {:>6.1}",
                kind.name(),
                r.learners,
                r.median_minutes,
                r.p90_minutes,
                100.0 * r.median_vs_mastery_learning,
                100.0 * r.mastered_share,
                100.0 * r.false_certification_rate,
                100.0 * r.useful_share,
                100.0 * r.useless_share,
                100.0 * r.useless_share_warm,
                r.mean_modules,
                r.mean_diagnostic_items,
            )?;
        }
        write!(
            f,
            "minutes of learner time to full true mastery of the program (median, 90th percentile; \
             learners who never got there count at the cap); vs ML = median against mastery learning \
             with placement skip;\nmastered = share reaching true mastery; false ok = share certified \
             while a skill was truly unmastered; useful = share of modules targeting a skill the \
             learner could learn and had not; useless = share of near-useless modules served \
             (warm: after the first {WARMED_UP} learners of each seed); items = diagnostic items asked"
        )
    }
}
