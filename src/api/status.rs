//! The one mapping from [`Error`] to `tonic::Status`.
//!
//! Field errors carry a `google.rpc.BadRequest` detail naming the field, so
//! that a client library can point at it; missing objects carry a
//! `google.rpc.ResourceInfo`, and the field that named them when the
//! request named several ids.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;
use crate::offload::Panicked;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            Error::NotFound { kind, id, field } => {
                let mut details = ErrorDetails::with_resource_info(kind, id, "", "not found");
                // In a request naming several ids, which field held this one.
                if let Some(field) = field {
                    details.add_bad_request_violation(field, format!("{kind} not found"));
                }
                Status::with_error_details(Code::NotFound, message, details)
            }
            Error::AlreadyExists { .. } => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::Corrupt { .. } => {
                tracing::error!(%message, "corrupt stored value");
                Status::data_loss(message)
            }
            Error::Storage(_) => {
                tracing::error!(%message, "storage failure");
                Status::internal(message)
            }
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unavailable(_) => Status::unavailable(message),
        }
    }
}

impl From<Panicked> for Status {
    fn from(err: Panicked) -> Self {
        tracing::error!(error = %err, "a task of a call failed");
        Status::internal(err.to_string())
    }
}
