//! What the learner's own history says about a skill: failures per module
//! and format, the module that just failed, the streak of failures.

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
    /// Failures since the last success or review of a prerequisite.
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

/// Reads the history for one skill, newest entries deciding the streak.
pub(super) fn record<'h>(input: &RecommendInput<'h>, skill: &str) -> SkillRecord<'h> {
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
