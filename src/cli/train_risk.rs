//! `spoc train-risk`: train the two alert models (behind schedule,
//! stopping) on simulated cohort worlds, or on a deployment's own history
//! (`--data-dir`: learners of programs that have ended, observed weekly),
//! and write them as the model file the server loads (`models/risk.json`,
//! or `--risk-model`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::domain::risk::training::train_on;
use crate::domain::risk::{LinearModel, train_default};

/// Options of `spoc train-risk`.
#[derive(Debug, Args)]
pub struct TrainRiskArgs {
    /// Learners per simulated training world (three worlds; 30% of the
    /// learners are held out for the AUC).
    #[arg(long, default_value_t = 1000)]
    pub learners: usize,
    /// Seed of the train/test split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on this data folder's own history instead of simulated
    /// worlds (the service must be stopped: the store is opened here).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With `--data-dir`: the BKT parameter file the service runs with
    /// (`spoc serve --bkt-params`). The learners' mastery is traced with
    /// it, and opening the store may replay its log: with other
    /// parameters the model would learn from mastery the service never
    /// computes, and the replay would store it. Defaults to the shipped
    /// models/bkt-defaults.json, as `spoc serve` does.
    #[arg(long, env = "SPOC_BKT_PARAMS")]
    pub bkt_params: Option<PathBuf>,
    /// Where to write the model file.
    #[arg(long, default_value = "models/risk.json")]
    pub output: PathBuf,
}

/// Trains, prints each model's held-out AUC and coefficients, writes the
/// file.
pub fn run(args: TrainRiskArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let started = Instant::now();
    let models = match &args.data_dir {
        None => train_default(args.seed, args.learners)?,
        Some(dir) => {
            let store = crate::store::Store::open(dir)?;
            let engine = crate::engine::Engine::new(
                store,
                crate::engine::EngineConfig {
                    mastery_threshold: crate::engine::DEFAULT_MASTERY_THRESHOLD,
                    params: crate::engine::params::ParamSet::load(args.bkt_params.as_deref())?,
                },
            )?;
            let set = engine.risk_history(crate::clock::now_micros())?;
            let source = format!(
                "history of {} ({} observations of learners of ended programs)",
                dir.display(),
                set.behind_schedule.len()
            );
            train_on(&set, args.seed, &source)?
        }
    };
    println!(
        "trained in {:.2}s on {}",
        started.elapsed().as_secs_f64(),
        models.stopping.training.source
    );
    print_model("behind schedule", &models.behind_schedule);
    print_model("stopping", &models.stopping);
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&args.output, models.to_json() + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    eprintln!("models written to {}", args.output.display());
    Ok(())
}

/// One model: its data, held-out AUC and coefficients.
fn print_model(name: &str, m: &LinearModel) {
    let t = &m.training;
    println!(
        "{name} ({}): {} examples ({} positive), {} train, {} held out, held-out AUC {:.4}",
        m.target, t.samples, t.positives, t.train_size, t.test_size, m.auc
    );
    println!("  intercept {:+.4}", m.intercept);
    for (feature, w) in m.features.iter().zip(&m.coefficients) {
        println!("  {feature:<22} {w:+.4}");
    }
}
