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
pub mod subscriptions;
pub mod validate;

/// Code generated from `proto/spoc/v1/*.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("spoc.v1");

    /// The descriptor set of our protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("spoc_v1_descriptor");
}

/// Runs a synchronous engine call through `offload::blocking` (the one way
/// off the runtime), with its errors and a panic mapped to a status.
pub(crate) async fn off_runtime<T, F>(
    engine: &std::sync::Arc<crate::engine::Engine>,
    work: F,
) -> Result<T, tonic::Status>
where
    T: Send + 'static,
    F: FnOnce(&crate::engine::Engine) -> crate::error::Result<T> + Send + 'static,
{
    let engine = std::sync::Arc::clone(engine);
    Ok(crate::offload::blocking(async move { work(&engine) }).await??)
}
