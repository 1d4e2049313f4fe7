//! Training data for the alert models from a deployment's own history.
//!
//! A learner of a program that has ended is a run of labelled examples:
//! observed every week of the program (from what the store held then:
//! events after the observation time are ignored by `signal_input`, so
//! the label does not leak into the features), while still in it (not yet
//! completed, seen again later), with two labels from what happened next:
//!
//! - *stopping*: the learner never completed the program and was last
//!   seen within 21 days of the observation, more than a week before the
//!   end (a learner seen in the last week ran out of time, not stopped);
//! - *behind schedule*: the learner did not complete the program
//!   (`domain::completion`) by its end date.

use std::collections::BTreeMap;

use super::Engine;
use super::alerts::completion_plan;
use crate::domain::activity::ActivityKind;
use crate::domain::learner::Micros;
use crate::domain::risk::features;
use crate::domain::risk::model::Sample;
use crate::domain::risk::signals::MICROS_PER_DAY;
use crate::domain::risk::training::{STOP_HORIZON_DAYS, TrainingSet};
use crate::error::Result;

/// Days between two observations of a learner.
const OBSERVE_EVERY_DAYS: i64 = 7;

impl Engine {
    /// Labelled examples of both questions from every program whose
    /// `end_date` is before `now` and that has modules.
    pub fn risk_history(&self, now: Micros) -> Result<TrainingSet> {
        let catalog = self.catalog();
        let mut set = TrainingSet::default();
        let (programs, _) = self.store().list_programs(None, usize::MAX)?;
        let day = MICROS_PER_DAY;
        for program in programs {
            let (Some(start), Some(end)) = (program.start_date, program.end_date) else {
                continue;
            };
            if end >= now || end <= start {
                continue;
            }
            let plan = completion_plan(&catalog, &program);
            if plan.units() == 0 {
                continue; // nothing to complete: no label to learn from
            }
            let (enrolments, _) = self
                .store()
                .program_enrolments(&program.id, None, usize::MAX)?;
            for enrolment in enrolments {
                let learner = enrolment.learner_id.as_str();
                let activities = self.store().learner_activities(learner)?;
                let mut first_done: BTreeMap<String, Micros> = BTreeMap::new();
                for a in activities.iter().map(|s| &s.activity) {
                    if a.kind == ActivityKind::Completed {
                        let t = first_done
                            .entry(a.module_id.clone())
                            .or_insert(a.occurred_at);
                        *t = (*t).min(a.occurred_at);
                    }
                }
                let done: BTreeMap<&str, Micros> =
                    first_done.iter().map(|(m, t)| (m.as_str(), *t)).collect();
                let completed_at = plan.completed_at(&done);
                let completed = completed_at.is_some_and(|c| c <= end);
                let whole = self.signal_input(&program, &enrolment, end, 0)?;
                let last_seen = whole
                    .attempts
                    .iter()
                    .map(|a| a.at)
                    .chain(whole.module_events.iter().map(|e| e.0))
                    .max();
                let stopped_at = last_seen.filter(|l| !completed && *l < end - 7 * day);
                let group = learner.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let mut at = start + OBSERVE_EVERY_DAYS * day;
                while at <= end - OBSERVE_EVERY_DAYS * day {
                    let active =
                        completed_at.is_none_or(|c| c >= at) && last_seen.is_some_and(|l| l >= at);
                    if active {
                        let input = self.signal_input(&program, &enrolment, at, 0)?;
                        let paused = input.pauses.iter().any(|&(s, e)| s <= at && at < e);
                        let f = features(&input);
                        let horizon = (STOP_HORIZON_DAYS * day as f64) as Micros;
                        if !paused {
                            set.stopping.push(Sample {
                                features: f.clone(),
                                label: stopped_at.is_some_and(|s| s >= at && s < at + horizon),
                                group,
                            });
                        }
                        set.behind_schedule.push(Sample {
                            features: f,
                            label: !completed,
                            group,
                        });
                    }
                    at += OBSERVE_EVERY_DAYS * day;
                }
            }
        }
        Ok(set)
    }
}
