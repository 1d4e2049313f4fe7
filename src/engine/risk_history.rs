//! Training data for the risk model from a deployment's own history.
//!
//! A learner of a program that has ended is a labelled example: did they
//! complete the program (`domain::completion`) by its end date? Their signals are
//! computed as of the program's midpoint, when a trainer could still act,
//! from what the store held then (attempts, activity, recommendations dated
//! after the midpoint are ignored by `signal_input`), so the label does not
//! leak into the features.

use std::collections::BTreeSet;

use super::Engine;
use super::alerts::completion_plan;
use crate::domain::activity::ActivityKind;
use crate::domain::learner::Micros;
use crate::domain::risk::LearnerSignals;
use crate::error::Result;

impl Engine {
    /// One `(signals at midpoint, did not complete)` sample per learner of
    /// every program whose `end_date` is before `now` and that has modules
    /// (completion as in `domain::completion`).
    pub fn risk_history(&self, now: Micros) -> Result<Vec<(LearnerSignals, bool)>> {
        let catalog = self.catalog();
        let mut samples = Vec::new();
        let (programs, _) = self.store().list_programs(None, usize::MAX)?;
        for program in programs {
            let (Some(start), Some(end)) = (program.start_date, program.end_date) else {
                continue;
            };
            if end >= now || end <= start {
                continue;
            }
            let midpoint = start + (end - start) / 2;
            let plan = completion_plan(&catalog, &program);
            if plan.units() == 0 {
                continue; // nothing to complete: no label to learn from
            }
            let (enrolments, _) = self
                .store()
                .program_enrolments(&program.id, None, usize::MAX)?;
            for enrolment in enrolments {
                let completed: BTreeSet<String> = self
                    .store()
                    .learner_activities(&enrolment.learner_id)?
                    .into_iter()
                    .map(|s| s.activity)
                    .filter(|a| a.kind == ActivityKind::Completed && a.occurred_at <= end)
                    .map(|a| a.module_id)
                    .collect();
                let dropped = plan.covered(|m| completed.contains(m)) < plan.units();
                let input = self.signal_input(&program, &enrolment, midpoint, 0)?;
                samples.push((crate::domain::risk::signals(&input), dropped));
            }
        }
        Ok(samples)
    }
}
