//! What "completing a program" means.
//!
//! A program names skills, not modules; the catalog offers several modules
//! per skill (formats, languages) as alternatives for remediation, and no
//! learner is expected to take them all. So a learner completes a program
//! when, for every program skill that some module teaches, they completed
//! at least one of those modules. Skills no module teaches do not count
//! (nothing to complete); a program with no module at all is never
//! completed. Used by the reports (completion rate), the pace signal and
//! the dropout labels of a deployment's history.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::learner::Micros;

/// The modules that complete each program skill that has any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionPlan {
    /// One entry per skill with modules, in program order: the modules
    /// teaching it.
    units: Vec<BTreeSet<String>>,
}

impl CompletionPlan {
    /// The plan of a program over `skills` given the catalog's modules as
    /// (module id, skill ids it teaches).
    pub fn new<'a, S, M, T>(skills: S, modules: M) -> Self
    where
        S: IntoIterator<Item = &'a str>,
        M: IntoIterator<Item = (&'a str, T)>,
        T: IntoIterator<Item = &'a str>,
    {
        let mut teaching: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (module, taught) in modules {
            for skill in taught {
                teaching
                    .entry(skill)
                    .or_default()
                    .insert(module.to_string());
            }
        }
        let mut seen = BTreeSet::new();
        let units = skills
            .into_iter()
            .filter(|s| seen.insert(*s))
            .filter_map(|s| teaching.remove(s))
            .collect();
        Self { units }
    }

    /// How many skills must be covered (those with modules).
    pub fn units(&self) -> usize {
        self.units.len()
    }

    /// Every module of the plan: the program's modules.
    pub fn modules(&self) -> BTreeSet<&str> {
        self.units
            .iter()
            .flat_map(|u| u.iter().map(String::as_str))
            .collect()
    }

    /// How many units have a module among `done`.
    pub fn covered(&self, done: impl Fn(&str) -> bool) -> usize {
        self.units
            .iter()
            .filter(|u| u.iter().any(|m| done(m)))
            .count()
    }

    /// When the program was completed, given the first completion time of
    /// each module a learner completed: the time the last unit got its
    /// first completed module. `None` while a unit is uncovered, or for a
    /// plan with nothing to complete.
    pub fn completed_at(&self, first_done: &BTreeMap<&str, Micros>) -> Option<Micros> {
        if self.units.is_empty() {
            return None;
        }
        self.units
            .iter()
            .map(|u| u.iter().filter_map(|m| first_done.get(m.as_str())).min())
            .try_fold(Micros::MIN, |latest, unit| unit.map(|t| latest.max(*t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CompletionPlan {
        // s1 taught by a video and a document, s2 by one module that also
        // teaches s1, s3 by nothing, s9 is not in the program.
        CompletionPlan::new(
            ["s1", "s2", "s3"],
            [
                ("video-1", vec!["s1"]),
                ("doc-1", vec!["s1"]),
                ("both", vec!["s1", "s2"]),
                ("other", vec!["s9"]),
            ],
        )
    }

    #[test]
    fn one_module_per_skill_with_modules_completes() {
        let plan = plan();
        assert_eq!(plan.units(), 2, "s3 has no module");
        assert_eq!(
            plan.modules().into_iter().collect::<Vec<_>>(),
            ["both", "doc-1", "video-1"]
        );
        let done = BTreeMap::from([("doc-1", 5), ("both", 9), ("video-1", 2)]);
        assert_eq!(
            plan.completed_at(&done),
            Some(9),
            "both is s2's only module"
        );
        let done = BTreeMap::from([("both", 7)]);
        assert_eq!(
            plan.completed_at(&done),
            Some(7),
            "one module covers two skills"
        );
        let done = BTreeMap::from([("video-1", 1), ("doc-1", 3)]);
        assert_eq!(plan.completed_at(&done), None, "s2 uncovered");
        assert_eq!(plan.covered(|m| m == "video-1"), 1);
        assert_eq!(plan.covered(|m| m == "both"), 2);
    }

    #[test]
    fn a_program_without_modules_is_never_completed() {
        let plan = CompletionPlan::new(["s1"], [("m", vec!["s2"])]);
        assert_eq!(plan.units(), 0);
        assert_eq!(plan.completed_at(&BTreeMap::from([("m", 1)])), None);
    }
}
