//! What the signals of one learner in one program depend on, gathered
//! from the store as of a time: the [`SignalInput`] the rules and models
//! read (`domain::risk`).

use std::collections::{BTreeMap, BTreeSet};

use super::super::Engine;
use super::completion_plan;
use crate::domain::activity::ActivityKind;
use crate::domain::bkt::Observation;
use crate::domain::learner::{Enrolment, Micros, Program};
use crate::domain::risk::signals::trace_mastery;
use crate::domain::risk::{ProgramCalendar, SignalInput, SkillAttempt};
use crate::error::Result;

impl Engine {
    /// Gathers what the signals of one learner in one program depend on,
    /// from the store, as of `now`: events up to `now`, declared pauses of
    /// the program begun by then.
    pub fn signal_input(
        &self,
        program: &Program,
        enrolment: &Enrolment,
        now: Micros,
        cohort_median_time_spent_ms: u64,
    ) -> Result<SignalInput> {
        let learner = enrolment.learner_id.as_str();
        let catalog = self.catalog();
        let plan = completion_plan(&catalog, program);
        let modules = plan.modules();
        let attempts = self.skill_history(learner, &program.skill_ids, now)?;
        let activities = self.store.learner_activities(learner)?;
        let mut last_activity_at = None;
        let mut time_spent_ms = 0;
        let mut module_events = Vec::new();
        // First completion of each program module, for the units' times.
        let mut first_done: BTreeMap<&str, Micros> = BTreeMap::new();
        for a in activities.iter().map(|s| &s.activity) {
            if a.occurred_at > now {
                continue;
            }
            last_activity_at = last_activity_at.max(Some(a.occurred_at));
            if modules.contains(a.module_id.as_str()) {
                time_spent_ms += a.time_spent_ms;
                module_events.push((a.occurred_at, a.time_spent_ms));
                if a.kind == ActivityKind::Completed {
                    let t = first_done
                        .entry(a.module_id.as_str())
                        .or_insert(a.occurred_at);
                    *t = (*t).min(a.occurred_at);
                }
            }
        }
        module_events.sort_unstable();
        let unit_completions = unit_completions(&plan, &first_done);
        // Program modules recommended to the learner, and how many of them
        // the learner opened after the first recommendation.
        let mut recommended_modules = 0;
        let mut recommended_started = 0;
        for (module, first) in self.store.recommended(learner)? {
            if first > now || !modules.contains(module.as_str()) {
                continue;
            }
            recommended_modules += 1;
            let opened = activities.iter().any(|a| {
                a.activity.module_id == module
                    && a.activity.occurred_at >= first
                    && a.activity.occurred_at <= now
            });
            if opened {
                recommended_started += 1;
            }
        }
        let pauses = self
            .store
            .learner_pauses(learner)?
            .into_iter()
            .filter(|p| p.covers(&program.id) && p.starts_at <= now)
            .map(|p| (p.starts_at, p.ends_at))
            .collect();
        Ok(SignalInput {
            now,
            calendar: ProgramCalendar {
                starts_at: program.start_date.unwrap_or(0),
                ends_at: program.end_date.unwrap_or(0),
                units: plan.units() as u32,
            },
            enrolled_at: enrolment.enrolled_at,
            last_activity_at,
            units_completed: unit_completions.len() as u32,
            attempts,
            time_spent_ms,
            cohort_median_time_spent_ms,
            recommended_modules,
            recommended_started,
            skill_names: program
                .skill_ids
                .iter()
                .filter_map(|s| {
                    catalog
                        .skills
                        .get(s)
                        .filter(|k| !k.name.is_empty())
                        .map(|k| (s.clone(), k.name.clone()))
                })
                .collect(),
            module_events,
            unit_completions,
            pauses,
        })
    }

    /// A learner's answers on `skills` up to `now`, oldest first, with the
    /// P(mastered) before and after each under the parameters in force.
    pub fn skill_history(
        &self,
        learner: &str,
        skills: &[String],
        now: Micros,
    ) -> Result<Vec<SkillAttempt>> {
        let params = self.params();
        let mut answers: Vec<(Micros, String, &str, Observation)> = Vec::new();
        for skill in skills {
            for (position, obs) in self.store.observations(learner, skill)? {
                if position.occurred_at <= now {
                    answers.push((position.occurred_at, position.attempt_id, skill, obs));
                }
            }
        }
        answers.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        Ok(trace_mastery(
            answers
                .iter()
                .map(|(at, _, skill, obs)| (*skill, *obs, *at)),
            |skill| *params.for_skill(skill),
        ))
    }
}

/// When each unit of `plan` got covered, oldest first, from the first
/// completion time of each module: the times the covered count grew.
fn unit_completions(
    plan: &crate::domain::completion::CompletionPlan,
    first_done: &BTreeMap<&str, Micros>,
) -> Vec<Micros> {
    let mut order: Vec<(Micros, &str)> = first_done.iter().map(|(m, t)| (*t, *m)).collect();
    order.sort_unstable();
    let mut done = BTreeSet::new();
    let mut covered = 0;
    let mut times = Vec::new();
    for (at, module) in order {
        done.insert(module);
        let now_covered = plan.covered(|m| done.contains(m));
        for _ in covered..now_covered {
            times.push(at);
        }
        covered = now_covered;
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::completion::CompletionPlan;

    #[test]
    fn units_are_timed_when_their_first_module_is_done() {
        let plan = CompletionPlan::new(
            ["s1", "s2"],
            [
                ("m1", vec!["s1"]),
                ("m1b", vec!["s1"]),
                ("m12", vec!["s1", "s2"]),
            ],
        );
        // m1 at 10 covers s1; m1b at 20 adds nothing; m12 at 30 covers s2.
        let first = BTreeMap::from([("m1", 10), ("m1b", 20), ("m12", 30)]);
        assert_eq!(unit_completions(&plan, &first), [10, 30]);
        // One module covering both units at once counts both then.
        let first = BTreeMap::from([("m12", 5)]);
        assert_eq!(unit_completions(&plan, &first), [5, 5]);
    }
}
