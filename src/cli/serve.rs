//! `spoc serve`: run the service until SIGINT or SIGTERM; on a new store,
//! hand out the first admin key; optionally over TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::engine::params::ParamSet;
use crate::engine::{DEFAULT_MASTERY_THRESHOLD, Engine, EngineConfig};
use crate::store::Store;

/// Options of `spoc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for gRPC.
    #[arg(long, env = "SPOC_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Address to listen on for HTTP: xAPI statements (`/xapi/statements`),
    /// every RPC in JSON (Connect, `/spoc.v1.<Service>/<Method>`) and
    /// Prometheus metrics (`/metrics`).
    #[arg(long, env = "SPOC_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Folder holding the sled store (created if missing).
    #[arg(long, env = "SPOC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// P(mastered) at or above which a skill counts as mastered.
    #[arg(long, env = "SPOC_MASTERY_THRESHOLD", default_value_t = DEFAULT_MASTERY_THRESHOLD)]
    pub mastery_threshold: f64,
    /// BKT parameter file; defaults to the shipped models/bkt-defaults.json.
    #[arg(long, env = "SPOC_BKT_PARAMS")]
    pub bkt_params: Option<PathBuf>,
    /// Alert model file (behind schedule, stopping); defaults to the
    /// shipped models/risk.json.
    #[arg(long, env = "SPOC_RISK_MODEL")]
    pub risk_model: Option<PathBuf>,
    /// Seconds between two full alert passes (time-based rules such as
    /// inactivity); touched learners are evaluated at once regardless.
    #[arg(long, env = "SPOC_ALERT_PASS_SECONDS", default_value_t = 60)]
    pub alert_pass_seconds: u64,
    /// Open alerts allowed per 25 learners of a cohort (most urgent first,
    /// the rest in the digest); 0 for no budget.
    #[arg(long, env = "SPOC_ALERTS_PER_25", default_value_t = crate::engine::alerts::DEFAULT_ALERTS_PER_25)]
    pub alerts_per_25: u32,
    /// Requests in flight over all connections before new ones are refused
    /// at once with RESOURCE_EXHAUSTED (load shedding).
    #[arg(long, env = "SPOC_MAX_IN_FLIGHT", default_value_t = crate::domain::limits::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Memory budget in MiB: sled's cache and every cache of the engine
    /// are sized from it (see OPERATIONS.md, "Memory").
    #[arg(long, env = "SPOC_MEMORY_MB", default_value_t = crate::store::budget::DEFAULT_MB,
          value_parser = clap::value_parser!(u64).range(crate::store::budget::MIN_MB..))]
    pub memory_mb: u64,
    /// PEM certificate chain: with --tls-key, serve over TLS (rustls).
    #[arg(long, env = "SPOC_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SPOC_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow webhook targets on private, loopback, link-local and other
    /// non-public addresses, and plain http (a receiver on this host or
    /// network); refused otherwise, against server-side request forgery.
    #[arg(long, env = "SPOC_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Milliseconds before the first webhook retry (doubling after each
    /// failure); tests shorten it.
    #[arg(
        long,
        env = "SPOC_WEBHOOK_RETRY_FIRST_MS",
        default_value_t = 5_000,
        hide = true
    )]
    pub webhook_retry_first_ms: u64,
    /// Longest pause between two webhook retries, in milliseconds.
    #[arg(
        long,
        env = "SPOC_WEBHOOK_RETRY_MAX_MS",
        default_value_t = 3_600_000,
        hide = true
    )]
    pub webhook_retry_max_ms: u64,
    /// How long a webhook message is retried before it becomes a dead
    /// letter, in seconds.
    #[arg(
        long,
        env = "SPOC_WEBHOOK_RETRY_WINDOW_SECONDS",
        default_value_t = 86_400,
        hide = true
    )]
    pub webhook_retry_window_seconds: u64,
}

/// The webhook options the flags ask for.
fn webhook_options(
    args: &ServeArgs,
) -> Result<crate::engine::webhooks::WebhookOptions, Box<dyn std::error::Error + Send + Sync>> {
    use std::time::Duration;
    if args.webhook_retry_first_ms == 0 || args.webhook_retry_max_ms < args.webhook_retry_first_ms {
        return Err(
            "--webhook-retry-first-ms must be at least 1 and at most --webhook-retry-max-ms".into(),
        );
    }
    if args.webhook_retry_window_seconds == 0 {
        return Err("--webhook-retry-window-seconds must be at least 1".into());
    }
    Ok(crate::engine::webhooks::WebhookOptions {
        allow_private: args.webhook_allow_private,
        retry: crate::domain::webhooks::retry::RetryPolicy {
            first_delay: Duration::from_millis(args.webhook_retry_first_ms),
            max_delay: Duration::from_millis(args.webhook_retry_max_ms),
            window: Duration::from_secs(args.webhook_retry_window_seconds),
        },
        ..Default::default()
    })
}

/// The TLS identity from the PEM files, if both are given.
fn tls_identity(
    args: &ServeArgs,
) -> Result<Option<tonic::transport::Identity>, Box<dyn std::error::Error + Send + Sync>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    Ok(Some(tonic::transport::Identity::from_pem(
        read(cert)?,
        read(key)?,
    )))
}

/// Opens the store and serves until a shutdown signal.
pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    check_numbers(&args)?;
    let tls = tls_identity(&args)?;
    let under_tls = tls.is_some();
    let webhooks = webhook_options(&args)?;
    if tls.is_some() && !args.http_listen.ip().is_loopback() {
        // The xAPI listener speaks plain HTTP: with TLS asked for, API keys
        // must not cross a network in clear on the side door.
        return Err(format!(
            "--http-listen {} is not a loopback address, but the xAPI listener has no TLS of \
             its own: keep it on 127.0.0.1 behind a TLS-terminating proxy",
            args.http_listen
        )
        .into());
    }
    let engine = open_engine(&args, webhooks)?;
    let data_dir = args.data_dir.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let http_listener = tokio::net::TcpListener::bind(args.http_listen).await?;
        tracing::info!(
            address = %listener.local_addr()?,
            http_address = %http_listener.local_addr()?,
            data_dir = %args.data_dir.display(),
            tls = tls.is_some(),
            "spoc-engine serving gRPC and HTTP (xAPI, Connect)"
        );
        // One signal stops both listeners; either one ending (an error)
        // stops the other too.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop = Arc::new(stop);
        let on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            on_signal.send_replace(true);
        });
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        };
        let (grpc_stop, http_stop) = (stop.clone(), stop);
        // One service stack for both listeners: Connect calls on the HTTP
        // listener go through the gRPC services, key check and bound on
        // requests in flight.
        let stack = crate::server::ApiStack::new(engine.clone(), args.max_in_flight);
        let grpc = async {
            let outcome =
                crate::server::serve_stack(stack.clone(), listener, wait(stopped.clone()), tls)
                    .await;
            grpc_stop.send_replace(true);
            outcome
        };
        // Under TLS the HTTP listener sits behind a TLS-terminating proxy
        // (checked above): the console's cookies are then `Secure`.
        let console = crate::http::console::ConsoleOptions {
            secure_cookies: under_tls,
        };
        let http = async {
            let outcome = crate::http::serve_with_options(
                stack.clone(),
                http_listener,
                wait(stopped.clone()),
                console,
            )
            .await;
            http_stop.send_replace(true);
            outcome
        };
        let (grpc, http) = tokio::join!(grpc, http);
        grpc?;
        http?;
        engine.store().flush_at_stop()?;
        tracing::info!("stopped; store flushed");
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    // The runtime's tasks hold the engine: dropping them closes the store.
    drop(runtime);
    served?;
    // So that the next start does not replay the whole log (`page_table`).
    match crate::store::page_table::refresh(&data_dir) {
        Ok(took) => tracing::info!(seconds = took.as_secs_f64(), "sled snapshot written"),
        Err(err) => {
            tracing::warn!(%err, "sled snapshot not written; the next start replays the log")
        }
    }
    Ok(())
}

/// Refuses numeric options out of their range.
fn check_numbers(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !(args.mastery_threshold > 0.0 && args.mastery_threshold <= 1.0) {
        return Err(format!(
            "--mastery-threshold must be in (0, 1], got {}",
            args.mastery_threshold
        )
        .into());
    }
    if args.max_in_flight == 0 {
        return Err("--max-in-flight must be at least 1".into());
    }
    if args.alert_pass_seconds == 0 {
        return Err("--alert-pass-seconds must be at least 1".into());
    }
    Ok(())
}

/// Opens the store and the engine with the options' parameters, models
/// and settings, and writes the first admin key of a new store.
fn open_engine(
    args: &ServeArgs,
    webhooks: crate::engine::webhooks::WebhookOptions,
) -> Result<Arc<Engine>, Box<dyn std::error::Error + Send + Sync>> {
    let params = ParamSet::load(args.bkt_params.as_deref())?;
    let risk_model = args
        .risk_model
        .as_deref()
        .map(crate::engine::alerts::load_risk_model)
        .transpose()?;
    let store = Store::open_with(
        &args.data_dir,
        crate::store::budget::MemoryBudget::from_mb(args.memory_mb),
    )?;
    let engine = Arc::new(Engine::new(
        store,
        EngineConfig {
            mastery_threshold: args.mastery_threshold,
            params,
        },
    )?);
    if let Some(model) = risk_model {
        engine.set_risk_model(Some(model));
    }
    engine.set_alert_pass_interval(std::time::Duration::from_secs(args.alert_pass_seconds));
    if webhooks.allow_private {
        tracing::warn!(
            "--webhook-allow-private: webhooks may reach private and loopback addresses over \
             plain http"
        );
    }
    engine.set_webhook_options(webhooks);
    engine.set_alert_budget(args.alerts_per_25);
    if let Some(path) = engine.bootstrap_admin_key(&args.data_dir)? {
        tracing::warn!(
            path = %path.display(),
            "new store: wrote the first admin API key there (mode 0600); \
             use it to create other keys, then keep it safe or revoke it"
        );
    }
    Ok(engine)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (also what stops `spoc demo`).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight calls");
}
