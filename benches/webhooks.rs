//! Webhook latency: time from the `RecordAttempts` call that makes a
//! blocking point to the signed CloudEvents message at a receiver on
//! loopback, under a background load of attempts.
//!
//! Run: `cargo bench --bench webhooks` (release build). Options after
//! `--`: `--probes N` blocking points (default 300), `--per-second N` of
//! them (default 10), `--learners N` background learners (default 2000),
//! `--rate N` background attempts/s (default 500). Prints the delivery
//! latency p50/p99/max, messages missing, and the outbox counters.

// Benches unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::{BenchServer, Figures, arg, now};
use spoc_engine::api::pb;
use spoc_engine::domain::webhooks::signature;
use spoc_engine::engine::webhooks::WebhookOptions;

fn attempt(id: String, learner: String, correct: bool, at: i64) -> pb::Attempt {
    common::attempt(id, learner, "item-0".into(), "skill-0".into(), correct, at)
}

/// What the receiver saw of one message: when, about whom, and whether
/// its signature verified.
type Arrivals = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

#[tokio::main]
async fn main() {
    let probes = arg("--probes", 300) as usize;
    let per_second = arg("--per-second", 10).max(1);
    let background = arg("--learners", 2000) as usize;
    let rate = arg("--rate", 500);

    let server = BenchServer::start(4).await;
    // Every blocking point is measured, not the alert budget.
    server.engine.set_alert_budget(0);
    server.engine.set_webhook_options(WebhookOptions {
        allow_private: true,
        ..Default::default()
    });
    let channels = server.channels.clone();
    let names: Arc<Vec<String>> = Arc::new(
        (0..background)
            .map(|l| format!("learner-{l}"))
            .chain((0..probes).map(|p| format!("probe-{p}")))
            .collect(),
    );
    server.seed_program(1, &names).await;

    // The receiver: arrival of each probe's blocking point.
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let secret: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (seen, key) = (arrivals.clone(), secret.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (seen, key) = (seen.clone(), key.clone());
            async move {
                let at = Instant::now();
                let signed = signature::Headers::read(|name| headers.get(name)?.to_str().ok());
                let valid = signed.verify(&key.lock().unwrap(), &body);
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(learner) = event["data"]["learnerId"].as_str() {
                    seen.lock()
                        .unwrap()
                        .entry(learner.to_string())
                        .or_insert((at, valid));
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let created = pb::alert_service_client::AlertServiceClient::new(channels[0].clone())
        .create_subscription(pb::CreateSubscriptionRequest {
            url,
            kinds: vec![pb::AlertKind::BlockingPoint as i32],
            delivery: pb::SubscriptionDelivery::Immediate as i32,
            format: pb::SubscriptionFormat::Cloudevents as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    *secret.lock().unwrap() = signature::decode_secret(&created.secret).unwrap();
    println!(
        "spoc-engine webhook bench: {probes} blocking points at {per_second}/s, \
         {background} background learners at {rate} attempts/s"
    );

    // Background load: correct answers (no alert), spread over learners.
    let seconds = (probes as u64).div_ceil(per_second) + 2;
    let load = {
        let channels = channels.clone();
        let names = names.clone();
        tokio::spawn(async move {
            if rate == 0 || background == 0 {
                return;
            }
            let batch = 10usize;
            common::paced(4, (rate / batch as u64 / 4).max(1), seconds, move |c, i| {
                let mut client =
                    pb::mastery_service_client::MasteryServiceClient::new(channels[c].clone());
                let names = names.clone();
                async move {
                    let attempts = (0..batch)
                        .map(|k| {
                            let n = (c * 1_000_003 + i * batch + k) % background;
                            attempt(format!("bg-{c}-{i}-{k}"), names[n].clone(), true, now())
                        })
                        .collect();
                    client
                        .record_attempts(pb::RecordAttemptsRequest { attempts })
                        .await
                        .unwrap();
                }
            })
            .await;
        })
    };

    // Probes: three failures in one call make a blocking point. They are
    // dated in the last seconds: the evaluation at the call sees only
    // answers up to its own time.
    let started: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second as u32);
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channels[1].clone());
    for p in 0..probes {
        let due = tick.tick().await.into_std();
        let learner = format!("probe-{p}");
        started.lock().unwrap().insert(learner.clone(), due);
        let attempts = (0..3)
            .map(|k| attempt(format!("p-{p}-{k}"), learner.clone(), false, now() - 3 + k))
            .collect();
        client
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .unwrap();
    }
    load.await.unwrap();
    // Wait for the stragglers (30 s at most), then count.
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap().len() < probes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let started = started.lock().unwrap().clone();
    let mut latencies = Vec::new();
    let mut unsigned = 0;
    for (learner, due) in &started {
        if let Some((at, valid)) = arrivals.get(learner) {
            latencies.push(at.saturating_duration_since(*due));
            unsigned += usize::from(!valid);
        }
    }
    let figures = Figures::new(latencies, Duration::from_secs(seconds));
    let stats = server.engine.webhook_stats().unwrap();
    println!(
        "delivery latency RecordAttempts -> receiver: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        figures.ms(0.5),
        figures.ms(0.99),
        figures.max_ms()
    );
    println!(
        "messages missing: {} of {probes}; bad signatures: {unsigned}; delivered {}, retried {}, \
         dead {}, pending {}",
        probes - figures.latencies.len(),
        stats.delivered,
        stats.retried,
        stats.dead_lettered,
        stats.pending
    );
    if figures.latencies.len() < probes {
        let (waiting, _) = server
            .engine
            .store()
            .due_messages(i64::MAX, |_| false, 3)
            .unwrap();
        for (_, message) in waiting {
            println!(
                "waiting: {} after {} attempts: {}",
                message.id, message.attempts, message.last_error
            );
        }
    }
    println!(
        "target p99 < 2000 ms: {}",
        if figures.ms(0.99) < 2000.0 && figures.latencies.len() == probes {
            "met"
        } else {
            "NOT met"
        }
    );
    server.stop().await;
}
