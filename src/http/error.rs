//! The HTTP edge's one error response: a status code from the xAPI
//! specification and a JSON body naming the bad field.
//!
//! [`crate::error::Error`] maps here the way `api/status.rs` maps it to
//! gRPC: invalid input is 400 with the field, a different statement under
//! a known id is 409, and so on.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;
use crate::offload::Panicked;

/// An error reply: `{"code": 400, "error": "bad_request", "field": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The offending field, e.g. `statement[3].result.score.scaled`.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    message: &'a str,
}

impl HttpError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            field: None,
            message: message.into(),
        }
    }

    /// A 400 naming `field`.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl From<Error> for HttpError {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidArgument { field, .. } => Self::bad_field(field, message),
            Error::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, message),
            Error::AlreadyExists { .. } => Self::new(StatusCode::CONFLICT, message),
            Error::FailedPrecondition(_) => Self::new(StatusCode::BAD_REQUEST, message),
            Error::Corrupt { .. } | Error::Storage(_) => {
                tracing::error!(%message, "xAPI request failed in storage");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
            Error::Unavailable(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, message),
            Error::Unauthenticated(_) => Self::new(StatusCode::UNAUTHORIZED, message),
            Error::PermissionDenied(_) => Self::new(StatusCode::FORBIDDEN, message),
        }
    }
}

impl From<Panicked> for HttpError {
    fn from(err: Panicked) -> Self {
        tracing::error!(error = %err, "a task of an xAPI request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let error = match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        };
        let body = Body {
            code: self.status.as_u16(),
            error,
            field: self.field.as_deref(),
            message: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"spoc-engine\", Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_take_xapi_codes() {
        let bad = HttpError::from(Error::invalid(
            "statement[3].result.score.scaled",
            "too big",
        ));
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            bad.field.as_deref(),
            Some("statement[3].result.score.scaled")
        );
        let conflict = HttpError::from(Error::AlreadyExists {
            kind: "statement",
            id: "x".into(),
            reason: "differs".into(),
        });
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        let forbidden = HttpError::new(StatusCode::FORBIDDEN, "no").into_response();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        let unauthorized = HttpError::new(StatusCode::UNAUTHORIZED, "no").into_response();
        assert!(
            unauthorized
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }
}
