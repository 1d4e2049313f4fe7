//! `spoc.v1.ProgramService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, required};
use super::pb::{self, program_service_server::ProgramService};
use super::validate as check;
use crate::engine::Engine;

/// Serves programs over the engine.
pub struct ProgramApi {
    engine: Arc<Engine>,
}

impl ProgramApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl ProgramService for ProgramApi {
    async fn upsert_program(
        &self,
        request: Request<pb::UpsertProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let program = required("program", request.into_inner().program)?;
        let skill_ids = program.skill_ids.clone();
        let program = convert::program("program", program)?;
        let stored = self
            .engine
            .upsert_program(program)
            .await
            .map_err(|err| convert::locate_id(err, "program.skill_ids", &skill_ids))?;
        Ok(Response::new(stored.into()))
    }

    async fn get_program(
        &self,
        request: Request<pb::GetProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let id = check::id("program_id", &request.into_inner().program_id)?;
        let program = self.engine.program(&id)?;
        Ok(Response::new(program.as_ref().clone().into()))
    }

    async fn list_programs(
        &self,
        request: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        let pb::ListProgramsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (programs, next_page_token) =
            check::page_of("ListPrograms", page_size, &page_token, |after, limit| {
                self.engine.list_programs(after, limit)
            })?;
        Ok(Response::new(pb::ListProgramsResponse {
            programs,
            next_page_token,
        }))
    }
}
