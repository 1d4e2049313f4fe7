//! `spoc.v1.CohortService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::pb::{self, cohort_service_server::CohortService};
use super::validate as check;
use crate::domain::cohorts::{Breach, Objective, QualityReport};
use crate::engine::Engine;
use crate::engine::cohorts::{CohortView, FormOptions};
use crate::error::{Error, Result};
use crate::offload;

pub use crate::domain::limits::MAX_COHORT_ID_BYTES;

/// Serves cohort formation and maintenance over the engine.
pub struct CohortApi {
    engine: Arc<Engine>,
}

impl CohortApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

/// The objective of a request: unset means balanced; unknown values are
/// refused naming the field.
fn objective(field: &str, value: i32) -> Result<Objective> {
    use pb::CohortObjective as O;
    match O::try_from(value) {
        Ok(O::Unspecified | O::Balanced) => Ok(Objective::Balanced),
        Ok(O::Leveled) => Ok(Objective::Leveled),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown objective {value}: use BALANCED (1) or LEVELED (2)"),
        )),
    }
}

/// A cohort id: like any id, but long enough for a program id plus the
/// server's suffix.
pub(crate) fn cohort_id(field: &str, value: &str) -> Result<String> {
    check::long_id(field, value, MAX_COHORT_ID_BYTES)
}

impl From<Objective> for pb::CohortObjective {
    fn from(value: Objective) -> Self {
        match value {
            Objective::Balanced => pb::CohortObjective::Balanced,
            Objective::Leveled => pb::CohortObjective::Leveled,
        }
    }
}

impl From<CohortView> for pb::Cohort {
    fn from(view: CohortView) -> Self {
        let c = view.cohort;
        Self {
            size: c.members.len() as u32,
            id: c.id,
            program_id: c.program_id,
            learner_ids: c.members,
            company_count: view.company_count as u32,
            language: view.language,
            locked: c.locked,
            version: c.version,
            updated_at: Some(timestamp(c.updated_at)),
            violations: view.violations.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Breach> for pb::CohortViolation {
    fn from(b: Breach) -> Self {
        Self {
            rule: b.rule().to_string(),
            message: b.message,
            learner_ids: b.learners,
            company_ids: b.companies,
            value: b.value,
            limit: b.limit,
        }
    }
}

impl From<QualityReport> for pb::CohortQualityReport {
    fn from(r: QualityReport) -> Self {
        Self {
            objective: pb::CohortObjective::from(r.objective) as i32,
            learner_count: r.learners as u32,
            new_cohort_count: r.cohorts as u32,
            locked_cohort_count: r.locked as u32,
            min_cohort_size: r.size_range.0 as u32,
            max_cohort_size: r.size_range.1 as u32,
            skills: r
                .skills
                .into_iter()
                .map(|s| pb::SkillSpread {
                    skill_id: s.name,
                    mean_gap: s.mean_gap,
                    sd_gap: s.sd_gap,
                    random_mean_gap: s.random_mean_gap,
                    random_sd_gap: s.random_sd_gap,
                })
                .collect(),
            objective_value: r.objective_value,
            random_objective_value: r.random_objective_value,
            max_company_share: r.max_company_share,
            company_share_cap: r.company_cap,
            elapsed: Some(prost_types::Duration {
                seconds: r.elapsed.as_secs() as i64,
                nanos: r.elapsed.subsec_nanos() as i32,
            }),
        }
    }
}

#[tonic::async_trait]
impl CohortService for CohortApi {
    async fn form_cohorts(
        &self,
        request: Request<pb::FormCohortsRequest>,
    ) -> Result<Response<pb::FormCohortsResponse>, Status> {
        let pb::FormCohortsRequest {
            program_id,
            objective: raw_objective,
            seed,
            dry_run,
        } = request.into_inner();
        let program_id = check::id("program_id", &program_id)?;
        let options = FormOptions {
            objective: objective("objective", raw_objective)?,
            seed,
            dry_run,
        };
        let (engine, id) = (self.engine.clone(), program_id.clone());
        // Formation is CPU-bound, and every cohort write may wait for a
        // formation holding the program's lock: off the workers.
        let formed =
            offload::blocking(async move { engine.form_cohorts(&id, options).await }).await??;
        Ok(Response::new(pb::FormCohortsResponse {
            program_id,
            version: formed.version,
            dry_run: formed.dry_run,
            cohorts: formed.cohorts.into_iter().map(Into::into).collect(),
            report: Some(formed.report.into()),
            unplaced: formed
                .unplaced
                .into_iter()
                .map(|u| pb::UnplacedLearner {
                    learner_id: u.id,
                    reason: u.reason,
                })
                .collect(),
        }))
    }

    async fn assign_late_enrolment(
        &self,
        request: Request<pb::AssignLateEnrolmentRequest>,
    ) -> Result<Response<pb::AssignLateEnrolmentResponse>, Status> {
        let pb::AssignLateEnrolmentRequest {
            program_id,
            learner_id,
        } = request.into_inner();
        let program_id = check::id("program_id", &program_id)?;
        let learner_id = check::id("learner_id", &learner_id)?;
        let engine = self.engine.clone();
        let placed = offload::blocking(async move {
            engine.assign_late_enrolment(&program_id, &learner_id).await
        })
        .await??;
        Ok(Response::new(pb::AssignLateEnrolmentResponse {
            cohort: Some(placed.cohort.into()),
            cost_increase: placed.cost_increase,
            already_placed: placed.already_placed,
        }))
    }

    async fn move_learner(
        &self,
        request: Request<pb::MoveLearnerRequest>,
    ) -> Result<Response<pb::MoveLearnerResponse>, Status> {
        let pb::MoveLearnerRequest {
            program_id,
            learner_id,
            target_cohort_id,
        } = request.into_inner();
        let program_id = check::id("program_id", &program_id)?;
        let learner_id = check::id("learner_id", &learner_id)?;
        let target = cohort_id("target_cohort_id", &target_cohort_id)?;
        let engine = self.engine.clone();
        let (source, target) = offload::blocking(async move {
            engine.move_learner(&program_id, &learner_id, &target).await
        })
        .await??;
        Ok(Response::new(pb::MoveLearnerResponse {
            source: Some(source.into()),
            target: Some(target.into()),
        }))
    }

    async fn lock_cohort(
        &self,
        request: Request<pb::LockCohortRequest>,
    ) -> Result<Response<pb::Cohort>, Status> {
        let pb::LockCohortRequest {
            cohort_id: id,
            locked,
        } = request.into_inner();
        let id = cohort_id("cohort_id", &id)?;
        let engine = self.engine.clone();
        let cohort =
            offload::blocking(async move { engine.lock_cohort(&id, locked).await }).await??;
        Ok(Response::new(cohort.into()))
    }

    async fn list_cohorts(
        &self,
        request: Request<pb::ListCohortsRequest>,
    ) -> Result<Response<pb::ListCohortsResponse>, Status> {
        let pb::ListCohortsRequest {
            program_id,
            page_size,
            page_token,
        } = request.into_inner();
        let program_id = check::id("program_id", &program_id)?;
        let limit = check::page_size("page_size", page_size)?;
        let scope = format!("ListCohorts\0program\0{program_id}");
        let after = check::page_token("page_token", &page_token, &scope)?;
        let ((cohorts, next), version) =
            self.engine
                .list_cohorts(&program_id, after.as_deref(), limit)?;
        Ok(Response::new(pb::ListCohortsResponse {
            cohorts: cohorts.into_iter().map(Into::into).collect(),
            next_page_token: check::next_page_token(next, &scope),
            version,
        }))
    }

    async fn get_cohort(
        &self,
        request: Request<pb::GetCohortRequest>,
    ) -> Result<Response<pb::Cohort>, Status> {
        let id = cohort_id("cohort_id", &request.into_inner().cohort_id)?;
        Ok(Response::new(self.engine.cohort(&id)?.into()))
    }
}
