//! Which modules were recommended to each learner, and when first: the
//! at-risk signal "share of recommended modules started" compares them with
//! module activity.
//!
//! Written on the read path of `RecommendNext`, so it is cheap (a lookup,
//! and an insert only the first time a module is recommended to a learner)
//! and best effort: it is made durable by the next checkpoint, not awaited.

use super::{Store, codec, keys};
use crate::domain::learner::Micros;
use crate::error::Result;

/// Tree of first recommendations: learner id `00` module id → `Micros`.
const TREE: &str = "recommended";

impl Store {
    /// Records that `modules` were recommended to `learner` at `now`, for
    /// those not recorded before.
    pub fn note_recommended<'a>(
        &self,
        learner: &str,
        modules: impl IntoIterator<Item = &'a str>,
        now: Micros,
    ) -> Result<()> {
        let _gate = self.write_gate();
        let table = self.table::<Micros>(TREE)?;
        for module in modules {
            let key = keys::compose(&[learner, module]);
            if !table.contains(&key)? {
                table.tree.insert(key, codec::encode(&now))?;
            }
        }
        Ok(())
    }

    /// Every module recommended to `learner`, with when it first was.
    pub fn recommended(&self, learner: &str) -> Result<Vec<(String, Micros)>> {
        Ok(self
            .table::<Micros>(TREE)?
            .scan(&keys::prefix(&[learner]))?
            .into_iter()
            .map(|(key, at)| {
                (
                    String::from_utf8_lossy(keys::last_part(&key)).into_owned(),
                    at,
                )
            })
            .collect())
    }
}
