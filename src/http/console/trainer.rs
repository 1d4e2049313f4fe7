//! The trainer's pages: my cohorts, a cohort (learners, mastery heat map,
//! open alerts with acknowledge and resolve, live changes by server-sent
//! events), a learner (mastery over time, answers, modules, next modules).
//!
//! A page stands for the gRPC methods it uses and needs the same role
//! (`ListAlerts`, `GetMastery`, `AcknowledgeAlert`...); every cohort,
//! learner and alert it names is checked against the key's scope, out of
//! scope being "not found" as over gRPC.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Form, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::i18n::Lang;
use super::off_runtime;
use super::page::Page;
use super::session::Signed;
use super::{PageError, may, when};
use crate::domain::access::{Principal, Resource};
use crate::domain::alerts::{Alert, AlertStatus};
use crate::domain::reports::CohortReport;
use crate::domain::risk::{AlertKind, Severity};
use crate::engine::Engine;
use crate::engine::alerts::{AlertScope, TrainerAction};
use crate::error::{Error, Result};

const LIST_ALERTS: &str = "/spoc.v1.AlertService/ListAlerts";
const GET_MASTERY: &str = "/spoc.v1.MasteryService/GetMastery";
const ACKNOWLEDGE: &str = "/spoc.v1.AlertService/AcknowledgeAlert";
const RESOLVE: &str = "/spoc.v1.AlertService/ResolveAlert";
const WATCH: &str = "/spoc.v1.AlertService/WatchAlerts";
const COHORT_REPORT: &str = "/spoc.v1.ReportService/GetCohortReport";

/// Most alerts a cohort page lists (the most recent first).
pub const MAX_ALERTS_SHOWN: usize = 500;
/// Most cohorts the home page lists for a key that sees every cohort.
pub const MAX_COHORTS_SHOWN: usize = 200;
/// Answers shown on a learner's page (the most recent).
pub const RECENT_ANSWERS: usize = 30;
/// Module events shown on a learner's page.
pub const RECENT_MODULES: usize = 20;
/// Next modules shown on a learner's page.
pub const NEXT_MODULES: usize = 3;

/// Whether `who` has the trainer's pages: its role may list alerts, read
/// mastery and act on alerts (trainers and admins).
pub fn is_trainer(who: &Principal) -> bool {
    [LIST_ALERTS, GET_MASTERY, ACKNOWLEDGE, RESOLVE, WATCH]
        .iter()
        .all(|m| may(who, m))
}

/// One cohort on the home page.
#[derive(Debug, Serialize)]
pub struct CohortLine {
    /// Cohort id.
    pub id: String,
    /// Its program.
    pub program_id: String,
    /// Members.
    pub size: usize,
}

/// The cohorts `who` follows: a trainer's scope, or every current cohort
/// (up to [`MAX_COHORTS_SHOWN`]) for a key that sees them all.
pub fn my_cohorts(engine: &Engine, who: &Principal) -> Result<Vec<CohortLine>> {
    let line = |v: crate::engine::cohorts::CohortView| CohortLine {
        size: v.cohort.members.len(),
        id: v.cohort.id,
        program_id: v.cohort.program_id,
    };
    let mut out = Vec::new();
    if let Some(ids) = super::scoped_cohorts(who) {
        for id in ids {
            match engine.cohort(id) {
                Ok(view) => out.push(line(view)),
                // A cohort replaced by a new formation: nothing to show.
                Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        return Ok(out);
    }
    let (programs, _) = engine.list_programs(None, MAX_COHORTS_SHOWN)?;
    for program in programs {
        let ((cohorts, _), _) = engine.list_cohorts(&program.id, None, MAX_COHORTS_SHOWN)?;
        out.extend(cohorts.into_iter().map(line));
        if out.len() >= MAX_COHORTS_SHOWN {
            out.truncate(MAX_COHORTS_SHOWN);
            break;
        }
    }
    Ok(out)
}

/// The query of a cohort's pages.
#[derive(Debug, Deserialize)]
pub struct CohortQuery {
    /// Cohort id.
    #[serde(default)]
    pub id: String,
    /// For the event stream: the alert sequence the page was rendered at.
    #[serde(default)]
    pub after: u64,
}

/// Checks that `who` has the trainer's pages and sees cohort `id`.
fn check_cohort(engine: &Engine, who: &Principal, id: &str, lang: Lang) -> Result<(), PageError> {
    if !is_trainer(who) {
        return Err(PageError::forbidden(lang));
    }
    who.check(Resource::Cohort(id), engine)?;
    Ok(())
}

fn kind_key(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::BlockingPoint => "kind_blocking_point",
        AlertKind::Inactivity => "kind_inactivity",
        AlertKind::MasteryDrop => "kind_mastery_drop",
        AlertKind::PredictedDropout => "kind_predicted_dropout",
        AlertKind::BehindSchedule => "kind_behind_schedule",
        AlertKind::Stopping => "kind_stopping",
    }
}

fn severity(s: Severity) -> (&'static str, &'static str) {
    match s {
        Severity::Info => ("severity_info", "info"),
        Severity::Warning => ("severity_warning", "warning"),
        Severity::Critical => ("severity_critical", "critical"),
    }
}

fn status_key(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Open => "status_open",
        AlertStatus::Acknowledged => "status_acknowledged",
        AlertStatus::Resolved => "status_resolved",
    }
}

/// An alert as the templates show it.
pub fn alert_value(lang: Lang, a: &Alert) -> Value {
    let (severity_key, severity_class) = severity(a.severity);
    context! {
        id => a.id.clone(),
        learner => a.learner_id.clone(),
        program => a.program_id.clone(),
        cohort => a.cohort_id.clone(),
        kind => lang.text(kind_key(a.kind)),
        severity => lang.text(severity_key),
        severity_class => severity_class,
        reason => a.reason.clone(),
        skill => a.skill_id.clone(),
        status => lang.text(status_key(a.status)),
        open => a.status == AlertStatus::Open,
        active => a.status != AlertStatus::Resolved,
        raised => when(a.created_at),
    }
}

/// One cell of the heat map.
#[derive(Debug, Serialize)]
struct Cell {
    percent: u32,
    mastered: bool,
    /// Shade 0 (low) to 4 (high), a CSS class; the text carries the value.
    band: u8,
}

/// The context of a cohort page: members x program skills, the open
/// alerts, and the alert sequence they were read at (the event stream
/// resumes from it, so nothing falls between the page and the stream).
pub fn cohort_context(
    engine: &Engine,
    who: &Principal,
    cohort_id: &str,
    lang: Lang,
) -> Result<Value> {
    let view = engine.cohort(cohort_id)?;
    let program = engine.program(&view.cohort.program_id)?;
    let threshold = engine.mastery_threshold();
    let after = engine.alert_sequence();
    let mut alerts = engine.cohort_active_alerts(who, &view.cohort)?;
    alerts.truncate(MAX_ALERTS_SHOWN);
    let mut open_by_learner: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &alerts {
        *open_by_learner.entry(a.learner_id.as_str()).or_default() += 1;
    }
    let catalog = engine.catalog();
    let skills: Vec<Value> = program
        .skill_ids
        .iter()
        .map(|s| {
            let name = catalog
                .skills
                .get(s)
                .map_or(s.as_str(), |k| k.name.as_str());
            context! { id => s, name => name }
        })
        .collect();
    let mut rows = Vec::with_capacity(view.cohort.members.len());
    for learner in &view.cohort.members {
        let mastery: BTreeMap<String, f64> = engine
            .mastery(learner, &[])?
            .into_iter()
            .map(|m| (m.skill_id, m.p_mastered))
            .collect();
        let cells: Vec<Cell> = program
            .skill_ids
            .iter()
            .map(|s| {
                let p = mastery
                    .get(s)
                    .copied()
                    .unwrap_or_else(|| engine.params().for_skill(s).prior);
                Cell {
                    percent: (p * 100.0).round() as u32,
                    mastered: p >= threshold,
                    band: ((p * 5.0).floor() as u8).min(4),
                }
            })
            .collect();
        rows.push(context! {
            id => learner,
            cells => cells,
            alerts => open_by_learner.get(learner.as_str()).copied().unwrap_or(0),
        });
    }
    let alerts: Vec<Value> = alerts.iter().map(|a| alert_value(lang, a)).collect();
    Ok(context! {
        cohort => context! {
            id => view.cohort.id.clone(),
            program => view.cohort.program_id.clone(),
            size => view.cohort.members.len(),
            locked => view.cohort.locked,
        },
        program_name => program.name.clone(),
        skills => skills,
        rows => rows,
        alerts => alerts,
        after => after,
        report => may(who, COHORT_REPORT),
    })
}

/// The cohort page as HTML (what the bench measures).
pub fn cohort_html(
    engine: &Engine,
    signed: &Signed,
    cohort_id: &str,
    lang: Lang,
) -> Result<String, PageError> {
    check_cohort(engine, &signed.principal, cohort_id, lang)?;
    let ctx = cohort_context(engine, &signed.principal, cohort_id, lang)?;
    super::render(lang, Some(signed), "cohort.html", ctx)
}

/// `GET /console/cohort?id=`.
pub async fn cohort(page: Page, Query(q): Query<CohortQuery>) -> Response {
    let (engine, who, lang) = (page.engine(), page.signed.clone(), page.lang);
    let html = off_runtime(async move { cohort_html(&engine, &who, &q.id, lang) }).await;
    match html {
        Ok(html) => Html(html).into_response(),
        Err(err) => page.fail(err),
    }
}

/// `GET /console/cohort/events?id=&after=`: every change of the cohort's
/// alerts after sequence `after`, as server-sent events named `alert`
/// whose data is JSON: the alert id, its learner (the heat map's count of
/// open alerts follows), whether it is still active, its table
/// row (HTML, forms with this session's CSRF token) and a sentence for
/// screen readers. The stream ends with the session or the key.
pub async fn events(page: Page, headers: HeaderMap, Query(q): Query<CohortQuery>) -> Response {
    let (engine, who, lang) = (page.engine(), page.who(), page.lang);
    let id = q.id.clone();
    let checked = off_runtime(async move { check_cohort(&engine, &who, &id, lang) }).await;
    if let Err(err) = checked {
        return page.fail(err);
    }
    let Some(slot) = page.state.sessions.open_stream(&page.signed.id) else {
        return page.fail(PageError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: lang.text("too_many_streams").to_string(),
        });
    };
    let scope = AlertScope {
        cohorts: BTreeSet::from([q.id.clone()]),
        program: None,
    };
    // A browser reconnecting says where it stopped.
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(q.after, |last| last.max(q.after));
    let receiver = match page.state.engine.watch_alerts(scope, after) {
        Ok(r) => r,
        Err(err) => return page.fail(err),
    };
    let Page { state, signed, .. } = page;
    let (engine, sessions) = (state.engine.clone(), state.sessions.clone());
    let session_id = signed.id.clone();
    let who = signed.principal.clone();
    let live = move || engine.key_is_active(&who.key_id) && sessions.get(&session_id).is_some();
    let engine = state.engine.clone();
    let who = signed.principal.clone();
    let stream = ReceiverStream::new(receiver)
        // The slot lives as long as the stream.
        .take_while(move |_| {
            let _held = &slot;
            live()
        })
        .filter_map(move |event| {
            let alert = event.ok()?.alert;
            engine
                .sees_row(&who, &alert.learner_id, &alert.cohort_id)
                .ok()
                .filter(|seen| *seen)?;
            let row = super::render(
                lang,
                Some(&signed),
                "alert_row.html",
                context! { a => alert_value(lang, &alert) },
            )
            .ok()?;
            let data = serde_json::json!({
                "id": alert.id,
                "learner": alert.learner_id,
                "active": alert.status != AlertStatus::Resolved,
                "html": row,
                "text": format!(
                    "{} {}: {} ({})",
                    lang.text("new_alert"),
                    alert.learner_id,
                    alert.reason,
                    lang.text(status_key(alert.status))
                ),
            });
            Some(Ok::<_, Infallible>(
                Event::default()
                    .event("alert")
                    .id(alert.sequence.to_string())
                    .data(data.to_string()),
            ))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The form of an alert action.
#[derive(Debug, Deserialize)]
pub struct AlertForm {
    /// The alert.
    #[serde(default)]
    pub alert: String,
    /// The trainer's note.
    #[serde(default)]
    pub note: String,
}

/// `POST /console/alert/acknowledge`.
pub async fn acknowledge(page: Page, form: Form<AlertForm>) -> Response {
    act(page, form, TrainerAction::Acknowledge).await
}

/// `POST /console/alert/resolve`.
pub async fn resolve(page: Page, form: Form<AlertForm>) -> Response {
    act(page, form, TrainerAction::Resolve).await
}

/// Acts on an alert as `AcknowledgeAlert` / `ResolveAlert` would (role,
/// scope, the note checked as a text field), then back to its cohort.
async fn act(page: Page, Form(form): Form<AlertForm>, action: TrainerAction) -> Response {
    let method = match action {
        TrainerAction::Acknowledge => ACKNOWLEDGE,
        TrainerAction::Resolve => RESOLVE,
    };
    if !may(&page.signed.principal, method) {
        return page.forbidden();
    }
    let (engine, who) = (page.engine(), page.who());
    let done = off_runtime(async move {
        let id = crate::domain::validate::id("alert", &form.alert)?;
        let note = crate::domain::validate::text("note", &form.note)?;
        who.check(Resource::Alert(&id), engine.as_ref())?;
        engine.act_on_alert(&id, action, &who.name, &note).await
    })
    .await;
    match done {
        Ok(alert) => Redirect::to(&cohort_url(&alert.cohort_id)).into_response(),
        Err(err) => page.fail(err),
    }
}

/// The console address of cohort `id`.
pub fn cohort_url(id: &str) -> String {
    format!(
        "/console/cohort?id={}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// `GET /console/cohort/report?id=`: the cohort's HTML report, as
/// `GetCohortReport` gives it to this key.
pub async fn cohort_report(page: Page, Query(q): Query<CohortQuery>) -> Response {
    report_page(page, COHORT_REPORT, move |engine, who| {
        who.check(Resource::Cohort(&q.id), engine)?;
        engine.cohort_report_for(who, &q.id, None)
    })
    .await
}

/// A report page standing for gRPC `method`: refused without its role,
/// else built off the runtime by `build` for this key, as HTML.
pub async fn report_page(
    page: Page,
    method: &str,
    build: impl FnOnce(&Engine, &Principal) -> Result<CohortReport> + Send + 'static,
) -> Response {
    if !may(&page.signed.principal, method) {
        return page.forbidden();
    }
    let (engine, who) = (page.engine(), page.who());
    let html = off_runtime(async move {
        let report = build(&engine, &who)?;
        Ok::<_, Error>(crate::domain::reports::export::to_html(&report))
    })
    .await;
    match html {
        Ok(html) => report_reply(html),
        Err(err) => page.fail(err),
    }
}

/// A report page: self-contained HTML with inline styles, hence a policy
/// of its own (no script at all).
pub fn report_reply(page: String) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'",
        )],
        Html(page),
    )
        .into_response()
}

/// The query of a learner's page.
#[derive(Debug, Deserialize)]
pub struct LearnerQuery {
    /// Learner id.
    #[serde(default)]
    pub id: String,
    /// The program whose next modules to show (the learner's cohort's).
    #[serde(default)]
    pub program: String,
}

/// The context of a learner's page.
pub fn learner_context(
    engine: &Engine,
    who: &Principal,
    learner: &str,
    program: &str,
) -> Result<Value> {
    who.check(Resource::Learner(learner), engine)?;
    let mastery = engine.mastery(learner, &[])?;
    let skills: Vec<String> = mastery.iter().map(|m| m.skill_id.clone()).collect();
    let history = engine.skill_history(learner, &skills, crate::clock::now_micros())?;
    let threshold = engine.mastery_threshold();
    let current: Vec<Value> = mastery
        .iter()
        .map(|m| {
            let trace: Vec<u32> = history
                .iter()
                .filter(|h| h.skill_id == m.skill_id)
                .map(|h| (h.p_after * 100.0).round() as u32)
                .collect();
            context! {
                skill => m.skill_id.clone(),
                percent => (m.p_mastered * 100.0).round() as u32,
                mastered => m.p_mastered >= threshold,
                attempts => m.attempt_count,
                updated => m.updated_at.map(when),
                trace => trace,
            }
        })
        .collect();
    let answers: Vec<Value> = history
        .iter()
        .rev()
        .take(RECENT_ANSWERS)
        .map(|h| {
            context! {
                when => when(h.at),
                skill => h.skill_id.clone(),
                correct => h.correct,
                before => (h.p_before * 100.0).round() as u32,
                after => (h.p_after * 100.0).round() as u32,
            }
        })
        .collect();
    let modules: Vec<Value> = engine
        .recent_module_events(learner, RECENT_MODULES)?
        .into_iter()
        .rev()
        .map(|a| {
            context! {
                when => when(a.occurred_at),
                module => a.module_id,
                event => format!("{:?}", a.kind).to_lowercase(),
                minutes => a.time_spent_ms / 60_000,
            }
        })
        .collect();
    let (next, shortfall) = if program.is_empty() {
        (Vec::new(), None)
    } else {
        who.check(Resource::Program(program), engine)?;
        match engine.peek_next(learner, program, NEXT_MODULES) {
            Ok(answer) => (
                answer
                    .items
                    .into_iter()
                    .map(|r| {
                        // A diagnostic names the bank's questions to ask,
                        // not a module.
                        context! {
                            module => r.module_id,
                            items => r.item_ids,
                            skill => r.skill_id,
                            minutes => r.duration_minutes,
                            reason => r.reason,
                        }
                    })
                    .collect(),
                answer.shortfall,
            ),
            Err(Error::FailedPrecondition(why)) => (Vec::new(), Some(why)),
            Err(err) => return Err(err),
        }
    };
    Ok(context! {
        learner => learner,
        program => program,
        mastery => current,
        answers => answers,
        modules => modules,
        next => next,
        shortfall => shortfall,
    })
}

/// `GET /console/learner?id=&program=`.
pub async fn learner(page: Page, Query(q): Query<LearnerQuery>) -> Response {
    if !is_trainer(&page.signed.principal) {
        return page.forbidden();
    }
    let (engine, who) = (page.engine(), page.who());
    let ctx = off_runtime(async move { learner_context(&engine, &who, &q.id, &q.program) }).await;
    page.render("learner.html", ctx)
}
