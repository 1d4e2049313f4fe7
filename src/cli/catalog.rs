//! `spoc catalog import`: items (the Q-matrix) and modules from CSV files,
//! external ids and pass marks included, loaded into a running service in
//! one `ImportCatalog` call (all or nothing).
//!
//! Catalogs are kept in spreadsheets, and an LMS export lists its activity
//! IRIs beside them: the `external_ids` column is how a spreadsheet maps
//! them (several separated by `|`).
//!
//! ```text
//! items.csv:   id,skill_ids,title,external_ids,pass_mark
//! modules.csv: id,title,skill_ids,format,duration_minutes,language,external_ids
//! ```

use std::path::{Path, PathBuf};

use clap::Args;

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::domain::spreadsheet::{self, Row};

/// Columns of an items file.
pub const ITEM_HEADER: [&str; 5] = ["id", "skill_ids", "title", "external_ids", "pass_mark"];
/// Columns of a modules file.
pub const MODULE_HEADER: [&str; 7] = [
    "id",
    "title",
    "skill_ids",
    "format",
    "duration_minutes",
    "language",
    "external_ids",
];

/// Options of `spoc catalog import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Items: `id,skill_ids,title,external_ids,pass_mark` (lists separated
    /// by `|`; title, external_ids and pass_mark may be empty).
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Modules: `id,title,skill_ids,format,duration_minutes,language,external_ids`
    /// (format one of video, document, quiz, exercise, serious_game,
    /// workshop, live_session, podcast).
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// What to print once done: a summary table or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `spoc catalog ...`
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Load items and modules from CSV files into a running service.
    Import(ImportArgs),
}

/// Runs a catalog subcommand.
pub fn run(command: CatalogCommand) -> Result<(), BoxError> {
    match command {
        CatalogCommand::Import(args) => import(args),
    }
}

fn import(args: ImportArgs) -> Result<(), BoxError> {
    if args.items.is_none() && args.modules.is_none() {
        return Err("give --items FILE, --modules FILE or both".into());
    }
    let items = match &args.items {
        Some(path) => read(path, &ITEM_HEADER, item)?,
        None => Vec::new(),
    };
    let modules = match &args.modules {
        Some(path) => read(path, &MODULE_HEADER, module)?,
        None => Vec::new(),
    };
    let client = args.client.clone();
    let reply = runtime()?
        .block_on(async move {
            Service::connect(&client)
                .await?
                .catalog()
                .import_catalog(pb::ImportCatalogRequest {
                    skills: Vec::new(),
                    modules,
                    items,
                })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| describe("importing the catalog", &s).into())
        })
        .map_err(|e: BoxError| e)?;
    output::outcome(
        args.format,
        serde_json::json!({
            "items_upserted": reply.items_upserted,
            "modules_upserted": reply.modules_upserted,
        }),
        format!(
            "imported {} items and {} modules\n",
            reply.items_upserted, reply.modules_upserted
        ),
    );
    Ok(())
}

/// Reads a CSV whose header starts with `header` ([`spreadsheet::read`]),
/// each row through `row`; errors name the file, the line and the column.
fn read<T>(
    path: &Path,
    header: &[&str],
    row: impl Fn(&Row) -> Result<T, (usize, String)>,
) -> Result<Vec<T>, BoxError> {
    let file = path.display();
    let input = std::fs::File::open(path).map_err(|e| format!("{file}: {e}"))?;
    let table = spreadsheet::read(std::io::BufReader::new(input), header)
        .map_err(|e| format!("{file}:{}: {}", e.line, e.reason))?;
    let mut out = Vec::with_capacity(table.rows.len());
    for record in &table.rows {
        out.push(row(record).map_err(|(column, why)| {
            format!("{file}:{}: column {}: {why}", record.line, header[column])
        })?);
    }
    Ok(out)
}

/// A `|`-separated list; empty cell, empty list.
fn list(cell: &str) -> Vec<String> {
    cell.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn item(record: &Row) -> Result<pb::Item, (usize, String)> {
    let pass_mark = match record.get(4) {
        "" => None,
        text => Some(
            text.parse::<f64>()
                .map_err(|_| (4, format!("'{text}' is not a number in [0, 1]")))?,
        ),
    };
    Ok(pb::Item {
        id: record.get(0).to_string(),
        skill_ids: list(record.get(1)),
        title: record.get(2).to_string(),
        external_ids: list(record.get(3)),
        pass_mark,
    })
}

fn module(record: &Row) -> Result<pb::Module, (usize, String)> {
    let format = record.get(3);
    let format =
        pb::ModuleFormat::from_str_name(&format!("MODULE_FORMAT_{}", format.to_ascii_uppercase()))
            .filter(|f| *f != pb::ModuleFormat::Unspecified)
            .ok_or_else(|| (3, format!("'{format}' is not a module format")))?;
    let minutes = record.get(4);
    Ok(pb::Module {
        id: record.get(0).to_string(),
        title: record.get(1).to_string(),
        skill_ids: list(record.get(2)),
        format: format as i32,
        duration_minutes: minutes
            .parse()
            .map_err(|_| (4, format!("'{minutes}' is not a whole number of minutes")))?,
        language: record.get(5).to_string(),
        external_ids: list(record.get(6)),
    })
}
