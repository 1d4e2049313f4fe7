//! What the xAPI mapping keeps beside the catalog (layout in
//! [`super::keys`]):
//!
//! - `xapi_mapping`: the external ids (and an item's pass mark) of each
//!   program, module and item, out of their own rows so that rows written
//!   before these fields existed stay readable. Readers of programs,
//!   modules and items fill them in ([`Store::fill_mapping`]).
//! - `xapi_activities`: activities statements named that nothing maps,
//!   with what the statements said of them, or marked as ignored.

use std::collections::HashMap;

use super::table::Table;
use super::{Store, keys};
use crate::domain::learner::Micros;
use crate::domain::xapi::record::{ObjectKind, ObjectMapping, SeenActivity};
use crate::error::Result;

/// Tree of the mapping rows by kind and id.
pub(crate) const MAPPING: &str = "xapi_mapping";
/// Tree of unmapped (or ignored) activities by id.
const ACTIVITIES: &str = "xapi_activities";

/// The key of an object's mapping row: a kind letter, `00`, its id.
pub(crate) fn mapping_key(kind: ObjectKind, id: &str) -> Vec<u8> {
    let letter = match kind {
        ObjectKind::Program => "p",
        ObjectKind::Module => "m",
        ObjectKind::Item => "i",
    };
    keys::compose(&[letter, id])
}

fn kind_of(key: &[u8]) -> Option<(ObjectKind, String)> {
    let (letter, id) = key.split_at_checked(2)?;
    let kind = match letter {
        [b'p', keys::SEP] => ObjectKind::Program,
        [b'm', keys::SEP] => ObjectKind::Module,
        [b'i', keys::SEP] => ObjectKind::Item,
        _ => return None,
    };
    Some((kind, String::from_utf8_lossy(id).into_owned()))
}

/// Anything that carries a mapping: programs, modules, items.
pub trait Mapped {
    /// Its kind.
    const KIND: ObjectKind;
    /// Its id.
    fn id(&self) -> &str;
    /// Sets the fields kept in `xapi_mapping`.
    fn set_mapping(&mut self, mapping: ObjectMapping);
    /// The fields kept in `xapi_mapping`.
    fn mapping(&self) -> ObjectMapping;
}

/// Programs and modules keep external ids only.
macro_rules! mapped_by_external_ids {
    ($type:ty, $kind:expr) => {
        impl Mapped for $type {
            const KIND: ObjectKind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn set_mapping(&mut self, mapping: ObjectMapping) {
                self.external_ids = mapping.external_ids;
            }
            fn mapping(&self) -> ObjectMapping {
                ObjectMapping {
                    external_ids: self.external_ids.clone(),
                    pass_mark: None,
                }
            }
        }
    };
}

mapped_by_external_ids!(crate::domain::learner::Program, ObjectKind::Program);
mapped_by_external_ids!(crate::domain::catalog::Module, ObjectKind::Module);

impl Mapped for crate::domain::catalog::Item {
    const KIND: ObjectKind = ObjectKind::Item;
    fn id(&self) -> &str {
        &self.id
    }
    fn set_mapping(&mut self, mapping: ObjectMapping) {
        self.external_ids = mapping.external_ids;
        self.pass_mark = mapping.pass_mark;
    }
    fn mapping(&self) -> ObjectMapping {
        ObjectMapping {
            external_ids: self.external_ids.clone(),
            pass_mark: self.pass_mark,
        }
    }
}

impl Store {
    pub(crate) fn mapping_table(&self) -> Result<Table<ObjectMapping>> {
        self.table(MAPPING)
    }

    fn activities_table(&self) -> Result<Table<SeenActivity>> {
        self.table(ACTIVITIES)
    }

    /// Every mapping row: the engine keeps an index of external ids.
    pub fn all_mappings(&self) -> Result<Vec<(ObjectKind, String, ObjectMapping)>> {
        Ok(self
            .mapping_table()?
            .scan(b"")?
            .into_iter()
            .filter_map(|(key, row)| kind_of(&key).map(|(kind, id)| (kind, id, row)))
            .collect())
    }

    /// One object's mapping row (empty when it has none).
    pub fn mapping(&self, kind: ObjectKind, id: &str) -> Result<ObjectMapping> {
        Ok(self
            .mapping_table()?
            .get(&mapping_key(kind, id))?
            .unwrap_or_default())
    }

    /// Fills the mapping fields of objects read from their own tree.
    pub fn fill_mapping<T: Mapped>(&self, objects: &mut [T]) -> Result<()> {
        let table = self.mapping_table()?;
        if objects.len() > 64 {
            let mut rows: HashMap<String, ObjectMapping> = table
                .scan(&mapping_key(T::KIND, ""))?
                .into_iter()
                .filter_map(|(key, row)| kind_of(&key).map(|(_, id)| (id, row)))
                .collect();
            for object in objects {
                if let Some(row) = rows.remove(object.id()) {
                    object.set_mapping(row);
                }
            }
            return Ok(());
        }
        for object in objects {
            if let Some(row) = table.get(&mapping_key(T::KIND, object.id()))? {
                object.set_mapping(row);
            }
        }
        Ok(())
    }

    /// Replaces one object's mapping row (outside the catalog transaction:
    /// `MapActivity`).
    pub fn put_mapping(&self, kind: ObjectKind, id: &str, mapping: &ObjectMapping) -> Result<()> {
        let _gate = self.write_gate();
        let table = self.mapping_table()?;
        let key = mapping_key(kind, id);
        if mapping.is_empty() {
            table.tree.remove(key)?;
            Ok(())
        } else {
            table.put(&key, mapping)
        }
    }

    /// Records activities statements named that nothing maps: the newest
    /// definition wins, the first time seen is kept.
    pub fn saw_activities(&self, seen: &[(String, SeenActivity)]) -> Result<()> {
        let _gate = self.write_gate();
        let table = self.activities_table()?;
        for (id, activity) in seen {
            let mut row = table.get(id.as_bytes())?.unwrap_or_else(|| SeenActivity {
                first_seen: activity.first_seen,
                ..SeenActivity::default()
            });
            if row.ignored {
                continue;
            }
            let keep = |new: &str, old: &mut String| {
                if !new.is_empty() {
                    *old = new.to_string();
                }
            };
            keep(&activity.name, &mut row.name);
            keep(&activity.description, &mut row.description);
            keep(&activity.kind, &mut row.kind);
            keep(&activity.interaction_type, &mut row.interaction_type);
            row.first_seen = row.first_seen.min(activity.first_seen);
            row.last_seen = row.last_seen.max(activity.last_seen);
            table.put(id.as_bytes(), &row)?;
        }
        Ok(())
    }

    /// Marks an activity as ignored, or forgets it once mapped (`None`).
    pub fn set_activity_ignored(&self, id: &str, ignored: Option<Micros>) -> Result<()> {
        let _gate = self.write_gate();
        let table = self.activities_table()?;
        match ignored {
            Some(now) => {
                let mut row = table.get(id.as_bytes())?.unwrap_or(SeenActivity {
                    first_seen: now,
                    last_seen: now,
                    ..SeenActivity::default()
                });
                row.ignored = true;
                table.put(id.as_bytes(), &row)
            }
            None => {
                table.tree.remove(id.as_bytes())?;
                Ok(())
            }
        }
    }

    /// Every activity kept, ignored ones included, in id order.
    pub fn seen_activities(&self) -> Result<Vec<(String, SeenActivity)>> {
        Ok(self
            .activities_table()?
            .scan(b"")?
            .into_iter()
            .map(|(key, row)| (String::from_utf8_lossy(&key).into_owned(), row))
            .collect())
    }
}
