//! The catalog in the store: skills and modules (items live in
//! `items.rs`, external ids in `mapping.rs`).

use std::collections::BTreeMap;

use super::*;

impl Store {
    // ---- catalog -------------------------------------------------------

    /// Every skill, keyed by id: the graph checks need the whole catalog.
    pub fn all_skills(&self) -> Result<BTreeMap<String, Skill>> {
        Ok(self
            .skills
            .scan(b"")?
            .into_iter()
            .map(|(_, skill)| (skill.id.clone(), skill))
            .collect())
    }

    /// One skill.
    pub fn skill(&self, id: &str) -> Result<Option<Skill>> {
        self.skills.get(id.as_bytes())
    }

    /// Whether a skill exists.
    pub fn has_skill(&self, id: &str) -> Result<bool> {
        self.skills.contains(id.as_bytes())
    }

    /// A page of skills in id order.
    pub fn list_skills(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Skill>> {
        page(&self.skills, b"", after, limit)
    }

    /// Every module.
    pub fn all_modules(&self) -> Result<Vec<Module>> {
        let mut modules: Vec<Module> = self.modules.values(b"")?;
        self.fill_mapping(&mut modules)?;
        Ok(modules)
    }

    /// One module.
    pub fn module(&self, id: &str) -> Result<Option<Module>> {
        self.filled(self.modules.get(id.as_bytes())?)
    }

    /// A page of modules in id order.
    pub fn list_modules(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Module>> {
        let (mut modules, next) = page(&self.modules, b"", after, limit)?;
        self.fill_mapping(&mut modules)?;
        Ok((modules, next))
    }

    /// One object with its mapping fields filled in.
    pub(super) fn filled<T: mapping::Mapped>(&self, object: Option<T>) -> Result<Option<T>> {
        let mut objects: Vec<T> = object.into_iter().collect();
        self.fill_mapping(&mut objects)?;
        Ok(objects.pop())
    }
}
