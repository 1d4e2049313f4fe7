//! A service started in this process on a fresh data folder, reached
//! through a real gRPC client on loopback: how the evaluation commands
//! (`eval-alerts`, `simulate-grpc`) drive the engine exactly as an LMS
//! would, without a second process to manage.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::{BoxError, ClientArgs, Service};
use crate::engine::params::ParamSet;
use crate::engine::{DEFAULT_MASTERY_THRESHOLD, Engine, EngineConfig};
use crate::store::Store;

/// The file that marks a scratch folder as this module's to wipe.
pub const MARKER: &str = ".spoc-scratch";

/// The running service: its engine (for what no RPC shows, such as
/// whether the alert evaluation is idle) and an admin client.
pub struct InProcess {
    /// The engine behind the service.
    pub engine: Arc<Engine>,
    /// A client with the folder's admin key.
    pub service: Service,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), BoxError>>,
}

impl InProcess {
    /// Starts a service on `dir` with the shipped models and the default
    /// threshold, on an ephemeral loopback port. `dir` is a scratch folder:
    /// one left by an earlier start (it holds [`MARKER`]) is wiped, an
    /// empty or missing one is used, anything else is refused untouched.
    pub async fn start(dir: &Path) -> Result<Self, BoxError> {
        if dir.exists() {
            let empty = std::fs::read_dir(dir)?.next().is_none();
            if !empty && !dir.join(MARKER).exists() {
                return Err(format!(
                    "refusing to wipe {}: it is not an empty folder nor one this command made",
                    dir.display()
                )
                .into());
            }
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join(MARKER),
            "a scratch folder of spoc; wiped on the next run\n",
        )?;
        let engine = Arc::new(Engine::new(
            Store::open(dir)?,
            EngineConfig {
                mastery_threshold: DEFAULT_MASTERY_THRESHOLD,
                params: ParamSet::load(None)?,
            },
        )?);
        engine.bootstrap_admin_key(dir)?;
        let key = std::fs::read_to_string(dir.join(crate::engine::access::ADMIN_KEY_FILE))?
            .trim()
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::serve(engine.clone(), listener, async {
            let _ = stopped.await;
        }));
        let service = Service::connect(&ClientArgs::new(address.to_string(), Some(key))).await?;
        Ok(Self {
            engine,
            service,
            stop,
            server,
        })
    }

    /// Stops the service and waits for it (the store is flushed).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
