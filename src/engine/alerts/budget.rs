//! The alert budget: at most a handful of open alerts per group of
//! learners (a cohort, or a program's learners without a cohort), most
//! urgent first, the rest in a digest.
//!
//! The index lives in memory: which learners hold an open alert in each
//! group (rebuilt from the store by every full pass, kept up to date by
//! every alert write), the size of each group (counted by every pass) and
//! the drafts waiting for room (the digest). A new alert takes a seat
//! under the index's lock before it is written, so two evaluations never
//! both take the last one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::domain::alerts::{Alert, AlertStatus, budget};
use crate::domain::learner::Micros;
use crate::domain::risk::rules::rank_order;
use crate::domain::risk::{AlertDraft, AlertKind, Severity};

/// Open alerts per 25 learners by default.
pub const DEFAULT_ALERTS_PER_25: u32 = 5;

/// A group of learners sharing a budget: (program, cohort id or `""`).
pub(super) type Group = (String, String);

/// One draft waiting for room: a line of the digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestEntry {
    /// The learner.
    pub learner_id: String,
    /// The program.
    pub program_id: String,
    /// The learner's cohort, or empty.
    pub cohort_id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// Rank within the severity and kind, in `[0, 1]`.
    pub urgency: f64,
    /// The draft's reason.
    pub reason: String,
    /// When it was last evaluated.
    pub evaluated_at: Micros,
}

impl DigestEntry {
    fn rank(&self) -> (Severity, AlertKind, f64) {
        (self.severity, self.kind, self.urgency)
    }
}

/// The state of the budget.
#[derive(Debug, Default)]
pub(super) struct BudgetIndex {
    /// Open alerts per 25 learners; 0 for no budget.
    pub(super) per_25: u32,
    /// Learners with an open alert, per group.
    open: HashMap<Group, BTreeSet<String>>,
    /// The group of the open alert of each (learner, program).
    seat: HashMap<(String, String), String>,
    /// Learners per group.
    sizes: HashMap<Group, usize>,
    /// Drafts waiting for room, per group and learner.
    waiting: HashMap<Group, BTreeMap<String, DigestEntry>>,
    /// Whether `open` was read from the store since start.
    pub(super) loaded: bool,
}

impl BudgetIndex {
    /// A budget of `per_25` open alerts per 25 learners.
    pub(super) fn new(per_25: u32) -> Self {
        Self {
            per_25,
            ..Self::default()
        }
    }

    /// Reads the open alerts afresh (the store's active alerts).
    pub(super) fn rebuild(&mut self, active: &[Alert]) {
        self.open.clear();
        self.seat.clear();
        for a in active {
            self.record(a);
        }
        self.loaded = true;
    }

    /// Replaces the group sizes (a full pass counted them).
    pub(super) fn set_sizes(&mut self, sizes: HashMap<Group, usize>) {
        self.sizes = sizes;
    }

    /// The size of a group, if counted.
    pub(super) fn size(&self, group: &Group) -> Option<usize> {
        self.sizes.get(group).copied()
    }

    /// Counts one group's size (an evaluation met an uncounted group).
    pub(super) fn set_size(&mut self, group: Group, size: usize) {
        self.sizes.insert(group, size);
    }

    /// Forgets the sizes of a program's groups (its cohorts changed).
    pub(super) fn forget_sizes(&mut self, program: &str) {
        self.sizes.retain(|(p, _), _| p != program);
    }

    /// Follows an alert write: the learner holds a seat in the alert's
    /// group while it is open.
    pub(super) fn record(&mut self, a: &Alert) {
        let key = (a.learner_id.clone(), a.program_id.clone());
        if let Some(cohort) = self.seat.remove(&key) {
            if let Some(set) = self.open.get_mut(&(a.program_id.clone(), cohort)) {
                set.remove(&a.learner_id);
            }
        }
        if a.status == AlertStatus::Open {
            self.open
                .entry((a.program_id.clone(), a.cohort_id.clone()))
                .or_default()
                .insert(a.learner_id.clone());
            self.seat.insert(key, a.cohort_id.clone());
        }
    }

    /// Takes a seat for `draft` of `learner` in `group` if the budget has
    /// room: fewer open alerts than the budget, counting the waiting
    /// drafts that outrank it (they get the room first) when `queue` is
    /// set. A full pass, which offers drafts most urgent first, does not
    /// count them.
    pub(super) fn take_seat(
        &mut self,
        group: &Group,
        learner: &str,
        draft: &AlertDraft,
        queue: bool,
    ) -> bool {
        let size = self.sizes.get(group).copied().unwrap_or(1);
        if let Some(limit) = budget(size, self.per_25) {
            let open = self
                .open
                .get(group)
                .map_or(0, |s| s.iter().filter(|l| *l != learner).count());
            let ahead = if queue {
                self.waiting.get(group).map_or(0, |w| {
                    w.values()
                        .filter(|e| {
                            e.learner_id != learner
                                && rank_order(e.rank(), (draft.severity, draft.kind, draft.urgency))
                                    .is_gt()
                        })
                        .count()
                })
            } else {
                0
            };
            if open + ahead >= limit {
                return false;
            }
        }
        self.open
            .entry(group.clone())
            .or_default()
            .insert(learner.to_string());
        self.seat
            .insert((learner.to_string(), group.0.clone()), group.1.clone());
        true
    }

    /// Gives back a seat taken for a write that failed.
    pub(super) fn give_back(&mut self, group: &Group, learner: &str) {
        if let Some(set) = self.open.get_mut(group) {
            set.remove(learner);
        }
        self.seat.remove(&(learner.to_string(), group.0.clone()));
    }

    /// Sets (or clears) the learner's waiting draft in a program.
    pub(super) fn set_waiting(
        &mut self,
        program: &str,
        cohort: &str,
        learner: &str,
        draft: Option<&AlertDraft>,
        now: Micros,
    ) {
        // The learner may have changed cohort: one entry per program.
        for ((p, _), entries) in self.waiting.iter_mut() {
            if p == program {
                entries.remove(learner);
            }
        }
        if let Some(d) = draft {
            self.waiting
                .entry((program.to_string(), cohort.to_string()))
                .or_default()
                .insert(
                    learner.to_string(),
                    DigestEntry {
                        learner_id: learner.to_string(),
                        program_id: program.to_string(),
                        cohort_id: cohort.to_string(),
                        kind: d.kind,
                        severity: d.severity,
                        urgency: d.urgency,
                        reason: d.reason.clone(),
                        evaluated_at: now,
                    },
                );
        }
    }

    /// Forgets everything about a learner (an erasure).
    pub(super) fn forget_learner(&mut self, learner: &str) {
        for set in self.open.values_mut() {
            set.remove(learner);
        }
        self.seat.retain(|(l, _), _| l != learner);
        for entries in self.waiting.values_mut() {
            entries.remove(learner);
        }
    }

    /// The waiting drafts of a program (or of one of its cohorts), most
    /// urgent first.
    pub(super) fn digest(&self, program: &str, cohort: Option<&str>) -> Vec<DigestEntry> {
        let mut out: Vec<DigestEntry> = self
            .waiting
            .iter()
            .filter(|((p, c), _)| p == program && cohort.is_none_or(|x| x == c))
            .flat_map(|(_, entries)| entries.values().cloned())
            .collect();
        out.sort_by(|a, b| rank_order(b.rank(), a.rank()).then(a.learner_id.cmp(&b.learner_id)));
        out
    }

    /// Open alerts counted in a group, and its budget.
    pub(super) fn usage(&self, group: &Group) -> (usize, Option<usize>) {
        (
            self.open.get(group).map_or(0, BTreeSet::len),
            budget(self.sizes.get(group).copied().unwrap_or(1), self.per_25),
        )
    }

    /// Open alerts and budget summed over a program's groups.
    pub(super) fn program_usage(&self, program: &str) -> (usize, Option<usize>) {
        let mut groups: BTreeSet<&Group> =
            self.sizes.keys().filter(|(p, _)| p == program).collect();
        groups.extend(self.open.keys().filter(|(p, _)| p == program));
        let mut open = 0;
        let mut limit = (self.per_25 > 0).then_some(0);
        for g in groups {
            let (o, b) = self.usage(g);
            open += o;
            limit = limit.zip(b).map(|(x, y)| x + y);
        }
        (open, limit)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn draft(severity: Severity, urgency: f64) -> AlertDraft {
        AlertDraft {
            kind: AlertKind::Stopping,
            severity,
            urgency,
            reason: "r".into(),
            skill_id: None,
            since: 0,
            signals: BTreeMap::new(),
        }
    }

    fn group() -> Group {
        ("p".into(), "c".into())
    }

    #[test]
    fn seats_run_out_at_the_budget_and_come_back() {
        let mut index = BudgetIndex::new(5);
        index.set_size(group(), 10); // 2 seats
        let d = draft(Severity::Warning, 0.5);
        assert!(index.take_seat(&group(), "a", &d, true));
        assert!(index.take_seat(&group(), "a", &d, true), "a keeps its seat");
        assert!(index.take_seat(&group(), "b", &d, true));
        assert!(!index.take_seat(&group(), "c", &d, true));
        index.give_back(&group(), "b");
        assert!(index.take_seat(&group(), "c", &d, true));
        assert_eq!(index.usage(&group()), (2, Some(2)));
    }

    #[test]
    fn a_waiting_draft_that_outranks_gets_the_room_first() {
        let mut index = BudgetIndex::new(5);
        index.set_size(group(), 5); // 1 seat
        index.set_waiting("p", "c", "urgent", Some(&draft(Severity::Critical, 0.9)), 0);
        let mild = draft(Severity::Warning, 0.9);
        assert!(!index.take_seat(&group(), "mild", &mild, true));
        // A pass offers drafts in order and does not count the queue.
        assert!(index.take_seat(&group(), "mild", &mild, false));
        let digest = index.digest("p", None);
        assert_eq!(digest.len(), 1);
        assert_eq!(digest[0].learner_id, "urgent");
    }

    #[test]
    fn a_write_moves_the_seat_with_the_alert() {
        let mut index = BudgetIndex::new(5);
        let mut a = Alert {
            id: "alert-1".into(),
            cohort_id: "c".into(),
            kind: AlertKind::Stopping,
            ..crate::domain::alerts::tests_support::alert(1)
        };
        index.record(&a);
        assert_eq!(index.usage(&group()).0, 1);
        a.cohort_id = "d".into();
        index.record(&a);
        assert_eq!(index.usage(&group()).0, 0);
        assert_eq!(index.usage(&("p".into(), "d".into())).0, 1);
        a.status = AlertStatus::Acknowledged;
        index.record(&a);
        assert_eq!(index.usage(&("p".into(), "d".into())).0, 0);
    }
}
