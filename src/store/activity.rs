//! Module activity in the store: events by id and by learner in time
//! order.

use sled::Transactional;

use crate::domain::learner::Micros;

use super::*;

impl Store {
    // ---- module activity -----------------------------------------------

    /// One stored module event.
    pub fn activity(&self, event_id: &str) -> Result<Option<StoredActivity>> {
        self.activities.get(event_id.as_bytes())
    }

    /// Stores module events and their per-learner index in one transaction.
    pub fn put_activities(&self, events: &[StoredActivity]) -> Result<()> {
        let _gate = self.write_gate();
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let a = &e.activity;
                (
                    a.event_id.as_bytes().to_vec(),
                    keys::learner_activity(&a.learner_id, a.occurred_at, &a.event_id),
                    codec::encode(e),
                )
            })
            .collect();
        (&self.activities.tree, &self.learner_activity.tree)
            .transaction(|(by_id, by_learner)| {
                for (id, learner_key, value) in &rows {
                    by_id.insert(id.as_slice(), value.as_slice())?;
                    by_learner.insert(learner_key.as_slice(), value.as_slice())?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// The learner's latest `limit` events of `kind`, oldest first.
    pub fn recent_activities(
        &self,
        learner: &str,
        kind: ActivityKind,
        limit: usize,
    ) -> Result<Vec<StoredActivity>> {
        let mut out = Vec::new();
        for entry in self
            .learner_activity
            .tree
            .scan_prefix(keys::prefix(&[learner]))
            .rev()
        {
            let (key, bytes) = entry?;
            let event: StoredActivity = codec::decode(self.learner_activity.name, &key, &bytes)?;
            if event.activity.kind == kind {
                out.push(event);
                if out.len() == limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Whether `learner` completed `module` before `before`: a module's
    /// `tried` counts a learner's first go only. Reads the learner's events
    /// up to that time, newest first, until one is found.
    pub fn completed_before(&self, learner: &str, module: &str, before: Micros) -> Result<bool> {
        let start = keys::prefix(&[learner]);
        let end = keys::learner_activity(learner, before, "");
        for entry in self.learner_activity.tree.range(start..end).rev() {
            let (key, bytes) = entry?;
            let event: StoredActivity = codec::decode(self.learner_activity.name, &key, &bytes)?;
            let a = &event.activity;
            if a.kind == ActivityKind::Completed && a.module_id == module {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
