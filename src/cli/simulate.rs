//! `spoc simulate`: compare remediation policies on synthetic learners.

use clap::{Args, ValueEnum};

use crate::domain::simulator::{SimOptions, WorldKind, simulate};

/// Output format of `spoc simulate`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// `{"policies": {"adaptive": {...}, "mastery_learning": {...}, ...}}`.
    Json,
}

/// The hidden learner model (`--world`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum World {
    /// Continuous ability, 3-parameter IRT answers, forgetting (not BKT).
    Irt,
    /// The engine's own model: known or not, slip and guess.
    Bkt,
}

/// Options of `spoc simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of synthetic learners per seed (each one runs once per policy).
    #[arg(long, default_value_t = 500)]
    pub learners: usize,
    /// Seed of every random draw: the same seed gives the same report.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of seeds (worlds seed, seed+1, ...), pooled in one report.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// The hidden learner model.
    #[arg(long, value_enum, default_value_t = World::Irt)]
    pub world: World,
    /// Learners between two refits of the per-module learn rates (0: never).
    #[arg(long, default_value_t = 50)]
    pub refit_every: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the simulation and prints the report.
pub fn run(args: SimulateArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if args.learners == 0 {
        return Err("--learners must be at least 1".into());
    }
    if args.seeds == 0 {
        return Err("--seeds must be at least 1".into());
    }
    let report = simulate(&SimOptions {
        learners: args.learners,
        seed: args.seed,
        seeds: args.seeds,
        world: match args.world {
            World::Irt => WorldKind::Irt,
            World::Bkt => WorldKind::Bkt,
        },
        refit_every: args.refit_every,
        ..SimOptions::default()
    });
    match args.format {
        Format::Table => println!("{report}"),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
