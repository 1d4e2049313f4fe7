//! Overload protection of the HTTP listener, as for gRPC (`server.rs`): a
//! bound on requests in flight past which a request is refused at once
//! (503, retry later) instead of queueing, a time limit per request, and
//! the key checked before a statements body is read, so that unknown
//! callers cannot make the service buffer 8 MiB bodies.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::HttpError;
use super::{AppState, auth};
use crate::domain::access::XAPI_STATEMENTS;
use crate::domain::limits::REQUEST_TIMEOUT;

/// Requests served at once; more are refused with 503. A batch of 100
/// statements takes ~5 ms of CPU, so this is seconds of work queued.
pub const MAX_IN_FLIGHT: usize = 256;

/// The shared bound on requests in flight.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// A bound of `permits` requests.
    pub fn new(permits: usize) -> Self {
        Self(Arc::new(Semaphore::new(permits.max(1))))
    }
}

/// Refuses a request at once when the bound is reached; otherwise runs it
/// under [`REQUEST_TIMEOUT`], past which it is answered 503 (its effects,
/// if any, stay: statement ids make the retry idempotent).
pub async fn shed(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    let Ok(_permit) = in_flight.0.clone().try_acquire_owned() else {
        return HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded: too many requests in flight; retry with backoff",
        )
        .into_response();
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long; retry it (statement ids make it safe)",
        )
        .into_response(),
    }
}

/// Statements requests one API key may have in flight: one LMS sending
/// slow uploads cannot take every slot of [`MAX_IN_FLIGHT`] from the others.
pub const PER_KEY_IN_FLIGHT: usize = 32;
/// Time to receive a statements body once its headers are in: a slow
/// upload is cut (408) instead of holding a slot for the whole request
/// timeout.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Statements requests in flight per key id.
#[derive(Debug, Default)]
pub struct PerKey(parking_lot::Mutex<std::collections::HashMap<String, usize>>);

impl PerKey {
    /// A slot for `key`, or `None` when it has [`PER_KEY_IN_FLIGHT`].
    fn enter(self: &Arc<Self>, key: &str) -> Option<KeySlot> {
        let mut counts = self.0.lock();
        let count = counts.entry(key.to_string()).or_insert(0);
        if *count >= PER_KEY_IN_FLIGHT {
            return None;
        }
        *count += 1;
        Some(KeySlot {
            of: self.clone(),
            key: key.to_string(),
        })
    }
}

/// A key's slot, given back when dropped.
struct KeySlot {
    of: Arc<PerKey>,
    key: String,
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut counts = self.of.0.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Before the body of a statements request is read: 401 / 403 for the
/// key, 413 at once for a declared `Content-Length` over the limit, 429
/// past the key's requests in flight; then the body is read within
/// [`BODY_READ_TIMEOUT`] (408 otherwise).
pub async fn statements_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let caller = match auth::authorize(&state.engine, request.headers(), XAPI_STATEMENTS) {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > super::MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let Some(_slot) = state.per_key.enter(&caller.key_id) else {
        return HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this API key has {PER_KEY_IN_FLIGHT} statements requests in flight; \
                 retry with backoff"
            ),
        )
        .into_response();
    };
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, super::MAX_BODY_BYTES);
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            let too_big = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if too_big {
                return too_large();
            }
            return HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {err}"),
            )
            .into_response();
        }
        Err(_) => {
            return HttpError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s; send it again",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// 413 for a body over the limit.
fn too_large() -> Response {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is larger than {} bytes; send fewer statements per request",
            super::MAX_BODY_BYTES
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn past_the_bound_a_request_is_refused_at_once() {
        let entered = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::new(tokio::sync::Notify::new());
        let (inside, held) = (entered.clone(), gate.clone());
        let app = Router::new()
            .route(
                "/slow",
                get(move || {
                    let (inside, held) = (inside.clone(), held.clone());
                    async move {
                        inside.notify_one();
                        held.notified().await;
                        "done"
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(InFlight::new(1), shed));
        let request = || Request::builder().uri("/slow").body(Body::empty()).unwrap();
        let first = tokio::spawn(app.clone().oneshot(request()));
        // The first request holds the only permit once inside its handler.
        entered.notified().await;
        let second = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        gate.notify_one();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.status(), StatusCode::OK);
    }
}
