//! `spoc.v1.AdminService`: API keys (admin keys only, see `auth.rs`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::pb::{self, admin_service_server::AdminService};
use super::validate as check;
use crate::domain::access::{ApiKey, Role, Scope};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Most cohorts one trainer key may name.
pub const MAX_KEY_COHORTS: usize = 1000;

/// Serves key creation, revocation and listing over the engine.
pub struct AdminApi {
    engine: Arc<Engine>,
}

impl AdminApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

fn role_from_pb(field: &str, value: i32) -> Result<Role> {
    use pb::ApiKeyRole as R;
    match R::try_from(value) {
        Ok(R::Admin) => Ok(Role::Admin),
        Ok(R::Lms) => Ok(Role::Lms),
        Ok(R::Manager) => Ok(Role::Manager),
        Ok(R::Trainer) => Ok(Role::Trainer),
        Ok(R::Company) => Ok(Role::Company),
        Ok(R::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(field, format!("unknown role {value}"))),
    }
}

impl From<Role> for pb::ApiKeyRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::Lms => Self::Lms,
            Role::Manager => Self::Manager,
            Role::Trainer => Self::Trainer,
            Role::Company => Self::Company,
        }
    }
}

impl From<ApiKey> for pb::ApiKey {
    fn from(key: ApiKey) -> Self {
        // Destructured so that a new field (a hash!) is never sent by
        // accident: the secret hash is dropped here on purpose.
        let ApiKey {
            id,
            name,
            role,
            scope,
            secret_hash: _,
            created_at,
            revoked_at,
        } = key;
        let (cohort_ids, company_id) = match scope {
            Scope::All => (Vec::new(), String::new()),
            Scope::Cohorts(cohorts) => (cohorts.into_iter().collect(), String::new()),
            Scope::Company(company) => (Vec::new(), company),
        };
        Self {
            id,
            display_name: name,
            role: pb::ApiKeyRole::from(role) as i32,
            cohort_ids,
            company_id,
            create_time: Some(timestamp(created_at)),
            revoke_time: revoked_at.map(timestamp),
        }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let pb::CreateApiKeyRequest {
            role,
            cohort_ids,
            company_id,
            display_name,
        } = request.into_inner();
        let role = role_from_pb("role", role)?;
        if cohort_ids.len() > MAX_KEY_COHORTS {
            return Err(Error::invalid(
                "cohort_ids",
                format!("must name at most {MAX_KEY_COHORTS} cohorts"),
            )
            .into());
        }
        let cohorts = cohort_ids
            .iter()
            .enumerate()
            .map(|(i, c)| super::cohorts::cohort_id(&format!("cohort_ids[{i}]"), c))
            .collect::<Result<std::collections::BTreeSet<_>>>()?;
        let company = check::optional_id("company_id", &company_id)?;
        let name = check::text("display_name", &display_name)?;
        let scope = match (cohorts.is_empty(), company.is_empty()) {
            (true, true) => Scope::All,
            (false, true) => Scope::Cohorts(cohorts),
            (true, false) => Scope::Company(company),
            (false, false) => {
                return Err(Error::invalid(
                    "company_id",
                    "set cohort_ids (trainer) or company_id (company), not both",
                )
                .into());
            }
        };
        let (key, secret) = self.engine.create_api_key(&name, role, scope).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(key.into()),
            secret,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let id = check::id("key_id", &request.into_inner().key_id)?;
        let key = self.engine.revoke_api_key(&id).await?;
        Ok(Response::new(key.into()))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let pb::ListApiKeysRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let limit = check::page_size("page_size", page_size)?;
        let scope = "ListApiKeys";
        let after = check::page_token("page_token", &page_token, scope)?;
        let mut keys: Vec<ApiKey> = self
            .engine
            .api_keys()?
            .into_iter()
            .filter(|k| after.as_deref().is_none_or(|a| k.id.as_bytes() > a))
            .collect();
        let next = (keys.len() > limit).then(|| keys[limit - 1].id.as_bytes().to_vec());
        keys.truncate(limit);
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.into_iter().map(Into::into).collect(),
            next_page_token: check::next_page_token(next, scope),
        }))
    }
}
