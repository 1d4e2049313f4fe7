//! Remediation: what should this learner do next, and why.
//!
//! The LMS asks this question many times a second, so [`recommend`] is a pure
//! function of plain inputs (no store, no clock) that runs in microseconds on
//! a 30-skill / 120-module catalog. Its one random choice (which module to
//! try, see 3) is drawn from [`RecommendInput::seed`], so the same inputs
//! always give the same ranked list and a trainer who asks "why did the
//! learner get this?" gets the same answer.
//!
//! The policy, in the order it is applied:
//!
//! 1. **Target the gap that blocks the learner now.** A skill is *mastered*
//!    when P(mastered) ≥ the threshold (and the prerequisite graph does not
//!    contradict it, see 5). The candidate skills are the program's
//!    unmastered skills whose prerequisites are all mastered: the outer
//!    fringe of the learner's knowledge state (knowledge space theory). Only
//!    when none of them has usable content is the graph followed down (also
//!    outside the program's skills) to the *deepest* unmastered
//!    prerequisites of the blocked program skills.
//! 2. **Rank by expected mastery gain per minute.** Under BKT the expected
//!    gain of a module on a skill at P(mastered) `p` is `(1 − p) · ℓ`, with
//!    `ℓ` the module's learn rate; a module teaching several candidate
//!    skills sums its gains; the minutes are the module's plus the check
//!    after it ([`PolicyConfig::check_minutes`]).
//! 3. **Learn which modules work** ([`effects`]). `ℓ` is not one number for
//!    every module: the engine keeps, per module and skill, a posterior over
//!    it from what happened to the learners who did it (the fitted model's
//!    rate is only its prior), and the policy draws `ℓ` from that posterior
//!    (Thompson sampling): an untried module gets tried now and then, a
//!    module that does not move anyone stops being drawn. The reason says
//!    "tried by 40 learners, moved mastery for 12".
//! 4. **Use the learner's own failures.** A module that did not move a skill
//!    is not offered again while another module of the skill in the
//!    learner's language was not tried and failed by them; when none is
//!    left it is, and the reason says so. Earlier failures of a module or of
//!    its format on the skill also shrink its rate, harmonically
//!    (`κ / (κ + n)`, see [`PolicyConfig`]), never to zero.
//! 5. **Ask a question when the doubt is the problem.** Knowledge states are
//!    closed under prerequisites, so a skill that counted as mastered while
//!    a prerequisite had to be (re)learnt after it is doubtful; and after
//!    [`PolicyConfig::review_after_failures`] modules on a skill without
//!    progress (no new high of its P(mastered): with noisy answers P goes
//!    up and down while the skill stays put), its weakest prerequisite is
//!    suspect (three lucky guesses block learning for good). Both are checked with diagnostic items from the
//!    catalog's item bank (a [`Kind::Diagnostic`] recommendation with the
//!    item ids and their minutes), not with whole modules; without items in
//!    the bank a module does the check.
//! 6. **Certify only what is known.** [`Status::AllMastered`] means every
//!    program skill is mastered, each on at least
//!    [`PolicyConfig::certify_items`] answers on distinct items since its
//!    latest module, and jointly (the product of the P(mastered), which for
//!    30 skills at 0.97 is 0.4, reaches the threshold): there is nothing to
//!    recommend. Until then the status is [`Status::Verifying`] and the
//!    items are diagnostic questions on the skills short of evidence or
//!    least certain, never modules.
//! 7. **Respect the learner's language** (primary subtag match: `fr` matches
//!    `fr-CA`). A skill without content in the learner's language is
//!    reported, not silently served in another one, unless
//!    [`RecommendInput::allow_language_fallback`] says so.
//!
//! Ties are broken by module id, and every float is computed in a fixed order,
//! so the output is deterministic.

mod beliefs;
pub mod effects;
mod explain;
mod fringe;
mod history;
mod record;
mod scoring;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use self::beliefs::Beliefs;
use self::effects::{Effects, uniform};
use self::explain::{explain_diagnostic, explain_module, join_names, quoted};
use self::fringe::fringe_of;
pub use self::fringe::{Fringe, fringe};
pub use self::history::{
    AnswerSeen, EVIDENCE_DEPTH, HISTORY_DEPTH, ModuleOutcome, SkillChange, SkillEvidence,
    draw_seed, fill_after, latest_module_on,
};
use self::record::{SkillRecord, record};
use self::scoring::{Scored, score_modules};
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
    /// failures the multiplier is κ / (κ + n).
    pub format_failure_penalty: f64,
    /// Extra multiplier after one earlier failure of the very same module on
    /// the skill; `n` failures give κ / (κ + n) likewise; `1` (the default)
    /// gives none. Off by default: the population's estimate already says
    /// how well the module teaches, the format penalty catches a learner
    /// for whom a format does not work, and a module that *just* failed
    /// gives way to any alternative that may teach as well. On top of that,
    /// the penalty made learners stuck on a skill alternate onto modules the
    /// population had shown to teach less (a third of the near-useless
    /// modules served in `spoc simulate`'s irt world).
    pub module_failure_penalty: f64,
    /// Modules on a skill without progress (see `record`) after which its
    /// weakest prerequisite is re-checked first; `0` disables prerequisite
    /// reviews.
    pub review_after_failures: u32,
    /// Answers on distinct items since a skill's latest module it needs
    /// before the program is certified (fewer when its bank is smaller).
    pub certify_items: u32,
    /// Items asked by one diagnostic recommendation (at most).
    pub diagnostic_items: u32,
    /// Learner minutes one diagnostic item takes.
    pub item_minutes: f64,
    /// Minutes added to every module's duration for the check after it
    /// (the LMS's short quiz): what a module really costs.
    pub check_minutes: f64,
    /// Whether module effects are drawn from their posterior (Thompson
    /// sampling, so that untried modules get tried); `false` ranks by the
    /// posterior mean, which never explores.
    pub explore: bool,
}

impl Default for PolicyConfig {
    /// Mild penalties (a single failure is weak evidence when modules teach
    /// with probability 0.3–0.6), a prerequisite review after three failures
    /// in a row, three answers per skill before certifying (three lucky
    /// guesses at 0.2 happen to 1 % of skills; with the joint confidence on
    /// top that is what a final exam asks), a three-minute check after each
    /// module. Checked on the simulator (see `simulator`).
    fn default() -> Self {
        Self {
            min_progress: 0.05,
            format_failure_penalty: 0.85,
            module_failure_penalty: 1.0,
            review_after_failures: 3,
            certify_items: 3,
            diagnostic_items: 3,
            item_minutes: 1.0,
            check_minutes: 3.0,
            explore: true,
        }
    }
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
    /// order: its module numbers are positions in `modules`; its items are
    /// the diagnostic questions available.
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
    /// Fitted learn rate per module id: the prior of its effect.
    pub module_learn_rates: &'a BTreeMap<String, f64>,
    /// What modules did for the learners who did them (see [`effects`]).
    pub effects: &'a Effects,
    /// The learner's answers per skill since its latest module.
    pub evidence: &'a BTreeMap<String, SkillEvidence>,
    /// The learner's BCP 47 language tag; empty means "any language".
    pub language: &'a str,
    /// Modules the learner did recently, oldest first.
    pub history: &'a [ModuleOutcome],
    /// How many recommendations to return at most.
    pub count: usize,
    /// Module ids the caller does not want (already assigned, hidden...).
    pub exclude: &'a BTreeSet<String>,
    /// Whether a skill with no module in the learner's language may be
    /// served in another language (the reason then says so).
    pub allow_language_fallback: bool,
    /// Seed of the posterior draws: the same seed gives the same list.
    /// Callers vary it per learner and per answer (see [`effects`]).
    pub seed: u64,
    /// Tuning constants.
    pub config: PolicyConfig,
}

/// Why something is in the list: decides its rank band before gain per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// Re-checks a mastered prerequisite of a skill that keeps resisting.
    PrerequisiteReview,
    /// Teaches a ready (fringe) skill of the program, or re-checks one whose
    /// mastery the prerequisite graph puts in doubt.
    ProgramSkill,
    /// Teaches the deepest unmastered prerequisite of a blocked program skill.
    DeepPrerequisite,
    /// Gathers the evidence certification needs on a skill that looks
    /// mastered (status [`Status::Verifying`]).
    CertificationEvidence,
}

/// What the learner is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Do a module.
    Module,
    /// Answer a few items of the bank: a check, not teaching.
    Diagnostic,
}

/// One recommendation, with what a trainer needs to understand it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// A module or diagnostic items.
    pub kind: Kind,
    /// The module (empty for diagnostic items).
    pub module_id: String,
    /// The items to ask (diagnostic only), in order.
    pub item_ids: Vec<String>,
    /// The skill it mainly targets (the largest expected gain).
    pub skill_id: String,
    /// The learner's current P(mastered) of that skill.
    pub p_mastered: f64,
    /// Expected P(mastered) gain summed over the candidate skills a module
    /// teaches, with the posterior mean of its effect; 0 for diagnostics.
    pub expected_gain: f64,
    /// The module's duration, or the items' expected minutes.
    pub duration_minutes: u32,
    /// The module's format ([`Format::Quiz`] for diagnostic items).
    pub format: Format,
    /// The module's language tag (empty for diagnostic items).
    pub language: String,
    /// Why it is there; decides its rank band.
    pub target: Target,
    /// Ranking score: drawn, penalised gain per minute.
    pub score: f64,
    /// Whether the module is not in the learner's language (fallback).
    pub language_fallback: bool,
    /// Learners who did the module while the skill was unmastered.
    pub tried_by: u32,
    /// Of whom passed the answers after it.
    pub moved_for: u32,
    /// Human-readable explanation for the trainer.
    pub reason: String,
}

/// The overall situation of the learner in the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Modules (or checks) were found for what the learner can learn now.
    Recommending,
    /// Every program skill is mastered on enough evidence, jointly: nothing
    /// to recommend, the program can be certified.
    AllMastered,
    /// Some skill needs work but no usable module teaches it.
    NoContent,
    /// Every program skill looks mastered, but certification needs more
    /// answers: the items are diagnostic questions.
    Verifying,
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

/// One skill the policy wants to work on now, with why.
struct Candidate<'a> {
    target: Target,
    /// For deep prerequisites: the program skills that need it; for reviews:
    /// the resisting skills.
    for_skills: Vec<&'a str>,
    /// For reviews: teach the prerequisite again (a module) rather than
    /// check it (items), because a check already did not explain the
    /// resistance.
    reteach: bool,
}

/// Ranks what the learner should do next for the program in `input`.
///
/// Fails only on inputs that are wrong whatever the learner's state: a
/// threshold outside (0, 1] or a program skill unknown to the catalog.
pub fn recommend(input: &RecommendInput<'_>) -> Result<Recommendations> {
    validate(input)?;
    let beliefs = Beliefs::new(input);
    let fringe = fringe_of(&beliefs);
    if fringe.unmastered_program.is_empty() {
        return Ok(certify(input, &beliefs));
    }
    let mut candidates = candidates_of(&fringe);
    let mut records: BTreeMap<&str, SkillRecord<'_>> =
        candidates.keys().map(|&s| (s, record(input, s))).collect();
    add_reviews(input, &beliefs, &mut candidates, &mut records);

    // Checks first: a review or a doubtful skill is asked about when the
    // bank has items on it; the rest is taught.
    let (checks, checked) = checks(input, &beliefs, &candidates, &records);
    let scored = score_modules(input, &beliefs, &candidates, &records, &checked);
    // Deep prerequisites only when no ready program skill can be taught.
    let any_ready = scored
        .modules
        .iter()
        .any(|m| m.target != Target::DeepPrerequisite)
        || checked
            .iter()
            .any(|s| candidates[s].target == Target::ProgramSkill);
    let mut modules: Vec<Scored<'_>> = scored
        .modules
        .into_iter()
        .filter(|m| !any_ready || m.target != Target::DeepPrerequisite)
        .collect();
    modules.sort_by(|a, b| {
        a.target
            .cmp(&b.target)
            .then(b.score.total_cmp(&a.score))
            .then(a.module.id.cmp(&b.module.id))
    });
    // Bands first (reviews, program skills, deep), checks before modules
    // within a band (the sort is stable). Only the modules kept are
    // explained: formatting every candidate's reason took a tenth of a
    // call (`cargo bench --bench recommend`, profiled).
    let mut order: Vec<(Target, usize)> = checks
        .iter()
        .map(|r| r.target)
        .chain(modules.iter().map(|m| m.target))
        .enumerate()
        .map(|(i, target)| (target, i))
        .collect();
    order.sort_by_key(|(target, _)| *target);
    order.truncate(input.count);
    let mut checks: Vec<Option<Recommendation>> = checks.into_iter().map(Some).collect();
    let mut out: Vec<Recommendation> = Vec::with_capacity(order.len());
    for (_, i) in order {
        match checks.get_mut(i) {
            Some(check) => out.extend(check.take()),
            None => {
                let m = &modules[i - checks.len()];
                let cand = &candidates[m.primary];
                out.push(module_recommendation(&beliefs, m, cand, &records));
            }
        }
    }

    let status = if out.is_empty() {
        Status::NoContent
    } else {
        Status::Recommending
    };
    let shortfall = (out.len() < input.count).then(|| {
        shortfall(
            input,
            &candidates,
            &scored.any_language,
            &scored.in_language,
            scored.excluded,
            out.len(),
            any_ready,
        )
    });
    Ok(Recommendations {
        items: out,
        status,
        shortfall,
    })
}

/// The skills to work on now: the fringe's ready program skills, and its
/// deep prerequisites with the program skills that need them.
fn candidates_of(fringe: &Fringe) -> BTreeMap<&str, Candidate<'_>> {
    let mut candidates: BTreeMap<&str, Candidate<'_>> = BTreeMap::new();
    for s in &fringe.ready {
        candidates.insert(
            s.as_str(),
            Candidate {
                target: Target::ProgramSkill,
                for_skills: Vec::new(),
                reteach: false,
            },
        );
    }
    for (s, needed_by) in &fringe.deep {
        candidates.insert(
            s.as_str(),
            Candidate {
                target: Target::DeepPrerequisite,
                for_skills: needed_by.iter().map(String::as_str).collect(),
                reteach: false,
            },
        );
    }
    candidates
}

/// The diagnostic checks: a review to check (not reteach) or a doubtful
/// skill, when the bank has items on it; with the skills so checked.
fn checks<'a>(
    input: &RecommendInput<'a>,
    beliefs: &Beliefs<'a>,
    candidates: &BTreeMap<&'a str, Candidate<'a>>,
    records: &BTreeMap<&'a str, SkillRecord<'a>>,
) -> (Vec<Recommendation>, BTreeSet<&'a str>) {
    let mut out: Vec<Recommendation> = Vec::new();
    let mut checked: BTreeSet<&str> = BTreeSet::new();
    for (&s, cand) in candidates {
        let doubt = (cand.target == Target::PrerequisiteReview && !cand.reteach)
            || beliefs.doubtful.contains_key(s);
        if !doubt {
            continue;
        }
        if let Some(items) = diagnostic_items(input, s, input.config.diagnostic_items) {
            let reason = explain_diagnostic(beliefs, records, s, cand);
            out.push(diagnostic(input, beliefs, s, cand.target, items, reason));
            checked.insert(s);
        }
    }
    (out, checked)
}

/// A scored module as a recommendation, with its reason.
fn module_recommendation(
    beliefs: &Beliefs<'_>,
    m: &Scored<'_>,
    cand: &Candidate<'_>,
    records: &BTreeMap<&str, SkillRecord<'_>>,
) -> Recommendation {
    let reason = explain_module(beliefs, records, m, cand);
    Recommendation {
        kind: Kind::Module,
        module_id: m.module.id.clone(),
        item_ids: Vec::new(),
        skill_id: m.primary.to_string(),
        p_mastered: beliefs.p(m.primary),
        expected_gain: m.gain,
        duration_minutes: m.module.duration_minutes,
        format: m.module.format,
        language: m.module.language.clone(),
        target: m.target,
        score: m.score,
        language_fallback: m.fallback,
        tried_by: m.effect.map_or(0, |e| e.tried),
        moved_for: m.effect.map_or(0, |e| e.moved),
        reason,
    }
}

fn validate(input: &RecommendInput<'_>) -> Result<()> {
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
    Ok(())
}

/// Prerequisite reviews for skills that keep resisting: their weakest
/// prerequisite joins the candidates.
fn add_reviews<'a>(
    input: &RecommendInput<'a>,
    beliefs: &Beliefs<'a>,
    candidates: &mut BTreeMap<&'a str, Candidate<'a>>,
    records: &mut BTreeMap<&'a str, SkillRecord<'a>>,
) {
    if input.config.review_after_failures == 0 {
        return;
    }
    let every = input.config.review_after_failures;
    let resisting: Vec<&str> = records
        .iter()
        .filter(|(_, r)| r.streak >= every && r.streak % every == 0)
        .map(|(s, _)| *s)
        .collect();
    for skill in resisting {
        // Every `every` failures a review: a check first, then, if the
        // skill still resists, the prerequisite taught again (a
        // prerequisite just below mastery passes a check and still blocks).
        // Each round of `every` failures reviews one prerequisite (checked,
        // then taught), the weakest first, then the next one: the
        // prerequisite that blocks is not always the least believed.
        let round = records[skill].streak / every;
        let reteach = round % 2 == 0;
        let prereqs = input
            .skills
            .get(skill)
            .map_or(&[][..], |s| s.prerequisite_ids.as_slice());
        let mut by_belief: Vec<(f64, &str)> =
            prereqs.iter().map(|q| (beliefs.p(q), q.as_str())).collect();
        by_belief.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        let pick = (!by_belief.is_empty())
            .then(|| by_belief[((round.max(1) - 1) / 2) as usize % by_belief.len()]);
        if let Some((_, q)) = pick {
            // Checked since the latest failure: the answers are in the
            // belief, the review is done.
            let failed_at = input
                .history
                .iter()
                .rev()
                .find(|h| h.changes.iter().any(|c| c.skill_id == skill))
                .map_or(i64::MIN, |h| h.completed_at);
            let answered = input
                .evidence
                .get(q)
                .map_or(0, |e| e.answers_after(failed_at));
            if answered >= input.config.diagnostic_items.max(1) as usize {
                continue;
            }
            let entry = candidates.entry(q).or_insert(Candidate {
                target: Target::PrerequisiteReview,
                for_skills: Vec::new(),
                reteach,
            });
            entry.for_skills.push(skill);
            entry.reteach |= reteach;
            records.entry(q).or_insert_with(|| record(input, q));
        }
    }
}

/// Up to `count` items of the bank on `skill`, those not answered since its
/// latest module first (then the least recently... in a fixed, seeded
/// order); `None` when the bank has no item on it.
fn diagnostic_items(input: &RecommendInput<'_>, skill: &str, count: u32) -> Option<Vec<String>> {
    let at = input.index.skill(skill)?;
    let bank = input.index.items_of(at);
    if bank.is_empty() || count == 0 {
        return None;
    }
    let seen = input.evidence.get(skill).map(|e| &e.items);
    let mut order: Vec<(bool, u64, &String)> = bank
        .iter()
        .map(|id| {
            let answered = seen.is_some_and(|s| s.contains(id));
            let draw = (uniform(input.seed, id) * (1u64 << 53) as f64) as u64;
            (answered, draw, id)
        })
        .collect();
    order.sort();
    Some(
        order
            .into_iter()
            .take(count as usize)
            .map(|(_, _, id)| id.clone())
            .collect(),
    )
}

/// A diagnostic recommendation on `skill`.
fn diagnostic(
    input: &RecommendInput<'_>,
    beliefs: &Beliefs<'_>,
    skill: &str,
    target: Target,
    items: Vec<String>,
    reason: String,
) -> Recommendation {
    let minutes = (input.config.item_minutes.max(0.0) * items.len() as f64).ceil();
    Recommendation {
        kind: Kind::Diagnostic,
        module_id: String::new(),
        item_ids: items,
        skill_id: skill.to_string(),
        p_mastered: beliefs.p(skill),
        expected_gain: 0.0,
        duration_minutes: minutes.min(f64::from(u32::MAX)) as u32,
        format: Format::Quiz,
        language: String::new(),
        target,
        score: 0.0,
        language_fallback: false,
        tried_by: 0,
        moved_for: 0,
        reason,
    }
}

/// Every program skill is at or above the threshold: certify when each has
/// its evidence and the joint confidence holds, ask diagnostic items
/// otherwise.
fn certify(input: &RecommendInput<'_>, beliefs: &Beliefs<'_>) -> Recommendations {
    let program: BTreeSet<&str> = input.program_skill_ids.iter().map(String::as_str).collect();
    let joint: f64 = program.iter().map(|s| beliefs.p(s)).product();
    // (items to ask, P) per skill that needs a check: too few distinct
    // items since its latest module, or fresh answers (since the learner's
    // latest module) that do not yet say "mastered" on their own.
    let since = beliefs::latest_module_at(input);
    let bar = beliefs::threshold_log_odds(input.threshold);
    let mut short: Vec<(u32, f64, &str)> = Vec::new();
    for &s in &program {
        let bank = input
            .index
            .skill(s)
            .map_or(0, |at| input.index.items_of(at).len());
        if bank == 0 {
            continue;
        }
        let needed = input.config.certify_items.min(bank as u32);
        let evidence = input.evidence.get(s);
        let have = evidence.map_or(0, |e| e.items.len() as u32);
        let fresh = evidence.map_or(0.0, |e| e.log_odds_after(since, beliefs.params(s)));
        if have < needed || fresh < bar {
            // As many items as right answers would need to close the gap.
            let params = beliefs.params(s);
            let per_right = ((1.0 - params.slip) / params.guess.max(0.01)).ln().max(0.1);
            let rights = ((bar - fresh).max(0.0) / per_right).ceil() as u32;
            let missing = needed.saturating_sub(have).max(rights).max(1);
            short.push((missing, beliefs.p(s), s));
        }
    }
    if short.is_empty() && joint < input.threshold {
        // Enough answers everywhere, but not jointly certain: more answers
        // on the least certain skills.
        short = program
            .iter()
            .filter(|s| diagnostic_items(input, s, 1).is_some())
            .map(|&s| (input.config.diagnostic_items, beliefs.p(s), s))
            .collect();
    }
    if short.is_empty() || input.count == 0 {
        let verifying = !short.is_empty();
        return Recommendations {
            items: Vec::new(),
            status: if verifying {
                Status::Verifying
            } else {
                Status::AllMastered
            },
            shortfall: (input.count > 0).then(|| {
                format!(
                    "every program skill is mastered (P(mastered) ≥ {}) on enough answers, jointly at {joint:.2}",
                    input.threshold
                )
            }),
        };
    }
    // Least certain first, then by id.
    short.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(b.2)));
    let items: Vec<Recommendation> = short
        .iter()
        .take(input.count)
        .filter_map(|&(missing, _, s)| {
            let items = diagnostic_items(input, s, missing.max(1))?;
            let reason = explain::explain_certification(beliefs, s, joint);
            Some(diagnostic(
                input,
                beliefs,
                s,
                Target::CertificationEvidence,
                items,
                reason,
            ))
        })
        .collect();
    let shortfall = (items.len() < input.count).then(|| {
        format!(
            "every program skill looks mastered; {} skill{} still need{} answers before the program is certified (jointly at {joint:.2})",
            short.len(),
            if short.len() == 1 { "" } else { "s" },
            if short.len() == 1 { "s" } else { "" },
        )
    });
    Recommendations {
        items,
        status: Status::Verifying,
        shortfall,
    }
}

/// Why the list is shorter than asked.
fn shortfall(
    input: &RecommendInput<'_>,
    candidates: &BTreeMap<&str, Candidate<'_>>,
    any_language: &BTreeSet<&str>,
    in_language: &BTreeSet<&str>,
    excluded: usize,
    found: usize,
    any_ready: bool,
) -> String {
    let mut problems: Vec<String> = Vec::new();
    let lang_label = if input.language.is_empty() {
        String::new()
    } else {
        format!(" in language '{}'", input.language)
    };
    for (&s, cand) in candidates {
        if cand.target == Target::PrerequisiteReview
            || (any_ready && cand.target == Target::DeepPrerequisite)
        {
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
    if excluded > 0 {
        problems.push(format!(
            "{excluded} suitable module{} excluded by the caller",
            if excluded == 1 { " is" } else { "s are" }
        ));
    }
    if problems.is_empty() {
        let names: Vec<String> = candidates
            .iter()
            .filter(|(_, c)| !(any_ready && c.target == Target::DeepPrerequisite))
            .map(|(s, _)| quoted(input.skills, s))
            .collect();
        problems.push(format!(
            "only {found} recommendation{} for what the learner can learn now ({})",
            if found == 1 { "" } else { "s" },
            join_names(&names)
        ));
    }
    problems.join("; ")
}

#[cfg(test)]
mod tests;
