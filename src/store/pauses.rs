//! Declared pauses and withdrawals (trees `pauses`, `withdrawals`), the
//! alert episodes a trainer closed (tree `alert_episodes`), and the
//! recomputed figures of active alerts; layout in [`super::keys`].
//!
//! The three trees are keyed by learner first, so a learner's rows are one
//! prefix scan, and an erasure removes them with [`Store::erase_alert_state`].

use super::table::Table;
use super::{Store, keys};
use crate::domain::alerts::{Alert, ClosedEpisode};
use crate::domain::pauses::{Pause, Withdrawal};
use crate::domain::risk::AlertKind;
use crate::error::Result;

/// Tree from (learner, pause id) to the pause.
const PAUSES: &str = "pauses";
/// Tree from (learner, program) to the withdrawal.
const WITHDRAWALS: &str = "withdrawals";
/// Tree from (learner, program, alert kind) to the episode of the alert a
/// trainer resolved while its condition held: it stays silent until the
/// condition clears.
const EPISODES: &str = "alert_episodes";

impl Store {
    fn pauses_table(&self) -> Result<Table<Pause>> {
        self.table(PAUSES)
    }

    fn withdrawals_table(&self) -> Result<Table<Withdrawal>> {
        self.table(WITHDRAWALS)
    }

    fn episodes_table(&self) -> Result<Table<ClosedEpisode>> {
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
        self.pauses_table()?.values(&keys::prefix(&[learner]))
    }

    /// Every pause, by learner.
    pub fn all_pauses(&self) -> Result<Vec<Pause>> {
        self.pauses_table()?.values(b"")
    }

    /// Stores a withdrawal (once: the first one stays).
    pub fn put_withdrawal(&self, withdrawal: &Withdrawal) -> Result<()> {
        let _gate = self.write_gate();
        self.withdrawals_table()?.put(
            &keys::compose(&[&withdrawal.learner_id, &withdrawal.program_id]),
            withdrawal,
        )
    }

    /// Every withdrawal of a learner, by program.
    pub fn learner_withdrawals(&self, learner: &str) -> Result<Vec<Withdrawal>> {
        self.withdrawals_table()?.values(&keys::prefix(&[learner]))
    }

    /// The withdrawal of a learner from a program, if any.
    pub fn withdrawal(&self, learner: &str, program: &str) -> Result<Option<Withdrawal>> {
        self.withdrawals_table()?
            .get(&keys::compose(&[learner, program]))
    }

    /// Every episode of a learner a trainer closed while its condition
    /// held, by program.
    pub fn learner_episodes(&self, learner: &str) -> Result<Vec<ClosedEpisode>> {
        self.episodes_table()?.values(&keys::prefix(&[learner]))
    }

    /// The episodes of a learner in a program that a trainer closed while
    /// their condition still held.
    pub fn closed_episodes(&self, learner: &str, program: &str) -> Result<Vec<ClosedEpisode>> {
        self.episodes_table()?
            .values(&keys::prefix(&[learner, program]))
    }

    /// Records an episode a trainer closed (one per kind: the latest).
    pub fn close_episode(
        &self,
        learner: &str,
        program: &str,
        episode: &ClosedEpisode,
    ) -> Result<()> {
        let _gate = self.write_gate();
        self.episodes_table()?.put(
            &keys::compose(&[learner, program, episode.kind.as_str()]),
            episode,
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

    /// Stores an active alert whose figures (`signals`) were recomputed:
    /// the `alerts` row only, under the same sequence number. The
    /// `alert_log` keeps each change as it was published (what a watcher
    /// saw, what a resuming one replays), and the dedup index is unchanged:
    /// a refresh is not a change. The caller holds the learner's lock, as
    /// every writer of their alerts does.
    pub fn refresh_alert(&self, alert: &Alert) -> Result<()> {
        let _gate = self.write_gate();
        self.table::<Alert>("alerts")?
            .put(alert.id.as_bytes(), alert)
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
        let episode = ClosedEpisode {
            kind: AlertKind::Stopping,
            skill_id: None,
            since: 0,
            alert_id: "alert-1".into(),
        };
        store.close_episode("ann", "p", &episode).unwrap();
        assert_eq!(store.closed_episodes("ann", "p").unwrap(), [episode]);
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
