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
use crate::domain::learner::Learner;
use crate::domain::validate;

/// Columns the import file must start with; later columns are ignored (an
/// export of the offline `spoc cohorts form` input, skills included, loads
/// as it is).
pub const IMPORT_HEADER: [&str; 4] = ["learner_id", "company_id", "language", "timezone"];

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

/// One learner row of the import file, checked like the service checks
/// `UpsertLearner`.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    /// 1-based line in the file, for messages.
    pub line: usize,
    /// The learner (display name empty: a stored one is kept).
    pub learner: Learner,
}

/// Reads and checks the whole import file before anything is sent, so a
/// typo on line 900 does not leave 899 learners half-imported.
pub fn parse_roster(input: impl Read) -> Result<Vec<RosterRow>, String> {
    let mut text = String::new();
    std::io::BufReader::new(input)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the input: {e}"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (hline, header) = lines
        .next()
        .ok_or("line 1: empty input: a header row is required")?;
    let header = split_record(header).map_err(|e| format!("line {hline}: {e}"))?;
    let lower: Vec<String> = header.iter().map(|f| f.to_ascii_lowercase()).collect();
    if lower.len() < IMPORT_HEADER.len() || lower[..IMPORT_HEADER.len()] != IMPORT_HEADER {
        return Err(format!(
            "line {hline}: header must start with {}, found {}",
            IMPORT_HEADER.join(","),
            header.join(",")
        ));
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (line, text) in lines {
        let bad = |reason: String| format!("line {line}: {reason}");
        let f = split_record(text).map_err(bad)?;
        if f.len() != header.len() {
            return Err(bad(format!(
                "expected {} fields, found {}",
                header.len(),
                f.len()
            )));
        }
        let raw = Learner {
            id: f[0].clone(),
            company_id: f[1].clone(),
            language: f[2].clone(),
            time_zone: f[3].clone(),
            display_name: String::new(),
        };
        let learner = validate::learner(raw, column).map_err(|e| bad(e.to_string()))?;
        if let Some(prev) = seen.insert(learner.id.clone(), line) {
            return Err(bad(format!(
                "learner_id {:?} already appears on line {prev}",
                learner.id
            )));
        }
        rows.push(RosterRow { line, learner });
    }
    Ok(rows)
}

/// The import file's column for a learner field.
fn column(field: &str) -> String {
    match field {
        "id" => "learner_id",
        "time_zone" => "timezone",
        other => other,
    }
    .to_string()
}

/// Splits one CSV line into fields; double quotes protect commas and `""`
/// stands for a quote inside a quoted field. Unquoted fields are trimmed.
fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

/// Quotes a field for CSV output when it needs it.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
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
        let mut text = String::from("learner_id,cohort_id\n");
        let (mut cohorts, mut learners) = (0usize, 0usize);
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
            for cohort in &page.cohorts {
                cohorts += 1;
                for learner in &cohort.learner_ids {
                    learners += 1;
                    text.push_str(&format!("{},{}\n", quote(learner), quote(&cohort.id)));
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok::<_, BoxError>((text, cohorts, learners))
    })?;
    std::fs::write(&args.output, text)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    match args.format {
        OutputFormat::Json => output::print_json(&serde_json::json!({
            "program_id": args.program,
            "output": args.output.display().to_string(),
            "cohorts": cohorts,
            "learners": learners,
        })),
        OutputFormat::Table => output::emit(format!(
            "exported {learners} learners in {cohorts} cohorts of program {:?} to {}",
            args.program,
            args.output.display()
        )),
    }
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
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].learner.time_zone, "Europe/Paris");
        assert_eq!(rows[1].learner.id, "b,1");
        assert_eq!(rows[1].learner.company_id, "glo\"bex");
        assert_eq!(rows[1].line, 3);
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
