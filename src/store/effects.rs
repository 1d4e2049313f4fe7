//! What each module did for each skill across the population (the
//! remediation policy's evidence, see `domain::remediation::effects`).
//!
//! Statistics, not records: written as answers close a module's window,
//! made durable by the next checkpoint, not awaited. A crash loses at most
//! the last seconds of evidence, which the next learners bring back.

use super::{Store, keys};
use crate::domain::remediation::effects::{Effects, ModuleEffect};
use crate::error::Result;

/// Tree of module effects: module id `00` skill id → `ModuleEffect`.
const TREE: &str = "module_effects";

impl Store {
    /// Every stored module effect.
    pub fn all_effects(&self) -> Result<Effects> {
        let mut out = Effects::default();
        for (key, effect) in self.table::<ModuleEffect>(TREE)?.scan(&[])? {
            let mut parts = key.split(|b| *b == 0);
            let (Some(module), Some(skill)) = (parts.next(), parts.next()) else {
                continue;
            };
            out.insert(
                String::from_utf8_lossy(module).into_owned(),
                String::from_utf8_lossy(skill).into_owned(),
                effect,
            );
        }
        Ok(out)
    }

    /// Stores the effect of `module` on `skill`.
    pub fn put_effect(&self, module: &str, skill: &str, effect: &ModuleEffect) -> Result<()> {
        let _gate = self.write_gate();
        self.table::<ModuleEffect>(TREE)?
            .put(&keys::compose(&[module, skill]), effect)
    }
}
