//! `spoc verify --data-dir DIR`: the full check of a stopped server's data
//! folder, for operators and supervisors. Exit codes: 0 clean, 1 damage
//! found (listed, each naming the file or the tree and key), 2 the check
//! could not run (no store there, a server holds it, unreadable).

use std::path::PathBuf;

use clap::Args;

use crate::engine::params::ParamSet;

/// Options of `spoc verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The data folder of a stopped server.
    #[arg(long, env = "SPOC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The BKT parameter file the server runs with, for the mastery check;
    /// defaults to the shipped models/bkt-defaults.json.
    #[arg(long, env = "SPOC_BKT_PARAMS")]
    pub bkt_params: Option<PathBuf>,
}

/// Exit code: damage found.
pub const DAMAGED: u8 = 1;
/// Exit code: the check could not run.
pub const UNREADABLE: u8 = 2;

/// Runs the check, prints the findings and returns the exit code.
pub fn run(args: VerifyArgs) -> std::process::ExitCode {
    let base = match ParamSet::load(args.bkt_params.as_deref()) {
        Ok(params) => params,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::from(UNREADABLE);
        }
    };
    let mut report = match crate::store::verify::verify(&args.data_dir) {
        Ok(report) => report,
        Err(crate::store::verify::Unreadable(why)) => {
            eprintln!("error: cannot verify {}: {why}", args.data_dir.display());
            return std::process::ExitCode::from(UNREADABLE);
        }
    };
    crate::engine::verify::check_folds(&args.data_dir, &base, &mut report);
    let values: usize = report.trees.values().sum();
    println!(
        "{}: {} trees, {values} values decoded, {} logged records",
        args.data_dir.display(),
        report.trees.len(),
        report.logged
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    if report.findings.is_empty() {
        println!("clean");
        return std::process::ExitCode::SUCCESS;
    }
    for finding in &report.findings {
        println!("damaged: {}: {}", finding.place, finding.what);
    }
    println!(
        "{} findings: keep the folder as it is and follow the recovery procedure of \
         OPERATIONS.md",
        report.findings.len()
    );
    std::process::ExitCode::from(DAMAGED)
}
