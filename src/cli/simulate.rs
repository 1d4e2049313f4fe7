//! `spoc simulate`: compare remediation policies on synthetic learners.

use clap::{Args, ValueEnum};

use crate::domain::simulator::{SimOptions, simulate};

/// Output format of `spoc simulate`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// `{"policies": {"adaptive": {...}, "fixed": {...}, "random_ready": {...}}}`.
    Json,
}

/// Options of `spoc simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of synthetic learners (each one runs once per policy).
    #[arg(long, default_value_t = 500)]
    pub learners: usize,
    /// Seed of every random draw: the same seed gives the same report.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the simulation and prints the report.
pub fn run(args: SimulateArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if args.learners == 0 {
        return Err("--learners must be at least 1".into());
    }
    let report = simulate(&SimOptions {
        learners: args.learners,
        seed: args.seed,
        ..SimOptions::default()
    });
    match args.format {
        Format::Table => println!("{report}"),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
