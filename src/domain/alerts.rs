//! Stored at-risk alerts: the lifecycle the rules' drafts get once persisted.
//!
//! [`crate::domain::risk::evaluate`] proposes [`AlertDraft`]s; the engine
//! turns them into [`Alert`]s with an id, a status a trainer moves
//! (open → acknowledged → resolved) and the sequence number of their latest
//! change, which is what a watching client resumes from. [`reconcile`] is
//! the pure decision "given what is open and what the rules say now, what
//! changes", so dedup (one open alert per learner, program and kind) is
//! testable without a store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::learner::Micros;
use super::risk::{AlertDraft, AlertKind, Severity};

/// Where an alert is in a trainer's hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertStatus {
    /// Raised, nobody looked yet.
    Open,
    /// A trainer saw it and is on it; still updated by the rules.
    Acknowledged,
    /// Closed, by a trainer or because the condition cleared; a new alert
    /// of the same kind may be raised later.
    Resolved,
}

impl AlertStatus {
    /// Whether the alert still counts as the one "open" alert of its
    /// learner, program and kind (dedup key): open or acknowledged.
    pub fn is_active(self) -> bool {
        self != AlertStatus::Resolved
    }
}

/// Who resolved an alert when the rules did it (the condition cleared).
pub const RESOLVED_BY_ENGINE: &str = "engine";

/// One persisted alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Server-chosen id, `alert-` then the zero-padded sequence number of
    /// its creation, so ids sort by creation.
    pub id: String,
    /// The learner concerned.
    pub learner_id: String,
    /// The program whose signals raised it.
    pub program_id: String,
    /// The learner's cohort in that program when the alert last changed;
    /// empty when the learner had none.
    pub cohort_id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent it is.
    pub severity: Severity,
    /// One sentence a trainer can act on.
    pub reason: String,
    /// The skill concerned (blocking points, mastery drops).
    pub skill_id: Option<String>,
    /// The figures behind it (learner signals plus the rule's own).
    pub signals: BTreeMap<String, f64>,
    /// When it was raised (server time).
    pub created_at: Micros,
    /// When it last changed (server time).
    pub updated_at: Micros,
    /// Where it is in its lifecycle.
    pub status: AlertStatus,
    /// Who acknowledged or resolved it last (a trainer id, or
    /// [`RESOLVED_BY_ENGINE`]); empty while open.
    pub status_by: String,
    /// The trainer's note with the last status change, if any.
    pub note: String,
    /// When it was resolved, if it was.
    pub resolved_at: Option<Micros>,
    /// Sequence number of its latest change in the alert log: strictly
    /// increasing across all alerts, what `WatchAlerts` resumes from.
    pub sequence: u64,
}

/// The id of an alert created at `sequence`.
pub fn alert_id(sequence: u64) -> String {
    format!("alert-{sequence:016}")
}

/// What [`reconcile`] decided for one alert kind; sequence numbers are
/// assigned by the caller when it writes.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    /// A new alert (no active one of this kind).
    Raise(AlertDraft),
    /// The active alert (at this index of `active`) gets the draft's
    /// content; `reopen` when its severity rose after an acknowledgement.
    Update {
        /// Index in the `active` slice given to [`reconcile`].
        index: usize,
        /// The new content.
        draft: AlertDraft,
        /// Whether an acknowledged alert goes back to open.
        reopen: bool,
    },
    /// The condition of the active alert at this index cleared.
    Clear {
        /// Index in the `active` slice given to [`reconcile`].
        index: usize,
    },
}

/// Compares the active alerts of one learner in one program with what the
/// rules say now, the learner being in `cohort_id` now (empty before any
/// formation). Returns only real changes: an alert whose severity, reason,
/// skill and cohort are unchanged is left alone (its signals drift every
/// evaluation; rewriting them would flood watchers with no news). A cohort
/// change is news: the cohort's trainer must see the learner's alerts.
pub fn reconcile(active: &[Alert], drafts: Vec<AlertDraft>, cohort_id: &str) -> Vec<AlertChange> {
    let mut changes = Vec::new();
    let mut seen = vec![false; active.len()];
    for draft in drafts {
        match active.iter().position(|a| a.kind == draft.kind) {
            Some(index) => {
                seen[index] = true;
                let a = &active[index];
                if a.severity != draft.severity
                    || a.reason != draft.reason
                    || a.skill_id != draft.skill_id
                    || a.cohort_id != cohort_id
                {
                    let reopen =
                        a.status == AlertStatus::Acknowledged && draft.severity > a.severity;
                    changes.push(AlertChange::Update {
                        index,
                        draft,
                        reopen,
                    });
                }
            }
            None => changes.push(AlertChange::Raise(draft)),
        }
    }
    for (index, seen) in seen.into_iter().enumerate() {
        if !seen {
            changes.push(AlertChange::Clear { index });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(kind: AlertKind, severity: Severity, reason: &str) -> AlertDraft {
        AlertDraft {
            kind,
            severity,
            reason: reason.into(),
            skill_id: None,
            signals: BTreeMap::new(),
        }
    }

    fn alert(kind: AlertKind, severity: Severity, reason: &str, status: AlertStatus) -> Alert {
        Alert {
            id: alert_id(1),
            learner_id: "l".into(),
            program_id: "p".into(),
            cohort_id: String::new(),
            kind,
            severity,
            reason: reason.into(),
            skill_id: None,
            signals: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
            status,
            status_by: String::new(),
            note: String::new(),
            resolved_at: None,
            sequence: 1,
        }
    }

    #[test]
    fn new_kinds_are_raised_same_content_is_left_alone_cleared_ones_resolved() {
        let active = vec![
            alert(
                AlertKind::BlockingPoint,
                Severity::Warning,
                "3 failed",
                AlertStatus::Open,
            ),
            alert(
                AlertKind::Inactivity,
                Severity::Warning,
                "8 days",
                AlertStatus::Open,
            ),
        ];
        let changes = reconcile(
            &active,
            vec![
                draft(AlertKind::BlockingPoint, Severity::Warning, "3 failed"),
                draft(AlertKind::MasteryDrop, Severity::Warning, "fell"),
            ],
            "",
        );
        assert_eq!(
            changes,
            vec![
                AlertChange::Raise(draft(AlertKind::MasteryDrop, Severity::Warning, "fell")),
                AlertChange::Clear { index: 1 },
            ]
        );
    }

    #[test]
    fn a_changed_reason_updates_and_a_worse_severity_reopens_an_acknowledged_alert() {
        let active = vec![alert(
            AlertKind::BlockingPoint,
            Severity::Warning,
            "3 failed",
            AlertStatus::Acknowledged,
        )];
        let d = draft(AlertKind::BlockingPoint, Severity::Warning, "4 failed");
        assert_eq!(
            reconcile(&active, vec![d.clone()], ""),
            vec![AlertChange::Update {
                index: 0,
                draft: d,
                reopen: false
            }]
        );
        let d = draft(AlertKind::BlockingPoint, Severity::Critical, "6 failed");
        assert_eq!(
            reconcile(&active, vec![d.clone()], ""),
            vec![AlertChange::Update {
                index: 0,
                draft: d,
                reopen: true
            }]
        );
    }

    #[test]
    fn a_new_cohort_updates_an_unchanged_alert_so_its_trainer_sees_it() {
        let active = vec![alert(
            AlertKind::BlockingPoint,
            Severity::Warning,
            "3 failed",
            AlertStatus::Open,
        )];
        let d = draft(AlertKind::BlockingPoint, Severity::Warning, "3 failed");
        assert!(reconcile(&active, vec![d.clone()], "").is_empty());
        assert_eq!(
            reconcile(&active, vec![d.clone()], "c-1"),
            vec![AlertChange::Update {
                index: 0,
                draft: d,
                reopen: false
            }]
        );
    }
}
