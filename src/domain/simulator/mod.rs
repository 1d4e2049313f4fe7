//! A seeded learner simulator: does the remediation policy shorten the road
//! to mastery, compared with what a typical course does?
//!
//! The engine never sees the truth about a learner, only quiz answers. The
//! simulator keeps that truth hidden and plays the LMS loop against the real
//! engine code:
//!
//! 1. a policy picks the next module (for "adaptive" that is
//!    [`crate::domain::remediation::recommend`] itself);
//! 2. the synthetic learner spends the module's duration and may learn its
//!    skills, but only those whose prerequisites are *truly* mastered, with a
//!    probability that depends on the module (some are much better than
//!    others, which the engine does not know), its format and the learner;
//! 3. the learner answers a short quiz on the module's skills, with slip and
//!    guess, and the answers go through the real BKT update
//!    ([`crate::domain::bkt::BktParams::update`]) to give the engine's
//!    P(mastered), which the next pick sees;
//!
//! until every program skill is truly mastered, or the policy has nothing
//! left to offer and the LMS's final exam confirms it (the learner is then
//! *stopped*: a false certification, reported as such), or a time cap is
//! reached (the learner is then *censored*).
//!
//! Learners are served in cohorts of [`SimOptions::refit_every`]; before
//! each cohort the engine's model is fitted on the adaptive runs of the
//! learners already served, as `FitModel` fits it in production, and both
//! its per-skill parameters (for mastery) and its per-module learn rates
//! (for ranking) are handed to the adaptive policy (see [`population`]).
//! The other policies use neither, so cohorts change nothing for them.
//!
//! Everything is drawn from [`rand_chacha::ChaCha8Rng`] streams derived from
//! the seed: the world on one stream, each learner on its own stream, and
//! each policy replays the *same* learner with the *same* random stream
//! (common random numbers), so differences between policies are not noise of
//! the draw. Learners of a cohort run in parallel (rayon) and are collected
//! in order, and the fit is sequential, so the report depends on the seed
//! (and options) only.
//!
//! Module map: [`world`] builds the catalog and the hidden learners,
//! [`policies`] the three policies compared, [`run`] the LMS loop,
//! [`population`] the engine's fit and [`report`] the figures.
//!
//! A dropout behaviour (for training an at-risk model) is meant to plug into
//! [`run::run_learner`]: the loop already returns a per-learner
//! [`run::LearnerOutcome`] and has one place where a learner can stop.

pub mod policies;
pub mod population;
pub mod report;
pub mod run;
pub mod world;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use policies::PolicyKind;
pub use report::{PolicyReport, SimReport};
pub use world::{World, WorldKind};

use crate::domain::remediation::effects::Effects;
use crate::domain::remediation::{DEFAULT_THRESHOLD, PolicyConfig};

/// What to simulate; [`Default`] gives the figures quoted in the README.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimOptions {
    /// Number of synthetic learners per seed (each runs once per policy).
    pub learners: usize,
    /// Seed of every random draw (the first one when `seeds` > 1).
    pub seed: u64,
    /// Number of seeds: worlds `seed`, `seed + 1`, ... are simulated and
    /// their learners pooled in one report.
    pub seeds: u64,
    /// The hidden learner model.
    pub world: WorldKind,
    /// Number of skills in the synthetic catalog (at least 2).
    pub skills: usize,
    /// Number of modules (raised to three per skill: every skill has two
    /// modules in English and one in French).
    pub modules: usize,
    /// Quiz items answered after each module, per skill of the module, and
    /// per skill in the final exam.
    pub quiz_items: u32,
    /// Items per program skill in the placement quiz every learner takes
    /// first (a skill is passed at placement when all are right).
    pub placement_items: u32,
    /// Learner minutes one quiz item takes.
    pub minutes_per_item: u32,
    /// Learner time after which a learner is censored.
    pub max_minutes: u32,
    /// Mastery threshold of the engine.
    pub threshold: f64,
    /// Share of learners whose language is French (the rest speak English).
    pub french_share: f64,
    /// Tuning constants of the adaptive policy.
    pub policy: PolicyConfig,
    /// Learners per cohort: before each cohort the per-module learn rates
    /// are refitted on the adaptive runs of the learners served before
    /// (see [`population`]); `0` never fits (the engine keeps its defaults).
    pub refit_every: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            learners: 500,
            seed: 42,
            seeds: 1,
            world: WorldKind::Irt,
            skills: 30,
            modules: 120,
            quiz_items: 3,
            placement_items: 2,
            minutes_per_item: 1,
            max_minutes: 20_000,
            threshold: DEFAULT_THRESHOLD,
            french_share: 0.2,
            policy: PolicyConfig::default(),
            refit_every: 50,
        }
    }
}

/// Outcomes of every policy for one learner, in [`PolicyKind::ALL`] order.
type Outcomes = [run::LearnerOutcome; PolicyKind::ALL.len()];

/// Runs every policy on the same synthetic population and summarises.
///
/// Deterministic: the same options give the same report, whatever the
/// number of threads.
pub fn simulate(options: &SimOptions) -> SimReport {
    let mut outcomes: Vec<(usize, Outcomes)> = Vec::new();
    for k in 0..options.seeds.max(1) {
        let one = SimOptions {
            seed: options.seed.wrapping_add(k),
            ..options.clone()
        };
        outcomes.extend(simulate_seed(&one).into_iter().enumerate());
    }
    report::summarise(options, &outcomes)
}

/// The outcomes of one seed's learners, in order.
///
/// The adaptive policy learns from the learners before (module effects
/// after every module, the fitted rates every cohort), so its runs go one
/// learner after the other, as the engine sees them; the other policies
/// learn nothing and run in parallel.
fn simulate_seed(options: &SimOptions) -> Vec<Outcomes> {
    let world = World::generate(options);
    let cohort = match options.refit_every {
        0 => options.learners.max(1),
        n => n,
    };
    let mut outcomes: Vec<Outcomes> = Vec::with_capacity(options.learners);
    let mut traces: Vec<population::Trace> = Vec::new();
    let mut fitted = population::Fitted::default();
    let none = population::Fitted::default();
    let mut effects = Effects::default();
    for start in (0..options.learners).step_by(cohort) {
        if options.refit_every > 0 && start > 0 {
            fitted = population::fit_engine_model(&world, &traces, options.seed);
        }
        let end = (start + cohort).min(options.learners);
        let learners: Vec<_> = (start..end).map(|i| world.learner(options, i)).collect();
        let mut adaptive = Vec::with_capacity(learners.len());
        for (i, learner) in (start..end).zip(&learners) {
            let mut trace = population::Trace::default();
            let population = run::Population {
                fitted: &fitted,
                effects: &mut effects,
            };
            let outcome = run::run_learner(
                &world,
                learner,
                PolicyKind::Adaptive,
                options,
                i,
                population,
                Some(&mut trace),
            );
            adaptive.push(outcome);
            if options.refit_every > 0 {
                traces.push(trace);
            }
        }
        let others: Vec<Vec<run::LearnerOutcome>> = (start..end)
            .into_par_iter()
            .zip(learners.par_iter())
            .map(|(i, learner)| {
                let mut unused = Effects::default();
                PolicyKind::ALL[1..]
                    .iter()
                    .map(|&kind| {
                        let population = run::Population {
                            fitted: &none,
                            effects: &mut unused,
                        };
                        run::run_learner(&world, learner, kind, options, i, population, None)
                    })
                    .collect()
            })
            .collect();
        for (first, rest) in adaptive.into_iter().zip(others) {
            let mut all = [first; PolicyKind::ALL.len()];
            for (slot, outcome) in all[1..].iter_mut().zip(rest) {
                *slot = outcome;
            }
            outcomes.push(all);
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world small enough for a debug build: 12 skills, a refit after 50
    /// learners, a shorter time cap.
    fn small(seed: u64) -> SimOptions {
        SimOptions {
            learners: 55,
            seed,
            skills: 12,
            modules: 40,
            max_minutes: 6_000,
            ..SimOptions::default()
        }
    }

    #[test]
    fn same_seed_same_report_and_other_seed_differs() {
        let a = serde_json::to_string(&simulate(&small(7))).unwrap();
        let b = serde_json::to_string(&simulate(&small(7))).unwrap();
        let c = serde_json::to_string(&simulate(&small(8))).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// The keys are contracts: `adaptive`, `fixed` and `random_ready` from
    /// issue 3, `mastery_learning` from issue 18.
    #[test]
    fn json_has_exactly_the_promised_shape() {
        let report = simulate(&SimOptions {
            learners: 5,
            ..small(1)
        });
        let value = serde_json::to_value(&report).unwrap();
        let top: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(top, ["policies"]);
        let policies = value["policies"].as_object().unwrap();
        let names: Vec<&String> = policies.keys().collect();
        assert_eq!(
            names,
            [
                "adaptive",
                "fixed",
                "mastery_learning",
                "mastery_learning_all",
                "random_ready"
            ]
        );
        for (_, p) in policies {
            for field in [
                "median_minutes",
                "p90_minutes",
                "mastered_share",
                "false_certification_rate",
                "useless_share",
                "useful_share",
            ] {
                assert!(p[field].is_number(), "{field} missing in {p}");
            }
        }
        let table = report.to_string();
        assert!(
            table.contains("adaptive") && table.contains("random_ready"),
            "{table}"
        );
    }

    /// The population fit is the engine's data flow for the adaptive policy
    /// only: the other policies do exactly the same without it, and the
    /// adaptive one changes once rates are fitted (learners 50..55).
    #[test]
    fn population_rates_only_change_the_adaptive_policy() {
        let with = simulate(&small(3));
        let without = simulate(&SimOptions {
            refit_every: 0,
            ..small(3)
        });
        for name in ["mastery_learning", "fixed", "random_ready"] {
            assert_eq!(with.policies[name], without.policies[name], "{name}");
        }
        assert_ne!(with.policies["adaptive"], without.policies["adaptive"]);
    }
}
