//! Every RPC over plain HTTP with JSON: the Connect protocol
//! (<https://connectrpc.com/docs/protocol>) on the HTTP listener, for LMS
//! backends without a gRPC stack (Moodle in PHP, Canvas in Ruby, Open edX
//! in Python), which can call the engine with curl's equivalent.
//!
//! | request | reply |
//! |---|---|
//! | `POST /spoc.v1.<Service>/<Method>`, `Content-Type: application/json` or `application/proto` | 200 with the message in the same codec, or Connect's error JSON with the HTTP status of its code |
//! | `POST /spoc.v1.AlertService/WatchAlerts`, `application/connect+json` or `+proto`, one enveloped request | 200, one envelope per `AlertEvent`, then the end message (`{}` or `{"error": ...}`) |
//! | an unknown service or method of `spoc.v1` | 404, code `unimplemented` |
//! | another content type | 415 |
//!
//! `Connect-Protocol-Version: 1` is accepted (not required, so that a bare
//! curl call works); `Connect-Timeout-Ms` bounds the call. No compression.
//!
//! This module only speaks the protocol: every call is a gRPC call made in
//! process to the stack the gRPC listener serves ([`bridge`]), so keys,
//! roles, scopes, limits and errors are the gRPC ones. It knows messages
//! only through the descriptor set ([`schema`]), never as generated types.

pub mod bridge;
pub mod error;
pub mod frame;
pub mod schema;

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost_reflect::MethodDescriptor;
use tokio::time::Instant;
use tonic::Code;
use tracing::Instrument;

use crate::domain::limits::MAX_MESSAGE_BYTES;
use crate::server::{ApiStack, InProcessService};
use bridge::Call;
use error::ConnectError;
use frame::{FLAG_COMPRESSED, Frames};
use schema::Codec;

/// Largest request body in JSON, in bytes: JSON spells a message out, so
/// it gets twice the protobuf limit; the message it makes is then held to
/// [`MAX_MESSAGE_BYTES`] by the gRPC decoder, as a gRPC call is.
pub const MAX_JSON_BODY_BYTES: usize = 2 * MAX_MESSAGE_BYTES;

/// The content types a Connect call may use, for 415 replies.
const ACCEPTED: &str =
    "application/json, application/proto, application/connect+json, application/connect+proto";

/// The Connect routes, calling `stack` in process.
pub fn routes(stack: &ApiStack) -> Router {
    Router::new()
        // Only our package: other two-segment paths (`/xapi/...`) stay
        // the router's.
        .route("/spoc.v1.{service}/{method}", post(call))
        .with_state(stack.in_process())
}

/// How the caller frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `application/<codec>`: the bare message.
    Unary,
    /// `application/connect+<codec>`: enveloped messages.
    Streaming,
}

/// `POST /spoc.v1.{service}/{method}`.
async fn call(
    State(service): State<InProcessService>,
    Path((service_name, method_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let service_name = format!("spoc.v1.{service_name}");
    let span = tracing::info_span!("connect", method = %format!("/{service_name}/{method_name}"));
    async move {
        let Some(method) = schema::method(&service_name, &method_name) else {
            return ConnectError::new(
                Code::Unimplemented,
                format!("no method /{service_name}/{method_name}"),
            )
            .into_response_with(StatusCode::NOT_FOUND);
        };
        if method.is_client_streaming() {
            return ConnectError::new(Code::Unimplemented, "client streaming is not served")
                .into_response();
        }
        let wanted = if method.is_server_streaming() {
            Framing::Streaming
        } else {
            Framing::Unary
        };
        let codec = match content_type(&headers) {
            Some((framing, codec)) if framing == wanted => codec,
            _ => return unsupported_media_type(wanted),
        };
        let prepared = prepare(&method, &headers, wanted, codec, body).await;
        let call = |deadline| Call {
            method: method.clone(),
            codec,
            headers: headers.clone(),
            deadline,
        };
        match (wanted, prepared) {
            (Framing::Unary, Ok((message, deadline))) => {
                bridge::unary(service, call(deadline), message).await
            }
            (Framing::Unary, Err(error)) => error.into_response(),
            (Framing::Streaming, Ok((message, deadline))) => {
                bridge::server_stream(service, call(deadline), message)
            }
            (Framing::Streaming, Err(error)) => bridge::stream_error(codec, error),
        }
    }
    .instrument(span)
    .await
}

/// Checks the protocol headers, reads the body and turns it into the
/// request message (protobuf bytes); also the call's deadline.
async fn prepare(
    method: &MethodDescriptor,
    headers: &HeaderMap,
    framing: Framing,
    codec: Codec,
    body: Body,
) -> Result<(Bytes, Option<Instant>), ConnectError> {
    if headers
        .get("connect-protocol-version")
        .is_some_and(|version| version != "1")
    {
        return Err(ConnectError::new(
            Code::InvalidArgument,
            "connect-protocol-version must be 1",
        ));
    }
    let encoding = match framing {
        Framing::Unary => header::CONTENT_ENCODING.as_str(),
        Framing::Streaming => "connect-content-encoding",
    };
    if let Some(encoding) = headers.get(encoding).filter(|e| *e != "identity") {
        return Err(ConnectError::new(
            Code::Unimplemented,
            format!("{encoding:?} compression is not served: send uncompressed messages"),
        ));
    }
    let deadline = deadline(headers)?;
    let limit = match codec {
        Codec::Json => MAX_JSON_BODY_BYTES,
        Codec::Proto => MAX_MESSAGE_BYTES,
    };
    let envelope = match framing {
        Framing::Unary => 0,
        Framing::Streaming => frame::PREFIX_BYTES,
    };
    let body = axum::body::to_bytes(body, limit + envelope)
        .await
        .map_err(|e| {
            ConnectError::new(
                Code::ResourceExhausted,
                format!("request body unreadable or over {limit} bytes: {e}"),
            )
        })?;
    let message = match framing {
        Framing::Unary => body,
        Framing::Streaming => only_envelope(body, limit)?,
    };
    let input = method.input();
    let message = bridge::transcode(message.len(), move || {
        codec.request_to_proto(&input, message)
    })
    .await?;
    Ok((message, deadline))
}

/// The framing and codec a `Content-Type` names (parameters such as
/// `charset=utf-8` ignored).
fn content_type(headers: &HeaderMap) -> Option<(Framing, Codec)> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    let subtype = media.strip_prefix("application/")?;
    match subtype.strip_prefix("connect+") {
        Some(codec) => Some((Framing::Streaming, Codec::from_name(codec)?)),
        None => Some((Framing::Unary, Codec::from_name(subtype)?)),
    }
}

/// 415, naming what the method takes.
fn unsupported_media_type(wanted: Framing) -> Response {
    let expected = match wanted {
        Framing::Unary => "application/json or application/proto",
        Framing::Streaming => "application/connect+json or application/connect+proto",
    };
    let mut response = (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("this method takes Content-Type {expected}\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert("accept-post", HeaderValue::from_static(ACCEPTED));
    response
}

/// The deadline `Connect-Timeout-Ms` sets (at most 10 digits).
fn deadline(headers: &HeaderMap) -> Result<Option<Instant>, ConnectError> {
    let Some(value) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let millis = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ConnectError::new(
                Code::InvalidArgument,
                "connect-timeout-ms must be a positive integer of at most 10 digits",
            )
        })?;
    Ok(Some(Instant::now() + Duration::from_millis(millis)))
}

/// The one message of a streaming request body (server streaming takes
/// exactly one).
fn only_envelope(body: Bytes, limit: usize) -> Result<Bytes, ConnectError> {
    let bad = |message: String| ConnectError::new(Code::InvalidArgument, message);
    let mut frames = Frames::new(limit);
    frames.push(&body);
    let envelope = frames
        .next_frame()
        .map_err(|e| ConnectError::new(Code::ResourceExhausted, e))?
        .ok_or_else(|| bad("the request body holds no whole enveloped message".into()))?;
    if envelope.flags & FLAG_COMPRESSED != 0 {
        return Err(bad(
            "the request message is flagged compressed, but no encoding was declared".into(),
        ));
    }
    if frames.leftover() != 0 {
        return Err(bad(
            "a server-streaming call takes exactly one request message".into(),
        ));
    }
    Ok(envelope.payload)
}
