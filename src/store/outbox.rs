//! The webhook outbox (trees `webhook_subscriptions`, `webhook_outbox`,
//! `webhook_dead`, `webhook_digest`, `webhook_digest_sent`,
//! `webhook_cursor`; layout in [`super::keys`]).
//!
//! Alert changes reach receivers through here, so that a restart loses
//! nothing: the engine's follower writes the messages a batch of alert
//! changes makes (and the rows of daily digests) together with the alert
//! log position it has fanned out, in one transaction. A crash before that
//! transaction is on disk loses both, and the follower fans the same
//! changes out again from the alert log, under the same message ids. The
//! delivery worker reads messages in due order (the key starts with the
//! due time), removes a delivered one, moves a failed one to its next due
//! time, or to the dead letters once its retry window is over.

use std::collections::HashMap;

use sled::Transactional;

use super::table::Table;
use super::{Page, Store, codec, keys, transaction_error};
use crate::domain::alerts::Alert;
use crate::domain::learner::Micros;
use crate::domain::webhooks::{DeadLetter, Message, Subscription};
use crate::error::{Error, Result};

/// Tree of subscriptions by id.
pub const SUBSCRIPTIONS: &str = "webhook_subscriptions";
/// Tree of messages waiting, by due time.
pub const OUTBOX: &str = "webhook_outbox";
/// Tree of messages given up, by subscription.
pub const DEAD: &str = "webhook_dead";
/// Tree of the alerts waiting for a subscription's next digest.
pub const DIGEST: &str = "webhook_digest";
/// Tree of the last digest time of each digest subscription.
pub const DIGEST_SENT: &str = "webhook_digest_sent";
/// Tree holding the alert log position fanned out.
pub const CURSOR: &str = "webhook_cursor";
/// The one key of [`CURSOR`].
const CURSOR_KEY: &[u8] = b"cursor";

/// Keys one [`Store::due_messages`] call reads at most.
pub const MAX_DUE_SCAN: usize = 4096;

/// A message and its key in the outbox.
pub type OutboxRow = (Vec<u8>, Message);

/// Key of a message in the outbox: the due time (µs, big-endian, so byte
/// order is due order), the subscription id, `00`, the message id.
pub fn outbox_key(message: &Message) -> Vec<u8> {
    let mut key = Vec::with_capacity(10 + message.subscription_id.len() + message.id.len());
    key.extend_from_slice(&(message.due_at.max(0) as u64).to_be_bytes());
    key.extend_from_slice(message.subscription_id.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(message.id.as_bytes());
    key
}

/// The due time of an outbox key; `None` for a malformed key.
fn key_due(key: &[u8]) -> Option<Micros> {
    let due: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(due) as Micros)
}

/// The subscription id of an outbox key.
fn key_subscription(key: &[u8]) -> &[u8] {
    let rest = key.get(8..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|b| *b == keys::SEP)
        .unwrap_or(rest.len());
    &rest[..end]
}

/// What one fan-out of alert changes writes.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Messages of immediate subscriptions.
    pub messages: Vec<Message>,
    /// (subscription id, alert) rows of digest subscriptions: the latest
    /// state of each alert replaces an earlier one.
    pub digest_rows: Vec<(String, Alert)>,
    /// The last alert sequence covered.
    pub cursor: u64,
}

/// What deleting a subscription dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Undelivered messages.
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

impl Store {
    fn subscriptions_table(&self) -> Result<Table<Subscription>> {
        self.table(SUBSCRIPTIONS)
    }

    fn outbox_table(&self) -> Result<Table<Message>> {
        self.table(OUTBOX)
    }

    fn dead_table(&self) -> Result<Table<DeadLetter>> {
        self.table(DEAD)
    }

    fn digest_table(&self) -> Result<Table<Alert>> {
        self.table(DIGEST)
    }

    fn digest_sent_table(&self) -> Result<Table<Micros>> {
        self.table(DIGEST_SENT)
    }

    fn cursor_table(&self) -> Result<Table<u64>> {
        self.table(CURSOR)
    }

    /// Every subscription, in id order.
    pub fn webhook_subscriptions(&self) -> Result<Vec<Subscription>> {
        self.subscriptions_table()?.values(b"")
    }

    /// Stores a new subscription and, for a digest, the time its first
    /// digest counts from. Call [`Store::durable`] before replying.
    pub fn create_subscription(&self, s: &Subscription, digest_from: Option<Micros>) -> Result<()> {
        let _gate = self.write_gate();
        let (subs, sent) = (self.subscriptions_table()?, self.digest_sent_table()?);
        let value = codec::encode(s);
        let from = digest_from.map(|t| codec::encode(&t));
        (&subs.tree, &sent.tree)
            .transaction(|(subs, sent)| {
                subs.insert(s.id.as_bytes(), value.as_slice())?;
                if let Some(from) = &from {
                    sent.insert(s.id.as_bytes(), from.as_slice())?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Deletes a subscription with its messages, dead letters and digest
    /// rows, in one transaction; `None` if it does not exist. The caller
    /// keeps fan-outs out meanwhile; a message the worker re-files during
    /// the deletion is dropped when it comes due.
    pub fn delete_subscription(&self, id: &str) -> Result<Option<Dropped>> {
        let _gate = self.write_gate();
        let (subs, outbox, dead, digest, sent) = (
            self.subscriptions_table()?,
            self.outbox_table()?,
            self.dead_table()?,
            self.digest_table()?,
            self.digest_sent_table()?,
        );
        if !subs.contains(id.as_bytes())? {
            return Ok(None);
        }
        let mut outbox_keys = Vec::new();
        for entry in outbox.tree.iter() {
            let (key, _) = entry?;
            if key_subscription(&key) == id.as_bytes() {
                outbox_keys.push(key);
            }
        }
        let prefix = keys::prefix(&[id]);
        let dead_keys = scan_keys(&dead.tree, &prefix)?;
        let digest_keys = scan_keys(&digest.tree, &prefix)?;
        (
            &subs.tree,
            &outbox.tree,
            &dead.tree,
            &digest.tree,
            &sent.tree,
        )
            .transaction(|(subs, outbox, dead, digest, sent)| {
                subs.remove(id.as_bytes())?;
                sent.remove(id.as_bytes())?;
                for key in &outbox_keys {
                    outbox.remove(key)?;
                }
                for key in &dead_keys {
                    dead.remove(key.as_slice())?;
                }
                for key in &digest_keys {
                    digest.remove(key.as_slice())?;
                }
                Ok(())
            })
            .map_err(transaction_error)?;
        Ok(Some(Dropped {
            pending: outbox_keys.len() as u64,
            dead: dead_keys.len() as u64,
        }))
    }

    /// The alert log position fanned out so far; `None` on a store that
    /// never had one.
    pub fn webhook_cursor(&self) -> Result<Option<u64>> {
        self.cursor_table()?.get(CURSOR_KEY)
    }

    /// Sets the position (start of a store: nothing before it is owed).
    pub fn set_webhook_cursor(&self, sequence: u64) -> Result<()> {
        let _gate = self.write_gate();
        self.cursor_table()?.put(CURSOR_KEY, &sequence)
    }

    /// Writes the messages and digest rows of a batch of alert changes and
    /// the position after it, in one transaction. Not flushed: a crash
    /// loses both together, and the changes are fanned out again.
    pub fn fan_out(&self, batch: &FanOut) -> Result<()> {
        let _gate = self.write_gate();
        let (outbox, digest, cursor) = (
            self.outbox_table()?,
            self.digest_table()?,
            self.cursor_table()?,
        );
        let messages: Vec<(Vec<u8>, Vec<u8>)> = batch
            .messages
            .iter()
            .map(|m| (outbox_key(m), codec::encode(m)))
            .collect();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = batch
            .digest_rows
            .iter()
            .map(|(sub, a)| (keys::compose(&[sub, &a.id]), codec::encode(a)))
            .collect();
        let position = codec::encode(&batch.cursor);
        (&outbox.tree, &digest.tree, &cursor.tree)
            .transaction(|(outbox, digest, cursor)| {
                for (key, value) in &messages {
                    outbox.insert(key.as_slice(), value.as_slice())?;
                }
                for (key, value) in &rows {
                    digest.insert(key.as_slice(), value.as_slice())?;
                }
                cursor.insert(CURSOR_KEY, position.as_slice())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Up to `limit` messages due at `now`, in due order, passing over the
    /// keys `skip` names (deliveries in flight, receivers at their limit);
    /// and the due time of the first message left, if any (`now` when more
    /// are due already). Reads at most [`MAX_DUE_SCAN`] keys, so that a
    /// long backlog of skipped messages costs a bounded read.
    pub fn due_messages(
        &self,
        now: Micros,
        skip: impl Fn(&[u8]) -> bool,
        limit: usize,
    ) -> Result<(Vec<OutboxRow>, Option<Micros>)> {
        let outbox = self.outbox_table()?;
        let mut rows = Vec::new();
        for (n, entry) in outbox.tree.iter().enumerate() {
            if n == MAX_DUE_SCAN {
                return Ok((rows, Some(now)));
            }
            let (key, bytes) = entry?;
            let due = key_due(&key).ok_or_else(|| Error::Corrupt {
                tree: OUTBOX,
                key: keys::display(&key),
                reason: "key does not start with a due time".into(),
            })?;
            if skip(&key) {
                continue;
            }
            if due > now {
                return Ok((rows, Some(due)));
            }
            if rows.len() == limit {
                return Ok((rows, Some(now)));
            }
            rows.push((key.to_vec(), codec::decode(OUTBOX, &key, &bytes)?));
        }
        Ok((rows, None))
    }

    /// Removes a delivered (or dropped) message.
    pub fn remove_message(&self, key: &[u8]) -> Result<()> {
        let _gate = self.write_gate();
        self.outbox_table()?.tree.remove(key)?;
        Ok(())
    }

    /// Moves the message at `key` to its new due time (`message.due_at`);
    /// false, writing nothing, if it is gone (its subscription deleted).
    pub fn retry_message(&self, key: &[u8], message: &Message) -> Result<bool> {
        let _gate = self.write_gate();
        let outbox = self.outbox_table()?;
        let (new_key, value) = (outbox_key(message), codec::encode(message));
        outbox
            .tree
            .transaction(|tx| {
                if tx.remove(key)?.is_none() {
                    return Ok(false);
                }
                tx.insert(new_key.as_slice(), value.as_slice())?;
                Ok(true)
            })
            .map_err(transaction_error)
    }

    /// Moves the message at `key` to the dead letters; false, writing
    /// nothing, if it is gone.
    pub fn bury_message(&self, key: &[u8], dead: &DeadLetter) -> Result<bool> {
        let _gate = self.write_gate();
        let (outbox, dead_table) = (self.outbox_table()?, self.dead_table()?);
        let dead_key = keys::compose(&[&dead.message.subscription_id, &dead.message.id]);
        let value = codec::encode(dead);
        (&outbox.tree, &dead_table.tree)
            .transaction(|(outbox, dead)| {
                if outbox.remove(key)?.is_none() {
                    return Ok(false);
                }
                dead.insert(dead_key.as_slice(), value.as_slice())?;
                Ok(true)
            })
            .map_err(transaction_error)
    }

    /// Puts dead letters of `subscription` (every one, or those whose
    /// message id is in `ids`) back in the outbox, due `now` with a fresh
    /// retry window (created now, no attempt counted), a thousand to a
    /// transaction (a letter is in one tree or the other, never both nor
    /// neither); returns how many went back. Unknown ids are skipped, so
    /// that a retried call does nothing more.
    pub fn requeue_dead_letters(
        &self,
        subscription: &str,
        ids: &[String],
        now: Micros,
    ) -> Result<u64> {
        /// Dead letters moved per transaction: a subscription's whole
        /// backlog would make one unbounded transaction.
        const BATCH: usize = 1_000;
        let (outbox, dead_table) = (self.outbox_table()?, self.dead_table()?);
        let letters: Vec<(Vec<u8>, DeadLetter)> = if ids.is_empty() {
            dead_table.scan(&keys::prefix(&[subscription]))?
        } else {
            let mut named = Vec::with_capacity(ids.len());
            for id in ids {
                let key = keys::compose(&[subscription, id]);
                if let Some(letter) = dead_table.get(&key)? {
                    named.push((key, letter));
                }
            }
            named
        };
        let mut moved = 0;
        for chunk in letters.chunks(BATCH) {
            let moves: Vec<(&[u8], Vec<u8>, Vec<u8>)> = chunk
                .iter()
                .map(|(key, letter)| {
                    let mut message = letter.message.clone();
                    message.created_at = now;
                    message.due_at = now;
                    message.attempts = 0;
                    message.first_attempt_at = None;
                    (
                        key.as_slice(),
                        outbox_key(&message),
                        codec::encode(&message),
                    )
                })
                .collect();
            let _gate = self.write_gate();
            moved += (&outbox.tree, &dead_table.tree)
                .transaction(|(outbox, dead)| {
                    let mut n = 0;
                    for (dead_key, outbox_key, value) in &moves {
                        if dead.remove(*dead_key)?.is_some() {
                            outbox.insert(outbox_key.as_slice(), value.as_slice())?;
                            n += 1;
                        }
                    }
                    Ok(n)
                })
                .map_err(transaction_error)?;
        }
        Ok(moved)
    }

    /// Brings every message of `subscription` due after `now` forward to
    /// `now` (its receiver answered again: the backlog goes at once), but
    /// those whose key `skip` names (in flight: moved, they would be read
    /// due again); returns how many moved.
    pub fn expedite_messages(
        &self,
        subscription: &str,
        now: Micros,
        skip: impl Fn(&[u8]) -> bool,
    ) -> Result<usize> {
        let _gate = self.write_gate();
        let outbox = self.outbox_table()?;
        let start = (now.max(0) as u64 + 1).to_be_bytes();
        let mut batch = sled::Batch::default();
        let mut moved = 0;
        for entry in outbox.tree.range(start..) {
            let (key, bytes) = entry?;
            if key_subscription(&key) != subscription.as_bytes() || skip(&key) {
                continue;
            }
            let mut message: Message = codec::decode(OUTBOX, &key, &bytes)?;
            message.due_at = now;
            batch.remove(key);
            batch.insert(outbox_key(&message), codec::encode(&message));
            moved += 1;
        }
        outbox.tree.apply_batch(batch)?;
        Ok(moved)
    }

    /// Messages waiting, per subscription id (keys only are read).
    pub fn pending_messages(&self) -> Result<HashMap<String, u64>> {
        let mut counts = HashMap::new();
        for entry in self.outbox_table()?.tree.iter() {
            let (key, _) = entry?;
            let sub = String::from_utf8_lossy(key_subscription(&key)).into_owned();
            *counts.entry(sub).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Dead letters, per subscription id (keys only are read).
    pub fn dead_letter_counts(&self) -> Result<HashMap<String, u64>> {
        let mut counts = HashMap::new();
        for entry in self.dead_table()?.tree.iter() {
            let (key, _) = entry?;
            let sub = key.split(|b| *b == keys::SEP).next().unwrap_or_default();
            *counts
                .entry(String::from_utf8_lossy(sub).into_owned())
                .or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// A page of dead letters, of one subscription or of all, in
    /// (subscription, message id) order, that satisfy `keep`.
    pub fn dead_letters(
        &self,
        subscription: Option<&str>,
        mut keep: impl FnMut(&DeadLetter) -> bool,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let dead = self.dead_table()?;
        let prefix = subscription.map(|s| keys::prefix(&[s])).unwrap_or_default();
        let start = match after {
            Some(after) if after >= prefix.as_slice() => {
                let mut start = after.to_vec();
                start.push(0);
                start
            }
            _ => prefix.clone(),
        };
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in dead.tree.range(start..) {
            let (key, bytes) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let letter: DeadLetter = codec::decode(DEAD, &key, &bytes)?;
            if !keep(&letter) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(key.to_vec());
            out.push(letter);
        }
        Ok((out, None))
    }

    /// Messages waiting and dead letters, over every subscription.
    pub fn outbox_sizes(&self) -> Result<(u64, u64)> {
        Ok((
            self.outbox_table()?.tree.len() as u64,
            self.dead_table()?.tree.len() as u64,
        ))
    }

    /// The alerts waiting for a subscription's next digest, in alert id
    /// order.
    pub fn digest_rows(&self, subscription: &str) -> Result<Vec<Alert>> {
        self.digest_table()?.values(&keys::prefix(&[subscription]))
    }

    /// When a subscription's last digest went out (or its first counts
    /// from).
    pub fn digest_sent(&self, subscription: &str) -> Result<Option<Micros>> {
        self.digest_sent_table()?.get(subscription.as_bytes())
    }

    /// Closes a digest: puts its message (if it has one) in the outbox,
    /// removes the rows it lists and records `slot` as sent, in one
    /// transaction. The caller keeps fan-outs out meanwhile.
    pub fn close_digest(
        &self,
        subscription: &str,
        slot: Micros,
        message: Option<&Message>,
        alert_ids: &[String],
    ) -> Result<()> {
        let _gate = self.write_gate();
        let (outbox, digest, sent) = (
            self.outbox_table()?,
            self.digest_table()?,
            self.digest_sent_table()?,
        );
        let message = message.map(|m| (outbox_key(m), codec::encode(m)));
        let rows: Vec<Vec<u8>> = alert_ids
            .iter()
            .map(|id| keys::compose(&[subscription, id]))
            .collect();
        let slot = codec::encode(&slot);
        (&outbox.tree, &digest.tree, &sent.tree)
            .transaction(|(outbox, digest, sent)| {
                if let Some((key, value)) = &message {
                    outbox.insert(key.as_slice(), value.as_slice())?;
                }
                for key in &rows {
                    digest.remove(key.as_slice())?;
                }
                sent.insert(subscription.as_bytes(), slot.as_slice())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Removes every waiting message, dead letter and digest row that
    /// names `learner` (a GDPR erasure; a digest naming them is dropped
    /// whole). Returns how many entries went.
    pub fn erase_webhook_rows(&self, learner: &str) -> Result<u64> {
        let _gate = self.write_gate();
        let mut removed = 0;
        let outbox = self.outbox_table()?;
        for (key, message) in outbox.scan(b"")? {
            if message.learners.iter().any(|l| l == learner) {
                outbox.tree.remove(key)?;
                removed += 1;
            }
        }
        let dead = self.dead_table()?;
        for (key, letter) in dead.scan(b"")? {
            if letter.message.learners.iter().any(|l| l == learner) {
                dead.tree.remove(key)?;
                removed += 1;
            }
        }
        let digest = self.digest_table()?;
        for (key, alert) in digest.scan(b"")? {
            if alert.learner_id == learner {
                digest.tree.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The keys of `tree` under `prefix`.
fn scan_keys(tree: &sled::Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
    tree.scan_prefix(prefix)
        .map(|entry| Ok(entry?.0.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{Role, Scope};

    fn message(sub: &str, id: &str, due_at: Micros) -> Message {
        let rendered = crate::domain::webhooks::payload::Rendered {
            content_type: "application/json",
            body: b"{}".to_vec(),
        };
        Message {
            due_at,
            ..Message::due_now(
                id.into(),
                sub,
                "spoc.alert.raised",
                "alert-1",
                vec!["alice".into()],
                rendered,
                0,
            )
        }
    }

    fn subscription(id: &str) -> Subscription {
        Subscription {
            id: id.into(),
            key_name: "k".into(),
            role: Role::Manager,
            scope: Scope::All,
            from_sequence: 0,
            secret: vec![0; 32],
            ..crate::domain::webhooks::tests_support::subscription()
        }
    }

    /// A subscription stored before `SubscriptionSpec` grouped its fields
    /// (one flat struct) is the same bytes as one stored now: postcard
    /// writes a nested struct's fields in place. Every field is set (a
    /// digest, filters, a severity) so that none encodes as a bare zero.
    #[test]
    fn subscriptions_keep_the_flat_layout_on_disk() {
        use crate::domain::risk::Severity;
        use crate::domain::webhooks::{Delivery, Format};

        #[derive(serde::Serialize)]
        struct Flat {
            id: String,
            url: String,
            program_ids: Vec<String>,
            cohort_ids: Vec<String>,
            kinds: Vec<String>,
            min_severity: Option<Severity>,
            delivery: Delivery,
            format: Format,
            description: String,
            created_at: Micros,
            key_id: String,
            key_name: String,
            role: Role,
            scope: Scope,
            from_sequence: u64,
            secret: Vec<u8>,
        }

        let mut s = subscription("sub_00000000000000ff");
        s.spec.url = "https://hooks.example.com/spoc".into();
        s.spec.program_ids = vec!["excel".into(), "word".into()];
        s.spec.cohort_ids = vec!["excel/v1/c001".into()];
        s.spec.kinds = vec!["inactivity".into()];
        s.spec.min_severity = Some(Severity::Warning);
        s.spec.delivery = Delivery::DailyDigest {
            hour: 7,
            time_zone: "Europe/Paris".into(),
        };
        s.spec.format = Format::Teams;
        s.spec.description = "trainers".into();
        s.created_at = 1_700_000_000_000_000;
        s.from_sequence = 42;
        let spec = s.spec.clone();
        let flat = Flat {
            id: s.id.clone(),
            url: spec.url,
            program_ids: spec.program_ids,
            cohort_ids: spec.cohort_ids,
            kinds: spec.kinds,
            min_severity: spec.min_severity,
            delivery: spec.delivery,
            format: spec.format,
            description: spec.description,
            created_at: s.created_at,
            key_id: s.key_id.clone(),
            key_name: s.key_name.clone(),
            role: s.role,
            scope: s.scope.clone(),
            from_sequence: s.from_sequence,
            secret: s.secret.clone(),
        };
        let old = codec::encode(&flat);
        assert_eq!(codec::encode(&s), old);
        let read: Subscription = codec::decode(SUBSCRIPTIONS, b"k", &old).unwrap();
        assert_eq!(read, s);
    }

    #[test]
    fn messages_come_due_in_order_move_and_die() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .create_subscription(&subscription("sub_a"), None)
            .unwrap();
        store
            .fan_out(&FanOut {
                messages: vec![
                    message("sub_a", "m3", 300),
                    message("sub_a", "m1", 100),
                    message("sub_a", "m2", 200),
                ],
                digest_rows: vec![],
                cursor: 9,
            })
            .unwrap();
        assert_eq!(store.webhook_cursor().unwrap(), Some(9));
        let (due, next) = store.due_messages(250, |_| false, 10).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, m)| m.id.as_str()).collect();
        assert_eq!(ids, ["m1", "m2"]);
        assert_eq!(next, Some(300));
        let (first_key, _) = &due[0];
        let (due, _) = store
            .due_messages(250, |k| k == first_key.as_slice(), 10)
            .unwrap();
        assert_eq!(due.len(), 1, "in flight is passed over");
        // m1 fails: later; m2 dies; m3 is delivered.
        let (k1, mut m1) = store.due_messages(250, |_| false, 1).unwrap().0.remove(0);
        m1.due_at = 1000;
        assert!(store.retry_message(&k1, &m1).unwrap());
        assert!(!store.retry_message(&k1, &m1).unwrap(), "old key gone");
        let (k2, m2) = store.due_messages(250, |_| false, 1).unwrap().0.remove(0);
        assert_eq!(m2.id, "m2");
        let letter = DeadLetter {
            message: m2,
            url: "https://example.com".into(),
            dead_at: 250,
        };
        assert!(store.bury_message(&k2, &letter).unwrap());
        assert_eq!(store.outbox_sizes().unwrap(), (2, 1));
        assert_eq!(store.pending_messages().unwrap()["sub_a"], 2);
        assert_eq!(store.dead_letter_counts().unwrap()["sub_a"], 1);
        // The receiver is back: everything later comes forward, but what
        // the caller says is in flight.
        assert_eq!(store.expedite_messages("sub_a", 250, |_| true).unwrap(), 0);
        assert_eq!(store.expedite_messages("sub_a", 250, |_| false).unwrap(), 2);
        let (due, next) = store.due_messages(250, |_| false, 10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(next, None);
        let (page, _) = store
            .dead_letters(Some("sub_a"), |_| true, None, 10)
            .unwrap();
        assert_eq!(page, vec![letter]);
        // Deleting the subscription drops everything of it.
        let dropped = store.delete_subscription("sub_a").unwrap().unwrap();
        assert_eq!(
            dropped,
            Dropped {
                pending: 2,
                dead: 1
            }
        );
        assert_eq!(store.outbox_sizes().unwrap(), (0, 0));
        assert!(store.delete_subscription("sub_a").unwrap().is_none());
    }

    #[test]
    fn a_digest_takes_its_rows_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .create_subscription(&subscription("sub_d"), Some(5))
            .unwrap();
        assert_eq!(store.digest_sent("sub_d").unwrap(), Some(5));
        let mut alert = crate::domain::webhooks::tests_support::alert(3);
        store
            .fan_out(&FanOut {
                messages: vec![],
                digest_rows: vec![("sub_d".into(), alert.clone())],
                cursor: 3,
            })
            .unwrap();
        alert.reason = "later".into();
        store
            .fan_out(&FanOut {
                messages: vec![],
                digest_rows: vec![("sub_d".into(), alert.clone())],
                cursor: 4,
            })
            .unwrap();
        assert_eq!(store.digest_rows("sub_d").unwrap(), vec![alert.clone()]);
        store
            .close_digest("sub_d", 50, Some(&message("sub_d", "dg", 50)), &[alert.id])
            .unwrap();
        assert!(store.digest_rows("sub_d").unwrap().is_empty());
        assert_eq!(store.digest_sent("sub_d").unwrap(), Some(50));
        assert_eq!(store.outbox_sizes().unwrap(), (1, 0));
        assert_eq!(store.erase_webhook_rows("alice").unwrap(), 1);
    }
}
