//! The three policies the simulator compares.
//!
//! * **adaptive**: the production policy,
//!   [`crate::domain::remediation::recommend`], asked for one module, with
//!   the per-module learn rates fitted on earlier learners (see
//!   [`super::population`]).
//! * **fixed**: what a typical course does. Skills in topological order of
//!   the prerequisite graph (ties by id); for the current skill, its modules
//!   in the learner's language in catalog order, cycling back to the first
//!   after the last; the course moves on to the next skill as soon as the
//!   engine's P(mastered) of the current one reaches the threshold (the
//!   mastery-learning course of the brief; it never gives up on a skill). At
//!   the end of the course, when the LMS's final exam reopens skills, it goes
//!   through the course again, skipping mastered skills. It is given the
//!   same quizzes and the same BKT as the adaptive policy: only the choice
//!   of module differs.
//! * **random_ready**: a module drawn uniformly among the modules in the
//!   learner's language that teach a skill of the engine's fringe (ready
//!   program skills or deepest unmastered prerequisites): knows what to
//!   target, not how.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SimOptions;
use super::world::World;
use crate::domain::bkt::BktParams;
use crate::domain::remediation::{self, ModuleOutcome, RecommendInput, language_matches};

/// The policies compared, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyKind {
    /// The production remediation policy.
    Adaptive,
    /// A fixed curriculum in topological order.
    Fixed,
    /// A random module teaching a ready skill.
    RandomReady,
}

impl PolicyKind {
    /// Every policy, in report order.
    pub const ALL: [PolicyKind; 3] = [
        PolicyKind::Adaptive,
        PolicyKind::Fixed,
        PolicyKind::RandomReady,
    ];

    /// The name used in the JSON report and the table.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Adaptive => "adaptive",
            PolicyKind::Fixed => "fixed",
            PolicyKind::RandomReady => "random_ready",
        }
    }
}

/// What a policy sees: the catalog and the engine's state of the learner,
/// never the hidden truth.
pub struct View<'a> {
    /// The world (only its catalog part may be read).
    pub world: &'a World,
    /// The learner's language.
    pub language: &'a str,
    /// The engine's P(mastered) per skill.
    pub mastery: &'a BTreeMap<String, f64>,
    /// Recent modules, oldest first.
    pub history: &'a [ModuleOutcome],
    /// Options of the run (threshold, policy constants).
    pub options: &'a SimOptions,
    /// Per-module learn rates fitted on the learners served before (see
    /// [`super::population`]); empty for the first cohort.
    pub rates: &'a BTreeMap<String, f64>,
}

impl View<'_> {
    fn with_input<T>(&self, count: usize, f: impl FnOnce(&RecommendInput<'_>) -> T) -> T {
        let (params, exclude) = (BTreeMap::new(), BTreeSet::new());
        let input = RecommendInput {
            skills: &self.world.skills,
            modules: &self.world.modules,
            index: &self.world.catalog_index,
            program_skill_ids: &self.world.program,
            mastery: self.mastery,
            threshold: self.options.threshold,
            default_params: BktParams::default(),
            skill_params: &params,
            module_learn_rates: self.rates,
            language: self.language,
            history: self.history,
            count,
            exclude: &exclude,
            allow_language_fallback: false,
            config: self.options.policy,
        };
        f(&input)
    }

    fn p(&self, skill: &str) -> f64 {
        self.mastery
            .get(skill)
            .copied()
            .unwrap_or(BktParams::default().prior)
    }
}

/// A policy with its own state for one learner.
pub enum Policy {
    /// See [`PolicyKind::Adaptive`].
    Adaptive,
    /// See [`PolicyKind::Fixed`]: position in the topological order and the
    /// number of modules done on the current skill.
    Fixed {
        /// Index in `World::topo` of the current skill.
        skill: usize,
        /// Modules already done for the current skill.
        done: usize,
    },
    /// See [`PolicyKind::RandomReady`].
    RandomReady,
}

impl Policy {
    /// A fresh policy of that kind.
    pub fn new(kind: PolicyKind) -> Policy {
        match kind {
            PolicyKind::Adaptive => Policy::Adaptive,
            PolicyKind::Fixed => Policy::Fixed { skill: 0, done: 0 },
            PolicyKind::RandomReady => Policy::RandomReady,
        }
    }

    /// The index (in `World::modules`) of the next module, or `None` when
    /// the policy has nothing left to offer.
    pub fn next(&mut self, view: &View<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        let world = view.world;
        match self {
            Policy::Adaptive => view.with_input(1, |input| {
                let answer = remediation::recommend(input).ok()?;
                let first = answer.items.first()?;
                world.module_index.get(&first.module_id).copied()
            }),
            Policy::Fixed { skill, done } => loop {
                let Some(id) = world.topo.get(*skill) else {
                    // End of the course. The LMS runs its final exam; if that
                    // reopens skills, the next call goes through the course
                    // again from the start, skipping mastered skills.
                    *skill = 0;
                    *done = 0;
                    return None;
                };
                if view.p(id) >= view.options.threshold {
                    *skill += 1;
                    *done = 0;
                    continue;
                }
                let modules: Vec<usize> = world
                    .modules
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| {
                        m.skill_ids.contains(id) && language_matches(view.language, &m.language)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if modules.is_empty() {
                    *skill += 1;
                    *done = 0;
                    continue;
                }
                let pick = modules[*done % modules.len()];
                *done += 1;
                return Some(pick);
            },
            Policy::RandomReady => {
                let fringe = view.with_input(1, remediation::fringe);
                let modules: Vec<usize> = world
                    .modules
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| {
                        language_matches(view.language, &m.language)
                            && m.skill_ids.iter().any(|s| fringe.contains(s))
                    })
                    .map(|(i, _)| i)
                    .collect();
                if modules.is_empty() {
                    None
                } else {
                    Some(modules[rng.random_range(0..modules.len())])
                }
            }
        }
    }
}
