//! Catalog use cases: skills, modules and items (the Q-matrix), validated
//! against the whole graph. A write that adds items or modules replays the
//! xAPI statements that were waiting for them.

use std::collections::BTreeMap;

use super::Engine;
use crate::domain::catalog::{Item, Module, Skill, check_graph};
use crate::error::{Error, Result};
use crate::store::Page;

impl Engine {
    /// Upserts skills and modules together, all or nothing.
    ///
    /// The future catalog (stored plus new) is checked before anything is
    /// written: prerequisites must exist and stay acyclic, and every module
    /// must target known skills. Returns once the catalog is on disk.
    pub async fn import_catalog(&self, skills: Vec<Skill>, modules: Vec<Module>) -> Result<()> {
        self.import_catalog_items(skills, modules, Vec::new()).await
    }

    /// [`Engine::import_catalog`] with items (the Q-matrix) as well, all
    /// or nothing; waiting xAPI statements are replayed afterwards.
    pub async fn import_catalog_items(
        &self,
        skills: Vec<Skill>,
        modules: Vec<Module>,
        items: Vec<Item>,
    ) -> Result<()> {
        let resolves = !modules.is_empty() || !items.is_empty();
        self.write_catalog(skills, modules, items)?;
        self.store.durable().await?;
        if resolves {
            self.replay_after_catalog_write().await;
        }
        Ok(())
    }

    /// Upserts items, all or nothing; every item's skills must exist.
    /// Returns the number of waiting xAPI statements this write resolved.
    pub async fn upsert_items(&self, items: Vec<Item>) -> Result<usize> {
        self.write_catalog(Vec::new(), Vec::new(), items)?;
        self.store.durable().await?;
        Ok(self.replay_after_catalog_write().await)
    }

    /// One item, or NOT_FOUND.
    pub fn item(&self, id: &str) -> Result<Item> {
        self.catalog()
            .items
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("item", id))
    }

    /// A page of items.
    pub fn list_items(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Item>> {
        self.store.list_items(after, limit)
    }

    /// Replays waiting xAPI statements; the catalog write already
    /// succeeded, so a failed replay is logged, not returned.
    async fn replay_after_catalog_write(&self) -> usize {
        match self.replay_unresolved().await {
            Ok(report) => report.applied,
            Err(err) => {
                tracing::warn!(error = %err, "replay of waiting xAPI statements failed");
                0
            }
        }
    }

    fn write_catalog(
        &self,
        skills: Vec<Skill>,
        modules: Vec<Module>,
        items: Vec<Item>,
    ) -> Result<()> {
        let _guard = self.catalog_write.lock().expect("catalog lock");
        let mut future: BTreeMap<String, Skill> = self.catalog().skills.clone();
        let no_refs: &[String] = &[];
        check_entries(
            ("skills", "skill"),
            skills.iter().map(|s| (s.id.as_str(), no_refs)),
            &future,
        )?;
        future.extend(skills.iter().map(|s| (s.id.clone(), s.clone())));
        check_graph(&future)?;
        check_entries(
            ("modules", "module"),
            modules
                .iter()
                .map(|m| (m.id.as_str(), m.skill_ids.as_slice())),
            &future,
        )?;
        check_entries(
            ("items", "item"),
            items
                .iter()
                .map(|it| (it.id.as_str(), it.skill_ids.as_slice())),
            &future,
        )?;
        self.store.put_catalog(&skills, &modules, &items)?;
        // Still under the write lock: the cache changes in the same order as
        // the store.
        *self.catalog.write().expect("catalog lock") =
            std::sync::Arc::new(super::Catalog::load(&self.store)?);
        Ok(())
    }

    /// Upserts one skill.
    pub async fn upsert_skill(&self, skill: Skill) -> Result<Skill> {
        self.write_catalog(vec![skill.clone()], Vec::new(), Vec::new())
            .map_err(|e| rename_field(e, "skills[0]", "skill"))?;
        self.store.durable().await?;
        Ok(skill)
    }

    /// Upserts one module.
    pub async fn upsert_module(&self, module: Module) -> Result<Module> {
        self.write_catalog(Vec::new(), vec![module.clone()], Vec::new())
            .map_err(|e| rename_field(e, "modules[0]", "module"))?;
        self.store.durable().await?;
        self.replay_after_catalog_write().await;
        Ok(module)
    }

    /// One skill, or NOT_FOUND.
    pub fn skill(&self, id: &str) -> Result<Skill> {
        self.catalog()
            .skills
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("skill", id))
    }

    /// One module, or NOT_FOUND.
    pub fn module(&self, id: &str) -> Result<Module> {
        self.store
            .module(id)?
            .ok_or_else(|| Error::not_found("module", id))
    }

    /// A page of skills.
    pub fn list_skills(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Skill>> {
        self.store.list_skills(after, limit)
    }

    /// A page of modules.
    pub fn list_modules(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Module>> {
        self.store.list_modules(after, limit)
    }
}

/// Rewrites the field path of a single-object write so that it names the
/// request's field (`skill.prerequisite_ids[0]`) rather than the batch form.
fn rename_field(err: Error, batch_prefix: &str, single: &str) -> Error {
    match err {
        Error::InvalidArgument { field, reason } => {
            let field = match field.strip_prefix(batch_prefix) {
                Some(rest) => format!("{single}{rest}"),
                None if field.starts_with("skills[") => {
                    // Graph errors name the skill by id: `skills[<id>]...`.
                    let rest = field.split_once(']').map_or("", |(_, r)| r);
                    format!("{single}{rest}")
                }
                None => field,
            };
            Error::InvalidArgument { field, reason }
        }
        other => other,
    }
}

/// Refuses an id given twice in one request and a skill id the catalog
/// will not hold, naming the field: `field` is the request's list
/// (`modules`), `noun` what it holds (`module`).
fn check_entries<'a>(
    (field, noun): (&str, &str),
    entries: impl Iterator<Item = (&'a str, &'a [String])>,
    skills: &BTreeMap<String, Skill>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, (id, skill_ids)) in entries.enumerate() {
        if !seen.insert(id) {
            return Err(Error::invalid(
                format!("{field}[{i}].id"),
                format!("{noun} '{id}' appears twice in the request"),
            ));
        }
        for (j, skill) in skill_ids.iter().enumerate() {
            if !skills.contains_key(skill) {
                return Err(Error::invalid(
                    format!("{field}[{i}].skill_ids[{j}]"),
                    format!("unknown skill id '{skill}'"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_the_repeated_id_and_the_unknown_skill() {
        let skills: BTreeMap<String, Skill> = [(
            "s".to_string(),
            Skill {
                id: "s".into(),
                name: "S".into(),
                prerequisite_ids: vec![],
            },
        )]
        .into();
        let known = ["s".to_string()];
        let unknown = ["s".to_string(), "ghost".to_string()];
        let ok = [("m1", &known[..]), ("m2", &known[..])];
        assert!(check_entries(("modules", "module"), ok.into_iter(), &skills).is_ok());

        let twice = [("m1", &known[..]), ("m1", &known[..])];
        let err = check_entries(("modules", "module"), twice.into_iter(), &skills).unwrap_err();
        assert!(err.to_string().contains("modules[1].id"), "{err}");
        assert!(
            err.to_string().contains("module 'm1' appears twice"),
            "{err}"
        );

        let ghost = [("i1", &known[..]), ("i2", &unknown[..])];
        let err = check_entries(("items", "item"), ghost.into_iter(), &skills).unwrap_err();
        assert!(err.to_string().contains("items[1].skill_ids[1]"), "{err}");
        assert!(err.to_string().contains("'ghost'"), "{err}");
    }
}
