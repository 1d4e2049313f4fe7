//! Connecting CLI commands to a running service over gRPC.
//!
//! Commands that load or read live data (`spoc learners import`, `spoc
//! cohorts form`, `spoc alerts ...`) go through the same API as any client,
//! so they get the service's validation and never open the store behind its
//! back. Every typed client is built by [`Service`], so every call carries
//! the API key: no command can forget it.

use crate::api::auth::BearerKey;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::api::pb::alert_service_client::AlertServiceClient;
use crate::api::pb::backup_service_client::BackupServiceClient;
use crate::api::pb::catalog_service_client::CatalogServiceClient;
use crate::api::pb::cohort_service_client::CohortServiceClient;
use crate::api::pb::learner_service_client::LearnerServiceClient;
use crate::api::pb::mastery_service_client::MasteryServiceClient;
use crate::api::pb::program_service_client::ProgramServiceClient;
use crate::api::pb::remediation_service_client::RemediationServiceClient;
use crate::api::pb::report_service_client::ReportServiceClient;

/// The boxed error every CLI command returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Address used when neither `--addr` nor `SPOC_ADDR` is given: where
/// `spoc serve` listens by default.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// How long to wait for the service to accept the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest reply accepted, in bytes: an HTML report of a large program is
/// bigger than tonic's 4 MiB default.
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// The connection flags shared by client commands.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// Address of the running service (`host:port`, `http://host:port` or
    /// `https://host:port`).
    #[arg(long, env = "SPOC_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// API key, sent as `authorization: Bearer <key>` on every call.
    #[arg(long, env = "SPOC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// PEM file of the certificate authority that signed the service's
    /// certificate (for `https://` addresses).
    #[arg(long, env = "SPOC_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl ClientArgs {
    /// Flags for a plain-text address and an optional key (the demo, tests).
    pub fn new(addr: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            addr: addr.into(),
            api_key,
            tls_ca: None,
        }
    }
}

/// The key interceptor for `--api-key` (none or blank: calls go out
/// without a key). A key that cannot be a header value is refused here
/// rather than on every call.
fn bearer(key: Option<&str>) -> Result<BearerKey, BoxError> {
    match key.map(str::trim).filter(|k| !k.is_empty()) {
        None => Ok(BearerKey::none()),
        Some(key) => BearerKey::new(key).map_err(|_| "--api-key must be printable ASCII".into()),
    }
}

/// A channel whose every request carries the API key.
pub type AuthChannel = InterceptedService<Channel, BearerKey>;

/// A connection to a running service; hands out typed clients that share
/// its channel and its key.
#[derive(Debug, Clone)]
pub struct Service {
    channel: Channel,
    auth: BearerKey,
    /// The URL connected to, for messages.
    pub url: String,
}

/// Builds one typed client with the key interceptor and the reply limit.
macro_rules! client {
    ($name:ident, $client:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " client carrying the API key.")]
        pub fn $name(&self) -> $client<AuthChannel> {
            $client::with_interceptor(self.channel.clone(), self.auth.clone())
                .max_decoding_message_size(MAX_REPLY_BYTES)
        }
    };
}

impl Service {
    /// Connects, with a clear error when nobody answers or the flags are
    /// wrong (an `https://` address needs `--tls-ca`).
    pub async fn connect(args: &ClientArgs) -> Result<Self, BoxError> {
        let auth = bearer(args.api_key.as_deref())?;
        let addr = args.addr.trim();
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let mut endpoint = Channel::from_shared(url.clone())
            .map_err(|e| format!("invalid --addr {addr:?}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT);
        if url.starts_with("https://") {
            let ca = args.tls_ca.as_ref().ok_or(
                "an https:// address needs --tls-ca FILE (the PEM of the CA that signed the service's certificate)",
            )?;
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read --tls-ca {}: {e}", ca.display()))?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| format!("TLS setup for {url}: {e}"))?;
        } else if args.tls_ca.is_some() {
            return Err(format!("--tls-ca is given but {url} is not an https:// address").into());
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to the service at {url}: {e}"))?;
        Ok(Self { channel, auth, url })
    }

    client!(catalog, CatalogServiceClient, "catalog");
    client!(learners, LearnerServiceClient, "learner");
    client!(programs, ProgramServiceClient, "program");
    client!(mastery, MasteryServiceClient, "mastery");
    client!(remediation, RemediationServiceClient, "remediation");
    client!(cohorts, CohortServiceClient, "cohort");
    client!(alerts, AlertServiceClient, "alert");
    client!(reports, ReportServiceClient, "report");
    client!(backup, BackupServiceClient, "backup");
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn bearer_header_is_added_only_with_a_key() {
        let mut with = bearer(Some(" k-123 ")).unwrap();
        let request = with.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer k-123"
        );
        let mut without = bearer(None).unwrap();
        let request = without.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(bearer(Some("bad\nkey")).is_err());
        assert!(
            bearer(Some("  "))
                .unwrap()
                .call(tonic::Request::new(()))
                .unwrap()
                .metadata()
                .get("authorization")
                .is_none()
        );
        assert!(
            !format!("{with:?}").contains("k-123"),
            "Debug must not print the key"
        );
    }
}
