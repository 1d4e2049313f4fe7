//! The follower: every alert change, fanned out to the subscriptions that
//! want it.
//!
//! It follows the alert hub the way a `WatchAlerts` task does: subscribe
//! to the broadcast channel, replay the alert log from its stored position
//! up to the durable bound, then take changes from the channel, going
//! back to the log whenever it lags. Each batch of changes is written to
//! the outbox with the position after it, in one transaction: after a
//! crash the follower resumes from the last position on disk and writes
//! the same messages again (same ids), so nothing is lost and a receiver
//! can deduplicate what it got twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::{Engine, WebhookHub};
use crate::domain::alerts::Alert;
use crate::domain::webhooks::{Delivery, Message, change_message_id, payload};
use crate::engine::now_micros;
use crate::error::Result;
use crate::offload;
use crate::store::outbox::FanOut;

/// Alert log entries read per catch-up step.
const CATCH_UP_BATCH: usize = 1000;

/// Changes taken from the channel into one fan-out at most.
const CHANNEL_BATCH: usize = 1000;

/// Pause before following again after a failure (a full disk...).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true.
pub(super) async fn run(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        match follow(&engine, &mut stop).await {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(error = %err, "webhook follower failed; resuming from the log");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER_FAILURE) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Runs `call` off the runtime (the sequence lock may be held by a flush;
/// sled reads and writes block).
async fn blocking<T: Send + 'static>(
    engine: &Arc<Engine>,
    call: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
) -> Result<T> {
    let engine = engine.clone();
    offload::blocking(async move { call(&engine) }).await?
}

async fn follow(engine: &Arc<Engine>, stop: &mut watch::Receiver<bool>) -> Result<()> {
    if *stop.borrow_and_update() {
        return Ok(());
    }
    let (mut receiver, _) = blocking(engine, |e| Ok(e.follow_alert_changes())).await?;
    let mut last = engine.webhooks().cursor.load(Ordering::SeqCst);
    let mut catch_up = true;
    loop {
        if catch_up {
            loop {
                let from = last;
                let batch = blocking(engine, move |e| {
                    let through = e.durable_alert_sequence();
                    e.store.alert_changes_after(from, through, CATCH_UP_BATCH)
                })
                .await?;
                let Some(end) = batch.last().map(|a| a.sequence) else {
                    break;
                };
                let done = batch.len() < CATCH_UP_BATCH;
                let changes = batch.into_iter().map(Arc::new).collect();
                blocking(engine, move |e| e.fan_out(changes, end)).await?;
                last = end;
                if done {
                    break;
                }
            }
            catch_up = false;
        }
        let first = tokio::select! {
            received = receiver.recv() => received,
            _ = stop.changed() => return Ok(()),
        };
        let mut changes = Vec::new();
        let mut next = Some(first);
        while let Some(received) = next.take() {
            match received {
                Ok(alert) if alert.sequence > last => changes.push(alert),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => catch_up = true,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
            if changes.len() < CHANNEL_BATCH {
                next = match receiver.try_recv() {
                    Ok(alert) => Some(Ok(alert)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                };
            }
        }
        if catch_up {
            // The log has everything the channel dropped, in order.
            continue;
        }
        if let Some(end) = changes.last().map(|a| a.sequence) {
            blocking(engine, move |e| e.fan_out(changes, end)).await?;
            last = end;
        }
    }
}

impl Engine {
    /// Writes the messages and digest rows `changes` make, and `end` as the
    /// position fanned out, in one transaction; wakes the worker.
    fn fan_out(&self, changes: Vec<Arc<Alert>>, end: u64) -> Result<()> {
        let hub: &WebhookHub = self.webhooks();
        let _writes = hub.writes.lock();
        let subscriptions = hub.subscriptions();
        let now = now_micros();
        let mut batch = FanOut {
            cursor: end,
            ..FanOut::default()
        };
        for alert in &changes {
            let mut exists = None;
            for s in subscriptions.iter() {
                if !s.wants(alert) || !self.key_is_active(&s.key_id) {
                    continue;
                }
                // An erased learner's changes (redacted in the log, or
                // published just before the erasure) go nowhere.
                let known = match exists {
                    Some(known) => known,
                    None => {
                        let known = !alert.learner_id.is_empty()
                            && self.store.learner(&alert.learner_id)?.is_some();
                        *exists.insert(known)
                    }
                };
                if !known {
                    continue;
                }
                if !self.sees_row(&s.principal(), &alert.learner_id, &alert.cohort_id)? {
                    continue;
                }
                match s.spec.delivery {
                    Delivery::Immediate => {
                        let id = change_message_id(&s.id, alert.sequence);
                        let body = payload::change(s.spec.format, &id, alert, now);
                        let mut message = Message::due_now(
                            id,
                            &s.id,
                            crate::domain::webhooks::event_type(alert),
                            &alert.id,
                            vec![alert.learner_id.clone()],
                            body,
                            now,
                        );
                        message.due_at = hub.due_for(&s.id, now);
                        batch.messages.push(message);
                    }
                    Delivery::DailyDigest { .. } => {
                        batch.digest_rows.push((s.id.clone(), (**alert).clone()));
                    }
                }
            }
        }
        self.store.fan_out(&batch)?;
        hub.cursor.store(end, Ordering::SeqCst);
        if !batch.messages.is_empty() {
            hub.wake.notify_one();
        }
        Ok(())
    }
}
