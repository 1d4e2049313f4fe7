//! `spoc fit`: fit BKT by EM on a pyBKT-layout CSV and print the parameters
//! and cross-validated metrics.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::domain::fit::{CliOptions, OutputFormat, run_cli};

/// Output format of `spoc fit`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// `{"skills": {...}, "cv": {"auc", "rmse"}, "fit_seconds"}` for scripts.
    Json,
}

/// Options of `spoc fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// CSV with columns order_id, user_id, skill_name, correct and optional
    /// template_id (module or item), group_id, timestamp.
    #[arg(long)]
    pub input: PathBuf,
    /// One learn rate per template_id (pyBKT "multilearn").
    #[arg(long)]
    pub multilearn: bool,
    /// Fit a forgetting probability P(F).
    #[arg(long)]
    pub forgets: bool,
    /// One guess and slip per template_id (pyBKT "multigs").
    #[arg(long)]
    pub multigs: bool,
    /// One prior per group_id (pyBKT "multiprior").
    #[arg(long)]
    pub multiprior: bool,
    /// Cross-validation folds, split by learner; below 2 skips CV.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Random restarts of EM per skill; the best log-likelihood wins.
    #[arg(long, default_value_t = 5)]
    pub restarts: usize,
    /// Seed of the restarts and of the fold split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write the versioned model file here (e.g. models/bkt-fitted.json).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs the fit and prints it; writes the model file when asked.
pub fn run(args: FitArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let file = std::fs::File::open(&args.input)
        .map_err(|e| format!("cannot open {}: {e}", args.input.display()))?;
    let options = CliOptions {
        multilearn: args.multilearn,
        forgets: args.forgets,
        multigs: args.multigs,
        multiprior: args.multiprior,
        folds: args.folds,
        format: match args.format {
            Format::Table => OutputFormat::Table,
            Format::Json => OutputFormat::Json,
        },
        restarts: args.restarts,
        seed: args.seed,
        input_bytes: file.metadata().ok().map(|m| m.len()),
    };
    let model = run_cli(
        std::io::BufReader::new(file),
        &options,
        std::io::stdout().lock(),
    )?;
    if let Some(path) = args.output {
        std::fs::write(&path, serde_json::to_vec_pretty(&model)?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("model written to {}", path.display());
    }
    Ok(())
}
