//! The simulated LMS loop for one learner under one policy.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::SimOptions;
use super::policies::{Policy, PolicyKind, View};
use super::population::{Step, Trace};
use super::world::{LEARNER_STREAM, SimLearner, World, rng};
use crate::domain::bkt::{Belief, BktParams, Observation};
use crate::domain::remediation::{ModuleOutcome, SkillChange};

/// Most recent modules passed to the policy (what an LMS would keep).
const HISTORY_WINDOW: usize = 40;

/// The engine's view of one learner: P(mastered) per skill id, what the
/// policies read, and the beliefs behind it (log-odds, so that mastery can
/// fall again after any run of right answers).
#[derive(Default)]
struct Tracked {
    p: BTreeMap<String, f64>,
    beliefs: BTreeMap<String, Belief>,
}

impl Tracked {
    /// The belief about skill `id` (the prior before any answer).
    fn belief(&self, id: &str, engine: &BktParams) -> Belief {
        self.beliefs
            .get(id)
            .copied()
            .unwrap_or_else(|| engine.prior_belief())
    }

    /// Stores the belief about skill `id`; returns its P(mastered).
    fn set(&mut self, id: &str, belief: Belief) -> f64 {
        self.beliefs.insert(id.to_string(), belief);
        let p = belief.p_known();
        self.p.insert(id.to_string(), p);
        p
    }
}

/// What the LMS records of a run for the population fit, when asked.
type Recorder<'a> = Option<&'a mut Trace>;

/// One quiz item on skill `s`, answered by the learner with slip and guess.
fn answer(learner: &SimLearner, known: bool, rng: &mut ChaCha8Rng) -> Observation {
    let correct = if known {
        !rng.random_bool(learner.slip)
    } else {
        rng.random_bool(learner.guess)
    };
    Observation {
        correct,
        score: None,
    }
}

/// The end-of-course exam: `quiz_items` items on every program skill,
/// through the engine's BKT (the caller counts its minutes). Returns whether
/// it reopened a skill (some program skill fell below the threshold).
fn final_exam(
    world: &World,
    learner: &SimLearner,
    options: &SimOptions,
    known: &[bool],
    mastery: &mut Tracked,
    rng: &mut ChaCha8Rng,
    trace: &mut Recorder<'_>,
) -> bool {
    let engine = BktParams::default();
    let mut reopened = false;
    for id in &world.program {
        let s = world.skill_index[id];
        let mut belief = mastery.belief(id, &engine);
        let mut correct = 0;
        for _ in 0..options.quiz_items {
            let a = answer(learner, known[s], rng);
            correct += u32::from(a.correct);
            belief = engine.update(belief, a);
        }
        if let Some(t) = trace.as_deref_mut() {
            t.push(
                s,
                Step {
                    module: None,
                    correct,
                    items: options.quiz_items,
                },
            );
        }
        let p = mastery.set(id, belief);
        reopened |= p < options.threshold;
    }
    reopened
}

/// How a learner's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every program skill truly mastered.
    Mastered,
    /// The policy had nothing more to offer and the LMS's final exam passed
    /// before true mastery: the program would be certified although the
    /// learner has not mastered it (lucky answers the engine could not tell
    /// apart from mastery). Reported, never silent.
    Stopped,
    /// The time cap was reached.
    Capped,
}

/// The result of one learner under one policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnerOutcome {
    /// Learner minutes spent (modules and quizzes).
    pub minutes: u32,
    /// How the run ended.
    pub end: End,
    /// Modules recommended (and done).
    pub recommendations: u32,
    /// Of which targeted a skill not truly mastered whose prerequisites were
    /// truly mastered (work the learner could profit from).
    pub useful: u32,
}

/// Plays the LMS loop (see the module doc of `simulator`) for `learner`
/// under policy `kind`, with the per-module learn rates fitted so far
/// (`rates`, used by the adaptive policy only), recording what the LMS sees
/// into `trace` when given. Draws come from the learner's own stream, the
/// same for every policy.
pub fn run_learner(
    world: &World,
    learner: &SimLearner,
    kind: PolicyKind,
    options: &SimOptions,
    index: usize,
    rates: &BTreeMap<String, f64>,
    mut trace: Recorder<'_>,
) -> LearnerOutcome {
    // Another stream than the learner's generation, shared by all policies.
    let mut rng = rng(
        options.seed ^ 0x5eed_5eed_5eed_5eed,
        LEARNER_STREAM + index as u64,
    );
    let engine = BktParams::default();
    let mut known = learner.known.clone();
    let mut mastery = Tracked::default();
    let mut history: Vec<ModuleOutcome> = Vec::new();
    let mut policy = Policy::new(kind);
    let mut out = LearnerOutcome {
        minutes: 0,
        end: End::Capped,
        recommendations: 0,
        useful: 0,
    };
    let program: Vec<usize> = world.program.iter().map(|s| world.skill_index[s]).collect();
    loop {
        if program.iter().all(|&s| known[s]) {
            out.end = End::Mastered;
            return out;
        }
        if out.minutes >= options.max_minutes {
            out.end = End::Capped;
            return out;
        }
        let start = history.len().saturating_sub(HISTORY_WINDOW);
        let view = View {
            world,
            language: &learner.language,
            mastery: &mastery.p,
            history: &history[start..],
            options,
            rates,
        };
        let Some(m) = policy.next(&view, &mut rng) else {
            // The course is over for the engine: the LMS's final exam, the
            // same for every policy, may reopen skills believed mastered.
            let reopened = final_exam(
                world,
                learner,
                options,
                &known,
                &mut mastery,
                &mut rng,
                &mut trace,
            );
            out.minutes +=
                world.program.len() as u32 * options.quiz_items * options.minutes_per_item;
            if !reopened {
                // The LMS certifies the program although a skill is not
                // truly mastered: a false certification, reported as such.
                out.end = End::Stopped;
                return out;
            }
            continue;
        };
        let module = &world.modules[m];
        let skills = &world.module_skills[m];
        out.recommendations += 1;
        let learnable =
            |s: usize, known: &[bool]| !known[s] && world.prereqs[s].iter().all(|&q| known[q]);
        if skills.iter().any(|&s| learnable(s, &known)) {
            out.useful += 1;
        }
        out.minutes += module.duration_minutes + options.quiz_items * options.minutes_per_item;
        // Learning happens only on truly learnable skills.
        let p_learn = world.p_learn(learner, m);
        for &s in skills {
            if learnable(s, &known) && rng.random_bool(p_learn) {
                known[s] = true;
            }
        }
        // The quiz, through the engine's BKT.
        let mut changes = Vec::with_capacity(skills.len());
        for &s in skills {
            let id = &world.skill_ids[s];
            let mut belief = mastery.belief(id, &engine);
            let before = belief.p_known();
            let mut correct = 0;
            for _ in 0..options.quiz_items {
                let a = answer(learner, known[s], &mut rng);
                correct += u32::from(a.correct);
                belief = engine.update(belief, a);
            }
            if let Some(t) = trace.as_deref_mut() {
                t.push(
                    s,
                    Step {
                        module: Some(m as u32),
                        correct,
                        items: options.quiz_items,
                    },
                );
            }
            let p = mastery.set(id, belief);
            changes.push(SkillChange {
                skill_id: id.clone(),
                before,
                after: p,
            });
        }
        history.push(ModuleOutcome {
            module_id: module.id.clone(),
            changes,
        });
        if history.len() > 4 * HISTORY_WINDOW {
            history.drain(..history.len() - HISTORY_WINDOW);
        }
    }
}
