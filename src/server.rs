//! Assembles the gRPC server: our services behind the API key check,
//! health, reflection, limits, optional TLS.
//!
//! Both `spoc serve` and the integration tests go through [`serve`], so the
//! tests exercise exactly the stack that runs in production.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

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
use crate::engine::Engine;

/// Largest request accepted, in bytes: a full `ImportCatalog` fits, a
/// runaway client does not.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Concurrent requests served per connection; more wait in the transport.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;
/// A request still running after this is cancelled with DEADLINE_EXCEEDED
/// (streaming calls are exempt through their own keep-alive).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Requests in flight across all connections before new ones are refused
/// at once with RESOURCE_EXHAUSTED (`spoc serve --max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Limits a deployment may tune.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Global load-shedding limit: requests in flight over every
    /// connection. Past it a call fails fast with RESOURCE_EXHAUSTED
    /// instead of queueing, so memory stays bounded under overload.
    pub max_in_flight: usize,
    /// The server's certificate chain and key: serve over TLS (rustls).
    pub tls: Option<Identity>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            tls: None,
        }
    }
}

/// Turns the load shedder's refusal into a status a client can act on.
fn overloaded(max_in_flight: usize) -> impl Fn(tower::BoxError) -> tower::BoxError + Clone {
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
    let mastery = MasteryApi::new(engine.clone());
    serve_with_mastery(engine, listener, shutdown, options, mastery).await
}

/// [`serve_with`], with `mastery` answering `spoc.v1.MasteryService` in
/// place of the engine's: the ingest bench measures what the stack alone
/// costs a RecordAttempts call with handlers that skip the engine
/// (`benches/ingest.rs`, the floors).
pub async fn serve_with_mastery<M: MasteryService>(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
    mastery: M,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AdminServiceServer<AdminApi>>()
        .await;
    health_reporter
        .set_serving::<CatalogServiceServer<CatalogApi>>()
        .await;
    health_reporter
        .set_serving::<LearnerServiceServer<LearnerApi>>()
        .await;
    health_reporter
        .set_serving::<ProgramServiceServer<ProgramApi>>()
        .await;
    health_reporter
        .set_serving::<MasteryServiceServer<MasteryApi>>()
        .await;
    health_reporter
        .set_serving::<RemediationServiceServer<RemediationApi>>()
        .await;
    health_reporter
        .set_serving::<CohortServiceServer<CohortApi>>()
        .await;
    health_reporter
        .set_serving::<AlertServiceServer<AlertApi>>()
        .await;
    health_reporter
        .set_serving::<ReportServiceServer<ReportApi>>()
        .await;
    health_reporter
        .set_serving::<BackupServiceServer<BackupApi>>()
        .await;
    // Alert evaluation runs beside the server; watches end when shutdown
    // starts, so that graceful shutdown does not wait for open streams.
    engine.start_alerts()?;
    let watched = engine.clone();
    let shutdown = async move {
        shutdown.await;
        watched.signal_alerts_stop();
    };

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let mut builder = Server::builder();
    if let Some(identity) = options.tls.clone() {
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    builder
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .load_shed(true)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_concurrent_streams(CONCURRENCY_PER_CONNECTION as u32)
        .timeout(REQUEST_TIMEOUT)
        .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
        // Load shedding over every connection: a shared semaphore of
        // `max_in_flight` permits; a request that finds none is refused
        // with RESOURCE_EXHAUSTED at once instead of queueing. Per
        // connection, tonic's own limit sheds the same way (`load_shed`).
        .layer(
            tower::ServiceBuilder::new()
                .map_err(overloaded(options.max_in_flight))
                .load_shed()
                .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
                    Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1))),
                )),
        )
        // Then every call but health and reflection needs a key whose role
        // allows the method (see api/auth.rs).
        .layer(AuthLayer::new(engine.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AdminServiceServer::new(AdminApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            CatalogServiceServer::new(CatalogApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            LearnerServiceServer::new(LearnerApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            ProgramServiceServer::new(ProgramApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            MasteryServiceServer::new(mastery).max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            RemediationServiceServer::new(RemediationApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            CohortServiceServer::new(CohortApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            AlertServiceServer::new(AlertApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            ReportServiceServer::new(ReportApi::new(engine.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(BackupServiceServer::new(BackupApi::new(engine.clone())))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    engine.stop_alerts();

    engine.store().flush()?;
    Ok(())
}
