//! Storage of at-risk alerts (trees `alerts`, `alert_active`, `alert_log`;
//! layout in [`super::keys`]), plus the per-learner reads the signals need.
//!
//! Every change of an alert writes three trees in one transaction: the
//! alert itself, the dedup index of active alerts (one per learner,
//! program and kind), and an entry of the append-only log under the
//! change's sequence number. So a watcher replaying the log never sees a
//! change the alert tree does not hold, and the dedup index never points at
//! a resolved alert.

use sled::Transactional;

use super::table::Table;
use super::{Page, Store, codec, keys, transaction_error};
use crate::domain::activity::StoredActivity;
use crate::domain::alerts::Alert;
use crate::domain::risk::AlertKind;
use crate::error::{Error, Result};

/// Tree of alerts by id.
const ALERTS: &str = "alerts";
/// Tree from (learner, program, kind) to the id of the active alert.
const ACTIVE: &str = "alert_active";
/// Append-only tree from sequence number to the alert after that change.
const LOG: &str = "alert_log";

/// Key of the active alert of a learner, program and kind.
fn active_key(learner: &str, program: &str, kind: AlertKind) -> Vec<u8> {
    keys::compose(&[learner, program, kind.as_str()])
}

impl Store {
    fn alerts_table(&self) -> Result<Table<Alert>> {
        self.table(ALERTS)
    }

    fn alert_active_table(&self) -> Result<Table<String>> {
        self.table(ACTIVE)
    }

    fn alert_log_table(&self) -> Result<Table<Alert>> {
        self.table(LOG)
    }

    /// One alert by id.
    pub fn alert(&self, id: &str) -> Result<Option<Alert>> {
        self.alerts_table()?.get(id.as_bytes())
    }

    /// The sequence number of the latest alert change (0 before any).
    pub fn last_alert_sequence(&self) -> Result<u64> {
        match self.alert_log_table()?.tree.last()? {
            Some((key, _)) => keys::sequence_from(&key).ok_or_else(|| Error::Corrupt {
                tree: LOG,
                key: keys::display(&key),
                reason: "key is not an 8-byte sequence number".into(),
            }),
            None => Ok(0),
        }
    }

    /// The active (open or acknowledged) alerts of one learner in one
    /// program, at most one per kind.
    pub fn active_alerts(&self, learner: &str, program: &str) -> Result<Vec<Alert>> {
        self.active_under(&keys::prefix(&[learner, program]))
    }

    /// Every active alert, in (learner, program, kind) order.
    pub fn all_active_alerts(&self) -> Result<Vec<Alert>> {
        self.active_under(b"")
    }

    /// The active alerts whose index key starts with `prefix`, read
    /// through the index (a dangling entry is damage, named).
    fn active_under(&self, prefix: &[u8]) -> Result<Vec<Alert>> {
        let alerts = self.alerts_table()?;
        self.alert_active_table()?
            .scan(prefix)?
            .into_iter()
            .map(|(key, id)| {
                alerts.get(id.as_bytes())?.ok_or_else(|| Error::Corrupt {
                    tree: ACTIVE,
                    key: keys::display(&key),
                    reason: format!("points at missing alert '{id}'"),
                })
            })
            .collect()
    }

    /// Writes alert changes in one transaction: each alert (whose
    /// `sequence` is the change's number, unused so far), its dedup entry
    /// (set while active, removed once resolved) and its log entry. Call
    /// [`Store::sync`] before telling watchers: a change lost in a crash
    /// would have its number given to another change, and a watcher
    /// resuming from that number would skip it.
    pub fn commit_alerts(&self, changes: &[Alert]) -> Result<()> {
        let _gate = self.write_gate();
        let (alerts, active, log) = (
            self.alerts_table()?,
            self.alert_active_table()?,
            self.alert_log_table()?,
        );
        /// One change, encoded before the transaction (which may retry).
        struct Row {
            id: Vec<u8>,
            active_key: Vec<u8>,
            sequence: [u8; 8],
            value: Vec<u8>,
            id_value: Vec<u8>,
            active: bool,
        }
        let rows: Vec<Row> = changes
            .iter()
            .map(|a| Row {
                id: a.id.as_bytes().to_vec(),
                active_key: active_key(&a.learner_id, &a.program_id, a.kind),
                sequence: keys::sequence(a.sequence),
                value: codec::encode(a),
                id_value: codec::encode(&a.id),
                active: a.status.is_active(),
            })
            .collect();
        (&alerts.tree, &active.tree, &log.tree)
            .transaction(|(by_id, by_key, by_seq)| {
                for row in &rows {
                    by_id.insert(row.id.as_slice(), row.value.as_slice())?;
                    by_seq.insert(&row.sequence[..], row.value.as_slice())?;
                    let key = row.active_key.as_slice();
                    if row.active {
                        by_key.insert(key, row.id_value.as_slice())?;
                    } else if by_key.get(key)?.as_deref() == Some(row.id_value.as_slice()) {
                        by_key.remove(key)?;
                    }
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Logged alert changes with a sequence number above `after` and at
    /// most `through`, in order, at most `limit` of them.
    pub fn alert_changes_after(
        &self,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<Alert>> {
        let log = self.alert_log_table()?;
        let mut out = Vec::new();
        let Some(first) = after.checked_add(1) else {
            return Ok(out);
        };
        if first > through {
            return Ok(out);
        }
        for entry in log
            .tree
            .range(keys::sequence(first).to_vec()..=keys::sequence(through).to_vec())
        {
            if out.len() == limit {
                break;
            }
            let (key, bytes) = entry?;
            out.push(codec::decode(LOG, &key, &bytes)?);
        }
        Ok(out)
    }

    /// A page of alerts in id (creation) order that satisfy `keep`.
    ///
    /// Scans in id order: pages stay bounded by `limit` results but may
    /// read past alerts that do not match.
    pub fn list_alerts(
        &self,
        mut keep: impl FnMut(&Alert) -> Result<bool>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Alert>> {
        let table = self.alerts_table()?;
        let range = match after {
            Some(after) => {
                let mut start = after.to_vec();
                start.push(0);
                table.tree.range(start..)
            }
            None => table.tree.range::<&[u8], _>(..),
        };
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in range {
            let (key, bytes) = entry?;
            let alert: Alert = codec::decode(ALERTS, &key, &bytes)?;
            if !keep(&alert)? {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(key.to_vec());
            out.push(alert);
        }
        Ok((out, None))
    }

    /// [`Store::list_alerts`] over the active (open or acknowledged)
    /// alerts only, read through their index: the same pages and tokens
    /// for a filter that keeps only active alerts, at the cost of the
    /// active set rather than of every alert ever raised.
    pub fn list_active_alerts(
        &self,
        mut keep: impl FnMut(&Alert) -> Result<bool>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Alert>> {
        let mut active = self.all_active_alerts()?;
        active.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = Vec::new();
        let mut last_key = None;
        for alert in active {
            if after.is_some_and(|after| alert.id.as_bytes() <= after) || !keep(&alert)? {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(alert.id.as_bytes().to_vec());
            out.push(alert);
        }
        Ok((out, None))
    }

    /// Every module event of a learner, oldest first (signals and reports).
    pub fn learner_activities(&self, learner: &str) -> Result<Vec<StoredActivity>> {
        self.learner_activity.values(&keys::prefix(&[learner]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alerts::AlertStatus;

    fn change(sequence: u64) -> Alert {
        Alert {
            learner_id: format!("l{sequence}"),
            reason: "stuck".into(),
            ..crate::domain::alerts::tests_support::alert(sequence)
        }
    }

    /// Listing open alerts through the index gives the pages (and
    /// tokens) of the full scan with the same filter.
    #[test]
    fn active_listing_pages_as_the_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut changes: Vec<Alert> = (1..=9).map(change).collect();
        for (i, a) in changes.iter_mut().enumerate() {
            if i % 3 == 1 {
                a.status = AlertStatus::Resolved;
            }
            if i % 3 == 2 {
                a.status = AlertStatus::Acknowledged;
            }
        }
        store.commit_alerts(&changes).unwrap();
        let open = |a: &Alert| Ok(a.status == AlertStatus::Open);
        let pages = |active: bool| {
            let mut out = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let (page, next) = if active {
                    store.list_active_alerts(open, after.as_deref(), 2)
                } else {
                    store.list_alerts(open, after.as_deref(), 2)
                }
                .unwrap();
                out.push(page.into_iter().map(|a| a.sequence).collect::<Vec<_>>());
                match next {
                    Some(n) => after = Some(n),
                    None => return out,
                }
            }
        };
        assert_eq!(pages(false), [vec![1, 4], vec![7]]);
        assert_eq!(pages(true), pages(false));
    }

    #[test]
    fn catch_up_reads_stop_at_the_durable_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .commit_alerts(&[change(1), change(2), change(3)])
            .unwrap();
        let seqs = |after, through, limit| -> Vec<u64> {
            store
                .alert_changes_after(after, through, limit)
                .unwrap()
                .iter()
                .map(|a| a.sequence)
                .collect()
        };
        assert_eq!(seqs(0, 3, 10), [1, 2, 3]);
        assert_eq!(seqs(0, 2, 10), [1, 2], "3 is not durable yet");
        assert_eq!(seqs(0, 3, 2), [1, 2], "limit");
        assert_eq!(seqs(2, 3, 10), [3]);
        assert!(seqs(3, 2, 10).is_empty());
        assert!(seqs(u64::MAX, u64::MAX, 10).is_empty());
    }
}
