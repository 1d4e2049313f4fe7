//! A program's roster through a running service: `spoc learners import`
//! loads learners and enrolments from a CSV, `spoc cohorts export` writes
//! the program's cohorts back out as `learner_id,cohort_id`.
//!
//! Managers live in spreadsheets; these two commands are the round trip.
//! Both talk gRPC (see [`super::client`]), so the service validates and
//! stores exactly as for any other client.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use tokio::task::JoinSet;

use super::client::{AuthChannel, BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::api::pb::learner_service_client::LearnerServiceClient;
use crate::domain::cohorts::assignment_csv;
use crate::domain::roster::{self, RosterRow, read_roster};
use crate::domain::validate;

/// Learners written to the service at once: enough to hide round trips,
/// few enough not to crowd a server serving live traffic.
pub const IMPORT_CONCURRENCY: usize = 32;

/// `spoc learners ...`
#[derive(Debug, Subcommand)]
pub enum LearnersCommand {
    /// Load learners from a CSV and enrol them in a program, through gRPC.
    Import(ImportArgs),
}

/// Options of `spoc learners import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV with header `learner_id,company_id,language,timezone` (more
    /// columns allowed and ignored); language and timezone may be empty.
    #[arg(long)]
    pub input: PathBuf,
    /// The program to enrol every learner in; it must exist.
    #[arg(long)]
    pub program: String,
    /// What to print once done: a summary table or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc cohorts export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The program whose current cohorts are written.
    #[arg(long)]
    pub program: String,
    /// Where to write `learner_id,cohort_id`.
    #[arg(long)]
    pub output: PathBuf,
    /// What to print once done: a summary table or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a learners subcommand.
pub fn run(command: LearnersCommand) -> Result<(), BoxError> {
    match command {
        LearnersCommand::Import(args) => import(args),
    }
}

/// Reads and checks the whole import file (a [`read_roster`] roster,
/// each learner checked as the service checks `UpsertLearner`, errors
/// naming the file's columns) before anything is sent, so a typo on line
/// 900 does not leave 899 learners half-imported.
pub fn parse_roster(input: impl Read) -> Result<Vec<RosterRow>, String> {
    let roster = read_roster(input).map_err(|e| e.to_string())?;
    roster
        .rows
        .into_iter()
        .map(|mut row| {
            row.learner = validate::learner(row.learner, roster::column)
                .map_err(|e| format!("line {}: {e}", row.line))?;
            Ok(row)
        })
        .collect()
}

/// `spoc learners import`: check the file, then upsert and enrol every
/// learner, with a progress bar. Re-running it is safe: upserts replace,
/// enrolling twice is a no-op, and a learner's stored display name is kept.
fn import(args: ImportArgs) -> Result<(), BoxError> {
    let file = std::fs::File::open(&args.input)
        .map_err(|e| format!("cannot open {}: {e}", args.input.display()))?;
    let rows = parse_roster(file).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let program_id = args.program.clone();
    let total = rows.len();
    let companies: std::collections::BTreeSet<String> =
        rows.iter().map(|r| r.learner.company_id.clone()).collect();
    let count = runtime()?.block_on(async move {
        let service = Service::connect(&args.client).await?;
        service
            .programs()
            .get_program(pb::GetProgramRequest {
                program_id: program_id.clone(),
            })
            .await
            .map_err(|s| describe(&format!("program {program_id:?}"), &s))?;
        let client = service.learners();
        let bar = output::bar(total as u64, "importing learners");
        let mut tasks = JoinSet::new();
        let mut done = 0usize;
        for row in rows {
            if tasks.len() == IMPORT_CONCURRENCY {
                tasks.join_next().await.expect("a task is running")??;
                done += 1;
                bar.inc(1);
            }
            tasks.spawn(import_row(client.clone(), program_id.clone(), row));
        }
        while let Some(outcome) = tasks.join_next().await {
            outcome??;
            done += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok::<_, BoxError>(done)
    })?;
    match args.format {
        OutputFormat::Json => output::print_json(&serde_json::json!({
            "program_id": args.program,
            "input": args.input.display().to_string(),
            "learners": count,
            "companies": companies.len(),
        })),
        OutputFormat::Table => {
            let mut t = output::table(["program", "learners imported and enrolled", "companies"]);
            t.add_row(vec![
                args.program.clone(),
                count.to_string(),
                companies.len().to_string(),
            ]);
            output::emit(t);
        }
    }
    Ok(())
}

/// Upserts one learner (keeping a stored display name) and enrols them.
async fn import_row(
    mut client: LearnerServiceClient<AuthChannel>,
    program_id: String,
    row: RosterRow,
) -> Result<(), BoxError> {
    let at = |what: &str| format!("line {} ({what} {:?})", row.line, row.learner.id);
    let mut learner = pb::Learner::from(row.learner.clone());
    match client
        .get_learner(pb::GetLearnerRequest {
            learner_id: learner.id.clone(),
        })
        .await
    {
        Ok(stored) => learner.display_name = stored.into_inner().display_name,
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(describe(&at("reading learner"), &s).into()),
    }
    client
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner),
        })
        .await
        .map_err(|s| describe(&at("upserting learner"), &s))?;
    client
        .enroll_learner(pb::EnrollLearnerRequest {
            learner_id: row.learner.id.clone(),
            program_id,
            enrolled_at: None,
        })
        .await
        .map_err(|s| describe(&at("enrolling learner"), &s))?;
    Ok(())
}

/// `spoc cohorts export`: every current cohort of the program, one
/// `learner_id,cohort_id` row per member, cohort by cohort. The file is
/// written only once everything was read.
pub fn export_cohorts(args: ExportArgs) -> Result<(), BoxError> {
    let program_id = args.program.clone();
    let (text, cohorts, learners) = runtime()?.block_on(async move {
        let mut client = Service::connect(&args.client).await?.cohorts();
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut cohorts = 0usize;
        let mut page_token = String::new();
        loop {
            let page = client
                .list_cohorts(pb::ListCohortsRequest {
                    program_id: program_id.clone(),
                    page_size: 1000,
                    page_token,
                })
                .await
                .map_err(|s| describe(&format!("listing cohorts of {program_id:?}"), &s))?
                .into_inner();
            if page.version == 0 {
                return Err(format!(
                    "program {program_id:?} has no cohorts yet: form them first (FormCohorts)"
                )
                .into());
            }
            for cohort in page.cohorts {
                cohorts += 1;
                rows.extend(
                    cohort
                        .learner_ids
                        .into_iter()
                        .map(|l| (l, cohort.id.clone())),
                );
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let text = assignment_csv(rows.iter().map(|(l, c)| (l.as_str(), c.as_str())));
        Ok::<_, BoxError>((text, cohorts, rows.len()))
    })?;
    std::fs::write(&args.output, text)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    output::outcome(
        args.format,
        serde_json::json!({
            "program_id": args.program,
            "output": args.output.display().to_string(),
            "cohorts": cohorts,
            "learners": learners,
        }),
        format!(
            "exported {learners} learners in {cohorts} cohorts of program {:?} to {}",
            args.program,
            args.output.display()
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_reads_quoted_fields_and_ignores_extra_columns() {
        let csv = "learner_id,company_id,language,timezone,sql\n\
                   a,acme,fr,Europe/Paris,0.4\n\
                   \"b,1\",\"glo\"\"bex\",en,UTC,0.9\n";
        let rows = parse_roster(csv.as_bytes()).unwrap();
        // Valid rows come through the checks as `domain::roster` reads them
        // (whose tests cover the quoting); the extra column is kept aside.
        assert_eq!(rows, read_roster(csv.as_bytes()).unwrap().rows);
        assert_eq!(
            rows.iter()
                .map(|r| r.learner.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b,1"]
        );
        assert_eq!(rows[1].learner.company_id, "glo\"bex");
        assert_eq!(
            (rows[0].learner.time_zone.as_str(), rows[1].line),
            ("Europe/Paris", 3)
        );
    }

    #[test]
    fn roster_errors_name_the_line_and_column() {
        let head = "learner_id,company_id,language,timezone\n";
        let err = parse_roster(format!("{head}a,acme,fr,Mars/Olympus\n").as_bytes()).unwrap_err();
        assert!(
            err.starts_with("line 2:") && err.contains("timezone"),
            "{err}"
        );
        let err = parse_roster(format!("{head}a,,fr,UTC\n").as_bytes()).unwrap_err();
        assert!(err.contains("company_id"), "{err}");
        // Language and time zone are required, as UpsertLearner has them.
        let err = parse_roster(format!("{head}a,x,fr,\n").as_bytes()).unwrap_err();
        assert!(err.contains("timezone"), "{err}");
        let err = parse_roster(format!("{head}a,x,,UTC\n").as_bytes()).unwrap_err();
        assert!(err.contains("language"), "{err}");
        let err = parse_roster(format!("{head}a,x,fr,UTC\na,y,fr,UTC\n").as_bytes()).unwrap_err();
        assert!(
            err.starts_with("line 3:") && err.contains("line 2"),
            "{err}"
        );
        let err = parse_roster("id,company\n".as_bytes()).unwrap_err();
        assert!(err.contains("header must start with"), "{err}");
    }
}
