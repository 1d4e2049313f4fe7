//! Operator routes: the statements waiting for a replay, the replay itself,
//! and Prometheus metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::error::HttpError;
use super::{AppState, auth};
use crate::domain::access::XAPI_ADMIN;
use crate::domain::paging;
use crate::offload;

/// The query of `GET /xapi/unresolved`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Page size; 0 or absent is 100, at most 1000.
    page_size: Option<i32>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// One waiting statement.
#[derive(Debug, Serialize)]
struct Waiting {
    id: String,
    reason: String,
    received_at: String,
    statement: serde_json::Value,
}

/// A page of waiting statements.
#[derive(Debug, Serialize)]
struct WaitingPage {
    statements: Vec<Waiting>,
    next_page_token: String,
}

/// What a replay did.
#[derive(Debug, Serialize)]
struct Replayed {
    applied: usize,
    waiting: usize,
}

/// `GET /xapi/unresolved`: the statements kept because they name an
/// activity or program the catalog does not know.
pub async fn unresolved(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, HttpError> {
    auth::authorize(&state.engine, &headers, XAPI_ADMIN)?;
    let limit = paging::page_size("page_size", query.page_size.unwrap_or(0))?;
    let scope = "GET /xapi/unresolved";
    let page_token = query.page_token.as_deref().unwrap_or("");
    let after = paging::page_token("page_token", page_token, scope)?;
    let (rows, next) = state
        .engine
        .unresolved_statements(after.as_deref(), limit)?;
    let statements = rows
        .into_iter()
        .map(|(id, u)| Waiting {
            id,
            reason: u.reason,
            received_at: crate::domain::xapi::statement::format_micros(u.received_at),
            statement: serde_json::from_str(&u.raw).unwrap_or(serde_json::Value::String(u.raw)),
        })
        .collect();
    Ok(Json(WaitingPage {
        statements,
        next_page_token: paging::next_page_token(next, scope),
    }))
}

/// `POST /xapi/unresolved/replay`: applies the waiting statements the
/// catalog now resolves (also done after every item or module write).
pub async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, HttpError> {
    auth::authorize(&state.engine, &headers, XAPI_ADMIN)?;
    let engine = state.engine.clone();
    let report = offload::blocking(async move { engine.replay_unresolved().await }).await??;
    Ok(Json(Replayed {
        applied: report.applied,
        waiting: report.waiting,
    }))
}

/// `GET /metrics`: Prometheus text exposition of the xAPI counters.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    xapi_metrics(&state.engine.xapi_counters(), &mut out);
    let _ = writeln!(
        out,
        "# HELP spoc_xapi_statements_total Statements by what became of them (attempt, \
         module_event, enrolment, voided, waiting, no_effect, refused) and verb; a waiting \
         statement is counted again when a replay applies it.\n\
         # TYPE spoc_xapi_statements_total counter"
    );
    for (outcome, verb, count) in state.engine.xapi_outcomes() {
        let _ = writeln!(
            out,
            "spoc_xapi_statements_total{{outcome=\"{}\",verb=\"{verb}\"}} {count}",
            outcome.label()
        );
    }
    let _ = writeln!(
        out,
        "# HELP spoc_xapi_requests_rejected_total xAPI requests refused, by HTTP status.\n\
         # TYPE spoc_xapi_requests_rejected_total counter"
    );
    for (code, count) in state.rejected.iter() {
        let _ = writeln!(
            out,
            "spoc_xapi_requests_rejected_total{{code=\"{code}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }
    // The outbox gauges count tree entries: off the runtime's workers.
    let engine = state.engine.clone();
    match offload::blocking(async move { engine.webhook_stats() }).await {
        Ok(Ok(stats)) => webhook_metrics(&stats, &mut out),
        Ok(Err(err)) => tracing::error!(error = %err, "webhook figures unreadable"),
        Err(err) => tracing::error!(error = %err, "webhook figures task failed"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The xAPI statement counters and the gauge of statements waiting.
fn xapi_metrics(c: &crate::engine::xapi::XapiCounters, out: &mut String) {
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let counters = [
        (
            "spoc_xapi_statements_received_total",
            "Statements in accepted batches, duplicates included.",
            c.received,
        ),
        (
            "spoc_xapi_statements_stored_total",
            "Statements newly stored.",
            c.stored,
        ),
        (
            "spoc_xapi_statements_duplicate_total",
            "Statements already stored with the same content.",
            c.duplicates,
        ),
        (
            "spoc_xapi_statements_unresolved_total",
            "Statements stored unresolved (unknown activity or program).",
            c.unresolved_total,
        ),
        (
            "spoc_xapi_statements_replayed_total",
            "Unresolved statements applied by a replay.",
            c.replayed,
        ),
        (
            "spoc_xapi_statements_voided_total",
            "Statements voided.",
            c.voided,
        ),
        (
            "spoc_xapi_statements_ignored_total",
            "Statements stored without effect (verb or object not mapped).",
            c.ignored,
        ),
        (
            "spoc_xapi_attempts_total",
            "Attempts produced from statements.",
            c.attempts,
        ),
        (
            "spoc_xapi_activities_total",
            "Module events produced from statements.",
            c.activities,
        ),
        (
            "spoc_xapi_learners_created_total",
            "Learners created from statement actors.",
            c.learners_created,
        ),
    ];
    for (name, help, value) in counters {
        metric(name, "counter", help, value);
    }
    metric(
        "spoc_xapi_statements_unresolved",
        "gauge",
        "Statements waiting for a replay now.",
        c.unresolved_now,
    );
}

/// The webhook delivery counters and gauges (`engine/webhooks`).
fn webhook_metrics(stats: &crate::engine::webhooks::WebhookStats, out: &mut String) {
    for (name, kind, help, value) in [
        (
            "spoc_webhook_delivered_total",
            "counter",
            "Webhook messages delivered (2xx) since start.",
            stats.delivered,
        ),
        (
            "spoc_webhook_retried_total",
            "counter",
            "Failed webhook attempts scheduled for a retry since start.",
            stats.retried,
        ),
        (
            "spoc_webhook_dead_lettered_total",
            "counter",
            "Webhook messages given up after the retry window since start.",
            stats.dead_lettered,
        ),
        (
            "spoc_webhook_pending",
            "gauge",
            "Webhook messages waiting for delivery or a retry now.",
            stats.pending,
        ),
        (
            "spoc_webhook_dead_letters",
            "gauge",
            "Webhook dead letters kept now.",
            stats.dead_letters,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
