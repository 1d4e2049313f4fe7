//! Stored at-risk alerts: the lifecycle the rules' drafts get once persisted.
//!
//! [`crate::domain::risk::assess`] proposes [`AlertDraft`]s; the engine
//! turns them into [`Alert`]s with an id, a status a trainer moves
//! (open → acknowledged → resolved) and the sequence number of their latest
//! change, which is what a watching client resumes from. [`reconcile`] is
//! the pure decision "given what is active and what the rules say now, what
//! changes", so the lifecycle is testable without a store:
//!
//! - one alert per learner and program at a time: while one is active,
//!   other drafts wait; it is updated while its condition holds, resolved
//!   when it clears, when the learner completes the program or withdraws;
//! - one alert per episode: once a trainer resolved an alert whose
//!   condition still held, that kind stays silent for the learner until
//!   the condition clears;
//! - a budget: a new alert is raised only if the caller says there is
//!   room ([`budget`] open alerts per group of learners, most urgent
//!   first); a draft without room waits in the digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::learner::Micros;
use super::risk::rules::rank_order;
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

/// Why the engine resolves an alert: its note.
pub mod notes {
    /// The rule no longer holds.
    pub const CLEARED: &str = "condition cleared";
    /// Every unit of the program is covered.
    pub const COMPLETED: &str = "learner completed the program";
    /// The learner left the program.
    pub const WITHDRAWN: &str = "learner withdrawn from the program";
    /// A declared pause silences the kind.
    pub const PAUSED: &str = "learner on a declared pause";
    /// The former dropout alert: superseded by two kinds.
    pub const RETIRED: &str =
        "predicted_dropout is retired: see the behind_schedule and stopping alerts";
}

/// An episode a trainer closed by resolving its alert while its condition
/// still held: drafts of the same condition stay silent until it clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedEpisode {
    /// The kind of the alert resolved.
    pub kind: AlertKind,
    /// Its skill, for blocking points and mastery drops.
    pub skill_id: Option<String>,
    /// When its condition began ([`AlertDraft::since`]; 0 for a model's
    /// estimate, which any later draft of the kind continues).
    pub since: Micros,
    /// The alert resolved.
    pub alert_id: String,
}

impl ClosedEpisode {
    /// The episode of a resolved alert.
    pub fn of(alert: &Alert) -> Self {
        Self {
            kind: alert.kind,
            skill_id: alert.skill_id.clone(),
            since: alert
                .signals
                .get(super::risk::rules::EPISODE_SINCE)
                .map_or(0, |s| *s as Micros),
            alert_id: alert.id.clone(),
        }
    }

    /// Whether `draft` continues this episode: same kind, skill and start.
    pub fn continues(&self, draft: &AlertDraft) -> bool {
        draft.kind == self.kind && draft.skill_id == self.skill_id && draft.since == self.since
    }
}

/// Open alerts a group of `size` learners may have at once with a budget
/// of `per_25` per 25 learners: at least one; `None` when there is no
/// budget (`per_25` 0).
pub fn budget(size: usize, per_25: u32) -> Option<usize> {
    (per_25 > 0).then(|| (size * per_25 as usize / 25).max(1))
}

/// What [`reconcile`] decided for one alert; sequence numbers are
/// assigned by the caller when it writes.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    /// A new alert (the learner had none active in the program).
    Raise(AlertDraft),
    /// The active alert (at this index of `active`) gets the draft's
    /// content: news for watchers; `reopen` when its severity rose after
    /// an acknowledgement.
    Update {
        /// Index in the `active` slice given to [`reconcile`].
        index: usize,
        /// The new content.
        draft: AlertDraft,
        /// Whether an acknowledged alert goes back to open.
        reopen: bool,
    },
    /// The active alert at this index keeps its content but its figures
    /// are recomputed: stored in place, not news.
    Refresh {
        /// Index in the `active` slice given to [`reconcile`].
        index: usize,
        /// The figures as of now.
        signals: BTreeMap<String, f64>,
    },
    /// The active alert at this index is resolved by the engine.
    Clear {
        /// Index in the `active` slice given to [`reconcile`].
        index: usize,
        /// Why ([`notes`]).
        note: &'static str,
    },
}

/// What the rules said about one learner in one program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict<'a> {
    /// Completed or withdrawn: every active alert resolves with this note.
    Closed(&'static str),
    /// Still learning: these drafts (at most one per kind); `paused` when a
    /// declared pause silences inactivity and stopping.
    Drafts {
        /// The drafts.
        drafts: &'a [AlertDraft],
        /// On a declared pause now.
        paused: bool,
    },
}

/// The outcome of [`reconcile`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconciled {
    /// The changes to write.
    pub changes: Vec<AlertChange>,
    /// The draft that would be raised but found no room: the digest.
    pub waiting: Option<AlertDraft>,
    /// Trainer-closed episodes that ended (the condition cleared, or
    /// another episode of the kind began).
    pub episodes_ended: Vec<AlertKind>,
}

/// Compares the active alerts of one learner in one program with what the
/// rules say now, the learner being in `cohort_id` now (empty before any
/// formation). `closed` holds the episodes a trainer closed;
/// `room` is asked (at most once) whether the most urgent draft may become
/// a new alert.
///
/// An alert whose severity, reason, skill and cohort are unchanged only
/// gets its figures refreshed (not news); a cohort change is news (the
/// cohort's trainer must see the learner's alerts).
pub fn reconcile(
    active: &[Alert],
    verdict: Verdict<'_>,
    cohort_id: &str,
    closed: &[ClosedEpisode],
    room: impl FnOnce(&AlertDraft) -> bool,
) -> Reconciled {
    let mut out = Reconciled::default();
    let (drafts, paused) = match verdict {
        Verdict::Closed(note) => {
            out.changes = (0..active.len())
                .map(|index| AlertChange::Clear { index, note })
                .collect();
            out.episodes_ended = closed.iter().map(|e| e.kind).collect();
            return out;
        }
        Verdict::Drafts { drafts, paused } => (drafts, paused),
    };
    let draft_of = |kind: AlertKind| drafts.iter().find(|d| d.kind == kind);
    let mut kept = 0;
    for (index, a) in active.iter().enumerate() {
        match draft_of(a.kind) {
            Some(draft) => {
                kept += 1;
                if a.severity != draft.severity
                    || a.reason != draft.reason
                    || a.skill_id != draft.skill_id
                    || a.cohort_id != cohort_id
                {
                    let reopen =
                        a.status == AlertStatus::Acknowledged && draft.severity > a.severity;
                    out.changes.push(AlertChange::Update {
                        index,
                        draft: draft.clone(),
                        reopen,
                    });
                } else if a.signals != draft.signals {
                    out.changes.push(AlertChange::Refresh {
                        index,
                        signals: draft.signals.clone(),
                    });
                }
            }
            None => {
                let note = if a.kind == AlertKind::PredictedDropout {
                    notes::RETIRED
                } else if paused && a.kind.silenced_by_pause() {
                    notes::PAUSED
                } else {
                    notes::CLEARED
                };
                out.changes.push(AlertChange::Clear { index, note });
            }
        }
    }
    let silent = |d: &AlertDraft| closed.iter().any(|e| e.continues(d));
    out.episodes_ended = closed
        .iter()
        .filter(|e| draft_of(e.kind).is_none_or(|d| !e.continues(d)))
        .map(|e| e.kind)
        .collect();
    if kept == 0 {
        let best = drafts.iter().filter(|d| !silent(d)).max_by(|a, b| {
            rank_order(
                (a.severity, a.kind, a.urgency),
                (b.severity, b.kind, b.urgency),
            )
        });
        if let Some(best) = best {
            if room(best) {
                out.changes.push(AlertChange::Raise(best.clone()));
            } else {
                out.waiting = Some(best.clone());
            }
        }
    }
    out
}

/// Fixtures the crate's unit tests share.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// An open warning blocking point of learner `l` in program `p` (no
    /// cohort, no skill, no signals, at time 0), raised at `sequence`:
    /// tests override what they look at.
    pub(crate) fn alert(sequence: u64) -> Alert {
        Alert {
            id: alert_id(sequence),
            learner_id: "l".into(),
            program_id: "p".into(),
            cohort_id: String::new(),
            kind: AlertKind::BlockingPoint,
            severity: Severity::Warning,
            reason: String::new(),
            skill_id: None,
            signals: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
            status: AlertStatus::Open,
            status_by: String::new(),
            note: String::new(),
            resolved_at: None,
            sequence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(kind: AlertKind, severity: Severity, reason: &str) -> AlertDraft {
        AlertDraft {
            kind,
            severity,
            urgency: 0.5,
            reason: reason.into(),
            skill_id: None,
            since: 0,
            signals: BTreeMap::new(),
        }
    }

    fn closed(kind: AlertKind) -> ClosedEpisode {
        ClosedEpisode {
            kind,
            skill_id: None,
            since: 0,
            alert_id: alert_id(1),
        }
    }

    fn alert(kind: AlertKind, severity: Severity, reason: &str, status: AlertStatus) -> Alert {
        Alert {
            kind,
            severity,
            reason: reason.into(),
            status,
            ..tests_support::alert(1)
        }
    }

    fn drafts<'a>(d: &'a [AlertDraft]) -> Verdict<'a> {
        Verdict::Drafts {
            drafts: d,
            paused: false,
        }
    }

    #[test]
    fn one_alert_per_learner_the_most_urgent_draft_is_raised() {
        let d = [
            draft(AlertKind::BlockingPoint, Severity::Warning, "3 failed"),
            draft(AlertKind::Inactivity, Severity::Critical, "probably lost"),
            draft(AlertKind::Stopping, Severity::Warning, "likely to stop"),
        ];
        let r = reconcile(&[], drafts(&d), "", &[], |_| true);
        assert_eq!(r.changes, vec![AlertChange::Raise(d[1].clone())]);
        // No room: nothing raised, the draft waits in the digest.
        let r = reconcile(&[], drafts(&d), "", &[], |_| false);
        assert!(r.changes.is_empty());
        assert_eq!(r.waiting, Some(d[1].clone()));
    }

    #[test]
    fn an_active_alert_is_kept_and_refreshed_while_others_wait() {
        let active = vec![alert(
            AlertKind::BlockingPoint,
            Severity::Warning,
            "3 failed",
            AlertStatus::Open,
        )];
        let mut same = draft(AlertKind::BlockingPoint, Severity::Warning, "3 failed");
        same.signals.insert("days_away".into(), 2.0);
        let d = [
            same.clone(),
            draft(AlertKind::Stopping, Severity::Critical, "likely to stop"),
        ];
        let r = reconcile(&active, drafts(&d), "", &[], |_| panic!("no room asked"));
        assert_eq!(
            r.changes,
            vec![AlertChange::Refresh {
                index: 0,
                signals: same.signals.clone()
            }]
        );
        assert_eq!(r.waiting, None);
    }

    #[test]
    fn a_cleared_condition_resolves_and_the_next_draft_may_follow() {
        let active = vec![alert(
            AlertKind::Inactivity,
            Severity::Warning,
            "check in",
            AlertStatus::Open,
        )];
        let d = [draft(AlertKind::MasteryDrop, Severity::Warning, "fell")];
        let r = reconcile(&active, drafts(&d), "", &[], |_| true);
        assert_eq!(
            r.changes,
            vec![
                AlertChange::Clear {
                    index: 0,
                    note: notes::CLEARED
                },
                AlertChange::Raise(d[0].clone()),
            ]
        );
        // On a pause, the inactivity alert says why it went.
        let r = reconcile(
            &active,
            Verdict::Drafts {
                drafts: &[],
                paused: true,
            },
            "",
            &[],
            |_| true,
        );
        assert_eq!(
            r.changes,
            vec![AlertChange::Clear {
                index: 0,
                note: notes::PAUSED
            }]
        );
    }

    #[test]
    fn completion_and_withdrawal_resolve_everything() {
        let active = vec![
            alert(
                AlertKind::BlockingPoint,
                Severity::Warning,
                "x",
                AlertStatus::Open,
            ),
            alert(
                AlertKind::MasteryDrop,
                Severity::Warning,
                "y",
                AlertStatus::Acknowledged,
            ),
        ];
        let r = reconcile(
            &active,
            Verdict::Closed(notes::COMPLETED),
            "",
            &[closed(AlertKind::Stopping)],
            |_| true,
        );
        assert_eq!(r.changes.len(), 2);
        assert!(r.changes.iter().all(|c| matches!(
            c,
            AlertChange::Clear {
                note: notes::COMPLETED,
                ..
            }
        )));
        assert_eq!(r.episodes_ended, [AlertKind::Stopping]);
    }

    #[test]
    fn a_closed_episode_stays_silent_until_its_condition_clears() {
        let d = [draft(AlertKind::Stopping, Severity::Warning, "likely")];
        let closed = [closed(AlertKind::Stopping)];
        let r = reconcile(&[], drafts(&d), "", &closed, |_| true);
        assert!(r.changes.is_empty() && r.waiting.is_none());
        assert!(r.episodes_ended.is_empty());
        let r = reconcile(&[], drafts(&[]), "", &closed, |_| true);
        assert_eq!(r.episodes_ended, [AlertKind::Stopping]);
    }

    #[test]
    fn a_condition_that_began_again_is_a_new_episode() {
        // A trainer closed the blocking point that began at 10; the run
        // now under way began at 20 (a right answer came between).
        let mut episode = closed(AlertKind::BlockingPoint);
        episode.since = 10;
        let mut d = draft(AlertKind::BlockingPoint, Severity::Warning, "3 failed");
        d.since = 20;
        let r = reconcile(
            &[],
            drafts(std::slice::from_ref(&d)),
            "",
            &[episode],
            |_| true,
        );
        assert_eq!(r.changes, vec![AlertChange::Raise(d)]);
        assert_eq!(r.episodes_ended, [AlertKind::BlockingPoint]);
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
            reconcile(&active, drafts(std::slice::from_ref(&d)), "", &[], |_| true).changes,
            vec![AlertChange::Update {
                index: 0,
                draft: d,
                reopen: false
            }]
        );
        let d = draft(AlertKind::BlockingPoint, Severity::Critical, "6 failed");
        assert_eq!(
            reconcile(&active, drafts(std::slice::from_ref(&d)), "", &[], |_| true).changes,
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
        let d = [draft(
            AlertKind::BlockingPoint,
            Severity::Warning,
            "3 failed",
        )];
        assert!(
            reconcile(&active, drafts(&d), "", &[], |_| true)
                .changes
                .is_empty()
        );
        assert_eq!(
            reconcile(&active, drafts(&d), "c-1", &[], |_| true).changes,
            vec![AlertChange::Update {
                index: 0,
                draft: d[0].clone(),
                reopen: false
            }]
        );
    }

    #[test]
    fn a_retired_kind_is_resolved_saying_what_replaced_it() {
        let active = vec![alert(
            AlertKind::PredictedDropout,
            Severity::Info,
            "predicted",
            AlertStatus::Open,
        )];
        let r = reconcile(&active, drafts(&[]), "", &[], |_| true);
        assert_eq!(
            r.changes,
            vec![AlertChange::Clear {
                index: 0,
                note: notes::RETIRED
            }]
        );
    }

    #[test]
    fn the_budget_is_a_handful_per_25_learners_and_at_least_one() {
        assert_eq!(budget(25, 5), Some(5));
        assert_eq!(budget(16, 5), Some(3));
        assert_eq!(budget(3, 5), Some(1));
        assert_eq!(budget(600, 5), Some(120));
        assert_eq!(budget(10, 0), None);
    }
}
