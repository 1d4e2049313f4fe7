//! `spoc activities list|map|ignore`: the xAPI activities statements named
//! that nothing maps (CatalogService.ListUnmappedActivities), and mapping
//! one to a program, module or item, or ignoring it (MapActivity), which
//! replays the statements that waited for it.

use clap::{Args, Subcommand};

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::api::pb::map_activity_request::Target;

/// `spoc activities ...`
#[derive(Debug, Subcommand)]
pub enum ActivitiesCommand {
    /// List the activities statements wait for, with what they said of them.
    List(ListArgs),
    /// Map an activity to a program, module or item (exactly one).
    Map(MapArgs),
    /// Ignore an activity: statements about it are stored without effect.
    Ignore(IgnoreArgs),
}

/// Options of `spoc activities list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc activities map`.
#[derive(Debug, Args)]
pub struct MapArgs {
    /// The activity IRI.
    pub activity_id: String,
    /// The program it stands for (a course).
    #[arg(long, group = "target")]
    pub program: Option<String>,
    /// The module it stands for.
    #[arg(long, group = "target")]
    pub module: Option<String>,
    /// The item (question) it stands for.
    #[arg(long, group = "target")]
    pub item: Option<String>,
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc activities ignore`.
#[derive(Debug, Args)]
pub struct IgnoreArgs {
    /// The activity IRI.
    pub activity_id: String,
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs an activities subcommand.
pub fn run(command: ActivitiesCommand) -> Result<(), BoxError> {
    match command {
        ActivitiesCommand::List(args) => list(args),
        ActivitiesCommand::Map(args) => {
            let target = match (args.program, args.module, args.item) {
                (Some(id), None, None) => Target::ProgramId(id),
                (None, Some(id), None) => Target::ModuleId(id),
                (None, None, Some(id)) => Target::ItemId(id),
                _ => return Err("give one of --program, --module or --item".into()),
            };
            map(args.activity_id, target, args.format, args.client)
        }
        ActivitiesCommand::Ignore(args) => map(
            args.activity_id,
            Target::Ignore(true),
            args.format,
            args.client,
        ),
    }
}

fn list(args: ListArgs) -> Result<(), BoxError> {
    let client = args.client.clone();
    let activities = runtime()?.block_on(async move {
        let mut catalog = Service::connect(&client).await?.catalog();
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = catalog
                .list_unmapped_activities(pb::ListUnmappedActivitiesRequest {
                    page_size: 1000,
                    page_token,
                })
                .await
                .map_err(|s| describe("listing unmapped activities", &s))?
                .into_inner();
            all.extend(page.activities);
            if page.next_page_token.is_empty() {
                return Ok::<_, BoxError>(all);
            }
            page_token = page.next_page_token;
        }
    })?;
    match args.format {
        OutputFormat::Json => output::print_json(&serde_json::Value::Array(
            activities
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "activity_id": a.activity_id,
                        "name": a.name,
                        "description": a.description,
                        "type": a.r#type,
                        "interaction_type": a.interaction_type,
                        "waiting_statements": a.waiting_statements,
                        "learners": a.learners,
                        "first_seen": output::time(a.first_seen.as_ref()),
                        "last_seen": output::time(a.last_seen.as_ref()),
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            let mut table = output::table([
                "activity",
                "name",
                "type",
                "waiting",
                "learners",
                "last seen",
            ]);
            for a in &activities {
                table.add_row([
                    a.activity_id.clone(),
                    a.name.clone(),
                    a.r#type.clone(),
                    a.waiting_statements.to_string(),
                    a.learners.to_string(),
                    output::short_time(a.last_seen.as_ref()),
                ]);
            }
            output::align_right(&mut table, &[3, 4]);
            output::emit(table);
        }
    }
    Ok(())
}

fn map(
    activity_id: String,
    target: Target,
    format: OutputFormat,
    client: ClientArgs,
) -> Result<(), BoxError> {
    let reply = runtime()?
        .block_on(async move {
            Service::connect(&client)
                .await?
                .catalog()
                .map_activity(pb::MapActivityRequest {
                    activity_id,
                    target: Some(target),
                })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| describe("mapping the activity", &s).into())
        })
        .map_err(|e: BoxError| e)?;
    output::outcome(
        format,
        serde_json::json!({
            "replayed": reply.replayed,
            "still_waiting": reply.still_waiting,
        }),
        format!(
            "replayed {} waiting statements; {} still waiting\n",
            reply.replayed, reply.still_waiting
        ),
    );
    Ok(())
}
