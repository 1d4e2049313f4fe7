//! The gRPC edge: generated code, validation, conversions, services.
//!
//! Only this module knows protobuf types. Each handler validates and
//! converts its request into domain values (`convert`, `validate`), calls the
//! engine, and converts the answer back; every error becomes a `Status` in
//! one place (`status`). Every call passes the key check of `auth` first;
//! the handlers that trainer and company keys may reach check their scope
//! through `scope`.

pub mod admin;
pub mod admission;
pub mod alerts;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod codec;
pub mod cohorts;
pub mod convert;
pub mod learners;
pub mod mastery;
pub mod pauses;
pub mod programs;
pub mod remediation;
pub mod reports;
pub mod scope;
pub mod status;
pub mod validate;

/// Runs a synchronous, possibly long engine call (cohort formation, a
/// report over every answer in scope) on tokio's blocking pool, so that the
/// async workers keep serving ingestion.
pub(crate) async fn off_runtime<T: Send + 'static>(
    engine: &std::sync::Arc<crate::engine::Engine>,
    call: impl FnOnce(&crate::engine::Engine) -> crate::error::Result<T> + Send + 'static,
) -> Result<T, tonic::Status> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || call(&engine))
        .await
        .map_err(task_failed)?
        .map_err(Into::into)
}

/// INTERNAL for an engine task on the blocking pool that panicked.
pub(crate) fn task_failed(err: tokio::task::JoinError) -> tonic::Status {
    tonic::Status::internal(format!("engine task failed: {err}"))
}

/// Code generated from `proto/spoc/v1/*.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("spoc.v1");

    /// The descriptor set of our protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("spoc_v1_descriptor");
}
