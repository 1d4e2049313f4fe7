//! Remediation: which module should this learner do next, and why.
//!
//! The LMS asks this question many times a second, so [`recommend`] is a pure
//! function of plain inputs (no store, no clock, no randomness) that runs in
//! microseconds on a 30-skill / 120-module catalog. The same inputs always
//! give the same ranked list, which makes answers reproducible for a trainer
//! who asks "why did the learner get this?".
//!
//! The policy, in the order it is applied:
//!
//! 1. **Target the gap that blocks the learner now.** A skill is *mastered*
//!    when P(mastered) ≥ the threshold (and the prerequisite graph does not
//!    contradict it, see 4). The candidate skills are the program's
//!    unmastered skills whose prerequisites are all mastered: the outer fringe
//!    of the learner's knowledge state (knowledge space theory). Work beyond
//!    the fringe is work the learner cannot yet profit from. When a program
//!    skill is blocked by an unmastered prerequisite, the graph is followed
//!    down (also outside the program's skill list) to the *deepest* unmastered
//!    prerequisites, those whose own prerequisites are mastered; they are
//!    ranked after the program's own ready skills.
//! 2. **Rank by expected mastery gain per minute.** Under BKT the expected
//!    P(mastered) after one learning opportunity is `p + (1 − p) · learn`
//!    (the posterior is a martingale, the transition adds the rest), so the
//!    expected gain of a module on a skill is `(1 − p) · learn`. `learn` is
//!    the fitted per-module rate when the model has one (fitted on the
//!    attempts of the whole population: this is how module quality, and the
//!    real worth of a long module, enter the policy), the skill's default
//!    otherwise. A module that teaches several candidate skills sums its
//!    gains; skills it teaches that are not candidates count for nothing.
//! 3. **Use the learner's own failures as evidence, not as vetoes.** A
//!    module that did not move a skill is evidence that it teaches this
//!    learner less well than the population rate says; so is, more weakly,
//!    a failure of another module of the same format on that skill. The
//!    rate is shrunk like the posterior mean of a Beta prior after `n`
//!    failures, by `κ / (κ + n)` (see [`PolicyConfig`]): harmonically, not
//!    geometrically, and never to zero. A module that just failed is thus
//!    usually replaced by another one of similar cost, but it is not banned:
//!    a 10-minute video that teaches with probability 0.3 and failed twice
//!    is still a far better bet than a four-hour workshop, and the policy
//!    says so in the reason when it repeats it.
//! 4. **Doubt what the prerequisite graph rules out.** Knowledge states are
//!    closed under prerequisites and mastery is not lost between modules, so
//!    when a prerequisite had to be (re)learnt *after* the latest module on
//!    a skill, all the evidence on that skill was gathered while the
//!    prerequisite was unknown: the skill's P(mastered) came from lucky
//!    answers. Such a skill counts as unmastered, is ranked as if unobserved
//!    (its prior) and re-checked once its prerequisites are mastered.
//! 5. **Suspect the prerequisites of a skill that keeps resisting.** After
//!    [`PolicyConfig::review_after_failures`] consecutive failures on a skill,
//!    its weakest prerequisite is re-checked first: a prerequisite that looks
//!    mastered but is not (three lucky guesses) blocks learning for good, and
//!    only a quiz on it can reveal that.
//! 6. **Certify the program jointly.** "The program is mastered" claims that
//!    *every* skill is; with independent beliefs its probability is the
//!    product of the P(mastered), which for 30 skills at 0.97 is 0.4. When
//!    every program skill is at or above the threshold but that product is
//!    below it, the status is [`Status::AllMastered`] and the items are
//!    re-checks of the least certain skills (largest `(1 − p) · learn` per
//!    minute first), until the joint confidence reaches the threshold. A
//!    skill mastered on three lucky guesses (probability guess³, 1–3 % per
//!    skill, so likely somewhere in a 30-skill program) is caught here
//!    instead of being certified silently. An LMS that prefers a final exam
//!    can ignore these items: the exam's answers raise the same beliefs.
//! 7. **Respect the learner's language** (primary subtag match: `fr` matches
//!    `fr-CA`). By default a skill without content in the learner's language
//!    is reported, not silently served in another one; with
//!    [`RecommendInput::allow_language_fallback`] such a skill is served in
//!    another language, and the reason says so.
//!
//! Ties are broken by module id, and every float is computed in a fixed order,
//! so the output is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::bkt::BktParams;
use super::catalog::{Format, Module, Skill};
use super::catalog_index::{CatalogIndex, primary_subtag};
use crate::error::{Error, Result};

/// The mastery threshold the product promises when none is configured.
pub const DEFAULT_THRESHOLD: f64 = 0.95;

/// Tuning constants of the policy, kept in one place so that the simulator
/// and the tests exercise exactly what production runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// A module "failed" on a skill when P(mastered) rose by less than this
    /// (and stayed below the threshold): the quiz after it did not show
    /// learning.
    pub min_progress: f64,
    /// Gain multiplier after one earlier failure of the module's format on
    /// the skill: formats that did not work for this learner sink. It sets
    /// the strength κ = x / (1 − x) of a Beta prior, so that after `n`
    /// failures the multiplier is κ / (κ + n) (the posterior mean of the
    /// success rate relative to the prior mean).
    pub format_failure_penalty: f64,
    /// Extra multiplier after one earlier failure of the very same module on
    /// the skill (the same content is even less likely to work the next
    /// time); `n` failures give κ / (κ + n) likewise.
    pub module_failure_penalty: f64,
    /// Consecutive failures on a skill after which its weakest prerequisite
    /// is re-checked first; `0` disables prerequisite reviews.
    pub review_after_failures: u32,
}

impl Default for PolicyConfig {
    /// Mild penalties (a single failure is weak evidence when modules teach
    /// with probability 0.3–0.6: one failure is worth about 2.3 pseudo-
    /// attempts of prior for the module, 5.7 for its format), stronger for
    /// the very module than for its format, and a prerequisite review after
    /// three failures in a row. Checked on the simulator (see `simulator`).
    fn default() -> Self {
        Self {
            min_progress: 0.05,
            format_failure_penalty: 0.85,
            module_failure_penalty: 0.7,
            review_after_failures: 3,
        }
    }
}

/// How one skill moved during one module the learner did: the evidence the
/// policy uses to tell that a module "failed".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillChange {
    /// The skill.
    pub skill_id: String,
    /// P(mastered) just before the module.
    pub before: f64,
    /// P(mastered) after the module and its quiz.
    pub after: f64,
}

/// One module the learner did recently, with what it did to mastery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleOutcome {
    /// The module done.
    pub module_id: String,
    /// The skills it targeted, with P(mastered) before and after.
    pub changes: Vec<SkillChange>,
}

/// Everything [`recommend`] looks at; borrowed so that the caller does not
/// clone its catalog on every request.
#[derive(Debug, Clone, Copy)]
pub struct RecommendInput<'a> {
    /// The whole catalog's skills (prerequisites may lie outside the program).
    pub skills: &'a BTreeMap<String, Skill>,
    /// The modules that may be recommended, in any order (the index below
    /// must have been built from this very slice).
    pub modules: &'a [Module],
    /// Lookup tables built from exactly `skills` and `modules`, in this
    /// order: its module numbers are positions in `modules`.
    pub index: &'a CatalogIndex,
    /// The skills the program teaches.
    pub program_skill_ids: &'a [String],
    /// The learner's P(mastered) per skill; a missing skill is at its prior.
    pub mastery: &'a BTreeMap<String, f64>,
    /// P(mastered) at or above which a skill counts as mastered, in (0, 1].
    pub threshold: f64,
    /// BKT parameters of any skill missing from `skill_params`.
    pub default_params: BktParams,
    /// Per-skill BKT parameters (fitted or configured).
    pub skill_params: &'a BTreeMap<String, BktParams>,
    /// Fitted learn rate per module id, used instead of the skill's `learn`.
    pub module_learn_rates: &'a BTreeMap<String, f64>,
    /// The learner's BCP 47 language tag; empty means "any language".
    pub language: &'a str,
    /// Modules the learner did recently, oldest first.
    pub history: &'a [ModuleOutcome],
    /// How many modules to return at most.
    pub count: usize,
    /// Module ids the caller does not want (already assigned, hidden...).
    pub exclude: &'a BTreeSet<String>,
    /// Whether a skill with no module in the learner's language may be
    /// served in another language (the reason then says so).
    pub allow_language_fallback: bool,
    /// Tuning constants.
    pub config: PolicyConfig,
}

/// Why a module is in the list: decides its rank band before gain per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// Re-checks a mastered prerequisite of a skill that keeps resisting.
    PrerequisiteReview,
    /// Teaches a ready (fringe) skill of the program, or re-checks one whose
    /// mastery is in doubt or not yet jointly certain.
    ProgramSkill,
    /// Teaches the deepest unmastered prerequisite of a blocked program skill.
    DeepPrerequisite,
}

/// One recommended module, with what a trainer needs to understand it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The module.
    pub module_id: String,
    /// The skill it mainly targets (the largest expected gain).
    pub skill_id: String,
    /// The learner's current P(mastered) of that skill.
    pub p_mastered: f64,
    /// Expected P(mastered) gain summed over the candidate skills it
    /// teaches, as the model sees it (before format penalties).
    pub expected_gain: f64,
    /// The module's duration, in minutes.
    pub duration_minutes: u32,
    /// The module's format.
    pub format: Format,
    /// The module's language tag.
    pub language: String,
    /// Why it is there; decides its rank band.
    pub target: Target,
    /// Ranking score: penalised gain per minute.
    pub score: f64,
    /// Whether the module is not in the learner's language (fallback).
    pub language_fallback: bool,
    /// Human-readable explanation for the trainer.
    pub reason: String,
}

/// The overall situation of the learner in the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Modules were found for what the learner can learn now.
    Recommending,
    /// Every program skill is mastered. The items, if any, are re-checks of
    /// the least certain skills while the joint confidence (the product of
    /// the P(mastered)) is below the threshold; empty once it is not.
    AllMastered,
    /// Some skill needs work but no usable module teaches it.
    NoContent,
}

/// The answer of [`recommend`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// Best first, at most `count`.
    pub items: Vec<Recommendation>,
    /// The overall situation.
    pub status: Status,
    /// Why the list is empty or shorter than asked; `None` when it is full.
    pub shortfall: Option<String>,
}

/// True when the module's BCP 47 tag has the learner's primary subtag
/// (`fr` matches `fr-CA`, case-insensitively); an empty learner language or
/// an empty module language (language-neutral content) matches everything.
pub fn language_matches(learner: &str, module: &str) -> bool {
    let (l, m) = (primary_subtag(learner), primary_subtag(module));
    l.is_empty() || m.is_empty() || l.eq_ignore_ascii_case(m)
}

/// The candidate skills of a learner: what [`recommend`] teaches next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fringe {
    /// Unmastered program skills whose prerequisites are all mastered.
    pub ready: BTreeSet<String>,
    /// Unmastered skills outside the program, all prerequisites mastered, on
    /// which some unmastered program skill depends; each with the program
    /// skills that need it.
    pub deep: BTreeMap<String, BTreeSet<String>>,
    /// Unmastered program skills (ready or not).
    pub unmastered_program: BTreeSet<String>,
}

impl Fringe {
    /// Whether `skill` can be learnt now (ready or deep).
    pub fn contains(&self, skill: &str) -> bool {
        self.ready.contains(skill) || self.deep.contains_key(skill)
    }
}

/// P(mastered) of every skill as the policy sees it, computed once per call
/// for every skill number of the catalog index.
struct Beliefs<'a> {
    input: &'a RecommendInput<'a>,
    /// P(mastered) per skill number, clamped to [0, 1].
    p: Vec<f64>,
    /// Whether each skill number counts as mastered.
    mastered: Vec<bool>,
    /// Skills at or above the threshold whose evidence the prerequisite
    /// graph rules out, each with the prerequisite that was found unmastered
    /// after the skill's latest module (see [`doubtful`]).
    doubtful: BTreeMap<&'a str, &'a str>,
}

impl<'a> Beliefs<'a> {
    fn new(input: &'a RecommendInput<'a>) -> Self {
        let index = input.index;
        let doubtful = doubtful(input);
        let mut p = vec![f64::NAN; index.skill_count()];
        for (skill, value) in input.mastery {
            if let Some(at) = index.skill(skill) {
                p[at] = clamp_p(*value);
            }
        }
        for (at, value) in p.iter_mut().enumerate() {
            if value.is_nan() {
                *value = clamp_p(params_of(input, index.skill_id(at)).prior);
            }
        }
        let mut mastered: Vec<bool> = p.iter().map(|p| *p >= input.threshold).collect();
        for s in doubtful.keys() {
            if let Some(at) = index.skill(s) {
                mastered[at] = false;
            }
        }
        Beliefs {
            input,
            p,
            mastered,
            doubtful,
        }
    }

    fn params(&self, skill: &str) -> &BktParams {
        params_of(self.input, skill)
    }

    fn p(&self, skill: &str) -> f64 {
        match self.input.index.skill(skill) {
            Some(at) => self.p[at],
            None => clamp_p(match self.input.mastery.get(skill) {
                Some(p) => *p,
                None => self.params(skill).prior,
            }),
        }
    }

    fn mastered_at(&self, at: usize) -> bool {
        self.mastered[at]
    }

    fn mastered(&self, skill: &str) -> bool {
        match self.input.index.skill(skill) {
            Some(at) => self.mastered[at],
            None => self.p(skill) >= self.input.threshold && !self.doubtful.contains_key(skill),
        }
    }

    /// Whether every prerequisite of skill number `at` is mastered (true for
    /// a skill unknown to the catalog: it has none).
    fn prereqs_mastered_at(&self, at: usize) -> bool {
        let index = self.input.index;
        !index.is_known(at) || index.prerequisites(at).iter().all(|&q| self.mastered[q])
    }

    /// P(mastered) used for the expected gain: a doubtful skill's evidence
    /// is void, so it counts as unobserved (its prior).
    fn p_for_gain(&self, skill: &str) -> f64 {
        if self.doubtful.contains_key(skill) {
            self.params(skill).prior.clamp(0.0, 1.0)
        } else {
            self.p(skill)
        }
    }
}

/// A P(mastered) as the policy reads it: clamped, and 0 when not finite.
fn clamp_p(p: f64) -> f64 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The BKT parameters of a skill: its own, or the defaults.
fn params_of<'a>(input: &'a RecommendInput<'_>, skill: &str) -> &'a BktParams {
    input
        .skill_params
        .get(skill)
        .unwrap_or(&input.default_params)
}

/// Skills whose mastery the prerequisite graph contradicts.
///
/// Knowledge states are closed under prerequisites (a skill cannot be known
/// while one of its prerequisites is not) and mastery is not lost between
/// modules. So when a prerequisite `q` of a skill `s` had to be (re)learnt
/// (a module was done on `q` while it was below the threshold) *after* the
/// latest module on `s`, every piece of evidence on `s` was gathered while
/// `q` was unknown: `s` was "mastered" by lucky answers (or while the learn
/// transitions of the quizzes inflated it) and must be re-checked. Only
/// skills at or above the threshold with a module in the history are
/// concerned; a re-check (a newer module on `s`) clears the doubt.
fn doubtful<'a>(input: &RecommendInput<'a>) -> BTreeMap<&'a str, &'a str> {
    let mut out: BTreeMap<&'a str, &'a str> = BTreeMap::new();
    if input.history.is_empty() {
        return out;
    }
    // Index of the latest module on each skill, and of the latest module
    // on it done while it was below the threshold.
    let mut last_seen: BTreeMap<&'a str, usize> = BTreeMap::new();
    let mut last_unmastered: BTreeMap<&'a str, usize> = BTreeMap::new();
    for (i, entry) in input.history.iter().enumerate() {
        for c in &entry.changes {
            last_seen.insert(c.skill_id.as_str(), i);
            if c.before < input.threshold {
                last_unmastered.insert(c.skill_id.as_str(), i);
            }
        }
    }
    for (&s, &seen) in &last_seen {
        let Some(skill) = input.skills.get(s) else {
            continue;
        };
        let p = match input.mastery.get(s) {
            Some(p) => *p,
            None => {
                input
                    .skill_params
                    .get(s)
                    .unwrap_or(&input.default_params)
                    .prior
            }
        };
        if p.is_nan() || p < input.threshold {
            continue;
        }
        let late = skill
            .prerequisite_ids
            .iter()
            .filter_map(|q| last_unmastered.get_key_value(q.as_str()))
            .filter(|(_, i)| **i > seen)
            .map(|(q, _)| *q)
            .min();
        if let Some(q) = late {
            out.insert(s, q);
        }
    }
    out
}

/// Computes the fringe: the ready program skills and, for blocked program
/// skills, the deepest unmastered prerequisites (following the graph outside
/// the program). Terminates on any graph, cyclic or not, thanks to a visited
/// set.
pub fn fringe(input: &RecommendInput<'_>) -> Fringe {
    fringe_of(&Beliefs::new(input))
}

fn fringe_of(beliefs: &Beliefs<'_>) -> Fringe {
    let input = beliefs.input;
    let index = input.index;
    let program: BTreeSet<&str> = input.program_skill_ids.iter().map(String::as_str).collect();
    let mut in_program = vec![false; index.skill_count()];
    for s in &program {
        if let Some(at) = index.skill(s) {
            in_program[at] = true;
        }
    }
    let mut out = Fringe::default();
    // `seen[q] == mark` when q was reached from the current program skill.
    let mut seen = vec![usize::MAX; index.skill_count()];
    let mut todo: Vec<usize> = Vec::new();
    for (mark, &skill) in program.iter().enumerate() {
        let Some(at) = index.skill(skill) else {
            // Unknown to the catalog: no prerequisites, so ready unless mastered.
            if !beliefs.mastered(skill) {
                out.unmastered_program.insert(skill.to_string());
                out.ready.insert(skill.to_string());
            }
            continue;
        };
        if beliefs.mastered_at(at) {
            continue;
        }
        out.unmastered_program.insert(skill.to_string());
        if beliefs.prereqs_mastered_at(at) {
            out.ready.insert(skill.to_string());
            continue;
        }
        // Walk down through unmastered prerequisites.
        seen[at] = mark;
        todo.clear();
        todo.push(at);
        while let Some(id) = todo.pop() {
            for &q in index.prerequisites(id) {
                if beliefs.mastered_at(q) || seen[q] == mark {
                    continue;
                }
                seen[q] = mark;
                if in_program[q] {
                    // Reached on its own account (ready or walked from).
                    continue;
                }
                if beliefs.prereqs_mastered_at(q) {
                    out.deep
                        .entry(index.skill_id(q).to_string())
                        .or_default()
                        .insert(skill.to_string());
                } else {
                    todo.push(q);
                }
            }
        }
    }
    out
}

/// What the history says about one skill.
#[derive(Default)]
struct SkillRecord<'h> {
    /// Failures per format, over the whole history given.
    format_failures: BTreeMap<Format, u32>,
    /// Failures per module id.
    module_failures: BTreeMap<&'h str, u32>,
    /// The module of the latest entry on this skill, when it failed.
    just_failed: Option<&'h str>,
    /// Failures since the last success or review of a prerequisite.
    streak: u32,
}

/// The posterior multiplier of a success rate after `failures` failures and
/// no success, under a Beta prior whose strength makes one failure multiply
/// the rate by `after_one`: with strength κ = after_one / (1 − after_one)
/// pseudo-attempts, the posterior mean is the prior mean times κ / (κ + n).
/// It falls harmonically, not geometrically: a handful of failures of a
/// module that teaches with probability 0.3 is not unusual, and should not
/// send the learner to a module ten times longer.
fn shrink(after_one: f64, failures: u32) -> f64 {
    if failures == 0 {
        return 1.0;
    }
    let a = if after_one.is_finite() {
        after_one.clamp(0.0, 0.999)
    } else {
        1.0
    };
    if a >= 0.999 {
        return 1.0;
    }
    let kappa = a / (1.0 - a);
    kappa / (kappa + f64::from(failures))
}

fn failed(change: &SkillChange, config: &PolicyConfig, threshold: f64) -> bool {
    change.after - change.before < config.min_progress && change.after < threshold
}

/// Reads the history for one skill, newest entries deciding the streak.
fn record<'h>(input: &RecommendInput<'h>, skill: &str) -> SkillRecord<'h> {
    let mut rec = SkillRecord::default();
    let prereqs: &[String] = input
        .skills
        .get(skill)
        .map_or(&[], |s| s.prerequisite_ids.as_slice());
    let mut streak_open = true;
    let mut latest_seen = false;
    for entry in input.history.iter().rev() {
        let change = entry.changes.iter().find(|c| c.skill_id == skill);
        let Some(change) = change else {
            if entry
                .changes
                .iter()
                .any(|c| prereqs.iter().any(|q| q == &c.skill_id))
            {
                streak_open = false;
            }
            continue;
        };
        let fail = failed(change, &input.config, input.threshold);
        if !latest_seen {
            latest_seen = true;
            if fail {
                rec.just_failed = Some(entry.module_id.as_str());
            }
        }
        if fail {
            if streak_open {
                rec.streak += 1;
            }
            *rec.module_failures
                .entry(entry.module_id.as_str())
                .or_default() += 1;
            if let Some(at) = input.index.module(&entry.module_id) {
                *rec.format_failures
                    .entry(input.modules[at].format)
                    .or_default() += 1;
            }
        } else {
            streak_open = false;
        }
    }
    rec
}

/// One skill the policy wants to teach now, with why.
struct Candidate<'a> {
    target: Target,
    /// For deep prerequisites: the program skills that need it; for reviews:
    /// the resisting skill.
    for_skills: Vec<&'a str>,
    /// For a certification re-check (every program skill is mastered, not
    /// jointly): the joint confidence.
    recheck: Option<f64>,
}

/// Names a skill for a trainer: its name, or its id when unknown.
fn name<'a>(skills: &'a BTreeMap<String, Skill>, id: &'a str) -> &'a str {
    skills.get(id).map_or(id, |s| s.name.as_str())
}

/// "a video", "an exercise": the format names all start as they sound.
fn with_article(noun: &str) -> String {
    let vowel = noun.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

/// Joins names as "A", "A and B", "A, B and C".
fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Ranks the modules for the learner described by `input`.
///
/// Fails only on inputs that are wrong whatever the learner's state: a
/// threshold outside (0, 1] or a program skill unknown to the catalog.
pub fn recommend(input: &RecommendInput<'_>) -> Result<Recommendations> {
    if !(input.threshold > 0.0 && input.threshold <= 1.0) {
        return Err(Error::invalid(
            "threshold",
            format!("must be in (0, 1], got {}", input.threshold),
        ));
    }
    for (i, id) in input.program_skill_ids.iter().enumerate() {
        if !input.skills.contains_key(id) {
            return Err(Error::invalid(
                format!("program_skill_ids[{i}]"),
                format!("unknown skill id '{id}'"),
            ));
        }
    }
    debug_assert_eq!(
        input.index.module_count(),
        input.modules.len(),
        "the catalog index must be built from the modules given"
    );
    let beliefs = Beliefs::new(input);
    let fr = fringe_of(&beliefs);
    // Joint confidence that every program skill is mastered (independent
    // BKT beliefs): what "the program is mastered" really claims.
    let program: BTreeSet<&str> = input.program_skill_ids.iter().map(String::as_str).collect();
    let joint: f64 = program.iter().map(|s| beliefs.p(s)).product();
    let certifying = fr.unmastered_program.is_empty();
    if certifying && (joint >= input.threshold || input.count == 0) {
        return Ok(Recommendations {
            items: Vec::new(),
            status: Status::AllMastered,
            shortfall: (input.count > 0).then(|| {
                format!(
                    "every program skill is mastered (P(mastered) ≥ {})",
                    input.threshold
                )
            }),
        });
    }

    // The candidate skills, with their band.
    let mut candidates: BTreeMap<&str, Candidate<'_>> = BTreeMap::new();
    if certifying {
        // Every skill is above the threshold but the joint confidence is
        // not: re-check the least certain skills (the gain (1 − p) · learn
        // ranks them, cheapest first).
        for &s in &program {
            candidates.insert(
                s,
                Candidate {
                    target: Target::ProgramSkill,
                    for_skills: Vec::new(),
                    recheck: Some(joint),
                },
            );
        }
    }
    for s in &fr.ready {
        candidates.insert(
            s.as_str(),
            Candidate {
                target: Target::ProgramSkill,
                for_skills: Vec::new(),
                recheck: None,
            },
        );
    }
    for (s, needed_by) in &fr.deep {
        candidates.insert(
            s.as_str(),
            Candidate {
                target: Target::DeepPrerequisite,
                for_skills: needed_by.iter().map(String::as_str).collect(),
                recheck: None,
            },
        );
    }
    let mut records: BTreeMap<&str, SkillRecord<'_>> =
        candidates.keys().map(|&s| (s, record(input, s))).collect();

    // Prerequisite reviews for skills that keep resisting.
    if input.config.review_after_failures > 0 && !certifying {
        let resisting: Vec<(&str, u32)> = records
            .iter()
            .filter(|(_, r)| r.streak >= input.config.review_after_failures)
            .map(|(s, r)| (*s, r.streak))
            .collect();
        for (skill, _) in resisting {
            let prereqs = input
                .skills
                .get(skill)
                .map_or(&[][..], |s| s.prerequisite_ids.as_slice());
            let weakest = prereqs
                .iter()
                .map(|q| (beliefs.p(q), q.as_str()))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
            if let Some((_, q)) = weakest {
                let entry = candidates.entry(q).or_insert(Candidate {
                    target: Target::PrerequisiteReview,
                    for_skills: Vec::new(),
                    recheck: None,
                });
                entry.for_skills.push(skill);
                records.entry(q).or_insert_with(|| record(input, q));
            }
        }
    }

    // The modules teaching some candidate skill, in slice order: the only
    // ones that can score.
    let index = input.index;
    let learner_language = primary_subtag(input.language).to_ascii_lowercase();
    let matches = |m: usize| {
        let language = index.module_language(m);
        learner_language.is_empty() || language.is_empty() || language == learner_language
    };
    let mut reachable: Vec<usize> = Vec::new();
    // Which candidate skills have content in the learner's language.
    let mut in_language: BTreeSet<&str> = BTreeSet::new();
    let mut any_language: BTreeSet<&str> = BTreeSet::new();
    for &s in candidates.keys() {
        let Some(at) = index.skill(s) else {
            continue;
        };
        for &m in index.modules_of(at) {
            reachable.push(m);
            any_language.insert(s);
            if matches(m) {
                in_language.insert(s);
            }
        }
    }
    reachable.sort_unstable();
    reachable.dedup();
    // Score every module.
    struct Scored<'m> {
        module: &'m Module,
        target: Target,
        score: f64,
        gain: f64,
        primary: &'m str,
        fallback: bool,
        repeated: bool,
        others: Vec<&'m str>,
    }
    let mut scored: Vec<Scored<'_>> = Vec::new();
    let mut excluded_hits = 0usize;
    for at in reachable {
        let m = &input.modules[at];
        let matches = matches(at);
        let mut target = Target::DeepPrerequisite;
        let mut score_gain = 0.0;
        let mut gain = 0.0;
        let mut primary: Option<(&str, f64)> = None;
        let mut fallback = false;
        let mut repeated = false;
        let mut taught: Vec<&str> = Vec::new();
        for &s in index.module_skills(at) {
            let s = index.skill_id(s);
            let Some(cand) = candidates.get(s) else {
                continue;
            };
            let lang_ok = matches || (input.allow_language_fallback && !in_language.contains(s));
            if !lang_ok {
                continue;
            }
            let rec = &records[s];
            let just_failed = rec.just_failed == Some(m.id.as_str());
            let rate = input
                .module_learn_rates
                .get(&m.id)
                .copied()
                .unwrap_or(beliefs.params(s).learn);
            let rate = if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let p = beliefs.p_for_gain(s);
            let g = if cand.target == Target::PrerequisiteReview {
                // A review's worth is the diagnosis, not the tiny gain of a
                // mastered skill: give it a floor so that it ranks by speed.
                ((1.0 - p) * rate).max(0.01)
            } else {
                (1.0 - p) * rate
            };
            let fmt_fails = rec.format_failures.get(&m.format).copied().unwrap_or(0);
            let mod_fails = rec.module_failures.get(m.id.as_str()).copied().unwrap_or(0);
            let penalty = shrink(input.config.format_failure_penalty, fmt_fails)
                * shrink(input.config.module_failure_penalty, mod_fails);
            gain += (1.0 - p) * rate;
            score_gain += g * penalty;
            target = target.min(cand.target);
            fallback |= !matches;
            repeated |= just_failed;
            let pg = g * penalty;
            let better = match primary {
                None => true,
                Some((ps, best)) => {
                    (cand.target, std::cmp::Reverse(OrdF64(pg)), s)
                        < (candidates[ps].target, std::cmp::Reverse(OrdF64(best)), ps)
                }
            };
            if better {
                primary = Some((s, pg));
            }
            taught.push(s);
        }
        let Some((primary, _)) = primary else {
            continue;
        };
        if input.exclude.contains(&m.id) {
            excluded_hits += 1;
            continue;
        }
        let minutes = f64::from(m.duration_minutes.max(1));
        scored.push(Scored {
            module: m,
            target,
            score: score_gain / minutes,
            gain,
            primary,
            fallback,
            repeated,
            others: taught.into_iter().filter(|s| *s != primary).collect(),
        });
    }
    scored.sort_by(|a, b| {
        a.target
            .cmp(&b.target)
            .then(b.score.total_cmp(&a.score))
            .then(a.module.id.cmp(&b.module.id))
    });
    scored.truncate(input.count);

    let items: Vec<Recommendation> = scored
        .iter()
        .map(|s| {
            let reason = explain(
                input,
                &beliefs,
                &candidates,
                &records,
                s.module,
                s.primary,
                &s.others,
                s.fallback,
                s.repeated,
                s.gain,
            );
            Recommendation {
                module_id: s.module.id.clone(),
                skill_id: s.primary.to_string(),
                p_mastered: beliefs.p(s.primary),
                expected_gain: s.gain,
                duration_minutes: s.module.duration_minutes,
                format: s.module.format,
                language: s.module.language.clone(),
                target: s.target,
                score: s.score,
                language_fallback: s.fallback,
                reason,
            }
        })
        .collect();

    // Explain a short list.
    let mut problems: Vec<String> = Vec::new();
    let lang_label = if input.language.is_empty() {
        String::new()
    } else {
        format!(" in language '{}'", input.language)
    };
    for (&s, cand) in &candidates {
        if cand.target == Target::PrerequisiteReview || cand.recheck.is_some() {
            continue;
        }
        if !any_language.contains(s) {
            problems.push(format!(
                "no module teaches skill {}",
                quoted(input.skills, s)
            ));
        } else if !in_language.contains(s) && !input.allow_language_fallback {
            problems.push(format!(
                "no module{lang_label} teaches skill {}",
                quoted(input.skills, s)
            ));
        }
    }
    let status = if certifying {
        Status::AllMastered
    } else if items.is_empty() {
        Status::NoContent
    } else {
        Status::Recommending
    };
    let shortfall = (items.len() < input.count).then(|| {
        if excluded_hits > 0 {
            problems.push(format!(
                "{excluded_hits} suitable module{} excluded by the caller",
                if excluded_hits == 1 { " is" } else { "s are" }
            ));
        }
        if certifying {
            problems.push(format!(
                "every program skill is mastered (P(mastered) ≥ {}), but jointly only at {joint:.2}: re-checks of the least certain skills are offered",
                input.threshold
            ));
        } else if problems.is_empty() {
            let names: Vec<String> = candidates.keys().map(|s| quoted(input.skills, s)).collect();
            problems.push(format!(
                "only {} module{} teach{} what the learner can learn now ({})",
                items.len(),
                if items.len() == 1 { "" } else { "s" },
                if items.len() == 1 { "es" } else { "" },
                join_names(&names)
            ));
        }
        problems.join("; ")
    });
    Ok(Recommendations {
        items,
        status,
        shortfall,
    })
}

/// Total order on floats for tie-breaking keys (NaN never occurs here).
struct OrdF64(f64);

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn quoted(skills: &BTreeMap<String, Skill>, id: &str) -> String {
    format!("'{}'", name(skills, id))
}

/// Builds the trainer-facing reason of one recommendation.
#[allow(clippy::too_many_arguments)]
fn explain(
    input: &RecommendInput<'_>,
    beliefs: &Beliefs<'_>,
    candidates: &BTreeMap<&str, Candidate<'_>>,
    records: &BTreeMap<&str, SkillRecord<'_>>,
    module: &Module,
    primary: &str,
    others: &[&str],
    fallback: bool,
    repeated: bool,
    gain: f64,
) -> String {
    let skills = input.skills;
    let p = beliefs.p(primary);
    let cand = &candidates[primary];
    let mut text = match cand.target {
        Target::PrerequisiteReview => {
            let resisting: Vec<String> =
                cand.for_skills.iter().map(|s| quoted(skills, s)).collect();
            format!(
                "re-checking prerequisite {} (at {p:.2}): {} did not improve after {} modules, although {} counts as mastered",
                quoted(skills, primary),
                join_names(&resisting),
                cand.for_skills
                    .iter()
                    .map(|s| records.get(s).map_or(0, |r| r.streak))
                    .max()
                    .unwrap_or(0),
                quoted(skills, primary),
            )
        }
        Target::ProgramSkill | Target::DeepPrerequisite if cand.recheck.is_some() => format!(
            "re-checking skill {} (at {p:.2}) before the program counts as mastered: every program skill is at or above {}, but the confidence that all are mastered is only {:.2}",
            quoted(skills, primary),
            input.threshold,
            cand.recheck.unwrap_or(0.0),
        ),
        Target::ProgramSkill | Target::DeepPrerequisite => {
            let mut t = match beliefs.doubtful.get(primary) {
                Some(q) => format!(
                    "re-checking skill {} (at {p:.2}): it counted as mastered while its prerequisite {} was not, which the prerequisite graph rules out",
                    quoted(skills, primary),
                    quoted(skills, q)
                ),
                None => format!(
                    "skill {} at {p:.2}, below {}",
                    quoted(skills, primary),
                    input.threshold
                ),
            };
            let prereqs: Vec<String> = skills
                .get(primary)
                .map(|s| {
                    s.prerequisite_ids
                        .iter()
                        .map(|q| quoted(skills, q))
                        .collect()
                })
                .unwrap_or_default();
            match prereqs.len() {
                0 => t.push_str("; it has no prerequisites"),
                1 => t.push_str(&format!("; its prerequisite {} is mastered", prereqs[0])),
                _ => t.push_str(&format!(
                    "; its prerequisites {} are mastered",
                    join_names(&prereqs)
                )),
            }
            if cand.target == Target::DeepPrerequisite {
                let needed: Vec<String> =
                    cand.for_skills.iter().map(|s| quoted(skills, s)).collect();
                t.push_str(&format!(
                    "; needed first for program skill{} {}",
                    if needed.len() == 1 { "" } else { "s" },
                    join_names(&needed)
                ));
            }
            t
        }
    };
    if !others.is_empty() {
        let names: Vec<String> = others
            .iter()
            .map(|s| format!("{} ({:.2})", quoted(skills, s), beliefs.p(s)))
            .collect();
        text.push_str(&format!("; also teaches {}", join_names(&names)));
    }
    text.push_str(&format!(
        "; {}, {} min, expected gain {gain:.2}",
        module.format.name(),
        module.duration_minutes
    ));
    if let Some(rec) = records.get(primary) {
        let failed_formats: Vec<String> = rec
            .format_failures
            .keys()
            .filter(|f| **f != module.format)
            .map(|f| f.name().to_string())
            .collect();
        if !failed_formats.is_empty() {
            text.push_str(&format!(
                "; trying {} after {} did not move it",
                with_article(module.format.name()),
                join_names(&failed_formats)
            ));
        }
    }
    if repeated {
        text.push_str(
            "; repeated although it just failed: still the best expected gain per minute",
        );
    }
    if fallback {
        text.push_str(&format!(
            "; no module in language '{}' teaches it, this one is in '{}'",
            input.language, module.language
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(id: &str, prereqs: &[&str]) -> (String, Skill) {
        (
            id.to_string(),
            Skill {
                id: id.to_string(),
                name: id.to_uppercase(),
                prerequisite_ids: prereqs.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    fn module(id: &str, skills: &[&str], format: Format, minutes: u32, language: &str) -> Module {
        Module {
            external_ids: Vec::new(),
            id: id.to_string(),
            title: id.to_string(),
            skill_ids: skills.iter().map(|s| s.to_string()).collect(),
            format,
            duration_minutes: minutes,
            language: language.to_string(),
        }
    }

    /// Owns everything a [`RecommendInput`] borrows.
    struct Case {
        skills: BTreeMap<String, Skill>,
        modules: Vec<Module>,
        program: Vec<String>,
        mastery: BTreeMap<String, f64>,
        params: BTreeMap<String, BktParams>,
        rates: BTreeMap<String, f64>,
        language: String,
        history: Vec<ModuleOutcome>,
        count: usize,
        exclude: BTreeSet<String>,
        fallback: bool,
        config: PolicyConfig,
    }

    impl Case {
        /// a -> b -> c, a -> d; program {b, c, d}; modules in English.
        fn new() -> Case {
            Case {
                skills: BTreeMap::from([
                    skill("a", &[]),
                    skill("b", &["a"]),
                    skill("c", &["b"]),
                    skill("d", &["a"]),
                ]),
                modules: vec![
                    module("ma", &["a"], Format::Video, 10, "en"),
                    module("mb1", &["b"], Format::Video, 10, "en"),
                    module("mb2", &["b"], Format::Exercise, 15, "en"),
                    module("mc", &["c"], Format::Video, 5, "en"),
                    module("md", &["d"], Format::Document, 15, "en-GB"),
                ],
                program: vec!["b".into(), "c".into(), "d".into()],
                mastery: BTreeMap::from([("a".into(), 0.97)]),
                params: BTreeMap::new(),
                rates: BTreeMap::new(),
                language: "en".into(),
                history: Vec::new(),
                count: 10,
                exclude: BTreeSet::new(),
                fallback: false,
                config: PolicyConfig::default(),
            }
        }

        fn run(&self) -> Recommendations {
            recommend(&RecommendInput {
                skills: &self.skills,
                modules: &self.modules,
                index: &CatalogIndex::new(&self.skills, &self.modules),
                program_skill_ids: &self.program,
                mastery: &self.mastery,
                threshold: DEFAULT_THRESHOLD,
                default_params: BktParams::default(),
                skill_params: &self.params,
                module_learn_rates: &self.rates,
                language: &self.language,
                history: &self.history,
                count: self.count,
                exclude: &self.exclude,
                allow_language_fallback: self.fallback,
                config: self.config,
            })
            .unwrap()
        }

        fn failed(&mut self, module: &str, skill: &str, before: f64, after: f64) {
            self.history.push(ModuleOutcome {
                module_id: module.into(),
                changes: vec![SkillChange {
                    skill_id: skill.into(),
                    before,
                    after,
                }],
            });
        }
    }

    fn ids(r: &Recommendations) -> Vec<&str> {
        r.items.iter().map(|i| i.module_id.as_str()).collect()
    }

    #[test]
    fn only_the_fringe_is_recommended_by_gain_per_minute() {
        let r = Case::new().run();
        // b and d are ready (a mastered); c waits for b.
        assert_eq!(ids(&r), ["mb1", "mb2", "md"], "mb2 and md tie: by id");
        assert_eq!(r.status, Status::Recommending);
        let first = &r.items[0];
        assert_eq!(first.skill_id, "b");
        assert!(
            (first.p_mastered - 0.2).abs() < 1e-12,
            "prior used when missing"
        );
        assert!((first.expected_gain - 0.8 * 0.15).abs() < 1e-12);
        assert_eq!(first.target, Target::ProgramSkill);
        assert!(
            first.reason.contains("skill 'B' at 0.20, below 0.95")
                && first.reason.contains("its prerequisite 'A' is mastered"),
            "{}",
            first.reason
        );
        assert!(r.shortfall.is_some(), "asked 10, got 3");
    }

    #[test]
    fn nothing_ready_goes_down_to_the_deepest_unmastered_prerequisite() {
        let mut case = Case::new();
        // Program is only c; a and b unmastered: a is the deepest.
        case.program = vec!["c".into()];
        case.mastery.clear();
        let r = case.run();
        assert_eq!(ids(&r), ["ma"]);
        assert_eq!(r.items[0].target, Target::DeepPrerequisite);
        assert!(
            r.items[0]
                .reason
                .contains("needed first for program skill 'C'"),
            "{}",
            r.items[0].reason
        );
        // Once a is mastered, b is next, never c.
        case.mastery.insert("a".into(), 0.99);
        assert_eq!(ids(&case.run()), ["mb1", "mb2"]);
    }

    #[test]
    fn fitted_module_rate_and_multi_skill_modules_change_the_rank() {
        let mut case = Case::new();
        case.rates.insert("mb2".into(), 0.9); // 0.8*0.9/15 > 0.8*0.15/10
        assert_eq!(ids(&case.run())[0], "mb2");
        let mut case = Case::new();
        case.modules
            .push(module("mbd", &["b", "d", "c"], Format::Workshop, 18, "en"));
        let r = case.run();
        assert_eq!(
            ids(&r)[0],
            "mbd",
            "two ready skills in 18 min beat one in 10"
        );
        assert!(
            (r.items[0].expected_gain - 2.0 * 0.8 * 0.15).abs() < 1e-12,
            "c is not ready: no gain"
        );
        assert!(
            r.items[0].reason.contains("also teaches 'D'"),
            "{}",
            r.items[0].reason
        );
    }

    #[test]
    fn a_module_that_just_failed_sinks_below_its_peers_and_its_format_too() {
        let mut case = Case::new();
        case.modules
            .push(module("mb3", &["b"], Format::Video, 11, "en"));
        case.failed("mb1", "b", 0.2, 0.17);
        let b = |r: &Recommendations| -> Vec<String> {
            r.items
                .iter()
                .filter(|i| i.skill_id == "b")
                .map(|i| i.module_id.clone())
                .collect()
        };
        // Without the failure mb1 (video, 10 min) beats mb3 (video, 11) and
        // mb2 (exercise, 15). After it: mb1 at 0.85 · 0.7 of its gain per
        // minute, mb3 at 0.85 (same format), mb2 untouched.
        assert_eq!(b(&case.run()), ["mb3", "mb2", "mb1"]);
        // A second video failure on b makes the exercise win.
        case.failed("mb3", "b", 0.17, 0.16);
        let r = case.run();
        assert_eq!(b(&r)[0], "mb2", "{:?}", b(&r));
        assert!(
            r.items
                .iter()
                .find(|i| i.module_id == "mb2")
                .unwrap()
                .reason
                .contains("after video did not move it")
        );
    }

    #[test]
    fn failures_shrink_a_module_harmonically_not_to_nothing() {
        assert_eq!(shrink(0.7, 0), 1.0);
        assert!((shrink(0.7, 1) - 0.7).abs() < 1e-12);
        // κ = 7/3: two failures give κ / (κ + 2) = 7 / 13.
        assert!((shrink(0.7, 2) - 7.0 / 13.0).abs() < 1e-12);
        assert!(shrink(0.7, 20) > 0.1 && shrink(0.7, 20) < shrink(0.7, 19));
        assert_eq!(shrink(1.0, 5), 1.0, "no penalty configured");
        assert_eq!(shrink(f64::NAN, 5), 1.0);
        // A 10-minute video that failed five times still beats a 200-minute
        // workshop on the same skill: 5 failures are no proof it cannot work.
        let mut case = Case::new();
        case.program = vec!["d".into()];
        case.modules
            .push(module("md-long", &["d"], Format::Workshop, 200, "en"));
        case.modules
            .push(module("md-v", &["d"], Format::Video, 10, "en"));
        for _ in 0..5 {
            case.failed("md-v", "d", 0.2, 0.18);
        }
        case.config.review_after_failures = 0;
        assert_eq!(ids(&case.run())[0], "md", "the untried document first");
        case.exclude.insert("md".into());
        let r = case.run();
        assert_eq!(ids(&r), ["md-v", "md-long"]);
        assert!(
            r.items[0]
                .reason
                .contains("repeated although it just failed"),
            "{}",
            r.items[0].reason
        );
    }

    #[test]
    fn the_only_module_is_repeated_with_a_reason() {
        let mut case = Case::new();
        case.program = vec!["d".into()];
        case.failed("md", "d", 0.2, 0.18);
        let r = case.run();
        assert_eq!(ids(&r), ["md"]);
        assert!(
            r.items[0]
                .reason
                .contains("repeated although it just failed"),
            "{}",
            r.items[0].reason
        );
    }

    #[test]
    fn a_skill_that_keeps_resisting_triggers_a_prerequisite_review() {
        let mut case = Case::new();
        case.program = vec!["b".into()];
        for _ in 0..3 {
            case.failed("mb1", "b", 0.2, 0.18);
        }
        let r = case.run();
        assert_eq!(r.items[0].module_id, "ma");
        assert_eq!(r.items[0].target, Target::PrerequisiteReview);
        assert!(
            r.items[0].reason.contains("re-checking prerequisite 'A'"),
            "{}",
            r.items[0].reason
        );
        // After the review the streak restarts.
        case.history.push(ModuleOutcome {
            module_id: "ma".into(),
            changes: vec![SkillChange {
                skill_id: "a".into(),
                before: 0.97,
                after: 0.99,
            }],
        });
        case.mastery.insert("a".into(), 0.99);
        assert_eq!(case.run().items[0].skill_id, "b");
    }

    #[test]
    fn format_names_take_the_right_article() {
        assert_eq!(with_article(Format::Exercise.name()), "an exercise");
        assert_eq!(with_article(Format::Video.name()), "a video");
    }

    #[test]
    fn language_matches_on_primary_subtag() {
        assert!(language_matches("fr", "fr-CA"));
        assert!(language_matches("fr-CA", "FR"));
        assert!(language_matches("", "de"));
        assert!(!language_matches("fr", "en"));
        assert!(!language_matches("fr", "frr"));
    }

    #[test]
    fn language_filter_reports_missing_content_or_falls_back_when_allowed() {
        let mut case = Case::new();
        case.language = "fr-CA".into();
        case.modules
            .push(module("mb-fr", &["b"], Format::Video, 30, "fr"));
        let r = case.run();
        assert_eq!(ids(&r), ["mb-fr"]);
        let why = r.shortfall.unwrap();
        assert!(
            why.contains("no module in language 'fr-CA' teaches skill 'D'"),
            "{why}"
        );
        case.fallback = true;
        let r = case.run();
        assert_eq!(
            ids(&r),
            ["md", "mb-fr"],
            "only d falls back; b has French content"
        );
        assert!(r.items[0].language_fallback);
        assert!(
            r.items[0]
                .reason
                .contains("no module in language 'fr-CA' teaches it, this one is in 'en-GB'")
        );
    }

    #[test]
    fn a_needed_skill_without_any_module_is_named() {
        let mut case = Case::new();
        case.program = vec!["b".into()];
        case.modules
            .retain(|m| !m.skill_ids.contains(&"b".to_string()));
        let r = case.run();
        assert!(r.items.is_empty());
        assert_eq!(r.status, Status::NoContent);
        assert_eq!(r.shortfall.as_deref(), Some("no module teaches skill 'B'"));
    }

    #[test]
    fn all_mastered_and_excluded_modules_are_explained() {
        let mut case = Case::new();
        for s in ["b", "c", "d"] {
            case.mastery.insert(s.into(), 0.999);
        }
        let r = case.run();
        assert_eq!(r.status, Status::AllMastered);
        assert!(r.items.is_empty());
        assert!(
            r.shortfall
                .unwrap()
                .contains("every program skill is mastered")
        );
        let mut case = Case::new();
        case.exclude = BTreeSet::from(["mb1".into(), "mb2".into()]);
        let r = case.run();
        assert_eq!(ids(&r), ["md"]);
        assert!(
            r.shortfall
                .unwrap()
                .contains("2 suitable modules are excluded by the caller")
        );
    }

    #[test]
    fn every_skill_mastered_but_not_jointly_asks_for_re_checks() {
        let mut case = Case::new();
        // 0.96 · 0.99 · 0.999 ≈ 0.95 < ... just below: c is the least certain.
        case.mastery.insert("b".into(), 0.99);
        case.mastery.insert("c".into(), 0.955);
        case.mastery.insert("d".into(), 0.999);
        let r = case.run();
        assert_eq!(r.status, Status::AllMastered);
        assert_eq!(r.items[0].module_id, "mc", "{:?}", ids(&r));
        assert_eq!(r.items[0].target, Target::ProgramSkill);
        assert!(
            r.items[0]
                .reason
                .contains("re-checking skill 'C' (at 0.95)")
                && r.items[0]
                    .reason
                    .contains("confidence that all are mastered is only 0.94"),
            "{}",
            r.items[0].reason
        );
        // One more confirmation and the program is certified.
        case.mastery.insert("c".into(), 0.999);
        let r = case.run();
        assert_eq!((r.status, r.items.len()), (Status::AllMastered, 0));
    }

    #[test]
    fn a_skill_mastered_while_its_prerequisite_was_not_is_re_checked() {
        let mut case = Case::new();
        case.program = vec!["b".into(), "d".into()];
        // b looked mastered after one quiz (three lucky answers)...
        case.failed("mb1", "b", 0.2, 0.977);
        // ... then its prerequisite a had to be learnt again.
        case.failed("ma", "a", 0.4, 0.97);
        case.mastery.insert("b".into(), 0.977);
        case.mastery.insert("d".into(), 0.99);
        let r = case.run();
        assert_eq!(r.status, Status::Recommending);
        assert_eq!(r.items[0].skill_id, "b", "{:?}", ids(&r));
        assert!(
            r.items[0]
                .reason
                .contains("it counted as mastered while its prerequisite 'A' was not"),
            "{}",
            r.items[0].reason
        );
        // Ranked as unobserved: the gain is the prior's.
        assert!((r.items[0].expected_gain - 0.8 * 0.15).abs() < 1e-12);
        // A newer module on b clears the doubt.
        case.failed("mb2", "b", 0.977, 0.995);
        case.mastery.insert("b".into(), 0.995);
        assert_eq!(case.run().status, Status::AllMastered);
        // The doubt waits for the prerequisite: with a unmastered, a first.
        let mut case = Case::new();
        case.program = vec!["b".into()];
        case.failed("mb1", "b", 0.2, 0.977);
        case.failed("ma", "a", 0.4, 0.6);
        case.mastery.insert("a".into(), 0.6);
        case.mastery.insert("b".into(), 0.977);
        assert_eq!(ids(&case.run()), ["ma"]);
    }

    #[test]
    fn same_state_same_list_whatever_the_module_order() {
        let mut case = Case::new();
        case.modules
            .push(module("mb0", &["b"], Format::Quiz, 10, "en")); // ties mb1
        let a = case.run();
        case.modules.reverse();
        let b = case.run();
        assert_eq!(a, b);
        assert_eq!(ids(&a)[..2], ["mb0", "mb1"], "ties broken by id");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let mut case = Case::new();
        case.program.push("zz".into());
        let index = CatalogIndex::new(&case.skills, &case.modules);
        let input = RecommendInput {
            skills: &case.skills,
            modules: &case.modules,
            index: &index,
            program_skill_ids: &case.program,
            mastery: &case.mastery,
            threshold: 0.95,
            default_params: BktParams::default(),
            skill_params: &case.params,
            module_learn_rates: &case.rates,
            language: "",
            history: &[],
            count: 1,
            exclude: &case.exclude,
            allow_language_fallback: false,
            config: PolicyConfig::default(),
        };
        assert!(
            recommend(&input)
                .unwrap_err()
                .to_string()
                .contains("unknown skill id 'zz'")
        );
        let good = vec!["b".to_string()];
        let input = RecommendInput {
            program_skill_ids: &good,
            threshold: 1.5,
            ..input
        };
        assert!(recommend(&input).is_err());
    }

    #[test]
    fn a_call_on_a_full_catalog_takes_microseconds() {
        // 30 skills in a chain of layers, 120 modules: the production size.
        let options = crate::domain::simulator::SimOptions::default();
        let world = crate::domain::simulator::World::generate(&options);
        let mastery: BTreeMap<String, f64> = world
            .skill_ids
            .iter()
            .take(10)
            .map(|s| (s.clone(), 0.97))
            .collect();
        let (params, rates, exclude) = (BTreeMap::new(), BTreeMap::new(), BTreeSet::new());
        let input = RecommendInput {
            skills: &world.skills,
            modules: &world.modules,
            index: &world.catalog_index,
            program_skill_ids: &world.program,
            mastery: &mastery,
            threshold: DEFAULT_THRESHOLD,
            default_params: BktParams::default(),
            skill_params: &params,
            module_learn_rates: &rates,
            language: "en",
            history: &[],
            count: 5,
            exclude: &exclude,
            allow_language_fallback: false,
            config: PolicyConfig::default(),
        };
        let start = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(recommend(&input).unwrap().items.len(), 5);
        }
        // Generous bound for unoptimised debug builds on a loaded machine.
        assert!(
            start.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }
}
