//! `spoc train-risk`: train the dropout model on synthetic learner histories,
//! or on a deployment's own history (`--data-dir`: learners of programs that
//! have ended, labelled completed or not), and write it as the model file
//! the server loads (`models/risk.json`, or `--risk-model`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::domain::risk::{LearnerSignals, TrainOptions, train, train_default};

/// Options of `spoc train-risk`.
#[derive(Debug, Args)]
pub struct TrainRiskArgs {
    /// Synthetic learners to simulate (30% are held out for the AUC).
    #[arg(long, default_value_t = 5000)]
    pub learners: usize,
    /// Seed of the simulation and of the train/test split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on this data folder's own history instead of synthetic
    /// learners (the service must be stopped: the store is opened here).
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

/// Trains, prints the held-out AUC and the coefficients, writes the file.
pub fn run(args: TrainRiskArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let started = Instant::now();
    let model = match &args.data_dir {
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
            let samples = engine.risk_history(crate::clock::now_micros())?;
            let options = TrainOptions {
                seed: args.seed,
                source: format!(
                    "history of {} ({} learners of ended programs)",
                    dir.display(),
                    samples.len()
                ),
                ..TrainOptions::default()
            };
            train(&samples, &options)?
        }
    };
    let t = &model.training;
    println!(
        "trained on {} learners ({} did not complete): {} train, {} held out, {:.2}s",
        t.samples,
        t.positives,
        t.train_size,
        t.test_size,
        started.elapsed().as_secs_f64()
    );
    println!("held-out AUC {:.4}", model.auc);
    println!("intercept {:+.4}", model.intercept);
    for (name, w) in LearnerSignals::NAMES.iter().zip(&model.coefficients) {
        println!("  {name:<26} {w:+.4}");
    }
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&args.output, model.to_json() + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    eprintln!("model written to {}", args.output.display());
    Ok(())
}
