//! The manager's pages: programs, a program's cohorts (lock, move a
//! learner), cohort formation as a preview (a dry run, nothing stored) with
//! the balance report beside the random draw, then the commit; the HTML
//! program report.
//!
//! Each action needs the role of its gRPC method (`FormCohorts`,
//! `MoveLearner`, `LockCohort`, `GetProgramReport`): managers and admins.

use axum::extract::{Form, Query};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::i18n::Lang;
use super::may;
use super::off_runtime;
use super::page::Page;
use super::trainer::report_page;
use crate::domain::access::{Principal, Resource};
use crate::domain::cohorts::Objective;
use crate::domain::limits::MAX_COHORT_ID_BYTES;
use crate::domain::validate;
use crate::engine::Engine;
use crate::engine::cohorts::{CohortView, FormOptions, FormedCohorts};
use crate::error::{Error, Result};

const LIST_PROGRAMS: &str = "/spoc.v1.ProgramService/ListPrograms";
const FORM_COHORTS: &str = "/spoc.v1.CohortService/FormCohorts";
const MOVE_LEARNER: &str = "/spoc.v1.CohortService/MoveLearner";
const LOCK_COHORT: &str = "/spoc.v1.CohortService/LockCohort";
const LIST_COHORTS: &str = "/spoc.v1.CohortService/ListCohorts";
const PROGRAM_REPORT: &str = "/spoc.v1.ReportService/GetProgramReport";

/// Most programs the home page lists.
pub const MAX_PROGRAMS_SHOWN: usize = 200;
/// Most cohorts a program page lists.
pub const MAX_COHORTS_SHOWN: usize = 1000;

/// Whether `who` has the manager's pages (managers and admins).
pub fn is_manager(who: &Principal) -> bool {
    [
        LIST_PROGRAMS,
        FORM_COHORTS,
        MOVE_LEARNER,
        LOCK_COHORT,
        LIST_COHORTS,
    ]
    .iter()
    .all(|m| may(who, m))
}

/// One program on the home page.
#[derive(Debug, Serialize)]
pub struct ProgramLine {
    /// Program id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its skills.
    pub skills: usize,
}

/// The programs, first [`MAX_PROGRAMS_SHOWN`].
pub fn programs(engine: &Engine) -> Result<Vec<ProgramLine>> {
    let (programs, _) = engine.list_programs(None, MAX_PROGRAMS_SHOWN)?;
    Ok(programs
        .into_iter()
        .map(|p| ProgramLine {
            skills: p.skill_ids.len(),
            id: p.id,
            name: p.name,
        })
        .collect())
}

fn cohort_value(lang: Lang, view: &CohortView) -> Value {
    context! {
        id => view.cohort.id.clone(),
        size => view.cohort.members.len(),
        companies => view.company_count,
        language => view.language.clone(),
        locked => view.cohort.locked,
        locked_text => lang.text(if view.cohort.locked { "yes" } else { "no" }),
        members => view.cohort.members.clone(),
        violations => view.violations.iter().map(|b| b.message.clone()).collect::<Vec<_>>(),
    }
}

/// The query of a program page.
#[derive(Debug, Deserialize)]
pub struct ProgramQuery {
    /// Program id.
    #[serde(default)]
    pub id: String,
    /// What was just done: `committed`, `moved`, `lock`.
    #[serde(default)]
    pub done: String,
    /// The formation version just committed.
    #[serde(default)]
    pub version: u64,
}

/// The context of a program page.
pub fn program_context(engine: &Engine, who: &Principal, id: &str, lang: Lang) -> Result<Value> {
    who.check(Resource::Program(id), engine)?;
    let program = engine.program(id)?;
    let ((cohorts, _), version) = engine.list_cohorts(id, None, MAX_COHORTS_SHOWN)?;
    let mut members: Vec<Value> = Vec::new();
    for c in &cohorts {
        for m in &c.cohort.members {
            members.push(context! { learner => m, cohort => c.cohort.id.clone() });
        }
    }
    Ok(context! {
        program => context! { id => program.id.clone(), name => program.name.clone() },
        version => version,
        cohorts => cohorts.iter().map(|c| cohort_value(lang, c)).collect::<Vec<_>>(),
        members => members,
        report => may(who, PROGRAM_REPORT),
    })
}

/// `GET /console/program?id=`.
pub async fn program(page: Page, Query(q): Query<ProgramQuery>) -> Response {
    if !is_manager(&page.signed.principal) {
        return page.forbidden();
    }
    let (engine, who, lang) = (page.engine(), page.who(), page.lang);
    let id = q.id.clone();
    let ctx = off_runtime(async move { program_context(&engine, &who, &id, lang) }).await;
    let flash = match q.done.as_str() {
        "committed" => Some(format!("{} {}", lang.text("committed"), q.version)),
        "moved" => Some(lang.text("moved").to_string()),
        "lock" => Some(lang.text("lock_changed").to_string()),
        _ => None,
    };
    page.render(
        "program.html",
        ctx.map(|ctx| context! { flash => flash, ..ctx }),
    )
}

/// The formation form.
#[derive(Debug, Deserialize)]
pub struct FormationForm {
    /// Program id.
    #[serde(default)]
    pub program: String,
    /// `balanced` or `leveled`.
    #[serde(default)]
    pub objective: String,
    /// Seed of the formation (the commit repeats the preview's).
    #[serde(default)]
    pub seed: String,
    /// `preview` (dry run) or `commit`.
    #[serde(default)]
    pub action: String,
}

/// The options of a formation form, checked, naming the field.
fn form_options(form: &FormationForm) -> Result<FormOptions> {
    let objective = match form.objective.as_str() {
        "" | "balanced" => Objective::Balanced,
        "leveled" => Objective::Leveled,
        other => {
            return Err(Error::invalid(
                "objective",
                format!("must be balanced or leveled, got '{other}'"),
            ));
        }
    };
    let seed = if form.seed.trim().is_empty() {
        1
    } else {
        form.seed
            .trim()
            .parse()
            .map_err(|_| Error::invalid("seed", "must be a whole number from 0"))?
    };
    let dry_run = match form.action.as_str() {
        "preview" => true,
        "commit" => false,
        other => {
            return Err(Error::invalid(
                "action",
                format!("must be preview or commit, got '{other}'"),
            ));
        }
    };
    Ok(FormOptions {
        objective,
        seed,
        dry_run,
    })
}

/// The context of a formation preview: the cohorts it would make, the
/// balance figures beside the random draw's, who could not be placed, and
/// the same choices for the commit.
pub fn formation_context(
    lang: Lang,
    program: &str,
    form: &FormationForm,
    formed: &FormedCohorts,
) -> Value {
    let r = &formed.report;
    let skills: Vec<Value> = r
        .skills
        .iter()
        .map(|s| {
            context! {
                skill => s.name.clone(),
                mean_gap => format!("{:.3}", s.mean_gap),
                sd_gap => format!("{:.3}", s.sd_gap),
                random_mean_gap => format!("{:.3}", s.random_mean_gap),
                random_sd_gap => format!("{:.3}", s.random_sd_gap),
            }
        })
        .collect();
    context! {
        program => program,
        objective => if form.objective == "leveled" { "leveled" } else { "balanced" },
        seed => form.seed.trim(),
        version => formed.version,
        cohorts => formed.cohorts.iter().map(|c| cohort_value(lang, c)).collect::<Vec<_>>(),
        skills => skills,
        objective_value => format!("{:.3}", r.objective_value),
        random_objective_value => format!("{:.3}", r.random_objective_value),
        max_company_share => format!("{:.0} %", r.max_company_share * 100.0),
        unplaced => formed.unplaced.iter().map(|u| context! { id => u.id.clone(), reason => u.reason.clone() }).collect::<Vec<_>>(),
    }
}

/// `POST /console/program/form`: a preview renders the dry run with a
/// commit button; a commit forms and stores, then shows the program.
pub async fn form(page: Page, Form(form): Form<FormationForm>) -> Response {
    if !is_manager(&page.signed.principal) {
        return page.forbidden();
    }
    let options = match form_options(&form) {
        Ok(o) => o,
        Err(err) => return page.fail(err),
    };
    let engine = page.engine();
    let program = form.program.clone();
    let formed = off_runtime(async move {
        let program = validate::id("program", &program)?;
        engine.form_cohorts(&program, options).await
    })
    .await;
    let formed = match formed {
        Ok(f) => f,
        Err(err) => return page.fail(err),
    };
    if options.dry_run {
        let ctx = formation_context(page.lang, &form.program, &form, &formed);
        return page.render("formation.html", Ok(ctx));
    }
    Redirect::to(&format!(
        "{}&done=committed&version={}",
        program_url(&form.program),
        formed.version
    ))
    .into_response()
}

/// The console address of program `id`.
pub fn program_url(id: &str) -> String {
    format!(
        "/console/program?id={}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// The move form.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    /// Program id.
    #[serde(default)]
    pub program: String,
    /// The learner to move.
    #[serde(default)]
    pub learner: String,
    /// The cohort to move them to.
    #[serde(default)]
    pub target: String,
}

/// `POST /console/program/move`.
pub async fn move_learner(page: Page, Form(form): Form<MoveForm>) -> Response {
    if !is_manager(&page.signed.principal) {
        return page.forbidden();
    }
    let engine = page.engine();
    let (program, learner, target) = (form.program.clone(), form.learner, form.target);
    let done = off_runtime(async move {
        let program = validate::id("program", &program)?;
        let learner = validate::id("learner", &learner)?;
        let target = validate::long_id("target", &target, MAX_COHORT_ID_BYTES)?;
        engine.move_learner(&program, &learner, &target).await
    })
    .await;
    match done {
        Ok(_) => {
            Redirect::to(&format!("{}&done=moved", program_url(&form.program))).into_response()
        }
        Err(err) => page.fail(err),
    }
}

/// The lock form.
#[derive(Debug, Deserialize)]
pub struct LockForm {
    /// The cohort.
    #[serde(default)]
    pub cohort: String,
    /// `true` to lock, anything else to unlock.
    #[serde(default)]
    pub locked: String,
}

/// `POST /console/cohort/lock`.
pub async fn lock(page: Page, Form(form): Form<LockForm>) -> Response {
    if !is_manager(&page.signed.principal) {
        return page.forbidden();
    }
    let engine = page.engine();
    let locked = form.locked == "true";
    let done = off_runtime(async move {
        let cohort = validate::long_id("cohort", &form.cohort, MAX_COHORT_ID_BYTES)?;
        engine.lock_cohort(&cohort, locked).await
    })
    .await;
    match done {
        Ok(view) => Redirect::to(&format!(
            "{}&done=lock",
            program_url(&view.cohort.program_id)
        ))
        .into_response(),
        Err(err) => page.fail(err),
    }
}

/// `GET /console/program/report?id=`: the program's HTML report, as
/// `GetProgramReport` gives it to this key.
pub async fn program_report(page: Page, Query(q): Query<ProgramQuery>) -> Response {
    report_page(page, PROGRAM_REPORT, move |engine, who| {
        who.check(Resource::Program(&q.id), engine)?;
        engine.program_report_for(who, &q.id)
    })
    .await
}
