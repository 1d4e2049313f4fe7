//! RecordAttempts throughput through the real gRPC stack on loopback, next
//! to the bare cost of a gRPC call (the health check) on the same server.
//!
//! Run: `cargo bench --bench ingest` (release build). Options after `--`:
//! `--seconds N` per scenario (default 5), `--clients N` concurrent callers
//! (default 64). Prints calls/s, attempts/s and p50/p99 latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spoc_engine::api::pb;
use spoc_engine::engine::params::ParamSet;
use spoc_engine::engine::{Engine, EngineConfig};
use spoc_engine::store::Store;
use tonic::transport::Channel;

const LEARNERS: usize = 1000;
const SKILLS: usize = 30;

#[derive(Clone, Copy)]
enum Scenario {
    Health,
    Attempts(usize),
}

struct Figures {
    calls: usize,
    attempts: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn drive(
    channels: &[Channel],
    scenario: Scenario,
    clients: usize,
    seconds: u64,
    tag: &str,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let channel = channels[c % channels.len()].clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel);
            let mut latencies = Vec::new();
            let mut attempts = 0;
            let mut i = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match scenario {
                    Scenario::Health => {
                        health
                            .check(tonic_health::pb::HealthCheckRequest {
                                service: String::new(),
                            })
                            .await
                            .expect("health");
                    }
                    Scenario::Attempts(batch) => {
                        let batch_attempts = (0..batch)
                            .map(|k| {
                                let n = i * batch + k;
                                let learner = (c * 7919 + n) % LEARNERS;
                                pb::Attempt {
                                    attempt_id: format!("{tag}-{c}-{n}"),
                                    learner_id: format!("learner-{learner}"),
                                    item_id: format!("item-{}", n % 500),
                                    skill_ids: vec![format!("skill-{}", n % SKILLS)],
                                    correct: n % 3 != 0,
                                    score: None,
                                    occurred_at: Some(prost_types::Timestamp {
                                        seconds: 1_700_000_000 + n as i64,
                                        nanos: 0,
                                    }),
                                    time_spent: None,
                                }
                            })
                            .collect();
                        mastery
                            .record_attempts(pb::RecordAttemptsRequest {
                                attempts: batch_attempts,
                            })
                            .await
                            .expect("record attempts");
                        attempts += batch;
                    }
                }
                latencies.push(t0.elapsed());
                i += 1;
            }
            (latencies, attempts)
        }));
    }
    let mut latencies = Vec::new();
    let mut attempts = 0;
    for task in tasks {
        let (l, a) = task.await.expect("client task");
        latencies.extend(l);
        attempts += a;
    }
    latencies.sort();
    Figures {
        calls: latencies.len(),
        attempts,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn max_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let seconds = arg("--seconds", 5);
    let clients = arg("--clients", 64) as usize;
    let temp = tempfile::tempdir().unwrap();
    let store = Store::open(temp.path()).unwrap();
    let engine = Arc::new(
        Engine::new(
            store,
            EngineConfig {
                mastery_threshold: 0.95,
                params: ParamSet::load(None).unwrap(),
            },
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spoc_engine::server::serve(engine, listener, async {
        let _ = stopped.await;
    }));

    let endpoint = format!("http://{addr}");
    let mut channels = Vec::new();
    for _ in 0..4 {
        loop {
            if let Ok(c) = Channel::from_shared(endpoint.clone())
                .unwrap()
                .connect()
                .await
            {
                channels.push(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Seed the catalog and the learners.
    let mut catalog = pb::catalog_service_client::CatalogServiceClient::new(channels[0].clone());
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: (0..SKILLS)
                .map(|s| pb::Skill {
                    id: format!("skill-{s}"),
                    name: format!("Skill {s}"),
                    prerequisite_ids: vec![],
                })
                .collect(),
            modules: vec![],
        })
        .await
        .unwrap();
    let mut learners = pb::learner_service_client::LearnerServiceClient::new(channels[0].clone());
    for l in 0..LEARNERS {
        learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(pb::Learner {
                    id: format!("learner-{l}"),
                    company_id: format!("company-{}", l % 40),
                    language: "fr".into(),
                    time_zone: "Europe/Paris".into(),
                    display_name: String::new(),
                }),
            })
            .await
            .unwrap();
    }

    println!(
        "spoc-engine ingest bench: {clients} concurrent clients over 4 connections, {seconds} s per scenario, loopback, durable (group-committed) writes"
    );
    println!(
        "{:<28} {:>12} {:>14} {:>10} {:>10}",
        "scenario", "calls/s", "attempts/s", "p50 ms", "p99 ms"
    );
    let mut health_rate = 0.0;
    for (name, scenario) in [
        ("health check (baseline)", Scenario::Health),
        ("RecordAttempts batch=1", Scenario::Attempts(1)),
        ("RecordAttempts batch=100", Scenario::Attempts(100)),
    ] {
        let figures = drive(
            &channels,
            scenario,
            clients,
            seconds,
            name.split_whitespace().last().unwrap(),
        )
        .await;
        let rate = figures.calls as f64 / figures.elapsed.as_secs_f64();
        if matches!(scenario, Scenario::Health) {
            health_rate = rate;
        }
        println!(
            "{:<28} {:>12.0} {:>14.0} {:>10.2} {:>10.2}",
            name,
            rate,
            figures.attempts as f64 / figures.elapsed.as_secs_f64(),
            percentile(&figures.latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&figures.latencies, 0.99).as_secs_f64() * 1e3,
        );
        if let Scenario::Attempts(1) = scenario {
            println!(
                "{:<28} {:>11.0}% of the health-check rate (target >= 60%)",
                "",
                100.0 * rate / health_rate
            );
        }
    }
    println!("max RSS: {:.0} MB", max_rss_mb());
    let _ = stop.send(());
    let _ = server.await;
}
