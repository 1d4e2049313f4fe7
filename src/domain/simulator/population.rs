//! Population-level learning: the engine's own fit on the learners already
//! served, the data flow of production.
//!
//! In production `FitModel` fits BKT on the stored attempts (multilearn: the
//! learn rate of an attempt is that of the latest module on its skill done
//! since the skill's previous attempt), then puts the fitted per-skill
//! parameters in force for mastery and hands the per-module learn rates to
//! `RecommendNext`. The simulator plays the same flow: learners are served
//! in cohorts of [`SimOptions::refit_every`](super::SimOptions::refit_every);
//! before each cohort, the adaptive runs of every earlier learner (what the
//! LMS recorded: each answer, and the module before it) go through
//! [`crate::domain::fit::fit`] with the options `FitModel` uses
//! ([`FitOptions::for_mastery`]), and the
//! cohort's adaptive runs receive both the skill parameters (their mastery
//! is traced with them) and the module rates
//! ([`RecommendInput::module_learn_rates`]). The first cohort sees neither
//! (a new catalog). The fixed and random policies use neither, so the fit
//! changes nothing for them. The fit sees only what the engine sees, never
//! the hidden truth.
//!
//! [`RecommendInput::module_learn_rates`]: crate::domain::remediation::RecommendInput::module_learn_rates

use std::collections::BTreeMap;

use super::world::World;
use crate::domain::bkt::BktParams;
use crate::domain::fit::{AttemptRecord, Dataset, FitOptions, Variants, fit};

/// EM restarts per skill: `FitModel`'s default.
const RESTARTS: usize = 5;

/// One answer the LMS recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Index of the skill in `World::skill_ids`.
    pub skill: u32,
    /// Whether it was right.
    pub correct: bool,
    /// Index in `World::modules` of the module credited with the answer:
    /// the module on its skill done since the skill's previous answer, as
    /// the engine's training set credits it (`None` for any other answer).
    pub module: Option<u32>,
}

/// The recorded answers of one learner, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Every answer, placement, quizzes, diagnostic items and exams alike.
    pub answers: Vec<Answer>,
}

/// What a fit hands the adaptive policy, as `FitModel` puts it in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fitted {
    /// Learn rate per module id (the mean over the skills it teaches).
    pub rates: BTreeMap<String, f64>,
    /// BKT parameters per skill id, for the skills the fit saw.
    pub params: BTreeMap<String, BktParams>,
}

/// Fits the engine's model on `traces` (see the module doc), seeded by
/// `seed`. No answers, or a failed fit, give nothing: the engine keeps its
/// defaults. Deterministic: the same traces give the same fit.
pub fn fit_engine_model(world: &World, traces: &[Trace], seed: u64) -> Fitted {
    let rows = traces.iter().map(|t| t.answers.len()).sum();
    let mut dataset = Dataset::with_capacity(rows);
    for (i, trace) in traces.iter().enumerate() {
        let learner = format!("l{i}");
        for answer in &trace.answers {
            dataset.push(AttemptRecord {
                learner: &learner,
                skill: &world.skill_ids[answer.skill as usize],
                correct: answer.correct,
                template: answer.module.map(|m| world.modules[m as usize].id.as_str()),
                group: None,
                timestamp: None,
            });
        }
    }
    let variants = Variants {
        multilearn: true,
        ..Variants::default()
    };
    let options = FitOptions::for_mastery(variants, RESTARTS, seed);
    match fit(&dataset, &options) {
        Ok(model) => Fitted {
            rates: model.module_learn_rates(),
            params: model
                .skills
                .iter()
                .map(|(id, skill)| (id.clone(), skill.params))
                .collect(),
        },
        Err(_) => Fitted::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::simulator::SimOptions;
    use rand::{Rng, SeedableRng};

    /// Answers drawn from BKT itself (guess 0.2, slip 0.1), with learning
    /// only at modules and credited as the engine credits it: the fit ranks
    /// a good module above a poor one, gives every skill its parameters
    /// within the mastery bounds, and gives nothing without answers.
    #[test]
    fn the_engine_fit_recovers_module_rates_and_skill_parameters() {
        let world = World::generate(&SimOptions::default());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (good, poor) = (0usize, 1usize);
        let truth = [0.7, 0.1];
        let mut traces = Vec::new();
        for _ in 0..300 {
            let mut trace = Trace::default();
            for skill in 0..4u32 {
                let mut known = rng.random_bool(0.2);
                for _ in 0..4 {
                    let m = if rng.random_bool(0.5) { good } else { poor };
                    if !known && rng.random_bool(truth[m]) {
                        known = true;
                    }
                    for k in 0..3 {
                        let correct = if known {
                            !rng.random_bool(0.1)
                        } else {
                            rng.random_bool(0.2)
                        };
                        let module = (k == 0).then_some(m as u32);
                        trace.answers.push(Answer {
                            skill,
                            correct,
                            module,
                        });
                    }
                }
            }
            traces.push(trace);
        }
        let fitted = fit_engine_model(&world, &traces, 7);
        let rate = |i: usize| fitted.rates[&world.modules[i].id];
        assert!(
            rate(good) > rate(poor) + 0.2,
            "good {} poor {}",
            rate(good),
            rate(poor)
        );
        assert_eq!(fitted.params.len(), 4, "one set per skill answered");
        for params in fitted.params.values() {
            assert!((params.guess - 0.2).abs() < 0.06, "{params:?}");
            assert!(params.slip > 0.05 && params.slip <= 0.1, "{params:?}");
        }
        assert_eq!(fit_engine_model(&world, &[], 7), Fitted::default());
    }
}
