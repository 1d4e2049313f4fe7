//! `spoc report`: fetch a cohort or program report from a running service
//! and write it as a self-contained HTML page or a CSV table.
//!
//! The service computes and renders the report (`ReportService`), so the
//! file is exactly what any other client would get.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::client::{BoxError, ClientArgs, connect, describe, runtime};
use crate::api::pb;
use crate::api::pb::report_service_client::ReportServiceClient;

/// The file format of `spoc report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// One HTML page with inline charts.
    Html,
    /// One CSV table, `section,id,name,metric,value`.
    Csv,
}

/// Options of `spoc report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The program reported on.
    #[arg(long)]
    pub program: String,
    /// One cohort of the program; the whole program when absent.
    #[arg(long)]
    pub cohort: Option<String>,
    /// Where to write the report.
    #[arg(long)]
    pub output: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value_t = ReportFormatArg::Html)]
    pub format: ReportFormatArg,
    /// Where the service listens.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Fetches the report and writes it; nothing is written if the service
/// refuses the call.
pub fn run(args: ReportArgs) -> Result<(), BoxError> {
    let format = match args.format {
        ReportFormatArg::Html => pb::ReportFormat::Html,
        ReportFormatArg::Csv => pb::ReportFormat::Csv,
    } as i32;
    let (program, cohort) = (args.program.clone(), args.cohort.clone());
    let response = runtime()?.block_on(async move {
        let mut client = ReportServiceClient::new(connect(&args.client.addr).await?);
        let response = match cohort {
            Some(cohort_id) => client
                .get_cohort_report(pb::GetCohortReportRequest {
                    cohort_id: cohort_id.clone(),
                    program_id: program.clone(),
                    format,
                })
                .await
                .map_err(|s| describe(&format!("report of cohort {cohort_id:?}"), &s))?,
            None => client
                .get_program_report(pb::GetProgramReportRequest {
                    program_id: program.clone(),
                    format,
                })
                .await
                .map_err(|s| describe(&format!("report of program {program:?}"), &s))?,
        };
        Ok::<_, BoxError>(response.into_inner())
    })?;
    std::fs::write(&args.output, &response.rendered)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    if let Some(r) = response.report {
        eprintln!(
            "{} report of {:?} ({} learners, {} completed, {} certified) written to {}",
            r.scope_kind,
            r.scope_id,
            r.learner_count,
            r.completed_count,
            r.certified.len(),
            args.output.display()
        );
    }
    Ok(())
}
