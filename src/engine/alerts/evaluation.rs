//! Evaluation: what the signals of a learner say now, and the alert
//! changes it makes (raise, update, clear), one learner at a time or in a
//! full pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use super::super::{Engine, now_micros};
use super::hub::{Publication, PublicationGroup};
use super::{completion_plan, thresholds};
use crate::domain::alerts::{
    Alert, AlertChange, AlertStatus, RESOLVED_BY_ENGINE, alert_id, reconcile,
};
use crate::domain::bkt::Observation;
use crate::domain::learner::{Enrolment, Micros, Program};
use crate::domain::reports::quantile;
use crate::domain::risk::signals::trace_mastery;
use crate::domain::risk::{ProgramCalendar, SignalInput, SkillAttempt, evaluate};
use crate::error::{Error, Result};

impl Engine {
    /// Evaluates every learner enrolled in any program: the periodic pass.
    /// Refreshes the cohort medians of time spent first. CPU-heavy: runs
    /// on its own thread.
    pub fn evaluate_all_alerts(&self) -> Result<usize> {
        let now = now_micros();
        let (programs, _) = self.store.list_programs(None, usize::MAX)?;
        let mut learners = BTreeSet::new();
        let mut medians = HashMap::new();
        let catalog = self.catalog();
        for program in &programs {
            let (enrolments, _) = self
                .store
                .program_enrolments(&program.id, None, usize::MAX)?;
            let plan = completion_plan(&catalog, program);
            let modules = plan.modules();
            let members = self.cohort_members(&program.id, true)?;
            let mut times: HashMap<String, Vec<f64>> = HashMap::new();
            for e in &enrolments {
                if self.hub().stop.load(Ordering::Relaxed) {
                    return Ok(0);
                }
                let spent: u64 = self
                    .store
                    .learner_activities(&e.learner_id)?
                    .iter()
                    .filter(|a| modules.contains(a.activity.module_id.as_str()))
                    .map(|a| a.activity.time_spent_ms)
                    .sum();
                let cohort = members.get(&e.learner_id).cloned().unwrap_or_default();
                times.entry(cohort).or_default().push(spent as f64);
                times.entry(String::new()).or_default().push(spent as f64);
                learners.insert(e.learner_id.clone());
            }
            for (cohort, mut values) in times {
                values.sort_by(f64::total_cmp);
                medians.insert(
                    (program.id.clone(), cohort),
                    quantile(&values, 0.5).round() as u64,
                );
            }
        }
        *self.hub().medians.write().expect("medians lock") = medians;
        self.evaluate_in_groups(learners.iter().map(String::as_str), now, |_, err| Err(err))?;
        Ok(learners.len())
    }

    /// Evaluates `learners`, publishing their changes per [`PublicationGroup`] (one
    /// flush for many learners) and at the end, until a stop. `failed`
    /// decides what an evaluation error does: end the run (`Err`) or not.
    /// A failed publication keeps the changes for the next one; the last
    /// one's error is returned.
    pub(super) fn evaluate_in_groups<'a>(
        &self,
        learners: impl IntoIterator<Item = &'a str>,
        now: Micros,
        mut failed: impl FnMut(&str, Error) -> Result<()>,
    ) -> Result<()> {
        let mut group = PublicationGroup::new();
        let mut outcome = Ok(());
        for learner in learners {
            if self.hub().stop.load(Ordering::Relaxed) {
                break;
            }
            if let Err(err) = self.evaluate_learner_in(learner, now, Publication::WithGroup) {
                outcome = failed(learner, err);
                if outcome.is_err() {
                    break;
                }
            }
            if group.full() {
                if let Err(err) = self.publish_pending() {
                    tracing::error!(error = %err, "alert publication failed");
                }
                group = PublicationGroup::new();
            }
        }
        let published = self.publish_pending();
        if let (Err(_), Err(also)) = (&outcome, &published) {
            tracing::error!(error = %also, "alert publication failed");
        }
        outcome.and(published)
    }

    /// Evaluates one learner in each program they are enrolled in and
    /// writes the resulting alert changes.
    pub fn evaluate_learner(&self, learner: &str, now: Micros) -> Result<()> {
        self.evaluate_learner_in(learner, now, Publication::Immediate)
    }

    pub(super) fn evaluate_learner_in(
        &self,
        learner: &str,
        now: Micros,
        publish: Publication,
    ) -> Result<()> {
        let (enrolments, _) = self.store.learner_enrolments(learner, None, usize::MAX)?;
        if enrolments.is_empty() {
            return Ok(());
        }
        let model = self.hub().model.read().expect("model lock").clone();
        let _guard = self.hub().locks.lock_all([learner]);
        if !self.store.has_learner(learner)? {
            return Ok(()); // erased since the enrolments were read
        }
        for enrolment in &enrolments {
            let Some(program) = self.store.program(&enrolment.program_id)? else {
                continue;
            };
            let cohort = self
                .cohort_members(&program.id, false)?
                .get(learner)
                .cloned()
                .unwrap_or_default();
            let median = self
                .hub()
                .medians
                .read()
                .expect("medians lock")
                .get(&(program.id.clone(), cohort.clone()))
                .copied()
                .unwrap_or(0);
            let input = self.signal_input(&program, enrolment, now, median)?;
            let drafts = evaluate(&input, &thresholds(&program.risk_rules), model.as_deref());
            let active = self.store.active_alerts(learner, &program.id)?;
            let changes = reconcile(&active, drafts, &cohort);
            if changes.is_empty() {
                continue;
            }
            self.write_alerts(publish, |sequence| {
                changes
                    .into_iter()
                    .map(|change| {
                        let n = sequence();
                        match change {
                            AlertChange::Raise(d) => Alert {
                                id: alert_id(n),
                                learner_id: learner.to_string(),
                                program_id: program.id.clone(),
                                cohort_id: cohort.clone(),
                                kind: d.kind,
                                severity: d.severity,
                                reason: d.reason,
                                skill_id: d.skill_id,
                                signals: d.signals,
                                created_at: now,
                                updated_at: now,
                                status: AlertStatus::Open,
                                status_by: String::new(),
                                note: String::new(),
                                resolved_at: None,
                                sequence: n,
                            },
                            AlertChange::Update {
                                index,
                                draft,
                                reopen,
                            } => {
                                let mut a = active[index].clone();
                                a.severity = draft.severity;
                                a.reason = draft.reason;
                                a.skill_id = draft.skill_id;
                                a.signals = draft.signals;
                                a.cohort_id = cohort.clone();
                                a.updated_at = now;
                                if reopen {
                                    a.status = AlertStatus::Open;
                                    a.status_by.clear();
                                    a.note.clear();
                                }
                                a.sequence = n;
                                a
                            }
                            AlertChange::Clear { index } => {
                                let mut a = active[index].clone();
                                a.status = AlertStatus::Resolved;
                                a.status_by = RESOLVED_BY_ENGINE.to_string();
                                a.note = "condition cleared".to_string();
                                a.resolved_at = Some(now);
                                a.updated_at = now;
                                a.sequence = n;
                                a
                            }
                        }
                    })
                    .collect()
            })?;
        }
        self.hub().evaluations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Gathers what the signals of one learner in one program depend on,
    /// from the store, as of `now`.
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
        let mut completed = BTreeSet::new();
        let mut time_spent_ms = 0;
        for a in activities.iter().map(|s| &s.activity) {
            if a.occurred_at > now {
                continue;
            }
            last_activity_at = last_activity_at.max(Some(a.occurred_at));
            if modules.contains(a.module_id.as_str()) {
                time_spent_ms += a.time_spent_ms;
                if a.kind == crate::domain::activity::ActivityKind::Completed {
                    completed.insert(a.module_id.as_str());
                }
            }
        }
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
        Ok(SignalInput {
            now,
            calendar: ProgramCalendar {
                starts_at: program.start_date.unwrap_or(0),
                ends_at: program.end_date.unwrap_or(0),
                units: plan.units() as u32,
            },
            enrolled_at: enrolment.enrolled_at,
            last_activity_at,
            units_completed: plan.covered(|m| completed.contains(m)) as u32,
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
