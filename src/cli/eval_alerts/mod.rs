//! `spoc eval-alerts`: the alerts measured against simulated cohort worlds
//! whose future is known.
//!
//! For each world (by default the held-out worlds no shipped model saw)
//! and each cut day, a fresh service is started in process on a fresh
//! data folder, the world's history up to the cut is loaded through the
//! public gRPC API with every time shifted so that the cut is the present
//! ([`load`]), the engine evaluates the bulk load once it ends, and the
//! open alerts are read back through the API. The models' scores of every
//! learner come from the same engine (`Engine::assess_learner`), the
//! baseline's from a plain logistic model trained on the training worlds.
//! `domain::risk::evaluation` turns them into the figures: per alert kind,
//! precision and recall against "stops within 21 days", lead time, alerts
//! per 25 learners, false alarms on pauses, completers and slow learners;
//! ranking AUCs and precision at the budget against the baseline.

pub mod load;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::client::BoxError;
use super::in_process::InProcess;
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::domain::risk::evaluation::{Figures, Seen, figures};
use crate::domain::risk::signals::MICROS_PER_DAY;
use crate::domain::risk::training::{STOP_HORIZON_DAYS, train_baseline, training_set};
use crate::domain::risk::world::{
    Profile, World, WorldParams, generate, held_out_worlds, training_worlds,
};
use crate::domain::risk::{AlertKind, LinearModel};
use crate::engine::alerts::DEFAULT_ALERTS_PER_25;
use crate::engine::{Engine, now_micros};
use crate::offload;

/// Which worlds to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorldSet {
    /// The worlds no shipped model was trained on.
    HeldOut,
    /// The worlds the shipped models were trained on.
    Training,
    /// Both.
    All,
}

/// Options of `spoc eval-alerts`.
#[derive(Debug, Args)]
pub struct EvalAlertsArgs {
    /// Learners per world.
    #[arg(long, default_value_t = 400)]
    pub learners: usize,
    /// Program days at which each world is cut and loaded into a fresh
    /// service (days past a world's end are skipped).
    #[arg(long, value_delimiter = ',', default_value = "14,21,28,35")]
    pub days: Vec<i64>,
    /// The worlds to evaluate on.
    #[arg(long, value_enum, default_value_t = WorldSet::HeldOut)]
    pub worlds: WorldSet,
    /// Learners per training world of the baseline.
    #[arg(long, default_value_t = 1000)]
    pub baseline_learners: usize,
    /// Folder for the services' data (a fresh subfolder per snapshot,
    /// removed after it); defaults to the system's temporary folder.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Tables for people, or the figures as JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// One snapshot's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotFigures {
    /// The world.
    pub world: String,
    /// The cut day.
    pub day: i64,
    /// Events loaded.
    pub events: usize,
    /// Seconds from the first call to the end of the evaluation.
    pub seconds: f64,
    /// Alerts raised and resolved during the load (history is not news:
    /// should be 0).
    pub resolved_within_load: usize,
    /// The figures.
    pub figures: Figures,
    /// The observations, for pooling.
    #[serde(skip)]
    pub seen: Vec<Seen>,
}

/// Everything `spoc eval-alerts` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The baseline's provenance.
    pub baseline: String,
    /// Per snapshot.
    pub snapshots: Vec<SnapshotFigures>,
    /// Pooled over the snapshots of each world.
    pub worlds: Vec<(String, Figures)>,
    /// Pooled over every snapshot.
    pub pooled: Figures,
    /// Alerts resolved within a load, over every snapshot.
    pub resolved_within_load: usize,
}

/// Runs `spoc eval-alerts`.
pub fn run(args: EvalAlertsArgs) -> Result<(), BoxError> {
    if args.learners < 25 {
        return Err("--learners must be at least 25".into());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let evaluation = runtime.block_on(evaluate(&args))?;
    match args.format {
        OutputFormat::Json => output::print_json(&serde_json::to_value(&evaluation)?),
        OutputFormat::Table => output::write_out(&render(&evaluation)),
    }
    Ok(())
}

/// Evaluates every snapshot.
pub async fn evaluate(args: &EvalAlertsArgs) -> Result<Evaluation, BoxError> {
    let progress = |what: &str| {
        if args.format == OutputFormat::Table {
            eprintln!("eval-alerts: {what}");
        }
    };
    progress("training the baseline on the training worlds");
    let baseline_learners = args.baseline_learners;
    let baseline = offload::cpu(move || {
        let worlds: Vec<World> = training_worlds(baseline_learners)
            .iter()
            .map(generate)
            .collect();
        train_baseline(&training_set(&worlds), 42)
    })
    .await??;
    let params: Vec<WorldParams> = match args.worlds {
        WorldSet::HeldOut => held_out_worlds(args.learners),
        WorldSet::Training => training_worlds(args.learners),
        WorldSet::All => training_worlds(args.learners)
            .into_iter()
            .chain(held_out_worlds(args.learners))
            .collect(),
    };
    let work = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("spoc-eval-alerts-{}", std::process::id()))
    });
    let mut snapshots = Vec::new();
    let mut worlds = Vec::new();
    for p in params {
        let world = generate(&p);
        let mut seen = Vec::new();
        for &day in &args.days {
            if day <= 0 || day >= i64::from(p.weeks) * 7 {
                continue;
            }
            progress(&format!("{} day {day}", p.name));
            let dir = work.join(format!("{}-day{day}", p.name));
            // Removed once measured (a failed snapshot leaves its marked
            // scratch folder; a folder that is not one is never touched).
            let s = snapshot(&world, day, &baseline, &dir).await?;
            let _ = std::fs::remove_dir_all(&dir);
            seen.extend(s.seen.iter().cloned());
            snapshots.push(s);
        }
        worlds.push((p.name.clone(), figures(&seen, DEFAULT_ALERTS_PER_25)));
    }
    let _ = std::fs::remove_dir(&work);
    let all: Vec<Seen> = snapshots.iter().flat_map(|s| s.seen.clone()).collect();
    Ok(Evaluation {
        baseline: format!(
            "logistic on {} (trained on the training worlds, {} learners each)",
            baseline.features.join(", "),
            args.baseline_learners
        ),
        resolved_within_load: snapshots.iter().map(|s| s.resolved_within_load).sum(),
        pooled: figures(&all, DEFAULT_ALERTS_PER_25),
        worlds,
        snapshots,
    })
}

/// Loads one snapshot into a fresh service and reads back what it made of
/// it.
async fn snapshot(
    world: &World,
    day: i64,
    baseline: &LinearModel,
    dir: &std::path::Path,
) -> Result<SnapshotFigures, BoxError> {
    let started = Instant::now();
    let running = InProcess::start(dir).await?;
    let outcome = async {
        let (engine, service) = (&running.engine, &running.service);
        let cut = world.day(day);
        let shift = now_micros() - cut;
        let events = load::snapshot(service, world, cut, shift).await?;
        // The engine evaluates the load once it ends (a few seconds
        // without history arriving).
        let deadline = Instant::now() + Duration::from_secs(600);
        tokio::time::sleep(Duration::from_millis(300)).await;
        while !engine.alerts_idle() {
            if Instant::now() > deadline {
                return Err::<_, BoxError>("the engine never finished evaluating the load".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let alerts =
            super::alerts::list_all(service, pb::ListAlertsRequest::default(), None).await?;
        let resolved = alerts
            .iter()
            .filter(|a| a.status == pb::AlertStatus::Resolved as i32)
            .count();
        let seen = observe(engine, world, cut, &alerts, baseline).await?;
        Ok((events, resolved, seen))
    }
    .await;
    running.stop().await;
    let (events, resolved, seen) = outcome?;
    Ok(SnapshotFigures {
        world: world.params.name.clone(),
        day,
        events,
        seconds: started.elapsed().as_secs_f64(),
        resolved_within_load: resolved,
        figures: figures(&seen, DEFAULT_ALERTS_PER_25),
        seen,
    })
}

/// Every learner as the engine sees them at the cut, beside the world's
/// truth.
async fn observe(
    engine: &Arc<Engine>,
    world: &World,
    cut: i64,
    alerts: &[pb::Alert],
    baseline: &LinearModel,
) -> Result<Vec<Seen>, BoxError> {
    let engine = engine.clone();
    let world = world.clone();
    let alerts = alerts.to_vec();
    let baseline = baseline.clone();
    let seen = offload::blocking(async move {
        let now = now_micros();
        let mut out = Vec::with_capacity(world.learners.len());
        for l in &world.learners {
            let a = engine.assess_learner(&l.id, load::PROGRAM, now)?;
            let open: Vec<AlertKind> = alerts
                .iter()
                .filter(|x| x.learner_id == l.id && x.status != pb::AlertStatus::Resolved as i32)
                .filter_map(|x| kind(x.kind))
                .collect();
            let days_to_stop = l
                .stopped_at
                .filter(|s| *s >= cut)
                .map(|s| (s - cut) as f64 / MICROS_PER_DAY as f64);
            out.push(Seen {
                active: l.active_at(cut),
                declared_pause: l.in_declared_pause(cut),
                undeclared_pause: l.in_pause(cut) && !l.in_declared_pause(cut),
                completed: l.completed_at.is_some_and(|c| c < cut),
                slow: l.profile == Profile::SlowSteady,
                stops_soon: l.stops_within(cut, STOP_HORIZON_DAYS),
                days_to_stop,
                not_completing: !l.completed_by(world.deadline()),
                open,
                stopping_risk: a.signals.get("stopping_risk").copied().unwrap_or(0.0),
                behind_risk: a
                    .signals
                    .get("behind_schedule_risk")
                    .copied()
                    .unwrap_or(0.0),
                baseline_risk: baseline.predict(&a.signals),
            });
        }
        Ok::<_, BoxError>(out)
    })
    .await??;
    Ok(seen)
}

/// The domain kind of a wire kind.
fn kind(value: i32) -> Option<AlertKind> {
    use pb::AlertKind as K;
    Some(match K::try_from(value).ok()? {
        K::BlockingPoint => AlertKind::BlockingPoint,
        K::Inactivity => AlertKind::Inactivity,
        K::MasteryDrop => AlertKind::MasteryDrop,
        K::PredictedDropout => AlertKind::PredictedDropout,
        K::BehindSchedule => AlertKind::BehindSchedule,
        K::Stopping => AlertKind::Stopping,
        K::Unspecified => return None,
    })
}

/// A share as a percentage, `-` when undefined.
fn pct(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.1}%", x * 100.0)
    }
}

/// A figure with 3 decimals, `-` when undefined.
fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.3}")
    }
}

/// The evaluation for people.
pub fn render(e: &Evaluation) -> String {
    let mut out = String::new();
    out.push_str(&format!("baseline: {}\n\n", e.baseline));
    out.push_str(&format!(
        "{:<12} {:>4} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8} {:>5}\n",
        "world",
        "day",
        "learn.",
        "active",
        "stop%",
        "stop AUC",
        "baseline",
        "pace AUC",
        "P@budget",
        "base P@b",
        "open/25",
        "resolved",
        "s"
    ));
    for s in &e.snapshots {
        let f = &s.figures;
        out.push_str(&format!(
            "{:<12} {:>4} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7.2} {:>8} {:>5.1}\n",
            s.world,
            s.day,
            f.learners,
            f.active,
            pct(f.base_rate),
            num(f.stopping_auc),
            num(f.baseline_auc),
            num(f.behind_auc),
            pct(f.precision_at_budget),
            pct(f.baseline_precision_at_budget),
            f.kinds.last().map_or(0.0, |k| k.per_25),
            s.resolved_within_load,
            s.seconds
        ));
    }
    for (name, f) in e
        .worlds
        .iter()
        .map(|(n, f)| (n.as_str(), f))
        .chain(std::iter::once(("pooled", &e.pooled)))
    {
        out.push_str(&format!(
            "\n{name}: stop rate {} among {} active; stopping AUC {} (baseline {}); \
             behind-schedule AUC {}; precision at the budget ({} seats) {} = {:.2}x the base \
             rate (baseline {})\n",
            pct(f.base_rate),
            f.active,
            num(f.stopping_auc),
            num(f.baseline_auc),
            num(f.behind_auc),
            f.budget,
            pct(f.precision_at_budget),
            f.precision_at_budget / f.base_rate,
            pct(f.baseline_precision_at_budget),
        ));
        out.push_str(&format!(
            "  {:<16} {:>6} {:>7} {:>9} {:>7} {:>9} {:>13} {:>11} {:>9} {:>13}\n",
            "kind",
            "open",
            "open/25",
            "precision",
            "recall",
            "lead days",
            "declared pause",
            "completers",
            "slow",
            "undecl. pause"
        ));
        for k in &f.kinds {
            out.push_str(&format!(
                "  {:<16} {:>6} {:>7.2} {:>9} {:>7} {:>9} {:>13} {:>11} {:>9} {:>13}\n",
                k.kind,
                k.open,
                k.per_25,
                pct(k.precision),
                pct(k.recall),
                k.lead_days.map_or("-".into(), |d| format!("{d:.1}")),
                k.on_declared_pauses,
                k.on_completers,
                pct(k.slow_share),
                pct(k.undeclared_pause_share),
            ));
        }
    }
    out.push_str(&format!(
        "\nalerts raised and resolved within a load: {}\n",
        e.resolved_within_load
    ));
    out
}
