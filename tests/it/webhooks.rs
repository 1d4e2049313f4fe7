//! Webhook delivery of alerts, end to end: a real server on an ephemeral
//! port, real tonic clients, and a real HTTP receiver (axum) on loopback.
//!
//! Signatures verify as a Standard Webhooks receiver checks them and the
//! CloudEvents data parses back as `spoc.v1.Alert`; filters and the
//! creating key's scope decide who gets what; targets that resolve to
//! internal addresses are refused at creation and at delivery; a receiver
//! down for a while gets every event afterwards; messages past the retry
//! window become dead letters (API and `/metrics`); a daily digest lists
//! the day's changes once; and 1,000 undelivered messages survive a
//! SIGKILL of the real binary. Retry schedules are shortened through the
//! engine's options (or the binary's hidden flags) so that the tests stay
//! fast; nothing here asserts a duration.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use spoc_engine::api::pb;
use spoc_engine::domain::webhooks::retry::RetryPolicy;
use spoc_engine::domain::webhooks::signature;
use spoc_engine::engine::Engine;
use spoc_engine::engine::webhooks::WebhookOptions;
use spoc_engine::engine::webhooks::resolve::{HostResolver, Lookup};
use tonic::Code;

// ---- the receiver --------------------------------------------------------

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    /// Its signature headers.
    signed: signature::Headers,
    content_type: String,
    body: Bytes,
    /// The status it answered.
    answered: u16,
    /// When it arrived.
    at: std::time::Instant,
}

impl Received {
    /// Whether its signature verifies with `secret`.
    fn signed_with(&self, secret: &[u8]) -> bool {
        self.signed.verify(secret, &self.body)
    }
}

/// A local HTTP receiver answering every POST with a status the test
/// sets, recording each request.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// Requests still to refuse with 429 and `Retry-After: 2`, whatever
    /// the status.
    refuse: Arc<std::sync::atomic::AtomicUsize>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Self {
            addr,
            status: Arc::new(AtomicU16::new(status)),
            refuse: Arc::default(),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let header = |name: &str| headers.get(name)?.to_str().ok();
                    let refused = state
                        .refuse
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let answered = if refused {
                        429
                    } else {
                        state.status.load(Ordering::SeqCst)
                    };
                    state.got.lock().unwrap().push(Received {
                        signed: signature::Headers::read(header),
                        content_type: header("content-type").unwrap_or_default().to_string(),
                        body,
                        answered,
                        at: std::time::Instant::now(),
                    });
                    let mut reply = StatusCode::from_u16(answered).unwrap().into_response();
                    if refused {
                        reply
                            .headers_mut()
                            .insert("retry-after", "2".parse().unwrap());
                    }
                    reply
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests answered 2xx, one per message id.
    fn delivered(&self) -> BTreeMap<String, Received> {
        self.got()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| (r.signed.id.clone(), r))
            .collect()
    }
}

// ---- the server ------------------------------------------------------------

/// A server (gRPC and HTTP) in this process, with webhook options set
/// before it starts.
struct Hooked {
    addr: SocketAddr,
    http: SocketAddr,
    admin_key: String,
    engine: Arc<Engine>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _temp: tempfile::TempDir,
}

impl Hooked {
    async fn start(options: WebhookOptions) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let (engine, admin_key) = engine_in(temp.path());
        engine.set_webhook_options(options);
        // Every blocking point is the subject here, not the alert budget.
        engine.set_alert_budget(0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, http) = (
            listener.local_addr().unwrap(),
            http_listener.local_addr().unwrap(),
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let stack = spoc_engine::server::ApiStack::new(engine.clone(), 1024);
        let grpc = tokio::spawn({
            let (stack, stopped) = (stack.clone(), stopped.clone());
            async move {
                spoc_engine::server::serve_stack(stack, listener, wait(stopped), None)
                    .await
                    .expect("gRPC server");
            }
        });
        let web = tokio::spawn(async move {
            spoc_engine::http::serve_with(stack, http_listener, wait(stopped))
                .await
                .expect("HTTP server");
        });
        Self {
            addr,
            http,
            admin_key,
            engine,
            stop: Some(stop),
            tasks: vec![grpc, web],
            _temp: temp,
        }
    }

    async fn channel(&self, key: &str) -> AuthChannel {
        authed(connect_when_up(self.addr).await, Some(key))
    }

    async fn alerts(&self) -> pb::alert_service_client::AlertServiceClient<AuthChannel> {
        self.alerts_as(&self.admin_key.clone()).await
    }

    async fn alerts_as(
        &self,
        key: &str,
    ) -> pb::alert_service_client::AlertServiceClient<AuthChannel> {
        pb::alert_service_client::AlertServiceClient::new(self.channel(key).await)
    }

    async fn key(&self, role: pb::ApiKeyRole, cohorts: &[&str]) -> String {
        pb::admin_service_client::AdminServiceClient::new(self.channel(&self.admin_key).await)
            .create_api_key(pb::CreateApiKeyRequest {
                role: role as i32,
                cohort_ids: cohorts.iter().map(|c| c.to_string()).collect(),
                company_id: String::new(),
                display_name: format!("{role:?}"),
            })
            .await
            .expect("create key")
            .into_inner()
            .secret
    }

    /// Waits until every alert change so far is fanned out and every
    /// message delivered or given up: what the receiver will ever get of
    /// them, it has.
    async fn drained(&self) {
        let engine = self.engine.clone();
        eventually("webhook outbox drained", async || {
            let stats = engine.webhook_stats().unwrap();
            (stats.cursor >= engine.alert_sequence() && stats.pending == 0).then_some(())
        })
        .await;
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = metrics_text(self.http).await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .parse()
            .unwrap()
    }
}

impl Drop for Hooked {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Private targets allowed (the receiver is on loopback), retries fast.
fn local_options(retry: RetryPolicy) -> WebhookOptions {
    WebhookOptions {
        allow_private: true,
        retry,
        ..Default::default()
    }
}

fn fast_retries(window: Duration) -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(300),
        window,
    }
}

// ---- the world ---------------------------------------------------------------

/// Catalog a <- b <- c, programs `programs` over them, and `learners`
/// learners `{program}-l{n}` enrolled in each.
async fn world(channel: AuthChannel, programs: &[&str], learners: usize) {
    pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("a", &[]), skill("b", &["a"]), skill("c", &["b"])],
            modules: vec![],
            items: vec![],
        })
        .await
        .expect("catalog");
    let mut program_client = pb::program_service_client::ProgramServiceClient::new(channel.clone());
    let mut learner_client = pb::learner_service_client::LearnerServiceClient::new(channel);
    for program in programs {
        program_client
            .upsert_program(pb::UpsertProgramRequest {
                program: Some(pb::Program {
                    id: program.to_string(),
                    name: format!("Program {program}"),
                    skill_ids: vec!["a".into(), "b".into(), "c".into()],
                    ..Default::default()
                }),
            })
            .await
            .expect("program");
        for n in 0..learners {
            let id = format!("{program}-l{n:04}");
            add_enrolled(&mut learner_client, learner(&id, "acme"), program).await;
        }
    }
}

/// `n` failed answers of each learner on skill `a` (a blocking point at
/// 3, critical at 6), `from` onwards.
async fn fail(channel: AuthChannel, learners: &[String], from: usize, n: usize) {
    let attempts: Vec<pb::Attempt> = learners
        .iter()
        .flat_map(|l| {
            (from..from + n)
                .map(move |k| attempt(&format!("{l}-{k}"), l, &["a"], false, t0() + k as i64))
        })
        .collect();
    record_in_batches(channel, &attempts).await;
}

/// The blocking-point alerts, once `expected` of them exist.
async fn blocking_points(server: &Hooked, expected: usize) -> Vec<pb::Alert> {
    let mut client = server.alerts().await;
    eventually(&format!("{expected} blocking points"), async || {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_alerts(pb::ListAlertsRequest {
                    kind: pb::AlertKind::BlockingPoint as i32,
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            all.extend(page.alerts);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        (all.len() >= expected).then_some(all)
    })
    .await
}

fn learners(program: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{program}-l{i:04}")).collect()
}

fn subscription(url: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest {
        url: url.into(),
        kinds: vec![pb::AlertKind::BlockingPoint as i32],
        delivery: pb::SubscriptionDelivery::Immediate as i32,
        format: pb::SubscriptionFormat::Cloudevents as i32,
        ..Default::default()
    }
}

/// The `data` of a CloudEvents body, parsed as `spoc.v1.Alert` with the
/// descriptor set (the protobuf JSON mapping, unknown fields refused).
fn alert_of(event: &serde_json::Value) -> pb::Alert {
    let pool = prost_reflect::DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let descriptor = pool.get_message_by_name("spoc.v1.Alert").unwrap();
    let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(true);
    let message = prost_reflect::DynamicMessage::deserialize_with_options(
        descriptor,
        event["data"].clone(),
        &options,
    )
    .expect("data is a spoc.v1.Alert in the protobuf JSON mapping");
    message.transcode_to().unwrap()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON body")
}

// ---- the tests ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_cloud_events_reach_the_receiver_and_verify() {
    let receiver = Receiver::start(204).await;
    let server = Hooked::start(local_options(RetryPolicy::default())).await;
    world(server.channel(&server.admin_key).await, &["excel"], 3).await;
    let created = server
        .alerts()
        .await
        .create_subscription(pb::CreateSubscriptionRequest {
            description: "trainers' channel".into(),
            ..subscription(&receiver.url())
        })
        .await
        .expect("create subscription")
        .into_inner();
    let secret = signature::decode_secret(&created.secret).expect("whsec_ secret");
    assert!(created.secret.starts_with("whsec_"));
    assert_eq!(secret.len(), 32);
    let sub = created.subscription.unwrap();
    assert!(sub.id.starts_with("sub_") && sub.active);

    let names = learners("excel", 3);
    fail(server.channel(&server.admin_key).await, &names, 0, 3).await;
    let alerts = blocking_points(&server, 3).await;
    server.drained().await;

    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 3, "{:?}", receiver.got());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut seen = BTreeSet::new();
    for (id, r) in &delivered {
        assert!(id.starts_with("msg_"), "{id}");
        assert!(
            (r.signed.timestamp - now).abs() < 300,
            "timestamp {}",
            r.signed.timestamp
        );
        assert!(r.signed_with(&secret), "signature of {id} does not verify");
        assert!(!r.signed_with(&[0; 32]));
        assert_eq!(
            r.content_type,
            "application/cloudevents+json; charset=utf-8"
        );
        let event = json(&r.body);
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(
            event["id"],
            id.as_str(),
            "the CloudEvents id is the webhook-id"
        );
        assert_eq!(event["type"], "spoc.alert.raised");
        assert_eq!(event["source"], "/spoc.v1.AlertService");
        let alert = alert_of(&event);
        assert_eq!(event["subject"], alert.id.as_str());
        let listed = alerts
            .iter()
            .find(|a| a.id == alert.id)
            .expect("a listed alert");
        assert_eq!(
            &alert, listed,
            "the event carries the alert as the API shows it"
        );
        seen.insert(alert.learner_id);
    }
    assert_eq!(seen, names.into_iter().collect());

    // Listed without its secret; deleted, it delivers nothing more.
    let mut client = server.alerts().await;
    let listed = client
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.subscriptions.len(), 1);
    let shown = &listed.subscriptions[0];
    assert_eq!((shown.pending, shown.dead_letters), (0, 0));
    assert_eq!(shown.description, "trainers' channel");
    assert_eq!(server.metric("spoc_webhook_delivered_total").await, 3);
    client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            subscription_id: sub.id.clone(),
        })
        .await
        .expect("delete");
    let err = client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            subscription_id: sub.id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    fail(
        server.channel(&server.admin_key).await,
        &learners("excel", 3),
        3,
        3,
    )
    .await;
    eventually("critical blocking points", async || {
        let alerts = blocking_points(&server, 3).await;
        alerts
            .iter()
            .all(|a| a.severity == pb::AlertSeverity::Critical as i32)
            .then_some(())
    })
    .await;
    server.drained().await;
    assert_eq!(receiver.got().len(), 3, "nothing after the deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_the_creating_keys_scope_decide_what_is_delivered() {
    let receiver = Receiver::start(200).await;
    let server = Hooked::start(local_options(RetryPolicy::default())).await;
    world(
        server.channel(&server.admin_key).await,
        &["excel", "word"],
        30,
    )
    .await;
    // Cohorts of 15: the trainer's cohort is half of the program.
    pb::program_service_client::ProgramServiceClient::new(server.channel(&server.admin_key).await)
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "excel".into(),
                name: "Program excel".into(),
                skill_ids: vec!["a".into(), "b".into(), "c".into()],
                cohort_rules: Some(pb::CohortRules {
                    min_size: Some(15),
                    max_size: Some(15),
                    max_company_share: Some(1.0),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("cohort rules");
    let cohorts = pb::cohort_service_client::CohortServiceClient::new(
        server.channel(&server.admin_key).await,
    )
    .form_cohorts(form_seed_1("excel"))
    .await
    .expect("form cohorts")
    .into_inner()
    .cohorts;
    let cohort = cohorts[0].clone();
    let members: BTreeSet<String> = cohort.learner_ids.iter().cloned().collect();
    let trainer = server.key(pb::ApiKeyRole::Trainer, &[&cohort.id]).await;
    let manager = server.key(pb::ApiKeyRole::Manager, &[]).await;
    let mut as_manager = server.alerts_as(&manager).await;
    let mut as_trainer = server.alerts_as(&trainer).await;

    let url = |tag: &str| format!("{}?{tag}", receiver.url());
    let create = async |client: &mut pb::alert_service_client::AlertServiceClient<AuthChannel>,
                        request: pb::CreateSubscriptionRequest| {
        client
            .create_subscription(request)
            .await
            .expect("create subscription")
            .into_inner()
    };
    // The manager: excel's blocking points; and critical ones anywhere.
    let excel = create(
        &mut as_manager,
        pb::CreateSubscriptionRequest {
            program_ids: vec!["excel".into()],
            ..subscription(&url("excel"))
        },
    )
    .await;
    let critical = create(
        &mut as_manager,
        pb::CreateSubscriptionRequest {
            min_severity: pb::AlertSeverity::Critical as i32,
            ..subscription(&url("critical"))
        },
    )
    .await;
    // The trainer: everything it may see (its cohort), and the program
    // (still only its cohort's learners).
    let mine = create(&mut as_trainer, subscription(&url("mine"))).await;
    let program = create(
        &mut as_trainer,
        pb::CreateSubscriptionRequest {
            program_ids: vec!["excel".into()],
            ..subscription(&url("program"))
        },
    )
    .await;
    // Out of its scope: as if the program did not exist.
    let err = as_trainer
        .create_subscription(pb::CreateSubscriptionRequest {
            program_ids: vec!["word".into()],
            ..subscription(&url("x"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // A trainer lists and deletes only its own subscriptions.
    let listed = as_trainer
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    let ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    let (mine_id, program_id) = (
        mine.subscription.as_ref().unwrap().id.clone(),
        program.subscription.as_ref().unwrap().id.clone(),
    );
    assert_eq!(ids, BTreeSet::from([mine_id.as_str(), program_id.as_str()]));
    let err = as_trainer
        .delete_subscription(pb::DeleteSubscriptionRequest {
            subscription_id: excel.subscription.as_ref().unwrap().id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Nor redelivers another key's dead letters.
    let err = as_trainer
        .redeliver_dead_letters(pb::RedeliverDeadLettersRequest {
            subscription_id: excel.subscription.as_ref().unwrap().id.clone(),
            message_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let all = as_manager
        .list_subscriptions(pb::ListSubscriptionsRequest {
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.subscriptions.len(), 3);
    let rest = as_manager
        .list_subscriptions(pb::ListSubscriptionsRequest {
            page_size: 3,
            page_token: all.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.subscriptions.len(), 1);
    assert!(rest.next_page_token.is_empty());

    // Every learner of both programs stuck (warning); then excel's
    // first two critical.
    let everyone: Vec<String> = learners("excel", 30)
        .into_iter()
        .chain(learners("word", 30))
        .collect();
    let channel = server.channel(&server.admin_key).await;
    fail(channel.clone(), &everyone, 0, 3).await;
    blocking_points(&server, 60).await;
    let worst = learners("excel", 2);
    fail(channel, &worst, 3, 3).await;
    eventually("two critical blocking points", async || {
        let alerts = blocking_points(&server, 60).await;
        (alerts
            .iter()
            .filter(|a| a.severity == pb::AlertSeverity::Critical as i32)
            .count()
            == 2)
            .then_some(())
    })
    .await;
    server.drained().await;

    // Who got what: (learner, severity) per subscription.
    let mut by_tag: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
    for r in receiver.delivered().values() {
        let event = json(&r.body);
        let alert = alert_of(&event);
        let severity = pb::AlertSeverity::try_from(alert.severity).unwrap();
        let tag = r.signed.id.clone();
        by_tag
            .entry(tag_of(&tag, &[&excel, &critical, &mine, &program]))
            .or_default()
            .insert((alert.learner_id, format!("{severity:?}")));
    }
    let learners_of = |tag: &str| -> BTreeSet<String> {
        by_tag
            .get(tag)
            .map(|s| s.iter().map(|(l, _)| l.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        learners_of("excel"),
        learners("excel", 30).into_iter().collect()
    );
    assert_eq!(
        by_tag["critical"],
        worst
            .iter()
            .map(|l| (l.clone(), "Critical".to_string()))
            .collect()
    );
    assert_eq!(learners_of("mine"), members);
    assert_eq!(learners_of("program"), members);
    assert_eq!((cohorts.len(), members.len()), (2, 15), "{cohorts:?}");
}

/// Which subscription a message id belongs to (`msg_<sub suffix>_...`).
fn tag_of(message: &str, subs: &[&pb::CreateSubscriptionResponse; 4]) -> String {
    let tags = ["excel", "critical", "mine", "program"];
    for (sub, tag) in subs.iter().zip(tags) {
        let id = &sub.subscription.as_ref().unwrap().id;
        let suffix = id.strip_prefix("sub_").unwrap();
        if message.starts_with(&format!("msg_{suffix}_")) {
            return tag.to_string();
        }
    }
    panic!("{message} is no subscription's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field_and_roles_are_checked() {
    let server = Hooked::start(local_options(RetryPolicy::default())).await;
    world(server.channel(&server.admin_key).await, &["excel"], 1).await;
    let mut client = server.alerts().await;
    let ok = subscription("http://127.0.0.1:9/hook");
    for (field, request) in [
        (
            "url",
            pb::CreateSubscriptionRequest {
                url: String::new(),
                ..ok.clone()
            },
        ),
        (
            "url",
            pb::CreateSubscriptionRequest {
                url: "ftp://127.0.0.1/".into(),
                ..ok.clone()
            },
        ),
        (
            "url",
            pb::CreateSubscriptionRequest {
                url: "/relative".into(),
                ..ok.clone()
            },
        ),
        (
            "kinds[0]",
            pb::CreateSubscriptionRequest {
                kinds: vec![0],
                ..ok.clone()
            },
        ),
        (
            "min_severity",
            pb::CreateSubscriptionRequest {
                min_severity: 7,
                ..ok.clone()
            },
        ),
        (
            "delivery",
            pb::CreateSubscriptionRequest {
                delivery: 0,
                ..ok.clone()
            },
        ),
        (
            "format",
            pb::CreateSubscriptionRequest {
                format: 0,
                ..ok.clone()
            },
        ),
        (
            "digest_hour",
            pb::CreateSubscriptionRequest {
                delivery: pb::SubscriptionDelivery::DailyDigest as i32,
                digest_hour: Some(25),
                ..ok.clone()
            },
        ),
        (
            "program_ids[0]",
            pb::CreateSubscriptionRequest {
                program_ids: vec!["".into()],
                ..ok.clone()
            },
        ),
    ] {
        let err = client.create_subscription(request).await.unwrap_err();
        assert_invalid_field(&err, field);
    }
    let err = client
        .create_subscription(pb::CreateSubscriptionRequest {
            program_ids: vec!["excel".into(), "nope".into()],
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_field_named(&err, "program_ids[1]");
    let err = client
        .list_dead_letters(pb::ListDeadLettersRequest {
            subscription_id: "sub_0000000000000000".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .list_subscriptions(pb::ListSubscriptionsRequest {
            page_size: 0,
            page_token: "forged".into(),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&err, "page_token");
    // The LMS key may not subscribe.
    let lms = server.key(pb::ApiKeyRole::Lms, &[]).await;
    let err = server
        .alerts_as(&lms)
        .await
        .create_subscription(ok)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

/// Fixed answers, changeable while the server runs (a name re-pointed
/// after the subscription was made).
#[derive(Clone, Default)]
struct Hosts(Arc<Mutex<HashMap<String, Vec<IpAddr>>>>);

impl Hosts {
    fn point(&self, host: &str, ip: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(host.into(), vec![ip.parse().unwrap()]);
    }
}

impl HostResolver for Hosts {
    fn lookup(&self, host: &str) -> Lookup {
        let found = self.0.lock().unwrap().get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown host"))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_at_creation_and_at_delivery() {
    let receiver = Receiver::start(200).await;
    let hosts = Hosts::default();
    hosts.point("localhost", "127.0.0.1");
    hosts.point("metadata.internal", "169.254.169.254");
    // A public address at creation; the test never lets a connection go
    // there (the name is re-pointed before any alert).
    hosts.point("hooks.example.com", "93.184.215.14");
    let server = Hooked::start(WebhookOptions {
        allow_private: false,
        retry: fast_retries(Duration::from_millis(500)),
        resolver: Arc::new(hosts.clone()),
        ..Default::default()
    })
    .await;
    world(server.channel(&server.admin_key).await, &["excel"], 1).await;
    let mut client = server.alerts().await;
    let port = receiver.addr.port();
    for (url, says) in [
        (receiver.url(), "https"),
        (format!("https://127.0.0.1:{port}/hook"), "loopback"),
        (format!("https://localhost:{port}/hook"), "loopback"),
        (format!("https://[::1]:{port}/hook"), "loopback"),
        ("https://10.0.0.8/hook".to_string(), "private"),
        ("https://169.254.169.254/latest".to_string(), "link-local"),
        ("https://metadata.internal/".to_string(), "link-local"),
        (
            "https://unknown.example.com/".to_string(),
            "does not resolve",
        ),
    ] {
        let err = client
            .create_subscription(subscription(&url))
            .await
            .unwrap_err();
        assert_invalid_field(&err, "url");
        assert!(err.message().contains(says), "{url}: {}", err.message());
    }
    let created = client
        .create_subscription(subscription(&format!(
            "https://hooks.example.com:{port}/hook"
        )))
        .await
        .expect("a public target")
        .into_inner();
    let sub = created.subscription.unwrap();
    // DNS rebinding: the name now points at the receiver on loopback.
    hosts.point("hooks.example.com", "127.0.0.1");
    fail(
        server.channel(&server.admin_key).await,
        &learners("excel", 1),
        0,
        3,
    )
    .await;
    blocking_points(&server, 1).await;
    let letters = eventually("a dead letter", async || {
        let letters = client
            .list_dead_letters(pb::ListDeadLettersRequest {
                subscription_id: sub.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert!(
        letters[0]
            .last_error
            .contains("hooks.example.com resolves to 127.0.0.1, a loopback address"),
        "{}",
        letters[0].last_error
    );
    assert!(receiver.got().is_empty(), "no request reached the receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_event_afterwards() {
    let receiver = Receiver::start(503).await;
    let server = Hooked::start(local_options(fast_retries(Duration::from_secs(3600)))).await;
    world(server.channel(&server.admin_key).await, &["excel"], 20).await;
    let mut client = server.alerts().await;
    let created = client
        .create_subscription(pb::CreateSubscriptionRequest {
            format: pb::SubscriptionFormat::Slack as i32,
            ..subscription(&receiver.url())
        })
        .await
        .unwrap()
        .into_inner();
    let secret = signature::decode_secret(&created.secret).unwrap();
    fail(
        server.channel(&server.admin_key).await,
        &learners("excel", 20),
        0,
        3,
    )
    .await;
    blocking_points(&server, 20).await;
    // Down: every message fails at least twice.
    let engine = server.engine.clone();
    eventually("every message failed twice", async || {
        let got = receiver.got();
        let mut failures: HashMap<&str, usize> = HashMap::new();
        for r in &got {
            *failures.entry(r.signed.id.as_str()).or_default() += 1;
        }
        (failures.len() == 20 && failures.values().all(|n| *n >= 2)).then_some(())
    })
    .await;
    let pending = client
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions[0]
        .pending;
    assert_eq!(pending, 20);
    assert!(engine.webhook_stats().unwrap().retried >= 40);
    // Back up: everything arrives, once each, signed.
    receiver.answer(200);
    server.drained().await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 20);
    for r in delivered.values() {
        assert!(r.signed_with(&secret));
        let message = json(&r.body);
        let text = message["text"].as_str().expect("a Slack message has text");
        assert!(
            text.starts_with("Blocking point (warning), raised: excel-l"),
            "{text}"
        );
    }
    let stats = engine.webhook_stats().unwrap();
    assert_eq!((stats.delivered, stats.dead_lettered), (20, 0));
    assert_eq!(server.metric("spoc_webhook_pending").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_the_retry_window_become_dead_letters() {
    let receiver = Receiver::start(500).await;
    // Two seconds: every message must fail at least twice before the
    // window closes, also when a loaded machine delays its first attempt
    // or the failing receiver holds its siblings back (800 ms was flaky
    // under load).
    let server = Hooked::start(local_options(fast_retries(Duration::from_secs(2)))).await;
    world(server.channel(&server.admin_key).await, &["excel"], 3).await;
    let mut client = server.alerts().await;
    let sub = client
        .create_subscription(subscription(&receiver.url()))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    fail(
        server.channel(&server.admin_key).await,
        &learners("excel", 3),
        0,
        3,
    )
    .await;
    blocking_points(&server, 3).await;
    server.drained().await;
    let letters = client
        .list_dead_letters(pb::ListDeadLettersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert_eq!(letter.subscription_id, sub.id);
        assert_eq!(letter.url, receiver.url());
        assert_eq!(letter.event_type, "spoc.alert.raised");
        assert_eq!(letter.last_error, "HTTP 500");
        assert!(letter.attempts >= 2, "{letter:?}");
        assert!(letter.alert_id.starts_with("alert-"));
    }
    let attempts: u32 = letters.iter().map(|l| l.attempts).sum();
    assert_eq!(
        receiver.got().len() as u32,
        attempts,
        "every attempt counted"
    );
    assert_eq!(server.metric("spoc_webhook_dead_letters").await, 3);
    assert_eq!(server.metric("spoc_webhook_dead_lettered_total").await, 3);
    assert_eq!(server.metric("spoc_webhook_delivered_total").await, 0);
    assert!(server.metric("spoc_webhook_retried_total").await >= 3);
    let page = client
        .list_dead_letters(pb::ListDeadLettersRequest {
            subscription_id: sub.id.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.dead_letters.len(), 2);
    assert!(!page.next_page_token.is_empty());
    // An erased learner's dead letter goes with them.
    pb::learner_service_client::LearnerServiceClient::new(server.channel(&server.admin_key).await)
        .erase_learner(pb::EraseLearnerRequest {
            learner_id: "excel-l0000".into(),
        })
        .await
        .expect("erase");
    let listed = client
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert_eq!(listed[0].dead_letters, 2);

    // The receiver mended, one dead letter then the rest go again, with a
    // fresh window; a retry puts nothing back twice.
    receiver.answer(200);
    let left: Vec<String> = client
        .list_dead_letters(pb::ListDeadLettersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .dead_letters
        .into_iter()
        .map(|l| l.message_id)
        .collect();
    let redeliver = |ids: &[String]| pb::RedeliverDeadLettersRequest {
        subscription_id: sub.id.clone(),
        message_ids: ids.to_vec(),
    };
    let first = client
        .redeliver_dead_letters(redeliver(&left[..1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.requeued, 1);
    eventually("the first redelivered", async || {
        receiver.delivered().contains_key(&left[0]).then_some(())
    })
    .await;
    assert!(!receiver.delivered().contains_key(&left[1]));
    let rest = client
        .redeliver_dead_letters(redeliver(&[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.requeued, 1);
    server.drained().await;
    assert_eq!(receiver.delivered().len(), 2);
    let again = client
        .redeliver_dead_letters(redeliver(&[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.requeued, 0);
    assert_eq!(server.metric("spoc_webhook_dead_letters").await, 0);
    let status = client
        .redeliver_dead_letters(pb::RedeliverDeadLettersRequest::default())
        .await
        .unwrap_err();
    assert_invalid_field(&status, "subscription_id");
    let status = client
        .redeliver_dead_letters(pb::RedeliverDeadLettersRequest {
            subscription_id: "sub_0000000000000000".into(),
            message_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    let dropped = client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            subscription_id: sub.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dropped.dropped_dead_letters, 0);
    assert_eq!(server.metric("spoc_webhook_dead_letters").await, 0);
}

/// A receiver answering 429 with `Retry-After: 2` is not tried again
/// before two seconds, where the schedule alone would retry in 50 ms, even
/// when another message of the subscription lands meanwhile: that one
/// waits too (a success brings the backlog forward, but not before the
/// time asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receivers_retry_after_is_honoured() {
    let receiver = Receiver::start(200).await;
    receiver.refuse.store(1, Ordering::SeqCst);
    let server = Hooked::start(local_options(RetryPolicy {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(10),
        window: Duration::from_secs(3600),
    }))
    .await;
    world(server.channel(&server.admin_key).await, &["excel"], 2).await;
    server
        .alerts()
        .await
        .create_subscription(subscription(&receiver.url()))
        .await
        .unwrap();
    // The first alert's message is refused; the second lands meanwhile.
    let names = learners("excel", 2);
    fail(server.channel(&server.admin_key).await, &names[..1], 0, 3).await;
    // The engine has taken the refusal in (a retry is scheduled).
    eventually("a refusal", async || {
        (server.metric("spoc_webhook_retried_total").await > 0).then_some(())
    })
    .await;
    fail(server.channel(&server.admin_key).await, &names[1..], 0, 3).await;
    blocking_points(&server, 2).await;
    server.drained().await;
    let got = receiver.got();
    assert_eq!(got.len(), 3, "one refusal, two deliveries: {got:?}");
    let refused = got.iter().find(|r| r.answered == 429).expect("a refusal");
    let again = got
        .iter()
        .find(|r| r.signed.id == refused.signed.id && r.answered == 200)
        .expect("the refused message delivered later");
    let waited = again.at.duration_since(refused.at);
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
    let other = got
        .iter()
        .find(|r| r.signed.id != refused.signed.id && r.answered == 200)
        .expect("the other message delivered");
    let held = other.at.duration_since(refused.at);
    assert!(
        held >= Duration::from_millis(1900),
        "a new message went {held:?} after the refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_digest_lists_the_days_changes_once() {
    let receiver = Receiver::start(200).await;
    let server = Hooked::start(local_options(RetryPolicy::default())).await;
    world(server.channel(&server.admin_key).await, &["excel"], 3).await;
    let mut client = server.alerts().await;
    let request = |format: pb::SubscriptionFormat| pb::CreateSubscriptionRequest {
        delivery: pb::SubscriptionDelivery::DailyDigest as i32,
        digest_hour: Some(7),
        digest_time_zone: "Europe/Paris".into(),
        format: format as i32,
        ..subscription(&receiver.url())
    };
    let events = client
        .create_subscription(request(pb::SubscriptionFormat::Cloudevents))
        .await
        .unwrap()
        .into_inner();
    let teams = client
        .create_subscription(request(pb::SubscriptionFormat::Teams))
        .await
        .unwrap()
        .into_inner();
    let shown = events.subscription.clone().unwrap();
    assert_eq!(
        (shown.digest_hour, shown.digest_time_zone.as_str()),
        (Some(7), "Europe/Paris")
    );
    let names = learners("excel", 3);
    fail(server.channel(&server.admin_key).await, &names, 0, 3).await;
    blocking_points(&server, 3).await;
    // A second change of one alert: the digest shows its latest state once.
    fail(server.channel(&server.admin_key).await, &names[..1], 3, 3).await;
    eventually("a critical blocking point", async || {
        blocking_points(&server, 3)
            .await
            .iter()
            .any(|a| a.severity == pb::AlertSeverity::Critical as i32)
            .then_some(())
    })
    .await;
    server.drained().await;
    assert!(receiver.got().is_empty(), "nothing before the digest hour");
    let tomorrow = spoc_engine::engine::now_micros() + 24 * 3600 * 1_000_000;
    let engine = server.engine.clone();
    let sent = tokio::task::spawn_blocking(move || engine.send_due_digests(tomorrow))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent, 2);
    let engine = server.engine.clone();
    let again = tokio::task::spawn_blocking(move || engine.send_due_digests(tomorrow))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, 0, "one digest per day");
    server.drained().await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 2);
    let secret = signature::decode_secret(&events.secret).unwrap();
    let events_suffix = shown.id.strip_prefix("sub_").unwrap().to_string();
    let (_, r) = delivered
        .iter()
        .find(|(id, _)| id.contains(&events_suffix))
        .unwrap();
    assert!(r.signed_with(&secret));
    let digest = json(&r.body);
    assert_eq!(digest["type"], "spoc.alert.digest");
    assert_eq!(digest["data"]["total"], 3);
    let listed = digest["data"]["alerts"].as_array().unwrap();
    let learners_listed: BTreeSet<&str> = listed
        .iter()
        .map(|a| a["learnerId"].as_str().unwrap())
        .collect();
    assert_eq!(learners_listed, names.iter().map(String::as_str).collect());
    assert_eq!(
        listed[0]["severity"], "ALERT_SEVERITY_CRITICAL",
        "most severe first"
    );
    let teams_suffix = teams
        .subscription
        .unwrap()
        .id
        .strip_prefix("sub_")
        .unwrap()
        .to_string();
    let (_, card) = delivered
        .iter()
        .find(|(id, _)| id.contains(&teams_suffix))
        .unwrap();
    let card = json(&card.body);
    let title = card["attachments"][0]["content"]["body"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        title.starts_with("Alert digest: 3 alerts changed since"),
        "{title}"
    );
}

// ---- across a SIGKILL of the real binary -------------------------------------

/// `spoc serve` with loopback targets allowed and retries every 100 ms
/// to 500 ms.
fn spoc(dir: &Path, grpc: SocketAddr) -> Spoc {
    let args: Vec<std::ffi::OsString> = [
        "--webhook-allow-private",
        "--alerts-per-25",
        "0",
        "--webhook-retry-first-ms",
        "100",
        "--webhook-retry-max-ms",
        "500",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    Spoc::start(dir, grpc, "127.0.0.1:0", &args)
}

async fn admin_channel(dir: &Path, grpc: SocketAddr) -> AuthChannel {
    let key_file = dir.join("admin-key");
    eventually("the admin key file", async || {
        key_file.exists().then_some(())
    })
    .await;
    authed(connect_when_up(grpc).await, Some(&admin_key_in(dir)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_undelivered_messages_survive_a_kill() {
    const N: usize = 1000;
    let receiver = Receiver::start(503).await;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let grpc = free_addr();
    let server = spoc(&dir, grpc);
    let channel = admin_channel(&dir, grpc).await;
    world(channel.clone(), &["excel"], N).await;
    let created = pb::alert_service_client::AlertServiceClient::new(channel.clone())
        .create_subscription(subscription(&receiver.url()))
        .await
        .unwrap()
        .into_inner();
    let secret = signature::decode_secret(&created.secret).unwrap();
    fail(channel, &learners("excel", N), 0, 3).await;
    // Every message reached the outbox (each was attempted, and refused).
    eventually("1,000 messages attempted", async || {
        let ids: BTreeSet<String> = receiver.got().into_iter().map(|r| r.signed.id).collect();
        (ids.len() == N).then_some(())
    })
    .await;
    assert!(receiver.delivered().is_empty());
    server.kill();

    receiver.answer(200);
    let _server = spoc(&dir, grpc);
    let delivered = eventually("1,000 messages delivered after the restart", async || {
        let delivered = receiver.delivered();
        (delivered.len() == N).then_some(delivered)
    })
    .await;
    let mut alerts = BTreeSet::new();
    for r in delivered.values() {
        assert!(r.signed_with(&secret));
        alerts.insert(alert_of(&json(&r.body)).learner_id);
    }
    assert_eq!(alerts.len(), N, "one message per learner's alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_subscriptions_deliver_nothing_more() {
    let receiver = Receiver::start(200).await;
    let server = Hooked::start(local_options(RetryPolicy::default())).await;
    world(server.channel(&server.admin_key).await, &["excel"], 2).await;
    let manager = server.key(pb::ApiKeyRole::Manager, &[]).await;
    server
        .alerts_as(&manager)
        .await
        .create_subscription(subscription(&receiver.url()))
        .await
        .expect("create subscription");
    let names = learners("excel", 2);
    fail(server.channel(&server.admin_key).await, &names[..1], 0, 3).await;
    blocking_points(&server, 1).await;
    server.drained().await;
    assert_eq!(receiver.delivered().len(), 1);
    let key_id = manager.split('_').nth(1).unwrap().to_string();
    pb::admin_service_client::AdminServiceClient::new(server.channel(&server.admin_key).await)
        .revoke_api_key(pb::RevokeApiKeyRequest { key_id })
        .await
        .expect("revoke");
    let listed = server
        .alerts()
        .await
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert!(!listed[0].active, "shown inactive to the admin");
    fail(server.channel(&server.admin_key).await, &names[1..], 0, 3).await;
    blocking_points(&server, 2).await;
    server.drained().await;
    assert_eq!(receiver.got().len(), 1, "nothing after the revocation");
    // Redelivering what it would drop unsent is refused, naming the field.
    let status = server
        .alerts()
        .await
        .redeliver_dead_letters(pb::RedeliverDeadLettersRequest {
            subscription_id: listed[0].id.clone(),
            message_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("subscription_id"), "{status:?}");
}
