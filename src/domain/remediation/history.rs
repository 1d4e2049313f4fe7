//! What the policy reads of a learner's past: the modules done and the
//! answers given, and the seed of its draws.
//!
//! The engine builds these from stored events, the simulator from its own
//! run; both call the functions here, so that the same events give the
//! policy the same view (and `spoc simulate-grpc`, which plays the
//! simulator's learners through the service, finds the same decisions as
//! `spoc simulate`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::bkt::BktParams;
use crate::domain::hashing::{fnv1a, splitmix};

/// How many completed modules the policy looks back on.
pub const HISTORY_DEPTH: usize = 20;

/// Latest answers per skill the policy reads ([`SkillEvidence`]).
pub const EVIDENCE_DEPTH: usize = 16;

/// How one skill moved during one module the learner did: the evidence the
/// policy uses to tell that a module "failed".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillChange {
    /// The skill.
    pub skill_id: String,
    /// P(mastered) just before the module.
    pub before: f64,
    /// P(mastered) after it: just before the next module on the skill, or
    /// now for the latest (see [`fill_after`]).
    pub after: f64,
}

/// One module the learner did recently, with what it did to mastery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleOutcome {
    /// The module done.
    pub module_id: String,
    /// When it was completed (any clock shared with
    /// [`SkillEvidence::recent`]).
    pub completed_at: i64,
    /// The skills it targeted, with P(mastered) before and after.
    pub changes: Vec<SkillChange>,
}

/// Sets each [`SkillChange::after`] of `history` (oldest first) to the
/// skill's P(mastered) before the next module on it, or `current(skill)`
/// for the latest: what the module, its quiz and any check after it left.
/// Only snapshots taken at module completions are needed, which is what
/// the engine stores.
pub fn fill_after(history: &mut [ModuleOutcome], current: impl Fn(&str) -> f64) {
    let mut next: BTreeMap<String, f64> = BTreeMap::new();
    for done in history.iter_mut().rev() {
        for change in &mut done.changes {
            change.after = match next.get(&change.skill_id) {
                Some(p) => *p,
                None => current(&change.skill_id),
            };
            next.insert(change.skill_id.clone(), change.before);
        }
    }
}

/// When the latest module of `history` teaching `skill` was completed.
pub fn latest_module_on(history: &[ModuleOutcome], skill: &str) -> Option<i64> {
    history
        .iter()
        .rev()
        .find(|done| done.changes.iter().any(|c| c.skill_id == skill))
        .map(|done| done.completed_at)
}

/// What the learner answered on one skill: the distinct items since its
/// latest module (or ever, for a skill never taught), and the latest
/// answers whatever the module, for checks and certification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkillEvidence {
    /// Distinct items among the latest answers (at most
    /// [`EVIDENCE_DEPTH`]) given since the skill's latest module in the
    /// history read (all of them when it holds none).
    pub items: BTreeSet<String>,
    /// The latest answers on the skill, oldest first: when (the clock of
    /// [`ModuleOutcome::completed_at`]) and whether right.
    pub recent: Vec<(i64, bool)>,
}

/// One answer as [`SkillEvidence::from_answers`] reads it: when, whether
/// right, on which item.
pub type AnswerSeen<'a> = (i64, bool, &'a str);

impl SkillEvidence {
    /// The evidence of a skill from its answers (oldest first; only the
    /// latest [`EVIDENCE_DEPTH`] are read) and the time of its latest
    /// module, if `history` knows one: items answered after it count as
    /// fresh.
    pub fn from_answers(answers: &[AnswerSeen<'_>], latest_module: Option<i64>) -> Self {
        let tail = &answers[answers.len().saturating_sub(EVIDENCE_DEPTH)..];
        let since = latest_module.unwrap_or(i64::MIN);
        SkillEvidence {
            items: tail
                .iter()
                .filter(|(at, _, _)| *at > since)
                .map(|(_, _, item)| item.to_string())
                .collect(),
            recent: tail.iter().map(|(at, right, _)| (*at, *right)).collect(),
        }
    }

    /// Answers given after `time`.
    pub fn answers_after(&self, time: i64) -> usize {
        self.recent.iter().filter(|(t, _)| *t > time).count()
    }

    /// Log-odds that the skill is mastered from the answers after `time`
    /// alone (an even prior, no learning between answers): what they say
    /// whatever the belief accumulated before.
    pub fn log_odds_after(&self, time: i64, params: &BktParams) -> f64 {
        let g = params.guess.clamp(0.01, 0.99);
        let s = params.slip.clamp(0.01, 0.99);
        self.recent
            .iter()
            .filter(|(t, _)| *t > time)
            .map(|(_, right)| {
                if *right {
                    ((1.0 - s) / g).ln()
                } else {
                    (s / (1.0 - g)).ln()
                }
            })
            .sum()
    }
}

/// The seed of the policy's draws for a learner: stable while nothing
/// changes (the same question gets the same answer), new after each module
/// and each answer, so that a check asked again draws other items.
pub fn draw_seed(
    learner_id: &str,
    history: &[ModuleOutcome],
    evidence: &BTreeMap<String, SkillEvidence>,
) -> u64 {
    let last_module = history.last().map_or(0, |d| d.completed_at);
    let mut h = fnv1a(learner_id);
    for x in [last_module as u64, history.len() as u64] {
        h = splitmix(h ^ x);
    }
    // Every answer read, not just the latest time: an answer given at the
    // same instant as the previous one (a batch, whole seconds) still
    // shifts a skill's latest answers.
    for (at, right) in evidence.values().flat_map(|e| &e.recent) {
        h = splitmix(h ^ (*at as u64) ^ u64::from(*right) << 63);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(module: &str, at: i64, before: &[(&str, f64)]) -> ModuleOutcome {
        ModuleOutcome {
            module_id: module.into(),
            completed_at: at,
            changes: before
                .iter()
                .map(|(s, p)| SkillChange {
                    skill_id: s.to_string(),
                    before: *p,
                    after: f64::NAN,
                })
                .collect(),
        }
    }

    #[test]
    fn after_is_the_next_snapshot_of_the_skill_or_now() {
        let mut history = vec![
            done("m1", 1, &[("a", 0.2), ("b", 0.3)]),
            done("m2", 2, &[("a", 0.5)]),
            done("m3", 3, &[("b", 0.4)]),
        ];
        fill_after(&mut history, |s| if s == "a" { 0.9 } else { 0.6 });
        let afters: Vec<Vec<f64>> = history
            .iter()
            .map(|h| h.changes.iter().map(|c| c.after).collect())
            .collect();
        assert_eq!(afters, vec![vec![0.5, 0.4], vec![0.9], vec![0.6]]);
        assert_eq!(latest_module_on(&history, "a"), Some(2));
        assert_eq!(latest_module_on(&history, "c"), None);
    }

    #[test]
    fn items_count_after_the_latest_module_and_within_the_depth() {
        let ids: Vec<String> = (0..20).map(|i| format!("i{}", i % 18)).collect();
        let answers: Vec<AnswerSeen<'_>> = ids
            .iter()
            .enumerate()
            .map(|(t, id)| (t as i64, t % 2 == 0, id.as_str()))
            .collect();
        let never_taught = SkillEvidence::from_answers(&answers, None);
        assert_eq!(never_taught.recent.len(), EVIDENCE_DEPTH);
        assert_eq!(never_taught.recent[0], (4, true));
        // The 16 latest answers name items i4..i17 and i0, i1 (t = 18, 19).
        assert_eq!(never_taught.items.len(), 16);
        let taught = SkillEvidence::from_answers(&answers, Some(16));
        let items: Vec<&str> = taught.items.iter().map(String::as_str).collect();
        assert_eq!(items, ["i0", "i1", "i17"]);
        assert_eq!(taught.answers_after(16), 3);
    }

    #[test]
    fn the_seed_changes_with_a_module_or_an_answer_only() {
        let history = vec![done("m1", 10, &[("a", 0.2)])];
        let evidence_of = |answers: &[AnswerSeen<'_>]| {
            let mut evidence = BTreeMap::new();
            let a = SkillEvidence::from_answers(answers, Some(10));
            evidence.insert("a".to_string(), a);
            evidence
        };
        let evidence = evidence_of(&[(11, true, "i1")]);
        let seed = draw_seed("l", &history, &evidence);
        // Nothing new: the same seed (a rebuilt view included).
        assert_eq!(
            seed,
            draw_seed("l", &history.clone(), &evidence_of(&[(11, true, "i1")]))
        );
        assert_ne!(seed, draw_seed("k", &history, &evidence));
        // A module alone.
        let more = vec![history[0].clone(), done("m2", 20, &[("b", 0.2)])];
        assert_ne!(seed, draw_seed("l", &more, &evidence));
        // An answer alone, also at the same instant as the previous one.
        let later = evidence_of(&[(11, true, "i1"), (12, false, "i2")]);
        assert_ne!(seed, draw_seed("l", &history, &later));
        let same_time = evidence_of(&[(11, true, "i1"), (11, true, "i2")]);
        assert_ne!(seed, draw_seed("l", &history, &same_time));
    }
}
