//! Real LMS traffic in, with an ordinary catalog (program ids that are not
//! URLs): statements in the shapes Moodle's logstore_xapi, Open edX's
//! event-routing-backends and cmi5 emit are posted over HTTP; the
//! activities nothing maps are listed by `ListUnmappedActivities`, each is
//! mapped once with `MapActivity`, the waiting statements replay, and
//! every statement with a learning effect has it.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::{AuthChannel, http1, skill};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spoc_engine::api::pb;
use tokio::sync::watch;
use tonic::Code;

const SITE: &str = "https://moodle.example.com";
const COURSE: &str = "https://moodle.example.com/course/view.php?id=12";
const QUIZ: &str = "https://moodle.example.com/mod/quiz/view.php?id=7";
const ATTEMPT: &str = "https://moodle.example.com/mod/quiz/attempt.php?attempt=5&cmid=7";
const QUESTION: &str = "https://moodle.example.com/question/question.php?cmid=7&id=3";
const EDX_COURSE: &str = "https://courses.example.com/course/course-v1:Acme+SQL+2026";
const EDX_PROBLEM: &str =
    "https://courses.example.com/xblock/block-v1:Acme+SQL+2026+type@problem+block@p1";
const EDX_VIDEO: &str =
    "https://courses.example.com/xblock/block-v1:Acme+SQL+2026+type@video+block@v1";
const AU: &str = "https://cmi5.example.com/course/sql/au/1";
const REGISTRATION: &str = "6f1c2b9a-7e3d-4c5b-8a9f-0e1d2c3b4a59";

struct Stack {
    grpc: SocketAddr,
    http: SocketAddr,
    bearer: String,
    key: String,
    stop: watch::Sender<bool>,
    _temp: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let (engine, key) = crate::common::engine_in(temp.path());
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let (stop, stopped) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(spoc_engine::server::serve(
            engine.clone(),
            grpc,
            wait(stopped.clone()),
        ));
        tokio::spawn(spoc_engine::http::serve(engine, http, wait(stopped)));
        Self {
            grpc: grpc_addr,
            http: http_addr,
            bearer: format!("Bearer {key}"),
            key,
            stop,
            _temp: temp,
        }
    }

    async fn channel(&self) -> AuthChannel {
        crate::common::authed(
            crate::common::connect_when_up(self.grpc).await,
            Some(&self.key),
        )
    }

    async fn catalog(&self) -> pb::catalog_service_client::CatalogServiceClient<AuthChannel> {
        pb::catalog_service_client::CatalogServiceClient::new(self.channel().await)
    }

    async fn post(&self, body: &Value) -> (u16, String) {
        let headers = [
            ("authorization", self.bearer.as_str()),
            ("x-experience-api-version", "1.0.3"),
            ("content-type", "application/json"),
        ];
        let response = http1(
            self.http,
            "POST",
            "/xapi/statements",
            &headers,
            body.to_string(),
        )
        .await;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn metrics(&self) -> String {
        crate::common::metrics_text(self.http).await
    }

    /// Attempts recorded for a learner on a skill.
    async fn attempts(&self, learner: &str, skill: &str) -> i32 {
        pb::mastery_service_client::MasteryServiceClient::new(self.channel().await)
            .get_mastery(pb::GetMasteryRequest {
                learner_id: learner.into(),
                skill_ids: vec![skill.into()],
            })
            .await
            .map(|r| r.into_inner().skills[0].attempt_count)
            .unwrap_or(-1)
    }

    async fn map(
        &self,
        activity: &str,
        target: pb::map_activity_request::Target,
    ) -> Result<pb::MapActivityResponse, tonic::Status> {
        self.catalog()
            .await
            .map_activity(pb::MapActivityRequest {
                activity_id: activity.into(),
                target: Some(target),
            })
            .await
            .map(|r| r.into_inner())
    }
}

fn activity(id: &str, kind: &str, name: &str) -> Value {
    json!({"id": id, "objectType": "Activity",
           "definition": {"type": kind, "name": {"en": name}}})
}

fn moodle(verb: &str, object: Value, result: Value, extra_grouping: &[Value]) -> Value {
    let mut grouping = vec![
        activity(
            SITE,
            "http://id.tincanapi.com/activitytype/lms",
            "Acme Moodle",
        ),
        activity(
            COURSE,
            "http://id.tincanapi.com/activitytype/lms/course",
            "SQL for analysts",
        ),
    ];
    grouping.extend(extra_grouping.iter().cloned());
    let mut s = json!({
        "actor": {"name": "Alice", "account": {"homePage": SITE, "name": "alice"}},
        "verb": {"id": verb, "display": {"en": "x"}},
        "object": object,
        "context": {"platform": "Moodle", "language": "en",
            "registration": "11111111-2222-4333-8444-555555555555",
            "contextActivities": {"grouping": grouping,
                "category": [activity("http://moodle.org", "http://id.tincanapi.com/activitytype/source", "Moodle")]}},
        "timestamp": "2026-11-20T09:00:00Z"
    });
    if !result.is_null() {
        s["result"] = result;
    }
    s
}

fn edx(verb: &str, object: Value, result: Value) -> Value {
    json!({
        "actor": {"objectType": "Agent", "account": {"homePage": "https://courses.example.com", "name": "bob-anon-id"}},
        "verb": {"id": verb, "display": {"en-US": "x"}},
        "object": object,
        "result": result,
        "context": {"contextActivities": {"parent": [
            activity(EDX_COURSE, "http://adlnet.gov/expapi/activities/course", "SQL 2026")]}},
        "timestamp": "2026-11-20T10:00:00.123456+00:00",
        "version": "1.0.3"
    })
}

fn cmi5(verb: &str, result: Value) -> Value {
    json!({
        "actor": {"objectType": "Agent", "account": {"homePage": "https://cmi5.example.com", "name": "carol"}},
        "verb": {"id": verb},
        "object": activity(AU, "https://w3id.org/xapi/cmi5/activitytype/block", "AU 1"),
        "result": result,
        "context": {"registration": REGISTRATION,
            "contextActivities": {"category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]},
            "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": "s1"}},
        "timestamp": "2026-11-20T11:00:00Z"
    })
}

const ADL: &str = "http://adlnet.gov/expapi/verbs/";

fn adl(verb: &str) -> String {
    format!("{ADL}{verb}")
}

/// The statements, each with whether it has a learning effect once its
/// activities are mapped.
fn traffic() -> Vec<(Value, bool)> {
    let quiz = activity(
        QUIZ,
        "http://adlnet.gov/expapi/activities/assessment",
        "Joins quiz",
    );
    let attempt = activity(
        ATTEMPT,
        "http://adlnet.gov/expapi/activities/attempt",
        "Attempt",
    );
    let question = json!({"id": QUESTION, "definition": {
        "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
        "name": {"en": "Which join keeps unmatched rows?"},
        "interactionType": "choice", "correctResponsesPattern": ["left"]}});
    let segments = "https://w3id.org/xapi/video/extensions/played-segments";
    let problem = activity(
        EDX_PROBLEM,
        "http://adlnet.gov/expapi/activities/cmi.interaction",
        "Problem 1",
    );
    let video = activity(
        EDX_VIDEO,
        "https://w3id.org/xapi/video/activity-type/video",
        "Joins video",
    );
    vec![
        // Moodle: module viewed, attempt started and viewed, a question
        // answered (no success: scored from the pattern), the attempt
        // submitted, a manual grade on a review slot, the course completed.
        (
            moodle(
                "http://id.tincanapi.com/verb/viewed",
                quiz.clone(),
                Value::Null,
                &[],
            ),
            true,
        ),
        (
            moodle(
                "http://activitystrea.ms/schema/1.0/start",
                quiz.clone(),
                Value::Null,
                &[],
            ),
            true,
        ),
        (
            moodle(
                "http://id.tincanapi.com/verb/viewed",
                attempt.clone(),
                Value::Null,
                std::slice::from_ref(&quiz),
            ),
            true,
        ),
        (
            moodle(
                &adl("answered"),
                question.clone(),
                json!({"response": "left", "completion": true}),
                &[quiz.clone(), attempt.clone()],
            ),
            true,
        ),
        (
            moodle(
                &adl("answered"),
                question,
                json!({"response": "inner"}),
                &[quiz.clone(), attempt.clone()],
            ),
            true,
        ),
        (
            moodle(
                &adl("completed"),
                quiz.clone(),
                json!({"score": {"raw": 50, "min": 0, "max": 100, "scaled": 0.5}, "completion": true, "success": true, "duration": "PT10M"}),
                &[],
            ),
            true,
        ),
        (
            json!({
            "actor": {"name": "Alice", "account": {"homePage": SITE, "name": "alice"}},
            "verb": {"id": "https://w3id.org/xapi/tla/verbs/scored"},
            "object": activity("https://moodle.example.com/review.php?attempt=5&slot=1", "http://activitystrea.ms/schema/1.0/review#slot", "Review slot 1"),
            "result": {"score": {"raw": 0.5, "min": 0, "max": 1, "scaled": 0.5}},
            "context": {"contextActivities": {"parent": [
                activity("https://moodle.example.com/review.php?attempt=5", "http://activitystrea.ms/schema/1.0/review", "Review"),
                attempt, quiz.clone(),
                activity(COURSE, "https://w3id.org/xapi/cmi5/activitytype/course", "SQL for analysts")]}},
            "timestamp": "2026-11-20T09:30:00Z"}),
            true,
        ),
        (
            moodle(
                &adl("completed"),
                activity(
                    COURSE,
                    "http://id.tincanapi.com/activitytype/lms/course",
                    "SQL for analysts",
                ),
                Value::Null,
                &[],
            ),
            true,
        ),
        // Open edX: graded answers (one ungraded, max 0), video verbs, and
        // a team object outside the specification.
        (
            edx(
                "https://w3id.org/xapi/acrossx/verbs/evaluated",
                problem.clone(),
                json!({"success": true, "score": {"raw": 1, "min": 0, "max": 1, "scaled": 1.0}}),
            ),
            true,
        ),
        (
            edx(
                "https://w3id.org/xapi/acrossx/verbs/evaluated",
                problem.clone(),
                json!({"success": false, "score": {"raw": 0, "min": 0, "max": 0}}),
            ),
            true,
        ),
        (
            edx(
                "https://w3id.org/xapi/video/verbs/played",
                video.clone(),
                json!({"extensions": {"https://w3id.org/xapi/video/extensions/time": 0}}),
            ),
            true,
        ),
        (
            edx(
                "https://w3id.org/xapi/video/verbs/paused",
                video.clone(),
                json!({"extensions": {segments: "0[.]95.5"}}),
            ),
            true,
        ),
        (
            edx(
                &adl("completed"),
                video.clone(),
                json!({"completion": true}),
            ),
            true,
        ),
        (
            edx(
                &adl("interacted"),
                json!({"objectType": "GroupActivity", "id": "https://courses.example.com/teams/t1"}),
                json!({}),
            ),
            false,
        ),
        // cmi5: an AU's session.
        (cmi5(&adl("launched"), json!({})), true),
        (cmi5(&adl("initialized"), json!({})), true),
        (
            cmi5(
                &adl("passed"),
                json!({"success": true, "score": {"scaled": 0.9}, "duration": "PT4M"}),
            ),
            true,
        ),
        (
            cmi5(
                &adl("completed"),
                json!({"completion": true, "duration": "PT5M"}),
            ),
            true,
        ),
        (cmi5(&adl("terminated"), json!({"duration": "PT6M"})), true),
        (
            cmi5(
                "https://w3id.org/xapi/adl/verbs/waived",
                json!({"success": true, "completion": true}),
            ),
            true,
        ),
    ]
}

/// The outcome counts in `/metrics`, summed over verbs.
fn outcomes(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("spoc_xapi_statements_total{outcome=\"") else {
            continue;
        };
        let (outcome, rest) = rest.split_once('"').unwrap();
        let n: u64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
        *out.entry(outcome.to_string()).or_default() += n;
    }
    out
}

#[tokio::test]
async fn real_lms_traffic_has_its_effect_once_each_activity_is_mapped() {
    let stack = Stack::start().await;
    let mut catalog = stack.catalog().await;
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("sql", &[]), skill("joins", &["sql"])],
            modules: ["m-quiz", "m-video", "m-au"]
                .iter()
                .map(|id| pb::Module {
                    id: id.to_string(),
                    title: id.to_string(),
                    skill_ids: vec!["joins".into()],
                    format: pb::ModuleFormat::Quiz as i32,
                    duration_minutes: 10,
                    language: "en".into(),
                    external_ids: Vec::new(),
                })
                .collect(),
            items: ["q-joins", "q-edx"]
                .iter()
                .map(|id| pb::Item {
                    id: id.to_string(),
                    skill_ids: vec!["joins".into()],
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
    let mut programs = pb::program_service_client::ProgramServiceClient::new(stack.channel().await);
    for (id, external) in [
        ("sql-analysts", vec![]),
        ("sql-cmi5", vec![REGISTRATION.to_string()]),
    ] {
        programs
            .upsert_program(pb::UpsertProgramRequest {
                program: Some(pb::Program {
                    id: id.into(),
                    name: id.into(),
                    skill_ids: vec!["joins".into()],
                    external_ids: external,
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }

    let traffic = traffic();
    let batch = Value::Array(traffic.iter().map(|(s, _)| s.clone()).collect());
    let (status, body) = stack.post(&batch).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<String> = serde_json::from_str(&body).unwrap();
    for id in &ids {
        let version = id.as_bytes()[14];
        assert_eq!(version, b'4', "generated ids are UUID v4: {id}");
    }

    // Discovery: what nothing maps, with what the statements said of it.
    let listed = catalog
        .list_unmapped_activities(pb::ListUnmappedActivitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let by_id: std::collections::BTreeMap<&str, &pb::UnmappedActivity> = listed
        .activities
        .iter()
        .map(|a| (a.activity_id.as_str(), a))
        .collect();
    for id in [
        COURSE,
        QUIZ,
        QUESTION,
        EDX_COURSE,
        EDX_PROBLEM,
        EDX_VIDEO,
        AU,
    ] {
        assert!(
            by_id.contains_key(id),
            "{id} not listed: {:?}",
            by_id.keys()
        );
    }
    assert_eq!(by_id[QUESTION].interaction_type, "choice");
    assert_eq!(by_id[QUESTION].name, "Which join keeps unmatched rows?");
    assert_eq!(by_id[QUESTION].waiting_statements, 2);
    assert_eq!(by_id[QUESTION].learners, 1);
    assert_eq!(
        by_id[EDX_COURSE].r#type,
        "http://adlnet.gov/expapi/activities/course"
    );
    assert!(
        !by_id.contains_key(ATTEMPT),
        "per-attempt ids resolve through their quiz"
    );

    // Each mapped once; the waiting statements replay at once.
    use pb::map_activity_request::Target;
    let mut last = None;
    for (activity, target) in [
        (COURSE, Target::ProgramId("sql-analysts".into())),
        (EDX_COURSE, Target::ProgramId("sql-analysts".into())),
        (QUIZ, Target::ModuleId("m-quiz".into())),
        (QUESTION, Target::ItemId("q-joins".into())),
        (EDX_PROBLEM, Target::ItemId("q-edx".into())),
        (EDX_VIDEO, Target::ModuleId("m-video".into())),
        (AU, Target::ModuleId("m-au".into())),
    ] {
        last = Some(stack.map(activity, target).await.expect(activity));
    }
    assert_eq!(last.unwrap().still_waiting, 0);
    let listed = catalog
        .list_unmapped_activities(pb::ListUnmappedActivitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.activities.is_empty(), "{:?}", listed.activities);

    // Every statement with a learning effect has it.
    let counts = outcomes(&stack.metrics().await);
    let effects = counts.get("attempt").copied().unwrap_or(0)
        + counts.get("module_event").copied().unwrap_or(0)
        + counts.get("enrolment").copied().unwrap_or(0);
    let with_effect = traffic.iter().filter(|(_, e)| *e).count() as u64;
    assert_eq!(effects, with_effect, "{counts:?}");
    assert_eq!(counts.get("refused"), None);
    // The answers: two Moodle (one right, one wrong from the pattern), two
    // Open edX, one cmi5 passed on the AU... which is a module: none.
    assert_eq!(stack.attempts("alice", "joins").await, 2);
    assert_eq!(stack.attempts("bob-anon-id", "joins").await, 2);
    // Enrolments: Alice and Bob in the program their course maps to,
    // Carol through her registration.
    let mut learners = pb::learner_service_client::LearnerServiceClient::new(stack.channel().await);
    for (learner, program) in [
        ("alice", "sql-analysts"),
        ("bob-anon-id", "sql-analysts"),
        ("carol", "sql-cmi5"),
    ] {
        let enrolments = learners
            .list_enrolments(pb::ListEnrolmentsRequest {
                learner_id: learner.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .enrolments;
        assert!(
            enrolments.iter().any(|e| e.program_id == program),
            "{learner}: {enrolments:?}"
        );
    }

    // A resend that differs only where the specification says to ignore
    // is a duplicate, not a conflict.
    let mut resend = traffic[3].0.clone();
    resend["id"] = json!(ids[3]);
    resend["verb"]["display"] = json!({"fr": "a répondu"});
    resend["object"]["definition"]["name"] = json!({"fr": "Quelle jointure ?"});
    resend["timestamp"] = json!("2026-11-20T10:00:00+01:00");
    let (status, body) = stack.post(&resend).await;
    assert_eq!(status, 200, "{body}");
    let _ = stack.stop.send(true);
}

/// A five-minute English video module `id` on skill "sql", known to the
/// LMS by `external_ids`.
fn sql_video(id: &str, external_ids: &[&str]) -> pb::Module {
    pb::Module {
        id: id.into(),
        title: id.to_uppercase(),
        skill_ids: vec!["sql".into()],
        format: pb::ModuleFormat::Video as i32,
        duration_minutes: 5,
        language: "en".into(),
        external_ids: external_ids.iter().map(|e| e.to_string()).collect(),
    }
}

#[tokio::test]
async fn mapping_errors_name_the_field() {
    let stack = Stack::start().await;
    let mut catalog = stack.catalog().await;
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("sql", &[])],
            modules: vec![sql_video("m1", &["https://lms/mod/1"])],
            items: vec![],
        })
        .await
        .unwrap();
    use pb::map_activity_request::Target;
    let err = stack
        .map("https://lms/x", Target::ModuleId("nope".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("module_id"), "{}", err.message());
    let err = stack
        .map("https://lms/mod/1", Target::ModuleId("m1".into()))
        .await
        .map(|r| r.replayed);
    assert_eq!(
        err.unwrap(),
        0,
        "mapping again to the same owner is a no-op"
    );
    // Another module cannot take the same external id.
    let err = catalog
        .upsert_module(pb::UpsertModuleRequest {
            module: Some(sql_video("m2", &["https://lms/mod/2", "https://lms/mod/1"])),
        })
        .await
        .unwrap_err();
    crate::common::assert_invalid_field(&err, "module.external_ids[1]");
    let err = catalog
        .map_activity(pb::MapActivityRequest {
            activity_id: "https://lms/x".into(),
            target: None,
        })
        .await
        .unwrap_err();
    crate::common::assert_invalid_field(&err, "target");
    // Ignored: statements about it are stored without effect, and it is
    // no longer listed.
    stack
        .map("https://lms/noise", Target::Ignore(true))
        .await
        .unwrap();
    let noise = json!({"actor": {"mbox": "mailto:a@acme.example"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://lms/noise"}, "result": {"success": true}});
    assert_eq!(stack.post(&noise).await.0, 200);
    let listed = catalog
        .list_unmapped_activities(pb::ListUnmappedActivitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.activities.is_empty());
    assert!(
        stack
            .metrics()
            .await
            .contains(r#"spoc_xapi_statements_total{outcome="no_effect",verb="answered"} 1"#)
    );
    let _ = stack.stop.send(true);
}

/// `spoc activities list|map|ignore` against the running service.
#[tokio::test]
async fn the_cli_lists_maps_and_ignores() {
    let stack = Stack::start().await;
    let mut catalog = stack.catalog().await;
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("sql", &[])],
            items: vec![pb::Item {
                id: "q1".into(),
                skill_ids: vec!["sql".into()],
                ..Default::default()
            }],
            modules: vec![],
        })
        .await
        .unwrap();
    for object in ["https://lms/q/1", "https://lms/q/noise"] {
        let statement = json!({"actor": {"mbox": "mailto:a@acme.example"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
            "object": {"id": object, "definition": {"name": {"en": "Question"}}},
            "result": {"success": true}});
        assert_eq!(stack.post(&statement).await.0, 200);
    }
    let (addr, key) = (format!("http://{}", stack.grpc), stack.key.clone());
    let spoc = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
            .args(args)
            .args(["--addr", &addr, "--api-key", &key, "--format", "json"])
            .output()
            .unwrap();
        crate::common::assert_success(&out);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let spoc = Arc::new(spoc);
    let run = |args: Vec<&'static str>| {
        let spoc = spoc.clone();
        tokio::task::spawn_blocking(move || spoc(&args))
    };
    let listed = run(vec!["activities", "list"]).await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["name"], "Question");
    let mapped = run(vec!["activities", "map", "https://lms/q/1", "--item", "q1"])
        .await
        .unwrap();
    assert_eq!(mapped["replayed"], 1, "{mapped}");
    let ignored = run(vec!["activities", "ignore", "https://lms/q/noise"])
        .await
        .unwrap();
    assert_eq!(ignored["still_waiting"], 0, "{ignored}");
    assert_eq!(stack.attempts("a@acme.example", "sql").await, 1);
    assert!(
        run(vec!["activities", "list"])
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    let _ = stack.stop.send(true);
}

/// `spoc catalog import`: items and modules from CSV files, external ids
/// and pass marks included; a statement about an external id then maps.
#[tokio::test]
async fn the_cli_imports_external_ids_from_csv() {
    let stack = Stack::start().await;
    stack
        .catalog()
        .await
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("sql", &[])],
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let items = dir.path().join("items.csv");
    std::fs::write(
        &items,
        "id,skill_ids,title,external_ids,pass_mark\n\
         q1,sql,Joins,https://lms/q/1|https://lms/q/1-bis,0.8\n",
    )
    .unwrap();
    let modules = dir.path().join("modules.csv");
    std::fs::write(
        &modules,
        "id,title,skill_ids,format,duration_minutes,language,external_ids\n\
         m1,Joins video,sql,video,12,en,https://lms/mod/7\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "id,title,skill_ids,format,duration_minutes,language,external_ids\n\
         m2,X,sql,hologram,12,en,\n",
    )
    .unwrap();
    let (addr, key) = (format!("http://{}", stack.grpc), stack.key.clone());
    let run = move |args: Vec<String>| {
        let (addr, key) = (addr.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
                .args(&args)
                .args(["--addr", &addr, "--api-key", &key, "--format", "json"])
                .output()
                .unwrap()
        })
    };
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let out = run(vec![
        "catalog".into(),
        "import".into(),
        "--items".into(),
        path(&items),
        "--modules".into(),
        path(&modules),
    ])
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            reply["items_upserted"].as_i64(),
            reply["modules_upserted"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let out = run(vec![
        "catalog".into(),
        "import".into(),
        "--modules".into(),
        path(&bad),
    ])
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv:2") && err.contains("column format"),
        "{err}"
    );
    let item = stack
        .catalog()
        .await
        .get_item(pb::GetItemRequest {
            item_id: "q1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        item.external_ids,
        ["https://lms/q/1", "https://lms/q/1-bis"]
    );
    assert_eq!(item.pass_mark, Some(0.8));
    // A score of 0.7 is below the item's pass mark of 0.8: wrong.
    let statement = json!({"actor": {"mbox": "mailto:a@acme.example"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://lms/q/1-bis"}, "result": {"score": {"scaled": 0.7}}});
    assert_eq!(stack.post(&statement).await.0, 200);
    assert_eq!(stack.attempts("a@acme.example", "sql").await, 1);
    assert!(
        stack
            .metrics()
            .await
            .contains(r#"spoc_xapi_statements_total{outcome="attempt",verb="answered"} 1"#)
    );
    let _ = stack.stop.send(true);
}
