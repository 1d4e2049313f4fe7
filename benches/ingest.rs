//! RecordAttempts throughput through the real gRPC stack on loopback, next
//! to the bare cost of a gRPC call (the health check) on the same server.
//!
//! Run: `cargo bench --bench ingest` (release build). Options after `--`:
//! `--seconds N` per scenario (default 5), `--clients N` concurrent callers
//! (default 64). Prints calls/s, attempts/s, p50/p99 latency, and the
//! process CPU time per call with the cores kept busy (client included).
//! The last scenario sends late arrivals: batches of attempts older than
//! their learners' latest ones, which replay mastery from the history.

mod common;

use common::{BenchServer, Figures, arg, closed_loop, health_baseline, max_rss_mb};
use spoc_engine::api::pb;

const LEARNERS: usize = 1000;
const SKILLS: usize = 30;

/// Attempts of one call. Each scenario dates its attempts after those of
/// the scenarios before it (`epoch` seconds later), as a live LMS would:
/// attempts older than a learner's last one are the rare out-of-order case,
/// which replays the (learner, skill) history, and must not dominate.
fn attempts(tag: &str, epoch: i64, client: usize, call: usize, batch: usize) -> Vec<pb::Attempt> {
    (0..batch)
        .map(|k| {
            let n = call * batch + k;
            let learner = (client * 7919 + n) % LEARNERS;
            pb::Attempt {
                attempt_id: format!("{tag}-{client}-{n}"),
                learner_id: format!("learner-{learner}"),
                item_id: format!("item-{}", n % 500),
                skill_ids: vec![format!("skill-{}", n % SKILLS)],
                correct: n % 3 != 0,
                score: None,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: 1_600_000_000 + epoch + n as i64,
                    nanos: 0,
                }),
                time_spent: None,
            }
        })
        .collect()
}

/// A batch of 100 late arrivals: 10 learners and 5 skills, dated at random
/// (a fixed hash of client and call) within 30 days before 2026-09-21, as
/// offline devices syncing send them. Most are older than their pair's
/// latest attempt, so mastery is replayed from the pair's history.
fn late_attempts(client: usize, call: usize) -> Vec<pb::Attempt> {
    const NOW: i64 = 1_790_000_000;
    (0..100)
        .map(|k| {
            let n = (call * 100 + k) as u64;
            let h = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let h = h ^ (h >> 31);
            pb::Attempt {
                attempt_id: format!("late-{client}-{n}"),
                learner_id: format!("learner-{}", h % 10),
                item_id: "item-1".into(),
                skill_ids: vec![format!("skill-{}", (h >> 8) % 5)],
                correct: (h >> 16) % 3 != 0,
                score: None,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: NOW - ((h >> 20) % (30 * 86_400)) as i64,
                    nanos: 0,
                }),
                time_spent: None,
            }
        })
        .collect()
}

/// The domain form of bench attempts, as the gRPC edge would convert them.
fn convert_attempts(batch: Vec<pb::Attempt>) -> Vec<spoc_engine::domain::mastery::Attempt> {
    spoc_engine::api::convert::attempts(batch, spoc_engine::engine::now_micros()).expect("valid")
}

/// One line of the table; `batch` is the attempts per call, if any.
fn row(scenario: &str, figures: &Figures, batch: Option<usize>) {
    let attempts = batch.map_or("-".to_string(), |b| {
        format!("{:.0}", figures.rate() * b as f64)
    });
    let cpu = figures
        .cpu_us_per_call()
        .map_or("-".to_string(), |us| format!("{us:.1}"));
    let cores = figures
        .busy_cores()
        .map_or("-".to_string(), |c| format!("{c:.2}"));
    println!(
        "{:<28} {:>10.0} {:>12} {:>8.2} {:>8.2} {:>12} {:>6}",
        scenario,
        figures.rate(),
        attempts,
        figures.ms(0.5),
        figures.ms(0.99),
        cpu,
        cores
    );
}

/// Lets the background work of the previous scenario (write-behind apply
/// every 100 ms, checkpoint every second, alert evaluation) finish, so that
/// its CPU time is not counted in the next scenario's figures.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

#[tokio::main]
async fn main() {
    let seconds = arg("--seconds", 5);
    let clients = arg("--clients", 64) as usize;
    let server = BenchServer::start(4).await;
    let channels = server.channels.clone();

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
            items: vec![],
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
        "spoc-engine ingest bench: {clients} concurrent clients over {} connections, {seconds} s per scenario, loopback, durable (group-committed) writes",
        channels.len()
    );
    println!(
        "{:<28} {:>10} {:>12} {:>8} {:>8} {:>12} {:>6}",
        "scenario", "calls/s", "attempts/s", "p50 ms", "p99 ms", "CPU us/call", "cores"
    );
    settle().await;
    let health = health_baseline(&channels, clients, seconds).await;
    row("health check (baseline)", &health, None);
    for (batch, epoch) in [(1usize, 0), (100, 50_000_000)] {
        settle().await;
        let callers = channels.clone();
        let figures = closed_loop(clients, seconds, move |c, i| {
            let mut client = pb::mastery_service_client::MasteryServiceClient::new(
                callers[c % callers.len()].clone(),
            );
            let request = pb::RecordAttemptsRequest {
                attempts: attempts(&format!("b{batch}"), epoch, c, i, batch),
            };
            async move {
                client
                    .record_attempts(request)
                    .await
                    .expect("record attempts");
            }
        })
        .await;
        row(
            &format!("RecordAttempts batch={batch}"),
            &figures,
            Some(batch),
        );
        if batch == 1 {
            // The health rate drifts between runs on a shared 2-core
            // machine: measure it again right after, compare with the
            // higher of the two.
            settle().await;
            let after = health_baseline(&channels, clients, seconds).await;
            row("health check (again)", &after, None);
            println!(
                "{:<28} {:>9.0}% of the higher health-check rate (target >= 60%)",
                "",
                100.0 * figures.rate() / health.rate().max(after.rate())
            );
        }
    }
    // The engine alone, without gRPC, same concurrency: what ingestion
    // itself costs.
    settle().await;
    let engine = server.engine.clone();
    let alone = closed_loop(clients, seconds, move |c, i| {
        let engine = engine.clone();
        let batch = convert_attempts(attempts("engine", 100_000_000, c, i, 1));
        async move {
            engine
                .record_attempts(batch)
                .await
                .expect("record attempts");
        }
    })
    .await;
    row("engine only, batch=1", &alone, Some(1));
    // Late arrivals (see `late_attempts`).
    settle().await;
    let callers = channels.clone();
    let late = closed_loop(clients, seconds, move |c, i| {
        let mut client = pb::mastery_service_client::MasteryServiceClient::new(
            callers[c % callers.len()].clone(),
        );
        let attempts = late_attempts(c, i);
        async move {
            client
                .record_attempts(pb::RecordAttemptsRequest { attempts })
                .await
                .expect("record attempts");
        }
    })
    .await;
    row("late arrivals, batch=100", &late, Some(100));
    println!("max RSS: {:.0} MB", max_rss_mb());
    server.stop().await;
}
