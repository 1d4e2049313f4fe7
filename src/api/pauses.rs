//! The pause, withdrawal and digest calls of `spoc.v1.AlertService`:
//! validation, conversion, the scope of each request, and the handlers
//! `api/alerts.rs` delegates to.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::pb;
use super::scope::Touches;
use super::validate as check;
use crate::domain::access::Resource;
use crate::domain::learner::Micros;
use crate::domain::limits::MIN_EVENT_MICROS;
use crate::domain::pauses::{Pause, Withdrawal};
use crate::engine::Engine;
use crate::engine::alerts::DigestEntry;
use crate::error::{Error, Result};
use crate::offload;

impl From<Pause> for pb::Pause {
    fn from(p: Pause) -> Self {
        let Pause {
            id,
            learner_id,
            program_id,
            starts_at,
            ends_at,
            note,
            declared_by,
            declared_at,
        } = p;
        Self {
            pause_id: id,
            learner_id,
            program_id,
            starts_at: Some(timestamp(starts_at)),
            ends_at: Some(timestamp(ends_at)),
            note,
            declared_by,
            declared_at: Some(timestamp(declared_at)),
        }
    }
}

impl From<Withdrawal> for pb::Withdrawal {
    fn from(w: Withdrawal) -> Self {
        let Withdrawal {
            learner_id,
            program_id,
            withdrawn_at,
            note,
            declared_by,
        } = w;
        Self {
            learner_id,
            program_id,
            withdrawn_at: Some(timestamp(withdrawn_at)),
            note,
            declared_by,
        }
    }
}

impl From<DigestEntry> for pb::DigestEntry {
    fn from(e: DigestEntry) -> Self {
        let DigestEntry {
            learner_id,
            program_id,
            cohort_id,
            kind,
            severity,
            urgency,
            reason,
            evaluated_at,
        } = e;
        Self {
            learner_id,
            program_id,
            cohort_id,
            kind: pb::AlertKind::from(kind) as i32,
            severity: pb::AlertSeverity::from(severity) as i32,
            urgency,
            reason,
            evaluated_at: Some(timestamp(evaluated_at)),
        }
    }
}

/// An optional instant (past or future), not before 2000.
fn instant(field: &str, value: Option<&prost_types::Timestamp>) -> Result<Option<Micros>> {
    let Some(ts) = value else {
        return Ok(None);
    };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(Error::invalid(field, "nanos must be in [0, 1e9)"));
    }
    let micros = ts
        .seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(ts.nanos / 1000)))
        .ok_or_else(|| Error::invalid(field, "is out of range"))?;
    if micros < MIN_EVENT_MICROS {
        return Err(Error::invalid(field, "must not be before 2000-01-01"));
    }
    Ok(Some(micros))
}

/// An optional id: empty means unset.
fn optional(field: &str, value: &str) -> Result<Option<String>> {
    let value = check::optional_id(field, value)?;
    Ok((!value.is_empty()).then_some(value))
}

/// An id and the kind of object it names.
type Named<'a> = (&'a str, fn(&'a str) -> Resource<'a>);

/// The objects named by the ids that are set.
fn ids<'a>(values: &[Named<'a>]) -> Vec<Resource<'a>> {
    values
        .iter()
        .filter(|(id, _)| !id.is_empty())
        .map(|(id, make)| make(id))
        .collect()
}

impl Touches for pb::DeclarePauseRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        ids(&[
            (&self.learner_id, Resource::Learner),
            (&self.program_id, Resource::Program),
        ])
    }
}

impl Touches for pb::EndPauseRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        ids(&[(&self.learner_id, Resource::Learner)])
    }
}

impl Touches for pb::ListPausesRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        ids(&[
            (&self.learner_id, Resource::Learner),
            (&self.program_id, Resource::Program),
        ])
    }
}

impl Touches for pb::WithdrawLearnerRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        ids(&[
            (&self.learner_id, Resource::Learner),
            (&self.program_id, Resource::Program),
        ])
    }
}

impl Touches for pb::GetAlertDigestRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        ids(&[
            (&self.program_id, Resource::Program),
            (&self.cohort_id, Resource::Cohort),
        ])
    }
}

/// `DeclarePause`: the pause, once durable.
pub async fn declare_pause(
    engine: &Arc<Engine>,
    request: Request<pb::DeclarePauseRequest>,
) -> Result<Response<pb::Pause>, Status> {
    let r = request.get_ref();
    let learner = check::id("learner_id", &r.learner_id)?;
    let program = optional("program_id", &r.program_id)?.unwrap_or_default();
    let starts_at = instant("starts_at", r.starts_at.as_ref())?;
    let ends_at = instant("ends_at", r.ends_at.as_ref())?
        .ok_or_else(|| Error::invalid("ends_at", "is required"))?;
    let note = check::text("note", &r.note)?;
    let by = check::id("by", &r.by)?;
    super::scope::authorize(engine, &request)?;
    let engine = engine.clone();
    let pause = offload::blocking(async move {
        engine
            .declare_pause(&learner, &program, starts_at, ends_at, &note, &by)
            .await
    })
    .await??;
    Ok(Response::new(pause.into()))
}

/// `EndPause`: the pause as ended, once durable.
pub async fn end_pause(
    engine: &Arc<Engine>,
    request: Request<pb::EndPauseRequest>,
) -> Result<Response<pb::Pause>, Status> {
    let r = request.get_ref();
    let learner = check::id("learner_id", &r.learner_id)?;
    let id = check::id("pause_id", &r.pause_id)?;
    super::scope::authorize(engine, &request)?;
    let engine = engine.clone();
    let pause = offload::blocking(async move { engine.end_pause(&learner, &id).await }).await??;
    Ok(Response::new(pause.into()))
}

/// `ListPauses`: a scoped key sees the pauses of its learners only.
pub async fn list_pauses(
    engine: &Arc<Engine>,
    request: Request<pb::ListPausesRequest>,
) -> Result<Response<pb::ListPausesResponse>, Status> {
    let r = request.get_ref();
    let learner = optional("learner_id", &r.learner_id)?;
    let program = optional("program_id", &r.program_id)?;
    if learner.is_none() && program.is_none() {
        return Err(Error::invalid("learner_id", "name a learner or set program_id").into());
    }
    let include_ended = r.include_ended;
    let who = super::scope::authorize(engine, &request)?;
    let pauses = super::off_runtime(engine, move |e| {
        let all = e.list_pauses(learner.as_deref(), program.as_deref(), include_ended)?;
        let mut seen = Vec::new();
        for p in all {
            if who.sees(Resource::Learner(&p.learner_id), e)? {
                seen.push(p);
            }
        }
        Ok(seen)
    })
    .await?;
    Ok(Response::new(pb::ListPausesResponse {
        pauses: pauses.into_iter().map(Into::into).collect(),
    }))
}

/// `WithdrawLearner`: the withdrawal, once durable.
pub async fn withdraw_learner(
    engine: &Arc<Engine>,
    request: Request<pb::WithdrawLearnerRequest>,
) -> Result<Response<pb::Withdrawal>, Status> {
    let r = request.get_ref();
    let learner = check::id("learner_id", &r.learner_id)?;
    let program = check::id("program_id", &r.program_id)?;
    let at = instant("withdrawn_at", r.withdrawn_at.as_ref())?;
    let note = check::text("note", &r.note)?;
    let by = check::id("by", &r.by)?;
    super::scope::authorize(engine, &request)?;
    let engine = engine.clone();
    let withdrawal = offload::blocking(async move {
        engine
            .withdraw_learner(&learner, &program, at, &note, &by)
            .await
    })
    .await??;
    Ok(Response::new(withdrawal.into()))
}

/// `GetAlertDigest`: a scoped key sees the entries of its learners only.
pub async fn alert_digest(
    engine: &Arc<Engine>,
    request: Request<pb::GetAlertDigestRequest>,
) -> Result<Response<pb::AlertDigest>, Status> {
    let r = request.get_ref();
    let program = check::id("program_id", &r.program_id)?;
    let cohort = if r.cohort_id.is_empty() {
        None
    } else {
        Some(super::cohorts::cohort_id("cohort_id", &r.cohort_id)?)
    };
    let who = super::scope::authorize(engine, &request)?;
    let digest = super::off_runtime(engine, move |e| {
        e.program(&program)?;
        if let Some(c) = &cohort {
            if e.store().cohort(c)?.is_none() {
                return Err(Error::not_found("cohort", c.clone()));
            }
        }
        let mut entries = Vec::new();
        for entry in e.alert_digest(&program, cohort.as_deref()) {
            if e.sees_row(&who, &entry.learner_id, &entry.cohort_id)? {
                entries.push(entry);
            }
        }
        let (open, budget) = e.alert_budget_usage(&program, cohort.as_deref());
        Ok(pb::AlertDigest {
            entries: entries.into_iter().map(Into::into).collect(),
            open: open as u32,
            budget: budget.unwrap_or(0) as u32,
        })
    })
    .await?;
    Ok(Response::new(digest))
}
