//! `spoc.v1.LearnerService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, required};
use super::pb::{self, learner_service_server::LearnerService};
use super::validate as check;
use crate::clock::now_micros;
use crate::engine::Engine;
use crate::engine::learners::EnrolmentOwner;
use crate::error::Error;
use crate::offload;

/// Serves learners and enrolments over the engine.
pub struct LearnerApi {
    engine: Arc<Engine>,
}

impl LearnerApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl LearnerService for LearnerApi {
    async fn upsert_learner(
        &self,
        request: Request<pb::UpsertLearnerRequest>,
    ) -> Result<Response<pb::Learner>, Status> {
        let learner = convert::learner(
            "learner",
            required("learner", request.into_inner().learner)?,
        )?;
        Ok(Response::new(
            self.engine.upsert_learner(learner).await?.into(),
        ))
    }

    async fn get_learner(
        &self,
        request: Request<pb::GetLearnerRequest>,
    ) -> Result<Response<pb::Learner>, Status> {
        let id = check::id("learner_id", &request.into_inner().learner_id)?;
        Ok(Response::new(self.engine.learner(&id)?.into()))
    }

    async fn list_learners(
        &self,
        request: Request<pb::ListLearnersRequest>,
    ) -> Result<Response<pb::ListLearnersResponse>, Status> {
        let pb::ListLearnersRequest {
            page_size,
            page_token,
            company_id,
        } = request.into_inner();
        let limit = check::page_size("page_size", page_size)?;
        let company = check::optional_id("company_id", &company_id)?;
        let scope = format!("ListLearners\0company\0{company}");
        let after = check::page_token("page_token", &page_token, &scope)?;
        let company = (!company.is_empty()).then_some(company.as_str());
        let (learners, next) = self
            .engine
            .list_learners(company, after.as_deref(), limit)?;
        Ok(Response::new(pb::ListLearnersResponse {
            learners: learners.into_iter().map(Into::into).collect(),
            next_page_token: check::next_page_token(next, &scope),
        }))
    }

    async fn enroll_learner(
        &self,
        request: Request<pb::EnrollLearnerRequest>,
    ) -> Result<Response<pb::Enrolment>, Status> {
        let pb::EnrollLearnerRequest {
            learner_id,
            program_id,
            enrolled_at,
        } = request.into_inner();
        let learner_id = check::id("learner_id", &learner_id)?;
        let program_id = check::id("program_id", &program_id)?;
        let enrolled_at = enrolled_at
            .map(|at| check::event_time("enrolled_at", Some(&at), now_micros()))
            .transpose()?;
        Ok(Response::new(
            self.engine
                .enroll_at(&learner_id, &program_id, enrolled_at)
                .await?
                .into(),
        ))
    }

    async fn list_enrolments(
        &self,
        request: Request<pb::ListEnrolmentsRequest>,
    ) -> Result<Response<pb::ListEnrolmentsResponse>, Status> {
        let pb::ListEnrolmentsRequest {
            program_id,
            learner_id,
            page_size,
            page_token,
        } = request.into_inner();
        let limit = check::page_size("page_size", page_size)?;
        let program_id = check::optional_id("program_id", &program_id)?;
        let learner_id = check::optional_id("learner_id", &learner_id)?;
        let (owner, scope) = match (program_id.is_empty(), learner_id.is_empty()) {
            (false, true) => (
                EnrolmentOwner::Program(&program_id),
                format!("ListEnrolments\0program\0{program_id}"),
            ),
            (true, false) => (
                EnrolmentOwner::Learner(&learner_id),
                format!("ListEnrolments\0learner\0{learner_id}"),
            ),
            _ => {
                return Err(Error::invalid(
                    "program_id",
                    "exactly one of program_id and learner_id must be set",
                )
                .into());
            }
        };
        let after = check::page_token("page_token", &page_token, &scope)?;
        let (enrolments, next) = self
            .engine
            .list_enrolments(owner, after.as_deref(), limit)?;
        Ok(Response::new(pb::ListEnrolmentsResponse {
            enrolments: enrolments.into_iter().map(Into::into).collect(),
            next_page_token: check::next_page_token(next, &scope),
        }))
    }

    async fn export_learner(
        &self,
        request: Request<pb::ExportLearnerRequest>,
    ) -> Result<Response<pb::ExportLearnerResponse>, Status> {
        let pb::ExportLearnerRequest { learner_id } = request.into_inner();
        let id = check::id("learner_id", &learner_id)?;
        let engine = self.engine.clone();
        let json = offload::blocking(async move { engine.export_learner(&id) }).await??;
        Ok(Response::new(pb::ExportLearnerResponse { json }))
    }

    async fn erase_learner(
        &self,
        request: Request<pb::EraseLearnerRequest>,
    ) -> Result<Response<pb::EraseLearnerResponse>, Status> {
        let pb::EraseLearnerRequest { learner_id } = request.into_inner();
        let id = check::id("learner_id", &learner_id)?;
        let engine = self.engine.clone();
        let erased = offload::blocking(async move { engine.erase_learner(&id) }).await??;
        Ok(Response::new(pb::EraseLearnerResponse {
            removed_entries: erased.removed as i64,
            rewritten_entries: erased.rewritten as i64,
        }))
    }
}
