//! `spoc.v1.CatalogService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, MAX_IMPORT_OBJECTS, required};
use super::pb::{self, catalog_service_server::CatalogService};
use super::validate as check;
use crate::engine::Engine;
use crate::error::Error;
use crate::offload;

/// Serves the catalog over the engine.
pub struct CatalogApi {
    engine: Arc<Engine>,
}

impl CatalogApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn upsert_skill(
        &self,
        request: Request<pb::UpsertSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        let skill = convert::skill("skill", required("skill", request.into_inner().skill)?)?;
        Ok(Response::new(self.engine.upsert_skill(skill).await?.into()))
    }

    async fn get_skill(
        &self,
        request: Request<pb::GetSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        let id = check::id("skill_id", &request.into_inner().skill_id)?;
        Ok(Response::new(self.engine.skill(&id)?.into()))
    }

    async fn list_skills(
        &self,
        request: Request<pb::ListSkillsRequest>,
    ) -> Result<Response<pb::ListSkillsResponse>, Status> {
        let pb::ListSkillsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (skills, next_page_token) =
            check::page_of("ListSkills", page_size, &page_token, |after, limit| {
                self.engine.list_skills(after, limit)
            })?;
        Ok(Response::new(pb::ListSkillsResponse {
            skills,
            next_page_token,
        }))
    }

    async fn upsert_module(
        &self,
        request: Request<pb::UpsertModuleRequest>,
    ) -> Result<Response<pb::Module>, Status> {
        let module = convert::module("module", required("module", request.into_inner().module)?)?;
        Ok(Response::new(
            self.engine.upsert_module(module).await?.into(),
        ))
    }

    async fn get_module(
        &self,
        request: Request<pb::GetModuleRequest>,
    ) -> Result<Response<pb::Module>, Status> {
        let id = check::iri_id("module_id", &request.into_inner().module_id)?;
        Ok(Response::new(self.engine.module(&id)?.into()))
    }

    async fn list_modules(
        &self,
        request: Request<pb::ListModulesRequest>,
    ) -> Result<Response<pb::ListModulesResponse>, Status> {
        let pb::ListModulesRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (modules, next_page_token) =
            check::page_of("ListModules", page_size, &page_token, |after, limit| {
                self.engine.list_modules(after, limit)
            })?;
        Ok(Response::new(pb::ListModulesResponse {
            modules,
            next_page_token,
        }))
    }

    async fn import_catalog(
        &self,
        request: Request<pb::ImportCatalogRequest>,
    ) -> Result<Response<pb::ImportCatalogResponse>, Status> {
        let pb::ImportCatalogRequest {
            skills,
            modules,
            items,
        } = request.into_inner();
        for (field, len) in [
            ("skills", skills.len()),
            ("modules", modules.len()),
            ("items", items.len()),
        ] {
            if len > MAX_IMPORT_OBJECTS {
                return Err(Error::invalid(
                    field,
                    format!("must hold at most {MAX_IMPORT_OBJECTS} entries, got {len}"),
                )
                .into());
            }
        }
        let skills = skills
            .into_iter()
            .enumerate()
            .map(|(i, s)| convert::skill(&format!("skills[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        let modules = modules
            .into_iter()
            .enumerate()
            .map(|(i, m)| convert::module(&format!("modules[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        let items = items
            .into_iter()
            .enumerate()
            .map(|(i, it)| convert::item(&format!("items[{i}]"), it))
            .collect::<Result<Vec<_>, _>>()?;
        let counts = pb::ImportCatalogResponse {
            skills_upserted: skills.len() as i32,
            modules_upserted: modules.len() as i32,
            items_upserted: items.len() as i32,
        };
        self.engine
            .import_catalog_items(skills, modules, items)
            .await?;
        Ok(Response::new(counts))
    }

    async fn upsert_items(
        &self,
        request: Request<pb::UpsertItemsRequest>,
    ) -> Result<Response<pb::UpsertItemsResponse>, Status> {
        let pb::UpsertItemsRequest { items } = request.into_inner();
        if items.is_empty() || items.len() > MAX_IMPORT_OBJECTS {
            return Err(Error::invalid(
                "items",
                format!(
                    "must hold 1 to {MAX_IMPORT_OBJECTS} entries, got {}",
                    items.len()
                ),
            )
            .into());
        }
        let items = items
            .into_iter()
            .enumerate()
            .map(|(i, it)| convert::item(&format!("items[{i}]"), it))
            .collect::<Result<Vec<_>, _>>()?;
        let items_upserted = items.len() as i32;
        let replayed = self.engine.upsert_items(items).await?;
        Ok(Response::new(pb::UpsertItemsResponse {
            items_upserted,
            statements_replayed: replayed as i32,
        }))
    }

    async fn get_item(
        &self,
        request: Request<pb::GetItemRequest>,
    ) -> Result<Response<pb::Item>, Status> {
        let id = check::iri_id("item_id", &request.into_inner().item_id)?;
        Ok(Response::new(self.engine.item(&id)?.into()))
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsResponse>, Status> {
        let pb::ListItemsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (items, next_page_token) =
            check::page_of("ListItems", page_size, &page_token, |after, limit| {
                self.engine.list_items(after, limit)
            })?;
        Ok(Response::new(pb::ListItemsResponse {
            items,
            next_page_token,
        }))
    }

    async fn list_unmapped_activities(
        &self,
        request: Request<pb::ListUnmappedActivitiesRequest>,
    ) -> Result<Response<pb::ListUnmappedActivitiesResponse>, Status> {
        let pb::ListUnmappedActivitiesRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let limit = check::page_size("page_size", page_size)?;
        let scope = "ListUnmappedActivities";
        let after = check::page_token("page_token", &page_token, scope)?
            .map(|key| String::from_utf8_lossy(&key).into_owned());
        // Every waiting statement is resolved again: off the workers.
        let engine = self.engine.clone();
        let (activities, next) =
            offload::blocking(async move { engine.unmapped_activities(after.as_deref(), limit) })
                .await??;
        Ok(Response::new(pb::ListUnmappedActivitiesResponse {
            activities: activities.into_iter().map(Into::into).collect(),
            next_page_token: check::next_page_token(next.map(String::into_bytes), scope),
        }))
    }

    async fn map_activity(
        &self,
        request: Request<pb::MapActivityRequest>,
    ) -> Result<Response<pb::MapActivityResponse>, Status> {
        let (activity_id, target) = convert::map_activity(request.into_inner())?;
        let report = self.engine.map_activity(&activity_id, target).await?;
        Ok(Response::new(pb::MapActivityResponse {
            replayed: report.replayed as i32,
            still_waiting: report.still_waiting as i32,
        }))
    }
}
