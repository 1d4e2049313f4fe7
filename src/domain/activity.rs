//! Module activity: what a learner started and completed, and the mastery
//! snapshot that lets remediation tell whether a module worked.

use serde::{Deserialize, Serialize};

use super::learner::Micros;
use super::remediation::{ModuleOutcome, SkillChange, fill_after};

/// What happened to a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityKind {
    /// The learner opened the module.
    Started,
    /// The learner finished the module.
    Completed,
}

/// One module event of one learner, as the LMS reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Caller-chosen idempotency key.
    pub event_id: String,
    /// The learner.
    pub learner_id: String,
    /// The module.
    pub module_id: String,
    /// The program it was done in; empty when unknown.
    pub program_id: String,
    /// Started or completed.
    pub kind: ActivityKind,
    /// When it happened.
    pub occurred_at: Micros,
    /// Time spent in the module, in milliseconds.
    pub time_spent_ms: u64,
}

/// An activity as stored: the event plus P(mastered) of the module's skills
/// when it was recorded, i.e. before the quiz that follows the module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredActivity {
    /// The event.
    pub activity: Activity,
    /// (skill id, P(mastered)) of each skill the module teaches, at record time.
    pub mastery_before: Vec<(String, f64)>,
}

/// Turns a learner's completed modules (oldest first) into the outcomes the
/// remediation policy reads: for each module and skill, P(mastered) before
/// it, and after it (see [`fill_after`]: the next snapshot of that skill,
/// or `current` for the latest one).
pub fn outcomes(completed: &[StoredActivity], current: impl Fn(&str) -> f64) -> Vec<ModuleOutcome> {
    let mut history: Vec<ModuleOutcome> = completed
        .iter()
        .map(|done| ModuleOutcome {
            module_id: done.activity.module_id.clone(),
            completed_at: done.activity.occurred_at,
            changes: done
                .mastery_before
                .iter()
                .map(|(skill, before)| SkillChange {
                    skill_id: skill.clone(),
                    before: *before,
                    after: *before,
                })
                .collect(),
        })
        .collect();
    fill_after(&mut history, current);
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(module: &str, before: &[(&str, f64)]) -> StoredActivity {
        StoredActivity {
            activity: Activity {
                event_id: format!("e-{module}"),
                learner_id: "l".into(),
                module_id: module.into(),
                program_id: String::new(),
                kind: ActivityKind::Completed,
                occurred_at: 0,
                time_spent_ms: 0,
            },
            mastery_before: before.iter().map(|(s, p)| (s.to_string(), *p)).collect(),
        }
    }

    #[test]
    fn after_is_the_next_snapshot_of_the_skill_or_the_current_value() {
        let history = [
            done("m1", &[("a", 0.2)]),
            done("m2", &[("b", 0.5)]),
            done("m3", &[("a", 0.3)]),
        ];
        let out = outcomes(&history, |s| if s == "a" { 0.9 } else { 0.6 });
        assert_eq!(
            out[0].changes[0].after, 0.3,
            "m1's effect on a is read at m3"
        );
        assert_eq!(
            out[1].changes[0].after, 0.6,
            "m2's effect on b is the current value"
        );
        assert_eq!(out[2].changes[0].after, 0.9);
    }
}
