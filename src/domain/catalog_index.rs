//! Lookup tables over one version of the catalog, built once when the catalog
//! changes so that per-request code (the remediation policy runs thousands
//! of times a second) works on dense numbers instead of rebuilding
//! string-keyed maps on every call.

use std::collections::{BTreeMap, HashMap};

use super::catalog::{Item, Module, Skill};

/// Dense numbering of a catalog's skills and modules.
///
/// Every skill id the catalog mentions gets a number: the catalog's skills,
/// and also any prerequisite or module skill id missing from it (only
/// possible for unvalidated inputs), flagged as unknown, so that code using
/// the index behaves exactly as code looking ids up in the maps.
#[derive(Debug, Clone, Default)]
pub struct CatalogIndex {
    skill_ids: Vec<String>,
    skill_at: HashMap<String, usize>,
    known: Vec<bool>,
    prerequisites: Vec<Vec<usize>>,
    module_at: HashMap<String, usize>,
    module_skills: Vec<Vec<usize>>,
    modules_of: Vec<Vec<usize>>,
    module_language: Vec<String>,
    /// Item ids testing each skill number, sorted (see [`CatalogIndex::with_items`]).
    items_of: Vec<Vec<String>>,
}

impl CatalogIndex {
    /// Indexes `skills` and `modules` (module numbers are positions in the
    /// slice, which must be the one later given with the index).
    pub fn new(skills: &BTreeMap<String, Skill>, modules: &[Module]) -> Self {
        let mut index = CatalogIndex::default();
        for id in skills.keys() {
            index.intern(id);
        }
        index.known = vec![true; index.skill_ids.len()];
        for skill in skills.values() {
            let prereqs = skill
                .prerequisite_ids
                .iter()
                .map(|q| index.intern(q))
                .collect();
            let at = index.skill_at[&skill.id];
            index
                .prerequisites
                .resize(index.skill_ids.len(), Vec::new());
            index.prerequisites[at] = prereqs;
        }
        for (at, module) in modules.iter().enumerate() {
            index.module_at.entry(module.id.clone()).or_insert(at);
            let mut taught: Vec<usize> = Vec::with_capacity(module.skill_ids.len());
            for s in &module.skill_ids {
                let s = index.intern(s);
                if !taught.contains(&s) {
                    taught.push(s);
                }
            }
            index.module_skills.push(taught);
            index
                .module_language
                .push(primary_subtag(&module.language).to_ascii_lowercase());
        }
        let n = index.skill_ids.len();
        index.known.resize(n, false);
        index.prerequisites.resize(n, Vec::new());
        index.modules_of = vec![Vec::new(); n];
        for (at, taught) in index.module_skills.iter().enumerate() {
            for &s in taught {
                index.modules_of[s].push(at);
            }
        }
        index
    }

    /// Adds the item bank: which items test each skill, for diagnostic
    /// questions. Items naming a skill unknown to the catalog are skipped.
    pub fn with_items<'a>(mut self, items: impl IntoIterator<Item = &'a Item>) -> Self {
        self.items_of = vec![Vec::new(); self.skill_ids.len()];
        for item in items {
            for s in &item.skill_ids {
                if let Some(&at) = self.skill_at.get(s) {
                    self.items_of[at].push(item.id.clone());
                }
            }
        }
        self.items_of.iter_mut().for_each(|ids| {
            ids.sort_unstable();
            ids.dedup();
        });
        self
    }

    /// The item ids testing skill number `at`, sorted; empty when the
    /// index was built without items.
    pub fn items_of(&self, at: usize) -> &[String] {
        self.items_of.get(at).map_or(&[], Vec::as_slice)
    }

    fn intern(&mut self, id: &str) -> usize {
        if let Some(&at) = self.skill_at.get(id) {
            return at;
        }
        let at = self.skill_ids.len();
        self.skill_ids.push(id.to_string());
        self.skill_at.insert(id.to_string(), at);
        at
    }

    /// Number of skill ids numbered (catalog skills first).
    pub fn skill_count(&self) -> usize {
        self.skill_ids.len()
    }

    /// The number of a skill id, if the catalog mentions it.
    pub fn skill(&self, id: &str) -> Option<usize> {
        self.skill_at.get(id).copied()
    }

    /// The id of skill number `at`.
    pub fn skill_id(&self, at: usize) -> &str {
        &self.skill_ids[at]
    }

    /// Whether skill number `at` is one of the catalog's skills.
    pub fn is_known(&self, at: usize) -> bool {
        self.known[at]
    }

    /// The prerequisites of skill number `at`, in catalog order.
    pub fn prerequisites(&self, at: usize) -> &[usize] {
        &self.prerequisites[at]
    }

    /// The position of a module id in the module slice.
    pub fn module(&self, id: &str) -> Option<usize> {
        self.module_at.get(id).copied()
    }

    /// Number of modules indexed.
    pub fn module_count(&self) -> usize {
        self.module_skills.len()
    }

    /// The skills module number `at` teaches, without repeats, in its order.
    pub fn module_skills(&self, at: usize) -> &[usize] {
        &self.module_skills[at]
    }

    /// The modules teaching skill number `at`, in slice order.
    pub fn modules_of(&self, at: usize) -> &[usize] {
        &self.modules_of[at]
    }

    /// The lowercased primary language subtag of module number `at`.
    pub fn module_language(&self, at: usize) -> &str {
        &self.module_language[at]
    }
}

/// The primary subtag of a BCP 47 tag (`fr` for `fr-CA`), trimmed.
pub fn primary_subtag(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Format;
    use crate::domain::catalog::test_skill as skill;

    fn module(id: &str, skills: &[&str], language: &str) -> Module {
        Module {
            external_ids: Vec::new(),
            id: id.into(),
            title: id.into(),
            skill_ids: skills.iter().map(|s| s.to_string()).collect(),
            format: Format::Video,
            duration_minutes: 10,
            language: language.into(),
        }
    }

    #[test]
    fn numbers_skills_modules_and_unknown_ids() {
        let skills = BTreeMap::from([skill("a", &[]), skill("b", &["a", "ghost"])]);
        let modules = vec![
            module("m1", &["b", "a", "b"], "fr-CA"),
            module("m2", &["a"], " EN"),
            module("m3", &["elsewhere"], ""),
        ];
        let index = CatalogIndex::new(&skills, &modules);
        let (a, b) = (index.skill("a").unwrap(), index.skill("b").unwrap());
        let ghost = index.skill("ghost").unwrap();
        let elsewhere = index.skill("elsewhere").unwrap();
        assert_eq!(index.skill_count(), 4);
        assert!(index.is_known(a) && index.is_known(b));
        assert!(!index.is_known(ghost) && !index.is_known(elsewhere));
        assert_eq!(index.prerequisites(b), &[a, ghost]);
        assert!(index.prerequisites(ghost).is_empty());
        assert_eq!(index.module_skills(0), &[b, a]);
        assert_eq!(index.modules_of(a), &[0, 1]);
        assert_eq!(index.modules_of(elsewhere), &[2]);
        assert_eq!(index.module("m2"), Some(1));
        assert_eq!(index.module("nope"), None);
        assert_eq!(index.module_language(0), "fr");
        assert_eq!(index.module_language(1), "en");
        assert_eq!(index.module_language(2), "");
        assert_eq!(index.skill_id(b), "b");
    }
}
