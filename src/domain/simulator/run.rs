//! The simulated LMS loop for one learner under one policy.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;

use super::SimOptions;
use super::policies::{Action, LmsView, Policy, PolicyKind, View};
use super::population::{Answer, Fitted, Trace};
use super::world::{LEARNER_STREAM, MASTERY_THETA, SimLearner, World, rng};
use crate::domain::bkt::{Belief, BktParams, Observation};
use crate::domain::learner::Micros;
use crate::domain::remediation::effects::{EVIDENCE_ANSWERS, EffectEvidence, Effects};
use crate::domain::remediation::{
    AnswerSeen, EVIDENCE_DEPTH, HISTORY_DEPTH, ModuleOutcome, SkillChange, SkillEvidence,
    draw_seed, fill_after, latest_module_on,
};

/// Ability below which a certified skill counts as falsely certified (the
/// issue's "truly far below mastery"); half an ability unit.
pub const FAR_BELOW: f64 = MASTERY_THETA - 0.5;

/// Learner minute 0 of every learner on the engine's clock
/// (2025-01-06T00:00:00Z): events are timed as `spoc simulate-grpc` sends
/// them to the service, so that the policy's view (and the seed of its
/// draws) is the same both ways.
pub const START: Micros = 1_736_121_600_000_000;

/// The time on the engine's clock of the event numbered `sent` (events so
/// far in the learner's run) at learner minute `minutes`: the running count
/// added in microseconds keeps events in order within a minute.
pub fn event_time(minutes: u32, sent: u64) -> Micros {
    START + Micros::from(minutes) * 60_000_000 + sent as Micros
}

/// The id of the learner at `index` (as the service knows them).
pub fn learner_id(index: usize) -> String {
    format!("l{index:05}")
}

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

/// How a learner's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every program skill truly mastered, or the program certified while
    /// every skill was within [`FAR_BELOW`] of mastery (IRT world: a skill
    /// just below the line answers as one just above, no test tells them
    /// apart).
    Mastered,
    /// The program was certified (the policy was done and the LMS's final
    /// exam agreed) although a skill is truly far below mastery: a false
    /// certification, reported as such.
    Stopped,
    /// The time cap was reached, or the policy had nothing usable to offer.
    Capped,
}

/// The result of one learner under one policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnerOutcome {
    /// Learner minutes spent (placement, modules, quizzes, exams).
    pub minutes: u32,
    /// How the run ended.
    pub end: End,
    /// Modules recommended (and done).
    pub recommendations: u32,
    /// Of which targeted a skill not truly mastered whose prerequisites were
    /// truly mastered (work the learner could profit from).
    pub useful: u32,
    /// Of which were near-useless modules.
    pub useless: u32,
    /// Diagnostic items asked by the policy (not quizzes or exams).
    pub diagnostic_items: u32,
}

/// One learner's run: the hidden truth, the engine's beliefs and what the
/// LMS records.
struct Session<'a> {
    world: &'a World,
    learner: &'a SimLearner,
    options: &'a SimOptions,
    theta: Vec<f64>,
    /// Best ability reached per skill (forgetting loses at most
    /// [`MAX_FORGET`] below it).
    best: Vec<f64>,
    mastery: Tracked,
    /// Modules done, oldest first (`after` is filled when the policy
    /// reads them).
    history: Vec<ModuleOutcome>,
    placement_passed: Vec<bool>,
    last_passed: Vec<Option<bool>>,
    /// The latest answers per skill index (at most [`EVIDENCE_DEPTH`]):
    /// when, whether right, which item of the skill's bank.
    answers: Vec<Vec<(Micros, bool, usize)>>,
    minutes: u32,
    /// Events so far (answers and module completions), see [`event_time`].
    sent: u64,
    /// Whether each module was done (`tried_by` counts first goes).
    done: Vec<bool>,
    /// The engine's BKT parameters per skill id (fitted ones, if any;
    /// defaults otherwise).
    params: &'a BTreeMap<String, BktParams>,
}

impl<'a> Session<'a> {
    /// A learner at their starting abilities, unknown to the engine.
    fn new(
        world: &'a World,
        learner: &'a SimLearner,
        options: &'a SimOptions,
        params: &'a BTreeMap<String, BktParams>,
    ) -> Self {
        let n = world.skill_ids.len();
        Session {
            world,
            learner,
            options,
            theta: learner.theta.clone(),
            best: learner.theta.clone(),
            mastery: Tracked::default(),
            history: Vec::new(),
            placement_passed: vec![false; n],
            last_passed: vec![None; n],
            answers: vec![Vec::new(); n],
            minutes: 0,
            sent: 0,
            done: vec![false; world.modules.len()],
            params,
        }
    }

    /// The engine's BKT parameters of skill `s`.
    fn bkt(&self, s: usize) -> BktParams {
        self.params
            .get(&self.world.skill_ids[s])
            .copied()
            .unwrap_or_default()
    }

    /// The LMS's final exam on every program skill, the same for every
    /// policy: whether all were passed (a failed skill no longer counts as
    /// passed at placement).
    fn final_exam(
        &mut self,
        program: &[usize],
        rng: &mut ChaCha8Rng,
        trace: &mut Recorder<'_>,
    ) -> bool {
        let items = self.options.quiz_items;
        let mut all = true;
        for &s in program {
            let correct = self.quiz(s, items, rng, None, trace);
            let passed = self.passed(correct, items);
            self.last_passed[s] = Some(passed);
            if !passed {
                self.placement_passed[s] = false;
            }
            all &= passed;
        }
        all
    }

    /// Asks `count` distinct items of skill `s` (fewer if the bank is
    /// smaller), through the engine's BKT; returns the right answers.
    fn quiz(
        &mut self,
        s: usize,
        count: u32,
        rng: &mut ChaCha8Rng,
        module: Option<u32>,
        trace: &mut Recorder<'_>,
    ) -> u32 {
        let picked: Vec<(usize, usize)> = self
            .world
            .quiz_items(s, count, rng)
            .into_iter()
            .map(|k| (s, k))
            .collect();
        self.ask(&picked, rng, module, trace)
    }

    /// Asks the given items, updating beliefs and evidence; counts their
    /// minutes; records the answers into `trace`, crediting `module` (just
    /// done) with the first answer on each skill; returns the right answers.
    fn ask(
        &mut self,
        items: &[(usize, usize)],
        rng: &mut ChaCha8Rng,
        module: Option<u32>,
        trace: &mut Recorder<'_>,
    ) -> u32 {
        let mut correct = 0;
        for (i, &(s, k)) in items.iter().enumerate() {
            let id = &self.world.skill_ids[s];
            let right = self.world.answer(self.learner, s, k, self.theta[s], rng);
            correct += u32::from(right);
            if let Some(t) = trace.as_deref_mut() {
                let first = items[..i].iter().all(|&(other, _)| other != s);
                t.answers.push(Answer {
                    skill: s as u32,
                    correct: right,
                    module: module.filter(|_| first),
                });
            }
            let params = self.bkt(s);
            let belief = params.update(
                self.mastery.belief(id, &params),
                Observation {
                    correct: right,
                    score: None,
                },
            );
            self.mastery.set(id, belief);
            self.minutes += self.options.minutes_per_item;
            let at = self.event();
            let answers = &mut self.answers[s];
            answers.push((at, right, k));
            if answers.len() > EVIDENCE_DEPTH {
                answers.remove(0);
            }
        }
        correct
    }

    /// The time of an event of the current minute, on the engine's clock.
    fn event(&mut self) -> Micros {
        let at = event_time(self.minutes, self.sent);
        self.sent += 1;
        at
    }

    /// What the engine reads of the learner: its latest modules (with what
    /// they left) and the answers per skill since them.
    fn view(&self) -> (Vec<ModuleOutcome>, BTreeMap<String, SkillEvidence>) {
        let start = self.history.len().saturating_sub(HISTORY_DEPTH);
        let mut history = self.history[start..].to_vec();
        fill_after(&mut history, |id| {
            self.mastery
                .p
                .get(id)
                .copied()
                .unwrap_or_else(|| self.bkt(self.world.skill_index[id]).prior)
        });
        let mut evidence = BTreeMap::new();
        for (s, answers) in self.answers.iter().enumerate() {
            if answers.is_empty() {
                continue;
            }
            let bank = &self.world.bank[s];
            let seen: Vec<AnswerSeen<'_>> = answers
                .iter()
                .map(|&(at, right, k)| (at, right, bank[k].id.as_str()))
                .collect();
            let id = &self.world.skill_ids[s];
            let latest = latest_module_on(&history, id);
            evidence.insert(id.clone(), SkillEvidence::from_answers(&seen, latest));
        }
        (history, evidence)
    }

    /// Forgetting over the last `minutes` (see [`World::forget`]).
    fn forget(&mut self, minutes: u32, practised: &[usize]) {
        self.world.forget(
            self.learner,
            &mut self.theta,
            &mut self.best,
            minutes,
            practised,
        );
    }

    /// Plays module `m`: its minutes, what it teaches, the LMS's quiz on
    /// each of its skills and the engine's view of it (module outcome;
    /// with `effects`, the adaptive policy's, the population's credit).
    fn take_module(
        &mut self,
        m: usize,
        mut effects: Option<&mut Effects>,
        out: &mut LearnerOutcome,
        rng: &mut ChaCha8Rng,
        trace: &mut Recorder<'_>,
    ) {
        let (world, options) = (self.world, self.options);
        let module = &world.modules[m];
        let skills = &world.module_skills[m];
        out.recommendations += 1;
        if skills.iter().any(|&s| world.learnable(s, &self.theta)) {
            out.useful += 1;
        }
        out.useless += u32::from(world.useless[m]);
        self.minutes += module.duration_minutes;
        world.teach(self.learner, m, &mut self.theta, rng);
        let completed_at = self.event();
        let mut changes = Vec::with_capacity(skills.len());
        for &s in skills {
            let id = world.skill_ids[s].clone();
            // The learner's level: the latest answers before it.
            let level = self.level(s);
            let params = self.bkt(s);
            let before = self
                .mastery
                .p
                .get(&id)
                .copied()
                .unwrap_or_else(|| self.mastery.belief(&id, &params).p_known());
            let correct = self.quiz(s, options.quiz_items, rng, Some(m as u32), trace);
            self.last_passed[s] = Some(self.passed(correct, options.quiz_items));
            if let Some(effects) = effects.as_deref_mut() {
                // What the engine credits: the answers after the module.
                let asked = options.quiz_items.min(world.bank[s].len() as u32);
                effects.observe(
                    &module.id,
                    &id,
                    &EffectEvidence {
                        before,
                        right_before: level.0,
                        wrong_before: level.1,
                        right: correct,
                        wrong: asked - correct,
                        guess: params.guess,
                        slip: params.slip,
                        weight: 1.0,
                        first_go: !self.done[m],
                    },
                    options.threshold,
                );
            }
            changes.push(SkillChange {
                skill_id: id,
                before,
                after: before,
            });
        }
        self.done[m] = true;
        self.history.push(ModuleOutcome {
            module_id: module.id.clone(),
            completed_at,
            changes,
        });
        if self.history.len() > 4 * HISTORY_DEPTH {
            let drop = self.history.len() - HISTORY_DEPTH;
            self.history.drain(..drop);
        }
    }

    /// (right, wrong) among the latest [`EVIDENCE_ANSWERS`] answers on
    /// skill `s`.
    fn level(&self, s: usize) -> (u32, u32) {
        let answers = &self.answers[s];
        let latest = &answers[answers.len().saturating_sub(EVIDENCE_ANSWERS as usize)..];
        let right = latest.iter().filter(|(_, r, _)| *r).count() as u32;
        (right, latest.len() as u32 - right)
    }

    fn passed(&self, correct: u32, items: u32) -> bool {
        quiz_passed(correct, items)
    }
}

/// The LMS's pass mark of a quiz or exam on one skill: two thirds right.
pub fn quiz_passed(correct: u32, items: u32) -> bool {
    3 * correct >= 2 * items
}

/// What the population has taught the engine so far: the last fit (its
/// per-module rates and per-skill parameters) and the module effects, which
/// the run of an adaptive learner updates as the engine does (each module
/// credited with the quiz after it).
pub struct Population<'a> {
    /// The last fit (empty before the first).
    pub fitted: &'a Fitted,
    /// Module effects, updated live.
    pub effects: &'a mut Effects,
}

/// Plays the LMS loop (see the module doc of `simulator`) for `learner`
/// under policy `kind`, with what the population taught so far (used by
/// the adaptive policy only, and updated by it), recording what the LMS
/// sees into `trace` when given. Draws come from the learner's own stream,
/// the same for every policy.
pub fn run_learner(
    world: &World,
    learner: &SimLearner,
    kind: PolicyKind,
    options: &SimOptions,
    index: usize,
    population: Population<'_>,
    mut trace: Recorder<'_>,
) -> LearnerOutcome {
    let Population { fitted, effects } = population;
    // Another stream than the learner's generation, shared by all policies.
    let mut rng = rng(
        options.seed ^ 0x5eed_5eed_5eed_5eed,
        LEARNER_STREAM + index as u64,
    );
    let mut session = Session::new(world, learner, options, &fitted.params);
    let mut policy = Policy::new(kind);
    let mut out = LearnerOutcome {
        minutes: 0,
        end: End::Capped,
        recommendations: 0,
        useful: 0,
        useless: 0,
        diagnostic_items: 0,
    };
    let program: Vec<usize> = world.program.iter().map(|s| world.skill_index[s]).collect();
    // The placement quiz, the same for every policy.
    for &s in &program {
        let correct = session.quiz(s, options.placement_items, &mut rng, None, &mut trace);
        session.placement_passed[s] = correct == options.placement_items;
    }
    let mut exam_passed = false;
    loop {
        if program.iter().all(|&s| session.theta[s] >= MASTERY_THETA) {
            out.end = End::Mastered;
            break;
        }
        if session.minutes >= options.max_minutes {
            out.end = End::Capped;
            break;
        }
        let (history, evidence) = session.view();
        let view = View {
            world,
            language: &learner.language,
            mastery: &session.mastery.p,
            history: &history,
            options,
            fitted,
            effects,
            seed: draw_seed(&learner_id(index), &history, &evidence),
            lms: LmsView {
                placement_passed: &session.placement_passed,
                last_passed: &session.last_passed,
                evidence: &evidence,
            },
        };
        let action = policy.next(&view, &mut rng);
        let before = session.minutes;
        match action {
            Action::Stuck => {
                out.end = End::Capped;
                break;
            }
            Action::Done if exam_passed => {
                // The policy is done and the LMS's exam agreed: certified
                // although some skill is not truly mastered; within the
                // tolerance of any test (IRT world) it counts as mastered.
                let far = program.iter().any(|&s| session.theta[s] < FAR_BELOW);
                out.end = if far { End::Stopped } else { End::Mastered };
                break;
            }
            Action::Done => {
                exam_passed = session.final_exam(&program, &mut rng, &mut trace);
                let spent = session.minutes - before;
                session.forget(spent, &program);
            }
            Action::Items(items) => {
                exam_passed = false;
                out.diagnostic_items += items.len() as u32;
                session.ask(&items, &mut rng, None, &mut trace);
                let spent = session.minutes - before;
                let practised: Vec<usize> = items.iter().map(|(s, _)| *s).collect();
                session.forget(spent, &practised);
            }
            Action::Module(m) => {
                exam_passed = false;
                let adaptive = (kind == PolicyKind::Adaptive).then_some(&mut *effects);
                session.take_module(m, adaptive, &mut out, &mut rng, &mut trace);
                let spent = session.minutes - before;
                session.forget(spent, &world.module_skills[m]);
            }
        }
    }
    out.minutes = session.minutes;
    out
}
