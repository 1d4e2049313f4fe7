//! P(mastered) of every skill as the policy reads it, and the skills whose
//! mastery the prerequisite graph contradicts.

use std::collections::{BTreeMap, BTreeSet};

use super::RecommendInput;
use crate::domain::bkt::BktParams;

/// P(mastered) of every skill as the policy sees it, computed once per call
/// for every skill number of the catalog index.
pub(super) struct Beliefs<'a> {
    pub(super) input: &'a RecommendInput<'a>,
    /// P(mastered) per skill number, clamped to [0, 1].
    p: Vec<f64>,
    /// Whether each skill number counts as mastered.
    mastered: Vec<bool>,
    /// Skills at or above the threshold whose evidence the prerequisite
    /// graph rules out, each with the prerequisite that was found unmastered
    /// after the skill's latest module (see [`doubtful`]).
    pub(super) doubtful: BTreeMap<&'a str, &'a str>,
    /// Skills at or above the threshold whose answers since the learner's
    /// latest module, taken alone, say "not mastered" as surely as the
    /// threshold asks for the opposite (a skill forgotten, or a belief
    /// inflated by the learning transitions of many answers).
    pub(super) refuted: BTreeSet<&'a str>,
}

/// When the learner's latest module was completed: answers after it are
/// the fresh ones.
pub(super) fn latest_module_at(input: &RecommendInput<'_>) -> i64 {
    input.history.last().map_or(i64::MIN, |h| h.completed_at)
}

/// The log-odds the threshold stands for.
pub(super) fn threshold_log_odds(threshold: f64) -> f64 {
    let t = threshold.clamp(0.5, 0.999_999);
    (t / (1.0 - t)).ln()
}

impl<'a> Beliefs<'a> {
    pub(super) fn new(input: &'a RecommendInput<'a>) -> Self {
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
        let since = latest_module_at(input);
        let bar = threshold_log_odds(input.threshold);
        let refuted: BTreeSet<&'a str> = input
            .evidence
            .iter()
            .filter(|(s, e)| {
                index.skill(s).is_some_and(|at| mastered[at])
                    && e.log_odds_after(since, params_of(input, s)) <= -bar
            })
            .map(|(s, _)| s.as_str())
            .collect();
        for s in doubtful.keys().chain(refuted.iter()) {
            if let Some(at) = index.skill(s) {
                mastered[at] = false;
            }
        }
        Beliefs {
            input,
            p,
            mastered,
            doubtful,
            refuted,
        }
    }

    pub(super) fn params(&self, skill: &str) -> &BktParams {
        params_of(self.input, skill)
    }

    pub(super) fn p(&self, skill: &str) -> f64 {
        match self.input.index.skill(skill) {
            Some(at) => self.p[at],
            None => clamp_p(match self.input.mastery.get(skill) {
                Some(p) => *p,
                None => self.params(skill).prior,
            }),
        }
    }

    pub(super) fn mastered_at(&self, at: usize) -> bool {
        self.mastered[at]
    }

    pub(super) fn mastered(&self, skill: &str) -> bool {
        match self.input.index.skill(skill) {
            Some(at) => self.mastered[at],
            None => self.p(skill) >= self.input.threshold && !self.doubtful.contains_key(skill),
        }
    }

    /// Whether every prerequisite of skill number `at` is mastered (true for
    /// a skill unknown to the catalog: it has none).
    pub(super) fn prereqs_mastered_at(&self, at: usize) -> bool {
        let index = self.input.index;
        !index.is_known(at) || index.prerequisites(at).iter().all(|&q| self.mastered[q])
    }

    /// P(mastered) used for the expected gain: a doubtful skill's evidence
    /// is void, so it counts as unobserved (its prior).
    pub(super) fn p_for_gain(&self, skill: &str) -> f64 {
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
/// concerned; a re-check (a newer module on `s`, or enough answers on `s`
/// after the relearning of `q`) clears the doubt.
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
        // Answers on `s` after the relearning of `q` (a diagnostic check)
        // are evidence gathered with `q` known: the doubt is lifted.
        let checked_after = |i: usize| {
            let relearnt = input.history[i].completed_at;
            input
                .evidence
                .get(s)
                .map_or(0, |e| e.answers_after(relearnt))
                >= input.config.diagnostic_items.max(1) as usize
        };
        let late = skill
            .prerequisite_ids
            .iter()
            .filter_map(|q| last_unmastered.get_key_value(q.as_str()))
            .filter(|(_, i)| **i > seen && !checked_after(**i))
            .map(|(q, _)| *q)
            .min();
        if let Some(q) = late {
            out.insert(s, q);
        }
    }
    out
}
