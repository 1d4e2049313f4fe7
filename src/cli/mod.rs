//! The `spoc` command line: one subcommand per file.

pub mod activities;
pub mod alerts;
pub mod backup;
pub mod catalog;
pub mod client;
pub mod cohorts;
pub mod demo;
pub mod enrol;
pub mod eval_alerts;
pub mod fit;
pub mod in_process;
pub mod learners;
pub mod model;
pub mod output;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod simulate_grpc;
pub mod train_risk;
pub mod verify;

use clap::{Parser, Subcommand};

/// spoc-engine: adaptive remediation and cohort matching for SPOCs.
#[derive(Debug, Parser)]
#[command(name = "spoc", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// See everything the engine does: load a demo world, print what it
    /// computes, keep serving.
    Demo(demo::DemoArgs),
    /// Run the gRPC service.
    Serve(serve::ServeArgs),
    /// Fit BKT parameters by EM on a pyBKT-layout CSV.
    Fit(fit::FitArgs),
    /// Compare remediation policies on synthetic learners.
    Simulate(simulate::SimulateArgs),
    /// Play the simulator's learners through a service started in process
    /// (every decision by RecommendNext over gRPC), beside `simulate`'s
    /// adaptive figures on the same learners.
    SimulateGrpc(simulate_grpc::SimulateGrpcArgs),
    /// Cohorts of a program: form and export through a running service, or
    /// form offline from a CSV.
    #[command(subcommand)]
    Cohorts(cohorts::CohortsCommand),
    /// Learners and enrolments from a CSV, loaded into a running service.
    #[command(subcommand)]
    Learners(learners::LearnersCommand),
    /// At-risk alerts of a running service: list, watch live, acknowledge,
    /// resolve.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// The BKT model of a running service: fit on stored attempts, show.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Items and modules (external ids included) from CSV files.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// xAPI activities nothing maps yet: list them, map one, ignore one.
    #[command(subcommand)]
    Activities(activities::ActivitiesCommand),
    /// Write a cohort or program report (HTML, CSV or JSON) from a running
    /// service.
    Report(report::ReportArgs),
    /// Train the alert models (behind schedule, stopping) on simulated
    /// cohort worlds or a data folder's history (models/risk.json).
    TrainRisk(train_risk::TrainRiskArgs),
    /// Measure the alerts on simulated cohort worlds whose future is
    /// known, through a service started in process.
    EvalAlerts(eval_alerts::EvalAlertsArgs),
    /// Write a consistent snapshot of a running service's store to a file.
    Backup(backup::BackupArgs),
    /// Restore a snapshot file into an empty data folder (offline).
    Restore(backup::RestoreArgs),
    /// Check a stopped server's data folder: every value decoded, the trees
    /// agreeing; exit 0 clean, 1 damage found, 2 could not check.
    Verify(verify::VerifyArgs),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> std::process::ExitCode {
    crate::store::budget::purge_freed_memory_soon();
    let cli = Cli::parse();
    // The demo prints for people: only warnings and errors unless asked.
    init_logging(
        if matches!(
            cli.command,
            Command::Demo(_) | Command::EvalAlerts(_) | Command::SimulateGrpc(_)
        ) {
            "warn"
        } else {
            "info"
        },
    );
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::SimulateGrpc(args) => simulate_grpc::run(args),
        Command::Cohorts(command) => cohorts::run(command),
        Command::Learners(command) => learners::run(command),
        Command::Alerts(command) => alerts::run(command),
        Command::Model(command) => model::run(command),
        Command::Activities(command) => activities::run(command),
        Command::Catalog(command) => catalog::run(command),
        Command::Report(args) => report::run(args),
        Command::TrainRisk(args) => train_risk::run(args),
        Command::EvalAlerts(args) => eval_alerts::run(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Verify(args) => return verify::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Structured logs on stderr, filtered by `RUST_LOG` (else `default`).
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
