//! `spoc demo`: everything the engine does, in one command.
//!
//! Starts the service in-process on a fresh demo data folder, loads a demo
//! world through the public gRPC API as an LMS backend would (a 30-skill,
//! 120-module catalog in two languages, two programs, 600 learners from 12
//! companies, a placement quiz, then a few weeks of quiz answers and module
//! events), forms the cohorts, and prints the cohorts with their balance
//! report, the next modules for three learners with their reasons, the open
//! at-risk alerts and where the HTML reports were written. Then it keeps
//! serving, so that grpcurl and the `spoc` client commands can be tried
//! against it. The alerts are evaluated once the history has arrived
//! (history is not news), within the budget of open alerts per cohort.
//!
//! Module map: [`world`] draws the world (pure), [`load`] sends it through
//! gRPC, [`print`] renders the outcome for people.

pub mod load;
pub mod print;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::client::{BoxError, ClientArgs, Service, describe};
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::engine::params::ParamSet;
use crate::engine::{DEFAULT_MASTERY_THRESHOLD, Engine, EngineConfig};
use crate::offload;
use crate::store::Store;
use world::{DemoOptions, DemoWorld, Persona};

/// File that marks a folder as a demo's own, so that the next run may wipe
/// it; a folder holding anything else is never touched.
pub const MARKER: &str = ".spoc-demo";

/// File the demo writes its summary to (the JSON of `--format json`).
pub const SUMMARY_FILE: &str = "demo-summary.json";

/// Longer than the alert evaluator's cache of cohort members (1 s).
pub const COHORT_MAP_SETTLE: std::time::Duration = std::time::Duration::from_millis(1100);

/// Open alerts shown in the table (all are counted).
pub const ALERTS_SHOWN: usize = 10;

/// Options of `spoc demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Demo data folder: created, or wiped if a previous demo left it;
    /// a folder holding anything else is refused.
    #[arg(long, default_value = "./spoc-demo")]
    pub data_dir: PathBuf,
    /// Address the demo service listens on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Address of the HTTP listener (the web console, xAPI, JSON); when it
    /// is taken, any free port (the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Seed of the demo world: the same seed gives the same learners.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print, stop the service and exit instead of serving (tests, CI).
    #[arg(long)]
    pub no_serve: bool,
    /// Number of learners (scale it down for quick runs).
    #[arg(long, default_value_t = 600)]
    pub learners: usize,
    /// Weeks of history before now.
    #[arg(long, default_value_t = 4)]
    pub weeks: u32,
    /// Readable sections for people, or the summary as JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// What was loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    /// Skills in the catalog.
    pub skills: usize,
    /// Modules in the catalog.
    pub modules: usize,
    /// Questions in the catalog's item bank.
    pub items: usize,
    /// Module formats present.
    pub formats: usize,
    /// Primary language subtags of the modules.
    pub languages: Vec<String>,
    /// Programs.
    pub programs: usize,
    /// Companies.
    pub companies: usize,
    /// Learners (each enrolled in one program).
    pub learners: usize,
    /// Quiz answers recorded (placement included).
    pub attempts: usize,
    /// Module events recorded.
    pub module_events: usize,
    /// Weeks of history.
    pub weeks: u32,
    /// Seconds the load through gRPC took (catalog to last answer).
    pub load_seconds: f64,
}

/// One program and its cohorts.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramSummary {
    /// Program id.
    pub id: String,
    /// Program name.
    pub name: String,
    /// Learners enrolled.
    pub learners: usize,
    /// Calendar, RFC 3339.
    pub start: String,
    /// Calendar end, RFC 3339.
    pub end: String,
    /// The FormCohorts reply (cohorts and balance report), as JSON.
    pub formation: serde_json::Value,
    /// The reply itself, for printing.
    #[serde(skip)]
    pub response: pb::FormCohortsResponse,
}

/// One recommendation: a module, or questions of the bank.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendedModule {
    /// `module` or `diagnostic` (questions, not teaching).
    pub kind: &'static str,
    /// Module id (empty for questions).
    pub module_id: String,
    /// The questions to ask (diagnostic only).
    pub item_ids: Vec<String>,
    /// Module title, or what the questions are for.
    pub title: String,
    /// Format name.
    pub format: String,
    /// Duration in minutes.
    pub minutes: u32,
    /// Skill targeted.
    pub skill_id: String,
    /// Current P(mastered) of that skill.
    pub p_mastered: f64,
    /// Why, in words.
    pub reason: String,
}

/// The next modules for one learner.
#[derive(Debug, Clone, Serialize)]
pub struct LearnerRecommendations {
    /// Learner id.
    pub learner_id: String,
    /// Display name.
    pub display_name: String,
    /// Company name.
    pub company: String,
    /// Language tag.
    pub language: String,
    /// Time zone.
    pub time_zone: String,
    /// Program id.
    pub program_id: String,
    /// Why this learner was picked.
    pub profile: String,
    /// Program skills mastered now.
    pub mastered: usize,
    /// Program skills.
    pub skills: usize,
    /// Open alerts of the learner, as reasons.
    pub alerts: Vec<String>,
    /// The modules (or bank questions to answer), best first.
    pub modules: Vec<RecommendedModule>,
}

/// The open alerts.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsSummary {
    /// Open alerts in total.
    pub open: usize,
    /// Learners with at least one open alert.
    pub learners: usize,
    /// Open alerts per kind.
    pub by_kind: BTreeMap<String, usize>,
    /// Open alerts per severity.
    pub by_severity: BTreeMap<String, usize>,
    /// The budget: open alerts allowed per 25 learners of a cohort.
    pub budget_per_25: u32,
    /// Drafts waiting for room (the digest), over both programs.
    pub digest: usize,
    /// The most urgent ones, as JSON.
    pub shown: Vec<serde_json::Value>,
    /// The same, for printing.
    #[serde(skip)]
    pub shown_alerts: Vec<pb::Alert>,
}

/// One report file.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFile {
    /// Program id.
    pub program_id: String,
    /// Where the HTML was written.
    pub path: String,
    /// Learners in the report.
    pub learners: u32,
    /// Of which completed the program (`domain::completion`).
    pub completed: u32,
    /// Certified learners.
    pub certified: usize,
}

/// Everything the demo shows, also written to `DATA_DIR/demo-summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// Where the service listens.
    pub address: String,
    /// The data folder.
    pub data_dir: String,
    /// The admin key file, when the service wrote one.
    pub key_file: Option<String>,
    /// What was loaded.
    pub loaded: Loaded,
    /// Programs and cohorts.
    pub programs: Vec<ProgramSummary>,
    /// Three learners' next modules.
    pub recommendations: Vec<LearnerRecommendations>,
    /// Open at-risk alerts.
    pub alerts: AlertsSummary,
    /// HTML reports written.
    pub reports: Vec<ReportFile>,
    /// The web console and keys to sign in with.
    pub console: Option<ConsoleAccess>,
}

/// Where the web console is and keys to sign in with, made for the demo.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleAccess {
    /// The console's address.
    pub url: String,
    /// A trainer key scoped to one cohort.
    pub trainer_key: String,
    /// That cohort.
    pub trainer_cohort: String,
    /// A manager key.
    pub manager_key: String,
}

/// Runs `spoc demo`.
pub fn run(args: DemoArgs) -> Result<(), BoxError> {
    if args.learners < 100 {
        return Err(
            "--learners must be at least 100 (cohorts need 15 learners per language and program)"
                .into(),
        );
    }
    if !(1..=26).contains(&args.weeks) {
        return Err("--weeks must be in 1..=26".into());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(args))
}

/// Prepares the folder, serves, loads, shows, then serves on or stops.
async fn demo(args: DemoArgs) -> Result<(), BoxError> {
    prepare_data_dir(&args.data_dir)?;
    let store = Store::open(&args.data_dir)?;
    let engine = Arc::new(Engine::new(
        store,
        EngineConfig {
            mastery_threshold: DEFAULT_MASTERY_THRESHOLD,
            params: ParamSet::load(None)?,
        },
    )?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e} (is a service already running there? try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let address = listener.local_addr()?;
    // The demo folder is fresh, so this writes its first admin key.
    engine.bootstrap_admin_key(&args.data_dir)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    let http_listener = match tokio::net::TcpListener::bind(args.http_listen).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind((args.http_listen.ip(), 0)).await?,
    };
    let http_address = http_listener.local_addr()?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(crate::http::serve(engine.clone(), http_listener, async {
        let _ = http_stopped.await;
    }));
    let key_path = args.data_dir.join(crate::engine::access::ADMIN_KEY_FILE);
    let key = std::fs::read_to_string(&key_path)
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());

    let outcome = match show(&args, &engine, address, key.clone(), &key_path).await {
        Ok(summary) => console_access(&engine, http_address, summary).await,
        Err(err) => Err(err),
    };
    let summary = match outcome {
        Ok(summary) => summary,
        Err(err) => {
            let _ = stop.send(());
            let _ = http_stop.send(());
            let _ = server.await;
            let _ = http.await;
            return Err(err);
        }
    };
    let json = serde_json::to_value(&summary)?;
    std::fs::write(
        args.data_dir.join(SUMMARY_FILE),
        serde_json::to_string_pretty(&json)?,
    )?;
    match args.format {
        OutputFormat::Json => output::print_json(&json),
        OutputFormat::Table => output::write_out(&print::render(&summary)),
    }
    if !args.no_serve {
        if args.format == OutputFormat::Table {
            output::write_out(&print::serving(&summary));
        } else {
            eprintln!("serving on {address}; Ctrl-C to stop");
        }
        super::serve::shutdown_signal().await;
        eprintln!("stopping: finishing in-flight calls, flushing the store");
    }
    let _ = stop.send(());
    let _ = http_stop.send(());
    server
        .await
        .map_err(|e| format!("demo server task failed: {e}"))??;
    http.await
        .map_err(|e| format!("demo HTTP task failed: {e}"))??;
    Ok(())
}

/// Adds the web console's address to `summary`, with a trainer key for the
/// first cohort formed and a manager key to sign in with.
async fn console_access(
    engine: &Engine,
    http: SocketAddr,
    mut summary: DemoSummary,
) -> Result<DemoSummary, BoxError> {
    use crate::domain::access::{Role, Scope};
    let cohort = summary
        .programs
        .iter()
        .flat_map(|p| p.response.cohorts.iter())
        .max_by_key(|c| c.size)
        .map(|c| c.id.clone());
    let Some(cohort) = cohort else {
        return Ok(summary);
    };
    let (_, trainer_key) = engine
        .create_api_key(
            "demo trainer",
            Role::Trainer,
            Scope::Cohorts([cohort.clone()].into()),
        )
        .await?;
    let (_, manager_key) = engine
        .create_api_key("demo manager", Role::Manager, Scope::All)
        .await?;
    summary.console = Some(ConsoleAccess {
        url: format!("http://{http}/console/"),
        trainer_key,
        trainer_cohort: cohort,
        manager_key,
    });
    Ok(summary)
}

/// Makes `dir` an empty demo folder: created when missing, wiped when a
/// previous demo left it, refused when it holds anything else.
pub fn prepare_data_dir(dir: &Path) -> Result<(), BoxError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(format!("--data-dir {} is a file, not a folder", dir.display()).into());
        }
        let not_empty = std::fs::read_dir(dir)?.next().is_some();
        if not_empty {
            if !dir.join(MARKER).is_file() {
                return Err(format!(
                    "{} is not empty and was not written by `spoc demo` (no {MARKER} file): \
                     refusing to wipe it; choose another --data-dir",
                    dir.display()
                )
                .into());
            }
            std::fs::remove_dir_all(dir)
                .map_err(|e| format!("cannot wipe the previous demo in {}: {e}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "written by `spoc demo`: the next demo run wipes this folder\n",
    )?;
    Ok(())
}

/// Loads the world, forms cohorts, evaluates alerts, writes reports and
/// gathers what the demo prints.
async fn show(
    args: &DemoArgs,
    engine: &Arc<Engine>,
    address: SocketAddr,
    key: Option<String>,
    key_path: &Path,
) -> Result<DemoSummary, BoxError> {
    let now = jiff::Timestamp::now().as_microsecond();
    let options = DemoOptions {
        learners: args.learners,
        weeks: args.weeks,
        seed: args.seed,
        now,
    };
    let world = offload::cpu(move || world::generate(&options)).await?;
    let service = Service::connect(&ClientArgs::new(address.to_string(), key.clone())).await?;

    let started = Instant::now();
    let step = |what: &str| {
        if args.format == OutputFormat::Table {
            eprintln!("demo: {what}");
        }
    };
    step("importing the catalog and the programs");
    load::catalog_and_programs(&service, &world).await?;
    step(&format!(
        "upserting {} learners and their enrolments",
        world.learners.len()
    ));
    load::learners(&service, &world).await?;
    step(&format!(
        "recording {} placement answers",
        world.placement.len()
    ));
    let (placed, _) = load::history(&service, &world.placement, &[], "placement answers").await?;
    step("forming the cohorts of both programs");
    let programs = form_cohorts(&service, &world, args.seed).await?;
    // The alert evaluator caches each program's learner → cohort map for
    // a second: wait it out, so that alerts raised from now on name the
    // cohorts just formed.
    tokio::time::sleep(COHORT_MAP_SETTLE).await;
    step(&format!(
        "recording {} answers and {} module events over {} weeks",
        world.attempts.len(),
        world.activities.len(),
        args.weeks
    ));
    let (answered, events) = load::history(
        &service,
        &world.attempts,
        &world.activities,
        "weeks of history",
    )
    .await?;
    let load_seconds = started.elapsed().as_secs_f64();

    // History is not news: the service holds the learners of a bulk load
    // and evaluates everyone once, when the load has ended (no history
    // for a few seconds); wait for it.
    step("evaluating at-risk alerts once the history has arrived");
    alerts_settled(engine).await?;
    let mut alerts = open_alerts(&service).await?;
    alerts.0.digest = world
        .programs
        .iter()
        .map(|p| engine.alert_digest(&p.id, None).len())
        .sum();

    step("writing the program reports");
    let reports = write_reports(&service, &world, &args.data_dir).await?;
    let recommendations = recommendations(&service, &world, &alerts.1).await?;

    Ok(DemoSummary {
        address: address.to_string(),
        data_dir: args.data_dir.display().to_string(),
        key_file: key.map(|_| key_path.display().to_string()),
        loaded: loaded(&world, placed + answered, events, args.weeks, load_seconds),
        programs,
        recommendations,
        alerts: alerts.0,
        reports,
        console: None,
    })
}

/// What the demo loaded: the world's counts, with the answers and module
/// events the service took and how long the load took.
fn loaded(
    world: &DemoWorld,
    attempts: usize,
    module_events: usize,
    weeks: u32,
    load_seconds: f64,
) -> Loaded {
    let formats: std::collections::BTreeSet<_> = world.modules.iter().map(|m| m.format).collect();
    let languages: std::collections::BTreeSet<String> = world
        .modules
        .iter()
        .map(|m| m.language.split('-').next().unwrap_or("").to_string())
        .collect();
    Loaded {
        skills: world.skills.len(),
        modules: world.modules.len(),
        items: world.items.len(),
        formats: formats.len(),
        languages: languages.into_iter().collect(),
        programs: world.programs.len(),
        companies: world.companies.len(),
        learners: world.learners.len(),
        attempts,
        module_events,
        weeks,
        load_seconds,
    }
}

/// Forms the cohorts of every program of the world (balanced, stored).
async fn form_cohorts(
    service: &Service,
    world: &DemoWorld,
    seed: u64,
) -> Result<Vec<ProgramSummary>, BoxError> {
    let mut programs = Vec::new();
    for program in &world.programs {
        let response = service
            .cohorts()
            .form_cohorts(pb::FormCohortsRequest {
                program_id: program.id.clone(),
                objective: pb::CohortObjective::Balanced as i32,
                seed,
                dry_run: false,
            })
            .await
            .map_err(|s| describe(&format!("forming cohorts of {:?}", program.id), &s))?
            .into_inner();
        programs.push(ProgramSummary {
            id: program.id.clone(),
            name: program.name.clone(),
            learners: world
                .learners
                .iter()
                .filter(|l| l.program_id == program.id)
                .count(),
            start: day(program.start_date),
            end: day(program.end_date),
            formation: super::cohorts::formation_json(&response),
            response,
        });
    }
    Ok(programs)
}

/// Waits until the engine's alert evaluation is idle (at most 5 minutes).
async fn alerts_settled(engine: &Engine) -> Result<(), BoxError> {
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while !engine.alerts_idle() {
        if Instant::now() > deadline {
            return Err("the alert evaluation of the loaded history did not finish".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A day as `YYYY-MM-DD`, empty when unset.
fn day(at: Option<i64>) -> String {
    at.and_then(|t| jiff::Timestamp::from_microsecond(t).ok())
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The open alerts: counts, the most urgent ones, and every open alert's
/// learner (for picking whom to show).
async fn open_alerts(
    service: &Service,
) -> Result<(AlertsSummary, BTreeMap<String, Vec<String>>), BoxError> {
    let mut open = super::alerts::list_all(
        service,
        pb::ListAlertsRequest {
            status: pb::AlertStatus::Open as i32,
            ..Default::default()
        },
        None,
    )
    .await?;
    let mut by_kind = BTreeMap::new();
    let mut by_severity = BTreeMap::new();
    let mut by_learner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &open {
        *by_kind.entry(super::alerts::kind_name(a)).or_insert(0) += 1;
        *by_severity
            .entry(super::alerts::severity_name(a))
            .or_insert(0) += 1;
        by_learner
            .entry(a.learner_id.clone())
            .or_default()
            .push(a.reason.clone());
    }
    // Most urgent first: severity, then the most recent.
    open.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then_with(|| {
            let t = |x: &pb::Alert| x.updated_at.map(|t| (t.seconds, t.nanos));
            t(b).cmp(&t(a))
        })
    });
    let total = open.len();
    open.truncate(ALERTS_SHOWN);
    Ok((
        AlertsSummary {
            open: total,
            learners: by_learner.len(),
            by_kind,
            by_severity,
            budget_per_25: crate::engine::alerts::DEFAULT_ALERTS_PER_25,
            digest: 0,
            shown: open.iter().map(super::alerts::alert_json).collect(),
            shown_alerts: open,
        },
        by_learner,
    ))
}

/// One HTML report per program under `DATA_DIR/reports/`.
async fn write_reports(
    service: &Service,
    world: &DemoWorld,
    data_dir: &Path,
) -> Result<Vec<ReportFile>, BoxError> {
    let folder = data_dir.join("reports");
    std::fs::create_dir_all(&folder)?;
    let mut files = Vec::new();
    for program in &world.programs {
        let reply = service
            .reports()
            .get_program_report(pb::GetProgramReportRequest {
                program_id: program.id.clone(),
                format: pb::ReportFormat::Html as i32,
            })
            .await
            .map_err(|s| describe(&format!("report of {:?}", program.id), &s))?
            .into_inner();
        let path = folder.join(format!("{}.html", program.id));
        std::fs::write(&path, &reply.rendered)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let report = reply.report.unwrap_or_default();
        files.push(ReportFile {
            program_id: program.id.clone(),
            path: path.display().to_string(),
            learners: report.learner_count,
            completed: report.completed_count,
            certified: report.certified.len(),
        });
    }
    Ok(files)
}

/// Three learners worth showing, each with their next three modules: one
/// progressing steadily (with at least a third of the program mastered in
/// the engine's eyes when any such learner has something to do: the LMS
/// moves a learner on at two right answers of three, the engine wants more),
/// one struggling (with an open alert when there is one), one French speaker
/// of the other program.
async fn recommendations(
    service: &Service,
    world: &DemoWorld,
    alerts: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<LearnerRecommendations>, BoxError> {
    // (profile, who fits, thirds of the program mastered at least)
    type Pick = (&'static str, fn(&world::DemoLearner, bool) -> bool, usize);
    let slots: [Pick; 3] = [
        (
            "progressing steadily",
            |l, alerted| {
                !alerted
                    && l.persona == Persona::Steady
                    && l.program_id == "excel-essentials"
                    && l.learner.language == "en"
            },
            1,
        ),
        (
            "struggling, with an open alert",
            |l, alerted| {
                l.persona == Persona::Struggling && l.program_id == "data-analysis" && alerted
            },
            0,
        ),
        (
            "French speaker, slower pace",
            |l, _| {
                l.persona == Persona::Slow
                    && l.program_id == "data-analysis"
                    && l.learner.language == "fr"
            },
            0,
        ),
    ];
    let titles: BTreeMap<&str, &str> = world
        .modules
        .iter()
        .map(|m| (m.id.as_str(), m.title.as_str()))
        .chain(
            world
                .skills
                .iter()
                .map(|s| (s.id.as_str(), s.name.as_str())),
        )
        .collect();
    let mut out: Vec<LearnerRecommendations> = Vec::new();
    for (profile, fits, thirds) in slots {
        // RecommendNext notes what it recommends (an at-risk signal), so it
        // is asked only of the learners shown: first those with enough
        // mastered (GetMastery only reads), then anyone who fits.
        let pool: Vec<&world::DemoLearner> = candidates(world, alerts, fits)
            .into_iter()
            .filter(|l| !out.iter().any(|r| r.learner_id == l.learner.id))
            .collect();
        let mut enough = Vec::new();
        for &l in &pool {
            let (mastered, skills) = mastered_of(service, world, l).await?;
            if 3 * mastered >= thirds * skills {
                enough.push(l);
            }
        }
        for l in enough.into_iter().chain(pool) {
            if let Some(shown) =
                learner_recommendations(service, world, alerts, &titles, l, profile).await?
            {
                out.push(shown);
                break;
            }
        }
    }
    Ok(out)
}

/// The program skills `l` has mastered, of how many.
async fn mastered_of(
    service: &Service,
    world: &DemoWorld,
    l: &world::DemoLearner,
) -> Result<(usize, usize), BoxError> {
    let program = world
        .programs
        .iter()
        .find(|p| p.id == l.program_id)
        .expect("learners follow demo programs");
    let mastery = service
        .mastery()
        .get_mastery(pb::GetMasteryRequest {
            learner_id: l.learner.id.clone(),
            skill_ids: program.skill_ids.clone(),
        })
        .await
        .map_err(|s| describe(&format!("mastery of {:?}", l.learner.id), &s))?
        .into_inner();
    Ok((
        mastery.skills.iter().filter(|s| s.mastered).count(),
        program.skill_ids.len(),
    ))
}

/// One learner's next three recommendations and mastery, as the demo shows
/// them; `None` when there is nothing to recommend.
async fn learner_recommendations(
    service: &Service,
    world: &DemoWorld,
    alerts: &BTreeMap<String, Vec<String>>,
    titles: &BTreeMap<&str, &str>,
    l: &world::DemoLearner,
    profile: &str,
) -> Result<Option<LearnerRecommendations>, BoxError> {
    let reply = service
        .remediation()
        .recommend_next(pb::RecommendNextRequest {
            learner_id: l.learner.id.clone(),
            program_id: l.program_id.clone(),
            count: 3,
            exclude_module_ids: Vec::new(),
        })
        .await
        .map_err(|s| describe(&format!("recommendations for {:?}", l.learner.id), &s))?
        .into_inner();
    if reply.recommendations.is_empty() {
        return Ok(None);
    }
    let (mastered, skills) = mastered_of(service, world, l).await?;
    Ok(Some(LearnerRecommendations {
        learner_id: l.learner.id.clone(),
        display_name: l.learner.display_name.clone(),
        company: world
            .companies
            .get(&l.learner.company_id)
            .cloned()
            .unwrap_or_default(),
        language: l.learner.language.clone(),
        time_zone: l.learner.time_zone.clone(),
        program_id: l.program_id.clone(),
        profile: profile.to_string(),
        mastered,
        skills,
        alerts: alerts.get(&l.learner.id).cloned().unwrap_or_default(),
        modules: reply
            .recommendations
            .iter()
            .map(|r| recommended_module(r, titles))
            .collect(),
    }))
}

/// The first 20 learners that fit a profile (everyone if none does),
/// those halfway through their path first: they make the best example.
fn candidates<'a>(
    world: &'a DemoWorld,
    alerts: &BTreeMap<String, Vec<String>>,
    fits: fn(&world::DemoLearner, bool) -> bool,
) -> Vec<&'a world::DemoLearner> {
    let mut candidates: Vec<&world::DemoLearner> = world
        .learners
        .iter()
        .filter(|l| fits(l, alerts.contains_key(&l.learner.id)))
        .collect();
    if candidates.is_empty() {
        candidates = world.learners.iter().collect();
    }
    candidates.sort_by_key(|l| (l.passed.abs_diff(l.path / 2), l.learner.id.clone()));
    candidates.truncate(20);
    candidates
}

/// A recommendation as the demo prints it, titled from the catalog
/// (`titles`: module and skill ids to titles and names).
fn recommended_module(r: &pb::Recommendation, titles: &BTreeMap<&str, &str>) -> RecommendedModule {
    let diagnostic = r.kind == pb::RecommendationKind::Diagnostic as i32;
    RecommendedModule {
        kind: if diagnostic { "diagnostic" } else { "module" },
        module_id: r.module_id.clone(),
        item_ids: r.item_ids.clone(),
        title: if diagnostic {
            let skill = titles
                .get(r.skill_id.as_str())
                .copied()
                .unwrap_or(&r.skill_id);
            format!("questions on {skill}: {}", r.item_ids.join(", "))
        } else {
            titles
                .get(r.module_id.as_str())
                .copied()
                .unwrap_or("")
                .to_string()
        },
        format: output::enum_name(
            pb::ModuleFormat::try_from(r.format)
                .unwrap_or_default()
                .as_str_name(),
            "MODULE_FORMAT_",
        )
        .replace('_', " "),
        minutes: r.duration_minutes,
        skill_id: r.skill_id.clone(),
        p_mastered: r.p_mastered,
        reason: r.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_is_created_wiped_when_ours_and_refused_otherwise() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("demo");
        prepare_data_dir(&dir).unwrap();
        assert!(dir.join(MARKER).is_file());
        std::fs::write(dir.join("old"), "x").unwrap();
        prepare_data_dir(&dir).unwrap();
        assert!(!dir.join("old").exists(), "a previous demo is wiped");
        let other = temp.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("precious"), "x").unwrap();
        let err = prepare_data_dir(&other).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
        assert!(other.join("precious").exists());
    }
}
