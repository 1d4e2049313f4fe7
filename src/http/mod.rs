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
//! | `/console/` | the web console for trainers and managers ([`console`]) |

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod connect;
pub mod console;
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
use axum::{Json, Router, middleware};
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::server::ApiStack;

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
    /// Statements requests in flight per API key (`limits.rs`).
    pub per_key: Arc<limits::PerKey>,
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
        per_key: Arc::new(limits::PerKey::default()),
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
    let stack = ApiStack::new(engine, crate::domain::limits::DEFAULT_MAX_IN_FLIGHT);
    serve_with(stack, listener, shutdown).await
}

/// [`serve`], with the Connect routes ([`connect`]) calling `stack`, the
/// one the gRPC listener serves.
pub async fn serve_with(
    stack: ApiStack,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with_options(
        stack,
        listener,
        shutdown,
        console::ConsoleOptions::default(),
    )
    .await
}

/// [`serve_with`], the console deployed as `console` says (cookies marked
/// `Secure` under TLS).
pub async fn serve_with_options(
    stack: ApiStack,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    console: console::ConsoleOptions,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let engine = stack.engine().clone();
    let app = router(engine.clone())
        .merge(connect::routes(&stack))
        .merge(console::routes(engine.clone(), console));
    accept_loop(listener, app, shutdown).await;
    engine.store().flush_at_stop()?;
    Ok(())
}

/// Time a connection has to send a request's headers (idle keep-alive
/// connections included): a client trickling its headers (slowloris) is
/// cut off instead of holding a connection and its task forever. Bodies
/// have their own limit (`limits::BODY_READ_TIMEOUT`).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long data written to a connection may stay unacknowledged before
/// the kernel gives the connection up (TCP_USER_TIMEOUT, Linux; since
/// Linux 5.11 also a receive window left shut that long: a client that
/// stops reading mid-reply is cut off too, which for a server is as
/// good). A browser
/// that went away without closing (a lid shut, a network change) leaves a
/// half-open connection, and its console event stream holds one of the
/// session's stream slots until the kernel's retransmissions give up,
/// about 15 minutes by default. The stream's keep-alive every 15 s is data
/// the peer must acknowledge, so a dead peer is now found within about a
/// minute.
pub const UNACKNOWLEDGED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// Socket options of an accepted connection: TCP_NODELAY (a reply is
/// written in pieces, and Nagle's algorithm would hold the last one back
/// for a delayed ACK) and [`UNACKNOWLEDGED_TIMEOUT`]. Best effort: a
/// connection is served without them rather than refused.
fn tune(tcp: &tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(UNACKNOWLEDGED_TIMEOUT));
}

/// Accepts connections and serves `app` on each (HTTP/1.1 with
/// [`HEADER_READ_TIMEOUT`]) until `shutdown`; then lets every connection
/// finish its request in flight and returns. `axum::serve` has no header
/// timeout, hence this loop.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (open, all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!(error = %err, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tune(&tcp);
        let service = TowerToHyperService::new(app.clone().map_request(
            |r: axum::http::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
        ));
        let (mut stopping, open) = (stopping.clone(), open.clone());
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { stopping.wait_for(|s| *s).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    stop.send_replace(true);
    drop(open);
    let mut all_closed = all_closed;
    // Resolves once every connection task dropped its sender.
    let _ = all_closed.recv().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted connections get TCP_NODELAY and the bound on
    /// unacknowledged data (a browser gone without closing is found within
    /// a minute, and its console stream's slot freed).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_connections_give_up_on_a_silent_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (tcp, _) = accepted.unwrap();
        let before = socket2::SockRef::from(&tcp).tcp_user_timeout().unwrap();
        assert_eq!(before, None, "the kernel's default");
        tune(&tcp);
        assert!(tcp.nodelay().unwrap());
        assert_eq!(
            socket2::SockRef::from(&tcp).tcp_user_timeout().unwrap(),
            Some(UNACKNOWLEDGED_TIMEOUT)
        );
        drop(client);
    }
}
