//! Scoring the modules of the candidate skills (step 2 to 4 of the
//! policy): which a learner may take (language, exclusions, a just-failed
//! module while an alternative is left, a module credibly useless), and
//! each one's drawn gain per minute.

use std::collections::{BTreeMap, BTreeSet};

use super::beliefs::Beliefs;
use super::effects::{ModuleEffect, Posterior, prior_rate, uniform};
use super::record::{SkillRecord, shrink};
use super::{Candidate, RecommendInput, Target};
use crate::domain::catalog::Module;
use crate::domain::catalog_index::primary_subtag;
use crate::domain::hashing::fnv1a;

/// Quantile of a module's rate taken as its optimistic bound: it must reach
/// a third of the best module of the skill for the module to be served at
/// all, and the estimate of a module that just failed for it to count as
/// an alternative. One minus it is the pessimistic bound: above zero, the
/// module credibly teaches.
const USELESS_BOUND: f64 = 0.975;

/// One module scored for the learner.
pub(crate) struct Scored<'m> {
    pub(crate) module: &'m Module,
    pub(crate) target: Target,
    /// Drawn, penalised gain per minute.
    pub(crate) score: f64,
    /// Expected gain with the posterior mean of the effect.
    pub(crate) gain: f64,
    pub(crate) primary: &'m str,
    pub(crate) fallback: bool,
    /// Repeated although it just failed (no untried alternative left).
    pub(crate) repeated: bool,
    pub(crate) others: Vec<&'m str>,
    /// The population's evidence on the module for its primary skill.
    pub(crate) effect: Option<&'m ModuleEffect>,
}

/// What scoring found besides the scores: which candidate skills have
/// content at all, in the learner's language, and how many modules the
/// caller excluded.
pub(super) struct ScoredModules<'m> {
    pub(super) modules: Vec<Scored<'m>>,
    pub(super) any_language: BTreeSet<&'m str>,
    pub(super) in_language: BTreeSet<&'m str>,
    pub(super) excluded: usize,
}

/// What scoring one module needs to know of the request.
struct Scoring<'s, 'a> {
    input: &'s RecommendInput<'a>,
    beliefs: &'s Beliefs<'a>,
    records: &'s BTreeMap<&'a str, SkillRecord<'a>>,
    /// The learner's primary language subtag, lowercase.
    language: String,
    /// Candidate skills with a module in the learner's language.
    in_language: BTreeSet<&'a str>,
    /// Per candidate skill, the best estimated rate among the modules the
    /// learner could do.
    best_rate: BTreeMap<&'a str, f64>,
    /// Candidate skills with a module the learner could do that credibly
    /// teaches (the lower bound of its rate is above zero).
    teaching: BTreeSet<&'a str>,
}

impl<'a> Scoring<'_, 'a> {
    /// Whether module `m` is in the learner's language (or neutral).
    fn matches(&self, m: usize) -> bool {
        let language = self.input.index.module_language(m);
        self.language.is_empty() || language.is_empty() || language == self.language
    }

    /// Whether module `m` may teach skill `s` to this learner: in their
    /// language, or in another when allowed and `s` has none in theirs.
    fn usable(&self, m: usize, s: &str) -> bool {
        self.matches(m) || (self.input.allow_language_fallback && !self.in_language.contains(s))
    }

    /// What is known of `module`'s rate on `s`, its fitted rate shrunk
    /// toward the skill's (`effects::prior_rate`) as its prior.
    fn posterior_of(&self, module: &str, s: &str) -> Posterior {
        let params = self.beliefs.params(s);
        let fitted = self.input.module_learn_rates.get(module).copied();
        let prior = prior_rate(fitted, params.learn);
        self.input
            .effects
            .posterior(module, s, prior, params.guess, params.slip)
    }

    /// Whether skill `s` has a module usable, not yet failed by this
    /// learner on it, and that may teach as well as `except`: an
    /// alternative that forbids repeating `except` right after it failed.
    /// One the population has shown to teach less (even its optimistic
    /// bound is below `except`'s estimate) is no alternative: switching to
    /// it would trade a failure for a worse module. An untried one, whose
    /// bound is wide, always is.
    fn untried_alternatives(&self, s: &str, except: &str) -> bool {
        let index = self.input.index;
        let Some(at) = index.skill(s) else {
            return false;
        };
        let bar = self.posterior_of(except, s).mean();
        index.modules_of(at).iter().any(|&m| {
            let id = self.input.modules[m].id.as_str();
            id != except
                && self.usable(m, s)
                && !self.input.exclude.contains(id)
                && !self.records[s].module_failures.contains_key(id)
                && self.posterior_of(id, s).sample(USELESS_BOUND) >= bar
        })
    }

    /// Fills `best_rate` and `teaching` from the modules the learner could
    /// do.
    fn find_best_rates(
        &mut self,
        reachable: &[usize],
        candidates: &BTreeMap<&'a str, Candidate<'a>>,
    ) {
        let index = self.input.index;
        let mut best_rate: BTreeMap<&'a str, f64> = BTreeMap::new();
        for &at in reachable {
            let id = self.input.modules[at].id.as_str();
            if self.input.exclude.contains(id) {
                continue;
            }
            for &s in index.module_skills(at) {
                let s = index.skill_id(s);
                if candidates.contains_key(s) && self.usable(at, s) {
                    let post = self.posterior_of(id, s);
                    if post.above_zero_at(1.0 - USELESS_BOUND) {
                        self.teaching.insert(s);
                    }
                    let mean = post.mean();
                    let best = best_rate.entry(s).or_insert(0.0);
                    *best = best.max(mean);
                }
            }
        }
        self.best_rate = best_rate;
    }

    /// A module credibly far below the best of skill `s` (its optimistic
    /// bound under a third of it): it works for nobody and is not served.
    ///
    /// Only when some module of the skill credibly teaches: a third of
    /// nothing is nothing. When every estimate is near or below zero (the
    /// learners at hand are blocked, or one learner's failures sank a
    /// module early), the estimates sit under the rate's floor, where the
    /// comparison only says "a little lower" and wrote off modules that
    /// work. In `spoc simulate --world irt --seed 63`, a 22-minute podcast
    /// that teaches was written off after one learner's failures, and an
    /// 8-minute near-useless video, the shortest, was served 64,111 times:
    /// 47.5% of all modules served (4.7% with this rule; mastery 91.6% →
    /// 99.0%).
    fn useless(&self, module: &str, s: &str) -> bool {
        if !self.teaching.contains(s) {
            return false;
        }
        self.posterior_of(module, s).sample(USELESS_BOUND)
            < self.best_rate.get(s).map_or(0.0, |b| b / 3.0)
    }

    /// Module `at` scored over the candidate skills it teaches (not
    /// checked, usable, not useless, not a just-failed one with an
    /// alternative left); `None` when it teaches none of them.
    fn score(
        &self,
        at: usize,
        candidates: &BTreeMap<&'a str, Candidate<'a>>,
        checked: &BTreeSet<&str>,
    ) -> Option<Scored<'a>> {
        let (input, index) = (self.input, self.input.index);
        let m = &input.modules[at];
        let mut best: Option<(Target, f64, &'a str)> = None;
        let (mut score_gain, mut gain) = (0.0, 0.0);
        let (mut fallback, mut repeated) = (false, false);
        let mut taught: Vec<&'a str> = Vec::new();
        for &s in index.module_skills(at) {
            let s = index.skill_id(s);
            let Some(cand) = candidates.get(s) else {
                continue;
            };
            if checked.contains(s) || !self.usable(at, s) || self.useless(&m.id, s) {
                continue;
            }
            let rec = &self.records[s];
            if rec.just_failed == Some(m.id.as_str()) {
                if self.untried_alternatives(s, &m.id) {
                    continue;
                }
                repeated = true;
            }
            let posterior = self.posterior_of(&m.id, s);
            let drawn = if input.config.explore {
                posterior.sample(uniform(input.seed ^ fnv1a(s), &m.id))
            } else {
                posterior.mean()
            };
            let p = self.beliefs.p_for_gain(s);
            let fmt_fails = rec.format_failures.get(&m.format).copied().unwrap_or(0);
            let mod_fails = rec.module_failures.get(m.id.as_str()).copied().unwrap_or(0);
            let penalty = shrink(input.config.format_failure_penalty, fmt_fails)
                * shrink(input.config.module_failure_penalty, mod_fails);
            let g = (1.0 - p) * drawn * penalty;
            gain += (1.0 - p) * posterior.mean();
            score_gain += g;
            fallback |= !self.matches(at);
            let key = (cand.target, g, s);
            let better = match best {
                None => true,
                Some((t, bg, bs)) => (key.0, -key.1, key.2) < (t, -bg, bs),
            };
            if better {
                best = Some(key);
            }
            taught.push(s);
        }
        let (target, _, primary) = best?;
        let minutes = f64::from(m.duration_minutes.max(1)) + input.config.check_minutes.max(0.0);
        Some(Scored {
            module: m,
            target,
            score: score_gain / minutes,
            gain,
            primary,
            fallback,
            repeated,
            others: taught.into_iter().filter(|s| *s != primary).collect(),
            effect: input.effects.get(&m.id, primary),
        })
    }
}

/// Scores every module teaching a candidate skill not already checked.
pub(super) fn score_modules<'a>(
    input: &RecommendInput<'a>,
    beliefs: &Beliefs<'a>,
    candidates: &BTreeMap<&'a str, Candidate<'a>>,
    records: &BTreeMap<&'a str, SkillRecord<'a>>,
    checked: &BTreeSet<&str>,
) -> ScoredModules<'a> {
    let index = input.index;
    let mut scoring = Scoring {
        input,
        beliefs,
        records,
        language: primary_subtag(input.language).to_ascii_lowercase(),
        in_language: BTreeSet::new(),
        best_rate: BTreeMap::new(),
        teaching: BTreeSet::new(),
    };
    let mut reachable: Vec<usize> = Vec::new();
    let mut any_language: BTreeSet<&str> = BTreeSet::new();
    for &s in candidates.keys() {
        let Some(at) = index.skill(s) else {
            continue;
        };
        for &m in index.modules_of(at) {
            reachable.push(m);
            any_language.insert(s);
            if scoring.matches(m) {
                scoring.in_language.insert(s);
            }
        }
    }
    reachable.sort_unstable();
    reachable.dedup();
    scoring.find_best_rates(&reachable, candidates);
    let mut modules = Vec::new();
    let mut excluded = 0usize;
    for at in reachable {
        let Some(scored) = scoring.score(at, candidates, checked) else {
            continue;
        };
        if input.exclude.contains(&scored.module.id) {
            excluded += 1;
            continue;
        }
        modules.push(scored);
    }
    ScoredModules {
        modules,
        any_language,
        in_language: scoring.in_language,
        excluded,
    }
}
