//! Page tokens through a real server (AIP-158): every token the server
//! issues leads to the next page, however long the keys it pages over, and
//! a token is refused (INVALID_ARGUMENT naming `page_token`) by another
//! list, with other filters, or when the server never issued it.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::common::*;
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use spoc_engine::api::pb;
use tokio::sync::watch;

/// The longest id the API accepts, in bytes.
const MAX_ID: usize = 256;

/// An id of exactly [`MAX_ID`] bytes starting with `head`.
fn long_id(head: &str) -> String {
    format!("{head:x<MAX_ID$}")
}

/// Checks that `status` refuses the page token with a message holding
/// `reason`.
fn assert_token_refused(status: &tonic::Status, reason: &str) {
    assert_invalid_field(status, "page_token");
    assert!(
        status.message().contains(reason),
        "expected {reason:?} in {:?}",
        status.message()
    );
}

/// The token of the second page of skills, one skill a page (there must be
/// one).
async fn second_skills_page_token(
    catalog: &mut pb::catalog_service_client::CatalogServiceClient<AuthChannel>,
) -> String {
    let token = catalog
        .list_skills(pb::ListSkillsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("list skills")
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    token
}

const OTHER_LIST: &str = "was issued for another list or filter";
const NOT_ISSUED: &str = "is not a token returned by a previous call";

/// Upserts `id` as a learner of `company`.
async fn add_learner(server: &TestServer, id: &str, company: &str) {
    server
        .learners()
        .await
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner(id, company)),
        })
        .await
        .expect("upsert learner");
}

/// Upserts a program `id` over skill `a` (from [`seed`]).
async fn add_program(server: &TestServer, id: &str) {
    server
        .programs()
        .await
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: id.into(),
                name: "Long ids".into(),
                skill_ids: vec!["a".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("upsert program");
}

/// Enrols `learner` in `program`.
async fn enrol(server: &TestServer, learner: &str, program: &str) {
    server.enroll(&[learner], program).await;
}

/// Walks `ListEnrolments` one enrolment a page from the first page to the
/// last; returns the enrolments in order.
async fn walk_enrolments(
    server: &TestServer,
    program_id: &str,
    learner_id: &str,
) -> Vec<pb::Enrolment> {
    let mut client = server.learners().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let page = client
            .list_enrolments(pb::ListEnrolmentsRequest {
                program_id: program_id.into(),
                learner_id: learner_id.into(),
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap_or_else(|e| panic!("page {} refused: {e:?}", seen.len()))
            .into_inner();
        assert!(page.enrolments.len() <= 1, "{page:?}");
        seen.extend(page.enrolments);
        if page.next_page_token.is_empty() {
            return seen;
        }
        token = page.next_page_token;
    }
    panic!("the walk never ended");
}

/// (a) Ids of the longest legal size make keys over 512 bytes (program id,
/// NUL, learner id): a walk one enrolment a page reaches every enrolment,
/// each token the server issued being accepted back, by program and by
/// learner.
#[tokio::test]
async fn enrolments_with_the_longest_ids_page_to_the_end() {
    let server = TestServer::start().await;
    seed(&server).await;
    let program = long_id("program-");
    let other_program = long_id("program-2-");
    add_program(&server, &program).await;
    add_program(&server, &other_program).await;
    let learners: Vec<String> = (0..5).map(|i| long_id(&format!("learner-{i}-"))).collect();
    for id in &learners {
        assert_eq!(id.len(), MAX_ID);
        add_learner(&server, id, "acme").await;
        enrol(&server, id, &program).await;
    }
    enrol(&server, &learners[0], &other_program).await;

    let by_program = walk_enrolments(&server, &program, "").await;
    let ids: Vec<_> = by_program.iter().map(|e| e.learner_id.clone()).collect();
    assert_eq!(ids, learners, "every enrolment once, in order");
    assert!(by_program.iter().all(|e| e.program_id == program));

    let by_learner = walk_enrolments(&server, "", &learners[0]).await;
    let programs: BTreeSet<_> = by_learner.iter().map(|e| e.program_id.clone()).collect();
    assert_eq!(programs, BTreeSet::from([program, other_program]));
    assert_eq!(by_learner.len(), 2);
}

/// (b) A token of `ListSkills` is refused by the other lists, though
/// `ListSkills` itself takes it.
#[tokio::test]
async fn a_token_of_one_list_is_refused_by_another() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut catalog = server.catalog().await;
    let token = second_skills_page_token(&mut catalog).await;

    let err = catalog
        .list_modules(pb::ListModulesRequest {
            page_size: 1,
            page_token: token.clone(),
        })
        .await
        .unwrap_err();
    assert_token_refused(&err, OTHER_LIST);
    let err = server
        .learners()
        .await
        .list_learners(pb::ListLearnersRequest {
            page_size: 1,
            page_token: token.clone(),
            company_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_token_refused(&err, OTHER_LIST);
    let err = server
        .programs()
        .await
        .list_programs(pb::ListProgramsRequest {
            page_size: 1,
            page_token: token.clone(),
        })
        .await
        .unwrap_err();
    assert_token_refused(&err, OTHER_LIST);

    // The list that issued it continues with it.
    let second = catalog
        .list_skills(pb::ListSkillsRequest {
            page_size: 1,
            page_token: token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.skills[0].id, "b");
}

/// (c) A `ListLearners` token for one company is refused for another
/// company and without the filter; with the same company it goes on, even
/// with another page size (AIP-158 allows that one to change).
#[tokio::test]
async fn a_learner_token_is_bound_to_its_company() {
    let server = TestServer::start().await;
    seed(&server).await;
    add_learner(&server, "carol", "acme").await;
    add_learner(&server, "dave", "co").await;
    let mut learners = server.learners().await;
    let list = |company: &str, page_size: i32, token: &str| pb::ListLearnersRequest {
        page_size,
        page_token: token.into(),
        company_id: company.into(),
    };
    let first = learners
        .list_learners(list("acme", 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.learners[0].id, "alice");
    let token = first.next_page_token;
    assert!(!token.is_empty());

    for company in ["co", "globex", ""] {
        let err = learners
            .list_learners(list(company, 1, &token))
            .await
            .unwrap_err();
        assert_token_refused(&err, OTHER_LIST);
    }
    let rest = learners
        .list_learners(list("acme", 10, &token))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = rest.learners.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["carol"]);
    assert!(rest.next_page_token.is_empty());
}

/// (d) A `ListEnrolments` token for a program is refused for a learner (or
/// another program); with the same program it goes on.
#[tokio::test]
async fn an_enrolment_token_is_bound_to_its_program_or_learner() {
    let server = TestServer::start().await;
    seed(&server).await;
    add_program(&server, "word").await;
    for learner in ["alice", "bob"] {
        enrol(&server, learner, "excel").await;
    }
    let mut client = server.learners().await;
    let list = |program: &str, learner: &str, token: &str| pb::ListEnrolmentsRequest {
        program_id: program.into(),
        learner_id: learner.into(),
        page_size: 1,
        page_token: token.into(),
    };
    let first = client
        .list_enrolments(list("excel", "", ""))
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token;
    assert!(!token.is_empty());

    for (program, learner) in [("", "alice"), ("", "bob"), ("word", "")] {
        let err = client
            .list_enrolments(list(program, learner, &token))
            .await
            .unwrap_err();
        assert_token_refused(&err, OTHER_LIST);
    }
    let rest = client
        .list_enrolments(list("excel", "", &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.enrolments[0].learner_id, "bob");
}

/// (e) Strings the server never issued, such as the hex keys of the former
/// format, are refused rather than read as a place in the list.
#[tokio::test]
async fn tokens_never_issued_are_refused() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut catalog = server.catalog().await;
    for (page_size, token) in [(0, "ffff"), (2, "00"), (2, "61"), (1, "AAAAAAAAAAAAAAAA")] {
        let err = catalog
            .list_skills(pb::ListSkillsRequest {
                page_size,
                page_token: token.into(),
            })
            .await
            .expect_err(token);
        assert_token_refused(&err, NOT_ISSUED);
    }
    // A token of the server, truncated or with one character changed.
    let token = second_skills_page_token(&mut catalog).await;
    let mut changed = token.clone().into_bytes();
    changed[3] = if changed[3] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    for bad in [&token[..token.len() - 1], changed.as_str()] {
        let err = catalog
            .list_skills(pb::ListSkillsRequest {
                page_size: 1,
                page_token: bad.into(),
            })
            .await
            .expect_err(bad);
        assert_token_refused(&err, NOT_ISSUED);
    }
}

/// One HTTP/1.1 request with the admin key on a fresh connection: the
/// status and the JSON body.
async fn http(addr: SocketAddr, key: &str, method: &str, path: &str, body: String) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {key}"))
        .header("x-experience-api-version", "1.0.3")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `GET /xapi/unresolved` pages with the same tokens: a walk one statement
/// a page reaches them all, and a gRPC list's token or a string never
/// issued is a 400 naming `page_token`.
#[tokio::test]
async fn unresolved_statements_page_with_bound_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, key) = engine_in(dir.path());
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, web_addr) = (grpc.local_addr().unwrap(), web.local_addr().unwrap());
    let (stop, stopped) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let tasks = [
        tokio::spawn(spoc_engine::server::serve(
            engine.clone(),
            grpc,
            wait(stopped.clone()),
        )),
        tokio::spawn(spoc_engine::http::serve(engine, web, wait(stopped))),
    ];

    // Three answers about activities the catalog does not know: they wait.
    let fixture = format!(
        "{}/tests/fixtures/xapi/openedx_problem_check.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let template: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let ids: Vec<String> = (1..=3)
        .map(|i| format!("9b0c3f4e-6d2a-4b1f-8e7c-5a3d2c1b0f0{i}"))
        .collect();
    let statements: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut s = template.clone();
            s["id"] = id.clone().into();
            s["object"]["id"] = format!("https://courses.example.com/xblock/unknown-{i}").into();
            s
        })
        .collect();
    let body = serde_json::to_string(&statements).unwrap();
    let (status, reply) = http(web_addr, &key, "POST", "/xapi/statements", body).await;
    assert_eq!(status, 200, "{reply}");

    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let path = format!("/xapi/unresolved?page_size=1&page_token={token}");
        let (status, page) = http(web_addr, &key, "GET", &path, String::new()).await;
        assert_eq!(status, 200, "{page}");
        for s in page["statements"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_string());
        }
        token = page["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ids);

    // A ListSkills token, and strings never issued, are refused.
    let channel = authed(connect_when_up(grpc_addr).await, Some(&key));
    let mut catalog = pb::catalog_service_client::CatalogServiceClient::new(channel);
    catalog
        .import_catalog(crate::common::skills_a_b())
        .await
        .unwrap();
    let skills_token = second_skills_page_token(&mut catalog).await;
    for (token, reason) in [
        (skills_token.as_str(), OTHER_LIST),
        ("ffff", NOT_ISSUED),
        ("00", NOT_ISSUED),
    ] {
        let path = format!("/xapi/unresolved?page_size=1&page_token={token}");
        let (status, reply) = http(web_addr, &key, "GET", &path, String::new()).await;
        assert_eq!(status, 400, "{token}: {reply}");
        assert_eq!(reply["field"], "page_token", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains(reason),
            "{reply}"
        );
    }

    stop.send_replace(true);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}
