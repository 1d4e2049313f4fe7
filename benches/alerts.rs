//! Alert latency under load: time from a `RecordAttempts` call that makes a
//! blocking point to the alert on an open `WatchAlerts` stream, with
//! 10,000 learners in the store and a steady background load of attempts.
//!
//! Run: `cargo bench --bench alerts` (release build). Options after `--`:
//! `--learners N` (default 10000), `--rate N` attempts/s in total (default
//! 1000), `--seconds N` of load (default 20), `--probes N` blocking points
//! per second (default 20), `--history N` attempts stored per learner
//! before the run (default 10), `--pass-seconds N` between full alert
//! passes (default 60, as served). Prints the alert latency p50/p99/max, the
//! load achieved and the RecordAttempts latency.

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BenchServer, Figures, arg, max_rss_mb, now};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spoc_engine::api::pb;
use tokio_stream::StreamExt;

const SKILLS: usize = 5;

fn attempt(id: String, learner: String, skill: usize, correct: bool, at: i64) -> pb::Attempt {
    common::attempt(
        id,
        learner,
        format!("item-{skill}"),
        format!("skill-{skill}"),
        correct,
        at,
    )
}

#[tokio::main]
async fn main() {
    let learners = arg("--learners", 10_000) as usize;
    let rate = arg("--rate", 1000) as usize;
    let seconds = arg("--seconds", 20);
    let probes_per_second = arg("--probes", 20) as usize;
    let history = arg("--history", 10) as usize;
    let pass_seconds = arg("--pass-seconds", 60);
    let probe_count = probes_per_second * seconds as usize;
    assert!(probe_count < learners, "more probes than learners");
    let background = learners - probe_count;

    let server = BenchServer::start(4).await;
    server
        .engine
        .set_alert_pass_interval(Duration::from_secs(pass_seconds.max(1)));
    // Latency, not the budget: every probe's alert may be open.
    server.engine.set_alert_budget(0);
    // The history is two hours old: a bulk load, evaluated once it ends.
    let history_from = now() - 7200;
    let channels = server.channels.clone();
    let setup = Instant::now();
    let names: Vec<String> = (0..learners)
        .map(|l| {
            if l < background {
                format!("learner-{l}")
            } else {
                format!("probe-{}", l - background)
            }
        })
        .collect();
    let names = Arc::new(names);
    server.seed_program(SKILLS, &names).await;
    // A history for every background learner, in batches of 1000.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channels[0].clone());
    let mut batch = Vec::new();
    for l in 0..background {
        for k in 0..history {
            batch.push(attempt(
                format!("h-{l}-{k}"),
                names[l].clone(),
                k % SKILLS,
                rng.random_bool(0.7),
                history_from + k as i64,
            ));
            if batch.len() == 1000 {
                mastery
                    .record_attempts(pb::RecordAttemptsRequest {
                        attempts: std::mem::take(&mut batch),
                    })
                    .await
                    .unwrap();
            }
        }
    }
    if !batch.is_empty() {
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts: batch })
            .await
            .unwrap();
    }
    // Let the evaluation of the history (once the load has ended) settle
    // before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while !server.engine.alerts_idle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "spoc-engine alert bench: {learners} learners ({} stored attempts), setup {:.1}s",
        background * history,
        setup.elapsed().as_secs_f64()
    );

    // The watcher: arrival time of each probe's blocking point.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut stream = pb::alert_service_client::AlertServiceClient::new(channels[1].clone())
        .watch_alerts(pb::WatchAlertsRequest {
            cohort_ids: vec![],
            program_id: "bench".into(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let seen = arrivals.clone();
    let watcher = tokio::spawn(async move {
        let mut events = 0u64;
        while let Some(Ok(event)) = stream.next().await {
            events += 1;
            let Some(alert) = event.alert else { continue };
            if !event.snapshot
                && alert.kind == pb::AlertKind::BlockingPoint as i32
                && alert.learner_id.starts_with("probe-")
            {
                seen.lock()
                    .unwrap()
                    .entry(alert.learner_id)
                    .or_insert_with(Instant::now);
            }
        }
        events
    });

    // Open-loop load: a batch every 10 ms, a probe every 1/probes s.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let call_latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let attempts_sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let probe_attempts = 3 * probes_per_second;
    let per_tick = rate.saturating_sub(probe_attempts).div_ceil(100);
    let ticks = seconds as usize * 100;
    let probe_every = 100 / probes_per_second.max(1);
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    let start = Instant::now();
    let mut inflight = Vec::new();
    let mut probe = 0;
    for tick in 0..ticks {
        interval.tick().await;
        let mut attempts: Vec<pb::Attempt> = (0..per_tick)
            .map(|k| {
                let l = rng.random_range(0..background);
                attempt(
                    format!("bg-{tick}-{k}"),
                    names[l].clone(),
                    rng.random_range(0..SKILLS),
                    rng.random_bool(0.7),
                    now(),
                )
            })
            .collect();
        let mut probe_id = None;
        if tick % probe_every == 0 && probe < probe_count {
            let id = format!("probe-{probe}");
            probe += 1;
            attempts.extend(
                (0..3).map(|k| attempt(format!("{id}-{k}"), id.clone(), 0, false, now() - 3 + k)),
            );
            probe_id = Some(id);
        }
        let n = attempts.len() as u64;
        let mut client =
            pb::mastery_service_client::MasteryServiceClient::new(channels[tick % 4].clone());
        let (sent, latencies, counter) =
            (sent.clone(), call_latencies.clone(), attempts_sent.clone());
        inflight.push(tokio::spawn(async move {
            let t0 = Instant::now();
            if let Some(id) = probe_id {
                sent.lock().unwrap().insert(id, t0);
            }
            client
                .record_attempts(pb::RecordAttemptsRequest { attempts })
                .await
                .unwrap();
            latencies.lock().unwrap().push(t0.elapsed());
            counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }));
    }
    for task in inflight {
        task.await.unwrap();
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent = sent.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    let mut latencies = Vec::new();
    let mut missing = 0;
    for (id, t0) in &sent {
        match arrivals.get(id) {
            Some(t1) => latencies.push(t1.saturating_duration_since(*t0)),
            None => missing += 1,
        }
    }
    let alerts = Figures::new(latencies, elapsed);
    let calls = Figures::new(call_latencies.lock().unwrap().clone(), elapsed);
    let total = attempts_sent.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "load: {:.0} attempts/s ({} attempts in {} calls over {:.1}s), {} blocking points probed",
        total as f64 / elapsed.as_secs_f64(),
        total,
        calls.latencies.len(),
        elapsed.as_secs_f64(),
        sent.len()
    );
    println!(
        "alert latency RecordAttempts -> WatchAlerts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, missing {missing}",
        alerts.ms(0.5),
        alerts.ms(0.99),
        alerts.ms(1.0)
    );
    println!(
        "RecordAttempts latency: p50 {:.1} ms, p99 {:.1} ms",
        calls.ms(0.5),
        calls.ms(0.99)
    );
    println!(
        "evaluations {} (since start), alert changes {}, peak RSS {:.0} MB",
        server.engine.alert_evaluations(),
        server.engine.alert_sequence(),
        max_rss_mb()
    );
    server.stop().await;
    let events = watcher.await.unwrap_or(0);
    println!("watch stream delivered {events} events");
}
