//! `spoc alerts ...`: a trainer's view of at-risk learners in a running
//! service: list them, watch them live, acknowledge or resolve them.

use clap::{Args, Subcommand, ValueEnum};
use tokio_stream::StreamExt;

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;

/// `spoc alerts ...`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, filtered by program, cohort, learner, state or kind.
    List(ListArgs),
    /// Follow alert changes live (the active ones first), one line each.
    Watch(WatchArgs),
    /// Mark an alert as seen and being handled.
    Ack(ActArgs),
    /// Close an alert.
    Resolve(ActArgs),
}

/// An alert's lifecycle state, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Raised, nobody has looked yet.
    Open,
    /// A trainer is on it.
    Acknowledged,
    /// Closed by a trainer or cleared by the engine.
    Resolved,
}

/// What an alert is about, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Repeated failures on one skill without mastery gain.
    #[value(alias = "blocking_point")]
    BlockingPoint,
    /// Away much longer than the learner's usual rhythm.
    Inactivity,
    /// Mastery of a skill fell well below its peak.
    #[value(alias = "mastery_drop")]
    MasteryDrop,
    /// Retired (no longer raised); as a filter, also matches the two kinds
    /// that replace it.
    #[value(alias = "predicted_dropout")]
    PredictedDropout,
    /// Will likely not complete the program by its end.
    #[value(alias = "behind_schedule")]
    BehindSchedule,
    /// Likely to stop within the next weeks.
    Stopping,
}

/// Options of `spoc alerts list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this program.
    #[arg(long)]
    pub program: Option<String>,
    /// Only this cohort (e.g. `excel/v1/c001`).
    #[arg(long)]
    pub cohort: Option<String>,
    /// Only this learner.
    #[arg(long)]
    pub learner: Option<String>,
    /// Only alerts in this state (any state when absent).
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only this kind.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Print at most this many (all when absent).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc alerts watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch this program's alerts.
    #[arg(long, required_unless_present = "cohort")]
    pub program: Option<String>,
    /// Watch this cohort's alerts (repeatable).
    #[arg(long)]
    pub cohort: Vec<String>,
    /// Resume after this alert sequence number (every change since, then
    /// live ones); 0 starts with the active alerts.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// One line of text per change, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc alerts ack` and `spoc alerts resolve`.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// The alert id (as listed).
    #[arg(long)]
    pub id: String,
    /// Who acts (trainer id), recorded on the alert.
    #[arg(long)]
    pub by: String,
    /// A note for the other trainers.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs an alerts subcommand.
pub fn run(command: AlertsCommand) -> Result<(), BoxError> {
    match command {
        AlertsCommand::List(args) => list(args),
        AlertsCommand::Watch(args) => watch(args),
        AlertsCommand::Ack(args) => act(args, false),
        AlertsCommand::Resolve(args) => act(args, true),
    }
}

/// Every alert matching `request`, page after page, at most `limit`.
pub async fn list_all(
    service: &Service,
    mut request: pb::ListAlertsRequest,
    limit: Option<usize>,
) -> Result<Vec<pb::Alert>, BoxError> {
    let mut client = service.alerts();
    let mut alerts = Vec::new();
    request.page_size = 1000;
    loop {
        let page = client
            .list_alerts(request.clone())
            .await
            .map_err(|s| describe("listing alerts", &s))?
            .into_inner();
        alerts.extend(page.alerts);
        if limit.is_some_and(|n| alerts.len() >= n) || page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    if let Some(n) = limit {
        alerts.truncate(n);
    }
    Ok(alerts)
}

fn list(args: ListArgs) -> Result<(), BoxError> {
    let request = pb::ListAlertsRequest {
        program_id: args.program.clone().unwrap_or_default(),
        cohort_id: args.cohort.clone().unwrap_or_default(),
        learner_id: args.learner.clone().unwrap_or_default(),
        kind: args.kind.map_or(pb::AlertKind::Unspecified, |k| match k {
            KindArg::BlockingPoint => pb::AlertKind::BlockingPoint,
            KindArg::Inactivity => pb::AlertKind::Inactivity,
            KindArg::MasteryDrop => pb::AlertKind::MasteryDrop,
            KindArg::PredictedDropout => pb::AlertKind::PredictedDropout,
            KindArg::BehindSchedule => pb::AlertKind::BehindSchedule,
            KindArg::Stopping => pb::AlertKind::Stopping,
        }) as i32,
        status: args
            .state
            .map_or(pb::AlertStatus::Unspecified, |s| match s {
                StateArg::Open => pb::AlertStatus::Open,
                StateArg::Acknowledged => pb::AlertStatus::Acknowledged,
                StateArg::Resolved => pb::AlertStatus::Resolved,
            }) as i32,
        page_size: 0,
        page_token: String::new(),
    };
    let limit = args.limit;
    let client = args.client.clone();
    let alerts = runtime()?.block_on(async move {
        let service = Service::connect(&client).await?;
        list_all(&service, request, limit).await
    })?;
    match args.format {
        OutputFormat::Json => output::print_json(&serde_json::Value::Array(
            alerts.iter().map(alert_json).collect(),
        )),
        OutputFormat::Table => {
            output::emit(alerts_table(&alerts));
            output::emit(format!("{} alerts", alerts.len()));
        }
    }
    Ok(())
}

fn watch(args: WatchArgs) -> Result<(), BoxError> {
    let request = pb::WatchAlertsRequest {
        cohort_ids: args.cohort.clone(),
        program_id: args.program.clone().unwrap_or_default(),
        after_sequence: args.since,
    };
    let format = args.format;
    let client = args.client.clone();
    let last = runtime()?.block_on(async move {
        let service = Service::connect(&client).await?;
        let mut stream = service
            .alerts()
            .watch_alerts(request)
            .await
            .map_err(|s| describe("watching alerts", &s))?
            .into_inner();
        let mut last = args.since;
        while let Some(event) = stream.next().await {
            let event = event.map_err(|s| describe("alert stream", &s))?;
            let Some(alert) = event.alert else { continue };
            last = last.max(alert.sequence);
            match format {
                OutputFormat::Json => {
                    let mut value = alert_json(&alert);
                    value["snapshot"] = serde_json::Value::Bool(event.snapshot);
                    output::emit(value);
                }
                OutputFormat::Table => output::emit(alert_line(&alert, event.snapshot)),
            }
        }
        Ok::<_, BoxError>(last)
    })?;
    eprintln!("the service ended the stream; resume with --since {last}");
    Ok(())
}

fn act(args: ActArgs, resolve: bool) -> Result<(), BoxError> {
    let client = args.client.clone();
    let (id, by, note) = (args.id.clone(), args.by.clone(), args.note.clone());
    let alert = runtime()?
        .block_on(async move {
            let mut alerts = Service::connect(&client).await?.alerts();
            let reply = if resolve {
                alerts
                    .resolve_alert(pb::ResolveAlertRequest {
                        alert_id: id.clone(),
                        by,
                        note,
                    })
                    .await
            } else {
                alerts
                    .acknowledge_alert(pb::AcknowledgeAlertRequest {
                        alert_id: id.clone(),
                        by,
                        note,
                    })
                    .await
            };
            reply
                .map(tonic::Response::into_inner)
                .map_err(|s| describe(&format!("alert {id:?}"), &s).into())
        })
        .map_err(|e: BoxError| e)?;
    match args.format {
        OutputFormat::Json => output::print_json(&alert_json(&alert)),
        OutputFormat::Table => output::emit(alerts_table(std::slice::from_ref(&alert))),
    }
    Ok(())
}

/// The short name of an alert's kind (`blocking_point`).
pub fn kind_name(alert: &pb::Alert) -> String {
    output::enum_name(
        pb::AlertKind::try_from(alert.kind)
            .unwrap_or_default()
            .as_str_name(),
        "ALERT_KIND_",
    )
}

/// The short name of an alert's severity (`critical`).
pub fn severity_name(alert: &pb::Alert) -> String {
    output::enum_name(
        pb::AlertSeverity::try_from(alert.severity)
            .unwrap_or_default()
            .as_str_name(),
        "ALERT_SEVERITY_",
    )
}

/// The short name of an alert's state (`open`).
pub fn state_name(alert: &pb::Alert) -> String {
    output::enum_name(
        pb::AlertStatus::try_from(alert.status)
            .unwrap_or_default()
            .as_str_name(),
        "ALERT_STATUS_",
    )
}

/// One alert for scripts: every field by name, enums as short names.
pub fn alert_json(a: &pb::Alert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "learner_id": a.learner_id,
        "program_id": a.program_id,
        "cohort_id": a.cohort_id,
        "kind": kind_name(a),
        "severity": severity_name(a),
        "state": state_name(a),
        "reason": a.reason,
        "skill_id": a.skill_id,
        "signals": a.signals,
        "created_at": output::time(a.created_at.as_ref()),
        "updated_at": output::time(a.updated_at.as_ref()),
        "status_by": a.status_by,
        "note": a.note,
        "resolved_at": output::time(a.resolved_at.as_ref()),
        "sequence": a.sequence,
    })
}

/// Alerts for people: one row each, the reason last.
pub fn alerts_table(alerts: &[pb::Alert]) -> comfy_table::Table {
    let mut t = output::table([
        "alert", "learner", "cohort", "kind", "severity", "state", "updated", "reason",
    ]);
    for a in alerts {
        t.add_row(vec![
            a.id.clone(),
            a.learner_id.clone(),
            if a.cohort_id.is_empty() {
                a.program_id.clone()
            } else {
                a.cohort_id.clone()
            },
            kind_name(a),
            severity_name(a),
            state_name(a),
            output::short_time(a.updated_at.as_ref()),
            a.reason.clone(),
        ]);
    }
    t
}

/// One alert change as a line of text, for `watch`.
pub fn alert_line(a: &pb::Alert, snapshot: bool) -> String {
    format!(
        "#{:<6} {} {:<8} {:<17} {} in {}: {} [{}{}]",
        a.sequence,
        output::time(a.updated_at.as_ref()),
        severity_name(a),
        kind_name(a),
        a.learner_id,
        if a.cohort_id.is_empty() {
            &a.program_id
        } else {
            &a.cohort_id
        },
        a.reason,
        state_name(a),
        if snapshot { ", active at start" } else { "" }
    )
}
