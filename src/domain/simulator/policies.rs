//! The policies the simulator compares.
//!
//! * **adaptive**: the production policy,
//!   [`crate::domain::remediation::recommend`], asked for one
//!   recommendation, with what production has (the engine's fit: per-skill
//!   parameters and per-module learn rates, see [`super::population`]).
//! * **fixed**: a fixed curriculum, what a typical course does. Skills in
//!   topological order of the prerequisite graph (ties by id), and for each
//!   skill every module in the learner's language, in catalog order, once.
//!   (The JSON key is a contract: `fixed`, as issue 3 spells it.) When the
//!   LMS's final exam fails skills, the course goes through the modules of
//!   those skills again.
//! * **mastery_learning**: mastery learning with placement: skills in
//!   topological order, skipping those passed at the placement quiz; for
//!   the current skill, its first module in the learner's language,
//!   repeated until the quiz after it is passed (two thirds right), then
//!   the next skill. Skills the final exam fails are taken up again.
//! * **mastery_learning_all**: the same without the placement skip.
//! * **random_ready**: a module drawn uniformly among the modules in the
//!   learner's language that teach a skill of the engine's fringe (ready
//!   program skills or deepest unmastered prerequisites): knows what to
//!   target, not how.
//!
//! Every policy sees the same placement quiz, quizzes and final exam, and
//! the same BKT beliefs: only the choices differ.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SimOptions;
use super::population::Fitted;
use super::world::World;
use crate::domain::bkt::BktParams;
use crate::domain::remediation::effects::Effects;
use crate::domain::remediation::{
    self, Kind, ModuleOutcome, RecommendInput, SkillEvidence, Status, language_matches,
};

/// The policies compared, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyKind {
    /// The production remediation policy.
    Adaptive,
    /// Mastery learning, skipping skills passed at placement.
    MasteryLearning,
    /// Mastery learning without the placement skip.
    MasteryLearningAll,
    /// Every module of the course, in order.
    Fixed,
    /// A random module teaching a ready skill.
    RandomReady,
}

impl PolicyKind {
    /// Every policy, in report order.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Adaptive,
        PolicyKind::MasteryLearning,
        PolicyKind::MasteryLearningAll,
        PolicyKind::Fixed,
        PolicyKind::RandomReady,
    ];

    /// The name used in the JSON report and the table.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Adaptive => "adaptive",
            PolicyKind::MasteryLearning => "mastery_learning",
            PolicyKind::MasteryLearningAll => "mastery_learning_all",
            PolicyKind::Fixed => "fixed",
            PolicyKind::RandomReady => "random_ready",
        }
    }
}

/// What the LMS knows of a learner besides the engine's beliefs: quiz
/// results, the placement, and the items answered per skill since the
/// latest module on it.
pub struct LmsView<'a> {
    /// Whether the placement quiz passed each skill (by skill index).
    pub placement_passed: &'a [bool],
    /// Whether the latest quiz or exam on each skill passed (`None`: none
    /// since the placement).
    pub last_passed: &'a [Option<bool>],
    /// Answers on each skill since its latest module (the placement counts
    /// for skills never taught).
    pub evidence: &'a BTreeMap<String, SkillEvidence>,
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
    /// The engine's fit of the learners served before (see
    /// [`super::population`]): per-skill parameters and per-module rates,
    /// empty for the first cohort (the defaults).
    pub fitted: &'a Fitted,
    /// What modules did for the learners served before (adaptive only).
    pub effects: &'a Effects,
    /// Seed of the adaptive policy's draws for this request.
    pub seed: u64,
    /// What the LMS knows.
    pub lms: LmsView<'a>,
}

/// What a policy asks the learner to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Do module number `m` (then its quiz).
    Module(usize),
    /// Answer these items: (skill index, item number in its bank).
    Items(Vec<(usize, usize)>),
    /// Nothing more to do: the policy considers the program done.
    Done,
    /// Something needs work but nothing usable teaches it.
    Stuck,
}

impl View<'_> {
    fn with_input<T>(&self, count: usize, f: impl FnOnce(&RecommendInput<'_>) -> T) -> T {
        let exclude = BTreeSet::new();
        let input = RecommendInput {
            skills: &self.world.skills,
            modules: &self.world.modules,
            index: &self.world.catalog_index,
            program_skill_ids: &self.world.program,
            mastery: self.mastery,
            threshold: self.options.threshold,
            default_params: BktParams::default(),
            skill_params: &self.fitted.params,
            module_learn_rates: &self.fitted.rates,
            effects: self.effects,
            evidence: self.lms.evidence,
            language: self.language,
            history: self.history,
            count,
            exclude: &exclude,
            allow_language_fallback: false,
            seed: self.seed,
            config: self.options.policy,
        };
        f(&input)
    }

    /// The modules teaching skill `id` in the learner's language, in
    /// catalog order.
    fn modules_of(&self, id: &str) -> Vec<usize> {
        self.world
            .modules
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.skill_ids.iter().any(|s| s == id) && language_matches(self.language, &m.language)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// A policy with its own state for one learner.
pub enum Policy {
    /// See [`PolicyKind::Adaptive`].
    Adaptive,
    /// See [`PolicyKind::MasteryLearning`] (`skip`) and
    /// [`PolicyKind::MasteryLearningAll`].
    Mastery {
        /// Whether skills passed at placement are skipped.
        skip: bool,
    },
    /// See [`PolicyKind::Fixed`].
    Fixed {
        /// Index in `World::topo` of the current skill.
        skill: usize,
        /// Modules already done for the current skill.
        done: usize,
        /// Rounds through the course already finished.
        round: u32,
    },
    /// See [`PolicyKind::RandomReady`].
    RandomReady,
}

impl Policy {
    /// A fresh policy of that kind.
    pub fn new(kind: PolicyKind) -> Policy {
        match kind {
            PolicyKind::Adaptive => Policy::Adaptive,
            PolicyKind::MasteryLearning => Policy::Mastery { skip: true },
            PolicyKind::MasteryLearningAll => Policy::Mastery { skip: false },
            PolicyKind::Fixed => Policy::Fixed {
                skill: 0,
                done: 0,
                round: 0,
            },
            PolicyKind::RandomReady => Policy::RandomReady,
        }
    }

    /// What the learner does next.
    pub fn next(&mut self, view: &View<'_>, rng: &mut ChaCha8Rng) -> Action {
        let world = view.world;
        match self {
            Policy::Adaptive => view.with_input(1, |input| {
                let Ok(answer) = remediation::recommend(input) else {
                    return Action::Stuck;
                };
                match answer.items.first() {
                    Some(first) if first.kind == Kind::Diagnostic => Action::Items(
                        first
                            .item_ids
                            .iter()
                            .filter_map(|id| world.item_index.get(id).copied())
                            .collect(),
                    ),
                    Some(first) => world
                        .module_index
                        .get(&first.module_id)
                        .map_or(Action::Stuck, |&m| Action::Module(m)),
                    None if answer.status == Status::AllMastered => Action::Done,
                    None => Action::Stuck,
                }
            }),
            Policy::Mastery { skip } => {
                for id in &world.topo {
                    let s = world.skill_index[id];
                    let passed = match view.lms.last_passed[s] {
                        Some(passed) => passed,
                        None => *skip && view.lms.placement_passed[s],
                    };
                    if passed {
                        continue;
                    }
                    if let Some(&m) = view.modules_of(id).first() {
                        return Action::Module(m);
                    }
                }
                Action::Done
            }
            Policy::Fixed { skill, done, round } => loop {
                let Some(id) = world.topo.get(*skill) else {
                    // End of the course: the LMS's final exam; if it fails
                    // skills, the next call goes through them again.
                    *skill = 0;
                    *done = 0;
                    *round += 1;
                    return Action::Done;
                };
                let s = world.skill_index[id];
                let modules = view.modules_of(id);
                let wanted = *round == 0 || view.lms.last_passed[s] == Some(false);
                if !wanted || *done >= modules.len() {
                    *skill += 1;
                    *done = 0;
                    continue;
                }
                let pick = modules[*done];
                *done += 1;
                return Action::Module(pick);
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
                    if fringe.unmastered_program.is_empty() {
                        Action::Done
                    } else {
                        Action::Stuck
                    }
                } else {
                    Action::Module(modules[rng.random_range(0..modules.len())])
                }
            }
        }
    }
}
