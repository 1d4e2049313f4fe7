//! `spoc.v1.MasteryService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use super::pb::{self, mastery_service_server::MasteryService};
use super::validate as check;
use crate::engine::{Engine, now_micros};

/// Serves attempt ingestion and mastery over the engine.
pub struct MasteryApi {
    engine: Arc<Engine>,
}

impl MasteryApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl MasteryService for MasteryApi {
    async fn record_attempts(
        &self,
        request: Request<pb::RecordAttemptsRequest>,
    ) -> Result<Response<pb::RecordAttemptsResponse>, Status> {
        let attempts = convert::attempts(request.into_inner().attempts, now_micros())?;
        let outcome = self.engine.record_attempts(attempts).await?;
        Ok(Response::new(pb::RecordAttemptsResponse {
            mastery: outcome.mastery.into_iter().map(Into::into).collect(),
            recorded: outcome.recorded as i32,
            duplicates: outcome.duplicates as i32,
        }))
    }

    async fn get_mastery(
        &self,
        request: Request<pb::GetMasteryRequest>,
    ) -> Result<Response<pb::GetMasteryResponse>, Status> {
        let pb::GetMasteryRequest {
            learner_id,
            skill_ids,
        } = request.into_inner();
        let learner_id = check::id("learner_id", &learner_id)?;
        let skill_ids = check::id_set("skill_ids", &skill_ids)?;
        let skills = self.engine.mastery(&learner_id, &skill_ids)?;
        Ok(Response::new(pb::GetMasteryResponse {
            learner_id,
            mastery_threshold: self.engine.mastery_threshold(),
            skills: skills.into_iter().map(Into::into).collect(),
        }))
    }
}
