//! What every gRPC bench shares: an in-process server on loopback (the same
//! stack `spoc serve` runs), connections, command-line options and figures.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use spoc_engine::api::auth::BearerKey;
use spoc_engine::api::pb;
use spoc_engine::api::pb::mastery_service_server::MasteryService;
use spoc_engine::engine::params::ParamSet;
use spoc_engine::engine::{Engine, EngineConfig};
use spoc_engine::store::Store;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A connection whose calls carry the server's admin key.
pub type AuthChannel = InterceptedService<Channel, BearerKey>;

/// A server on 127.0.0.1 with sled in a temporary folder.
pub struct BenchServer {
    /// The engine behind the server, for in-process comparisons.
    pub engine: Arc<Engine>,
    /// Open connections to it; every call sends the admin key (the key
    /// check is part of what a bench measures).
    pub channels: Vec<AuthChannel>,
    /// The admin key the channels send.
    pub admin_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _temp: tempfile::TempDir,
}

impl BenchServer {
    /// Starts the server and opens `connections` HTTP/2 connections.
    pub async fn start(connections: usize) -> Self {
        Self::start_with_mastery(connections, |engine| {
            spoc_engine::api::mastery::MasteryApi::new(engine.clone())
        })
        .await
    }

    /// [`BenchServer::start`], with the MasteryService `mastery` makes
    /// from the engine in place of the engine's own (see
    /// `spoc_engine::server::serve_with_mastery`).
    pub async fn start_with_mastery<M: MasteryService>(
        connections: usize,
        mastery: impl FnOnce(&Arc<Engine>) -> M,
    ) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        let config = EngineConfig {
            mastery_threshold: 0.95,
            params: ParamSet::load(None).unwrap(),
        };
        let engine = Arc::new(Engine::new(store, config).unwrap());
        engine.bootstrap_admin_key(temp.path()).unwrap();
        let admin_key = std::fs::read_to_string(temp.path().join("admin-key"))
            .unwrap()
            .trim()
            .to_string();
        let bearer = BearerKey::new(&admin_key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = engine.clone();
        let mastery = mastery(&engine);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            spoc_engine::server::serve_with_mastery(
                served,
                listener,
                shutdown,
                spoc_engine::server::ServeOptions::default(),
                mastery,
            )
            .await
            .unwrap();
        });
        let endpoint = format!("http://{addr}");
        let mut channels = Vec::new();
        while channels.len() < connections {
            match Channel::from_shared(endpoint.clone())
                .unwrap()
                .connect()
                .await
            {
                Ok(c) => channels.push(InterceptedService::new(c, bearer.clone())),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        Self {
            engine,
            channels,
            admin_key,
            stop: Some(stop),
            task,
            _temp: temp,
        }
    }

    /// Imports [`skills`]`(count)` and the program `bench` over them, then
    /// upserts `names` as learners of company `acme` and enrols them in
    /// `bench`, 64 callers at a time.
    pub async fn seed_program(&self, count: usize, names: &Arc<Vec<String>>) {
        let channels = &self.channels;
        pb::catalog_service_client::CatalogServiceClient::new(channels[0].clone())
            .import_catalog(pb::ImportCatalogRequest {
                skills: skills(count),
                modules: vec![],
                items: vec![],
            })
            .await
            .unwrap();
        pb::program_service_client::ProgramServiceClient::new(channels[0].clone())
            .upsert_program(pb::UpsertProgramRequest {
                program: Some(pb::Program {
                    id: "bench".into(),
                    name: "Bench".into(),
                    skill_ids: (0..count).map(|s| format!("skill-{s}")).collect(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|c| {
                let names = names.clone();
                let channel = channels[c % channels.len()].clone();
                tokio::spawn(async move {
                    let mut client = pb::learner_service_client::LearnerServiceClient::new(channel);
                    for id in names.iter().skip(c).step_by(64) {
                        client
                            .upsert_learner(pb::UpsertLearnerRequest {
                                learner: Some(learner(id.clone(), "acme".into())),
                            })
                            .await
                            .unwrap();
                        client
                            .enroll_learner(pb::EnrollLearnerRequest {
                                enrolled_at: None,
                                learner_id: id.clone(),
                                program_id: "bench".into(),
                            })
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// The skills `skill-0` to `skill-{n-1}`, without prerequisites.
pub fn skills(n: usize) -> Vec<pb::Skill> {
    (0..n)
        .map(|s| pb::Skill {
            id: format!("skill-{s}"),
            name: format!("Skill {s}"),
            prerequisite_ids: vec![],
        })
        .collect()
}

/// The wall clock in Unix seconds, to date live answers: the alert rules
/// take answers older than 15 minutes as a bulk load (evaluated once it
/// ends) and raise nothing for answers older than 7 days.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// An answer of `learner` to `item` on one skill at `seconds` (Unix time),
/// with no score and no time spent.
pub fn attempt(
    id: String,
    learner: String,
    item: String,
    skill: String,
    correct: bool,
    seconds: i64,
) -> pb::Attempt {
    pb::Attempt {
        attempt_id: id,
        learner_id: learner,
        item_id: item,
        skill_ids: vec![skill],
        correct,
        score: None,
        occurred_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        time_spent: None,
    }
}

/// A French-speaking learner in Paris's time zone.
pub fn learner(id: String, company: String) -> pb::Learner {
    pb::Learner {
        id,
        company_id: company,
        language: "fr".into(),
        time_zone: "Europe/Paris".into(),
        display_name: String::new(),
    }
}

/// `spoc serve` as a child process on `port` (HTTP on any free port), its
/// data in `dir`, logging at `SPOC_BENCH_LOG` (default `error`) to this
/// bench's stderr: add the bench's own flags, then spawn.
pub fn spoc_serve(port: u16, dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .env(
            "RUST_LOG",
            std::env::var("SPOC_BENCH_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    command
}

/// A numeric option `--name N` from the command line.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latencies of a run, sorted, with its duration.
pub struct Figures {
    /// Every call's latency, sorted.
    pub latencies: Vec<Duration>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// CPU time the whole process (clients, server, background threads)
    /// used during the run, when known.
    pub cpu: Option<Duration>,
    /// Of `cpu`, what each of the store's background threads used
    /// ([`BACKGROUND_THREADS`], in that order), when known: the work a
    /// call leaves behind is paid there, not in the call's task.
    pub background: Option<[Duration; 2]>,
}

/// The store's background threads, by name: the checkpoint thread applies
/// ingested rows to sled, the log thread writes and syncs the write-ahead
/// log.
pub const BACKGROUND_THREADS: [&str; 2] = ["spoc-checkpoint", "spoc-wal-sync"];

impl Figures {
    /// Sorts the latencies.
    pub fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        Self {
            latencies,
            elapsed,
            cpu: None,
            background: None,
        }
    }

    /// One run made of `slices`: their calls, wall times and CPU times
    /// added up.
    pub fn merge(slices: Vec<Figures>) -> Self {
        let elapsed = slices.iter().map(|f| f.elapsed).sum();
        let cpu = slices.iter().map(|f| f.cpu).sum();
        let background = slices
            .iter()
            .map(|f| f.background)
            .try_fold([Duration::ZERO; 2], |sum, b| {
                b.map(|b| [sum[0] + b[0], sum[1] + b[1]])
            });
        let latencies = slices.into_iter().flat_map(|f| f.latencies).collect();
        let mut merged = Self::new(latencies, elapsed);
        merged.cpu = cpu;
        merged.background = background;
        merged
    }

    /// CPU microseconds per call of each background thread (see
    /// [`BACKGROUND_THREADS`]).
    pub fn background_us_per_call(&self) -> Option<[f64; 2]> {
        let calls = self.latencies.len().max(1) as f64;
        self.background
            .map(|b| b.map(|cpu| cpu.as_secs_f64() * 1e6 / calls))
    }

    /// CPU microseconds per call, client side included: steadier than the
    /// call rate on a shared machine, whose speed drifts between runs.
    pub fn cpu_us_per_call(&self) -> Option<f64> {
        let calls = self.latencies.len().max(1) as f64;
        self.cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / calls)
    }

    /// Cores kept busy on average; below the core count, calls spent time
    /// waiting (for the disk, or a lock) rather than computing.
    pub fn busy_cores(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The slowest call, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.latencies.last().map_or(0.0, |l| l.as_secs_f64() * 1e3)
    }

    /// The `p` quantile, in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// Runs `clients` closed-loop callers for `seconds`; `call(client, i)` makes
/// one call.
pub async fn closed_loop<F, Fut>(clients: usize, seconds: u64, call: F) -> Figures
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let cpu_before = process_cpu();
    let background_before = background_cpu();
    let start = Instant::now();
    let latencies = callers(clients, seconds, None, call).await;
    let mut figures = Figures::new(latencies, start.elapsed());
    figures.cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    figures.background = background_cpu()
        .zip(background_before)
        .map(|(after, before)| [0, 1].map(|k| after[k].saturating_sub(before[k])));
    figures
}

/// `n` callers making `per_second` calls each, evenly paced, for
/// `seconds`: latency under someone else's load, without adding much load
/// (a closed loop beside a saturated server would take as much CPU as it
/// is given, and change what it measures). Only latencies are recorded,
/// each from when its call was due, not when it went out: a call held up
/// by a stall counts the stall (no coordinated omission), and the calls
/// due meanwhile go out at once after it.
pub async fn paced<F, Fut>(n: usize, per_second: u64, seconds: u64, call: F) -> Figures
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let period = Duration::from_secs(1) / per_second as u32;
    let latencies = callers(n, seconds, Some(period), call).await;
    Figures::new(latencies, start.elapsed())
}

/// Runs `n` callers of `call(caller, i)` for `seconds` and returns every
/// call's latency: back to back (`period` `None`), or one call due every
/// `period`, its latency counted from when it was due.
async fn callers<F, Fut>(n: usize, seconds: u64, period: Option<Duration>, call: F) -> Vec<Duration>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..n)
        .map(|c| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut tick = period.map(|period| {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    tick
                });
                let mut latencies = Vec::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let due = match &mut tick {
                        Some(tick) => tick.tick().await.into_std(),
                        None => Instant::now(),
                    };
                    call(c, i).await;
                    latencies.push(due.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Two kinds of calls measured in alternating one-second slices, `rounds`
/// of each, in the order a b, b a, a b... (so that a steady drift weighs
/// on both alike); `a(round, client, i)` and `b(round, client, i)` make one
/// call. On a shared machine whose speed drifts by tens of percent within
/// a minute, the ratio of two rates measured one after the other mostly
/// measures the drift; alternating puts both under the same conditions.
/// After every slice, outside the measured time, `between` runs (flush
/// what the slice left to background threads, so that it is billed to
/// neither side), then a `pause` lets the rest settle.
pub async fn alternate<FA, FutA, FB, FutB>(
    clients: usize,
    rounds: usize,
    pause: Duration,
    between: impl Fn(),
    a: FA,
    b: FB,
) -> (Figures, Figures)
where
    FA: Fn(usize, usize, usize) -> FutA + Send + Sync + 'static,
    FutA: std::future::Future<Output = ()> + Send,
    FB: Fn(usize, usize, usize) -> FutB + Send + Sync + 'static,
    FutB: std::future::Future<Output = ()> + Send,
{
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (mut a_slices, mut b_slices) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for a_turn in [round % 2 == 0, round % 2 != 0] {
            tokio::time::sleep(pause).await;
            if a_turn {
                let call = a.clone();
                a_slices.push(closed_loop(clients, 1, move |c, i| call(round, c, i)).await);
            } else {
                let call = b.clone();
                b_slices.push(closed_loop(clients, 1, move |c, i| call(round, c, i)).await);
            }
            between();
        }
    }
    (Figures::merge(a_slices), Figures::merge(b_slices))
}

/// CPU time (user + system) this process used so far, from
/// `/proc/self/stat` in clock ticks of 10 ms (Linux's USER_HZ); `None`
/// where that file does not exist.
pub fn process_cpu() -> Option<Duration> {
    cpu_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User + system CPU time in a `/proc` `stat` line (process or thread).
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is field 3, utime 14, stime 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time used so far by the threads of each name in
/// [`BACKGROUND_THREADS`] (summed over the servers running: each store has
/// its own), from `/proc/self/task/*/stat`; `None` where those files do not
/// exist.
pub fn background_cpu() -> Option<[Duration; 2]> {
    let mut sums = [Duration::ZERO; 2];
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread may end between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .find('(')
            .zip(stat.rfind(')'))
            .map(|(open, close)| &stat[open + 1..close]);
        if let Some(k) = BACKGROUND_THREADS.iter().position(|t| Some(*t) == name) {
            sums[k] += cpu_of_stat(&stat)?;
        }
    }
    Some(sums)
}

/// The bare cost of a gRPC call on this server: `clients` closed-loop
/// callers of the standard health check for `seconds`.
pub async fn health_baseline(channels: &[AuthChannel], clients: usize, seconds: u64) -> Figures {
    let call = health_call(channels);
    closed_loop(clients, seconds, move |c, i| call(0, c, i)).await
}

/// One call of a closed loop, boxed so that every kind of call has the
/// same type (and the same boxing cost).
pub type Call = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A health-check call per `(round, client, i)` over `channels`.
pub fn health_call(
    channels: &[AuthChannel],
) -> impl Fn(usize, usize, usize) -> Call + Send + Sync + 'static {
    let channels = channels.to_vec();
    move |_, c, _| {
        let mut client = tonic_health::pb::health_client::HealthClient::new(
            channels[c % channels.len()].clone(),
        );
        Box::pin(async move {
            client
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .expect("health");
        })
    }
}

/// Peak resident memory of this process, in MB.
pub fn max_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
