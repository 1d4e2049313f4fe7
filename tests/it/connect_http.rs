//! Every RPC over plain HTTP (the Connect protocol) on `spoc serve`'s HTTP
//! listener, checked against the same calls over gRPC: JSON and protobuf
//! bodies, Connect's error JSON with field details, keys and roles,
//! WatchAlerts as a Connect server stream; then curl, and a real Connect
//! client (connect-es on Node) when the machine has them. Last, in process,
//! both listeners over one stack: one bound on requests in flight.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{
    AuthChannel, Spoc, authed, connect_when_up, free_addr, hand_bkt, mastery_of, t0,
};
use axum::body::Bytes;
use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prost::Message;
use serde_json::{Value, json};
use spoc_engine::api::pb;

/// A `spoc serve` child with its store in a temporary folder.
struct Served {
    grpc: SocketAddr,
    http: SocketAddr,
    admin: String,
    _spoc: Spoc,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `spoc serve` on free ports and waits until it answers.
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (grpc, http) = (free_addr(), free_addr());
        let spoc = Spoc::start(dir.path(), grpc, &http.to_string(), &[]);
        // Both listeners are bound before either serves.
        connect_when_up(grpc).await;
        let admin = crate::common::admin_key_in(dir.path());
        Self {
            grpc,
            http,
            admin,
            _spoc: spoc,
            _dir: dir,
        }
    }

    /// A gRPC channel carrying `key`.
    async fn channel(&self, key: &str) -> AuthChannel {
        authed(connect_when_up(self.grpc).await, Some(key))
    }

    /// A new key of `role`, made over gRPC by the admin.
    async fn key(&self, role: pb::ApiKeyRole) -> String {
        pb::admin_service_client::AdminServiceClient::new(self.channel(&self.admin).await)
            .create_api_key(pb::CreateApiKeyRequest {
                role: role as i32,
                display_name: format!("{role:?}"),
                ..Default::default()
            })
            .await
            .expect("create key")
            .into_inner()
            .secret
    }

    /// A unary Connect call in JSON with `key` (none if empty).
    async fn json(&self, key: &str, path: &str, body: Value) -> Reply {
        let bearer = format!("Bearer {key}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("connect-protocol-version", "1"),
        ];
        if !key.is_empty() {
            headers.push(("authorization", &bearer));
        }
        post(self.http, path, &headers, body.to_string()).await
    }

    /// A unary Connect call in protobuf with `key`: `body` as sent.
    async fn proto(&self, key: &str, path: &str, body: impl Into<Bytes>) -> Reply {
        let headers = [
            ("content-type", "application/proto"),
            ("authorization", &format!("Bearer {key}")),
        ];
        post(self.http, path, &headers, body).await
    }
}

/// An HTTP reply, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a Connect error of `code` with HTTP `status`; its JSON.
    fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type, "application/json");
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        json
    }
}

/// A POST, read whole.
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let response = crate::common::http1(addr, "POST", path, headers, body).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body,
    }
}

/// `payload` in a Connect envelope with `flags`.
fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads Connect envelopes off a streaming reply as they arrive.
struct Envelopes {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Envelopes {
    /// The next (flags, payload); panics if the stream ends first.
    async fn next(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buffer.len() >= 5 {
                let length = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
                if self.buffer.len() >= 5 + length {
                    let flags = self.buffer[0];
                    let payload = self.buffer[5..5 + length].to_vec();
                    self.buffer.drain(..5 + length);
                    return (flags, payload);
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("no message within 10 s")
                .expect("stream ended early")
                .expect("stream failed");
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// True once the reply has ended with nothing after the last envelope.
    async fn ended(&mut self) -> bool {
        self.buffer.is_empty() && self.body.frame().await.is_none()
    }
}

/// Opens a WatchAlerts stream in `codec` (`json` or `proto`) with
/// `request` (already encoded) and extra headers.
async fn watch(
    served: &Served,
    key: &str,
    codec: &str,
    request: &[u8],
    extra: &[(&str, &str)],
) -> Envelopes {
    let bearer = format!("Bearer {key}");
    let content_type = format!("application/connect+{codec}");
    let mut headers = vec![
        ("content-type", content_type.as_str()),
        ("authorization", bearer.as_str()),
    ];
    headers.extend_from_slice(extra);
    let response = crate::common::http1(
        served.http,
        "POST",
        "/spoc.v1.AlertService/WatchAlerts",
        &headers,
        envelope(0, request),
    )
    .await;
    // Streams always answer 200; errors travel in the end message.
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], content_type.as_str());
    Envelopes {
        body: response.into_body(),
        buffer: Vec::new(),
    }
}

/// The end message of a stream, as JSON.
async fn end_message(stream: &mut Envelopes) -> Value {
    let (flags, payload) = stream.next().await;
    assert_eq!(flags, 2, "the end message carries flag 2");
    let end = serde_json::from_slice(&payload).expect("end message is JSON");
    assert!(stream.ended().await, "nothing after the end message");
    end
}

/// A catalog (a <- b), learner ann of acme enrolled in program excel, all
/// through Connect JSON calls.
async fn seed(served: &Served) {
    let key = served.admin.as_str();
    let imported = served
        .json(
            key,
            "/spoc.v1.CatalogService/ImportCatalog",
            json!({"skills": [{"id": "a", "name": "Skill a"},
                {"id": "b", "name": "Skill b", "prerequisiteIds": ["a"]}]}),
        )
        .await;
    assert_eq!(imported.status, 200, "{imported:?}");
    assert_eq!(imported.json()["skillsUpserted"], 2);
    for (path, body) in [
        (
            "/spoc.v1.LearnerService/UpsertLearner",
            json!({"learner": {"id": "ann", "companyId": "acme", "language": "fr",
                "timeZone": "Europe/Paris"}}),
        ),
        (
            "/spoc.v1.ProgramService/UpsertProgram",
            json!({"program": {"id": "excel", "name": "Excel", "skillIds": ["a", "b"]}}),
        ),
        (
            "/spoc.v1.LearnerService/EnrollLearner",
            json!({"learnerId": "ann", "programId": "excel"}),
        ),
    ] {
        let reply = served.json(key, path, body).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

/// One attempt of ann in JSON.
fn attempt(id: &str, skill: &str, correct: bool, seconds: u32) -> Value {
    json!({"attemptId": id, "learnerId": "ann", "itemId": format!("item-{id}"),
        "skillIds": [skill], "correct": correct,
        "occurredAt": jiff::Timestamp::from_second(t0() + i64::from(seconds)).unwrap().to_string(),
        "timeSpent": "30s"})
}

/// Unary calls in JSON and in protobuf reach the same handlers as gRPC and
/// answer the same values, in the caller's codec.
#[tokio::test]
async fn unary_calls_in_json_and_protobuf_answer_what_grpc_answers() {
    let served = Served::start().await;
    seed(&served).await;
    let lms = served.key(pb::ApiKeyRole::Lms).await;
    let recorded = served
        .json(
            &lms,
            "/spoc.v1.MasteryService/RecordAttempts",
            json!({"attempts": [attempt("t1", "a", true, 0), attempt("t2", "a", false, 1),
                attempt("t3", "a", true, 2)]}),
        )
        .await;
    assert_eq!(recorded.status, 200, "{recorded:?}");
    assert_eq!(recorded.content_type, "application/json");

    // JSON: camelCase names, defaults left out, the value BKT gives.
    let reply = post(
        served.http,
        "/spoc.v1.MasteryService/GetMastery",
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("authorization", &format!("Bearer {lms}")),
        ],
        r#"{"learner_id": "ann", "skillIds": ["a"]}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let json = reply.json();
    assert_eq!(json["learnerId"], "ann");
    assert_eq!(json["skills"][0]["skillId"], "a");
    assert_eq!(json["skills"][0]["attemptCount"], 3);
    let p = json["skills"][0]["pMastered"].as_f64().unwrap();
    assert!((p - hand_bkt(&[true, false, true])).abs() < 1e-12, "{p}");

    // Protobuf: the very message gRPC answers.
    let request = pb::GetMasteryRequest {
        learner_id: "ann".into(),
        skill_ids: vec!["a".into(), "b".into()],
    };
    let reply = served
        .proto(
            &lms,
            "/spoc.v1.MasteryService/GetMastery",
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.content_type, "application/proto");
    let over_connect = pb::GetMasteryResponse::decode(reply.body.clone()).unwrap();
    let over_grpc =
        pb::mastery_service_client::MasteryServiceClient::new(served.channel(&lms).await)
            .get_mastery(request)
            .await
            .unwrap()
            .into_inner();
    assert_eq!(over_connect, over_grpc);

    // A list, and an empty body as the empty request.
    let reply = post(
        served.http,
        "/spoc.v1.CatalogService/ListSkills",
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {}", served.admin)),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let ids: Vec<_> = reply.json()["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a", "b"]);

    // Big bodies both ways (transcoded off the runtime's workers).
    let skills: Vec<Value> = (0..1500)
        .map(|i| json!({"id": format!("bulk-{i:04}"), "name": format!("Bulk skill {i:04} {}", "x".repeat(60))}))
        .collect();
    let body = json!({ "skills": skills });
    assert!(body.to_string().len() > 100_000);
    let reply = served
        .json(&served.admin, "/spoc.v1.CatalogService/ImportCatalog", body)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["skillsUpserted"], 1500);
    let reply = served
        .json(
            &served.admin,
            "/spoc.v1.CatalogService/ListSkills",
            json!({"pageSize": 1000}),
        )
        .await;
    assert!(reply.body.len() > 100_000);
    let page = reply.json();
    assert_eq!(page["skills"].as_array().unwrap().len(), 1000);
    assert!(!page["nextPageToken"].as_str().unwrap().is_empty());
}

/// Errors are Connect's error JSON, with the HTTP status of their code and
/// the gRPC details (a BadRequest naming the field) in `details`.
#[tokio::test]
async fn errors_carry_connect_codes_and_the_field_in_details() {
    let served = Served::start().await;
    seed(&served).await;
    let key = served.admin.as_str();

    // A field the handler refuses.
    let reply = served
        .json(
            key,
            "/spoc.v1.LearnerService/UpsertLearner",
            json!({"learner": {"id": "", "companyId": "acme"}}),
        )
        .await;
    let error = reply.error(400, "invalid_argument");
    let detail = &error["details"][0];
    assert_eq!(detail["type"], "google.rpc.BadRequest");
    assert_eq!(detail["debug"]["fieldViolations"][0]["field"], "learner.id");
    let value = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(detail["value"].as_str().unwrap())
        .unwrap();
    let bad_request = tonic_types::pb::BadRequest::decode(value.as_slice()).unwrap();
    assert_eq!(bad_request.field_violations[0].field, "learner.id");
    // The message is gRPC's, word for word.
    let status = pb::learner_service_client::LearnerServiceClient::new(served.channel(key).await)
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(pb::Learner {
                company_id: "acme".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error["message"], status.message());

    // JSON that does not fit the message: the path, before any handler.
    let reply = served
        .json(
            key,
            "/spoc.v1.MasteryService/RecordAttempts",
            json!({"attempts": [attempt("x", "a", true, 0), {"correct": "yes"}]}),
        )
        .await;
    let error = reply.error(400, "invalid_argument");
    assert_eq!(
        error["details"][0]["debug"]["fieldViolations"][0]["field"],
        "attempts[1].correct"
    );
    let reply = served
        .json(
            key,
            "/spoc.v1.CatalogService/ListSkills",
            json!({"pageSize": 10, "colour": "red"}),
        )
        .await;
    let error = reply.error(400, "invalid_argument");
    assert_eq!(
        error["details"][0]["debug"]["fieldViolations"][0]["field"],
        "colour"
    );

    // Not found, with its ResourceInfo; a protobuf call's error is JSON too.
    let nobody = pb::GetLearnerRequest {
        learner_id: "nobody".into(),
    };
    let reply = served
        .proto(
            key,
            "/spoc.v1.LearnerService/GetLearner",
            nobody.encode_to_vec(),
        )
        .await;
    let error = reply.error(404, "not_found");
    assert_eq!(error["details"][0]["type"], "google.rpc.ResourceInfo");
    assert_eq!(error["details"][0]["debug"]["resourceName"], "nobody");

    // Bytes that are no protobuf message: gRPC's INVALID_ARGUMENT.
    let reply = served
        .proto(
            key,
            "/spoc.v1.LearnerService/GetLearner",
            vec![0x0a, 0x05, b'a'],
        )
        .await;
    reply.error(400, "invalid_argument");

    // Unknown procedures; the protocol's own refusals.
    let reply = served
        .json(key, "/spoc.v1.CatalogService/Nope", json!({}))
        .await;
    reply.error(404, "unimplemented");
    let reply = served.json(key, "/spoc.v1.NoService/Call", json!({})).await;
    reply.error(404, "unimplemented");
    // Other paths stay the HTTP router's.
    let reply = served.json(key, "/acme.v1.Other/Call", json!({})).await;
    assert_eq!(reply.status, 404);
    let response = crate::common::http1(served.http, "GET", "/xapi/nothing", &[], "").await;
    assert_eq!(response.status(), 404);
    let reply = post(
        served.http,
        "/spoc.v1.CatalogService/ListSkills",
        &[("content-type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(reply.status, 415);
    let headers = |version: &'static str, timeout: &'static str| {
        vec![
            ("content-type", "application/json"),
            ("connect-protocol-version", version),
            ("connect-timeout-ms", timeout),
        ]
    };
    // An unknown protocol version; a negative timeout.
    for (version, timeout) in [("2", "1000"), ("1", "-5")] {
        let reply = post(
            served.http,
            "/spoc.v1.CatalogService/ListSkills",
            &headers(version, timeout),
            "{}",
        )
        .await;
        reply.error(400, "invalid_argument");
    }
    let reply = post(
        served.http,
        "/spoc.v1.CatalogService/ListSkills",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        "{}",
    )
    .await;
    reply.error(501, "unimplemented");
    let response = crate::common::http1(
        served.http,
        "GET",
        "/spoc.v1.CatalogService/ListSkills",
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), 405);
}

/// The key check is gRPC's: no key is unauthenticated, a role that may not
/// call the method is permission_denied with gRPC's message, scoped keys
/// see only their scope.
#[tokio::test]
async fn keys_roles_and_scopes_are_the_grpc_ones() {
    let served = Served::start().await;
    seed(&served).await;
    let list = json!({});
    let reply = served
        .json("", "/spoc.v1.CatalogService/ListSkills", list.clone())
        .await;
    reply.error(401, "unauthenticated");
    let reply = served
        .json(
            "spoc_0000_bogus",
            "/spoc.v1.CatalogService/ListSkills",
            list.clone(),
        )
        .await;
    reply.error(401, "unauthenticated");

    let lms = served.key(pb::ApiKeyRole::Lms).await;
    let create = json!({"role": "API_KEY_ROLE_ADMIN", "displayName": "escalate"});
    let reply = served
        .json(&lms, "/spoc.v1.AdminService/CreateApiKey", create)
        .await;
    let error = reply.error(403, "permission_denied");
    let status = pb::admin_service_client::AdminServiceClient::new(served.channel(&lms).await)
        .create_api_key(pb::CreateApiKeyRequest {
            role: pb::ApiKeyRole::Admin as i32,
            display_name: "escalate".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(error["message"], status.message());

    // A company key reads its own company's learners only: another
    // company's learner is not found, as over gRPC.
    for (company, status) in [("globex", 404), ("acme", 200)] {
        let key =
            pb::admin_service_client::AdminServiceClient::new(served.channel(&served.admin).await)
                .create_api_key(pb::CreateApiKeyRequest {
                    role: pb::ApiKeyRole::Company as i32,
                    company_id: company.into(),
                    display_name: company.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .secret;
        let reply = served
            .json(
                &key,
                "/spoc.v1.MasteryService/GetMastery",
                json!({"learnerId": "ann"}),
            )
            .await;
        let over_grpc =
            pb::mastery_service_client::MasteryServiceClient::new(served.channel(&key).await)
                .get_mastery(pb::GetMasteryRequest {
                    learner_id: "ann".into(),
                    ..Default::default()
                })
                .await;
        if status == 404 {
            let error = reply.error(404, "not_found");
            assert_eq!(error["message"], over_grpc.unwrap_err().message());
        } else {
            assert_eq!(reply.status, 200, "{reply:?}");
            assert_eq!(reply.json()["learnerId"], "ann");
            assert!(over_grpc.is_ok());
        }
    }
}

/// WatchAlerts is a Connect server stream: one envelope per event in JSON
/// or protobuf, errors and deadlines in the end message.
#[tokio::test]
async fn watch_alerts_is_a_connect_server_stream() {
    let served = Served::start().await;
    seed(&served).await;
    let admin = served.admin.clone();
    let request = json!({"programId": "excel"}).to_string();
    let mut json_stream = watch(&served, &admin, "json", request.as_bytes(), &[]).await;
    let proto_request = pb::WatchAlertsRequest {
        program_id: "excel".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut proto_stream = watch(&served, &admin, "proto", &proto_request, &[]).await;

    // Three failures on b: a blocking point, on both open streams.
    let failures: Vec<_> = (0..3)
        .map(|k| attempt(&format!("f{k}"), "b", false, 10 + k))
        .collect();
    let reply = served
        .json(
            &admin,
            "/spoc.v1.MasteryService/RecordAttempts",
            json!({ "attempts": failures }),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let (flags, payload) = json_stream.next().await;
    assert_eq!(flags, 0);
    let event: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(event["alert"]["learnerId"], "ann", "{event}");
    assert_eq!(event["alert"]["kind"], "ALERT_KIND_BLOCKING_POINT");
    assert_eq!(event["alert"]["skillId"], "b");
    let (flags, payload) = proto_stream.next().await;
    assert_eq!(flags, 0);
    let event = pb::AlertEvent::decode(payload.as_slice()).unwrap();
    let alert = event.alert.unwrap();
    assert_eq!(alert.learner_id, "ann");
    assert_eq!(alert.kind, pb::AlertKind::BlockingPoint as i32);
    drop((json_stream, proto_stream));

    // A fresh watch starts with the active alert (snapshot), then ends at
    // its deadline with deadline_exceeded.
    let mut timed = watch(
        &served,
        &admin,
        "json",
        request.as_bytes(),
        &[("connect-timeout-ms", "300")],
    )
    .await;
    let (_, payload) = timed.next().await;
    let event: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(event["snapshot"], true);
    assert_eq!(event["alert"]["id"], alert.id.as_str());
    let end = end_message(&mut timed).await;
    assert_eq!(end["error"]["code"], "deadline_exceeded", "{end}");

    // Refusals end the stream at once with the gRPC code.
    let unknown = json!({"programId": "nope"}).to_string();
    let mut refused = watch(&served, &admin, "json", unknown.as_bytes(), &[]).await;
    let end = end_message(&mut refused).await;
    assert_eq!(end["error"]["code"], "not_found", "{end}");
    let mut refused = watch(&served, "spoc_0000_bogus", "json", request.as_bytes(), &[]).await;
    let end = end_message(&mut refused).await;
    assert_eq!(end["error"]["code"], "unauthenticated", "{end}");
    let bad = json!({"afterSequence": "many"}).to_string();
    let mut refused = watch(&served, &admin, "json", bad.as_bytes(), &[]).await;
    let end = end_message(&mut refused).await;
    assert_eq!(end["error"]["code"], "invalid_argument", "{end}");

    // A request envelope announcing more than the message-size limit is
    // refused before its bytes are waited for.
    let response = crate::common::http1(
        served.http,
        "POST",
        "/spoc.v1.AlertService/WatchAlerts",
        &[
            ("content-type", "application/connect+proto"),
            ("authorization", &format!("Bearer {admin}")),
        ],
        vec![0, 0x02, 0, 0, 0, 0x12],
    )
    .await;
    let mut refused = Envelopes {
        body: response.into_body(),
        buffer: Vec::new(),
    };
    let end = end_message(&mut refused).await;
    assert_eq!(end["error"]["code"], "resource_exhausted", "{end}");

    // A unary content type on the streaming method is refused.
    let reply = served
        .json(
            &admin,
            "/spoc.v1.AlertService/WatchAlerts",
            json!({"programId": "excel"}),
        )
        .await;
    assert_eq!(reply.status, 415);
}

/// Whether `program` runs on this machine.
fn available(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// curl, as an LMS backend without a gRPC stack calls the engine.
#[tokio::test]
async fn curl_calls_every_rpc_in_json() {
    if !available("curl") {
        eprintln!("curl not found: skipped");
        return;
    }
    let served = Served::start().await;
    seed(&served).await;
    let url = format!("http://{}/spoc.v1.LearnerService/GetLearner", served.http);
    let curl = |body: &'static str, key: String| {
        let url = url.clone();
        tokio::process::Command::new("curl")
            .args(["-sS", "-X", "POST", &url])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", &format!("Authorization: Bearer {key}")])
            .args(["-w", "\n%{http_code}", "-d", body])
            .output()
    };
    let out = curl(r#"{"learnerId": "ann"}"#, served.admin.clone())
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{text}");
    let learner: Value = serde_json::from_str(body).unwrap();
    assert_eq!(learner["id"], "ann");
    assert_eq!(learner["timeZone"], "Europe/Paris");

    let out = curl(r#"{"learnerId": ""}"#, served.admin.clone())
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "400", "{text}");
    let error: Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["code"], "invalid_argument");
    assert_eq!(
        error["details"][0]["debug"]["fieldViolations"][0]["field"],
        "learner_id"
    );
}

/// The Connect client's folder, with its packages installed (`npm ci`,
/// redone only when the lock file changes; downloads cached under
/// target/); `None` when node or npm is missing.
fn connect_client() -> Option<PathBuf> {
    if !available("node") || !available("npm") {
        eprintln!("node or npm not found: the Connect client test is skipped");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/connect");
    let lock = std::fs::read(dir.join("package-lock.json")).expect("package-lock.json");
    let stamp = dir.join("node_modules/.spoc-installed-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-cache");
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--cache"])
            .arg(&cache)
            .current_dir(&dir)
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci failed in {}", dir.display());
        std::fs::write(&stamp, &lock).expect("write install stamp");
    }
    Some(dir)
}

/// A real Connect client (connect-es 2 with connect-node, services read
/// from our descriptor set at run time, no generated code) calls unary
/// RPCs in JSON and protobuf, meets field errors, missing keys and refused
/// roles, and watches alerts; what it saw is checked through gRPC.
#[tokio::test]
async fn a_real_connect_client_calls_the_engine() {
    let Some(client) = connect_client() else {
        return;
    };
    let served = Served::start().await;
    let lms = served.key(pb::ApiKeyRole::Lms).await;
    let descriptor = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(descriptor.path(), pb::FILE_DESCRIPTOR_SET).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("client.mjs")
        .current_dir(&client)
        .env("SPOC_URL", format!("http://{}", served.http))
        .env("SPOC_DESCRIPTOR", descriptor.path())
        .env("SPOC_ADMIN_KEY", &served.admin)
        .env("SPOC_LMS_KEY", &lms)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Connect client did not finish within 2 minutes")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");

    let mut client =
        pb::mastery_service_client::MasteryServiceClient::new(served.channel(&lms).await);
    let mastery = mastery_of(&mut client, "ann", &["a"]).await;
    assert_eq!(
        seen["pMasteredA"].as_f64().unwrap(),
        mastery.skills[0].p_mastered
    );
    assert!((mastery.skills[0].p_mastered - hand_bkt(&[true, true])).abs() < 1e-12);
    let alert =
        pb::alert_service_client::AlertServiceClient::new(served.channel(&served.admin).await)
            .get_alert(pb::GetAlertRequest {
                alert_id: seen["alertId"].as_str().unwrap().into(),
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(alert.learner_id, "ann");
    assert_eq!(alert.skill_id, seen["alertSkill"].as_str().unwrap());
}

/// One bound on requests in flight for both listeners: with the only
/// permit taken, a gRPC call and a Connect call are both refused at once
/// (RESOURCE_EXHAUSTED; HTTP 429), and both pass once it is free.
#[tokio::test]
async fn both_listeners_share_the_bound_on_requests_in_flight() {
    use tower::Service;

    let dir = tempfile::tempdir().unwrap();
    let (engine, admin) = crate::common::engine_in(dir.path());
    let stack = spoc_engine::server::ApiStack::new(engine, 1);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grpc_server = tokio::spawn(spoc_engine::server::serve_stack(
        stack.clone(),
        grpc,
        wait(stopped.clone()),
        None,
    ));
    let http_server = tokio::spawn(spoc_engine::http::serve_with(
        stack.clone(),
        http,
        wait(stopped.clone()),
    ));

    let call_both = || async {
        let over_grpc = pb::catalog_service_client::CatalogServiceClient::new(authed(
            connect_when_up(grpc_addr).await,
            Some(&admin),
        ))
        .list_skills(pb::ListSkillsRequest::default())
        .await;
        let bearer = format!("Bearer {admin}");
        let over_http = post(
            http_addr,
            "/spoc.v1.CatalogService/ListSkills",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            "{}",
        )
        .await;
        (over_grpc, over_http)
    };

    // Take the only permit, as a call waiting in the stack would.
    let mut holder = stack.in_process();
    std::future::poll_fn(|cx| holder.poll_ready(cx))
        .await
        .expect("the permit");
    let (over_grpc, over_http) = call_both().await;
    assert_eq!(
        over_grpc.unwrap_err().code(),
        tonic::Code::ResourceExhausted
    );
    over_http.error(429, "resource_exhausted");

    drop(holder);
    let (over_grpc, over_http) = call_both().await;
    assert!(over_grpc.is_ok());
    assert_eq!(over_http.status, 200, "{over_http:?}");

    stop.send_replace(true);
    grpc_server.await.unwrap().unwrap();
    http_server.await.unwrap().unwrap();
}
