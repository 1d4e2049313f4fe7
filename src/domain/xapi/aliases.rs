//! The index of external ids: which program, module or item an LMS's
//! activity IRI stands for, and which activities were marked as ignored.
//!
//! An external id names one object of each kind at most (a course IRI can
//! be a program's and a module's, never two modules'), and never another
//! object's own id of that kind: a lookup then has one answer.

use std::collections::{HashMap, HashSet};

use super::record::{ObjectKind, ObjectMapping};

/// External id -> owner id, per kind, plus the ignored activities.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    /// External id -> (kind, owner) pairs, at most one per kind: looked
    /// up by `&str` for every statement, without allocating.
    owners: HashMap<String, Vec<(ObjectKind, String)>>,
    ignored: HashSet<String>,
    /// Every program's own id: few, and context activities are checked
    /// against them for every statement.
    programs: HashSet<String>,
}

/// Why an external id cannot be given to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clash {
    /// Another object of the kind already has it as an external id.
    TakenBy(String),
    /// It is another object's own id.
    OwnId,
}

impl Aliases {
    /// Builds the index from the stored mapping rows and ignored ids.
    pub fn new(
        rows: impl IntoIterator<Item = (ObjectKind, String, ObjectMapping)>,
        ignored: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut owners: HashMap<String, Vec<(ObjectKind, String)>> = HashMap::new();
        for (kind, owner, row) in rows {
            for external in row.external_ids {
                let entry = owners.entry(external).or_default();
                entry.retain(|(k, _)| *k != kind);
                entry.push((kind, owner.clone()));
            }
        }
        Self {
            owners,
            ignored: ignored.into_iter().collect(),
            programs: HashSet::new(),
        }
    }

    /// Adds program ids (their own ids, not external ones).
    pub fn add_programs(&mut self, ids: impl IntoIterator<Item = String>) {
        self.programs.extend(ids);
    }

    /// The program `id` names: its own id or an external one.
    pub fn program<'a>(&'a self, id: &'a str) -> Option<&'a str> {
        if self.programs.contains(id) {
            return Some(id);
        }
        self.owner(ObjectKind::Program, id)
    }

    /// The owner of external id `id` among objects of `kind`.
    pub fn owner(&self, kind: ObjectKind, id: &str) -> Option<&str> {
        self.owners
            .get(id)?
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, owner)| owner.as_str())
    }

    /// Whether `id` was marked as ignored.
    pub fn is_ignored(&self, id: &str) -> bool {
        self.ignored.contains(id)
    }

    /// Whether `owner` (of `kind`) may carry `external`, given whether
    /// `external` is the own id of an existing object of that kind.
    pub fn check(
        &self,
        kind: ObjectKind,
        owner: &str,
        external: &str,
        is_own_id_of_other: bool,
    ) -> Result<(), Clash> {
        if is_own_id_of_other && external != owner {
            return Err(Clash::OwnId);
        }
        match self.owner(kind, external) {
            Some(other) if other != owner => Err(Clash::TakenBy(other.to_string())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_per_kind() {
        let aliases = Aliases::new(
            [(
                ObjectKind::Module,
                "m1".to_string(),
                ObjectMapping {
                    external_ids: vec!["https://lms/mod/1".into()],
                    pass_mark: None,
                },
            )],
            ["https://lms/ignored".to_string()],
        );
        assert_eq!(
            aliases.owner(ObjectKind::Module, "https://lms/mod/1"),
            Some("m1")
        );
        assert_eq!(aliases.owner(ObjectKind::Item, "https://lms/mod/1"), None);
        assert!(aliases.is_ignored("https://lms/ignored"));
        let kind = ObjectKind::Module;
        assert_eq!(
            aliases.check(kind, "m2", "https://lms/mod/1", false),
            Err(Clash::TakenBy("m1".into()))
        );
        assert_eq!(
            aliases.check(kind, "m1", "https://lms/mod/1", false),
            Ok(())
        );
        assert_eq!(aliases.check(kind, "m2", "m1", true), Err(Clash::OwnId));
        assert_eq!(
            aliases.check(ObjectKind::Program, "p", "https://lms/mod/1", false),
            Ok(())
        );
    }
}
