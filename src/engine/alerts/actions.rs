//! Reads and trainer actions: one alert, a filtered page, acknowledge and
//! resolve.

use super::super::{Engine, now_micros};
use super::hub::Publication;
use super::{AlertFilter, TrainerAction};
use crate::domain::access::Principal;
use crate::domain::alerts::{Alert, AlertStatus, ClosedEpisode};
use crate::domain::cohorts::records::StoredCohort;
use crate::error::{Error, Result};
use crate::store::Page;

impl Engine {
    /// One alert, or NOT_FOUND. Blocking: changes waiting for publication
    /// are flushed first, so that no alert is shown before it is durable.
    pub fn alert(&self, id: &str) -> Result<Alert> {
        self.publish_pending()?;
        self.store
            .alert(id)?
            .ok_or_else(|| Error::not_found("alert", id))
    }

    /// A page of alerts in creation order; filters on unknown programs,
    /// cohorts or learners are NOT_FOUND. Blocking, as [`Engine::alert`].
    pub fn list_alerts(
        &self,
        who: &Principal,
        filter: AlertFilter,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Alert>> {
        if let Some(program) = &filter.program {
            self.program(program)?;
        }
        if let Some(learner) = &filter.learner {
            self.learner(learner)?;
        }
        if let Some(cohort) = &filter.cohort {
            if self.store.cohort(cohort)?.is_none() {
                return Err(Error::not_found("cohort", cohort.clone()));
            }
        }
        self.publish_pending()?;
        // Scope first, then page: a scoped key's pages and tokens only
        // ever hold alerts it may see.
        let keep =
            |a: &Alert| Ok(filter.matches(a) && self.sees_row(who, &a.learner_id, &a.cohort_id)?);
        match filter.status {
            // Only active alerts can match: read them through their index.
            Some(AlertStatus::Open | AlertStatus::Acknowledged) => {
                self.store.list_active_alerts(keep, after, limit)
            }
            _ => self.store.list_alerts(keep, after, limit),
        }
    }

    /// The active alerts of `cohort` (raised in it, about its members)
    /// that `who` may see, newest first. Read through the index of active
    /// alerts, so that a cohort page costs its members, not every alert the
    /// store ever held. Blocking, as [`Engine::alert`].
    pub fn cohort_active_alerts(
        &self,
        who: &Principal,
        cohort: &StoredCohort,
    ) -> Result<Vec<Alert>> {
        self.publish_pending()?;
        let mut out = Vec::new();
        for learner in &cohort.members {
            for alert in self.store.active_alerts(learner, &cohort.program_id)? {
                // Resolved between the index read and the alert's: gone.
                if alert.status != AlertStatus::Resolved
                    && alert.cohort_id == cohort.id
                    && self.sees_row(who, &alert.learner_id, &alert.cohort_id)?
                {
                    out.push(alert);
                }
            }
        }
        out.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(out)
    }

    /// Acknowledges or resolves an alert for a trainer. Acting twice is a
    /// no-op; acknowledging a resolved alert is refused. A resolved alert
    /// closes its episode: no alert of that kind is raised again for the
    /// learner until its condition clears. Returns once the change is on
    /// disk. Blocking (it may wait for the learner's evaluation lock): call
    /// it off the async workers.
    pub async fn act_on_alert(
        &self,
        id: &str,
        action: TrainerAction,
        by: &str,
        note: &str,
    ) -> Result<Alert> {
        let alert = self.act_locked(id, action, by, note)?;
        self.store.durable().await?;
        Ok(alert)
    }

    /// [`Engine::act_on_alert`] under the learner's lock, before the wait
    /// for the disk.
    fn act_locked(&self, id: &str, action: TrainerAction, by: &str, note: &str) -> Result<Alert> {
        let learner = self.alert(id)?.learner_id;
        let _guard = self.hub().locks.lock_all([learner.as_str()]);
        // Read again under the lock: an evaluation may have changed it.
        let current = self.alert(id)?;
        let target = match action {
            TrainerAction::Acknowledge => AlertStatus::Acknowledged,
            TrainerAction::Resolve => AlertStatus::Resolved,
        };
        if current.status == target {
            return Ok(current);
        }
        if current.status == AlertStatus::Resolved {
            return Err(Error::FailedPrecondition(format!(
                "alert '{id}' is resolved and cannot be acknowledged"
            )));
        }
        let now = now_micros();
        if target == AlertStatus::Resolved {
            // One alert per episode: the kind stays silent for the learner
            // until its condition clears (the next evaluation that finds it
            // gone ends the episode).
            self.store.close_episode(
                &current.learner_id,
                &current.program_id,
                &ClosedEpisode::of(&current),
            )?;
        }
        let mut written = self.write_alerts(Publication::Immediate, |sequence| {
            let mut a = current;
            a.status = target;
            a.status_by = by.to_string();
            a.note = note.to_string();
            a.updated_at = now;
            if target == AlertStatus::Resolved {
                a.resolved_at = Some(now);
            }
            a.sequence = sequence();
            vec![a]
        })?;
        Ok(written.remove(0))
    }
}
