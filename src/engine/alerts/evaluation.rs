//! Evaluation: what the signals of a learner say now, and the alert
//! changes it makes (raise, update, refresh, clear), one learner at a time
//! as events arrive, or every learner in a full pass.
//!
//! A full pass evaluates everyone first, writing updates and clears, and
//! only then offers the new alerts, most urgent first, while each group's
//! budget has room: the open alerts are the most urgent ones, the others
//! wait in the digest. As events arrive, a learner's new alert takes a
//! seat only if the budget has room after the waiting drafts that outrank
//! it.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use super::super::{Engine, now_micros};
use super::budget::Group;
use super::hub::{LIVE_LAG, Publication, PublicationGroup};
use super::{completion_plan, thresholds};
use crate::domain::alerts::{
    Alert, AlertChange, AlertStatus, RESOLVED_BY_ENGINE, Verdict, alert_id, notes, reconcile,
};
use crate::domain::learner::Micros;
use crate::domain::reports::quantile;
use crate::domain::risk::rules::rank_order;
use crate::domain::risk::{AlertDraft, Assessment, SignalInput, Standing, assess};
use crate::error::{Error, Result};

/// How an evaluation treats a learner and their new alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// As events arrive: a learner touched by a bulk load is held until
    /// the load ends; a new alert needs a seat after the waiting drafts
    /// that outrank it.
    Live,
    /// Asked for directly (a test, a tool): never held.
    Direct,
    /// After a declared pause or withdrawal: held if a bulk load is in
    /// progress (the declaration is part of it), never starting one.
    Declared,
    /// In a full pass: new alerts are collected and offered afterwards,
    /// most urgent first.
    Pass,
}

/// What evaluating one learner came to.
#[derive(Debug)]
pub(super) enum Evaluated {
    /// Part of a bulk load still arriving: evaluated when it ends.
    Held,
    /// Evaluated; in a pass, the drafts that wait to be offered a seat.
    Done(Vec<Waiting>),
}

/// A draft a pass offers a seat once every learner is evaluated.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    learner: String,
    program: String,
    cohort: String,
    draft: AlertDraft,
}

impl Engine {
    /// Evaluates every learner enrolled in any program: the periodic pass,
    /// and the evaluation at the end of a bulk load. Refreshes the cohort
    /// medians of time spent, the group sizes and the open alerts of the
    /// budget first; offers new alerts last, most urgent first. CPU-heavy:
    /// runs on a thread of its own.
    pub fn evaluate_all_alerts(&self) -> Result<usize> {
        let _pass = self.hub().pass_lock.lock();
        let _busy = self.hub().busy();
        let now = now_micros();
        let (programs, _) = self.store.list_programs(None, usize::MAX)?;
        let mut learners = BTreeSet::new();
        let mut medians = HashMap::new();
        let mut sizes: HashMap<Group, usize> = HashMap::new();
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
                *sizes
                    .entry((program.id.clone(), cohort.clone()))
                    .or_default() += 1;
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
        *self.hub().medians.write() = medians;
        {
            let active = self.store.all_active_alerts()?;
            let mut budget = self.hub().budget.lock();
            budget.rebuild(&active);
            budget.set_sizes(sizes);
        }
        let mut waiting = Vec::new();
        self.evaluate_in_groups(
            learners.iter().map(String::as_str),
            now,
            Mode::Pass,
            |w| waiting.extend(w),
            |_, err| Err(err),
        )?;
        // Most urgent first: severity, kind, urgency, then learner for a
        // stable order.
        waiting.sort_by(|a, b| {
            let rank = |w: &Waiting| (w.draft.severity, w.draft.kind, w.draft.urgency);
            rank_order(rank(b), rank(a)).then(a.learner.cmp(&b.learner))
        });
        let mut group = PublicationGroup::new();
        for w in waiting {
            if self.hub().stop.load(Ordering::Relaxed) {
                break;
            }
            self.offer_seat(w, now)?;
            if group.full() {
                self.publish_pending()?;
                group = PublicationGroup::new();
            }
        }
        self.publish_pending()?;
        Ok(learners.len())
    }

    /// Evaluates `learners`, publishing their changes per
    /// [`PublicationGroup`] (one flush for many learners) and at the end,
    /// until a stop. `waiting` receives the drafts a pass offers later;
    /// `failed` decides what an evaluation error does: end the run (`Err`)
    /// or not. A failed publication keeps the changes for the next one; the
    /// last one's error is returned.
    pub(super) fn evaluate_in_groups<'a>(
        &self,
        learners: impl IntoIterator<Item = &'a str>,
        now: Micros,
        mode: Mode,
        mut waiting: impl FnMut(Vec<Waiting>),
        mut failed: impl FnMut(&str, Error) -> Result<()>,
    ) -> Result<()> {
        let mut group = PublicationGroup::new();
        let mut outcome = Ok(());
        for learner in learners {
            if self.hub().stop.load(Ordering::Relaxed) {
                break;
            }
            match self.evaluate_learner_in(learner, now, Publication::WithGroup, mode) {
                Ok(Evaluated::Done(w)) => waiting(w),
                Ok(Evaluated::Held) => {}
                Err(err) => {
                    outcome = failed(learner, err);
                    if outcome.is_err() {
                        break;
                    }
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

    /// Evaluates one learner in each program they are enrolled in, now,
    /// and writes the resulting alert changes (never held by a bulk load).
    pub fn evaluate_learner(&self, learner: &str, now: Micros) -> Result<()> {
        self.evaluate_learner_in(learner, now, Publication::Immediate, Mode::Direct)
            .map(drop)
    }

    /// Evaluates a learner after a declaration about them (a pause, a
    /// withdrawal): at once, unless a bulk load is arriving.
    pub(super) fn evaluate_declared(&self, learner: &str) -> Result<()> {
        self.evaluate_learner_in(
            learner,
            now_micros(),
            Publication::Immediate,
            Mode::Declared,
        )
        .map(drop)
    }

    /// What the rules and models say of one learner in one program at
    /// `now`, writing nothing: the scores behind the alerts (the alert
    /// evaluation reads them for every learner).
    pub fn assess_learner(&self, learner: &str, program: &str, now: Micros) -> Result<Assessment> {
        let program = self.program(program)?;
        let (enrolments, _) = self.store.learner_enrolments(learner, None, usize::MAX)?;
        let enrolment = enrolments
            .iter()
            .find(|e| e.program_id == program.id)
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "learner '{learner}' is not enrolled in program '{}'",
                    program.id
                ))
            })?;
        let (_, median) = self.cohort_and_median(&program.id, learner)?;
        let input = self.signal_input(&program, enrolment, now, median)?;
        let models = self.hub().model.read().clone();
        Ok(assess(
            &input,
            &thresholds(&program.risk_rules),
            models.as_deref(),
        ))
    }

    /// The learner's cohort in `program` (empty without one) and that
    /// cohort's median time spent, which the signals compare against.
    fn cohort_and_median(&self, program: &str, learner: &str) -> Result<(String, u64)> {
        let cohort = self
            .cohort_members(program, false)?
            .get(learner)
            .cloned()
            .unwrap_or_default();
        let median = self
            .hub()
            .medians
            .read()
            .get(&(program.to_string(), cohort.clone()))
            .copied()
            .unwrap_or(0);
        Ok((cohort, median))
    }

    pub(super) fn evaluate_learner_in(
        &self,
        learner: &str,
        now: Micros,
        publication: Publication,
        mode: Mode,
    ) -> Result<Evaluated> {
        let (enrolments, _) = self.store.learner_enrolments(learner, None, usize::MAX)?;
        if enrolments.is_empty() {
            return Ok(Evaluated::Done(Vec::new()));
        }
        let models = self.hub().model.read().clone();
        let _guard = self.hub().locks.lock_all([learner]);
        if !self.store.has_learner(learner)? {
            return Ok(Evaluated::Done(Vec::new())); // erased since the enrolments were read
        }
        let mut inputs = Vec::new();
        for enrolment in &enrolments {
            let Some(program) = self.store.program(&enrolment.program_id)? else {
                continue;
            };
            let (cohort, median) = self.cohort_and_median(&program.id, learner)?;
            let input = self.signal_input(&program, enrolment, now, median)?;
            inputs.push((program, cohort, input));
        }
        if mode == Mode::Declared && self.hold_if_loading(learner, false) {
            return Ok(Evaluated::Held);
        }
        if mode == Mode::Live {
            // History is not news: a learner whose newest event is old was
            // touched by a bulk load, evaluated once it ends.
            let newest = newest_event(inputs.iter().map(|(_, _, i)| i));
            let backfill = newest.is_some_and(|t| t < now - LIVE_LAG);
            if self.hold_if_loading(learner, backfill) {
                return Ok(Evaluated::Held);
            }
        }
        let mut waiting = Vec::new();
        for (program, cohort, input) in inputs {
            let assessment = assess(&input, &thresholds(&program.risk_rules), models.as_deref());
            let withdrawn = self.store.withdrawal(learner, &program.id)?.is_some();
            let paused = input.pauses.iter().any(|&(s, e)| s <= now && now < e);
            let verdict = verdict(&assessment, withdrawn, paused);
            let closed = self.store.closed_episodes(learner, &program.id)?;
            let active = self.store.active_alerts(learner, &program.id)?;
            let group: Group = (program.id.clone(), cohort.clone());
            if mode != Mode::Pass {
                self.count_group(&group)?;
            }
            let seat = Cell::new(false);
            let reconciled = reconcile(&active, verdict, &cohort, &closed, |draft| {
                mode != Mode::Pass && {
                    let mut budget = self.hub().budget.lock();
                    let taken = budget.take_seat(&group, learner, draft, true);
                    seat.set(taken);
                    taken
                }
            });
            for kind in &reconciled.episodes_ended {
                self.store.end_episode(learner, &program.id, *kind)?;
            }
            let mut digest = reconciled.waiting.clone();
            if mode == Mode::Pass {
                if let Some(draft) = digest.take() {
                    waiting.push(Waiting {
                        learner: learner.to_string(),
                        program: program.id.clone(),
                        cohort: cohort.clone(),
                        draft,
                    });
                }
            }
            self.hub().budget.lock().set_waiting(
                &program.id,
                &cohort,
                learner,
                digest.as_ref(),
                now,
            );
            let written = self.apply_changes(
                learner,
                &program.id,
                &cohort,
                &active,
                reconciled.changes,
                now,
                publication,
            );
            if written.is_err() && seat.get() {
                self.hub().budget.lock().give_back(&group, learner);
            }
            written?;
        }
        self.hub().evaluations.fetch_add(1, Ordering::Relaxed);
        Ok(Evaluated::Done(waiting))
    }

    /// Offers a pass's waiting draft a seat: raised if the learner still
    /// has no active alert in the program and the group has room, else
    /// left in the digest.
    fn offer_seat(&self, w: Waiting, now: Micros) -> Result<()> {
        let _guard = self.hub().locks.lock_all([w.learner.as_str()]);
        if !self.store.has_learner(&w.learner)?
            || !self.store.active_alerts(&w.learner, &w.program)?.is_empty()
        {
            return Ok(());
        }
        let group: Group = (w.program.clone(), w.cohort.clone());
        let taken = {
            let mut budget = self.hub().budget.lock();
            let taken = budget.take_seat(&group, &w.learner, &w.draft, false);
            let digest = (!taken).then_some(&w.draft);
            budget.set_waiting(&w.program, &w.cohort, &w.learner, digest, now);
            taken
        };
        if !taken {
            return Ok(());
        }
        let written = self.apply_changes(
            &w.learner,
            &w.program,
            &w.cohort,
            &[],
            vec![AlertChange::Raise(w.draft)],
            now,
            Publication::WithGroup,
        );
        if written.is_err() {
            self.hub().budget.lock().give_back(&group, &w.learner);
        }
        written
    }

    /// Counts the learners of a group for the budget when no pass has yet.
    fn count_group(&self, group: &Group) -> Result<()> {
        if self.hub().budget.lock().size(group).is_some() {
            return Ok(());
        }
        let members = self.cohort_members(&group.0, false)?;
        let size = if group.1.is_empty() {
            let (enrolments, _) = self.store.program_enrolments(&group.0, None, usize::MAX)?;
            enrolments
                .iter()
                .filter(|e| !members.contains_key(&e.learner_id))
                .count()
        } else {
            members.values().filter(|c| **c == group.1).count()
        };
        let mut budget = self.hub().budget.lock();
        if !budget.loaded {
            budget.rebuild(&self.store.all_active_alerts()?);
        }
        budget.set_size(group.clone(), size);
        Ok(())
    }

    /// Writes what [`reconcile`] decided for one learner in one program:
    /// refreshed figures in place (no sequence number, not news), every
    /// other change numbered, committed and published.
    #[allow(clippy::too_many_arguments)]
    fn apply_changes(
        &self,
        learner: &str,
        program: &str,
        cohort: &str,
        active: &[Alert],
        changes: Vec<AlertChange>,
        now: Micros,
        publication: Publication,
    ) -> Result<()> {
        let (refreshes, changes): (Vec<_>, Vec<_>) = changes
            .into_iter()
            .partition(|c| matches!(c, AlertChange::Refresh { .. }));
        let refreshed: Vec<Alert> = refreshes
            .into_iter()
            .filter_map(|c| match c {
                AlertChange::Refresh { index, signals } => {
                    let mut a = active[index].clone();
                    a.signals = signals;
                    Some(a)
                }
                _ => None,
            })
            .collect();
        if !refreshed.is_empty() {
            self.refresh_alerts(&refreshed)?;
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.write_alerts(publication, |sequence| {
            changes
                .into_iter()
                .filter_map(|change| {
                    Some(match change {
                        AlertChange::Raise(d) => {
                            let n = sequence();
                            Alert {
                                id: alert_id(n),
                                learner_id: learner.to_string(),
                                program_id: program.to_string(),
                                cohort_id: cohort.to_string(),
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
                            }
                        }
                        AlertChange::Update {
                            index,
                            draft,
                            reopen,
                        } => {
                            let n = sequence();
                            let mut a = active[index].clone();
                            a.severity = draft.severity;
                            a.reason = draft.reason;
                            a.skill_id = draft.skill_id;
                            a.signals = draft.signals;
                            a.cohort_id = cohort.to_string();
                            a.updated_at = now;
                            if reopen {
                                a.status = AlertStatus::Open;
                                a.status_by.clear();
                                a.note.clear();
                            }
                            a.sequence = n;
                            a
                        }
                        AlertChange::Clear { index, note } => {
                            let n = sequence();
                            let mut a = active[index].clone();
                            a.status = AlertStatus::Resolved;
                            a.status_by = RESOLVED_BY_ENGINE.to_string();
                            a.note = note.to_string();
                            a.resolved_at = Some(now);
                            a.updated_at = now;
                            a.sequence = n;
                            a
                        }
                        // Written in place above.
                        AlertChange::Refresh { .. } => return None,
                    })
                })
                .collect()
        })?;
        Ok(())
    }
}

/// The newest answer or module event of a learner's inputs.
fn newest_event<'a>(inputs: impl Iterator<Item = &'a SignalInput>) -> Option<Micros> {
    inputs
        .flat_map(|i| {
            i.attempts
                .last()
                .map(|a| a.at)
                .into_iter()
                .chain(i.module_events.last().map(|e| e.0))
        })
        .max()
}

/// What the rules' assessment means for a learner's alerts in a program:
/// closed once withdrawn or completed, else its drafts.
fn verdict(assessment: &Assessment, withdrawn: bool, paused: bool) -> Verdict<'_> {
    if withdrawn {
        Verdict::Closed(notes::WITHDRAWN)
    } else if assessment.standing == Standing::Completed {
        Verdict::Closed(notes::COMPLETED)
    } else {
        Verdict::Drafts {
            drafts: &assessment.drafts,
            paused,
        }
    }
}
