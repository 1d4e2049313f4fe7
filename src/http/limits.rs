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

/// Requests served at once; more are refused with 503. A batch of 100
/// statements takes ~5 ms of CPU, so this is seconds of work queued.
pub const MAX_IN_FLIGHT: usize = 256;
/// A request still running after this is answered 503 (its effects, if
/// any, stay: statement ids make the retry idempotent).
pub const REQUEST_TIMEOUT: Duration = crate::server::REQUEST_TIMEOUT;

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
/// under [`REQUEST_TIMEOUT`].
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

/// 401 / 403 before the body of a statements request is read.
pub async fn statements_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match auth::authorize(&state.engine, request.headers(), XAPI_STATEMENTS) {
        Ok(_) => next.run(request).await,
        Err(err) => err.into_response(),
    }
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
