//! The figures of a simulation, as JSON for machines and a table for people.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::SimOptions;
use super::policies::PolicyKind;
use super::run::{End, LearnerOutcome};

/// The whole report: `{"policies": {"adaptive": ..., "fixed": ...,
/// "random_ready": ...}}`, nothing else at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// One summary per policy.
    pub policies: Policies,
}

/// The summaries, by policy name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policies {
    /// The production remediation policy.
    pub adaptive: PolicyReport,
    /// A fixed curriculum in topological order.
    pub fixed: PolicyReport,
    /// Random modules teaching a ready skill.
    pub random_ready: PolicyReport,
}

/// What one policy achieved over the population.
///
/// Learner time counts the modules' durations and the quizzes. A learner who
/// did not reach full true mastery (censored by the time cap, or left with
/// nothing to do by the policy) counts at the time cap in the quantiles, so
/// quantiles are lower bounds whenever `censored + stopped` is not zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Learners simulated.
    pub learners: usize,
    /// Learners who truly mastered every program skill.
    pub mastered: usize,
    /// Learners stopped by the time cap.
    pub censored: usize,
    /// Learners the policy left with nothing to do before true mastery.
    pub stopped: usize,
    /// Median learner minutes to full true mastery.
    pub median_minutes: f64,
    /// 90th percentile of learner minutes to full true mastery.
    pub p90_minutes: f64,
    /// Mean learner minutes (censored learners at the cap).
    pub mean_minutes: f64,
    /// Relative change of the median against the fixed curriculum
    /// (−0.35 means 35 % less time).
    pub median_vs_fixed: f64,
    /// Share of recommendations that targeted a skill not truly mastered yet
    /// whose prerequisites were truly mastered.
    pub useful_share: f64,
    /// Mean number of modules done per learner.
    pub mean_recommendations: f64,
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summarise_one(options: &SimOptions, outcomes: &[LearnerOutcome]) -> PolicyReport {
    let cap = f64::from(options.max_minutes);
    let mut minutes: Vec<f64> = outcomes
        .iter()
        .map(|o| match o.end {
            End::Mastered => f64::from(o.minutes),
            End::Stopped | End::Capped => cap.max(f64::from(o.minutes)),
        })
        .collect();
    minutes.sort_by(f64::total_cmp);
    let n = outcomes.len();
    let recs: u64 = outcomes.iter().map(|o| u64::from(o.recommendations)).sum();
    let useful: u64 = outcomes.iter().map(|o| u64::from(o.useful)).sum();
    PolicyReport {
        learners: n,
        mastered: outcomes.iter().filter(|o| o.end == End::Mastered).count(),
        censored: outcomes.iter().filter(|o| o.end == End::Capped).count(),
        stopped: outcomes.iter().filter(|o| o.end == End::Stopped).count(),
        median_minutes: quantile(&minutes, 0.5),
        p90_minutes: quantile(&minutes, 0.9),
        mean_minutes: if n == 0 {
            0.0
        } else {
            minutes.iter().sum::<f64>() / n as f64
        },
        median_vs_fixed: 0.0,
        useful_share: if recs == 0 {
            0.0
        } else {
            useful as f64 / recs as f64
        },
        mean_recommendations: if n == 0 { 0.0 } else { recs as f64 / n as f64 },
    }
}

/// Builds the report from per-learner outcomes (in [`PolicyKind::ALL`] order).
pub(crate) fn summarise(options: &SimOptions, outcomes: &[[LearnerOutcome; 3]]) -> SimReport {
    let column = |k: usize| -> Vec<LearnerOutcome> { outcomes.iter().map(|o| o[k]).collect() };
    let mut adaptive = summarise_one(options, &column(0));
    let mut fixed = summarise_one(options, &column(1));
    let mut random_ready = summarise_one(options, &column(2));
    let base = fixed.median_minutes;
    for r in [&mut adaptive, &mut fixed, &mut random_ready] {
        r.median_vs_fixed = if base > 0.0 {
            r.median_minutes / base - 1.0
        } else {
            0.0
        };
    }
    SimReport {
        policies: Policies {
            adaptive,
            fixed,
            random_ready,
        },
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<13} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7} {:>8} {:>7}",
            "policy",
            "learners",
            "median",
            "p90",
            "mean",
            "vs fixed",
            "useful",
            "modules",
            "censored",
            "stopped"
        )?;
        let p = &self.policies;
        for (kind, r) in PolicyKind::ALL
            .iter()
            .zip([&p.adaptive, &p.fixed, &p.random_ready])
        {
            writeln!(
                f,
                "{:<13} {:>8} {:>8.0} {:>8.0} {:>9.0} {:>+8.1}% {:>7.1}% {:>7.1} {:>8} {:>7}",
                kind.name(),
                r.learners,
                r.median_minutes,
                r.p90_minutes,
                r.mean_minutes,
                100.0 * r.median_vs_fixed,
                100.0 * r.useful_share,
                r.mean_recommendations,
                r.censored,
                r.stopped,
            )?;
        }
        write!(
            f,
            "minutes of learner time to full true mastery of the program (median, 90th percentile, mean);\n\
             useful = share of modules targeting a skill the learner could learn and had not; \
             censored = time cap reached; stopped = the LMS certified the program (policy done, final exam passed) \
             although a skill was not truly mastered; both count at the time cap"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.9), 9.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
