//! The in-process call: a Connect request becomes a gRPC request (one
//! frame, the caller's metadata), goes through the very service stack the
//! gRPC listener serves ([`ApiStack::in_process`]: load shedding, the key
//! and role check, the handlers with their scope checks and message-size
//! limits), and the gRPC reply (frames, then `grpc-status` trailers)
//! becomes the Connect reply. Our services set no response metadata, so
//! none is relayed.
//!
//! [`ApiStack::in_process`]: crate::server::ApiStack::in_process

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use prost_reflect::MethodDescriptor;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Code, Status};
use tower::ServiceExt;
use tracing::Instrument;

use super::error::ConnectError;
use super::frame::{self, FLAG_COMPRESSED, FLAG_END_STREAM, Frames};
use super::schema::Codec;
use crate::domain::limits::REQUEST_TIMEOUT;
use crate::offload;
use crate::server::{InProcessRequest, InProcessService};

/// Request headers that are HTTP's or Connect's own, not call metadata.
const NOT_METADATA: [&str; 11] = [
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "accept",
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Stream messages relayed ahead of a slow reader before the relay waits.
const STREAM_BUFFER: usize = 16;

/// Messages larger than this, in bytes, are transcoded on the blocking
/// pool: JSON of a big batch or a long page is milliseconds of CPU, which
/// on a runtime worker would hold back the calls queued behind it.
const OFFLOAD_BYTES: usize = 64 * 1024;

/// Runs a transcoding of a `size`-byte message: inline when small, on the
/// blocking pool ([`offload::cpu`]) otherwise.
pub async fn transcode(
    size: usize,
    work: impl FnOnce() -> Result<Bytes, Status> + Send + 'static,
) -> Result<Bytes, ConnectError> {
    let outcome = if size <= OFFLOAD_BYTES {
        work()
    } else {
        offload::cpu(work)
            .await
            .map_err(|e| ConnectError::new(Code::Internal, e.to_string()))?
    };
    outcome.map_err(|status| ConnectError::from_status(&status))
}

/// One call to bridge.
pub struct Call {
    /// The method, as our descriptor set describes it.
    pub method: MethodDescriptor,
    /// The codec the caller writes and reads.
    pub codec: Codec,
    /// The caller's headers (the key, other metadata).
    pub headers: HeaderMap,
    /// When the call must be over (`Connect-Timeout-Ms`; a unary call also
    /// ends at the gRPC request timeout).
    pub deadline: Option<Instant>,
}

/// Answers a unary call whose request is `message` (protobuf bytes).
pub async fn unary(service: InProcessService, call: Call, message: Bytes) -> Response {
    let deadline = earliest(call.deadline, Instant::now() + REQUEST_TIMEOUT);
    let outcome = tokio::time::timeout_at(deadline, unary_reply(service, &call, message))
        .await
        .unwrap_or_else(|_| Err(too_late()));
    match outcome {
        Ok(body) => {
            let content_type = format!("application/{}", call.codec.name());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                Body::from(body),
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// Answers a server-streaming call whose request is `message`: always 200,
/// each reply an envelope, then the end message with the status.
pub fn server_stream(service: InProcessService, call: Call, message: Bytes) -> Response {
    let content_type = format!("application/connect+{}", call.codec.name());
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(relay_stream(service, call, message, sender).in_current_span());
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A server stream refused before the call (bad request, unknown
/// encoding): the end message alone.
pub fn stream_error(codec: Codec, error: ConnectError) -> Response {
    let content_type = format!("application/connect+{}", codec.name());
    let end = frame::encode(FLAG_END_STREAM, error.end_stream_json().as_bytes());
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], end).into_response()
}

/// The earlier of an optional deadline and `limit`.
fn earliest(deadline: Option<Instant>, limit: Instant) -> Instant {
    deadline.map_or(limit, |d| d.min(limit))
}

fn too_late() -> ConnectError {
    ConnectError::new(
        Code::DeadlineExceeded,
        "the call did not finish before its deadline",
    )
}

/// The unary reply body in the caller's codec.
async fn unary_reply(
    service: InProcessService,
    call: &Call,
    message: Bytes,
) -> Result<Bytes, ConnectError> {
    let response = send(service, call, message).await?;
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|status| ConnectError::from_status(&status))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    check_status(&trailers)?;
    let mut frames = Frames::new(usize::MAX);
    frames.push(&collected.to_bytes());
    let reply = frames
        .next_frame()
        .map_err(|e| ConnectError::new(Code::Internal, e))?
        .ok_or_else(|| ConnectError::new(Code::Internal, "the service sent no reply message"))?;
    check_uncompressed(&reply)?;
    let (codec, output) = (call.codec, call.method.output());
    transcode(reply.payload.len(), move || {
        codec.response_from_proto(&output, reply.payload)
    })
    .await
}

/// Relays a server stream into `sender`, then its end message; stops when
/// the caller goes away (the gRPC stream is dropped with it).
async fn relay_stream(
    service: InProcessService,
    call: Call,
    message: Bytes,
    sender: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let relay = relay_messages(service, &call, message, &sender);
    let outcome = match call.deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, relay)
            .await
            .unwrap_or_else(|_| Err(too_late())),
        None => relay.await,
    };
    let end = match outcome {
        Ok(()) => "{}".to_string(),
        // Nobody reads any more.
        Err(error) if error.code() == Code::Cancelled => return,
        Err(error) => error.end_stream_json(),
    };
    let end = frame::encode(FLAG_END_STREAM, end.as_bytes());
    let _ = sender.send(Ok(end)).await;
}

/// The messages of a server stream, each as a Connect envelope; `Ok` once
/// the service ended the stream with OK.
async fn relay_messages(
    service: InProcessService,
    call: &Call,
    message: Bytes,
    sender: &mpsc::Sender<Result<Bytes, Infallible>>,
) -> Result<(), ConnectError> {
    // As tonic's timeout on the gRPC listener: the reply must start within
    // the request timeout; the stream itself may last.
    let started = Instant::now() + REQUEST_TIMEOUT;
    let response = tokio::time::timeout_at(started, send(service, call, message))
        .await
        .unwrap_or_else(|_| Err(too_late()))?;
    let gone = || ConnectError::new(Code::Cancelled, "the caller went away");
    let mut body = response.into_body();
    let mut frames = Frames::new(usize::MAX);
    loop {
        let next = tokio::select! {
            next = body.frame() => next,
            () = sender.closed() => return Err(gone()),
        };
        let Some(next) = next else {
            return Err(ConnectError::new(
                Code::Internal,
                "the service ended the stream without a status",
            ));
        };
        let next = next.map_err(|status| ConnectError::from_status(&status))?;
        match next.into_data() {
            Ok(data) => {
                frames.push(&data);
                while let Some(reply) = frames
                    .next_frame()
                    .map_err(|e| ConnectError::new(Code::Internal, e))?
                {
                    let payload = relayed(call, reply)?;
                    let envelope = frame::encode(0, &payload);
                    sender.send(Ok(envelope)).await.map_err(|_| gone())?;
                }
            }
            Err(other) => {
                if let Ok(trailers) = other.into_trailers() {
                    return check_status(&trailers);
                }
            }
        }
    }
}

/// Calls the service stack; a call refused before its handler (no key,
/// wrong role, overload) is the error it carries.
async fn send(
    service: InProcessService,
    call: &Call,
    message: Bytes,
) -> Result<axum::http::Response<tonic::body::Body>, ConnectError> {
    let response = service
        .oneshot(grpc_request(call, message))
        .await
        .map_err(|err| match err.downcast::<Status>() {
            Ok(status) => ConnectError::from_status(&status),
            Err(err) => ConnectError::new(Code::Internal, err.to_string()),
        })?;
    // Trailers-only: a status in the headers and no message.
    if response.headers().contains_key("grpc-status") {
        check_status(response.headers())?;
    }
    Ok(response)
}

/// `Ok` if `headers` carry `grpc-status: 0`, the status as an error
/// otherwise (or INTERNAL when there is none).
fn check_status(headers: &HeaderMap) -> Result<(), ConnectError> {
    match Status::from_header_map(headers) {
        Some(status) if status.code() == Code::Ok => Ok(()),
        Some(status) => Err(ConnectError::from_status(&status)),
        None => Err(ConnectError::new(
            Code::Internal,
            "the service ended the call without a status",
        )),
    }
}

/// Refuses a compressed reply frame (the stack never compresses).
fn check_uncompressed(reply: &frame::Frame) -> Result<(), ConnectError> {
    if reply.flags & FLAG_COMPRESSED != 0 {
        return Err(ConnectError::new(
            Code::Internal,
            "the service sent a compressed message",
        ));
    }
    Ok(())
}

/// A reply frame of a stream (small: one event) in the caller's codec.
fn relayed(call: &Call, reply: frame::Frame) -> Result<Bytes, ConnectError> {
    check_uncompressed(&reply)?;
    call.codec
        .response_from_proto(&call.method.output(), reply.payload)
        .map_err(|status| ConnectError::from_status(&status))
}

/// The gRPC request of `call`, carrying `message` (protobuf bytes) and
/// the caller's metadata (its `authorization` header among them).
fn grpc_request(call: &Call, message: Bytes) -> InProcessRequest {
    let path = format!(
        "/{}/{}",
        call.method.parent_service().full_name(),
        call.method.name()
    );
    let body = http_body_util::Full::new(frame::encode(0, &message));
    let mut request = InProcessRequest::new(tonic::body::Body::new(body));
    *request.method_mut() = axum::http::Method::POST;
    *request.uri_mut() = path.parse().expect("a method path is a valid URI");
    *request.version_mut() = axum::http::Version::HTTP_2;
    let headers = request.headers_mut();
    for (name, value) in &call.headers {
        let name_text = name.as_str();
        if !NOT_METADATA.contains(&name_text)
            && !name_text.starts_with("connect-")
            && !name_text.starts_with("grpc-")
        {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    request
}
