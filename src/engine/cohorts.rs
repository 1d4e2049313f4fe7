//! Cohorts of a program: formation, late placement, manual moves, locks.
//!
//! The engine gathers what the pure cohort module needs from the store
//! (enrolled learners, their attributes, their mastery of the program's
//! skills), calls it, and stores the outcome. Every read-compute-write of a
//! program's cohorts holds that program's cohort lock, so a move cannot
//! interleave with a formation and undo half of it.
//!
//! Formation is CPU-heavy (seconds for tens of thousands of learners), and
//! every cohort write may wait for a formation holding the program's lock:
//! callers run these off the async workers (`offload::blocking`). Each
//! write is on disk when it returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use parking_lot::MutexGuard;

use jiff::Timestamp;

use super::Engine;
use super::locks::StripedLocks;
use crate::clock::now_micros;
use crate::domain::catalog_index::primary_subtag;
use crate::domain::cohorts::records::{FormationRecord, StoredCohort};
use crate::domain::cohorts::{
    Breach, Cohort, CohortConstraints, CohortError, CohortLearner, FormationRequest, LockedCohort,
    Objective, QualityReport, Unplaced, Window, ZoneOffsets, assign_late, check_move,
    cohort_breaches, form_cohorts,
};
use crate::domain::learner::{CohortRules, Learner, Program};
use crate::error::{Error, Result};
use crate::store::Page;

/// How to form: the choices a manager makes per call (the hard rules come
/// from the program).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormOptions {
    /// Balanced or leveled.
    pub objective: Objective,
    /// Seed of the formation's randomness.
    pub seed: u64,
    /// Form and report, store nothing.
    pub dry_run: bool,
}

/// A stored cohort with the figures a manager looks at, computed from its
/// members' current learner records and the program's current rules.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortView {
    /// The cohort as stored.
    pub cohort: StoredCohort,
    /// Distinct companies among the members.
    pub company_count: usize,
    /// The members' known languages, sorted and joined with `,` (one
    /// language for a single-language cohort, empty if none is known).
    pub language: String,
    /// The rules the cohort breaks now (empty for a cohort as formed):
    /// learners' languages and time zones and the program's rules may have
    /// changed since it was formed, and formation keeps locked cohorts as
    /// they are.
    pub violations: Vec<Breach>,
}

impl CohortView {
    /// Summarises `cohort` from the population its members are in (`index`:
    /// learner id to position; members missing from it are skipped).
    fn new(
        cohort: StoredCohort,
        population: &[CohortLearner],
        index: &BTreeMap<&str, usize>,
        cons: &CohortConstraints,
    ) -> Self {
        let members: Vec<usize> = cohort
            .members
            .iter()
            .filter_map(|m| index.get(m.as_str()).copied())
            .collect();
        let mut companies = BTreeSet::new();
        let mut languages = BTreeSet::new();
        for &m in &members {
            let l = &population[m];
            companies.insert(l.company.as_str());
            if !l.language.is_empty() {
                languages.insert(l.language.as_str());
            }
        }
        let language = languages.into_iter().collect::<Vec<_>>().join(",");
        let violations = cohort_breaches(population, &cohort.id, &members, cons);
        Self {
            company_count: companies.len(),
            language,
            violations,
            cohort,
        }
    }
}

/// What [`Engine::form_cohorts`] produced.
#[derive(Debug, Clone)]
pub struct FormedCohorts {
    /// The program's cohort version after the formation (the one a real
    /// run would have produced, for a dry run).
    pub version: u64,
    /// Whether nothing was stored.
    pub dry_run: bool,
    /// Locked cohorts kept, then the new ones.
    pub cohorts: Vec<CohortView>,
    /// Balance figures, skills named by program skill id.
    pub report: QualityReport,
    /// Learners no cohort could take, with the reason (see
    /// `domain::cohorts::Formation::unplaced`).
    pub unplaced: Vec<Unplaced>,
}

/// What [`Engine::assign_late_enrolment`] did.
#[derive(Debug, Clone)]
pub struct LatePlacement {
    /// The learner's cohort, as it is now.
    pub cohort: CohortView,
    /// Growth of that cohort's objective cost (0 when already placed).
    pub cost_increase: f64,
    /// The learner already had a cohort; nothing was written.
    pub already_placed: bool,
}

/// Stripes serializing cohort writes per program. Global rather than per
/// engine so that `Engine` stays unchanged: sharing stripes between engines
/// (only tests run several) costs at most some needless waiting.
fn program_lock(program: &str) -> Vec<MutexGuard<'static, ()>> {
    program_locks([program])
}

/// The cohort locks of several programs at once (in a deadlock-free order):
/// an erasure holds those of the learner's programs, so that no formation
/// or move writes the learner back into a member list meanwhile.
pub(super) fn program_locks<'a>(
    programs: impl IntoIterator<Item = &'a str>,
) -> Vec<MutexGuard<'static, ()>> {
    static LOCKS: OnceLock<StripedLocks> = OnceLock::new();
    LOCKS
        .get_or_init(|| StripedLocks::new(64))
        .lock_all(programs)
}

/// The program's rules in the cohort module's terms.
fn constraints(rules: &CohortRules) -> CohortConstraints {
    CohortConstraints {
        min_size: rules.min_size as usize,
        max_size: rules.max_size as usize,
        max_company_share: rules.max_company_share,
        single_language: rules.single_language,
        max_tz_spread_hours: rules.max_timezone_spread_hours,
        target_cohorts: rules.target_cohort_count.map(|n| n as usize),
    }
}

/// Maps a refusal of the cohort module onto the crate error: rules that
/// cannot hold are a FAILED_PRECONDITION whose message names the rule.
fn cohort_error(err: CohortError) -> Error {
    match err {
        CohortError::Infeasible { .. } => Error::FailedPrecondition(err.to_string()),
        CohortError::Violation(v) => Error::FailedPrecondition(format!("constraint violated: {v}")),
        // Inputs come from the store, already validated: an inconsistency
        // there is a state problem, not a bad request.
        CohortError::InvalidInput(reason) => {
            Error::FailedPrecondition(format!("cohort data is inconsistent: {reason}"))
        }
        CohortError::Csv { .. } | CohortError::Io(_) => Error::Storage(err.to_string()),
    }
}

/// The cohort module's view of stored cohorts.
fn domain_cohorts(cohorts: &[StoredCohort]) -> Vec<Cohort> {
    cohorts
        .iter()
        .map(|c| Cohort {
            id: c.id.clone(),
            members: c.members.clone(),
            locked: c.locked,
        })
        .collect()
}

/// The dates over which a program's cohorts keep their time-zone spread:
/// from `start_date` (now when unset) to `end_date` (the start when
/// unset), since offsets move with daylight saving time.
fn program_window(program: &Program) -> Window {
    let now = Timestamp::from_microsecond(now_micros()).unwrap_or(Timestamp::UNIX_EPOCH);
    let at = |m: i64| Timestamp::from_microsecond(m).unwrap_or(now);
    let from = program.start_date.map_or(now, at);
    let until = program.end_date.map_or(from, at);
    Window::new(from, until)
}

/// Position of each learner of `population` by id.
fn index_of(population: &[CohortLearner]) -> BTreeMap<&str, usize> {
    population
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect()
}

/// The language a learner is grouped by: the primary subtag of their tag,
/// lowercased, the one modules are matched on (`fr-BE` is served `fr`
/// modules, so it shares cohorts with `fr`).
fn cohort_language(tag: &str) -> String {
    primary_subtag(tag).to_ascii_lowercase()
}

/// Inserts `learner` into sorted `members`.
fn add_member(members: &mut Vec<String>, learner: &str) {
    if let Err(at) = members.binary_search_by(|m| m.as_str().cmp(learner)) {
        members.insert(at, learner.to_string());
    }
}

impl Engine {
    /// Forms the cohorts of a program from its enrolled learners, keeping
    /// locked cohorts, and (unless a dry run) replaces the stored cohorts
    /// and increments the program's cohort version in one transaction.
    ///
    /// Blocking and CPU-heavy: call it off the async workers.
    pub async fn form_cohorts(
        &self,
        program_id: &str,
        options: FormOptions,
    ) -> Result<FormedCohorts> {
        let formed = self.form_locked(program_id, options)?;
        self.store.durable().await?;
        Ok(formed)
    }

    /// [`Engine::form_cohorts`] under the program's lock, before the wait
    /// for the disk.
    fn form_locked(&self, program_id: &str, options: FormOptions) -> Result<FormedCohorts> {
        let program = self.program(program_id)?;
        let _guard = program_lock(program_id);
        let (enrolments, _) = self
            .store
            .program_enrolments(program_id, None, usize::MAX)?;
        if enrolments.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "program '{program_id}' has no enrolled learner to form cohorts from"
            )));
        }
        let ids: Vec<&str> = enrolments.iter().map(|e| e.learner_id.as_str()).collect();
        let learners = self.cohort_learners(&program, &ids)?;
        let current = self.store.program_cohorts(program_id)?;
        let locked: Vec<LockedCohort> = current
            .iter()
            .filter(|c| c.locked)
            .map(|c| LockedCohort {
                id: c.id.clone(),
                members: c.members.clone(),
            })
            .collect();
        let version = self
            .store
            .cohort_formation(program_id)?
            .map_or(0, |r| r.version)
            + 1;

        let cons = constraints(&program.cohort_rules);
        let formation = form_cohorts(&FormationRequest {
            learners: &learners,
            constraints: cons,
            objective: options.objective,
            seed: options.seed,
            locked: &locked,
        })
        .map_err(cohort_error)?;
        let mut report = formation.report;
        report.name_skills(&program.skill_ids);
        let unplaced = formation.unplaced;

        let now = now_micros();
        let kept: BTreeMap<&str, &StoredCohort> =
            current.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut fresh = 0;
        let cohorts: Vec<StoredCohort> = formation
            .cohorts
            .into_iter()
            .map(|c| {
                let (id, updated_at) = match kept.get(c.id.as_str()) {
                    Some(old) if c.locked => (c.id, old.updated_at),
                    _ => {
                        fresh += 1;
                        (format!("{program_id}/v{version}/c{fresh:03}"), now)
                    }
                };
                let mut members = c.members;
                members.sort();
                StoredCohort {
                    id,
                    program_id: program_id.to_string(),
                    version,
                    members,
                    locked: c.locked,
                    updated_at,
                }
            })
            .collect();
        if !options.dry_run {
            let record = FormationRecord {
                program_id: program_id.to_string(),
                version,
                objective: options.objective,
                seed: options.seed,
                formed_at: now,
            };
            self.store.replace_cohorts(&record, &cohorts)?;
            self.forget_cohort_members(program_id);
        }
        let index = index_of(&learners);
        let views = cohorts
            .into_iter()
            .map(|c| CohortView::new(c, &learners, &index, &cons))
            .collect();
        Ok(FormedCohorts {
            version,
            dry_run: options.dry_run,
            cohorts: views,
            report,
            unplaced,
        })
    }

    /// Places a learner enrolled after formation in the existing cohort
    /// where the formation's objective suffers least, moving nobody else.
    /// Idempotent: a learner who already has a cohort keeps it.
    pub async fn assign_late_enrolment(
        &self,
        program_id: &str,
        learner_id: &str,
    ) -> Result<LatePlacement> {
        let placed = self.assign_late_locked(program_id, learner_id)?;
        self.store.durable().await?;
        Ok(placed)
    }

    /// [`Engine::assign_late_enrolment`] before the wait for the disk.
    fn assign_late_locked(&self, program_id: &str, learner_id: &str) -> Result<LatePlacement> {
        let program = self.program(program_id)?;
        self.learner(learner_id)?;
        if self.store.enrolment(learner_id, program_id)?.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "learner '{learner_id}' is not enrolled in program '{program_id}'"
            )));
        }
        let _guard = program_lock(program_id);
        let record = self.formation_of(program_id)?;
        let mut cohorts = self.store.program_cohorts(program_id)?;
        if let Some(current) = cohorts.iter().find(|c| c.has_member(learner_id)) {
            return Ok(LatePlacement {
                cohort: self.view(current.clone())?,
                cost_increase: 0.0,
                already_placed: true,
            });
        }
        // One call, so that the newcomer's offsets are at the same instants.
        let ids: Vec<&str> = cohorts
            .iter()
            .flat_map(|c| c.members.iter().map(String::as_str))
            .chain([learner_id])
            .collect();
        let mut population = self.cohort_learners(&program, &ids)?;
        let newcomer = population.pop().expect("the newcomer was asked last");
        let placement = assign_late(
            &population,
            &domain_cohorts(&cohorts),
            &newcomer,
            &constraints(&program.cohort_rules),
            record.objective,
        )
        .map_err(cohort_error)?;
        let chosen = &mut cohorts[placement.cohort_index];
        add_member(&mut chosen.members, learner_id);
        chosen.updated_at = now_micros();
        self.store.update_cohorts(std::slice::from_ref(chosen))?;
        self.forget_cohort_members(program_id);
        Ok(LatePlacement {
            cohort: self.view(chosen.clone())?,
            cost_increase: placement.cost_increase,
            already_placed: false,
        })
    }

    /// Moves one learner to another cohort of the same program, refusing a
    /// move after which either cohort would break a hard rule. Returns the
    /// source and target cohorts as they are now.
    pub async fn move_learner(
        &self,
        program_id: &str,
        learner_id: &str,
        target_id: &str,
    ) -> Result<(CohortView, CohortView)> {
        let moved = self.move_locked(program_id, learner_id, target_id)?;
        self.store.durable().await?;
        Ok(moved)
    }

    /// [`Engine::move_learner`] before the wait for the disk.
    fn move_locked(
        &self,
        program_id: &str,
        learner_id: &str,
        target_id: &str,
    ) -> Result<(CohortView, CohortView)> {
        let program = self.program(program_id)?;
        self.learner(learner_id)?;
        let _guard = program_lock(program_id);
        let mut cohorts = self.store.program_cohorts(program_id)?;
        let to = cohorts
            .iter()
            .position(|c| c.id == target_id)
            .ok_or_else(|| Error::not_found("cohort", target_id))?;
        let from = cohorts
            .iter()
            .position(|c| c.has_member(learner_id))
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "learner '{learner_id}' is in no cohort of program '{program_id}' \
                     (place a late enrolment with AssignLateEnrolment)"
                ))
            })?;
        if from != to {
            let members: Vec<&str> = cohorts
                .iter()
                .flat_map(|c| c.members.iter().map(String::as_str))
                .collect();
            let population = self.cohort_learners(&program, &members)?;
            check_move(
                &population,
                &domain_cohorts(&cohorts),
                learner_id,
                &cohorts[from].id,
                target_id,
                &constraints(&program.cohort_rules),
            )
            .map_err(|v| cohort_error(CohortError::Violation(v)))?;
            let now = now_micros();
            cohorts[from].members.retain(|m| m != learner_id);
            cohorts[from].updated_at = now;
            add_member(&mut cohorts[to].members, learner_id);
            cohorts[to].updated_at = now;
            self.store
                .update_cohorts(&[cohorts[from].clone(), cohorts[to].clone()])?;
            self.forget_cohort_members(program_id);
        }
        let mut views = self.views(vec![cohorts[from].clone(), cohorts[to].clone()])?;
        let target = views.pop().expect("two cohorts viewed");
        let source = views.pop().expect("two cohorts viewed");
        Ok((source, target))
    }

    /// Locks (kept as it is by re-forming) or unlocks a cohort.
    pub async fn lock_cohort(&self, cohort_id: &str, locked: bool) -> Result<CohortView> {
        let cohort = self.lock_locked(cohort_id, locked)?;
        self.store.durable().await?;
        Ok(cohort)
    }

    /// [`Engine::lock_cohort`] before the wait for the disk.
    fn lock_locked(&self, cohort_id: &str, locked: bool) -> Result<CohortView> {
        let found = self
            .store
            .cohort(cohort_id)?
            .ok_or_else(|| Error::not_found("cohort", cohort_id))?;
        let _guard = program_lock(&found.program_id);
        // Re-read under the lock: a formation may have replaced it meanwhile.
        let mut cohort = self
            .store
            .cohort(cohort_id)?
            .ok_or_else(|| Error::not_found("cohort", cohort_id))?;
        if cohort.locked != locked {
            cohort.locked = locked;
            self.store.update_cohorts(std::slice::from_ref(&cohort))?;
        }
        self.view(cohort)
    }

    /// One current cohort, or NOT_FOUND.
    pub fn cohort(&self, cohort_id: &str) -> Result<CohortView> {
        let cohort = self
            .store
            .cohort(cohort_id)?
            .ok_or_else(|| Error::not_found("cohort", cohort_id))?;
        self.view(cohort)
    }

    /// A page of a program's current cohorts and the program's cohort
    /// version (0 if never formed); the program must exist.
    pub fn list_cohorts(
        &self,
        program_id: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Page<CohortView>, u64)> {
        self.program(program_id)?;
        let version = self
            .store
            .cohort_formation(program_id)?
            .map_or(0, |r| r.version);
        let (cohorts, next) = self.store.list_cohorts(program_id, after, limit)?;
        Ok(((self.views(cohorts)?, next), version))
    }

    /// The latest formation of a program, or FAILED_PRECONDITION when its
    /// cohorts were never formed.
    fn formation_of(&self, program_id: &str) -> Result<FormationRecord> {
        self.store.cohort_formation(program_id)?.ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "program '{program_id}' has no cohorts yet: form them first (FormCohorts)"
            ))
        })
    }

    /// Summarises a stored cohort from its members' current records.
    fn view(&self, cohort: StoredCohort) -> Result<CohortView> {
        Ok(self.views(vec![cohort])?.pop().expect("one cohort viewed"))
    }

    /// Summarises stored cohorts (of one program or more) from their
    /// members' current records and their program's current rules, with
    /// the rules each breaks now.
    fn views(&self, cohorts: Vec<StoredCohort>) -> Result<Vec<CohortView>> {
        let mut by_program: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, c) in cohorts.iter().enumerate() {
            by_program.entry(c.program_id.clone()).or_default().push(i);
        }
        let mut views: Vec<Option<CohortView>> = vec![None; cohorts.len()];
        let mut cohorts: Vec<Option<StoredCohort>> = cohorts.into_iter().map(Some).collect();
        for (program_id, at) in by_program {
            let program = self.program(&program_id)?;
            let mut learners = Vec::new();
            for &i in &at {
                for id in &cohorts[i].as_ref().expect("each taken once").members {
                    // A member erased meanwhile is skipped.
                    if let Some(l) = self.store.learner(id)? {
                        learners.push(l);
                    }
                }
            }
            let population = self.population(&program, learners, false)?;
            let index = index_of(&population);
            let cons = constraints(&program.cohort_rules);
            for i in at {
                let cohort = cohorts[i].take().expect("each taken once");
                views[i] = Some(CohortView::new(cohort, &population, &index, &cons));
            }
        }
        Ok(views
            .into_iter()
            .map(|v| v.expect("every cohort viewed"))
            .collect())
    }

    /// The learners `ids` as cohort formation sees them: company,
    /// language, UTC offsets of their time zone over the program's dates
    /// (see [`program_window`]), and P(mastered) of each program skill (the
    /// skill's prior when never attempted).
    fn cohort_learners(&self, program: &Program, ids: &[&str]) -> Result<Vec<CohortLearner>> {
        let learners = ids
            .iter()
            .map(|&id| {
                self.store.learner(id)?.ok_or_else(|| Error::Corrupt {
                    tree: "learners",
                    key: id.to_string(),
                    reason: format!("learner of program '{}' is missing", program.id),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.population(program, learners, true)
    }

    /// Turns learner records into the cohort module's learners, with their
    /// mastery of the program's skills when `mastery` (rule checks alone
    /// need none).
    fn population(
        &self,
        program: &Program,
        learners: Vec<Learner>,
        mastery: bool,
    ) -> Result<Vec<CohortLearner>> {
        let zones = ZoneOffsets::over(
            learners.iter().map(|l| l.time_zone.as_str()),
            program_window(program),
        )
        .map_err(|err| Error::Corrupt {
            tree: "learners",
            key: learners
                .iter()
                .find(|l| l.time_zone == err.zone)
                .map_or_else(String::new, |l| l.id.clone()),
            reason: err.to_string(),
        })?;
        let params = self.params();
        learners
            .into_iter()
            .map(|learner| {
                let mastery = if mastery {
                    let stored = self.store.learner_mastery(&learner.id)?;
                    program
                        .skill_ids
                        .iter()
                        .map(|skill| match stored.get(skill) {
                            Some(state) => state.p_mastered(),
                            None => params.for_skill(skill).prior,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(CohortLearner {
                    utc_offsets: zones
                        .of(&learner.time_zone)
                        .map_or_else(Vec::new, <[i32]>::to_vec),
                    language: cohort_language(&learner.language),
                    id: learner.id,
                    company: learner.company_id,
                    mastery,
                })
            })
            .collect()
    }
}
