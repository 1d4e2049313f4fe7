//! `POST /xapi/statements` and `PUT /xapi/statements?statementId=...`:
//! the statement resource of an LRS, write side.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::error::HttpError;
use super::multipart::{self, MediaType};
use super::{AppState, MAX_STATEMENTS_PER_BATCH, attachments, version};
use crate::clock::now_micros;
use crate::domain::xapi::statement::{Parsed, parse_body, uuid};
use crate::offload;

/// The query of a PUT.
#[derive(Debug, Deserialize)]
pub struct PutQuery {
    /// The id the statement is stored under.
    #[serde(rename = "statementId")]
    statement_id: Option<String>,
}

/// Stores one statement or an array; replies with their ids, in order.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<String>>, HttpError> {
    // Parsing a batch (up to 8 MiB of JSON) and ingesting it take
    // milliseconds of CPU between two awaits: off the workers.
    offload::blocking(async move {
        let parsed = parse_batch(&headers, body)?;
        Ok(Json(state.engine.ingest_statements(parsed).await?))
    })
    .await?
}

/// The statements of a POST body.
fn parse_batch(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<Parsed>, HttpError> {
    let value = read(headers, body)?;
    if let Value::Array(items) = &value {
        if items.len() > MAX_STATEMENTS_PER_BATCH {
            return Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a batch holds at most {MAX_STATEMENTS_PER_BATCH} statements, got {}",
                    items.len()
                ),
            ));
        }
    }
    Ok(parse_body(&value, now_micros())?)
}

/// Stores one statement under `statementId` (or, without the parameter,
/// under the statement's own id); 204 when stored (or already stored with
/// the same content), 409 when another is stored there.
pub async fn put(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PutQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    offload::blocking(async move {
        let parsed = parse_put(&headers, query, body)?;
        state.engine.ingest_statements(parsed).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await?
}

/// The statement of a PUT body, under the id its query names.
fn parse_put(
    headers: &HeaderMap,
    query: Result<Query<PutQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<Parsed>, HttpError> {
    let mut value = read(headers, body)?;
    let Query(query) = query.map_err(|e| HttpError::bad_field("statementId", e.body_text()))?;
    let Value::Object(map) = &mut value else {
        return Err(HttpError::bad_field(
            "statement",
            "a PUT carries one statement (a JSON object)",
        ));
    };
    // Ralph forwards a PUT without the parameter, its statement carrying
    // the id: the statement's own id stands in for it.
    let id = match (query.statement_id, map.get("id")) {
        (Some(id), _) => id,
        (None, Some(Value::String(id))) => id.clone(),
        (None, _) => {
            return Err(HttpError::bad_field(
                "statementId",
                "query parameter is required (unless the statement has an id)",
            ));
        }
    };
    let id = uuid("statementId", &id)?;
    match map.get("id").and_then(Value::as_str) {
        Some(given) if given.to_ascii_lowercase() != id => {
            return Err(HttpError::bad_field(
                "statement.id",
                format!("'{given}' differs from the statementId parameter '{id}'"),
            ));
        }
        Some(_) => {}
        None => {
            map.insert("id".into(), Value::String(id));
        }
    }
    Ok(parse_body(&value, now_micros())?)
}

/// Checks version and content type, and decodes the statements: a JSON
/// body, or the first part of a `multipart/mixed` one whose attachment
/// parts are checked and dropped ([`attachments`]). The key was checked
/// before the body was read (`limits::statements_key`).
///
/// A body without `Content-Type` is read as JSON; an
/// `application/octet-stream` body that opens with a boundary line is
/// read as `multipart/mixed` ([`multipart::opening_boundary`]). A JSON
/// body's
/// attachments need no `fileUrl`: LRSs forwarding statements send them
/// without their attachments' data, which the engine would drop anyway.
fn read(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Value, HttpError> {
    version::check(headers)?;
    let kind = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            Some(MediaType::parse(text).ok_or_else(|| unsupported(text))?)
        }
    };
    let body =
        body.map_err(|rejection| HttpError::new(rejection.status(), rejection.body_text()))?;
    match kind {
        Some(kind) if kind.essence == "multipart/mixed" => {
            let boundary = kind.param("boundary").ok_or_else(|| {
                HttpError::bad_field("Content-Type", "multipart/mixed needs a boundary parameter")
            })?;
            attachments::statements(boundary, &body)
        }
        Some(kind) if kind.essence == "application/octet-stream" => {
            match multipart::opening_boundary(&body) {
                Some(boundary) => attachments::statements(boundary, &body),
                None => Err(unsupported(&kind.essence)),
            }
        }
        Some(kind) if kind.essence != "application/json" => Err(unsupported(&kind.essence)),
        _ => serde_json::from_slice(&body)
            .map_err(|e| HttpError::bad_field("statement", format!("body is not valid JSON: {e}"))),
    }
}

/// 400 naming `Content-Type` for a body neither JSON nor multipart/mixed.
fn unsupported(kind: &str) -> HttpError {
    HttpError::bad_field(
        "Content-Type",
        format!(
            "'{kind}' is not application/json or multipart/mixed (statements with attachments)"
        ),
    )
}
