//! Connecting CLI commands to a running service over gRPC.
//!
//! Commands that load or read live data (`spoc learners import`, `spoc
//! cohorts export`) go through the same API as any client, so they get the
//! service's validation and never open the store behind its back.

use std::time::Duration;

use clap::Args;
use tonic::transport::Channel;

/// The boxed error every CLI command returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Address used when neither `--addr` nor `SPOC_ADDR` is given: where
/// `spoc serve` listens by default.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// How long to wait for the service to accept the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection flag shared by client commands.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Address of the running service (`host:port` or `http://host:port`).
    #[arg(long, env = "SPOC_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
}

/// Opens a channel to the service, with a clear error when nobody answers.
pub async fn connect(addr: &str) -> Result<Channel, BoxError> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Channel::from_shared(url.clone())
        .map_err(|e| format!("invalid --addr {addr:?}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT);
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the service at {url}: {e}").into())
}

/// A small runtime for one client command: the CLI is otherwise
/// synchronous, and a command needs no more than one thread of I/O.
pub fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A refused call in words: the gRPC code and the service's message, which
/// names the offending field or object.
pub fn describe(what: &str, status: &tonic::Status) -> String {
    format!("{what}: {:?}: {}", status.code(), status.message())
}
