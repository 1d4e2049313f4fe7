//! Webhook subscriptions: what a subscriber asked for, the messages waiting
//! for its receiver, and the pure decisions around them (which alert
//! changes a subscription wants, message ids, event types).
//!
//! The engine (`engine/webhooks`) follows the alert log, turns each change
//! a subscription wants into a [`Message`] in the store's outbox (or a row
//! of its next daily digest), and delivers messages over HTTP with
//! retries; a message still failing after the retry window becomes a
//! [`DeadLetter`]. Everything here is plain data and pure functions:
//! target checks ([`address`]), signatures ([`signature`]), bodies
//! ([`payload`]), the retry schedule ([`retry`]) and digest times
//! ([`schedule`]).

pub mod address;
pub mod payload;
pub mod retry;
pub mod schedule;
pub mod signature;

use serde::{Deserialize, Serialize};

use super::access::{Principal, Role, Scope};
use super::alerts::{Alert, AlertStatus, alert_id};
use super::learner::Micros;
use super::risk::Severity;

/// When a subscription's messages go out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// One message per alert change, as it happens.
    Immediate,
    /// One message a day at `hour` o'clock in `time_zone`, listing the
    /// alerts that changed since the previous digest.
    DailyDigest {
        /// Local hour, 0 to 23.
        hour: u8,
        /// IANA time zone name of `hour`.
        time_zone: String,
    },
}

/// The shape of a message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// A CloudEvents 1.0 event, structured JSON mode.
    CloudEvents,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Microsoft Teams message with an Adaptive Card.
    Teams,
}

/// What a subscriber asks for: the target, the filters, when and in
/// which shape messages go. The API checks each field of a request into
/// one (the engine then checks what needs the store or the network), and a
/// [`Subscription`] keeps it as created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    /// The receiver's URL (in a stored subscription, as checked at creation).
    pub url: String,
    /// Only alerts of these programs (or of `cohort_ids`); both empty:
    /// every alert the key sees.
    pub program_ids: Vec<String>,
    /// Only alerts of these cohorts (or of `program_ids`).
    pub cohort_ids: Vec<String>,
    /// Only alerts of these kinds, by their stable names
    /// (`AlertKind::as_str`); empty: every kind. Names rather than the
    /// enum, so that a stored subscription reads the same whatever kinds
    /// are added later.
    pub kinds: Vec<String>,
    /// Only alerts at least this severe; `None`: every severity.
    pub min_severity: Option<Severity>,
    /// At once or as a daily digest.
    pub delivery: Delivery,
    /// Body shape.
    pub format: Format,
    /// A note for people.
    pub description: String,
}

/// One stored subscription.
///
/// It keeps the creating key's id, role and scope (keys never change
/// scope): deliveries carry only alerts that key may see, and stop once
/// the key is revoked.
///
/// Stored with postcard, which writes a nested struct's fields in place:
/// `spec` stays second, so the bytes are those of the earlier flat layout
/// (id, the spec's fields, then the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// `sub_` then 16 hexadecimal digits.
    pub id: String,
    /// What the subscriber asked for.
    pub spec: SubscriptionSpec,
    /// When it was created (server time).
    pub created_at: Micros,
    /// The creating key.
    pub key_id: String,
    /// The creating key's name (logs).
    pub key_name: String,
    /// The creating key's role.
    pub role: Role,
    /// The creating key's scope.
    pub scope: Scope,
    /// The latest alert sequence when it was created: only later changes
    /// are delivered.
    pub from_sequence: u64,
    /// The signing secret's bytes (Standard Webhooks: the part after
    /// `whsec_`, base64-decoded). Kept to sign; shown once, at creation.
    pub secret: Vec<u8>,
}

impl Subscription {
    /// Whether its filters take this alert change: newer than the
    /// subscription, in one of its programs or cohorts (or no such filter),
    /// of one of its kinds, severe enough. The creating key's scope is
    /// checked apart ([`Subscription::principal`]), with the engine's facts.
    pub fn wants(&self, alert: &Alert) -> bool {
        let spec = &self.spec;
        let places = (spec.program_ids.is_empty() && spec.cohort_ids.is_empty())
            || spec.program_ids.contains(&alert.program_id)
            || (!alert.cohort_id.is_empty() && spec.cohort_ids.contains(&alert.cohort_id));
        alert.sequence > self.from_sequence
            && places
            && (spec.kinds.is_empty() || spec.kinds.iter().any(|k| k == alert.kind.as_str()))
            && spec.min_severity.is_none_or(|min| alert.severity >= min)
    }

    /// The creating key as a caller, for the scope check of each change.
    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.key_id.clone(),
            name: self.key_name.clone(),
            role: self.role,
            scope: self.scope.clone(),
        }
    }

    /// Whether it is a daily digest.
    pub fn is_digest(&self) -> bool {
        matches!(self.spec.delivery, Delivery::DailyDigest { .. })
    }
}

/// The id of the message carrying alert change `sequence` to
/// `subscription`: the same on every attempt and after a restart, so that
/// a receiver deduplicates on it (`webhook-id`).
pub fn change_message_id(subscription: &str, sequence: u64) -> String {
    format!("msg_{}_{sequence:016}", suffix(subscription))
}

/// The id of the digest of `subscription` for the digest time `slot`.
pub fn digest_message_id(subscription: &str, slot: Micros) -> String {
    format!("msg_{}_d{}", suffix(subscription), slot / 1_000_000)
}

/// A subscription id without its `sub_` prefix.
fn suffix(subscription: &str) -> &str {
    subscription.strip_prefix("sub_").unwrap_or(subscription)
}

/// The CloudEvents type of an alert change, read from the alert after it:
/// a fresh id (`alert-` then its creation's sequence) is a raise, then the
/// status says the rest. `acknowledged` also covers an update of an
/// acknowledged alert by the rules.
pub fn event_type(alert: &Alert) -> &'static str {
    if alert.status == AlertStatus::Resolved {
        "spoc.alert.resolved"
    } else if alert.id == alert_id(alert.sequence) {
        "spoc.alert.raised"
    } else if alert.status == AlertStatus::Acknowledged {
        "spoc.alert.acknowledged"
    } else {
        "spoc.alert.updated"
    }
}

/// The CloudEvents type of a digest.
pub const DIGEST_EVENT_TYPE: &str = "spoc.alert.digest";

/// A message in the outbox: rendered once, delivered (and signed) on each
/// attempt until its receiver answers 2xx or the retry window closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `webhook-id`: the same on every attempt.
    pub id: String,
    /// The subscription it is for.
    pub subscription_id: String,
    /// The CloudEvents type of its content.
    pub event_type: String,
    /// The alert it is about; empty for a digest.
    pub alert_id: String,
    /// The learners it names (a GDPR erasure drops the messages naming
    /// the learner).
    pub learners: Vec<String>,
    /// `content-type` of the body.
    pub content_type: String,
    /// The body, sent as it is.
    pub body: Vec<u8>,
    /// When it was put in the outbox; the retry window counts from here.
    pub created_at: Micros,
    /// When it is due next.
    pub due_at: Micros,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was first attempted.
    pub first_attempt_at: Option<Micros>,
    /// What the last attempt met; empty before any.
    pub last_error: String,
}

impl Message {
    /// A message put in the outbox at `now`, due at once and not yet
    /// attempted: `alert_id` is empty for a digest, `learners` those the
    /// body names.
    pub fn due_now(
        id: String,
        subscription_id: &str,
        event_type: &str,
        alert_id: &str,
        learners: Vec<String>,
        rendered: payload::Rendered,
        now: Micros,
    ) -> Self {
        Self {
            id,
            subscription_id: subscription_id.into(),
            event_type: event_type.into(),
            alert_id: alert_id.into(),
            learners,
            content_type: rendered.content_type.into(),
            body: rendered.body,
            created_at: now,
            due_at: now,
            attempts: 0,
            first_attempt_at: None,
            last_error: String::new(),
        }
    }
}

/// A message given up after the retry window, kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message as it was last attempted.
    pub message: Message,
    /// Where it was sent.
    pub url: String,
    /// When it was given up.
    pub dead_at: Micros,
}

/// Fixtures shared by the tests of the webhook modules.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::BTreeSet;

    use super::*;

    /// An open warning blocking point about alice, raised at `sequence`.
    pub(crate) fn alert(sequence: u64) -> Alert {
        Alert {
            learner_id: "alice".into(),
            program_id: "excel".into(),
            cohort_id: "excel/v1/c001".into(),
            reason: "4 failed attempts".into(),
            skill_id: Some("joins".into()),
            created_at: 1_700_000_000_000_000,
            updated_at: 1_700_000_000_000_000,
            ..crate::domain::alerts::tests_support::alert(sequence)
        }
    }

    /// An immediate CloudEvents subscription of trainer key `k` scoped to
    /// cohort `excel/v1/c001`, following from sequence 5, with no filter.
    pub(crate) fn subscription() -> Subscription {
        Subscription {
            id: "sub_0123456789abcdef".into(),
            spec: SubscriptionSpec {
                url: "https://hooks.example.com/x".into(),
                program_ids: vec![],
                cohort_ids: vec![],
                kinds: vec![],
                min_severity: None,
                delivery: Delivery::Immediate,
                format: Format::CloudEvents,
                description: String::new(),
            },
            created_at: 0,
            key_id: "k".into(),
            key_name: "K".into(),
            role: Role::Trainer,
            scope: Scope::Cohorts(BTreeSet::from(["excel/v1/c001".to_string()])),
            from_sequence: 5,
            secret: vec![1; 32],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{alert, subscription};
    use super::*;

    #[test]
    fn filters_combine_places_with_or_and_the_rest_with_and() {
        let mut s = subscription();
        assert!(s.wants(&alert(6)));
        assert!(!s.wants(&alert(5)), "older than the subscription");
        s.spec.program_ids = vec!["word".into()];
        assert!(!s.wants(&alert(6)));
        s.spec.cohort_ids = vec!["excel/v1/c001".into()];
        assert!(s.wants(&alert(6)), "cohort OR program");
        s.spec.kinds = vec!["inactivity".into()];
        assert!(!s.wants(&alert(6)));
        s.spec.kinds.push("blocking_point".into());
        assert!(s.wants(&alert(6)));
        s.spec.min_severity = Some(Severity::Critical);
        assert!(!s.wants(&alert(6)));
        s.spec.min_severity = Some(Severity::Warning);
        assert!(s.wants(&alert(6)));
        let mut no_cohort = alert(7);
        no_cohort.cohort_id.clear();
        s.spec.program_ids.clear();
        s.spec.cohort_ids = vec![String::new()];
        assert!(!s.wants(&no_cohort), "an empty cohort id matches no filter");
    }

    #[test]
    fn event_types_follow_the_change() {
        let mut a = alert(9);
        assert_eq!(event_type(&a), "spoc.alert.raised");
        a.sequence = 10;
        assert_eq!(event_type(&a), "spoc.alert.updated");
        a.status = AlertStatus::Acknowledged;
        assert_eq!(event_type(&a), "spoc.alert.acknowledged");
        a.status = AlertStatus::Resolved;
        assert_eq!(event_type(&a), "spoc.alert.resolved");
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let s = "sub_0123456789abcdef";
        assert_eq!(
            change_message_id(s, 42),
            "msg_0123456789abcdef_0000000000000042"
        );
        assert_ne!(change_message_id(s, 42), change_message_id(s, 43));
        assert_eq!(
            digest_message_id(s, 1_700_000_000_000_000),
            "msg_0123456789abcdef_d1700000000"
        );
    }
}
