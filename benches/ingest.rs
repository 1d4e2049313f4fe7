//! RecordAttempts throughput through the real gRPC stack on loopback, next
//! to the bare cost of a gRPC call (the health check) on the same server.
//!
//! Run: `cargo bench --bench ingest` (release build). Options after `--`:
//! `--seconds N` per scenario (default 5), `--clients N` concurrent callers
//! (default 64). Prints calls/s, attempts/s, p50/p99 latency, and the
//! process CPU time per call with the cores kept busy (client included).
//! The last scenario sends late arrivals: batches of attempts older than
//! their learners' latest ones, which replay mastery from the history.
//!
//! Two floors bound what a single-attempt call can reach on this machine:
//! the same calls, through the same server stack (its own store), answered
//! by a handler that does no work (the cost of the RecordAttempts messages
//! and of the stack), and by one that only writes the attempts to the
//! write-ahead log and waits for the sync (the cost of an
//! acknowledged-on-disk reply).

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    AuthChannel, BenchServer, Call, Figures, alternate, arg, closed_loop, health_baseline,
    health_call, max_rss_mb, paced,
};
use spoc_engine::api::pb;
use spoc_engine::engine::Engine;
use spoc_engine::store::wal::WalRecord;
use tonic::{Request, Response, Status};

const LEARNERS: usize = 1000;
const SKILLS: usize = 30;
/// Seconds between the attempt dates of two slices or scenarios: each
/// dates its attempts after all those before it (a client makes far fewer
/// calls than this in a slice or scenario).
const EPOCH: i64 = 1_000_000;
/// The first in-order date; every in-order date stays before the late
/// arrivals' (checked at start).
const START: i64 = 1_600_000_000;
/// The late arrivals are dated within 30 days before this.
const LATE_NOW: i64 = 1_790_000_000;
/// Pause before each slice of an alternating run (see `alternate`).
const PAUSE: Duration = Duration::from_millis(500);

/// Attempts of one call. Each scenario dates its attempts after those of
/// the scenarios before it (`epoch` seconds later), as a live LMS would:
/// attempts older than a learner's last one are the rare out-of-order case,
/// which replays the (learner, skill) history, and must not dominate.
fn attempts(tag: &str, epoch: i64, client: usize, call: usize, batch: usize) -> Vec<pb::Attempt> {
    (0..batch)
        .map(|k| {
            let n = call * batch + k;
            let learner = (client * 7919 + n) % LEARNERS;
            common::attempt(
                format!("{tag}-{client}-{n}"),
                format!("learner-{learner}"),
                format!("item-{}", n % 500),
                format!("skill-{}", n % SKILLS),
                n % 3 != 0,
                START + epoch + n as i64,
            )
        })
        .collect()
}

/// A batch of 100 late arrivals: 10 learners and 5 skills, dated at random
/// (a fixed hash of client and call) within 30 days before 2026-09-21, as
/// offline devices syncing send them. Most are older than their pair's
/// latest attempt, so mastery is replayed from the pair's history.
fn late_attempts(client: usize, call: usize) -> Vec<pb::Attempt> {
    (0..100)
        .map(|k| {
            let n = (call * 100 + k) as u64;
            let h = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let h = h ^ (h >> 31);
            common::attempt(
                format!("late-{client}-{n}"),
                format!("learner-{}", h % 10),
                "item-1".into(),
                format!("skill-{}", (h >> 8) % 5),
                (h >> 16) % 3 != 0,
                LATE_NOW - ((h >> 20) % (30 * 86_400)) as i64,
            )
        })
        .collect()
}

/// The domain form of bench attempts, as the gRPC edge would convert them.
fn convert_attempts(batch: Vec<pb::Attempt>) -> Vec<spoc_engine::domain::mastery::Attempt> {
    spoc_engine::api::convert::attempts(&batch, spoc_engine::clock::now_micros()).expect("valid")
}

/// A MasteryService without the engine, for the floors: it answers
/// RecordAttempts with a response of the real shape (the first attempt's
/// mastery), after logging the attempts durably to its server's
/// write-ahead log when `log_to` holds that server's engine.
struct Floor {
    log_to: Option<Arc<Engine>>,
}

#[tonic::async_trait]
impl pb::mastery_service_server::MasteryService for Floor {
    async fn record_attempts(
        &self,
        request: Request<pb::RecordAttemptsRequest>,
    ) -> Result<Response<pb::RecordAttemptsResponse>, Status> {
        let attempts = convert_attempts(request.into_inner().attempts);
        if let Some(engine) = &self.log_to {
            let record = WalRecord::Attempts(attempts.clone());
            engine
                .store()
                .log(&record)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let first = &attempts[0];
        Ok(Response::new(pb::RecordAttemptsResponse {
            mastery: vec![pb::SkillMastery {
                learner_id: first.learner_id.clone(),
                skill_id: first.skill_ids[0].clone(),
                p_mastered: 0.5,
                attempt_count: 1,
                mastered: false,
                updated_at: Some(prost_types::Timestamp {
                    seconds: first.occurred_at / 1_000_000,
                    nanos: 0,
                }),
            }],
            recorded: attempts.len() as i32,
            duplicates: 0,
        }))
    }

    async fn get_mastery(
        &self,
        _: Request<pb::GetMasteryRequest>,
    ) -> Result<Response<pb::GetMasteryResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn fit_model(
        &self,
        _: Request<pb::FitModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn get_model(
        &self,
        _: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        Err(Status::unimplemented("floor"))
    }
}

/// A RecordAttempts call per `(round, client, i)` over `channels`, with
/// the attempts `make` builds.
fn record_call(
    channels: &[AuthChannel],
    make: impl Fn(usize, usize, usize) -> Vec<pb::Attempt> + Send + Sync + 'static,
) -> impl Fn(usize, usize, usize) -> Call + Send + Sync + 'static {
    let channels = channels.to_vec();
    move |round, c, i| {
        let mut client = pb::mastery_service_client::MasteryServiceClient::new(
            channels[c % channels.len()].clone(),
        );
        let request = pb::RecordAttemptsRequest {
            attempts: make(round, c, i),
        };
        Box::pin(async move {
            client
                .record_attempts(request)
                .await
                .expect("record attempts");
        })
    }
}

/// What `alternate` runs after each slice: a store flush (write-behind
/// apply, log sync and trim, sled flush), which the background
/// checkpoint, once a second, would otherwise run during the next slice.
fn flush(engine: &Arc<Engine>) -> impl Fn() + use<> {
    let engine = engine.clone();
    move || engine.store().flush().expect("store flush")
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

/// What the store's background threads spent per call of a run: the rows
/// applied to sled and the write-ahead log's writes and syncs are paid
/// there, not in the call's own task.
fn background_line(figures: &Figures) {
    if let Some([sled, log]) = figures.background_us_per_call() {
        println!(
            "{:<28} of which {sled:.1} us/call applying rows to sled, {log:.1} us/call writing and syncing the log",
            ""
        );
    }
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
            skills: common::skills(SKILLS),
            modules: vec![],
            items: vec![],
        })
        .await
        .unwrap();
    let mut learners = pb::learner_service_client::LearnerServiceClient::new(channels[0].clone());
    for l in 0..LEARNERS {
        learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(common::learner(
                    format!("learner-{l}"),
                    format!("company-{}", l % 40),
                )),
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

    // Single attempts against the health check, in alternating slices
    // (see `alternate`); slice `round` dates its attempts `round` epochs
    // later, so every learner's attempts stay in time order.
    settle().await;
    let rounds = seconds as usize;
    assert!(
        START + (3 * rounds as i64 + 8) * EPOCH < LATE_NOW - 30 * 86_400,
        "--seconds {seconds}: in-order attempts would be dated after the late ones"
    );
    let (health, single) = alternate(
        clients,
        rounds,
        PAUSE,
        flush(&server.engine),
        health_call(&channels),
        record_call(&channels, |round, c, i| {
            attempts(&format!("b1r{round}"), round as i64 * EPOCH, c, i, 1)
        }),
    )
    .await;
    row("health check (alternating)", &health, None);
    row("RecordAttempts batch=1", &single, Some(1));
    background_line(&single);
    println!(
        "{:<28} {:>9.0}% of the health-check rate (target >= 60%)",
        "",
        100.0 * single.rate() / health.rate()
    );
    if let Some(us) = health.cpu_us_per_call() {
        println!(
            "{:<28} at 60%, with as many cores busy, a call may cost {:.1} us of CPU",
            "",
            us / 0.6
        );
    }
    let mut epoch = rounds as i64 * EPOCH;

    settle().await;
    let call = record_call(&channels, move |_, c, i| attempts("b100", epoch, c, i, 100));
    // Health checks beside the batches, paced (200 a second): what a
    // batch's work does to the latency of the service's other calls.
    let health = health_call(&channels);
    let (batches, beside) = tokio::join!(
        closed_loop(clients, seconds, move |c, i| call(0, c, i)),
        paced(2, 100, seconds, move |c, i| health(0, c, i)),
    );
    row("RecordAttempts batch=100", &batches, Some(100));
    println!(
        "{:<28} health checks beside ({:.0}/s, paced): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        "",
        beside.rate(),
        beside.ms(0.5),
        beside.ms(0.99),
        beside.max_ms()
    );
    epoch += 5 * EPOCH;

    // The engine alone, without gRPC, same concurrency: what ingestion
    // itself costs.
    settle().await;
    let engine = server.engine.clone();
    let alone = closed_loop(clients, seconds, move |c, i| {
        let engine = engine.clone();
        let batch = convert_attempts(attempts("engine", epoch, c, i, 1));
        async move {
            engine
                .record_attempts(batch)
                .await
                .expect("record attempts");
        }
    })
    .await;
    row("engine only, batch=1", &alone, Some(1));
    background_line(&alone);

    // Late arrivals (see `late_attempts`).
    settle().await;
    let call = record_call(&channels, |_, c, i| late_attempts(c, i));
    let late = closed_loop(clients, seconds, move |c, i| call(0, c, i)).await;
    row("late arrivals, batch=100", &late, Some(100));

    // The floors, last, so that the log-only floor's records do not weigh
    // on the scenarios above; each alternates with the health check too.
    for (k, (name, log)) in [
        ("floor: no-op handler", false),
        ("floor: log-only handler", true),
    ]
    .into_iter()
    .enumerate()
    {
        settle().await;
        // The real server's stack (key check, limits, tracing), its own
        // store, with `Floor` in place of the engine's MasteryService.
        let floor = BenchServer::start_with_mastery(channels.len(), |engine| Floor {
            log_to: log.then(|| engine.clone()),
        })
        .await;
        let first = epoch + (k * rounds + 1) as i64 * EPOCH;
        let (health, figures) = alternate(
            clients,
            rounds,
            PAUSE,
            flush(&server.engine),
            health_call(&channels),
            record_call(&floor.channels, move |round, c, i| {
                attempts(
                    &format!("{name} r{round}"),
                    first + round as i64 * EPOCH,
                    c,
                    i,
                    1,
                )
            }),
        )
        .await;
        row(name, &figures, Some(1));
        background_line(&figures);
        println!(
            "{:<28} {:>9.0}% of the health-check rate alternating with it",
            "",
            100.0 * figures.rate() / health.rate()
        );
        floor.stop().await;
    }
    println!("max RSS: {:.0} MB", max_rss_mb());
    server.stop().await;
}
