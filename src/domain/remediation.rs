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
//!    when P(mastered) ≥ the threshold. The candidate skills are the program's
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
//!    the fitted per-module rate when the model has one, the skill's default
//!    otherwise. A module that teaches several candidate skills sums its
//!    gains; skills it teaches that are not candidates count for nothing.
//! 3. **Vary formats for skills that resist.** The module that has just
//!    failed to move a skill is not offered again for it (unless nothing else
//!    teaches it), and every earlier failure of a format (and, more, of the
//!    very module) on a skill scales that module's gain down.
//! 4. **Suspect the prerequisites of a skill that keeps resisting.** After
//!    [`PolicyConfig::review_after_failures`] consecutive failures on a skill,
//!    its weakest prerequisite is re-checked first: a prerequisite that looks
//!    mastered but is not (three lucky guesses) blocks learning for good, and
//!    only a quiz on it can reveal that.
//! 5. **Respect the learner's language** (primary subtag match: `fr` matches
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
    /// Gain multiplier applied once per earlier failure of the module's
    /// format on the skill: formats that did not work for this learner sink.
    pub format_failure_penalty: f64,
    /// Extra multiplier per earlier failure of the very same module on the
    /// skill: the same content is even less likely to work the next time.
    pub module_failure_penalty: f64,
    /// Consecutive failures on a skill after which its weakest prerequisite
    /// is re-checked first; `0` disables prerequisite reviews.
    pub review_after_failures: u32,
}

impl Default for PolicyConfig {
    /// Values checked on the simulator over several seeds (see
    /// `simulator`): moderate penalties, review after three failures.
    fn default() -> Self {
        Self {
            min_progress: 0.05,
            format_failure_penalty: 0.6,
            module_failure_penalty: 0.6,
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
    /// The modules that may be recommended, in any order.
    pub modules: &'a [Module],
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
    /// Teaches a ready (fringe) skill of the program.
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
    /// Every program skill is mastered: nothing to recommend.
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
    fn primary(tag: &str) -> &str {
        tag.split(['-', '_']).next().unwrap_or("").trim()
    }
    let (l, m) = (primary(learner), primary(module));
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

/// P(mastered) of every skill as the policy sees it.
struct Beliefs<'a> {
    input: &'a RecommendInput<'a>,
}

impl Beliefs<'_> {
    fn params(&self, skill: &str) -> &BktParams {
        self.input
            .skill_params
            .get(skill)
            .unwrap_or(&self.input.default_params)
    }

    fn p(&self, skill: &str) -> f64 {
        let p = match self.input.mastery.get(skill) {
            Some(p) => *p,
            None => self.params(skill).prior,
        };
        if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn mastered(&self, skill: &str) -> bool {
        self.p(skill) >= self.input.threshold
    }

    fn prereqs_mastered(&self, skill: &str) -> bool {
        self.input
            .skills
            .get(skill)
            .is_none_or(|s| s.prerequisite_ids.iter().all(|q| self.mastered(q)))
    }
}

/// Computes the fringe: the ready program skills and, for blocked program
/// skills, the deepest unmastered prerequisites (following the graph outside
/// the program). Terminates on any graph, cyclic or not, thanks to a visited
/// set.
pub fn fringe(input: &RecommendInput<'_>) -> Fringe {
    let beliefs = Beliefs { input };
    let program: BTreeSet<&str> = input.program_skill_ids.iter().map(String::as_str).collect();
    let mut out = Fringe::default();
    for &skill in &program {
        if beliefs.mastered(skill) {
            continue;
        }
        out.unmastered_program.insert(skill.to_string());
        if beliefs.prereqs_mastered(skill) {
            out.ready.insert(skill.to_string());
            continue;
        }
        // Walk down through unmastered prerequisites.
        let mut seen: BTreeSet<&str> = BTreeSet::from([skill]);
        let mut todo: Vec<&str> = vec![skill];
        while let Some(id) = todo.pop() {
            let Some(node) = input.skills.get(id) else {
                continue;
            };
            for q in &node.prerequisite_ids {
                let q = q.as_str();
                if beliefs.mastered(q) || !seen.insert(q) {
                    continue;
                }
                if program.contains(q) {
                    // Reached on its own account (ready or walked from).
                    continue;
                }
                if beliefs.prereqs_mastered(q) {
                    out.deep
                        .entry(q.to_string())
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

fn failed(change: &SkillChange, config: &PolicyConfig, threshold: f64) -> bool {
    change.after - change.before < config.min_progress && change.after < threshold
}

/// Reads the history for one skill, newest entries deciding the streak.
fn record<'h>(
    input: &RecommendInput<'h>,
    by_id: &BTreeMap<&str, &'h Module>,
    skill: &str,
) -> SkillRecord<'h> {
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
            if let Some(module) = by_id.get(entry.module_id.as_str()) {
                *rec.format_failures.entry(module.format).or_default() += 1;
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
}

/// Names a skill for a trainer: its name, or its id when unknown.
fn name<'a>(skills: &'a BTreeMap<String, Skill>, id: &'a str) -> &'a str {
    skills.get(id).map_or(id, |s| s.name.as_str())
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
    let beliefs = Beliefs { input };
    let fr = fringe(input);
    if fr.unmastered_program.is_empty() {
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

    let by_id: BTreeMap<&str, &Module> = input.modules.iter().map(|m| (m.id.as_str(), m)).collect();

    // The candidate skills, with their band.
    let mut candidates: BTreeMap<&str, Candidate<'_>> = BTreeMap::new();
    for s in &fr.ready {
        candidates.insert(
            s.as_str(),
            Candidate {
                target: Target::ProgramSkill,
                for_skills: Vec::new(),
            },
        );
    }
    for (s, needed_by) in &fr.deep {
        candidates.insert(
            s.as_str(),
            Candidate {
                target: Target::DeepPrerequisite,
                for_skills: needed_by.iter().map(String::as_str).collect(),
            },
        );
    }
    let mut records: BTreeMap<&str, SkillRecord<'_>> = candidates
        .keys()
        .map(|&s| (s, record(input, &by_id, s)))
        .collect();

    // Prerequisite reviews for skills that keep resisting.
    if input.config.review_after_failures > 0 {
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
                });
                entry.for_skills.push(skill);
                records.entry(q).or_insert_with(|| record(input, &by_id, q));
            }
        }
    }

    // Which candidate skills have content in the learner's language.
    let mut in_language: BTreeSet<&str> = BTreeSet::new();
    let mut any_language: BTreeSet<&str> = BTreeSet::new();
    for m in input.modules {
        let matches = language_matches(input.language, &m.language);
        for s in &m.skill_ids {
            if let Some((&s, _)) = candidates.get_key_value(s.as_str()) {
                any_language.insert(s);
                if matches {
                    in_language.insert(s);
                }
            }
        }
    }
    // Skills whose only usable module is the one that just failed: it is
    // re-admitted rather than leaving the skill without content.
    let mut usable_count: BTreeMap<&str, usize> = BTreeMap::new();
    for m in input.modules {
        if input.exclude.contains(&m.id) {
            continue;
        }
        let matches = language_matches(input.language, &m.language);
        for s in &m.skill_ids {
            let Some((&s, _)) = candidates.get_key_value(s.as_str()) else {
                continue;
            };
            let lang_ok = matches || (input.allow_language_fallback && !in_language.contains(s));
            let just_failed = records[s].just_failed == Some(m.id.as_str());
            if lang_ok && !just_failed {
                *usable_count.entry(s).or_default() += 1;
            }
        }
    }

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
    for m in input.modules {
        let matches = language_matches(input.language, &m.language);
        let mut target = Target::DeepPrerequisite;
        let mut score_gain = 0.0;
        let mut gain = 0.0;
        let mut primary: Option<(&str, f64)> = None;
        let mut fallback = false;
        let mut repeated = false;
        let mut taught: Vec<&str> = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for s in &m.skill_ids {
            let s = s.as_str();
            if !seen.insert(s) {
                continue;
            }
            let Some(cand) = candidates.get(s) else {
                continue;
            };
            let lang_ok = matches || (input.allow_language_fallback && !in_language.contains(s));
            if !lang_ok {
                continue;
            }
            let rec = &records[s];
            let just_failed = rec.just_failed == Some(m.id.as_str());
            if just_failed && usable_count.get(s).copied().unwrap_or(0) > 0 {
                continue;
            }
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
            let p = beliefs.p(s);
            let g = if cand.target == Target::PrerequisiteReview {
                // A review's worth is the diagnosis, not the tiny gain of a
                // mastered skill: give it a floor so that it ranks by speed.
                ((1.0 - p) * rate).max(0.01)
            } else {
                (1.0 - p) * rate
            };
            let fmt_fails = rec.format_failures.get(&m.format).copied().unwrap_or(0);
            let mod_fails = rec.module_failures.get(m.id.as_str()).copied().unwrap_or(0);
            let penalty = input.config.format_failure_penalty.powi(fmt_fails as i32)
                * input.config.module_failure_penalty.powi(mod_fails as i32);
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
        if cand.target == Target::PrerequisiteReview {
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
    let status = if items.is_empty() {
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
        if problems.is_empty() {
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
#[derive(PartialEq, PartialOrd)]
struct OrdF64(f64);

impl Eq for OrdF64 {}

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
        Target::ProgramSkill | Target::DeepPrerequisite => {
            let mut t = format!(
                "skill {} at {p:.2}, below {}",
                quoted(skills, primary),
                input.threshold
            );
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
                "; trying a {} after {} did not move it",
                module.format.name(),
                join_names(&failed_formats)
            ));
        }
    }
    if repeated {
        text.push_str("; repeated although it just failed: no other module teaches it");
    }
    if fallback {
        text.push_str(&format!(
            "; no module in language '{}' teaches it, this one is in '{}'",
            input.language, module.language
        ));
    }
    text
}
