//! xAPI ingestion through real HTTP on an ephemeral port, checked through
//! gRPC: statements shaped like Moodle's and Open edX's become mastery,
//! module activity and enrolments, with the semantics of an LRS.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::outside::wait_for_listener;
use crate::common::{
    AuthChannel, Spoc, assert_invalid_field, authed, connect_when_up, eventually, free_addr,
    hand_bkt, skill,
};
use axum::body::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spoc_engine::api::pb;
use spoc_engine::engine::Engine;
use tokio::sync::watch;

/// The Moodle fixtures' course URL.
const MOODLE_COURSE: &str = "https://moodle.example.com/course/view.php?id=12";
const MOODLE_ITEM: &str =
    "https://moodle.example.com/mod/quiz/attempt.php?attempt=31&cmid=7&page=2";
const EDX_ITEM: &str =
    "https://courses.example.com/xblock/block-v1:Acme+SQL101+2026_T4+type@problem+block@4c2f0e";
const EDX_MODULE: &str =
    "https://courses.example.com/xblock/block-v1:Acme+SQL101+2026_T4+type@sequential+block@joins";
const EDX_COURSE: &str = "https://courses.example.com/course/course-v1:Acme+SQL101+2026_T4";
const MOODLE_ID: &str = "2f6e8a8e-3c1b-4f5e-9a51-7f0d2b9c4e11";

/// A fixture file's text.
fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/xapi/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An HTTP reply.
#[derive(Debug)]
struct Reply {
    status: u16,
    version: Option<String>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let response = crate::common::http1(addr, method, path, headers, body).await;
    let status = response.status().as_u16();
    let version = response
        .headers()
        .get("x-experience-api-version")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        version,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `Authorization` value of `key` as a forwarder configured with a Basic
/// user and password sends it (`Basic base64("moodle:<key>")`).
fn basic(key: &str) -> &'static str {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("moodle:{key}"));
    Box::leak(format!("Basic {encoded}").into_boxed_str())
}

/// Where a running service listens, and the key its clients send.
#[derive(Clone, Copy)]
struct Addrs {
    grpc: SocketAddr,
    http: SocketAddr,
    /// The store's first admin key (gRPC calls).
    key: &'static str,
    /// An `lms` key as a Basic `Authorization` value (xAPI calls).
    basic: &'static str,
}

impl Addrs {
    /// The headers an xAPI forwarder sends.
    fn xapi(&self) -> [(&'static str, &'static str); 3] {
        [
            ("authorization", self.basic),
            ("x-experience-api-version", "1.0.3"),
            ("content-type", "application/json"),
        ]
    }

    /// The same addresses with the admin key read from `dir`, and a new
    /// `lms` key for the forwarder.
    async fn with_keys(mut self, dir: &std::path::Path) -> Self {
        let key_file = dir.join("admin-key");
        eventually("the first admin key", async || {
            key_file.exists().then_some(())
        })
        .await;
        self.key = Box::leak(crate::common::admin_key_in(dir).into_boxed_str());
        let lms = self.new_key(pb::ApiKeyRole::Lms).await;
        self.basic = basic(&lms);
        self
    }

    /// A new key with `role`, created by the admin.
    async fn new_key(&self, role: pb::ApiKeyRole) -> String {
        pb::admin_service_client::AdminServiceClient::new(self.channel().await)
            .create_api_key(pb::CreateApiKeyRequest {
                role: role as i32,
                display_name: format!("{role:?} forwarder"),
                ..Default::default()
            })
            .await
            .expect("create key")
            .into_inner()
            .secret
    }

    async fn post(&self, body: impl Into<Bytes>) -> Reply {
        request(self.http, "POST", "/xapi/statements", &self.xapi(), body).await
    }

    async fn put(&self, id: &str, body: impl Into<Bytes>) -> Reply {
        let path = format!("/xapi/statements?statementId={id}");
        request(self.http, "PUT", &path, &self.xapi(), body).await
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.http, "GET", path, &self.xapi(), Bytes::new()).await
    }

    /// A GET with the admin key (the operator endpoints).
    async fn get_admin(&self, path: &str) -> Reply {
        let bearer: &str = Box::leak(format!("Bearer {}", self.key).into_boxed_str());
        request(
            self.http,
            "GET",
            path,
            &[("authorization", bearer)],
            Bytes::new(),
        )
        .await
    }

    async fn channel(&self) -> AuthChannel {
        authed(connect_when_up(self.grpc).await, Some(self.key))
    }

    async fn catalog(&self) -> pb::catalog_service_client::CatalogServiceClient<AuthChannel> {
        pb::catalog_service_client::CatalogServiceClient::new(self.channel().await)
    }

    async fn mastery(&self) -> pb::mastery_service_client::MasteryServiceClient<AuthChannel> {
        pb::mastery_service_client::MasteryServiceClient::new(self.channel().await)
    }

    /// (P(mastered), attempt count) of one learner and skill.
    async fn mastery_of(&self, learner: &str, skill: &str) -> (f64, i32) {
        let reply = self
            .mastery()
            .await
            .get_mastery(pb::GetMasteryRequest {
                learner_id: learner.into(),
                skill_ids: vec![skill.into()],
            })
            .await
            .expect("get mastery")
            .into_inner();
        let m = &reply.skills[0];
        (m.p_mastered, m.attempt_count)
    }

    /// The value of a metric line of `GET /metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let text = request(self.http, "GET", "/metrics", &[], Bytes::new())
            .await
            .text;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// Skills, items (Q-matrix), a module and a program, through gRPC.
    async fn seed(&self, with_edx_item: bool) {
        let mut items = vec![pb::Item {
            external_ids: Vec::new(),
            pass_mark: None,
            id: MOODLE_ITEM.into(),
            skill_ids: vec!["sql-joins".into()],
            title: "Which join keeps unmatched rows?".into(),
        }];
        if with_edx_item {
            items.push(edx_item());
        }
        self.catalog()
            .await
            .import_catalog(pb::ImportCatalogRequest {
                skills: vec![
                    skill("sql-select", &[]),
                    skill("sql-joins", &["sql-select"]),
                ],
                modules: vec![pb::Module {
                    external_ids: Vec::new(),
                    id: EDX_MODULE.into(),
                    title: "Joins, explained".into(),
                    skill_ids: vec!["sql-joins".into()],
                    format: pb::ModuleFormat::Video as i32,
                    duration_minutes: 15,
                    language: "en".into(),
                }],
                items,
            })
            .await
            .expect("import catalog");
        pb::program_service_client::ProgramServiceClient::new(self.channel().await)
            .upsert_program(pb::UpsertProgramRequest {
                program: Some(pb::Program {
                    id: EDX_COURSE.into(),
                    name: "SQL 101".into(),
                    skill_ids: vec!["sql-joins".into()],
                    // The Moodle fixtures' course: without it, their
                    // statements would wait for it to be mapped.
                    external_ids: vec![MOODLE_COURSE.into()],
                    ..Default::default()
                }),
            })
            .await
            .expect("upsert program");
    }
}

fn edx_item() -> pb::Item {
    pb::Item {
        external_ids: Vec::new(),
        pass_mark: None,
        id: EDX_ITEM.into(),
        skill_ids: vec!["sql-joins".into(), "sql-select".into()],
        title: String::new(),
    }
}

/// The gRPC and HTTP listeners of one engine, in process, stopped together.
struct Stack {
    addrs: Addrs,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _temp: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let (engine, _) = crate::common::engine_in(temp.path());
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = Addrs {
            grpc: grpc.local_addr().unwrap(),
            http: http.local_addr().unwrap(),
            key: "",
            basic: "",
        };
        let (stop, stopped) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let tasks = vec![
            tokio::spawn(spoc_engine_serve_grpc(
                engine.clone(),
                grpc,
                wait(stopped.clone()),
            )),
            tokio::spawn(async move {
                spoc_engine::http::serve(engine, http, wait(stopped))
                    .await
                    .expect("http server");
            }),
        ];
        Self {
            addrs: addrs.with_keys(temp.path()).await,
            stop,
            tasks,
            _temp: temp,
        }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

async fn spoc_engine_serve_grpc(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    spoc_engine::server::serve(engine, listener, shutdown)
        .await
        .expect("grpc server");
}

/// Done-when of the issue: a Moodle-like `answered` statement (a
/// cmi.interaction) posted over HTTP shows up as mastery through gRPC,
/// the learner created from the actor's account, and the reply carries the
/// statement id and the version header.
#[tokio::test]
async fn a_moodle_answer_becomes_mastery() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    let reply = s.post(fixture("moodle_answered.json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json(), json!([MOODLE_ID]));
    assert_eq!(reply.version.as_deref(), Some("1.0.3"));
    let (p, count) = s.mastery_of("alice", "sql-joins").await;
    assert_eq!(count, 1);
    assert!((p - hand_bkt(&[true])).abs() < 1e-9, "{p}");
    // The Q-matrix decides: the other skill is untouched.
    assert_eq!(s.mastery_of("alice", "sql-select").await.1, 0);
    let learner = pb::learner_service_client::LearnerServiceClient::new(s.channel().await)
        .get_learner(pb::GetLearnerRequest {
            learner_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(learner.display_name, "Alice Martin");
    assert_eq!(learner.company_id, "https://moodle.example.com");
    stack.stop().await;
}

/// The statement id is the idempotency key: the same statement again
/// changes nothing (POST or PUT), another statement under the same id is a
/// 409 and changes nothing either.
#[tokio::test]
async fn resent_statements_are_idempotent_and_conflicts_are_409() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    let body = fixture("moodle_answered.json");
    assert_eq!(s.post(body.clone()).await.status, 200);
    let again = s.post(body.clone()).await;
    assert_eq!((again.status, again.json()), (200, json!([MOODLE_ID])));
    assert_eq!(s.put(MOODLE_ID, body.clone()).await.status, 204);
    assert_eq!(s.mastery_of("alice", "sql-joins").await.1, 1);

    let mut changed: Value = serde_json::from_str(&body).unwrap();
    changed["result"]["success"] = json!(false);
    let conflict = s.put(MOODLE_ID, changed.to_string()).await;
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(conflict.json()["code"], 409);
    assert_eq!(s.post(json!([changed]).to_string()).await.status, 409);
    let (p, count) = s.mastery_of("alice", "sql-joins").await;
    assert_eq!(count, 1);
    assert!((p - hand_bkt(&[true])).abs() < 1e-9);
    assert_eq!(s.metric("spoc_xapi_statements_duplicate_total").await, 2);
    assert_eq!(
        s.metric("spoc_xapi_requests_rejected_total{code=\"409\"}")
            .await,
        2
    );

    // A PUT stores a statement sent without an id under the query's id.
    let mut fresh: Value = serde_json::from_str(&body).unwrap();
    fresh.as_object_mut().unwrap().remove("id");
    let id = "0f0e0d0c-0b0a-4908-8706-050403020100";
    assert_eq!(s.put(id, fresh.to_string()).await.status, 204);
    assert_eq!(s.mastery_of("alice", "sql-joins").await.1, 2);
    stack.stop().await;
}

/// A batch is all or nothing: one bad statement (its field named) and none
/// of the batch is stored, not even the learner its actor names; the same
/// batch fixed is stored whole, each statement with its effect.
#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    let items = [
        ("https://moodle.example.com/question/101", "sql-select"),
        ("https://moodle.example.com/question/102", "sql-joins"),
    ];
    s.catalog()
        .await
        .upsert_items(pb::UpsertItemsRequest {
            items: items
                .iter()
                .map(|(id, skill)| pb::Item {
                    external_ids: Vec::new(),
                    pass_mark: None,
                    id: id.to_string(),
                    skill_ids: vec![skill.to_string()],
                    title: String::new(),
                })
                .collect(),
        })
        .await
        .unwrap();
    let batch: Value = serde_json::from_str(&fixture("batch.json")).unwrap();
    let mut bad = batch.clone();
    bad[1]["result"]["score"]["scaled"] = json!(1.5);
    let reply = s.post(bad.to_string()).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["field"], "statement[1].result.score.scaled");
    // A time spent over the cap gRPC holds (a day per answer) is refused
    // the same way, not shortened.
    let mut long = batch.clone();
    long[1]["result"]["duration"] = json!("P2D");
    let reply = s.post(long.to_string()).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["field"], "statement[1].result.duration");
    let missing = pb::learner_service_client::LearnerServiceClient::new(s.channel().await)
        .get_learner(pb::GetLearnerRequest {
            learner_id: "carol@globex.example".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let reply = s.post(batch.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json().as_array().unwrap().len(), 4);
    assert_eq!(
        s.mastery_of("carol@globex.example", "sql-select").await.1,
        1
    );
    assert_eq!(s.mastery_of("carol@globex.example", "sql-joins").await.1, 1);
    // The launched SCORM package and the experienced page are unknown
    // activities, kept for later and counted by outcome and verb.
    assert_eq!(s.metric("spoc_xapi_statements_ignored_total").await, 0);
    assert_eq!(s.metric("spoc_xapi_statements_unresolved").await, 2);
    assert_eq!(
        s.metric(r#"spoc_xapi_statements_total{outcome="waiting",verb="launched"}"#)
            .await,
        1
    );
    assert_eq!(
        s.metric(r#"spoc_xapi_statements_total{outcome="attempt",verb="answered"}"#)
            .await,
        2
    );
    stack.stop().await;
}

/// An Open edX problem_check about an item the catalog does not know yet
/// is stored, counted and listed; adding the item replays it into mastery.
#[tokio::test]
async fn a_statement_before_its_item_becomes_mastery_once_the_item_exists() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    let reply = s.post(fixture("openedx_problem_check.json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(s.metric("spoc_xapi_statements_unresolved_total").await, 1);
    assert_eq!(s.metric("spoc_xapi_statements_unresolved").await, 1);
    let listed = s.get_admin("/xapi/unresolved").await.json();
    let waiting = &listed["statements"][0];
    assert_eq!(waiting["id"], "9b0c3f4e-6d2a-4b1f-8e7c-5a3d2c1b0f99");
    assert!(waiting["reason"].as_str().unwrap().contains(EDX_ITEM));
    assert_eq!(waiting["statement"]["object"]["id"], EDX_ITEM);
    // No learner yet: nothing was applied.
    let none = s
        .mastery()
        .await
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "bob".into(),
            skill_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(none.code(), tonic::Code::NotFound);

    let replayed = s
        .catalog()
        .await
        .upsert_items(pb::UpsertItemsRequest {
            items: vec![edx_item()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.statements_replayed, 1);
    for skill in ["sql-joins", "sql-select"] {
        let (p, count) = s.mastery_of("bob", skill).await;
        assert_eq!(count, 1, "{skill}");
        assert!(
            p < 0.5,
            "a wrong answer scored 0.25 leaves {skill} low: {p}"
        );
    }
    assert_eq!(s.metric("spoc_xapi_statements_unresolved").await, 0);
    assert_eq!(s.metric("spoc_xapi_statements_replayed_total").await, 1);
    assert_eq!(
        s.get_admin("/xapi/unresolved").await.json()["statements"],
        json!([])
    );
    // Sent again, it is a duplicate: still one attempt.
    assert_eq!(
        s.post(fixture("openedx_problem_check.json")).await.status,
        200
    );
    assert_eq!(s.mastery_of("bob", "sql-joins").await.1, 1);
    stack.stop().await;
}

/// An Open edX `completed` on a module with a registration whose grouping
/// names a program: module activity recorded, learner enrolled. A
/// registration naming no known program waits like an unknown activity.
#[tokio::test]
async fn a_completed_module_enrols_the_learner_in_its_program() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(true).await;
    let mut unknown: Value = serde_json::from_str(&fixture("openedx_completed.json")).unwrap();
    unknown["id"] = json!("c4a1e2f3-8b7d-4c6e-9f5a-000000000000");
    unknown["context"]["contextActivities"]["grouping"][0]["id"] =
        json!("https://courses.example.com/course/unknown");
    assert_eq!(s.post(unknown.to_string()).await.status, 200);
    assert_eq!(s.metric("spoc_xapi_statements_unresolved").await, 1);

    let reply = s.post(fixture("openedx_completed.json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(s.metric("spoc_xapi_activities_total").await, 1);
    let enrolments = pb::learner_service_client::LearnerServiceClient::new(s.channel().await)
        .list_enrolments(pb::ListEnrolmentsRequest {
            learner_id: "bob".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let programs: Vec<_> = enrolments
        .enrolments
        .iter()
        .map(|e| e.program_id.as_str())
        .collect();
    assert_eq!(programs, [EDX_COURSE]);
    // The module counts as completed by bob, 12.5 minutes spent: the
    // program's report sees it.
    let report = pb::report_service_client::ReportServiceClient::new(s.channel().await)
        .get_program_report(pb::GetProgramReportRequest {
            program_id: EDX_COURSE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!((report.learner_count, report.completed_count), (1, 1));
    let time = report
        .module_time
        .iter()
        .find(|m| m.module_id == EDX_MODULE)
        .expect("module time");
    assert_eq!(time.learner_count, 1);
    assert!((time.median_minutes - 12.5).abs() < 1e-9, "{time:?}");
    stack.stop().await;
}

/// The edge: 401 without credentials (with a JSON body), a missing version
/// header taken as 1.0.3, 400 naming a bad one, 400 on malformed JSON and
/// a PUT with neither statementId nor a statement id, 413 for a body or a
/// batch too large.
#[tokio::test]
async fn credentials_version_and_limits() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    let body = fixture("moodle_answered.json");
    let no_auth = request(
        s.http,
        "POST",
        "/xapi/statements",
        &[("x-experience-api-version", "1.0.3")],
        body.clone(),
    )
    .await;
    assert_eq!(no_auth.status, 401, "{}", no_auth.text);
    assert_eq!(no_auth.json()["code"], 401);
    assert_eq!(no_auth.version.as_deref(), Some("1.0.3"));
    let unknown = request(
        s.http,
        "POST",
        "/xapi/statements",
        &[
            ("authorization", "Bearer spoc_nokey_nosecret"),
            ("x-experience-api-version", "1.0.3"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(unknown.status, 401, "{}", unknown.text);
    // A manager key is a real key without the right to send statements.
    let manager: &str =
        Box::leak(format!("Bearer {}", s.new_key(pb::ApiKeyRole::Manager).await).into_boxed_str());
    let forbidden = request(
        s.http,
        "POST",
        "/xapi/statements",
        &[
            ("authorization", manager),
            ("x-experience-api-version", "1.0.3"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    // Only admins read the waiting statements.
    assert_eq!(s.get("/xapi/unresolved").await.status, 403);
    let lms_bearer: &str = {
        use base64::Engine as _;
        let encoded = s.basic.strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let key = String::from_utf8(decoded).unwrap();
        let key = key.split_once(':').unwrap().1.to_string();
        Box::leak(format!("Bearer {key}").into_boxed_str())
    };
    let bearer = [("authorization", lms_bearer)];
    // No version header: taken as 1.0.3, as LRSs forward statements.
    let no_version = request(s.http, "POST", "/xapi/statements", &bearer, body.clone()).await;
    assert_eq!(no_version.status, 200, "{}", no_version.text);
    assert_eq!(no_version.version.as_deref(), Some("1.0.3"));
    let old = request(
        s.http,
        "POST",
        "/xapi/statements",
        &[
            ("authorization", lms_bearer),
            ("x-experience-api-version", "0.95"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(old.status, 400);
    assert_eq!(old.json()["field"], "X-Experience-API-Version");
    assert_eq!(s.post("{not json").await.status, 400);
    // A PUT without statementId: the statement's id stands in (as Ralph
    // forwards); without either, the parameter is named.
    let own_id = request(s.http, "PUT", "/xapi/statements", &s.xapi(), body.clone()).await;
    assert_eq!(own_id.status, 204, "{}", own_id.text);
    let mut anonymous: Value = serde_json::from_str(&body).unwrap();
    anonymous.as_object_mut().unwrap().remove("id");
    let no_id = request(
        s.http,
        "PUT",
        "/xapi/statements",
        &s.xapi(),
        anonymous.to_string(),
    )
    .await;
    assert_eq!(
        (no_id.status, no_id.json()["field"].clone()),
        (400, json!("statementId"))
    );
    let huge = format!("[{}]", vec![body.as_str(); 9000].join(","));
    assert!(huge.len() > spoc_engine::http::MAX_BODY_BYTES);
    assert_eq!(s.post(huge).await.status, 413);
    let statement: Value = serde_json::from_str(&body).unwrap();
    let mut many = Vec::new();
    for _ in 0..1001 {
        let mut one = statement.clone();
        one.as_object_mut().unwrap().remove("id");
        many.push(one);
    }
    assert_eq!(s.post(Value::Array(many).to_string()).await.status, 413);
    assert_eq!(s.get("/xapi/about").await.json()["version"][0], "1.0.3");
    assert_eq!(
        s.metric("spoc_xapi_requests_rejected_total{code=\"413\"}")
            .await,
        2
    );
    stack.stop().await;
}

/// `RecordAttempts` may leave `skill_ids` empty for an item of the
/// catalog: the Q-matrix fills them; for an unknown item the field is
/// named.
#[tokio::test]
async fn record_attempts_takes_skills_from_the_q_matrix() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(true).await;
    pb::learner_service_client::LearnerServiceClient::new(s.channel().await)
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(crate::common::learner("dave", "acme")),
        })
        .await
        .unwrap();
    let mut attempt = crate::common::attempt("q1", "dave", &[], true, 1_790_000_000);
    attempt.item_id = EDX_ITEM.into();
    let reply = s
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let skills: Vec<_> = reply.mastery.iter().map(|m| m.skill_id.as_str()).collect();
    assert_eq!(skills, ["sql-joins", "sql-select"]);
    let item = s
        .catalog()
        .await
        .get_item(pb::GetItemRequest {
            item_id: EDX_ITEM.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(item.skill_ids, ["sql-joins", "sql-select"]);
    attempt.attempt_id = "q2".into();
    attempt.item_id = "https://nowhere.example.com/q".into();
    let err = s
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt],
        })
        .await
        .unwrap_err();
    assert_invalid_field(&err, "attempts[0].skill_ids");
    let listed = s
        .catalog()
        .await
        .list_items(pb::ListItemsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items.len(), 1);
    assert!(!listed.next_page_token.is_empty());
    stack.stop().await;
}

/// Voiding undoes an answer (mastery back to the prior) and stays undone
/// through a SIGKILL and restart of the real binary, and against a resend
/// of the voided statement or of its derived attempt over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_retracts_the_attempt_and_survives_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let addrs = Addrs {
        grpc: free_addr(),
        http: free_addr(),
        key: "",
        basic: "",
    };
    let spoc = Spoc::start(temp.path(), addrs.grpc, &addrs.http.to_string(), &[]);
    let addrs = addrs.with_keys(temp.path()).await;
    addrs.channel().await;
    wait_for_listener(addrs.http).await;
    addrs.seed(false).await;
    assert_eq!(
        addrs.post(fixture("moodle_answered.json")).await.status,
        200
    );
    assert_eq!(addrs.mastery_of("alice", "sql-joins").await.1, 1);
    let void = addrs.post(fixture("voiding.json")).await;
    assert_eq!(void.status, 200, "{}", void.text);
    let prior = 0.2;
    let (p, count) = addrs.mastery_of("alice", "sql-joins").await;
    assert_eq!(count, 0);
    assert!((p - prior).abs() < 1e-12);
    // Voiding a voiding statement is refused.
    let mut twice: Value = serde_json::from_str(&fixture("voiding.json")).unwrap();
    twice["id"] = json!("e7d6c5b4-a392-4817-8f6e-000000000001");
    twice["object"]["id"] = json!("e7d6c5b4-a392-4817-8f6e-5d4c3b2a1908");
    let refused = addrs.post(twice.to_string()).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json()["field"], "statement.object.id");
    spoc.kill();

    let spoc = Spoc::start(temp.path(), addrs.grpc, &addrs.http.to_string(), &[]);
    addrs.channel().await;
    wait_for_listener(addrs.http).await;
    let (p, count) = addrs.mastery_of("alice", "sql-joins").await;
    assert_eq!(count, 0, "the retracted attempt came back after restart");
    assert!((p - prior).abs() < 1e-12);
    assert_eq!(
        addrs.post(fixture("moodle_answered.json")).await.status,
        200
    );
    let mut resent = crate::common::attempt("x", "alice", &["sql-joins"], true, 1_700_000_000);
    resent.attempt_id = format!("xapi:{MOODLE_ID}");
    let reply = addrs
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![resent],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.recorded, reply.duplicates), (0, 1));
    assert_eq!(addrs.mastery_of("alice", "sql-joins").await.1, 0);
    spoc.kill();
}

/// GDPR: a learner's statements still waiting for the catalog are part of
/// their export and go with their erasure; another learner's stay.
#[tokio::test]
async fn waiting_statements_are_exported_and_erased_with_their_learner() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    assert_eq!(s.post(fixture("moodle_answered.json")).await.status, 200);
    let mut waiting: Value = serde_json::from_str(&fixture("moodle_answered.json")).unwrap();
    waiting["id"] = json!("0c1d2e3f-4a5b-4c6d-8e7f-000000000042");
    waiting["object"]["id"] = json!("https://moodle.example.com/mod/quiz/unknown-question");
    assert_eq!(s.post(waiting.to_string()).await.status, 200);
    assert_eq!(
        s.post(fixture("openedx_problem_check.json")).await.status,
        200
    );
    assert_eq!(
        s.get_admin("/xapi/unresolved").await.json()["statements"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let mut learners = pb::learner_service_client::LearnerServiceClient::new(s.channel().await);
    let export = learners
        .export_learner(pb::ExportLearnerRequest {
            learner_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let export: Value = serde_json::from_str(&export.json).unwrap();
    let exported = export["xapi_waiting"].as_array().expect("xapi_waiting");
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert!(
        exported[0]["raw"]
            .as_str()
            .unwrap()
            .contains("unknown-question")
    );
    learners
        .erase_learner(pb::EraseLearnerRequest {
            learner_id: "alice".into(),
        })
        .await
        .unwrap();
    let left = s.get_admin("/xapi/unresolved").await.json();
    let left = left["statements"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], "9b0c3f4e-6d2a-4b1f-8e7c-5a3d2c1b0f99");
    stack.stop().await;
}

/// Headers of an xAPI request with `key` (a Basic value), a version and a
/// content type.
fn xapi_headers(
    basic: &'static str,
    version: &'static str,
    kind: &'static str,
) -> [(&'static str, &'static str); 3] {
    [
        ("authorization", basic),
        ("x-experience-api-version", version),
        ("content-type", kind),
    ]
}

/// xAPI 1.0.x and 2.0.x are each answered in their own family; the about
/// resource lists both; a version outside them is refused, naming the
/// header. JSON is accepted with parameters and in any case.
#[tokio::test]
async fn versions_are_answered_in_their_own_family() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    let statement = |n: u32| {
        let mut one: Value = serde_json::from_str(&fixture("moodle_answered.json")).unwrap();
        one["id"] = json!(format!("2f6e8a8e-3c1b-4f5e-9a51-7f0d2b9c4e{n:02}"));
        one.to_string()
    };
    let post = |version: &'static str, kind: &'static str, body: String| async move {
        let headers = xapi_headers(s.basic, version, kind);
        request(s.http, "POST", "/xapi/statements", &headers, body).await
    };
    let two = post("2.0.0", "application/json", statement(1)).await;
    assert_eq!(two.status, 200, "{}", two.text);
    assert_eq!(two.version.as_deref(), Some("2.0.0"));
    let one = post("1.0.1", "application/json; charset=UTF-8", statement(2)).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.version.as_deref(), Some("1.0.3"));
    let upper = post("2.0", "Application/JSON;charset=utf-8", statement(3)).await;
    assert_eq!(
        (upper.status, upper.version.as_deref()),
        (200, Some("2.0.0")),
        "{}",
        upper.text
    );
    assert_eq!(s.mastery_of("alice", "sql-joins").await.1, 3);

    let future = post("3.0.0", "application/json", statement(4)).await;
    assert_eq!(future.status, 400);
    assert_eq!(future.json()["field"], "X-Experience-API-Version");
    assert_eq!(future.version.as_deref(), Some("1.0.3"));
    let text = post("2.0.0", "text/plain", statement(4)).await;
    assert_eq!(
        (text.status, text.json()["field"].clone()),
        (400, json!("Content-Type"))
    );
    assert_eq!(text.version.as_deref(), Some("2.0.0"));
    assert_eq!(s.mastery_of("alice", "sql-joins").await.1, 3);

    let about = request(
        s.http,
        "GET",
        "/xapi/about",
        &[("x-experience-api-version", "2.0.0")],
        Bytes::new(),
    )
    .await;
    assert_eq!(about.json()["version"], json!(["1.0.3", "2.0.0"]));
    assert_eq!(about.version.as_deref(), Some("2.0.0"));
    stack.stop().await;
}

/// SHA-256 of `data`, in hex.
fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `multipart/mixed` body: the statements, then `(hash, data)` parts.
fn multipart_body(statements: &Value, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{statements}\r\n")
        .into_bytes();
    for (hash, data) in parts {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Type: application/pdf\r\n\
                 Content-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {hash}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// The boundary of [`multipart_body`], quoted in its `Content-Type` since
/// it holds characters a token may not.
const BOUNDARY: &str = "spoc'(test)+_,-./:=?";
const MULTIPART: &str = "multipart/mixed; boundary=\"spoc'(test)+_,-./:=?\"";

/// An answer of `learner` on the Moodle item with one attachment.
fn with_attachment(id: &str, learner: &str, attachment: Value) -> Value {
    json!({
        "id": id,
        "actor": {"mbox": format!("mailto:{learner}")},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": MOODLE_ITEM},
        "result": {"success": true},
        "timestamp": "2026-11-20T09:00:00Z",
        "attachments": [attachment]
    })
}

fn attachment(sha2: &str, length: usize) -> Value {
    json!({
        "usageType": "http://id.tincanapi.com/attachment/supporting_media",
        "display": {"en-US": "the learner's working"},
        "contentType": "application/pdf",
        "length": length,
        "sha2": sha2
    })
}

/// Statements with attachments as `multipart/mixed` (xAPI part 3, 1.5.2):
/// parts are matched by hash and dropped, the statements kept with their
/// `sha2`; a missing part, a wrong hash or a statement without its part
/// refuses the whole batch, naming the statement and attachment, and
/// stores nothing of it.
#[tokio::test]
async fn multipart_statements_keep_their_attachments_hash() {
    let stack = Stack::start().await;
    let s = stack.addrs;
    s.seed(false).await;
    let pdf: &[u8] = b"%PDF-1.4\r\n--spoc'(test) not a boundary line\r\n\x00\xff binary";
    let hash = sha256_hex(pdf);
    let mut by_url = attachment("0f".repeat(32).as_str(), 9);
    by_url["fileUrl"] = json!("https://moodle.example.com/pluginfile.php/12/notes.pdf");
    let batch = json!([
        with_attachment(
            "40000000-0000-4000-8000-000000000001",
            "erin@acme.example",
            attachment(&hash, pdf.len())
        ),
        with_attachment(
            "40000000-0000-4000-8000-000000000002",
            "erin@acme.example",
            by_url
        ),
        with_attachment(
            "40000000-0000-4000-8000-000000000003",
            "erin@acme.example",
            attachment(&hash, pdf.len())
        ),
    ]);
    let headers = xapi_headers(s.basic, "1.0.3", MULTIPART);
    let post = |body: Vec<u8>| async move {
        request(s.http, "POST", "/xapi/statements", &headers, body).await
    };

    // Statement 1's attachment has no part: nothing of the batch stays.
    let mut missing = batch.clone();
    missing[1]["attachments"][0] = attachment(&sha256_hex(b"other"), 5);
    let reply = post(multipart_body(&missing, &[(&hash, pdf)])).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["field"], "statement[1].attachments[0].sha2");
    // A part whose bytes do not hash to its header.
    let reply = post(multipart_body(&batch, &[(&sha256_hex(b"other"), pdf)])).await;
    assert_eq!(reply.json()["field"], "multipart[1].X-Experience-API-Hash");
    // A statement sent as JSON whose invalid field refuses the batch.
    let mut invalid = batch.clone();
    invalid[2]["result"]["success"] = json!("yes");
    let reply = post(multipart_body(&invalid, &[(&hash, pdf)])).await;
    assert_eq!(reply.json()["field"], "statement[2].result.success");
    let unknown = pb::learner_service_client::LearnerServiceClient::new(s.channel().await)
        .get_learner(pb::GetLearnerRequest {
            learner_id: "erin@acme.example".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // One part serves the two statements that share its data.
    let reply = post(multipart_body(&batch, &[(&hash, pdf)])).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json().as_array().unwrap().len(), 3);
    assert_eq!(s.mastery_of("erin@acme.example", "sql-joins").await.1, 3);

    // A PUT carries one statement and its part; a statement about an
    // unknown activity waits, stored with its attachments array as sent.
    let mut waiting = with_attachment(
        "40000000-0000-4000-8000-000000000004",
        "erin@acme.example",
        attachment(&hash.to_uppercase(), pdf.len()),
    );
    waiting["object"]["id"] = json!("https://moodle.example.com/mod/assign/view.php?id=9");
    let put = request(
        s.http,
        "PUT",
        "/xapi/statements?statementId=40000000-0000-4000-8000-000000000004",
        &headers,
        multipart_body(&waiting, &[(&hash, pdf)]),
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text);
    let listed = s.get_admin("/xapi/unresolved").await.json();
    let stored = &listed["statements"][0]["statement"];
    assert_eq!(stored["attachments"], waiting["attachments"], "{listed}");
    assert!(!listed.to_string().contains("PDF-1.4"), "payload dropped");
    stack.stop().await;
}
