//! Connect's error model: a gRPC status (code, message, the
//! `grpc-status-details-bin` details) as Connect's error JSON, with the
//! HTTP status Connect maps each code to.
//!
//! Every error the gRPC stack answers (`api/status.rs` made it) passes
//! through [`ConnectError::from_status`] unchanged in code, message and
//! details: a BadRequest naming the field reaches a JSON caller as
//! `{"type": "google.rpc.BadRequest", "value": <base64 protobuf>, "debug":
//! {"fieldViolations": [{"field": ..., "description": ...}]}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde::Serialize;
use serde_json::Value;
use tonic::{Code, Status};

use super::schema;

/// Connect's error JSON.
#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "<[Detail]>::is_empty")]
    details: &'a [Detail],
}

/// One error detail in Connect's JSON form.
#[derive(Debug, Clone, Serialize)]
struct Detail {
    /// The message type's full name, e.g. `google.rpc.BadRequest`.
    #[serde(rename = "type")]
    type_name: String,
    /// The protobuf bytes, unpadded standard base64.
    value: String,
    /// The message in JSON, when its type is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<Value>,
}

/// A Connect error, ready to be written as a unary reply or as the error of
/// a stream's end message.
#[derive(Debug, Clone)]
pub struct ConnectError {
    code: Code,
    message: String,
    /// The `details` array.
    details: Vec<Detail>,
}

impl ConnectError {
    /// An error of `code` without details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The Connect form of a gRPC status, details included.
    pub fn from_status(status: &Status) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_string(),
            details: details(status.details()),
        }
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The HTTP status of a unary reply with this error.
    pub fn http_status(&self) -> StatusCode {
        http_status(self.code)
    }

    /// `{"code", "message", "details"}`, in that order (empty parts left
    /// out).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&ErrorJson {
            code: code_name(self.code),
            message: &self.message,
            details: &self.details,
        })
        .expect("an error serializes")
    }

    /// The end message of a stream that ends with this error.
    pub fn end_stream_json(&self) -> String {
        format!(r#"{{"error":{}}}"#, self.to_json())
    }

    /// The unary reply with an explicit HTTP status (an unknown procedure
    /// is 404, as an HTTP router answers it, with the code
    /// `unimplemented`).
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = (status, self.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        self.into_response_with(status)
    }
}

/// Connect's name of a gRPC code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Cancelled => "canceled",
        Code::Unknown | Code::Ok => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status Connect's protocol maps `code` to.
pub fn http_status(code: Code) -> StatusCode {
    let status = match code {
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => 500,
    };
    StatusCode::from_u16(status).expect("valid HTTP status")
}

/// The details of an encoded `google.rpc.Status`, in Connect's form: type
/// name without the `type.googleapis.com/` prefix, the protobuf value in
/// unpadded standard base64, and its JSON as `debug` when the type is
/// known (the `google.rpc` error details are).
fn details(encoded: &[u8]) -> Vec<Detail> {
    if encoded.is_empty() {
        return Vec::new();
    }
    let Ok(status) = tonic_types::pb::Status::decode(encoded) else {
        tracing::warn!("grpc-status-details-bin does not decode; details dropped");
        return Vec::new();
    };
    status
        .details
        .into_iter()
        .map(|any| {
            let type_name = any
                .type_url
                .rsplit_once('/')
                .map_or(any.type_url.as_str(), |(_, name)| name)
                .to_string();
            let debug = schema::message(&type_name)
                .and_then(|descriptor| {
                    DynamicMessage::decode(descriptor, any.value.as_slice()).ok()
                })
                .and_then(|message| schema::to_json(&message).ok())
                .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
            Detail {
                type_name,
                value: STANDARD_NO_PAD.encode(&any.value),
                debug,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn a_bad_request_keeps_code_message_and_field() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "attempts[0].learner_id: must not be empty",
            ErrorDetails::with_bad_request_violation("attempts[0].learner_id", "must not be empty"),
        );
        let error = ConnectError::from_status(&status);
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
        let text = error.to_json();
        assert!(
            text.starts_with(r#"{"code":"invalid_argument","message":"#),
            "{text}"
        );
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["code"], "invalid_argument");
        assert_eq!(json["message"], "attempts[0].learner_id: must not be empty");
        let detail = &json["details"][0];
        assert_eq!(detail["type"], "google.rpc.BadRequest");
        assert_eq!(
            detail["debug"],
            json!({"fieldViolations": [{"field": "attempts[0].learner_id",
                "description": "must not be empty"}]})
        );
        let value = STANDARD_NO_PAD
            .decode(detail["value"].as_str().unwrap())
            .unwrap();
        let decoded = tonic_types::pb::BadRequest::decode(value.as_slice()).unwrap();
        assert_eq!(decoded.field_violations[0].field, "attempts[0].learner_id");
    }

    #[test]
    fn every_code_has_the_status_connect_gives_it() {
        for (code, name, status) in [
            (Code::Unauthenticated, "unauthenticated", 401),
            (Code::PermissionDenied, "permission_denied", 403),
            (Code::NotFound, "not_found", 404),
            (Code::ResourceExhausted, "resource_exhausted", 429),
            (Code::DeadlineExceeded, "deadline_exceeded", 504),
            (Code::FailedPrecondition, "failed_precondition", 400),
            (Code::Cancelled, "canceled", 499),
            (Code::Unimplemented, "unimplemented", 501),
        ] {
            assert_eq!(code_name(code), name);
            assert_eq!(http_status(code).as_u16(), status);
        }
    }
}
