//! `spoc.v1.ReportService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::pb::{self, report_service_server::ReportService};
use super::validate as check;
use crate::domain::reports::{AlertCount, BlockingScope, CohortReport, ScopeKind, to_csv, to_html};
use crate::domain::risk::AlertKind;
use crate::engine::Engine;
use crate::engine::reports::CertificationView;
use crate::error::{Error, Result};
use crate::offload;

/// The least time a scoped `GetCohortReport` takes to answer NOT_FOUND:
/// above what reading a cohort's members takes, so that an existing cohort
/// outside the key's scope and an unknown id answer alike.
const NOT_FOUND_FLOOR: std::time::Duration = std::time::Duration::from_millis(3);

/// Serves reports and certifications over the engine.
pub struct ReportApi {
    engine: Arc<Engine>,
}

impl ReportApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Builds a report off the workers (it reads every answer of every
    /// learner in scope and may render charts) and answers it in `format`.
    async fn report(
        &self,
        format: Format,
        build: impl FnOnce(&Engine) -> Result<CohortReport> + Send + 'static,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let engine = self.engine.clone();
        let response =
            offload::blocking(async move { build(&engine).map(|r| respond(r, format)) }).await??;
        Ok(Response::new(response))
    }
}

/// The text rendering asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    None,
    Csv,
    Html,
}

fn format_from_pb(field: &str, value: i32) -> Result<Format> {
    use pb::ReportFormat as F;
    match F::try_from(value) {
        Ok(F::Unspecified) => Ok(Format::None),
        Ok(F::Csv) => Ok(Format::Csv),
        Ok(F::Html) => Ok(Format::Html),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown report format {value}: use CSV (1) or HTML (2)"),
        )),
    }
}

/// A report with its rendering (computed on the blocking thread too).
fn respond(report: CohortReport, format: Format) -> pb::GetReportResponse {
    let (rendered, content_type) = match format {
        Format::None => (String::new(), String::new()),
        Format::Csv => (to_csv(&report), "text/csv; charset=utf-8".to_string()),
        Format::Html => (to_html(&report), "text/html; charset=utf-8".to_string()),
    };
    pb::GetReportResponse {
        report: Some(report.into()),
        rendered,
        content_type,
    }
}

fn tally(kind: Option<AlertKind>, count: AlertCount) -> pb::AlertTally {
    pb::AlertTally {
        kind: kind.map_or(pb::AlertKind::Unspecified, pb::AlertKind::from) as i32,
        raised: count.raised as u32,
        resolved: count.resolved as u32,
    }
}

impl From<CohortReport> for pb::Report {
    fn from(r: CohortReport) -> Self {
        Self {
            scope_kind: match r.scope.kind {
                ScopeKind::Cohort => "cohort",
                ScopeKind::Program => "program",
            }
            .to_string(),
            scope_id: r.scope.id,
            scope_name: r.scope.name,
            generated_at: Some(timestamp(r.generated_at)),
            mastery_threshold: r.mastery_threshold,
            learner_count: r.learners as u32,
            completed_count: r.completed as u32,
            completion_rate: r.completion_rate,
            module_time: r
                .module_time
                .into_iter()
                .map(|m| pb::ModuleTime {
                    module_id: m.module_id,
                    name: m.name,
                    learner_count: m.learners as u32,
                    median_minutes: m.median_minutes,
                    p90_minutes: m.p90_minutes,
                })
                .collect(),
            blocking_points: r
                .blocking_points
                .into_iter()
                .map(|b| pb::BlockingPoint {
                    scope: match b.scope {
                        BlockingScope::Skill => "skill",
                        BlockingScope::Module => "module",
                    }
                    .to_string(),
                    id: b.id,
                    name: b.name,
                    learners_blocked: b.learners_blocked as u32,
                    learners_attempted: b.learners_attempted as u32,
                    failed_attempts: b.failed_attempts as u32,
                })
                .collect(),
            competence: r
                .competence
                .into_iter()
                .map(|c| pb::SkillCompetence {
                    skill_id: c.skill_id,
                    name: c.name,
                    learner_count: c.learners as u32,
                    before_mean: c.before_mean,
                    after_mean: c.after_mean,
                    mastered_now: c.mastered_now as u32,
                })
                .collect(),
            participation: r
                .participation
                .into_iter()
                .map(|w| pb::WeekActivity {
                    week: w.week,
                    starts_on: w.starts_on,
                    active_learners: w.active_learners as u32,
                    completed_cumulative: w.completed_cumulative as u32,
                })
                .collect(),
            alerts: Some(tally(None, r.alerts)),
            alerts_by_kind: r
                .alerts_by_kind
                .into_iter()
                .map(|(kind, count)| tally(Some(kind), count))
                .collect(),
            certified: r
                .certified
                .into_iter()
                .map(|c| pb::CertifiedLearner {
                    learner_id: c.learner_id,
                    certified_at: Some(timestamp(c.certified_at)),
                    certified_on: c.certified_on,
                    attempts_per_skill: c.attempts_per_skill.into_iter().collect(),
                })
                .collect(),
        }
    }
}

impl From<CertificationView> for pb::GetCertificationResponse {
    fn from(v: CertificationView) -> Self {
        Self {
            learner_id: v.learner_id,
            program_id: v.program_id,
            certified: v.certified.is_some(),
            certified_at: v.certified.as_ref().map(|c| timestamp(c.certified_at)),
            certified_on: v.certified.map(|c| c.certified_on).unwrap_or_default(),
            mastery_threshold: v.mastery_threshold,
            skills: v
                .skills
                .into_iter()
                .map(|s| pb::CertificationSkill {
                    skill_id: s.skill_id,
                    p_mastered: s.p_mastered,
                    mastered: s.mastered,
                    attempt_count: s.attempt_count,
                    attempts_to_certification: s.attempts_to_certification,
                })
                .collect(),
        }
    }
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    async fn get_cohort_report(
        &self,
        request: Request<pb::GetCohortReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        // Fields first: a bad id is INVALID_ARGUMENT for every caller.
        let cohort_id = request.get_ref().cohort_id.clone();
        if cohort_id.is_empty() {
            return Err(Error::invalid("cohort_id", "must not be empty").into());
        }
        if cohort_id.len() > super::cohorts::MAX_COHORT_ID_BYTES
            || cohort_id.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "cohort_id",
                "is not a cohort id (too long or with control characters)",
            )
            .into());
        }
        let program_id = check::optional_id("program_id", &request.get_ref().program_id)?;
        let format = format_from_pb("format", request.get_ref().format)?;
        // A company key's check reads the cohort's members when it exists
        // and nothing when it does not: a NOT_FOUND answers no earlier than
        // a fixed floor, so its time does not tell the two apart.
        let started = tokio::time::Instant::now();
        let who = match super::scope::authorize(&self.engine, &request) {
            Ok(who) => who,
            Err(status) => {
                if status.code() == tonic::Code::NotFound {
                    tokio::time::sleep_until(started + NOT_FOUND_FLOOR).await;
                }
                return Err(status);
            }
        };
        self.report(format, move |engine| {
            let program = (!program_id.is_empty()).then_some(program_id.as_str());
            engine.cohort_report_for(&who, &cohort_id, program)
        })
        .await
    }

    async fn get_program_report(
        &self,
        request: Request<pb::GetProgramReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let program_id = check::id("program_id", &request.get_ref().program_id)?;
        let format = format_from_pb("format", request.get_ref().format)?;
        let who = super::scope::authorize(&self.engine, &request)?;
        self.report(format, move |engine| {
            engine.program_report_for(&who, &program_id)
        })
        .await
    }

    async fn get_certification(
        &self,
        request: Request<pb::GetCertificationRequest>,
    ) -> Result<Response<pb::GetCertificationResponse>, Status> {
        let learner_id = check::id("learner_id", &request.get_ref().learner_id)?;
        let program_id = check::id("program_id", &request.get_ref().program_id)?;
        super::scope::authorize(&self.engine, &request)?;
        let engine = self.engine.clone();
        let view = offload::blocking(async move { engine.certification(&learner_id, &program_id) })
            .await??;
        Ok(Response::new(view.into()))
    }
}
