//! Assembles the gRPC server: our services behind the API key check,
//! health, reflection, limits, optional TLS.
//!
//! Both `spoc serve` and the integration tests go through [`serve`], so the
//! tests exercise exactly the stack that runs in production.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tower::layer::util::{Identity as NoLayer, Stack};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::util::MapErrLayer;
use tower::{BoxError, ServiceBuilder};

use crate::api::admin::AdminApi;
use crate::api::alerts::AlertApi;
use crate::api::auth::AuthLayer;
use crate::api::backup::BackupApi;
use crate::api::catalog::CatalogApi;
use crate::api::cohorts::CohortApi;
use crate::api::learners::LearnerApi;
use crate::api::mastery::MasteryApi;
use crate::api::pb;
use crate::api::pb::admin_service_server::AdminServiceServer;
use crate::api::pb::alert_service_server::AlertServiceServer;
use crate::api::pb::backup_service_server::BackupServiceServer;
use crate::api::pb::catalog_service_server::CatalogServiceServer;
use crate::api::pb::cohort_service_server::CohortServiceServer;
use crate::api::pb::learner_service_server::LearnerServiceServer;
use crate::api::pb::mastery_service_server::{MasteryService, MasteryServiceServer};
use crate::api::pb::program_service_server::ProgramServiceServer;
use crate::api::pb::remediation_service_server::RemediationServiceServer;
use crate::api::pb::report_service_server::ReportServiceServer;
use crate::api::programs::ProgramApi;
use crate::api::remediation::RemediationApi;
use crate::api::reports::ReportApi;
use crate::domain::limits::{DEFAULT_MAX_IN_FLIGHT, MAX_MESSAGE_BYTES, REQUEST_TIMEOUT};
use crate::engine::Engine;

/// Concurrent requests served per connection; more wait in the transport.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;

/// HTTP/2 connection flow-control window. h2 bounds the small DATA frames
/// a connection may hold unread to half of it (a flood guard); at the
/// 64 KiB default, a few hundred queued small gRPC requests on one
/// connection under overload were taken for a flood and the whole
/// connection was closed (GOAWAY ENHANCE_YOUR_CALM, measured with
/// `benches/overload.rs`) instead of the excess being shed. With streams
/// per connection capped at [`CONCURRENCY_PER_CONNECTION`] (advertised as
/// MAX_CONCURRENT_STREAMS, so clients queue on their side), 1 MiB admits
/// every stream's unread frames and bounds what one connection can make
/// the server buffer.
pub const CONNECTION_WINDOW_BYTES: u32 = 1 << 20;

/// Limits a deployment may tune.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Global load-shedding limit: requests in flight over every
    /// connection. Past it a call fails fast with RESOURCE_EXHAUSTED
    /// instead of queueing, so memory stays bounded under overload.
    pub max_in_flight: usize,
    /// The server's certificate chain and key: serve over TLS (rustls).
    pub tls: Option<Identity>,
    /// Longest a client may take over its TLS handshake
    /// ([`TLS_HANDSHAKE_TIMEOUT`] unless a test wants it shorter).
    pub tls_handshake_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            tls: None,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Longest a client may take over its TLS handshake: a connection that
/// opens and sends nothing is closed then, instead of holding its slot.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every connection is pinged this often (HTTP/2 PING) and closed when the
/// ping is not answered within [`PING_TIMEOUT`]: a client gone without
/// closing (a half-open connection) would otherwise hold its `WatchAlerts`
/// stream, and the stream's place in the alert hub, until the kernel gives
/// up, about 15 minutes.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

/// How long a ping may go unanswered (see [`PING_INTERVAL`]).
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Accepted connections with TCP_NODELAY: a unary reply is several HTTP/2
/// frames, and Nagle's algorithm would hold the last ones back for a
/// delayed ACK (40 ms per call, measured).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves every service over plain HTTP/2 on `listener` until `shutdown`
/// resolves, then lets in-flight calls finish and flushes the store.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with(engine, listener, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit limits, and over TLS (rustls) when
/// `options.tls` holds the server's certificate chain and private key.
pub async fn serve_with(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stack = ApiStack::new(engine, options.max_in_flight);
    serve_stack_with(stack, listener, shutdown, options).await
}

/// A request into [`ApiStack::in_process`]: a gRPC request (HTTP/2
/// semantics, framed body) built in memory.
pub type InProcessRequest = http::Request<tonic::body::Body>;

/// What [`ApiStack::in_process`] answers: the gRPC response, whose body
/// carries the framed messages and the `grpc-status` trailers (or, for a
/// call refused before its handler, `grpc-status` in the headers). Its
/// error is the load shedder's RESOURCE_EXHAUSTED `Status`, boxed.
pub type InProcessService =
    tower::util::BoxCloneSyncService<InProcessRequest, http::Response<tonic::body::Body>, BoxError>;

/// Our gRPC services behind the load shedder and the key check, built once
/// per process. The gRPC listener serves it ([`serve_stack`]), and the
/// HTTP listener's Connect bridge (`http/connect`) calls it in process
/// ([`ApiStack::in_process`]): keys, roles, scopes, message-size limits,
/// requests in flight and errors are one implementation for both
/// protocols, and cannot drift apart.
#[derive(Clone)]
pub struct ApiStack {
    engine: Arc<Engine>,
    /// `spoc.v1.*` services only (health and reflection are gRPC's own).
    routes: Routes,
    /// Their names, which the health service reports as serving.
    names: Arc<[&'static str]>,
    /// The permits of requests in flight, shared by both listeners.
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    /// The admission of expensive calls (`api/admission.rs`), shared by
    /// both listeners.
    admission: crate::api::admission::Admission,
}

impl ApiStack {
    /// The engine's services, with at most `max_in_flight` requests in
    /// flight over both listeners.
    pub fn new(engine: Arc<Engine>, max_in_flight: usize) -> Self {
        let mastery = MasteryApi::new(engine.clone());
        Self::with_mastery(engine, max_in_flight, mastery)
    }

    /// [`ApiStack::new`], with `mastery` answering `spoc.v1.MasteryService`
    /// in place of the engine's: the ingest bench measures what the stack
    /// alone costs a RecordAttempts call with handlers that skip the
    /// engine (`benches/ingest.rs`, the floors).
    pub fn with_mastery<M: MasteryService>(
        engine: Arc<Engine>,
        max_in_flight: usize,
        mastery: M,
    ) -> Self {
        // Every service but the backup one decodes requests of up to
        // MAX_MESSAGE_BYTES.
        macro_rules! bounded {
            ($server:ident, $service:expr) => {
                $server::new($service).max_decoding_message_size(MAX_MESSAGE_BYTES)
            };
        }
        let services = Services::default()
            .add(bounded!(AdminServiceServer, AdminApi::new(engine.clone())))
            .add(bounded!(
                CatalogServiceServer,
                CatalogApi::new(engine.clone())
            ))
            .add(bounded!(
                LearnerServiceServer,
                LearnerApi::new(engine.clone())
            ))
            .add(bounded!(
                ProgramServiceServer,
                ProgramApi::new(engine.clone())
            ))
            .add(bounded!(MasteryServiceServer, mastery))
            .add(bounded!(
                RemediationServiceServer,
                RemediationApi::new(engine.clone())
            ))
            .add(bounded!(
                CohortServiceServer,
                CohortApi::new(engine.clone())
            ))
            .add(bounded!(AlertServiceServer, AlertApi::new(engine.clone())))
            .add(bounded!(
                ReportServiceServer,
                ReportApi::new(engine.clone())
            ))
            .add(BackupServiceServer::new(BackupApi::new(engine.clone())));
        Self {
            engine,
            routes: services.routes.prepare(),
            names: services.names.into(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1))),
            max_in_flight,
            admission: crate::api::admission::Admission::default(),
        }
    }

    /// The engine behind the services.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// What stands in front of every route, outermost first: load shedding
    /// over both listeners (a shared semaphore of `max_in_flight` permits;
    /// a request that finds none is refused with RESOURCE_EXHAUSTED at
    /// once instead of queueing), then the key and role check
    /// (`api/auth.rs`; health and reflection pass without a key).
    fn front(&self) -> Front<impl Fn(BoxError) -> BoxError + Clone + use<>> {
        ServiceBuilder::new()
            .map_err(overloaded(self.max_in_flight))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(
                self.in_flight.clone(),
            ))
            .layer(AuthLayer::new(self.engine.clone(), self.admission.clone()))
    }

    /// The services as one tower service, for a caller in this process: the
    /// same routes behind the same [`ApiStack::front`] as the gRPC
    /// listener. Per-connection limits (HTTP/2 streams, tonic's timeout)
    /// belong to the transport the caller brings: the Connect bridge
    /// applies [`REQUEST_TIMEOUT`] itself.
    pub fn in_process(&self) -> InProcessService {
        InProcessService::new(self.front().service(self.routes.clone()))
    }
}

/// Our `spoc.v1` services, each listed once: the routes, and the names
/// the health service reports as serving.
#[derive(Default)]
struct Services {
    routes: Routes,
    names: Vec<&'static str>,
}

impl Services {
    /// Adds `service` under its name.
    fn add<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }
}

/// The layers of [`ApiStack::front`], outermost last: `F` turns the load
/// shedder's refusal into RESOURCE_EXHAUSTED.
type Front<F> = ServiceBuilder<
    Stack<AuthLayer, Stack<GlobalConcurrencyLimitLayer, Stack<LoadShedLayer, MapErr<F>>>>,
>;
/// The outermost layer of [`Front`].
type MapErr<F> = Stack<MapErrLayer<F>, NoLayer>;

/// Turns the load shedder's refusal into a status a client can act on.
fn overloaded(max_in_flight: usize) -> impl Fn(BoxError) -> BoxError + Clone {
    move |err| {
        if err.is::<tower::load_shed::error::Overloaded>() {
            Box::new(tonic::Status::resource_exhausted(format!(
                "server overloaded: {max_in_flight} requests in flight; retry with backoff"
            )))
        } else {
            err
        }
    }
}

/// Serves `stack` (with health and reflection beside it) over HTTP/2 on
/// `listener`, over TLS when `tls` holds the server's certificate chain
/// and private key, until `shutdown` resolves; then lets in-flight calls
/// finish and flushes the store.
pub async fn serve_stack(
    stack: ApiStack,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<Identity>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let options = ServeOptions {
        tls,
        ..ServeOptions::default()
    };
    serve_stack_with(stack, listener, shutdown, options).await
}

/// [`serve_stack`] with the TLS identity and handshake time of `options`
/// (its `max_in_flight` is already in `stack`).
async fn serve_stack_with(
    stack: ApiStack,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let engine = stack.engine.clone();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in stack.names.iter() {
        health_reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    // Alert evaluation runs beside the server; watches end when shutdown
    // starts, so that graceful shutdown does not wait for open streams.
    engine.start_alerts()?;
    // Webhook delivery follows the alerts (`engine/webhooks`); what is in
    // flight at shutdown stays in the outbox for the next start.
    engine.start_webhooks()?;
    let watched = engine.clone();
    let shutdown = async move {
        shutdown.await;
        watched.signal_alerts_stop();
        watched.stop_webhooks();
    };

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let mut builder = Server::builder();
    if let Some(identity) = options.tls {
        builder = builder.tls_config(
            ServerTlsConfig::new()
                .identity(identity)
                .timeout(options.tls_handshake_timeout),
        )?;
    }
    builder
        // Per connection, tonic's own limit sheds the same way as the
        // global one (`load_shed`).
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .load_shed(true)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_concurrent_streams(CONCURRENCY_PER_CONNECTION as u32)
        .timeout(REQUEST_TIMEOUT)
        .http2_keepalive_interval(Some(PING_INTERVAL))
        .http2_keepalive_timeout(Some(PING_TIMEOUT))
        .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
        .layer(stack.front().into_inner())
        .add_routes(stack.routes.clone())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    engine.webhooks_stopped().await;
    engine.stop_alerts();

    engine.store().flush_at_stop()?;
    Ok(())
}

/// [`serve_with`], with `mastery` answering `spoc.v1.MasteryService` in
/// place of the engine's (see [`ApiStack::with_mastery`]).
pub async fn serve_with_mastery<M: MasteryService>(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
    mastery: M,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stack = ApiStack::with_mastery(engine, options.max_in_flight, mastery);
    serve_stack_with(stack, listener, shutdown, options).await
}
