//! Catalog use cases: skills, modules and items (the Q-matrix), validated
//! against the whole graph. A write that adds items or modules replays the
//! xAPI statements that were waiting for them.
//!
//! Every refusal names the offending field by its position in the lists
//! the caller gave (`skills[1].prerequisite_ids[0]`, or
//! `skill.prerequisite_ids[0]` for a single upsert), never by an id: an id
//! may hold any character, and the entry at fault (the one that closes a
//! cycle) need not be the skill the graph check first meets. The id lists
//! inside each entry are therefore taken as given, in any order and with
//! repeats, and only sorted and deduplicated once checked.

use std::collections::{BTreeMap, HashMap};

use super::Engine;
use super::mapping::ExternalIds;
use crate::domain::catalog::{GraphError, Item, Module, Skill, check_graph};
use crate::domain::xapi::record::ObjectKind;
use crate::error::{Error, Result};
use crate::store::Page;

impl Engine {
    /// Upserts skills and modules together, all or nothing.
    ///
    /// The future catalog (stored plus new) is checked before anything is
    /// written: prerequisites must exist and stay acyclic, and every module
    /// must target known skills. Returns once the catalog is on disk.
    ///
    /// Lists inside an entry (prerequisites, skills) may come in any order
    /// and repeat ids; they are stored sorted without repeats. A refusal
    /// names the field by its position in the lists as given:
    /// `skills[i]`, `modules[i]`, `items[i]`.
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
        self.write_catalog(Paths::Batch, skills, modules, items)?;
        self.store.durable().await?;
        if resolves {
            self.replay_after_catalog_write().await;
        }
        Ok(())
    }

    /// Upserts items, all or nothing; every item's skills must exist.
    /// Returns the number of waiting xAPI statements this write resolved.
    pub async fn upsert_items(&self, items: Vec<Item>) -> Result<usize> {
        self.write_catalog(Paths::Batch, Vec::new(), Vec::new(), items)?;
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

    /// Checks the catalog as it would be after the write, then stores the
    /// entries with their id lists sorted and deduplicated, as written.
    fn write_catalog(
        &self,
        paths: Paths,
        mut skills: Vec<Skill>,
        mut modules: Vec<Module>,
        mut items: Vec<Item>,
    ) -> Result<(Vec<Skill>, Vec<Module>, Vec<Item>)> {
        let _guard = self.catalog_write.lock();
        let current = self.catalog();
        let stored = &current.skills;
        let no_refs: &[String] = &[];
        check_entries(
            (paths, SKILLS),
            skills.iter().map(|s| (s.id.as_str(), no_refs)),
            stored,
        )?;
        let mut future = stored.clone();
        future.extend(skills.iter().map(|s| (s.id.clone(), s.clone())));
        check_graph(&future).map_err(|err| graph_refusal(paths, err, &skills, stored))?;
        check_entries(
            (paths, MODULES),
            modules
                .iter()
                .map(|m| (m.id.as_str(), m.skill_ids.as_slice())),
            &future,
        )?;
        check_entries(
            (paths, ITEMS),
            items
                .iter()
                .map(|it| (it.id.as_str(), it.skill_ids.as_slice())),
            &future,
        )?;
        let writes: Vec<ExternalIds<'_>> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let at = paths.entry(MODULES, i);
                (
                    ObjectKind::Module,
                    m.id.as_str(),
                    format!("{at}.external_ids"),
                    m.external_ids.as_slice(),
                )
            })
            .chain(items.iter().enumerate().map(|(i, it)| {
                let at = paths.entry(ITEMS, i);
                (
                    ObjectKind::Item,
                    it.id.as_str(),
                    format!("{at}.external_ids"),
                    it.external_ids.as_slice(),
                )
            }))
            .collect();
        let new_modules: std::collections::HashSet<&str> =
            modules.iter().map(|m| m.id.as_str()).collect();
        let new_items: std::collections::HashSet<&str> =
            items.iter().map(|i| i.id.as_str()).collect();
        self.check_external_ids(&writes, |kind, id| {
            self.is_own_id(&current, kind, id)
                || match kind {
                    ObjectKind::Module => new_modules.contains(id),
                    ObjectKind::Item => new_items.contains(id),
                    ObjectKind::Program => false,
                }
        })?;
        skills
            .iter_mut()
            .for_each(|s| id_set(&mut s.prerequisite_ids));
        modules.iter_mut().for_each(|m| id_set(&mut m.skill_ids));
        items.iter_mut().for_each(|it| id_set(&mut it.skill_ids));
        self.store.put_catalog(&skills, &modules, &items)?;
        // Still under the write lock: the cache changes in the same order as
        // the store.
        *self.catalog.write() = std::sync::Arc::new(super::Catalog::load(&self.store)?);
        if !(modules.is_empty() && items.is_empty()) {
            self.reload_aliases()?;
        }
        Ok((skills, modules, items))
    }

    /// Upserts one skill and returns it as stored; a refusal names the
    /// field as `skill...`.
    pub async fn upsert_skill(&self, skill: Skill) -> Result<Skill> {
        let (mut skills, _, _) =
            self.write_catalog(Paths::Single, vec![skill], Vec::new(), Vec::new())?;
        self.store.durable().await?;
        Ok(skills.remove(0))
    }

    /// Upserts one module and returns it as stored; a refusal names the
    /// field as `module...`.
    pub async fn upsert_module(&self, module: Module) -> Result<Module> {
        let (_, mut modules, _) =
            self.write_catalog(Paths::Single, Vec::new(), vec![module], Vec::new())?;
        self.store.durable().await?;
        self.replay_after_catalog_write().await;
        Ok(modules.remove(0))
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

/// How a catalog write names its entries in errors: by position in the
/// lists of a batch (`skills[3]`), or as the one object of a single upsert
/// (`skill`), as the request that carried them does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paths {
    /// `ImportCatalog`, `UpsertItems`: `skills[i]`, `modules[i]`, `items[i]`.
    Batch,
    /// `UpsertSkill`, `UpsertModule`: `skill`, `module`.
    Single,
}

/// A kind of catalog entry: its list field and the noun for one entry.
type Kind = (&'static str, &'static str);
const SKILLS: Kind = ("skills", "skill");
const MODULES: Kind = ("modules", "module");
const ITEMS: Kind = ("items", "item");

impl Paths {
    /// The path of entry `i` of `kind`.
    fn entry(self, (list, noun): Kind, i: usize) -> String {
        match self {
            Paths::Batch => format!("{list}[{i}]"),
            Paths::Single => noun.to_string(),
        }
    }

    /// The path of the whole list of `kind` (when no entry can be blamed).
    fn list(self, (list, noun): Kind) -> &'static str {
        match self {
            Paths::Batch => list,
            Paths::Single => noun,
        }
    }
}

/// Sorts `ids` and drops repeats: how id lists are stored.
fn id_set(ids: &mut Vec<String>) {
    ids.sort();
    ids.dedup();
}

/// Turns a graph fault into a refusal naming the request's field.
///
/// The entry blamed is one of the request's skills whose prerequisite edge
/// is at fault, preferring an edge the write adds (the stored catalog is
/// acyclic, so every cycle holds one: the entry that closes it), then the
/// lowest position; the field is that prerequisite's first position in the
/// entry's list. The reason keeps the domain's text, whole cycle included.
fn graph_refusal(
    paths: Paths,
    err: GraphError,
    request: &[Skill],
    stored: &BTreeMap<String, Skill>,
) -> Error {
    let position: HashMap<&str, usize> = request
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let blamed = err
        .edges()
        .into_iter()
        .filter_map(|(skill, prereq)| {
            let i = *position.get(skill)?;
            let j = request[i]
                .prerequisite_ids
                .iter()
                .position(|p| p == prereq)?;
            let stored_edge = stored
                .get(skill)
                .is_some_and(|s| s.prerequisite_ids.iter().any(|p| p == prereq));
            Some((stored_edge, i, j))
        })
        .min();
    let field = match blamed {
        Some((_, i, j)) => format!("{}.prerequisite_ids[{j}]", paths.entry(SKILLS, i)),
        // Only a store that already held a faulty graph gets here.
        None => paths.list(SKILLS).to_string(),
    };
    match err {
        GraphError::UnknownPrerequisite {
            prerequisite_id, ..
        } => Error::not_found_at(field, "skill", prerequisite_id),
        _ => Error::invalid(field, err.to_string()),
    }
}

/// Refuses an id given twice in one request and a skill id the catalog
/// will not hold, naming the field by its position in the request: `kind`
/// says which list the entries come from, `paths` how to name them.
fn check_entries<'a>(
    (paths, kind): (Paths, Kind),
    entries: impl Iterator<Item = (&'a str, &'a [String])>,
    skills: &BTreeMap<String, Skill>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, (id, skill_ids)) in entries.enumerate() {
        if !seen.insert(id) {
            return Err(Error::invalid(
                format!("{}.id", paths.entry(kind, i)),
                format!("{} '{id}' appears twice in the request", kind.1),
            ));
        }
        for (j, skill) in skill_ids.iter().enumerate() {
            if !skills.contains_key(skill) {
                return Err(Error::not_found_at(
                    format!("{}.skill_ids[{j}]", paths.entry(kind, i)),
                    "skill",
                    skill.clone(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Format;

    fn skill(id: &str, prereqs: &[&str]) -> Skill {
        Skill {
            id: id.into(),
            name: id.to_uppercase(),
            prerequisite_ids: prereqs.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The field an error names: INVALID_ARGUMENT, or NOT_FOUND for an
    /// unknown referenced skill.
    fn field(err: Error) -> String {
        match err {
            Error::InvalidArgument { field, .. } => field,
            Error::NotFound {
                field: Some(field), ..
            } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn entries_name_the_repeated_id_and_the_unknown_skill() {
        let skills: BTreeMap<String, Skill> = [("s".to_string(), skill("s", &[]))].into();
        let known = ["s".to_string()];
        let unknown = ["s".to_string(), "ghost".to_string()];
        let ok = [("m1", &known[..]), ("m2", &known[..])];
        assert!(check_entries((Paths::Batch, MODULES), ok.into_iter(), &skills).is_ok());

        let twice = [("m1", &known[..]), ("m1", &known[..])];
        let err = check_entries((Paths::Batch, MODULES), twice.into_iter(), &skills).unwrap_err();
        assert!(err.to_string().contains("modules[1].id"), "{err}");
        assert!(
            err.to_string().contains("module 'm1' appears twice"),
            "{err}"
        );

        let ghost = [("i1", &known[..]), ("i2", &unknown[..])];
        let err = check_entries((Paths::Batch, ITEMS), ghost.into_iter(), &skills).unwrap_err();
        assert!(err.to_string().contains("items[1].skill_ids[1]"), "{err}");
        assert!(err.to_string().contains("'ghost'"), "{err}");

        let single = [("m", &unknown[..])];
        let err = check_entries((Paths::Single, MODULES), single.into_iter(), &skills).unwrap_err();
        assert_eq!(field(err), "module.skill_ids[1]");
    }

    #[test]
    fn graph_refusals_name_the_request_entry_by_position() {
        let stored: BTreeMap<String, Skill> = [
            ("v1".to_string(), skill("v1", &["v3"])),
            ("v2".to_string(), skill("v2", &[])),
            ("v3".to_string(), skill("v3", &["v2"])),
        ]
        .into();
        let refuse = |paths, request: Vec<Skill>| {
            let mut future = stored.clone();
            future.extend(request.iter().map(|s| (s.id.clone(), s.clone())));
            graph_refusal(paths, check_graph(&future).unwrap_err(), &request, &stored)
        };

        // Unknown prerequisite: the entry's position, and the request
        // position of the id in its list (not its sorted one).
        let err = refuse(
            Paths::Batch,
            vec![skill("ok1", &[]), skill("d", &["zz", "v1", "zz"])],
        );
        assert_eq!(
            err.to_string(),
            "skills[1].prerequisite_ids[0]: skill 'zz' not found"
        );

        // The cycle goes through stored skills; the request entry that
        // closes it is blamed, even when a stored edge is resent with it.
        let err = refuse(
            Paths::Batch,
            vec![skill("v1", &["v3"]), skill("v2", &["v1"])],
        );
        assert_eq!(
            err.to_string(),
            "invalid skills[1].prerequisite_ids[0]: prerequisite cycle: v1 -> v3 -> v2 -> v1"
        );
        let err = refuse(Paths::Batch, vec![skill("v2", &["v1"])]);
        assert_eq!(field(err), "skills[0].prerequisite_ids[0]");

        // A single upsert names `skill`, whatever characters the id holds.
        let err = refuse(Paths::Single, vec![skill("a]b", &["v2", "zz"])]);
        assert_eq!(field(err), "skill.prerequisite_ids[1]");
        let err = refuse(Paths::Single, vec![skill("s[0]", &["s[0]"])]);
        assert_eq!(
            err.to_string(),
            "invalid skill.prerequisite_ids[0]: prerequisite cycle: s[0] -> s[0]"
        );
    }

    #[tokio::test]
    async fn writes_store_sorted_lists_and_name_positions_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::engine::testing::engine(dir.path());
        engine
            .import_catalog(vec![skill("b", &[]), skill("a", &[])], vec![])
            .await
            .unwrap();
        let stored = engine
            .upsert_skill(skill("c", &["b", "a", "b"]))
            .await
            .unwrap();
        assert_eq!(stored.prerequisite_ids, ["a", "b"]);
        assert_eq!(engine.skill("c").unwrap(), stored);
        let module = Module {
            external_ids: Vec::new(),
            id: "m".into(),
            title: "M".into(),
            skill_ids: vec!["c".into(), "a".into(), "c".into()],
            format: Format::Video,
            duration_minutes: 5,
            language: "fr".into(),
        };
        assert_eq!(
            engine.upsert_module(module).await.unwrap().skill_ids,
            ["a", "c"]
        );
        assert_eq!(engine.module("m").unwrap().skill_ids, ["a", "c"]);

        let err = engine
            .upsert_skill(skill("a]b", &["c", "zz"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "skill.prerequisite_ids[1]: skill 'zz' not found"
        );
        // b -> c -> b: the new edge is refused, the stored catalog unchanged.
        let err = engine
            .import_catalog(vec![skill("x", &[]), skill("b", &["x", "c"])], vec![])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid skills[1].prerequisite_ids[1]: prerequisite cycle: b -> c -> b"
        );
        assert!(engine.skill("x").is_err());
        assert!(engine.skill("b").unwrap().prerequisite_ids.is_empty());
    }
}
