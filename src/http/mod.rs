//! The HTTP edge: xAPI statements from LMSs, on a second listener of the
//! same process (`spoc serve --http-listen`).
//!
//! An LMS points its xAPI forwarder (Moodle's log store, Open edX's event
//! routing) at `/xapi/` as at a Learning Record Store; statements become
//! attempts and module events through the engine (`engine/xapi.rs`). This
//! module only does HTTP: routes, credentials ([`auth`]), the version
//! header ([`version`]), body limits, load shedding ([`limits`]) and the
//! xAPI status codes ([`error`]); statement validation is pure
//! (`domain::xapi`).
//!
//! | route | does |
//! |---|---|
//! | `POST /xapi/statements` | one statement or an array (at most [`MAX_STATEMENTS_PER_BATCH`]); 200 with their ids |
//! | `PUT /xapi/statements?statementId=` | one statement under that id; 204 |
//! | `GET /xapi/about` | the xAPI versions spoken (1.0.3, 2.0.0) |
//! | `GET /xapi/unresolved` | statements waiting for the catalog (admin) |
//! | `POST /xapi/unresolved/replay` | apply those the catalog now resolves (admin) |
//! | `GET /metrics` | Prometheus counters |
//! | `POST /spoc.v1.<Service>/<Method>` | every RPC in JSON or protobuf, the Connect protocol ([`connect`]) |

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod connect;
pub mod error;
pub mod limits;
pub mod multipart;
pub mod statements;
pub mod version;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router, middleware};
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::server::ApiStack;
use error::HttpError;

/// Largest request body, in bytes (413 beyond): a batch of
/// [`MAX_STATEMENTS_PER_BATCH`] rich statements fits.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Most statements in one POST (413 beyond), as `RecordAttempts` allows.
pub const MAX_STATEMENTS_PER_BATCH: usize = 1000;
/// HTTP statuses counted in `spoc_xapi_requests_rejected_total`.
const COUNTED: [u16; 8] = [400, 401, 403, 404, 409, 413, 500, 503];

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Refused requests by status, for `/metrics`.
    pub rejected: Arc<Rejections>,
}

/// Counters of refused requests, one per counted status.
#[derive(Debug, Default)]
pub struct Rejections([AtomicU64; COUNTED.len()]);

impl Rejections {
    /// (status, count) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &AtomicU64)> {
        COUNTED.iter().copied().zip(self.0.iter())
    }

    fn count(&self, status: u16) {
        if let Some(i) = COUNTED.iter().position(|c| *c == status) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The routes, over a shared engine.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = AppState {
        engine,
        rejected: Arc::new(Rejections::default()),
    };
    let xapi = Router::new()
        .route(
            "/xapi/statements",
            post(statements::post).put(statements::put).route_layer(
                middleware::from_fn_with_state(state.clone(), limits::statements_key),
            ),
        )
        .route("/xapi/about", get(about))
        .route("/xapi/unresolved", get(admin::unresolved))
        .route("/xapi/unresolved/replay", post(admin::replay))
        .layer(middleware::from_fn_with_state(
            limits::InFlight::new(limits::MAX_IN_FLIGHT),
            limits::shed,
        ))
        .layer(middleware::from_fn(version::answer))
        .layer(middleware::map_response_with_state(
            state.clone(),
            count_rejections,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    xapi.route("/metrics", get(admin::metrics))
        .with_state(state)
}

/// Runs a request's work on tokio's blocking pool ([`crate::offload`]):
/// parsing a batch (up to 8 MiB of JSON) and ingesting it take
/// milliseconds of CPU between two awaits. `offload` bounds the jobs
/// running at once.
async fn off_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T, HttpError>> + Send + 'static,
) -> Result<T, HttpError> {
    crate::offload::offload(work).await.map_err(|e| {
        HttpError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("request task failed: {e}"),
        )
    })?
}

/// `GET /xapi/about`: the versions this endpoint speaks.
async fn about() -> impl IntoResponse {
    Json(serde_json::json!({ "version": version::SPOKEN }))
}

async fn count_rejections(State(state): State<AppState>, response: Response) -> Response {
    if response.status().is_client_error() || response.status().is_server_error() {
        state.rejected.count(response.status().as_u16());
    }
    response
}

/// Serves the HTTP routes on `listener` until `shutdown` resolves, lets
/// in-flight requests finish, then flushes the store (the gRPC server may
/// have stopped first). Connect calls get a service stack of their own,
/// with the default bound on requests in flight; [`serve_with`] shares the
/// gRPC listener's.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stack = ApiStack::new(engine, crate::server::DEFAULT_MAX_IN_FLIGHT);
    serve_with(stack, listener, shutdown).await
}

/// [`serve`], with the Connect routes ([`connect`]) calling `stack`, the
/// one the gRPC listener serves.
pub async fn serve_with(
    stack: ApiStack,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // TCP_NODELAY: a reply is written in pieces, and Nagle's algorithm
    // would hold the last one back for a delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let engine = stack.engine().clone();
    let app = router(engine.clone()).merge(connect::routes(&stack));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    engine.store().flush()?;
    Ok(())
}
