//! `spoc report`: fetch a cohort or program report from a running service
//! and write it as a self-contained HTML page, a CSV table or JSON.
//!
//! The service computes and renders the report (`ReportService`), so the
//! file is exactly what any other client would get.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::http::connect::schema::message_to_json;

/// The file format of `spoc report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// One HTML page with inline charts.
    Html,
    /// One CSV table, `section,id,name,metric,value`.
    Csv,
    /// The report's fields for scripts: the `spoc.v1.Report` message in
    /// proto3 JSON (the Connect endpoint's names), zeros and empty lists
    /// written out.
    Json,
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
    /// File format (`--format` here is the file's, as it always was; the
    /// summary printed on stdout follows `--summary`).
    #[arg(long, value_enum, default_value_t = ReportFormatArg::Html)]
    pub format: ReportFormatArg,
    /// What to print once the file is written: a summary table or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub summary: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Fetches the report and writes it; nothing is written if the service
/// refuses the call.
pub fn run(args: ReportArgs) -> Result<(), BoxError> {
    let format = match args.format {
        ReportFormatArg::Html => pb::ReportFormat::Html,
        ReportFormatArg::Csv => pb::ReportFormat::Csv,
        // The structured fields only; the file is written from them.
        ReportFormatArg::Json => pb::ReportFormat::Unspecified,
    } as i32;
    let (program, cohort) = (args.program.clone(), args.cohort.clone());
    let response = runtime()?.block_on(async move {
        let mut client = Service::connect(&args.client).await?.reports();
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
    let Some(r) = response.report else {
        return Err("the service sent no report".into());
    };
    let file = match args.format {
        ReportFormatArg::Json => {
            let mut json = message_to_json("spoc.v1.Report", &r)?;
            json.push(b'\n');
            json
        }
        ReportFormatArg::Html | ReportFormatArg::Csv => response.rendered.into_bytes(),
    };
    std::fs::write(&args.output, file)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    let raised: u32 = r.alerts.as_ref().map_or(0, |a| a.raised);
    let resolved: u32 = r.alerts.as_ref().map_or(0, |a| a.resolved);
    match args.summary {
        OutputFormat::Json => output::print_json(&serde_json::json!({
            "scope_kind": r.scope_kind,
            "scope_id": r.scope_id,
            "scope_name": r.scope_name,
            "learner_count": r.learner_count,
            "completed_count": r.completed_count,
            "completion_rate": r.completion_rate,
            "certified_count": r.certified.len(),
            "alerts_raised": raised,
            "alerts_resolved": resolved,
            "output": args.output.display().to_string(),
        })),
        OutputFormat::Table => {
            let mut t = output::table([
                "report",
                "learners",
                "completed",
                "certified",
                "alerts raised",
                "resolved",
                "file",
            ]);
            t.add_row(vec![
                format!("{} {}", r.scope_kind, r.scope_id),
                r.learner_count.to_string(),
                format!("{} ({:.0} %)", r.completed_count, 100.0 * r.completion_rate),
                r.certified.len().to_string(),
                raised.to_string(),
                resolved.to_string(),
                args.output.display().to_string(),
            ]);
            output::align_right(&mut t, &[1, 2, 3, 4, 5]);
            output::emit(t);
        }
    }
    Ok(())
}
