//! Daily digests: at each digest subscription's hour, the alerts that
//! changed since its previous digest (their latest states, kept by the
//! follower in the store) become one message in the outbox.
//!
//! The worker checks every `digest_check` (30 s by default); a digest is
//! identified by its subscription and its slot (the day's digest time), so
//! a digest closed twice, or closed again after a crash, has one message
//! id. A day without changes sends nothing.

use super::Engine;
use crate::domain::alerts::Alert;
use crate::domain::learner::Micros;
use crate::domain::webhooks::{
    DIGEST_EVENT_TYPE, Delivery, Message, digest_message_id, payload, schedule,
};
use crate::engine::now_micros;
use crate::error::Result;

impl Engine {
    /// Closes every digest whose time came by `at` (the worker passes the
    /// clock; tests a later time). Returns the messages put in the outbox,
    /// due at once. Blocking: runs on a blocking thread.
    pub fn send_due_digests(&self, at: Micros) -> Result<usize> {
        let hub = self.webhooks();
        let now = now_micros();
        let _writes = hub.writes.lock();
        let mut sent = 0;
        for s in hub.subscriptions().iter() {
            let Delivery::DailyDigest { hour, time_zone } = &s.spec.delivery else {
                continue;
            };
            let slot = schedule::last_slot(at, *hour, time_zone)?;
            let previous = self.store.digest_sent(&s.id)?.unwrap_or(s.created_at);
            if slot <= previous {
                continue;
            }
            let mut alerts = self.store.digest_rows(&s.id)?;
            let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
            // Most severe first, then the latest changes.
            alerts.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then(b.updated_at.cmp(&a.updated_at))
                    .then(a.id.cmp(&b.id))
            });
            let message = (!alerts.is_empty()).then(|| {
                let id = digest_message_id(&s.id, slot);
                let body = payload::digest(s.spec.format, &id, &alerts, previous, slot, now);
                let mut message = Message::due_now(
                    id,
                    &s.id,
                    DIGEST_EVENT_TYPE,
                    "",
                    learners(&alerts),
                    body,
                    now,
                );
                message.due_at = hub.due_for(&s.id, now);
                message
            });
            self.store
                .close_digest(&s.id, slot, message.as_ref(), &ids)?;
            if message.is_some() {
                sent += 1;
            }
        }
        if sent > 0 {
            hub.wake.notify_one();
        }
        Ok(sent)
    }
}

/// The learners a digest names, once each.
fn learners(alerts: &[Alert]) -> Vec<String> {
    let mut out: Vec<String> = alerts.iter().map(|a| a.learner_id.clone()).collect();
    out.sort();
    out.dedup();
    out
}
