//! `spoc cohorts form`: form cohorts offline from a CSV, without a server.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::domain::cohorts::{CohortConstraints, Objective, OfflineOptions, run_offline};

/// `spoc cohorts ...`
#[derive(Debug, Subcommand)]
pub enum CohortsCommand {
    /// Split learners from a CSV into cohorts and write `learner_id,cohort_id`.
    Form(FormArgs),
    /// Write a program's current cohorts from a running service as
    /// `learner_id,cohort_id`.
    Export(super::learners::ExportArgs),
}

/// What cohorts optimise.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    /// Every cohort as close as possible to the whole population.
    Balanced,
    /// Cohorts homogeneous in level.
    Leveled,
}

/// Options of `spoc cohorts form`.
#[derive(Debug, Args)]
pub struct FormArgs {
    /// CSV with header `learner_id,company_id,language,timezone,` then one
    /// mastery column per skill (values in [0, 1]).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write `learner_id,cohort_id`.
    #[arg(long)]
    pub output: PathBuf,
    /// Smallest cohort (15..50).
    #[arg(long, default_value_t = 15)]
    pub min: usize,
    /// Largest cohort (min..50).
    #[arg(long, default_value_t = 50)]
    pub max: usize,
    /// Largest share of one company in a cohort, in (0, 1].
    #[arg(long, default_value_t = 0.3)]
    pub company_cap: f64,
    /// Largest spread of UTC offsets in a cohort, in hours.
    #[arg(long, default_value_t = 3.0)]
    pub max_tz_spread: f64,
    /// Number of cohorts wanted (default: sizes near (min+max)/2).
    #[arg(long)]
    pub cohorts: Option<usize>,
    /// Allow cohorts that mix languages.
    #[arg(long)]
    pub mixed_languages: bool,
    /// What to optimise.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Balanced)]
    pub objective: ObjectiveArg,
    /// Seed: the same seed gives the same cohorts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs a cohorts subcommand.
pub fn run(command: CohortsCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match command {
        CohortsCommand::Form(args) => form(args),
        CohortsCommand::Export(args) => super::learners::export_cohorts(args),
    }
}

fn form(args: FormArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let input = std::fs::File::open(&args.input)
        .map_err(|e| format!("cannot open {}: {e}", args.input.display()))?;
    let mut output = Vec::new();
    let options = OfflineOptions {
        constraints: CohortConstraints {
            min_size: args.min,
            max_size: args.max,
            max_company_share: args.company_cap,
            single_language: !args.mixed_languages,
            max_tz_spread_hours: args.max_tz_spread,
            target_cohorts: args.cohorts,
        },
        objective: match args.objective {
            ObjectiveArg::Balanced => Objective::Balanced,
            ObjectiveArg::Leveled => Objective::Leveled,
        },
        seed: args.seed,
        reference_instant: jiff::Timestamp::now(),
    };
    let report = run_offline(std::io::BufReader::new(input), &mut output, &options)?;
    // Written only once formation succeeded: a refusal leaves no half file.
    std::fs::write(&args.output, output)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    eprintln!("{report}");
    Ok(())
}
