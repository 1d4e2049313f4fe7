//! What tests of outside programs share (real xAPI clients, an LRS in
//! front): a `spoc serve` child with both listeners, an `lms` key and a
//! catalog whose items are the activities those programs send; tools
//! installed into a cache under `target/`; child processes bounded in
//! time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use spoc_engine::api::pb;

use super::{AuthChannel, Spoc, authed, connect_when_up, free_addr, mastery_of, skill};

/// The skill every item of [`Served::start`] tests.
pub const SKILL: &str = "xapi-clients";

/// A `spoc serve` child on free ports, with a temporary store.
pub struct Served {
    /// The gRPC listener.
    pub grpc: SocketAddr,
    /// The HTTP (xAPI) listener.
    pub http: SocketAddr,
    /// The store's first admin key.
    pub admin_key: String,
    /// An `lms` key, for xAPI clients.
    pub lms_key: String,
    _spoc: Spoc,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts the server, creates an `lms` key and a catalog of one skill
    /// ([`SKILL`]) tested by each of `items` (activity ids).
    pub async fn start(items: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (grpc, http) = (free_addr(), free_addr());
        let spoc = Spoc::start(dir.path(), grpc, &http.to_string(), &[]);
        let channel = connect_when_up(grpc).await;
        let admin_key = super::admin_key_in(dir.path());
        let admin = authed(channel, Some(&admin_key));
        let lms_key = pb::admin_service_client::AdminServiceClient::new(admin.clone())
            .create_api_key(pb::CreateApiKeyRequest {
                role: pb::ApiKeyRole::Lms as i32,
                display_name: "xAPI clients".into(),
                ..Default::default()
            })
            .await
            .expect("create lms key")
            .into_inner()
            .secret;
        pb::catalog_service_client::CatalogServiceClient::new(admin)
            .import_catalog(pb::ImportCatalogRequest {
                skills: vec![skill(SKILL, &[])],
                modules: vec![],
                items: items
                    .iter()
                    .map(|id| pb::Item {
                        id: id.to_string(),
                        skill_ids: vec![SKILL.into()],
                        ..Default::default()
                    })
                    .collect(),
            })
            .await
            .expect("import catalog");
        wait_for_listener(http).await;
        Self {
            grpc,
            http,
            admin_key,
            lms_key,
            _spoc: spoc,
            _dir: dir,
        }
    }

    /// The xAPI endpoint, as clients are configured with it.
    pub fn endpoint(&self) -> String {
        format!("http://{}/xapi/", self.http)
    }

    /// A channel with the admin key.
    pub async fn channel(&self) -> AuthChannel {
        authed(connect_when_up(self.grpc).await, Some(&self.admin_key))
    }

    /// (P(mastered), attempt count) of `learner` on [`SKILL`], through
    /// gRPC.
    pub async fn mastery(&self, learner: &str) -> (f64, i32) {
        mastery(self.channel().await, learner, SKILL).await
    }
}

/// (P(mastered), attempt count) of `learner` on `skill`.
pub async fn mastery(channel: AuthChannel, learner: &str, skill: &str) -> (f64, i32) {
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channel);
    let reply = mastery_of(&mut client, learner, &[skill]).await;
    let skill = &reply.skills[0];
    (skill.p_mastered, skill.attempt_count)
}

/// Waits until something accepts connections at `addr`.
pub async fn wait_for_listener(addr: SocketAddr) {
    super::eventually(&format!("a listener at {addr}"), async || {
        tokio::net::TcpStream::connect(addr).await.ok()
    })
    .await;
}

/// A folder of the install cache under `target/` (kept between runs).
pub fn cache(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("cache folder");
    dir
}

/// Whether `program --version` runs.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the test named `what` is switched off by the environment
/// variable `switch` (set to 1): says so on stderr.
pub fn skipped(switch: &str, what: &str) -> bool {
    let off = std::env::var(switch).is_ok_and(|v| v == "1");
    if off {
        eprintln!("{what}: skipped ({switch}=1)");
    }
    off
}

/// Runs `command` to its end, killed past `limit` (a bound against a hung
/// child, not a timing assertion); its output.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    // Drain the pipes on threads, so that a chatty child cannot block.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut buf).ok();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut buf).ok();
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs an install step, panicking with its output when it fails.
pub fn install_step(command: &mut Command, limit: Duration) {
    let output = run_bounded(command, limit);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `stamp` in `dir` records `content` (an install of it is done);
/// [`mark_installed`] writes it after a successful install.
pub fn installed(dir: &Path, content: &str) -> bool {
    std::fs::read_to_string(dir.join(".installed")).is_ok_and(|s| s == content)
}

/// Records that `content` is installed in `dir`.
pub fn mark_installed(dir: &Path, content: &str) {
    std::fs::write(dir.join(".installed"), content).expect("write install stamp");
}
