//! Declared pauses and withdrawals (trees `pauses`, `withdrawals`) and the
//! alert episodes a trainer closed (tree `alert_episodes`); layout in
//! [`super::keys`].
//!
//! All three are keyed by learner first, so a learner's rows are one
//! prefix scan, and an erasure removes them with [`Store::erase_alert_state`].

use super::table::Table;
use super::{Store, keys};
use crate::domain::pauses::{Pause, Withdrawal};
use crate::domain::risk::AlertKind;
use crate::error::Result;

/// Tree from (learner, pause id) to the pause.
const PAUSES: &str = "pauses";
/// Tree from (learner, program) to the withdrawal.
const WITHDRAWALS: &str = "withdrawals";
/// Tree from (learner, program, alert kind) to the id of the alert a
/// trainer resolved while its condition held: the episode stays silent
/// until the condition clears.
const EPISODES: &str = "alert_episodes";

impl Store {
    fn pauses_table(&self) -> Result<Table<Pause>> {
        self.table(PAUSES)
    }

    fn withdrawals_table(&self) -> Result<Table<Withdrawal>> {
        self.table(WITHDRAWALS)
    }

    fn episodes_table(&self) -> Result<Table<String>> {
        self.table(EPISODES)
    }

    /// Stores a pause (new, or ended early).
    pub fn put_pause(&self, pause: &Pause) -> Result<()> {
        let _gate = self.write_gate();
        self.pauses_table()?
            .put(&keys::compose(&[&pause.learner_id, &pause.id]), pause)
    }

    /// One pause of a learner.
    pub fn pause(&self, learner: &str, id: &str) -> Result<Option<Pause>> {
        self.pauses_table()?.get(&keys::compose(&[learner, id]))
    }

    /// Every pause of a learner, oldest declaration first.
    pub fn learner_pauses(&self, learner: &str) -> Result<Vec<Pause>> {
        Ok(self
            .pauses_table()?
            .scan(&keys::prefix(&[learner]))?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Every pause, by learner.
    pub fn all_pauses(&self) -> Result<Vec<Pause>> {
        Ok(self
            .pauses_table()?
            .scan(b"")?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Stores a withdrawal (once: the first one stays).
    pub fn put_withdrawal(&self, withdrawal: &Withdrawal) -> Result<()> {
        let _gate = self.write_gate();
        self.withdrawals_table()?.put(
            &keys::compose(&[&withdrawal.learner_id, &withdrawal.program_id]),
            withdrawal,
        )
    }

    /// The withdrawal of a learner from a program, if any.
    pub fn withdrawal(&self, learner: &str, program: &str) -> Result<Option<Withdrawal>> {
        self.withdrawals_table()?
            .get(&keys::compose(&[learner, program]))
    }

    /// The alert kinds of a learner in a program whose episode a trainer
    /// closed while its condition still held.
    pub fn closed_episodes(&self, learner: &str, program: &str) -> Result<Vec<AlertKind>> {
        let prefix = keys::prefix(&[learner, program]);
        Ok(self
            .episodes_table()?
            .scan(&prefix)?
            .into_iter()
            .filter_map(|(key, _)| {
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
            })
            .collect())
    }

    /// Marks the episode of `kind` closed by a trainer (`alert` resolved).
    pub fn close_episode(
        &self,
        learner: &str,
        program: &str,
        kind: AlertKind,
        alert: &str,
    ) -> Result<()> {
        let _gate = self.write_gate();
        self.episodes_table()?.put(
            &keys::compose(&[learner, program, kind.as_str()]),
            &alert.to_string(),
        )
    }

    /// Forgets a closed episode: its condition cleared, the next one may
    /// raise an alert.
    pub fn end_episode(&self, learner: &str, program: &str, kind: AlertKind) -> Result<()> {
        let _gate = self.write_gate();
        self.episodes_table()?
            .tree
            .remove(keys::compose(&[learner, program, kind.as_str()]))?;
        Ok(())
    }

    /// Removes a learner's pauses, withdrawals and closed episodes (an
    /// erasure). Returns how many rows went.
    pub fn erase_alert_state(&self, learner: &str) -> Result<usize> {
        let _gate = self.write_gate();
        let prefix = keys::prefix(&[learner]);
        let mut removed = 0;
        for tree in [
            self.pauses_table()?.tree,
            self.withdrawals_table()?.tree,
            self.episodes_table()?.tree,
        ] {
            let keys: Vec<_> = tree.scan_prefix(&prefix).keys().collect::<Result<_, _>>()?;
            for key in keys {
                tree.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(learner: &str, id: &str) -> Pause {
        Pause {
            id: id.into(),
            learner_id: learner.into(),
            program_id: String::new(),
            starts_at: 1,
            ends_at: 2,
            note: String::new(),
            declared_by: "lms".into(),
            declared_at: 1,
        }
    }

    #[test]
    fn rows_are_read_back_per_learner_and_erased_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_pause(&pause("ann", "pause-1")).unwrap();
        store.put_pause(&pause("ann", "pause-2")).unwrap();
        // "ann" is a prefix of "anna": the separator keeps them apart.
        store.put_pause(&pause("anna", "pause-1")).unwrap();
        assert_eq!(store.learner_pauses("ann").unwrap().len(), 2);
        store
            .close_episode("ann", "p", AlertKind::Stopping, "alert-1")
            .unwrap();
        assert_eq!(
            store.closed_episodes("ann", "p").unwrap(),
            [AlertKind::Stopping]
        );
        store.end_episode("ann", "p", AlertKind::Stopping).unwrap();
        assert!(store.closed_episodes("ann", "p").unwrap().is_empty());
        store
            .put_withdrawal(&Withdrawal {
                learner_id: "ann".into(),
                program_id: "p".into(),
                withdrawn_at: 5,
                note: String::new(),
                declared_by: "lms".into(),
            })
            .unwrap();
        assert!(store.withdrawal("ann", "p").unwrap().is_some());
        assert_eq!(store.erase_alert_state("ann").unwrap(), 3);
        assert!(store.learner_pauses("ann").unwrap().is_empty());
        assert!(store.withdrawal("ann", "p").unwrap().is_none());
        assert_eq!(store.learner_pauses("anna").unwrap().len(), 1);
    }
}
