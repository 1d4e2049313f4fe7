//! `spoc.v1.RemediationService`.

use std::collections::BTreeSet;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pb::{self, remediation_service_server::RemediationService};
use super::validate as check;
use crate::clock::now_micros;
use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::learner::Micros;
use crate::domain::remediation::{self as policy, Kind, Recommendation, Target};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Largest number of recommendations one call may ask for.
pub const MAX_RECOMMENDATIONS: i32 = 50;
/// Recommendations returned when the caller sends 0.
pub const DEFAULT_RECOMMENDATIONS: usize = 3;
/// Largest number of events in one `RecordActivity` call.
pub const MAX_ACTIVITIES_PER_CALL: usize = 1000;

/// Serves recommendations and module activity over the engine.
pub struct RemediationApi {
    engine: Arc<Engine>,
}

impl RemediationApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl RemediationService for RemediationApi {
    async fn recommend_next(
        &self,
        request: Request<pb::RecommendNextRequest>,
    ) -> Result<Response<pb::RecommendNextResponse>, Status> {
        let pb::RecommendNextRequest {
            learner_id,
            program_id,
            count,
            exclude_module_ids,
        } = request.into_inner();
        let learner_id = check::id("learner_id", &learner_id)?;
        let program_id = check::id("program_id", &program_id)?;
        let count = match count {
            0 => DEFAULT_RECOMMENDATIONS,
            1..=MAX_RECOMMENDATIONS => count as usize,
            _ => {
                return Err(Error::invalid(
                    "count",
                    format!("must be in 0..={MAX_RECOMMENDATIONS}, got {count}"),
                )
                .into());
            }
        };
        let exclude: BTreeSet<String> =
            check::iri_id_set("exclude_module_ids", &exclude_module_ids)?
                .into_iter()
                .collect();
        let answer = self
            .engine
            .recommend_next(&learner_id, &program_id, count, &exclude)?;
        Ok(Response::new(pb::RecommendNextResponse {
            recommendations: answer.items.into_iter().map(Into::into).collect(),
            status: pb::RecommendationStatus::from(answer.status) as i32,
            shortfall: answer.shortfall.unwrap_or_default(),
        }))
    }

    async fn record_activity(
        &self,
        request: Request<pb::RecordActivityRequest>,
    ) -> Result<Response<pb::RecordActivityResponse>, Status> {
        let events = activities(request.into_inner().activities, now_micros())?;
        let outcome = self.engine.record_activity(events).await?;
        Ok(Response::new(pb::RecordActivityResponse {
            recorded: outcome.recorded as i32,
            duplicates: outcome.duplicates as i32,
        }))
    }
}

fn activities(values: Vec<pb::ModuleActivity>, now: Micros) -> Result<Vec<Activity>> {
    if values.is_empty() || values.len() > MAX_ACTIVITIES_PER_CALL {
        return Err(Error::invalid(
            "activities",
            format!(
                "must hold 1 to {MAX_ACTIVITIES_PER_CALL} events, got {}",
                values.len()
            ),
        ));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| activity(&format!("activities[{i}]"), value, now))
        .collect()
}

fn activity(at: &str, value: pb::ModuleActivity, now: Micros) -> Result<Activity> {
    let pb::ModuleActivity {
        event_id,
        learner_id,
        module_id,
        program_id,
        kind,
        occurred_at,
        time_spent,
    } = value;
    let kind = match pb::ActivityKind::try_from(kind) {
        Ok(pb::ActivityKind::Started) => ActivityKind::Started,
        Ok(pb::ActivityKind::Completed) => ActivityKind::Completed,
        Ok(pb::ActivityKind::Unspecified) => {
            return Err(Error::invalid(format!("{at}.kind"), "must be set"));
        }
        Err(_) => {
            return Err(Error::invalid(
                format!("{at}.kind"),
                format!("unknown kind {kind}"),
            ));
        }
    };
    Ok(Activity {
        event_id: check::id(format_args!("{at}.event_id"), &event_id)?,
        learner_id: check::id(format_args!("{at}.learner_id"), &learner_id)?,
        module_id: check::iri_id(format_args!("{at}.module_id"), &module_id)?,
        program_id: check::optional_id(format_args!("{at}.program_id"), &program_id)?,
        kind,
        occurred_at: check::event_time(
            format_args!("{at}.occurred_at"),
            occurred_at.as_ref(),
            now,
        )?,
        time_spent_ms: check::duration_ms(
            format_args!("{at}.time_spent"),
            time_spent.as_ref(),
            crate::domain::limits::MAX_MODULE_TIME_MS,
        )?,
    })
}

impl From<Recommendation> for pb::Recommendation {
    fn from(r: Recommendation) -> Self {
        Self {
            module_id: r.module_id,
            skill_id: r.skill_id,
            p_mastered: r.p_mastered,
            expected_gain: r.expected_gain,
            duration_minutes: r.duration_minutes,
            format: pb::ModuleFormat::from(r.format) as i32,
            language: r.language,
            target: pb::RecommendationTarget::from(r.target) as i32,
            reason: r.reason,
            language_fallback: r.language_fallback,
            kind: pb::RecommendationKind::from(r.kind) as i32,
            item_ids: r.item_ids,
            tried_by: r.tried_by,
            moved_for: r.moved_for,
        }
    }
}

impl From<Kind> for pb::RecommendationKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Module => Self::Module,
            Kind::Diagnostic => Self::Diagnostic,
        }
    }
}

impl From<Target> for pb::RecommendationTarget {
    fn from(target: Target) -> Self {
        match target {
            Target::PrerequisiteReview => Self::PrerequisiteReview,
            Target::ProgramSkill => Self::ProgramSkill,
            Target::DeepPrerequisite => Self::DeepPrerequisite,
            Target::CertificationEvidence => Self::CertificationEvidence,
        }
    }
}

impl From<policy::Status> for pb::RecommendationStatus {
    fn from(status: policy::Status) -> Self {
        match status {
            policy::Status::Recommending => Self::Recommending,
            policy::Status::AllMastered => Self::AllMastered,
            policy::Status::NoContent => Self::NoContent,
            policy::Status::Verifying => Self::Verifying,
        }
    }
}
