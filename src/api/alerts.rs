//! `spoc.v1.AlertService`.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::pb::{self, alert_service_server::AlertService};
use super::validate as check;
use crate::domain::alerts::{Alert, AlertStatus};
use crate::domain::risk::{AlertKind, Severity};
use crate::engine::Engine;
use crate::engine::alerts::{AlertFilter, AlertScope, TrainerAction};
use crate::error::{Error, Result};
use crate::offload;

/// Most cohorts one watch may name.
pub const MAX_WATCHED_COHORTS: usize = 1000;

/// Serves alert listing, trainer actions and live watching.
pub struct AlertApi {
    engine: Arc<Engine>,
}

impl AlertApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// A trainer action (acknowledge, resolve; their requests have the same
    /// fields): the fields checked, the caller's scope, then the action off
    /// the async runtime (it may wait for the learner's evaluation lock);
    /// the engine returns once it is on disk.
    async fn act<T: super::scope::Touches>(
        &self,
        request: &Request<T>,
        action: TrainerAction,
        [alert_id, by, note]: [&str; 3],
    ) -> Result<Response<pb::Alert>, Status> {
        let id = check::id("alert_id", alert_id)?;
        let by = check::id("by", by)?;
        let note = check::text("note", note)?;
        super::scope::authorize(&self.engine, request)?;
        let engine = self.engine.clone();
        let alert =
            offload::blocking(async move { engine.act_on_alert(&id, action, &by, &note).await })
                .await??;
        Ok(Response::new(alert.into()))
    }
}

/// A kind filter: unspecified means any; unknown values are refused.
pub(super) fn kind_filter(field: &str, value: i32) -> Result<Option<AlertKind>> {
    use pb::AlertKind as K;
    match K::try_from(value) {
        Ok(K::Unspecified) => Ok(None),
        Ok(K::BlockingPoint) => Ok(Some(AlertKind::BlockingPoint)),
        Ok(K::Inactivity) => Ok(Some(AlertKind::Inactivity)),
        Ok(K::MasteryDrop) => Ok(Some(AlertKind::MasteryDrop)),
        Ok(K::PredictedDropout) => Ok(Some(AlertKind::PredictedDropout)),
        Ok(K::BehindSchedule) => Ok(Some(AlertKind::BehindSchedule)),
        Ok(K::Stopping) => Ok(Some(AlertKind::Stopping)),
        Err(_) => Err(Error::invalid(field, format!("unknown alert kind {value}"))),
    }
}

/// A status filter: unspecified means any; unknown values are refused.
fn status_filter(field: &str, value: i32) -> Result<Option<AlertStatus>> {
    use pb::AlertStatus as S;
    match S::try_from(value) {
        Ok(S::Unspecified) => Ok(None),
        Ok(S::Open) => Ok(Some(AlertStatus::Open)),
        Ok(S::Acknowledged) => Ok(Some(AlertStatus::Acknowledged)),
        Ok(S::Resolved) => Ok(Some(AlertStatus::Resolved)),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown alert status {value}"),
        )),
    }
}

/// An optional id filter: empty means unset.
fn optional(field: &str, value: &str) -> Result<Option<String>> {
    let value = check::optional_id(field, value)?;
    Ok((!value.is_empty()).then_some(value))
}

impl From<AlertKind> for pb::AlertKind {
    fn from(kind: AlertKind) -> Self {
        match kind {
            AlertKind::BlockingPoint => Self::BlockingPoint,
            AlertKind::Inactivity => Self::Inactivity,
            AlertKind::MasteryDrop => Self::MasteryDrop,
            AlertKind::PredictedDropout => Self::PredictedDropout,
            AlertKind::BehindSchedule => Self::BehindSchedule,
            AlertKind::Stopping => Self::Stopping,
        }
    }
}

impl From<Severity> for pb::AlertSeverity {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Info => Self::Info,
            Severity::Warning => Self::Warning,
            Severity::Critical => Self::Critical,
        }
    }
}

impl From<AlertStatus> for pb::AlertStatus {
    fn from(status: AlertStatus) -> Self {
        match status {
            AlertStatus::Open => Self::Open,
            AlertStatus::Acknowledged => Self::Acknowledged,
            AlertStatus::Resolved => Self::Resolved,
        }
    }
}

impl From<Alert> for pb::Alert {
    fn from(a: Alert) -> Self {
        Self {
            id: a.id,
            learner_id: a.learner_id,
            program_id: a.program_id,
            cohort_id: a.cohort_id,
            kind: pb::AlertKind::from(a.kind) as i32,
            severity: pb::AlertSeverity::from(a.severity) as i32,
            reason: a.reason,
            skill_id: a.skill_id.unwrap_or_default(),
            signals: a.signals.into_iter().collect(),
            created_at: Some(timestamp(a.created_at)),
            updated_at: Some(timestamp(a.updated_at)),
            status: pb::AlertStatus::from(a.status) as i32,
            status_by: a.status_by,
            note: a.note,
            resolved_at: a.resolved_at.map(timestamp),
            sequence: a.sequence,
        }
    }
}

/// The stream type of `WatchAlerts`.
pub type AlertStream = Pin<Box<dyn Stream<Item = Result<pb::AlertEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AlertService for AlertApi {
    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        // Fields first: a bad one is INVALID_ARGUMENT for every caller.
        let r = request.get_ref();
        let filter = AlertFilter {
            program: optional("program_id", &r.program_id)?,
            cohort: if r.cohort_id.is_empty() {
                None
            } else {
                Some(super::cohorts::cohort_id("cohort_id", &r.cohort_id)?)
            },
            learner: optional("learner_id", &r.learner_id)?,
            kind: kind_filter("kind", r.kind)?,
            status: status_filter("status", r.status)?,
        };
        let limit = check::page_size("page_size", r.page_size)?;
        // Every filter, as sent, binds the token (AIP-158).
        let scope = format!(
            "ListAlerts\0program\0{}\0cohort\0{}\0learner\0{}\0kind\0{}\0status\0{}",
            r.program_id, r.cohort_id, r.learner_id, r.kind, r.status
        );
        let after = check::page_token("page_token", &r.page_token, &scope)?;
        let who = super::scope::authorize(&self.engine, &request)?;
        let engine = self.engine.clone();
        let (alerts, next) = offload::blocking(async move {
            // Scoped before paging: pages and tokens of a scoped key hold
            // only alerts it may see.
            engine.list_alerts(&who, filter, after.as_deref(), limit)
        })
        .await??;
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: alerts.into_iter().map(Into::into).collect(),
            next_page_token: check::next_page_token(next, &scope),
        }))
    }

    async fn get_alert(
        &self,
        request: Request<pb::GetAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let id = check::id("alert_id", &request.get_ref().alert_id)?;
        super::scope::authorize(&self.engine, &request)?;
        // Blocking: it may flush alert changes waiting for publication.
        let engine = self.engine.clone();
        let alert = offload::blocking(async move { engine.alert(&id) }).await??;
        Ok(Response::new(alert.into()))
    }

    async fn acknowledge_alert(
        &self,
        request: Request<pb::AcknowledgeAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let pb::AcknowledgeAlertRequest { alert_id, by, note } = request.get_ref();
        self.act(&request, TrainerAction::Acknowledge, [alert_id, by, note])
            .await
    }

    async fn resolve_alert(
        &self,
        request: Request<pb::ResolveAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let pb::ResolveAlertRequest { alert_id, by, note } = request.get_ref();
        self.act(&request, TrainerAction::Resolve, [alert_id, by, note])
            .await
    }

    type WatchAlertsStream = AlertStream;

    async fn watch_alerts(
        &self,
        request: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let pb::WatchAlertsRequest {
            cohort_ids,
            program_id,
            after_sequence,
        } = request.get_ref().clone();
        if cohort_ids.len() > MAX_WATCHED_COHORTS {
            return Err(Error::invalid(
                "cohort_ids",
                format!(
                    "must name at most {MAX_WATCHED_COHORTS} cohorts, got {}",
                    cohort_ids.len()
                ),
            )
            .into());
        }
        let cohorts = cohort_ids
            .iter()
            .enumerate()
            .map(|(i, c)| super::cohorts::cohort_id(&format!("cohort_ids[{i}]"), c))
            .collect::<Result<_>>()?;
        let scope = AlertScope {
            cohorts,
            program: optional("program_id", &program_id)?,
        };
        if scope.cohorts.is_empty() && scope.program.is_none() {
            return Err(Error::invalid(
                "cohort_ids",
                "name at least one cohort, or set program_id",
            )
            .into());
        }
        // Fields first, then the scope: a bad field is INVALID_ARGUMENT for
        // every caller.
        let who = super::scope::authorize(&self.engine, &request)?;
        let receiver = self.engine.watch_alerts(scope, after_sequence)?;
        // A scoped key watching a program sees only the alerts of its scope.
        // A key revoked while the watch runs ends it (UNAUTHENTICATED) at
        // the next change, before anything more is sent.
        let engine = self.engine.clone();
        let key_id = who.key_id.clone();
        let stream = ReceiverStream::new(receiver).filter(move |event| match event {
            Ok(event) => {
                !engine.key_is_active(&who.key_id)
                    || engine
                        .sees_row(&who, &event.alert.learner_id, &event.alert.cohort_id)
                        .unwrap_or(false)
            }
            Err(_) => true,
        });
        let engine = self.engine.clone();
        let stream = stream.map(move |event| match event {
            Ok(_) if !engine.key_is_active(&key_id) => {
                Err(Status::unauthenticated("the API key was revoked"))
            }
            Ok(event) => Ok(pb::AlertEvent {
                alert: Some(Arc::unwrap_or_clone(event.alert).into()),
                snapshot: event.snapshot,
            }),
            Err(err) => Err(Status::from(err)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    // ---- Webhook subscriptions: served by `subscriptions.rs` ----

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::CreateSubscriptionResponse>, Status> {
        super::subscriptions::create(&self.engine, request).await
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        super::subscriptions::list(&self.engine, request).await
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        super::subscriptions::delete(&self.engine, request).await
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        super::subscriptions::dead_letters(&self.engine, request).await
    }

    async fn redeliver_dead_letters(
        &self,
        request: Request<pb::RedeliverDeadLettersRequest>,
    ) -> Result<Response<pb::RedeliverDeadLettersResponse>, Status> {
        super::subscriptions::redeliver(&self.engine, request).await
    }

    // --- Pauses, withdrawals and the digest (`api/pauses.rs`) ---

    async fn declare_pause(
        &self,
        request: Request<pb::DeclarePauseRequest>,
    ) -> Result<Response<pb::Pause>, Status> {
        super::pauses::declare_pause(&self.engine, request).await
    }

    async fn end_pause(
        &self,
        request: Request<pb::EndPauseRequest>,
    ) -> Result<Response<pb::Pause>, Status> {
        super::pauses::end_pause(&self.engine, request).await
    }

    async fn list_pauses(
        &self,
        request: Request<pb::ListPausesRequest>,
    ) -> Result<Response<pb::ListPausesResponse>, Status> {
        super::pauses::list_pauses(&self.engine, request).await
    }

    async fn withdraw_learner(
        &self,
        request: Request<pb::WithdrawLearnerRequest>,
    ) -> Result<Response<pb::Withdrawal>, Status> {
        super::pauses::withdraw_learner(&self.engine, request).await
    }

    async fn get_alert_digest(
        &self,
        request: Request<pb::GetAlertDigestRequest>,
    ) -> Result<Response<pb::AlertDigest>, Status> {
        super::pauses::alert_digest(&self.engine, request).await
    }
}
