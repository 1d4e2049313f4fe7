//! Scale: does the server's memory stay within `--memory-mb` as the store
//! grows, and what does each stored attempt cost?
//!
//! Runs the real `spoc serve` binary (so the memory figures are the
//! server's alone) and grows its store in steps: per step, new learners,
//! then attempts in batches of 500 (8 callers), then a paced load of
//! GetMastery and RecommendNext (1,000 calls/s each, latency counted from
//! when each call was due), then, at some steps, a restart. Printed per
//! step: stored attempts, learners, server RSS (now, high-water mark, and
//! just after the restart, before any call), bytes on disk per attempt,
//! batched ingest rate, p50/p99 of both calls, restart time to healthy
//! from the spawn, and apart the graceful stop before it, which writes
//! sled's snapshot (`-` where the step did not restart).
//!
//! Restarts (`--restart-every K`): by default the server restarts after
//! the first step and after the last only, as the outside check that filed
//! issue 20 did: one server then ingests the whole store, so RSS and HWM
//! include what builds up over hours of ingestion (a restart empties the
//! caches and the allocator's free pages, and flatters memory). `K` > 0
//! restarts after every K-th step and after the last (`1`: after every
//! step, the bench's shape before); `0` after the last step only. The last
//! step always restarts, to time the restart on the whole store. At the end: FitModel on the whole store (with batched ingestion
//! going on beside it) and FormCohorts for a program of up to 20,000
//! learners.
//!
//! ```text
//! cargo bench --bench scale                          # 10M attempts, 200k learners, steps of 1M
//! cargo bench --bench scale -- --attempts 2000000 --step 500000
//! cargo bench --bench scale -- --memory-mb 512 --paced-seconds 5 --fit 0
//! cargo bench --bench scale -- --attempts 4000000 --restart-every 1
//! ```
//!
//! `SPOC_BENCH_MEM=1` adds, per step, where the server's resident memory
//! is (`/proc/<pid>/smaps_rollup`: anonymous and file-backed).
//!
//! Learners grow with attempts (50 attempts each, 30 skills, one skill per
//! attempt): 10M attempts make 200k learners. The generator runs on the
//! same machine and shares its cores with the server.

// Benches unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{AuthChannel, arg, paced};
use spoc_engine::api::auth::BearerKey;
use spoc_engine::api::pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Skills of the catalog (one module teaches each).
const SKILLS: u64 = 30;
/// Attempts per learner: learners grow with the store.
const ATTEMPTS_PER_LEARNER: u64 = 50;
/// Attempts per RecordAttempts call.
const BATCH: u64 = 500;
/// Concurrent ingestion callers.
const INGEST_CALLERS: u64 = 8;
/// Learners enrolled in the program formed into cohorts.
const PROGRAM_LEARNERS: u64 = 20_000;
/// Connections of the generator.
const CONNECTIONS: usize = 8;

/// When the server restarts between steps (`--restart-every`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restarts {
    /// After the first step and the last (the default: one long-running
    /// server, like the outside check).
    FirstAndLast,
    /// After every K-th step and the last; 0: after the last only.
    Every(u64),
}

impl Restarts {
    /// From `--restart-every K`, or the default when absent.
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        match args.iter().position(|a| a == "--restart-every") {
            None => Self::FirstAndLast,
            Some(i) => Self::Every(
                args.get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .expect("--restart-every takes a number of steps (0: after the last only)"),
            ),
        }
    }

    /// Whether the server restarts after step `step` (1-based) of `steps`.
    fn after(self, step: u64, steps: u64) -> bool {
        step == steps
            || match self {
                Self::FirstAndLast => step == 1,
                Self::Every(k) => k > 0 && step % k == 0,
            }
    }

    /// How the header names the shape.
    fn describe(self) -> String {
        match self {
            Self::FirstAndLast => "restart after the first step and the last".into(),
            Self::Every(0) => "restart after the last step only".into(),
            Self::Every(1) => "restart after every step".into(),
            Self::Every(k) => format!("restart after every {k} steps and the last"),
        }
    }
}

/// The server process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, memory_mb: u64) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = common::spoc_serve(port, dir)
            .args(["--memory-mb", &memory_mb.to_string()])
            .spawn()
            .expect("spawn spoc serve");
        Self { child, port }
    }

    /// Connects once the server answers its health check as SERVING.
    async fn channels(&self, dir: &Path) -> Vec<AuthChannel> {
        let mut raw = Vec::new();
        while raw.len() < CONNECTIONS {
            match Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
                .unwrap()
                .connect()
                .await
            {
                Ok(c) => raw.push(c),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        let mut health = tonic_health::pb::health_client::HealthClient::new(raw[0].clone());
        loop {
            let serving = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == 1);
            if serving {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let key = std::fs::read_to_string(dir.join("admin-key")).expect("admin-key");
        let bearer = BearerKey::new(key.trim()).expect("key fits a header");
        raw.into_iter()
            .map(|c| InterceptedService::new(c, bearer.clone()))
            .collect()
    }

    /// A field of `/proc/<pid>/status` in MiB (VmRSS, VmHWM).
    fn mib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    /// Resident memory by kind, from `/proc/<pid>/smaps_rollup`, in MiB:
    /// `Rss`, `Anonymous` (heap: allocator, caches, sled's pages) and
    /// what is file-backed (the binary, sled's files mapped by the kernel).
    fn smaps(&self) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib / 1024.0)
        };
        let (rss, anon) = (field("Rss:"), field("Anonymous:"));
        format!(
            "Rss {rss:.0} MiB: anonymous {anon:.0}, file-backed {:.0}",
            rss - anon
        )
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn learner(n: u64) -> String {
    format!("learner-{n:07}")
}

async fn setup_catalog(channels: &[AuthChannel]) {
    let mut catalog = pb::catalog_service_client::CatalogServiceClient::new(channels[0].clone());
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            items: vec![],
            skills: (0..SKILLS)
                .map(|s| pb::Skill {
                    id: format!("s{s:02}"),
                    name: format!("Skill {s}"),
                    prerequisite_ids: if s == 0 {
                        vec![]
                    } else {
                        vec![format!("s{:02}", s - 1)]
                    },
                })
                .collect(),
            modules: (0..SKILLS)
                .map(|s| pb::Module {
                    external_ids: vec![],
                    id: format!("m{s:02}"),
                    title: format!("Module {s}"),
                    skill_ids: vec![format!("s{s:02}")],
                    format: 1 + (s % 3) as i32,
                    duration_minutes: 10 + (s as u32 % 4) * 5,
                    language: "fr".into(),
                })
                .collect(),
        })
        .await
        .unwrap();
    let mut programs = pb::program_service_client::ProgramServiceClient::new(channels[0].clone());
    programs
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "p".into(),
                name: "Program".into(),
                skill_ids: (0..SKILLS).map(|s| format!("s{s:02}")).collect(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

/// Creates learners `from..to` (64 callers), enrolling those below
/// [`PROGRAM_LEARNERS`] in the program.
async fn add_learners(channels: &[AuthChannel], from: u64, to: u64) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(from));
    let tasks: Vec<_> = (0..64)
        .map(|c| {
            let mut learners = pb::learner_service_client::LearnerServiceClient::new(
                channels[c % channels.len()].clone(),
            );
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= to {
                        break;
                    }
                    learners
                        .upsert_learner(pb::UpsertLearnerRequest {
                            learner: Some(pb::Learner {
                                id: learner(n),
                                company_id: format!("company-{}", n % 40),
                                language: "fr".into(),
                                time_zone: "Europe/Paris".into(),
                                display_name: String::new(),
                            }),
                        })
                        .await
                        .unwrap();
                    if n < PROGRAM_LEARNERS {
                        learners
                            .enroll_learner(pb::EnrollLearnerRequest {
                                learner_id: learner(n),
                                program_id: "p".into(),
                                enrolled_at: None,
                            })
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Attempt `n` of the store: learner `n / ATTEMPTS_PER_LEARNER`, one skill,
/// times increasing per learner.
fn attempt(n: u64) -> pb::Attempt {
    let l = n / ATTEMPTS_PER_LEARNER;
    let k = n % ATTEMPTS_PER_LEARNER;
    pb::Attempt {
        attempt_id: format!("a{n:09}"),
        learner_id: learner(l),
        item_id: format!("item-{}", n % 600),
        skill_ids: vec![format!("s{:02}", (l + k) % SKILLS)],
        correct: (n * 7919) % 10 < 6 + k * 3 / ATTEMPTS_PER_LEARNER,
        score: None,
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_750_000_000 + (l % 1000) as i64 * 60 + k as i64 * 3_600,
            nanos: 0,
        }),
        time_spent: None,
    }
}

/// Sends attempts `from..to` in batches with [`INGEST_CALLERS`] callers;
/// returns attempts per second. Attempts go in store order: a batch of
/// 500 holds 10 learners' 50 consecutive attempts each (a learner's whole
/// history in one call, so each learner's block and mastery record are
/// written about once; live learners answering one attempt at a time
/// rewrite them more often).
async fn ingest(channels: &[AuthChannel], from: u64, to: u64) -> f64 {
    let start = Instant::now();
    let batches = (to - from).div_ceil(BATCH);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..INGEST_CALLERS)
        .map(|c| {
            let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(
                channels[c as usize % channels.len()].clone(),
            );
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if b >= batches {
                        break;
                    }
                    let first = from + b * BATCH;
                    let attempts = (first..(first + BATCH).min(to)).map(attempt).collect();
                    let request = pb::RecordAttemptsRequest { attempts };
                    // UNAVAILABLE means "retry later": retried, never dropped.
                    while let Err(status) = mastery.record_attempts(request.clone()).await {
                        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (to - from) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let total = arg("--attempts", 10_000_000);
    let step = arg("--step", 1_000_000);
    let memory_mb = arg("--memory-mb", 512);
    let paced_seconds = arg("--paced-seconds", 5);
    let rate = arg("--rate", 1_000);
    let fit = arg("--fit", 1) == 1;
    let restarts = Restarts::from_args();
    let smaps = std::env::var("SPOC_BENCH_MEM").is_ok_and(|v| v == "1");
    let steps = total.div_ceil(step);
    let dir = match std::env::var("SPOC_SCALE_DIR") {
        Ok(path) => {
            std::fs::create_dir_all(&path).unwrap();
            tempfile::tempdir_in(path).unwrap()
        }
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let data = dir.path().join("data");

    let mut server = Server::start(&data, memory_mb);
    let mut channels = server.channels(&data).await;
    setup_catalog(&channels).await;
    println!(
        "scale: {total} attempts in steps of {step}, {} learners, {SKILLS} skills, batches of {BATCH} ({INGEST_CALLERS} callers), --memory-mb {memory_mb}, paced {rate}/s x {paced_seconds} s, {}",
        total / ATTEMPTS_PER_LEARNER,
        restarts.describe()
    );
    println!(
        "{:>11} {:>9} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "attempts",
        "learners",
        "RSS MiB",
        "HWM MiB",
        "restarted",
        "B/attempt",
        "ingest/s",
        "GM p50",
        "GM p99",
        "RN p50",
        "RN p99",
        "restart s",
        "stop s"
    );
    let mut done = 0;
    while done < total {
        let to = (done + step).min(total);
        let learners_to = to.div_ceil(ATTEMPTS_PER_LEARNER);
        add_learners(&channels, done.div_ceil(ATTEMPTS_PER_LEARNER), learners_to).await;
        let ingest_rate = ingest(&channels, done, to).await;
        done = to;

        let get_mastery = {
            let channels = channels.clone();
            paced(4, rate / 4, paced_seconds, move |c, i| {
                let mut client = pb::mastery_service_client::MasteryServiceClient::new(
                    channels[c % channels.len()].clone(),
                );
                let l = (i as u64 * 7_919 + c as u64 * 104_729) % learners_to;
                async move {
                    client
                        .get_mastery(pb::GetMasteryRequest {
                            learner_id: learner(l),
                            skill_ids: vec![],
                        })
                        .await
                        .unwrap();
                }
            })
        };
        let recommend = {
            let channels = channels.clone();
            let enrolled = learners_to.min(PROGRAM_LEARNERS);
            paced(4, rate / 4, paced_seconds, move |c, i| {
                let mut client = pb::remediation_service_client::RemediationServiceClient::new(
                    channels[(c + 4) % channels.len()].clone(),
                );
                let l = (i as u64 * 6_007 + c as u64 * 7_727) % enrolled;
                async move {
                    client
                        .recommend_next(pb::RecommendNextRequest {
                            learner_id: learner(l),
                            program_id: "p".into(),
                            count: 3,
                            exclude_module_ids: vec![],
                        })
                        .await
                        .unwrap();
                }
            })
        };
        let (gm, rn) = tokio::join!(get_mastery, recommend);
        let rss = server.mib("VmRSS:");
        let hwm = server.mib("VmHWM:");
        let memory = smaps.then(|| server.smaps());

        // Restart: a graceful stop (the checkpoint puts everything in
        // sled), then the time from spawn to SERVING.
        let step_number = done.div_ceil(step);
        let (bytes, restarted) = if restarts.after(step_number, steps) {
            // The stop writes sled's snapshot (`store::page_table`): timed
            // apart, so that the start is not credited with its work.
            let stopping = Instant::now();
            server.stop();
            let stop = stopping.elapsed().as_secs_f64();
            let bytes = disk_bytes(&data);
            let started = Instant::now();
            server = Server::start(&data, memory_mb);
            channels = server.channels(&data).await;
            let restart = started.elapsed().as_secs_f64();
            // What the restarted server holds before any call: sled's page
            // table and the engine's start state, without the caches.
            (bytes, Some((server.mib("VmRSS:"), restart, stop)))
        } else {
            // The folder as the running server left it: sled's log and
            // the write-ahead log since the last checkpoint included.
            (disk_bytes(&data), None)
        };
        let (rss_restarted, restart, stop) = restarted.map_or(
            ("-".to_string(), "-".to_string(), "-".to_string()),
            |(r, s, t)| (format!("{r:.0}"), format!("{s:.2}"), format!("{t:.2}")),
        );
        println!(
            "{:>11} {:>9} {:>8.0} {:>8.0} {:>8} {:>9.0} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>9}",
            done,
            learners_to,
            rss,
            hwm,
            rss_restarted,
            bytes as f64 / done as f64,
            ingest_rate,
            gm.ms(0.50),
            gm.ms(0.99),
            rn.ms(0.50),
            rn.ms(0.99),
            restart,
            stop
        );
        if let Some(memory) = memory {
            println!("{:>11} {memory}", "");
        }
    }

    if fit {
        // FitModel on the whole store while batches keep coming in.
        let mut model = pb::mastery_service_client::MasteryServiceClient::new(channels[0].clone());
        let side_learners = total.div_ceil(ATTEMPTS_PER_LEARNER);
        add_learners(
            &channels,
            side_learners,
            side_learners + 200_000 / ATTEMPTS_PER_LEARNER,
        )
        .await;
        let side = {
            let channels = channels[1..].to_vec();
            tokio::spawn(async move { ingest(&channels, total, total + 200_000).await })
        };
        let started = Instant::now();
        model
            .fit_model(pb::FitModelRequest {
                folds: 1,
                restarts: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        // The job runs in the background: wait until it is over (fit, then
        // every learner's mastery recomputed and durable).
        let finished = loop {
            let model = model
                .get_model(pb::GetModelRequest {})
                .await
                .unwrap()
                .into_inner();
            if model.fit_state != pb::FitState::Running as i32 {
                break model;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let job_seconds = started.elapsed().as_secs_f64();
        let side_rate = side.await.unwrap();
        println!(
            "FitModel on {total} attempts: job {job_seconds:.1} s, of which the fit {:.1} s ({} attempts, state {}, {}); batched ingestion beside it: {side_rate:.0} attempts/s; server HWM {:.0} MiB",
            finished.fit_seconds,
            finished.attempts,
            finished.fit_state,
            finished.error,
            server.mib("VmHWM:")
        );
    }
    let mut cohorts = pb::cohort_service_client::CohortServiceClient::new(channels[0].clone());
    let started = Instant::now();
    let formed = cohorts
        .form_cohorts(pb::FormCohortsRequest {
            program_id: "p".into(),
            seed: 1,
            dry_run: true,
            ..Default::default()
        })
        .await;
    println!(
        "FormCohorts of {} learners: {:.2} s ({}); server RSS {:.0} MiB, HWM {:.0} MiB",
        PROGRAM_LEARNERS.min(total.div_ceil(ATTEMPTS_PER_LEARNER)),
        started.elapsed().as_secs_f64(),
        formed.map_or_else(|e| format!("{:?}", e.code()), |_| "ok".into()),
        server.mib("VmRSS:"),
        server.mib("VmHWM:")
    );
    server.stop();

    // Where the bytes go, read from the stopped server's folder.
    let (trees, sled_bytes) = spoc_engine::store::footprint::footprint(&data).expect("footprint");
    let attempts = (total + if fit { 200_000 } else { 0 }) as f64;
    println!(
        "on disk: {:.0} bytes per attempt in sled ({} MiB); live keys and values per tree:",
        sled_bytes as f64 / attempts,
        sled_bytes / (1024 * 1024)
    );
    for t in trees.iter().take(8) {
        println!(
            "  {:<18} {:>10} entries  keys {:>6.1} B/attempt  values {:>6.1} B/attempt",
            t.name,
            t.entries,
            t.key_bytes as f64 / attempts,
            t.value_bytes as f64 / attempts
        );
    }
    // SPOC_SCALE_KEEP=1: the folder stays, to look at a grown store
    // (restart it with `spoc serve --data-dir`, `spoc verify` it).
    if std::env::var("SPOC_SCALE_KEEP").is_ok_and(|v| v == "1") {
        println!("data folder kept: {}", dir.keep().join("data").display());
    }
}
