//! `spoc serve`: run the service until SIGINT or SIGTERM.

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
    /// Folder holding the sled store (created if missing).
    #[arg(long, env = "SPOC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// P(mastered) at or above which a skill counts as mastered.
    #[arg(long, env = "SPOC_MASTERY_THRESHOLD", default_value_t = DEFAULT_MASTERY_THRESHOLD)]
    pub mastery_threshold: f64,
    /// BKT parameter file; defaults to the shipped models/bkt-defaults.json.
    #[arg(long, env = "SPOC_BKT_PARAMS")]
    pub bkt_params: Option<PathBuf>,
    /// Dropout model file; defaults to the shipped models/risk.json.
    #[arg(long, env = "SPOC_RISK_MODEL")]
    pub risk_model: Option<PathBuf>,
    /// Seconds between two full alert passes (time-based rules such as
    /// inactivity); touched learners are evaluated at once regardless.
    #[arg(long, env = "SPOC_ALERT_PASS_SECONDS", default_value_t = 60)]
    pub alert_pass_seconds: u64,
    /// Requests in flight over all connections before new ones are refused
    /// at once with RESOURCE_EXHAUSTED (load shedding).
    #[arg(long, env = "SPOC_MAX_IN_FLIGHT", default_value_t = crate::server::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
}

/// Opens the store and serves until a shutdown signal.
pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
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
    let params = ParamSet::load(args.bkt_params.as_deref())?;
    let risk_model = args
        .risk_model
        .as_deref()
        .map(crate::engine::alerts::load_risk_model)
        .transpose()?;
    let store = Store::open(&args.data_dir)?;
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
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        tracing::info!(
            address = %listener.local_addr()?,
            data_dir = %args.data_dir.display(),
            "spoc-engine serving gRPC"
        );
        let options = crate::server::ServeOptions {
            max_in_flight: args.max_in_flight,
        };
        crate::server::serve_with(engine, listener, shutdown_signal(), options).await?;
        tracing::info!("stopped; store flushed");
        Ok(())
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
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
