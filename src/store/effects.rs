//! What each module did for each skill across the population (the
//! remediation policy's evidence, see `domain::remediation::effects`).
//!
//! Statistics, not records: written as answers close a module's window,
//! made durable by the next checkpoint, not awaited. A crash loses at most
//! the last seconds of evidence, which the next learners bring back.

use serde::Deserialize;

use super::{Store, codec, keys};
use crate::domain::remediation::effects::{Effects, ModuleEffect, Strata};
use crate::error::Result;

/// Tree of module effects: module id `00` skill id → `ModuleEffect`.
pub(super) const TREE: &str = "module_effects";

/// A module effect as stored before the evidence was also kept per pattern
/// of the answers before (2026-12-06): the same fields without `strata`.
/// Postcard has no optional trailing fields, so such a value does not
/// decode as a `ModuleEffect` and is read as this instead; the pair's next
/// outcome rewrites it in the current layout.
#[derive(Deserialize)]
struct EffectWithoutPatterns {
    tried: u32,
    moved: u32,
    weight: f64,
    sum: f64,
    sum_sq: f64,
}

/// Decodes a stored module effect of either layout; the error is the
/// current layout's when neither decodes.
pub(super) fn decode_effect(key: &[u8], bytes: &[u8]) -> Result<ModuleEffect> {
    codec::decode::<ModuleEffect>(TREE, key, bytes).or_else(|error| {
        codec::decode::<EffectWithoutPatterns>(TREE, key, bytes)
            .map(|old| ModuleEffect {
                tried: old.tried,
                moved: old.moved,
                weight: old.weight,
                sum: old.sum,
                sum_sq: old.sum_sq,
                strata: Strata::default(),
            })
            .map_err(|_| error)
    })
}

impl Store {
    /// Every stored module effect.
    pub fn all_effects(&self) -> Result<Effects> {
        let mut out = Effects::default();
        let table = self.table::<ModuleEffect>(TREE)?;
        for entry in table.tree.iter() {
            let (key, bytes) = entry?;
            let effect = decode_effect(&key, &bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::remediation::effects::EffectEvidence;

    /// A value written in the layout before patterns, field by field as
    /// postcard lays a struct out.
    fn without_patterns(effect: &ModuleEffect) -> Vec<u8> {
        let fields = (
            effect.tried,
            effect.moved,
            effect.weight,
            effect.sum,
            effect.sum_sq,
        );
        codec::encode(&fields)
    }

    #[test]
    fn effects_stored_before_patterns_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut effect = ModuleEffect::default();
        let evidence = EffectEvidence {
            before: 0.2,
            right_before: 1,
            wrong_before: 2,
            right: 3,
            wrong: 0,
            guess: 0.2,
            slip: 0.1,
            weight: 1.0,
            first_go: true,
        };
        effect.observe(&evidence, 0.95);
        let table = store.table::<ModuleEffect>(TREE).unwrap();
        table
            .tree
            .insert(keys::compose(&["old", "s"]), without_patterns(&effect))
            .unwrap();
        store.put_effect("new", "s", &effect).unwrap();

        let all = store.all_effects().unwrap();
        let old = all.get("old", "s").unwrap();
        assert_eq!(
            (old.tried, old.moved, old.weight, old.sum, old.sum_sq),
            (
                effect.tried,
                effect.moved,
                effect.weight,
                effect.sum,
                effect.sum_sq
            )
        );
        assert_eq!(old.strata, Strata::default());
        assert_eq!(all.get("new", "s"), Some(&effect));

        // Neither layout: an error naming the tree, not a silent default.
        let err = decode_effect(b"bad", &[1, 0xff]).unwrap_err();
        assert!(err.to_string().contains(TREE), "{err}");
    }
}
