//! Overload: does the service shed load quickly with bounded memory?
//!
//! Runs the real `spoc serve` binary (so the memory figures are the
//! server's alone), finds the sustainable rate of `RecordAttempts` with a
//! closed loop, then offers four times that rate open-loop (requests sent
//! on a fixed schedule whatever the replies) for 30 s, and prints p50/p99
//! of the successes (from their scheduled send time), error rates by gRPC
//! code, how fast refusals come back, and the server's resident memory
//! (before, peak during, and the kernel's high-water mark).
//!
//! `--expensive 1` measures the cost class of expensive calls instead: 64
//! clients call `GetProgramReport` in a closed loop over a program of every
//! learner while one client calls `GetMastery`; it prints the answers by
//! code, how fast refusals come back, the cheap call's latency beside the
//! load and the server's peak memory.
//!
//! `cargo bench --bench overload` (`SPOC_OVERLOAD_SECONDS=5` to shorten;
//! `--factor 4`, `--probe-seconds 5`, `--max-in-flight N` to change;
//! `SPOC_BENCH_LOG=tonic=debug` for the server's connection errors).
//!
//! The generator runs on the same machine: latencies are counted from the
//! scheduled send time, so they include the generator's own queueing when
//! the CPU is saturated.

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{AuthChannel, Figures, arg, closed_loop};
use spoc_engine::api::auth::BearerKey;
use spoc_engine::api::pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Learners the load spreads over.
const LEARNERS: usize = 200;
/// HTTP/2 connections of the load generator.
const CONNECTIONS: usize = 32;
/// Calls the generator keeps in flight at most: the streams the server
/// admits on its connections. A call due while that many are pending is
/// not sent and counted as dropped by the generator, so the latencies
/// measure the server, not a client-side queue.
const GENERATOR_IN_FLIGHT: usize = CONNECTIONS * spoc_engine::server::CONCURRENCY_PER_CONNECTION;
/// Closed-loop callers of the probe.
const PROBE_CLIENTS: usize = 64;

/// Each call's outcome (`None` = OK) and latency from its scheduled time.
type Outcomes = Arc<std::sync::Mutex<Vec<(Option<tonic::Code>, Duration)>>>;

/// The latencies recorded so far, by status code name (`OK` for success).
fn by_code(outcomes: &Outcomes) -> BTreeMap<String, Vec<Duration>> {
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let mut by_code: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for (code, latency) in outcomes {
        let name = code.map_or("OK".to_string(), |c| format!("{c:?}"));
        by_code.entry(name).or_default().push(latency);
    }
    by_code
}

/// The first message seen for each error code.
type Samples = Arc<std::sync::Mutex<BTreeMap<String, String>>>;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of `/proc/<pid>/status` in KiB (VmRSS, VmHWM).
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn attempt(id: String, n: u64) -> pb::Attempt {
    common::attempt(
        id,
        format!("l{}", n % LEARNERS as u64),
        "item".into(),
        if n % 2 == 0 { "a" } else { "b" }.into(),
        n % 3 != 0,
        1_700_000_000 + (n % 100_000) as i64,
    )
}

#[tokio::main]
async fn main() {
    let factor = arg("--factor", 4) as f64;
    let probe_seconds = arg("--probe-seconds", 5);
    let seconds: u64 = std::env::var("SPOC_OVERLOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let max_in_flight = arg(
        "--max-in-flight",
        spoc_engine::domain::limits::DEFAULT_MAX_IN_FLIGHT as u64,
    );

    let temp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        common::spoc_serve(port, temp.path())
            .args(["--max-in-flight", &max_in_flight.to_string()])
            .spawn()
            .expect("spawn spoc serve"),
    );
    let pid = server.0.id();
    let mut raw = Vec::new();
    while raw.len() < CONNECTIONS {
        match Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => raw.push(c),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // The server wrote its first admin key before listening.
    let key = std::fs::read_to_string(temp.path().join("admin-key")).expect("admin-key");
    let bearer = BearerKey::new(key.trim()).expect("key fits a header");
    let channels: Vec<AuthChannel> = raw
        .into_iter()
        .map(|c| InterceptedService::new(c, bearer.clone()))
        .collect();
    let mut catalog = pb::catalog_service_client::CatalogServiceClient::new(channels[0].clone());
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            items: vec![],
            skills: ["a", "b"]
                .iter()
                .map(|s| pb::Skill {
                    id: s.to_string(),
                    name: s.to_string(),
                    prerequisite_ids: vec![],
                })
                .collect(),
            modules: vec![],
        })
        .await
        .unwrap();
    let mut learners = pb::learner_service_client::LearnerServiceClient::new(channels[0].clone());
    for i in 0..LEARNERS {
        learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(common::learner(format!("l{i}"), "acme".into())),
            })
            .await
            .unwrap();
    }
    let rss_before = proc_kib(pid, "VmRSS:");
    if arg("--expensive", 0) == 1 {
        expensive_phase(pid, &channels, seconds, rss_before).await;
        return;
    }

    // 1. The sustainable rate: closed loop, every call waits for its reply.
    let probe_channels = channels.clone();
    let probe = closed_loop(PROBE_CLIENTS, probe_seconds, move |c, i| {
        let mut client = pb::mastery_service_client::MasteryServiceClient::new(
            probe_channels[c % CONNECTIONS].clone(),
        );
        async move {
            let n = (c * 1_000_000 + i) as u64;
            client
                .record_attempts(pb::RecordAttemptsRequest {
                    attempts: vec![attempt(format!("p{c}-{i}"), n)],
                })
                .await
                .expect("probe call");
        }
    })
    .await;
    let sustainable = probe.rate();
    println!(
        "sustainable (closed loop, {PROBE_CLIENTS} callers, {probe_seconds} s): {sustainable:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms",
        probe.ms(0.5),
        probe.ms(0.99)
    );

    // 2. Open loop at `factor` times that rate.
    let offered = sustainable * factor;
    let interval = Duration::from_secs_f64(1.0 / offered);
    let total = (offered * seconds as f64) as u64;
    let outcomes: Outcomes = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total as usize)));
    let samples: Samples = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak_in_flight = Arc::new(AtomicUsize::new(0));
    let peak_rss = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let peak_rss = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                peak_rss.fetch_max(proc_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let start = Instant::now();
    let mut dropped = 0u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            tokio::time::sleep_until(due.into()).await;
        }
        if in_flight.load(Ordering::Relaxed) >= GENERATOR_IN_FLIGHT {
            dropped += 1;
            continue;
        }
        let mut client = pb::mastery_service_client::MasteryServiceClient::new(
            channels[n as usize % CONNECTIONS].clone(),
        );
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (outcomes, in_flight, peak_in_flight, samples) = (
            outcomes.clone(),
            in_flight.clone(),
            peak_in_flight.clone(),
            samples.clone(),
        );
        tasks.push(tokio::spawn(async move {
            peak_in_flight.fetch_max(in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
            let mut request = tonic::Request::new(pb::RecordAttemptsRequest {
                attempts: vec![attempt(format!("o{n}"), n)],
            });
            request.set_timeout(Duration::from_secs(10));
            let result = client.record_attempts(request).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let code = result.err().map(|s| {
                samples
                    .lock()
                    .unwrap()
                    .entry(format!("{:?}", s.code()))
                    .or_insert_with(|| {
                        use std::error::Error as _;
                        let mut text = s.message().to_string();
                        let mut source = s.source();
                        while let Some(cause) = source {
                            text.push_str(&format!(": {cause}"));
                            source = cause.source();
                        }
                        text
                    });
                s.code()
            });
            outcomes.lock().unwrap().push((code, due.elapsed()));
        }));
    }
    let sent_in = start.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed();
    sampler.abort();
    let peak = peak_rss
        .load(Ordering::Relaxed)
        .max(proc_kib(pid, "VmRSS:"));
    let hwm = proc_kib(pid, "VmHWM:");

    let by_code = by_code(&outcomes);
    println!(
        "offered {offered:.0} calls/s ({factor}x) for {seconds} s: {total} calls due in {:.1} s (schedule kept at {:.0}/s), all answered after {:.1} s; peak in flight {} (cap {GENERATOR_IN_FLIGHT}), {dropped} not sent (generator at its cap, {:.1}%)",
        sent_in.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64(),
        elapsed.as_secs_f64(),
        peak_in_flight.load(Ordering::Relaxed),
        100.0 * dropped as f64 / total as f64
    );
    for (code, latencies) in by_code {
        let figures = Figures::new(latencies, elapsed);
        println!(
            "  {code:<18} {:>8} calls  {:>6.2}%  {:>8.0}/s  p50 {:>8.2} ms  p99 {:>8.2} ms",
            figures.latencies.len(),
            100.0 * figures.latencies.len() as f64 / (total - dropped) as f64,
            figures.rate(),
            figures.ms(0.5),
            figures.ms(0.99)
        );
    }
    for (code, message) in samples.lock().unwrap().iter() {
        println!("  first {code}: {message}");
    }
    println!(
        "server RSS: {:.1} MiB before, {:.1} MiB peak sampled, {:.1} MiB high-water mark (VmHWM); --max-in-flight {max_in_flight}",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    // 3. It still serves normally afterwards.
    let after_channels = channels.clone();
    let after = closed_loop(PROBE_CLIENTS, 2, move |c, i| {
        let mut client = pb::mastery_service_client::MasteryServiceClient::new(
            after_channels[c % CONNECTIONS].clone(),
        );
        async move {
            client
                .record_attempts(pb::RecordAttemptsRequest {
                    attempts: vec![attempt(format!("a{c}-{i}"), (c * 1_000_000 + i) as u64)],
                })
                .await
                .expect("call after the overload");
        }
    })
    .await;
    println!(
        "after the overload (closed loop, 2 s): {:.0} calls/s, p99 {:.2} ms",
        after.rate(),
        after.ms(0.99)
    );
    drop(server);
}

/// The expensive-call phase (`--expensive 1`): see the module comment.
async fn expensive_phase(pid: u32, channels: &[AuthChannel], seconds: u64, rss_before: u64) {
    let ch = channels[0].clone();
    pb::program_service_client::ProgramServiceClient::new(ch.clone())
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "p".into(),
                name: "Program p".into(),
                skill_ids: vec!["a".into(), "b".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut learners = pb::learner_service_client::LearnerServiceClient::new(ch.clone());
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(ch.clone());
    for i in 0..LEARNERS {
        learners
            .enroll_learner(pb::EnrollLearnerRequest {
                enrolled_at: None,
                learner_id: format!("l{i}"),
                program_id: "p".into(),
            })
            .await
            .unwrap();
        let attempts = (0..20)
            .map(|k| attempt(format!("e{i}-{k}"), (i * 20 + k) as u64))
            .collect();
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .unwrap();
    }
    let outcomes: Outcomes = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..64 {
        let (outcomes, stop) = (outcomes.clone(), stop.clone());
        let mut client =
            pb::report_service_client::ReportServiceClient::new(channels[c % CONNECTIONS].clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let reply = client
                    .get_program_report(pb::GetProgramReportRequest {
                        program_id: "p".into(),
                        ..Default::default()
                    })
                    .await;
                let code = reply.err().map(|s| s.code());
                outcomes.lock().unwrap().push((code, started.elapsed()));
                if code == Some(tonic::Code::ResourceExhausted) {
                    // A client backing off a little, as told.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    // The cheap call beside the load.
    let cheap: Outcomes = Arc::default();
    let (cheap_out, cheap_stop) = (cheap.clone(), stop.clone());
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channels[1].clone());
    tasks.push(tokio::spawn(async move {
        while !cheap_stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let reply = client
                .get_mastery(pb::GetMasteryRequest {
                    learner_id: "l1".into(),
                    skill_ids: vec![],
                })
                .await;
            cheap_out
                .lock()
                .unwrap()
                .push((reply.err().map(|s| s.code()), started.elapsed()));
        }
    }));
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        peak = peak.max(proc_kib(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let percentile = |mut v: Vec<Duration>, q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
    };
    let by_code = by_code(&outcomes);
    println!(
        "64 clients calling GetProgramReport ({LEARNERS} learners, 20 attempts each) for {seconds} s:"
    );
    for (code, latencies) in by_code {
        println!(
            "  {code:<20} {:>7} calls  p50 {:>8.2} ms  p99 {:>8.2} ms",
            latencies.len(),
            percentile(latencies.clone(), 0.5),
            percentile(latencies, 0.99)
        );
    }
    let cheap: Vec<Duration> = cheap.lock().unwrap().iter().map(|(_, d)| *d).collect();
    println!(
        "  GetMastery beside it: {} calls, p50 {:.2} ms, p99 {:.2} ms",
        cheap.len(),
        percentile(cheap.clone(), 0.5),
        percentile(cheap, 0.99)
    );
    println!(
        "server RSS: {:.1} MiB before, {:.1} MiB peak sampled, {:.1} MiB VmHWM",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        proc_kib(pid, "VmHWM:") as f64 / 1024.0
    );
}
