//! What the learner's own history says about a skill: failures per module
//! and format, the module that just failed, the streak of modules without
//! progress.

use std::collections::BTreeMap;

use super::{PolicyConfig, RecommendInput, SkillChange};
use crate::domain::catalog::Format;

#[derive(Default)]
pub(super) struct SkillRecord<'h> {
    /// Failures per format, over the whole history given.
    pub(super) format_failures: BTreeMap<Format, u32>,
    /// Failures per module id.
    pub(super) module_failures: BTreeMap<&'h str, u32>,
    /// The module of the latest entry on this skill, when it failed.
    pub(super) just_failed: Option<&'h str>,
    /// Modules without progress (the skill neither reached the threshold
    /// nor a level above any it had reached) since it last progressed or a
    /// prerequisite was last taught.
    pub(super) streak: u32,
}

/// The posterior multiplier of a success rate after `failures` failures and
/// no success, under a Beta prior whose strength makes one failure multiply
/// the rate by `after_one`: with strength κ = after_one / (1 − after_one)
/// pseudo-attempts, the posterior mean is the prior mean times κ / (κ + n).
/// It falls harmonically, not geometrically: a handful of failures of a
/// module that teaches with probability 0.3 is not unusual, and should not
/// send the learner to a module ten times longer.
pub(super) fn shrink(after_one: f64, failures: u32) -> f64 {
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

/// Reads the history for one skill. The streak starts after a
/// prerequisite of it was last taught (a review restarts the count).
pub(super) fn record<'h>(input: &RecommendInput<'h>, skill: &str) -> SkillRecord<'h> {
    let mut rec = SkillRecord::default();
    let prereqs: &[String] = input
        .skills
        .get(skill)
        .map_or(&[], |s| s.prerequisite_ids.as_slice());
    let streak_from = input
        .history
        .iter()
        .rposition(|entry| {
            !entry.changes.iter().any(|c| c.skill_id == skill)
                && entry
                    .changes
                    .iter()
                    .any(|c| prereqs.iter().any(|q| q == &c.skill_id))
        })
        .map_or(0, |at| at + 1);
    // The highest P(mastered) the skill has reached within the streak's
    // span: with noisy answers P moves up and down while the skill stays
    // where it is, so only a level not reached before counts as progress
    // (a rise back to where it was would restart the count forever).
    let mut high: Option<f64> = None;
    for (at, entry) in input.history.iter().enumerate() {
        let Some(change) = entry.changes.iter().find(|c| c.skill_id == skill) else {
            continue;
        };
        let fail = failed(change, &input.config, input.threshold);
        rec.just_failed = fail.then_some(entry.module_id.as_str());
        if fail {
            *rec.module_failures
                .entry(entry.module_id.as_str())
                .or_default() += 1;
            if let Some(m) = input.index.module(&entry.module_id) {
                *rec.format_failures
                    .entry(input.modules[m].format)
                    .or_default() += 1;
            }
        }
        if at < streak_from {
            continue;
        }
        let best = high.unwrap_or(change.before);
        let progressed =
            change.after >= input.threshold || change.after >= best + input.config.min_progress;
        high = Some(best.max(change.after));
        rec.streak = if progressed { 0 } else { rec.streak + 1 };
    }
    rec
}
