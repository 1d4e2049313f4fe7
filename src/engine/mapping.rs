//! The mapping of LMS activities to programs, modules and items: checks
//! that external ids stay unambiguous on every write, lists the activities
//! statements named that nothing maps, and maps one (`MapActivity`),
//! replaying the statements that waited for it.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Catalog, Engine};
use crate::clock::now_micros;
use crate::domain::xapi::aliases::{Aliases, Clash};
use crate::domain::xapi::mapping::{Effect, resolve};
use crate::domain::xapi::record::{ObjectKind, SeenActivity};
use crate::domain::xapi::statement::parse_one;
use crate::error::{Error, Result};

/// What an activity is mapped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapTarget {
    /// A program (a course).
    Program(String),
    /// A module.
    Module(String),
    /// An item.
    Item(String),
    /// Nothing: statements about it have no effect.
    Ignore,
}

/// An activity statements named that nothing maps, with the statements
/// waiting for it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmappedActivity {
    /// The activity IRI.
    pub activity_id: String,
    /// What the statements said of it.
    pub seen: SeenActivity,
    /// Statements waiting for it now.
    pub waiting_statements: u64,
    /// Distinct learners among them.
    pub learners: u64,
}

/// What a mapping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapReport {
    /// Waiting statements the replay applied.
    pub replayed: usize,
    /// Statements still waiting.
    pub still_waiting: usize,
}

/// The external ids a write gives: (kind, owner, field path of the list,
/// ids).
pub(crate) type ExternalIds<'a> = (ObjectKind, &'a str, String, &'a [String]);

impl Engine {
    /// Refuses external ids that would name two objects of one kind: one
    /// already held by another object, one that is another object's own
    /// id, or one given twice in the same write. `own_id` tells whether an
    /// id is an object's own id of that kind.
    pub(crate) fn check_external_ids(
        &self,
        writes: &[ExternalIds<'_>],
        own_id: impl Fn(ObjectKind, &str) -> bool,
    ) -> Result<()> {
        let aliases = self.aliases();
        let mut in_write: HashMap<(ObjectKind, &str), &str> = HashMap::new();
        for (kind, owner, field, ids) in writes {
            for (j, external) in ids.iter().enumerate() {
                let at = format!("{field}[{j}]");
                if let Some(other) = in_write.insert((*kind, external.as_str()), owner) {
                    if other != *owner {
                        return Err(Error::invalid(
                            at,
                            format!(
                                "'{external}' is also an external id of {} '{other}' in this request",
                                kind.noun()
                            ),
                        ));
                    }
                }
                let taken = aliases.check(*kind, owner, external, own_id(*kind, external));
                match taken {
                    Ok(()) => {}
                    Err(Clash::TakenBy(other)) => {
                        return Err(Error::invalid(
                            at,
                            format!(
                                "'{external}' is already an external id of {} '{other}'",
                                kind.noun()
                            ),
                        ));
                    }
                    Err(Clash::OwnId) => {
                        return Err(Error::invalid(
                            at,
                            format!("'{external}' is the id of another {}", kind.noun()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `id` is the own id of a stored object of `kind`.
    pub(crate) fn is_own_id(&self, catalog: &Catalog, kind: ObjectKind, id: &str) -> bool {
        match kind {
            ObjectKind::Module => catalog.index.module(id).is_some(),
            ObjectKind::Item => catalog.items.contains_key(id),
            ObjectKind::Program => self.aliases().program(id) == Some(id),
        }
    }

    /// Maps `activity_id` to `target` (adds it to the target's external
    /// ids) or ignores it, then replays the statements waiting for it.
    pub async fn map_activity(&self, activity_id: &str, target: MapTarget) -> Result<MapReport> {
        self.write_mapping(activity_id, &target)?;
        self.store.durable().await?;
        let report = self.replay_unresolved().await?;
        Ok(MapReport {
            replayed: report.applied,
            still_waiting: self.store.count_unresolved()? as usize,
        })
    }

    fn write_mapping(&self, activity_id: &str, target: &MapTarget) -> Result<()> {
        let _guard = self.catalog_write.lock();
        let (kind, owner) = match target {
            MapTarget::Ignore => {
                let aliases = self.aliases();
                if let Some((kind, owner)) = mapped_to(&aliases, activity_id) {
                    return Err(Error::FailedPrecondition(format!(
                        "activity '{activity_id}' is mapped to {} '{owner}'; remove it from its external_ids first",
                        kind.noun()
                    )));
                }
                self.store
                    .set_activity_ignored(activity_id, Some(now_micros()))?;
                return self.reload_aliases();
            }
            MapTarget::Program(id) => (ObjectKind::Program, id),
            MapTarget::Module(id) => (ObjectKind::Module, id),
            MapTarget::Item(id) => (ObjectKind::Item, id),
        };
        let field = format!("{}_id", kind.noun());
        let catalog = self.catalog();
        if !self.is_own_id(&catalog, kind, owner) {
            return Err(Error::not_found_at(field, kind.noun(), owner));
        }
        if owner == activity_id {
            // Its own id already names it.
            self.store.set_activity_ignored(activity_id, None)?;
            return self.reload_aliases();
        }
        let ids = [activity_id.to_string()];
        self.check_external_ids(&[(kind, owner, "activity_id".into(), &ids)], |k, id| {
            self.is_own_id(&catalog, k, id)
        })
        .map_err(|err| match err {
            Error::InvalidArgument { reason, .. } => Error::AlreadyExists {
                kind: "external id",
                id: activity_id.to_string(),
                reason,
            },
            other => other,
        })?;
        let mut row = self.store.mapping(kind, owner)?;
        if !row.external_ids.iter().any(|e| e == activity_id) {
            row.external_ids.push(activity_id.to_string());
        }
        self.store.put_mapping(kind, owner, &row)?;
        self.store.set_activity_ignored(activity_id, None)?;
        self.reload_aliases()?;
        match kind {
            ObjectKind::Program => {
                self.programs.write().remove(owner.as_str());
            }
            ObjectKind::Module | ObjectKind::Item => {
                *self.catalog.write() = std::sync::Arc::new(Catalog::load(&self.store)?);
            }
        }
        Ok(())
    }

    /// A page of the activities nothing maps (not ignored), in id order,
    /// after `after`, with the statements waiting for each: every waiting
    /// statement is resolved again, so the counts are exact.
    pub fn unmapped_activities(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<UnmappedActivity>, Option<String>)> {
        let catalog = self.catalog();
        let aliases = self.aliases();
        let mut counts: BTreeMap<String, (u64, HashSet<String>)> = BTreeMap::new();
        let now = now_micros();
        let view = super::xapi::View::new(self, &catalog, &aliases);
        for (id, waiting) in self.store.all_unresolved()? {
            let Ok(value) = serde_json::from_str(&waiting.raw) else {
                continue;
            };
            let Ok(parsed) = parse_one(&value, &id, now) else {
                continue;
            };
            if let Effect::Unresolved { unknown, .. } = resolve(&parsed.statement, &view) {
                let learner = crate::domain::xapi::mapping::learner(&parsed.statement.actor)
                    .map(|l| l.id)
                    .unwrap_or_default();
                for activity in unknown {
                    let entry = counts.entry(activity.id).or_default();
                    entry.0 += 1;
                    entry.1.insert(learner.clone());
                }
            }
        }
        let mut page = Vec::new();
        let mut next = None;
        for (id, seen) in self.store.seen_activities()? {
            if seen.ignored
                || after.is_some_and(|a| id.as_str() <= a)
                || mapped_to(&aliases, &id).is_some()
                || self.is_known(&catalog, &id)
            {
                continue;
            }
            if page.len() == limit {
                next = page
                    .last()
                    .map(|a: &UnmappedActivity| a.activity_id.clone());
                break;
            }
            // Only what a waiting statement needs now: an activity that
            // resolved another way (a per-attempt id through its quiz) is
            // no work for anyone.
            let Some((waiting, learners)) = counts.remove(&id) else {
                continue;
            };
            page.push(UnmappedActivity {
                activity_id: id,
                seen,
                waiting_statements: waiting,
                learners: learners.len() as u64,
            });
        }
        Ok((page, next))
    }

    fn is_known(&self, catalog: &Catalog, id: &str) -> bool {
        [ObjectKind::Program, ObjectKind::Module, ObjectKind::Item]
            .into_iter()
            .any(|kind| self.is_own_id(catalog, kind, id))
    }
}

/// The object an activity is an external id of, if any.
fn mapped_to(aliases: &Aliases, id: &str) -> Option<(ObjectKind, String)> {
    [ObjectKind::Program, ObjectKind::Module, ObjectKind::Item]
        .into_iter()
        .find_map(|kind| aliases.owner(kind, id).map(|o| (kind, o.to_string())))
}
