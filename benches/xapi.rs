//! xAPI ingestion throughput: statements/s posted in batches over real
//! HTTP/1.1 on loopback (keep-alive connections, one per client), through
//! the whole path: JSON parsing and validation, idempotency records,
//! Q-matrix mapping, `record_attempts` with its write-ahead log. The
//! catalog is an ordinary one: items and the program have ids of their
//! own, and the LMS's activity IRIs are their external ids, so every
//! statement is mapped through the alias index, its program found from
//! the Moodle-like course in its context.
//!
//! Run: `cargo bench --bench xapi` (release build). Options after `--`:
//! `--seconds N` (default 5), `--clients N` concurrent posters (default
//! 16), `--batch N` statements per POST (default 100). The clients build
//! their JSON on the same machine, so the figure includes their CPU.

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::body::Bytes;
use common::{BenchServer, arg, closed_loop, health_call, max_rss_mb, paced};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use spoc_engine::api::pb;
use tokio::sync::Mutex;

const LEARNERS: usize = 1000;
const SKILLS: usize = 30;
const ITEMS: usize = 500;
/// gRPC callers measured beside the xAPI posters...
const HEALTH_CLIENTS: usize = 2;
/// ...and the health checks each makes per second.
const HEALTH_PER_SECOND: u64 = 100;

fn item(n: usize) -> String {
    format!("https://lms.example.com/mod/quiz/question.php?id={n}")
}

/// A statement id unique to (client, call, k), UUID-shaped.
fn id(tag: u16, client: usize, call: usize, k: usize) -> String {
    format!(
        "{tag:08x}-{:04x}-4000-8000-{:012x}",
        client as u16,
        (call * 1000 + k) as u64
    )
}

/// The course every statement's context names: an external id of the
/// program `sql-101`.
const COURSE: &str = "https://lms.example.com/course/view.php?id=1";

/// A Moodle-like context: the site, the course, the quiz.
fn context(n: usize) -> String {
    format!(
        r#"{{"platform":"Moodle","registration":"11111111-2222-4333-8444-555555555555","contextActivities":{{"grouping":[{{"id":"https://lms.example.com","definition":{{"type":"http://id.tincanapi.com/activitytype/lms"}}}},{{"id":"{COURSE}","definition":{{"type":"http://id.tincanapi.com/activitytype/lms/course"}}}}],"parent":[{{"id":"https://lms.example.com/mod/quiz/view.php?id={}"}}]}}}}"#,
        n % 20
    )
}

/// A batch of `batch` Moodle-like answered statements as JSON.
fn body(tag: u16, client: usize, call: usize, batch: usize) -> String {
    let mut out = String::with_capacity(batch * 520);
    out.push('[');
    for k in 0..batch {
        let n = call * batch + k;
        let learner = (client * 7919 + n) % LEARNERS;
        if k > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":"{}","actor":{{"objectType":"Agent","account":{{"homePage":"https://lms.example.com","name":"learner-{learner}"}}}},"verb":{{"id":"http://adlnet.gov/expapi/verbs/answered","display":{{"en":"answered"}}}},"object":{{"id":"{}","definition":{{"type":"http://adlnet.gov/expapi/activities/cmi.interaction","interactionType":"choice"}}}},"result":{{"success":{},"duration":"PT30S"}},"context":{},"timestamp":"{}"}}"#,
            id(tag, client, call, k),
            item(n % ITEMS),
            n % 3 != 0,
            context(n),
            // One second apart per client, as the gRPC ingest bench does;
            // each phase (tag) later than the one before, so that answers
            // mostly arrive in time order as they do from an LMS.
            jiff::Timestamp::from_second(1_780_000_000 + tag as i64 * 4_000_000 + n as i64).unwrap(),
        ));
    }
    out.push(']');
    out
}

/// Opens a keep-alive HTTP/1.1 connection.
async fn connect(addr: std::net::SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// The `Authorization` header of every request: the server's admin key.
static AUTHORIZATION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// POSTs one body; panics unless 200.
async fn post(sender: &mut SendRequest<Full<Bytes>>, host: &str, body: String) {
    sender.ready().await.unwrap();
    let request = hyper::Request::post("/xapi/statements")
        .header("host", host)
        .header(
            "authorization",
            AUTHORIZATION.get().expect("key set at start").as_str(),
        )
        .header("x-experience-api-version", "1.0.3")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
}

#[tokio::main]
async fn main() {
    let seconds = arg("--seconds", 5);
    let clients = arg("--clients", 16) as usize;
    let batch = arg("--batch", 100) as usize;
    let server = BenchServer::start(1).await;
    AUTHORIZATION
        .set(format!("Bearer {}", server.admin_key))
        .expect("set once");
    let mut catalog =
        pb::catalog_service_client::CatalogServiceClient::new(server.channels[0].clone());
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: common::skills(SKILLS),
            modules: vec![],
            items: (0..ITEMS)
                .map(|n| pb::Item {
                    external_ids: vec![item(n)],
                    pass_mark: None,
                    id: format!("q-{n}"),
                    skill_ids: vec![format!("skill-{}", n % SKILLS)],
                    title: String::new(),
                })
                .collect(),
        })
        .await
        .unwrap();
    pb::program_service_client::ProgramServiceClient::new(server.channels[0].clone())
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "sql-101".into(),
                name: "SQL 101".into(),
                skill_ids: vec!["skill-0".into()],
                external_ids: vec![COURSE.into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(spoc_engine::http::serve(
        server.engine.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let host = addr.to_string();

    // Warm-up, untimed: every learner is created by its first statement.
    let mut warm = connect(addr).await;
    for call in 0..LEARNERS.div_ceil(batch) {
        let mut out = String::from("[");
        for k in 0..batch.min(LEARNERS - call * batch) {
            let learner = call * batch + k;
            if k > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"id":"{}","actor":{{"account":{{"homePage":"https://lms.example.com","name":"learner-{learner}"}}}},"verb":{{"id":"http://adlnet.gov/expapi/verbs/answered"}},"object":{{"id":"{}"}},"result":{{"success":true}},"context":{},"timestamp":"2026-01-01T00:00:00Z"}}"#,
                id(0xffff, 0, call, k),
                item(learner % ITEMS),
                context(learner),
            ));
        }
        out.push(']');
        post(&mut warm, &host, out).await;
    }

    let connections: Arc<Vec<Mutex<SendRequest<Full<Bytes>>>>> = Arc::new({
        let mut v = Vec::with_capacity(clients);
        for _ in 0..clients {
            v.push(Mutex::new(connect(addr).await));
        }
        v
    });
    // Health checks beside the posters, paced: what xAPI batches do to the
    // latency of the service's other calls (first with nothing beside).
    let health = health_call(&server.channels);
    let quiet = paced(HEALTH_CLIENTS, HEALTH_PER_SECOND, seconds, move |c, i| {
        health(0, c, i)
    })
    .await;
    let health = health_call(&server.channels);
    let (run, beside) = {
        let connections = connections.clone();
        let host = host.clone();
        tokio::join!(
            closed_loop(clients, seconds, move |client, call| {
                let connections = connections.clone();
                let host = host.clone();
                async move {
                    let json = body(1, client, call, batch);
                    let mut sender = connections[client].lock().await;
                    post(&mut sender, &host, json).await;
                }
            }),
            paced(HEALTH_CLIENTS, HEALTH_PER_SECOND, seconds, move |c, i| {
                health(0, c, i)
            }),
        )
    };
    // The same load without HTTP: parse and ingest in process, to tell the
    // cost of the HTTP edge from the engine's.
    let engine = server.engine.clone();
    let direct = closed_loop(clients, seconds, move |client, call| {
        let engine = engine.clone();
        async move {
            let json: serde_json::Value =
                serde_json::from_str(&body(2, client, call, batch)).unwrap();
            let parsed = spoc_engine::domain::xapi::statement::parse_body(
                &json,
                spoc_engine::clock::now_micros(),
            )
            .unwrap();
            engine.ingest_statements(parsed).await.unwrap();
        }
    })
    .await;
    let counters = server.engine.xapi_counters();
    println!(
        "xapi POST /xapi/statements, {clients} clients, batches of {batch}, {seconds} s (release, loopback, 2 cores shared with the clients)"
    );
    println!(
        "  {:>10.0} statements/s  {:>8.0} batches/s  p50 {:>7.2} ms  p99 {:>7.2} ms per batch",
        run.rate() * batch as f64,
        run.rate(),
        run.ms(0.50),
        run.ms(0.99),
    );
    println!(
        "  gRPC health check, {HEALTH_CLIENTS} callers x {HEALTH_PER_SECOND}/s paced ({:.0}/s made): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms beside the posters; p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms alone",
        beside.rate(),
        beside.ms(0.50),
        beside.ms(0.99),
        beside.max_ms(),
        quiet.ms(0.50),
        quiet.ms(0.99),
        quiet.max_ms(),
    );
    println!(
        "  in process (JSON parse + ingest_statements, no HTTP): {:>10.0} statements/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        direct.rate() * batch as f64,
        direct.ms(0.50),
        direct.ms(0.99),
    );
    println!(
        "  stored {} statements, {} attempts, {} duplicates, {} waiting; max RSS {:.0} MB",
        counters.stored,
        counters.attempts,
        counters.duplicates,
        counters.unresolved_now,
        max_rss_mb()
    );
    assert_eq!(counters.unresolved_now, 0, "every statement maps");
    let _ = stop.send(());
    let _ = http.await;
    server.stop().await;
}
