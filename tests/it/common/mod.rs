//! A real server on an ephemeral port with sled in a temporary folder, and
//! tonic clients to it. Every integration test starts here.
//!
//! The server hands out its first admin key as `spoc serve` does
//! (`DATA_DIR/admin-key`); every client built here carries it, unless built
//! with [`TestServer::channel_with`] for another key or none.

pub mod outside;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spoc_engine::api::auth::BearerKey;
use spoc_engine::api::pb;
use spoc_engine::engine::params::ParamSet;
use spoc_engine::engine::{Engine, EngineConfig};
use spoc_engine::server::{ServeOptions, serve_with};
use spoc_engine::store::Store;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel whose calls carry an API key (or none).
pub type AuthChannel = InterceptedService<Channel, BearerKey>;

/// `channel` sending `key` with every call (`None`: no key at all).
pub fn authed(channel: Channel, key: Option<&str>) -> AuthChannel {
    let bearer = match key {
        Some(key) => BearerKey::new(key).expect("key fits in a header"),
        None => BearerKey::none(),
    };
    InterceptedService::new(channel, bearer)
}

/// Learner `id` of company "c" speaking `language`, as the engine takes it.
pub fn engine_learner(id: &str, language: &str) -> spoc_engine::domain::learner::Learner {
    spoc_engine::domain::learner::Learner {
        id: id.into(),
        company_id: "c".into(),
        language: language.into(),
        time_zone: String::new(),
        display_name: String::new(),
    }
}

/// Program `id` over `skills` as the engine takes it: undated, with the
/// default rules.
pub fn engine_program(id: &str, skills: Vec<String>) -> spoc_engine::domain::learner::Program {
    spoc_engine::domain::learner::Program {
        external_ids: Vec::new(),
        id: id.into(),
        name: id.to_uppercase(),
        skill_ids: skills,
        cohort_rules: Default::default(),
        start_date: None,
        end_date: None,
        risk_rules: Default::default(),
    }
}

/// The first admin key that `spoc serve` wrote in `dir`.
pub fn admin_key_in(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("admin-key"))
        .expect("admin-key file")
        .trim()
        .to_string()
}

/// An engine on the store in `dir` with the shipped defaults, and the
/// store's first admin key (written there, as `spoc serve` does, on a new
/// store only; read from `dir/admin-key` otherwise).
pub fn engine_in(dir: &Path) -> (Arc<Engine>, String) {
    let store = Store::open(dir).expect("open store");
    let engine = Arc::new(
        Engine::new(
            store,
            EngineConfig {
                mastery_threshold: 0.95,
                params: ParamSet::load(None).expect("shipped params"),
            },
        )
        .expect("engine"),
    );
    engine.bootstrap_admin_key(dir).expect("admin key");
    let admin_key = admin_key_in(dir);
    (engine, admin_key)
}

/// Polls `check` every 20 ms until it returns `Some`, and returns that:
/// the one way a test waits for something the server does in the
/// background. Fails naming `what` after 60 s, a bound that only stops a
/// test that would hang (a debug build on a busy machine), never a timing.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain-text channel to `addr`, once a server accepts connections there
/// (it may still be starting, or replaying its log).
pub async fn connect_when_up(addr: SocketAddr) -> Channel {
    let endpoint = format!("http://{addr}");
    eventually(&format!("a server accepting at {endpoint}"), async || {
        Channel::from_shared(endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .ok()
    })
    .await
}

/// A loopback address free right now, for a child `spoc serve`.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// Opens the store in `dir`, waiting while a just-closed server's sled
/// threads still hold the folder's lock.
pub fn open_store(dir: &Path) -> Store {
    for _ in 0..250 {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("store does not open: {e}"),
        }
    }
    panic!("store lock never released");
}

/// A running server; dropping it without [`TestServer::stop`] aborts it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// The admin key every client of [`TestServer::channel`] sends.
    pub admin_key: String,
    /// The engine it serves, for settings no RPC changes (e.g. the alert
    /// budget).
    pub engine: Arc<Engine>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh temporary store.
    pub async fn start() -> Self {
        Self::start_with(ServeOptions::default()).await
    }

    /// Starts a server on a fresh temporary store with `options` (a
    /// load-shedding limit, TLS).
    pub async fn start_with(options: ServeOptions) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::serve(&dir, options).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server on the store in `dir` (which may hold data).
    pub async fn start_in(dir: &Path) -> Self {
        Self::serve(dir, ServeOptions::default()).await
    }

    async fn serve(dir: &Path, options: ServeOptions) -> Self {
        let (engine, admin_key) = engine_in(dir);
        let handle = engine.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(async move {
            serve_with(engine, listener, shutdown, options)
                .await
                .expect("server");
        });
        Self {
            addr,
            data_dir: dir.to_path_buf(),
            admin_key,
            engine: handle,
            stop: Some(stop),
            task: Some(task),
            _temp: None,
        }
    }

    /// Stops gracefully and waits until the store is closed; returns the
    /// temporary folder so that a restart can reuse it.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self._temp.take()
    }

    /// A channel to the server carrying the admin key.
    pub async fn channel(&self) -> AuthChannel {
        authed(self.raw_channel().await, Some(&self.admin_key))
    }

    /// A channel carrying `key`, or no key at all.
    pub async fn channel_with(&self, key: Option<&str>) -> AuthChannel {
        authed(self.raw_channel().await, key)
    }

    /// A channel to the server, connected once it accepts connections,
    /// adding no key.
    pub async fn raw_channel(&self) -> Channel {
        connect_when_up(self.addr).await
    }

    /// A key-management client (admin key).
    pub async fn admin(&self) -> pb::admin_service_client::AdminServiceClient<AuthChannel> {
        pb::admin_service_client::AdminServiceClient::new(self.channel().await)
    }

    /// Creates a key of `role` (trainer: `cohorts`; company: `company`)
    /// with the admin key and returns its token.
    pub async fn key(&self, role: pb::ApiKeyRole, cohorts: &[&str], company: &str) -> String {
        self.admin()
            .await
            .create_api_key(pb::CreateApiKeyRequest {
                role: role as i32,
                cohort_ids: cohorts.iter().map(|c| c.to_string()).collect(),
                company_id: company.into(),
                display_name: format!("{role:?} key"),
            })
            .await
            .expect("create key")
            .into_inner()
            .secret
    }

    /// A catalog client.
    pub async fn catalog(&self) -> pb::catalog_service_client::CatalogServiceClient<AuthChannel> {
        pb::catalog_service_client::CatalogServiceClient::new(self.channel().await)
    }

    /// A learner client.
    pub async fn learners(&self) -> pb::learner_service_client::LearnerServiceClient<AuthChannel> {
        pb::learner_service_client::LearnerServiceClient::new(self.channel().await)
    }

    /// A program client.
    pub async fn programs(&self) -> pb::program_service_client::ProgramServiceClient<AuthChannel> {
        pb::program_service_client::ProgramServiceClient::new(self.channel().await)
    }

    /// A mastery client.
    pub async fn mastery(&self) -> pb::mastery_service_client::MasteryServiceClient<AuthChannel> {
        pb::mastery_service_client::MasteryServiceClient::new(self.channel().await)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A skill message.
pub fn skill(id: &str, prereqs: &[&str]) -> pb::Skill {
    pb::Skill {
        id: id.into(),
        name: format!("Skill {id}"),
        prerequisite_ids: prereqs.iter().map(|s| s.to_string()).collect(),
    }
}

/// A module message.
pub fn module(id: &str, skills: &[&str], format: pb::ModuleFormat, minutes: u32) -> pb::Module {
    pb::Module {
        external_ids: Vec::new(),
        id: id.into(),
        title: format!("Module {id}"),
        skill_ids: skills.iter().map(|s| s.to_string()).collect(),
        format: format as i32,
        duration_minutes: minutes,
        language: "fr".into(),
    }
}

/// Learners `{prefix}00`, `{prefix}01`... (`n` of them) of companies
/// `{company}0` to `{company}{companies - 1}` in turn.
pub fn staff(prefix: &str, n: usize, company: &str, companies: usize) -> Vec<pb::Learner> {
    (0..n)
        .map(|i| {
            learner(
                &format!("{prefix}{i:02}"),
                &format!("{company}{}", i % companies),
            )
        })
        .collect()
}

/// A learner message.
pub fn learner(id: &str, company: &str) -> pb::Learner {
    pb::Learner {
        id: id.into(),
        company_id: company.into(),
        language: "fr".into(),
        time_zone: "Europe/Paris".into(),
        display_name: String::new(),
    }
}

/// A base time for test events, in seconds: ten minutes ago, taken once
/// per test binary. Events dated from it (plus a few minutes) are news to
/// the alert rules (events older than 7 days raise no alert) and arrive
/// live rather than as a bulk load (events older than 15 minutes are held
/// until the load ends).
pub fn t0() -> i64 {
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs() as i64;
        now - 600
    })
}

/// An attempt at `seconds` after the epoch.
pub fn attempt(
    id: &str,
    learner: &str,
    skills: &[&str],
    correct: bool,
    seconds: i64,
) -> pb::Attempt {
    pb::Attempt {
        attempt_id: id.into(),
        learner_id: learner.into(),
        item_id: format!("item-{id}"),
        skill_ids: skills.iter().map(|s| s.to_string()).collect(),
        correct,
        score: None,
        occurred_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        time_spent: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
    }
}

/// A small catalog: skills a <- b <- c, module m-a (video, 10 min) on a and
/// m-b (exercise, 20 min) on b, no items.
pub fn small_catalog() -> pb::ImportCatalogRequest {
    pb::ImportCatalogRequest {
        skills: vec![skill("a", &[]), skill("b", &["a"]), skill("c", &["b"])],
        modules: vec![
            module("m-a", &["a"], pb::ModuleFormat::Video, 10),
            module("m-b", &["b"], pb::ModuleFormat::Exercise, 20),
        ],
        items: vec![],
    }
}

/// Two independent skills, a and b, and nothing else.
pub fn skills_a_b() -> pb::ImportCatalogRequest {
    pb::ImportCatalogRequest {
        skills: vec![skill("a", &[]), skill("b", &[])],
        modules: vec![],
        items: vec![],
    }
}

/// Skills `a` and `b` ([`skills_a_b`]) and learner `alice` of acme,
/// through `channel` (a `spoc serve` process or a [`TestServer`]).
pub async fn seed_alice(channel: &AuthChannel) {
    pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
        .import_catalog(skills_a_b())
        .await
        .unwrap();
    pb::learner_service_client::LearnerServiceClient::new(channel.clone())
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner("alice", "acme")),
        })
        .await
        .unwrap();
}

/// Seeds the [`small_catalog`], two learners and one program.
pub async fn seed(server: &TestServer) {
    server
        .catalog()
        .await
        .import_catalog(small_catalog())
        .await
        .expect("import catalog");
    let mut learners = server.learners().await;
    for (id, company) in [("alice", "acme"), ("bob", "globex")] {
        learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner(id, company)),
            })
            .await
            .expect("upsert learner");
    }
    server
        .programs()
        .await
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(excel_program()),
        })
        .await
        .expect("upsert program");
}

/// The program [`seed`] stores: "excel" over skills a, b and c, with no
/// dates and the default cohort rules.
pub fn excel_program() -> pb::Program {
    pb::Program {
        id: "excel".into(),
        name: "Excel for analysts".into(),
        skill_ids: vec!["a".into(), "b".into(), "c".into()],
        cohort_rules: None,
        ..Default::default()
    }
}

/// The mastery of `learner` on `skills` (every skill of the learner's
/// programs when empty), as GetMastery returns it (the call must succeed).
pub async fn mastery_of(
    client: &mut pb::mastery_service_client::MasteryServiceClient<AuthChannel>,
    learner: &str,
    skills: &[&str],
) -> pb::GetMasteryResponse {
    client
        .get_mastery(pb::GetMasteryRequest {
            learner_id: learner.into(),
            skill_ids: skills.iter().map(|s| s.to_string()).collect(),
        })
        .await
        .unwrap_or_else(|e| panic!("mastery of {learner}: {e}"))
        .into_inner()
}

/// Records `attempts` through RecordAttempts in batches of 1,000, the
/// largest a request takes (the calls must succeed).
pub async fn record_in_batches(channel: AuthChannel, attempts: &[pb::Attempt]) {
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channel);
    for batch in attempts.chunks(1000) {
        client
            .record_attempts(pb::RecordAttemptsRequest {
                attempts: batch.to_vec(),
            })
            .await
            .expect("record attempts");
    }
}

/// Upserts `learner` through `client` and enrols it in `program`, now
/// (the calls must succeed).
pub async fn add_enrolled(
    client: &mut pb::learner_service_client::LearnerServiceClient<AuthChannel>,
    learner: pb::Learner,
    program: &str,
) {
    let learner_id = learner.id.clone();
    client
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner),
        })
        .await
        .expect("upsert learner");
    client
        .enroll_learner(pb::EnrollLearnerRequest {
            enrolled_at: None,
            learner_id,
            program_id: program.into(),
        })
        .await
        .expect("enrol");
}

/// The `spoc` binary with `SPOC_ADDR` pointing at `server`, with its admin
/// key.
pub fn spoc(server: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_spoc"));
    cmd.args(args)
        .env("SPOC_ADDR", server.addr.to_string())
        .env("SPOC_API_KEY", &server.admin_key)
        .env_remove("SPOC_TLS_CA")
        .kill_on_drop(true);
    cmd
}

/// BKT by hand with the shipped defaults, for checking served values.
pub fn hand_bkt(answers: &[bool]) -> f64 {
    let (prior, learn, guess, slip) = (0.2, 0.15, 0.2, 0.1);
    let mut p = prior;
    for &correct in answers {
        let post = if correct {
            p * (1.0 - slip) / (p * (1.0 - slip) + (1.0 - p) * guess)
        } else {
            p * slip / (p * slip + (1.0 - p) * (1.0 - guess))
        };
        p = post + (1.0 - post) * learn;
    }
    p
}

impl TestServer {
    /// A cohort client.
    pub async fn cohorts(&self) -> pb::cohort_service_client::CohortServiceClient<AuthChannel> {
        pb::cohort_service_client::CohortServiceClient::new(self.channel().await)
    }

    /// The first page of program `program`'s cohorts, with the formation
    /// version (the call must succeed).
    pub async fn program_cohorts(&self, program: &str) -> pb::ListCohortsResponse {
        self.cohorts()
            .await
            .list_cohorts(pb::ListCohortsRequest {
                program_id: program.into(),
                ..Default::default()
            })
            .await
            .expect("list cohorts")
            .into_inner()
    }

    /// Forms and stores the cohorts of `program` (balanced, seed 1; the
    /// call must succeed).
    pub async fn form_cohorts(&self, program: &str) -> pb::FormCohortsResponse {
        self.cohorts()
            .await
            .form_cohorts(form_seed_1(program))
            .await
            .expect("form cohorts")
            .into_inner()
    }

    /// Forms and stores the cohorts of `program` (balanced, seed 1), which
    /// must come out as one cohort; its id.
    pub async fn form_one_cohort(&self, program: &str) -> String {
        let formed = self.form_cohorts(program).await;
        assert_eq!(formed.cohorts.len(), 1);
        formed.cohorts[0].id.clone()
    }

    /// Enrols each of `learners` in `program`, now (the calls must
    /// succeed).
    pub async fn enroll(&self, learners: &[&str], program: &str) {
        let mut client = self.learners().await;
        for id in learners {
            client
                .enroll_learner(pb::EnrollLearnerRequest {
                    enrolled_at: None,
                    learner_id: id.to_string(),
                    program_id: program.into(),
                })
                .await
                .expect("enrol");
        }
    }

    /// Records `attempts` (the call must succeed).
    pub async fn record(&self, attempts: Vec<pb::Attempt>) {
        self.mastery()
            .await
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .expect("record attempts");
    }

    /// Skill `id`, as GetSkill returns it (the call must succeed).
    pub async fn stored_skill(&self, id: &str) -> pb::Skill {
        self.catalog()
            .await
            .get_skill(pb::GetSkillRequest {
                skill_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Cohort `id`, as GetCohort returns it (the call must succeed).
    pub async fn cohort(&self, id: &str) -> pb::Cohort {
        self.cohorts()
            .await
            .get_cohort(pb::GetCohortRequest {
                cohort_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// The first page of program `program`'s enrolments (the call must
    /// succeed).
    pub async fn enrolments(&self, program: &str) -> pb::ListEnrolmentsResponse {
        self.learners()
            .await
            .list_enrolments(pb::ListEnrolmentsRequest {
                program_id: program.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }
}

/// A request to form and store the cohorts of `program` with the default
/// (balanced) objective and seed 1.
pub fn form_seed_1(program: &str) -> pb::FormCohortsRequest {
    pb::FormCohortsRequest {
        program_id: program.into(),
        seed: 1,
        ..Default::default()
    }
}

/// A learner message with a chosen language and time zone.
pub fn learner_in(id: &str, company: &str, language: &str, time_zone: &str) -> pb::Learner {
    pb::Learner {
        id: id.into(),
        company_id: company.into(),
        language: language.into(),
        time_zone: time_zone.into(),
        display_name: String::new(),
    }
}

/// `n` learners `{prefix}00`.. in Paris's time zone, spread round-robin
/// over `companies` companies `co0`...
pub fn people(prefix: &str, n: usize, companies: usize, language: &str) -> Vec<pb::Learner> {
    (0..n)
        .map(|i| {
            learner_in(
                &format!("{prefix}{i:02}"),
                &format!("co{}", i % companies),
                language,
                "Europe/Paris",
            )
        })
        .collect()
}

/// Creates a program over skills `a`, `b`, `c` (imported if missing) with
/// the given cohort rules, then upserts and enrols `learners` in it.
pub async fn seed_cohort_program(
    server: &TestServer,
    program_id: &str,
    rules: Option<pb::CohortRules>,
    learners: &[pb::Learner],
) {
    server
        .catalog()
        .await
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("a", &[]), skill("b", &["a"]), skill("c", &["b"])],
            modules: vec![],
            items: vec![],
        })
        .await
        .expect("import catalog");
    server
        .programs()
        .await
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: program_id.into(),
                name: format!("Program {program_id}"),
                skill_ids: vec!["a".into(), "b".into(), "c".into()],
                cohort_rules: rules,
                ..Default::default()
            }),
        })
        .await
        .expect("upsert program");
    let mut client = server.learners().await;
    for learner in learners {
        client
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner.clone()),
            })
            .await
            .expect("upsert learner");
        client
            .enroll_learner(pb::EnrollLearnerRequest {
                enrolled_at: None,
                learner_id: learner.id.clone(),
                program_id: program_id.into(),
            })
            .await
            .expect("enrol learner");
    }
}

impl TestServer {
    /// An alert client.
    pub async fn alerts(&self) -> pb::alert_service_client::AlertServiceClient<AuthChannel> {
        pb::alert_service_client::AlertServiceClient::new(self.channel().await)
    }

    /// What `request` lists now (admin key; the call must succeed).
    pub async fn list_alerts(&self, request: pb::ListAlertsRequest) -> Vec<pb::Alert> {
        self.alerts()
            .await
            .list_alerts(request)
            .await
            .expect("list alerts")
            .into_inner()
            .alerts
    }

    /// What `request` lists (admin key) once `done` holds of it: alerts
    /// are raised in the background, after the calls that cause them.
    pub async fn alerts_when(
        &self,
        request: pb::ListAlertsRequest,
        done: impl Fn(&[pb::Alert]) -> bool,
    ) -> Vec<pb::Alert> {
        let mut client = self.alerts().await;
        eventually(&format!("alerts as awaited for {request:?}"), async || {
            let alerts = client
                .list_alerts(request.clone())
                .await
                .expect("list alerts")
                .into_inner()
                .alerts;
            done(&alerts).then_some(alerts)
        })
        .await
    }

    /// A report client.
    pub async fn reports(&self) -> pb::report_service_client::ReportServiceClient<AuthChannel> {
        pb::report_service_client::ReportServiceClient::new(self.channel().await)
    }

    /// A remediation client (module activity).
    pub async fn remediation(
        &self,
    ) -> pb::remediation_service_client::RemediationServiceClient<AuthChannel> {
        pb::remediation_service_client::RemediationServiceClient::new(self.channel().await)
    }
}

/// A module event at `seconds` after the epoch with `minutes` spent.
pub fn activity(
    id: &str,
    learner: &str,
    module: &str,
    completed: bool,
    seconds: i64,
    minutes: i64,
) -> pb::ModuleActivity {
    let kind = if completed {
        pb::ActivityKind::Completed
    } else {
        pb::ActivityKind::Started
    };
    pb::ModuleActivity {
        event_id: id.into(),
        learner_id: learner.into(),
        module_id: module.into(),
        program_id: String::new(),
        kind: kind as i32,
        occurred_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        time_spent: Some(prost_types::Duration {
            seconds: minutes * 60,
            nanos: 0,
        }),
    }
}

/// Checks that `status` is INVALID_ARGUMENT with a BadRequest naming
/// Sends one HTTP/1.1 request on a fresh connection; the reply head and
/// its body, unread.
pub async fn http1(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<axum::body::Bytes>,
) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    sender
        .send_request(
            builder
                .body(http_body_util::Full::new(body.into()))
                .unwrap(),
        )
        .await
        .expect("response")
}

/// The Prometheus text that the HTTP listener at `addr` serves on
/// `/metrics`.
pub async fn metrics_text(addr: SocketAddr) -> String {
    use http_body_util::BodyExt;
    let response = http1(addr, "GET", "/metrics", &[], axum::body::Bytes::new()).await;
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("metrics body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Asserts that a command succeeded, showing its stderr otherwise.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `field`.
pub fn assert_invalid_field(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_field_named(status, field);
}

/// Asserts that `status`, whatever its code, carries a BadRequest
/// violation on `field`.
pub fn assert_field_named(status: &tonic::Status, field: &str) {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    assert!(
        violations.iter().any(|v| v.field == field),
        "expected a violation on {field}, got {violations:?} ({})",
        status.message()
    );
}

/// A `spoc serve` child process (the real binary), killed on drop.
pub struct Spoc(std::process::Child);

impl Spoc {
    /// `spoc serve --listen GRPC --http-listen HTTP --data-dir DIR` and
    /// `extra` arguments. Pass `127.0.0.1:0` as `http` when the test does
    /// not use the xAPI listener (tests run side by side: never the
    /// default 8080).
    pub fn start(dir: &Path, grpc: SocketAddr, http: &str, extra: &[&std::ffi::OsStr]) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
            .args([
                "serve",
                "--listen",
                &grpc.to_string(),
                "--http-listen",
                http,
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn spoc serve");
        Spoc(child)
    }

    /// SIGTERM, then waits for the process to exit; asserts it stopped
    /// cleanly.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        let sent = unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM not sent");
        let status = self.0.wait().expect("wait");
        assert!(status.success(), "spoc serve stopped with {status}");
    }

    /// SIGKILL: no shutdown hook, no final flush.
    pub fn kill(mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

impl Drop for Spoc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every skill, module and item stored, for before/after comparisons.
pub async fn catalog_snapshot(
    server: &TestServer,
) -> (Vec<pb::Skill>, Vec<pb::Module>, Vec<pb::Item>) {
    let mut catalog = server.catalog().await;
    let skills = catalog
        .list_skills(pb::ListSkillsRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let modules = catalog
        .list_modules(pb::ListModulesRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let items = catalog
        .list_items(pb::ListItemsRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(skills.next_page_token.is_empty() && modules.next_page_token.is_empty());
    (skills.skills, modules.modules, items.items)
}

/// Four items in the bank on each of `skills`, `{skill}-q0` to `-q3`.
pub async fn add_items(server: &TestServer, skills: &[&str]) {
    let items: Vec<pb::Item> = skills
        .iter()
        .flat_map(|s| {
            (0..4).map(move |k| pb::Item {
                id: format!("{s}-q{k}"),
                skill_ids: vec![s.to_string()],
                ..Default::default()
            })
        })
        .collect();
    server
        .catalog()
        .await
        .upsert_items(pb::UpsertItemsRequest { items })
        .await
        .expect("upsert items");
}
