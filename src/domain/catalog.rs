//! The catalog: skills, their prerequisite graph, and the remediation modules
//! that teach them.
//!
//! The prerequisite graph must stay a DAG: remediation walks it "down" to the
//! deepest unmastered prerequisite, which only terminates on an acyclic graph.
//! [`check_graph`] is the single place where that invariant is enforced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A unit of competence that quizzes measure and modules teach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    /// Caller-chosen stable id.
    pub id: String,
    /// Human-readable name, shown to trainers.
    pub name: String,
    /// Skills that must be mastered before this one can be learnt.
    pub prerequisite_ids: Vec<String>,
}

/// The kind of learning activity a module is; remediation varies formats for
/// skills that resist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Format {
    /// A recorded video.
    Video,
    /// A text document to read.
    Document,
    /// A formative quiz.
    Quiz,
    /// A practice exercise.
    Exercise,
    /// A serious (learning) game.
    SeriousGame,
    /// A hands-on workshop.
    Workshop,
    /// A live session with the trainer.
    LiveSession,
    /// An audio podcast.
    Podcast,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 8] = [
        Format::Video,
        Format::Document,
        Format::Quiz,
        Format::Exercise,
        Format::SeriousGame,
        Format::Workshop,
        Format::LiveSession,
        Format::Podcast,
    ];

    /// Lower-case name used in reasons and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Video => "video",
            Format::Document => "document",
            Format::Quiz => "quiz",
            Format::Exercise => "exercise",
            Format::SeriousGame => "serious game",
            Format::Workshop => "workshop",
            Format::LiveSession => "live session",
            Format::Podcast => "podcast",
        }
    }
}

/// A remediation module: a piece of content that teaches one or more skills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Module {
    /// Caller-chosen stable id.
    pub id: String,
    /// Title shown to learners and trainers.
    pub title: String,
    /// Skills this module teaches.
    pub skill_ids: Vec<String>,
    /// What kind of activity it is.
    pub format: Format,
    /// Expected learner time, in minutes (> 0).
    pub duration_minutes: u32,
    /// BCP 47 language tag of the content, e.g. `fr` or `en-GB`.
    pub language: String,
    /// Other ids the LMS knows it by (xAPI activity IRIs). Kept in the
    /// store's `xapi_mapping` tree, not in the module's row (see
    /// `store/keys.rs`): rows written before the field existed stay
    /// readable.
    #[serde(skip)]
    pub external_ids: Vec<String>,
}

/// A quiz question or any activity learners answer (an xAPI activity id):
/// its row of the Q-matrix, the skills it tests. An attempt on a known item
/// may leave its skills out; the item supplies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Caller-chosen stable id, often an activity IRI.
    pub id: String,
    /// Skills this item tests, sorted and deduplicated; at least one.
    pub skill_ids: Vec<String>,
    /// Optional title shown to trainers; empty when unknown.
    pub title: String,
    /// Other ids the LMS knows it by (kept as for [`Module::external_ids`]).
    #[serde(skip)]
    pub external_ids: Vec<String>,
    /// The scaled score from which an xAPI answer without `success` is
    /// right; `None` for the default (kept beside the external ids).
    #[serde(skip)]
    pub pass_mark: Option<f64>,
}

/// Why [`check_graph`] refuses a catalog.
///
/// It names the skills at fault by id only: where a skill came from (a
/// position in a request, a line of a file) is the caller's knowledge, so
/// the caller turns this into a field path; the domain stays free of any
/// request format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Skill `skill_id` requires `prerequisite_id`, which the catalog does
    /// not hold.
    #[error("unknown skill id '{prerequisite_id}'")]
    UnknownPrerequisite {
        /// The skill whose prerequisite list names the unknown id.
        skill_id: String,
        /// The unknown id.
        prerequisite_id: String,
    },
    /// The prerequisites loop back: each skill of `cycle` requires the next,
    /// and the last is the first again (`a -> b -> a`; a skill requiring
    /// itself is `a -> a`).
    #[error("prerequisite cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The skills along the loop, the first repeated at the end.
        cycle: Vec<String>,
    },
}

impl GraphError {
    /// The prerequisite edges `(skill, prerequisite)` at fault: the one
    /// naming an unknown skill, or every edge of the cycle. A caller that
    /// knows which edges a write adds blames one of those.
    pub fn edges(&self) -> Vec<(&str, &str)> {
        match self {
            GraphError::UnknownPrerequisite {
                skill_id,
                prerequisite_id,
            } => vec![(skill_id.as_str(), prerequisite_id.as_str())],
            GraphError::Cycle { cycle } => cycle
                .windows(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect(),
        }
    }
}

/// Checks that every prerequisite named by `skills` exists and that the graph
/// has no cycle.
///
/// `skills` is the whole catalog as it would be after a write, so a caller
/// validates the future state before storing anything. Prerequisite lists
/// may come in any order and repeat ids.
pub fn check_graph(skills: &BTreeMap<String, Skill>) -> Result<(), GraphError> {
    for skill in skills.values() {
        for prereq in &skill.prerequisite_ids {
            if !skills.contains_key(prereq) {
                return Err(GraphError::UnknownPrerequisite {
                    skill_id: skill.id.clone(),
                    prerequisite_id: prereq.clone(),
                });
            }
            if prereq == &skill.id {
                return Err(GraphError::Cycle {
                    cycle: vec![skill.id.clone(), skill.id.clone()],
                });
            }
        }
    }
    match find_cycle(skills) {
        Some(cycle) => Err(GraphError::Cycle { cycle }),
        None => Ok(()),
    }
}

/// Finds one cycle (as `a -> b -> ... -> a`) by depth-first search, or `None`.
fn find_cycle(skills: &BTreeMap<String, Skill>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for root in skills.keys() {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        // Iterative DFS: (node, index of the next prerequisite to visit).
        let mut stack: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        marks.insert(root.as_str(), Mark::Open);
        while let Some((node, next)) = stack.last_mut() {
            let prereqs = &skills[*node].prerequisite_ids;
            if *next == prereqs.len() {
                marks.insert(node, Mark::Done);
                stack.pop();
                continue;
            }
            let child = prereqs[*next].as_str();
            *next += 1;
            match marks.get(child) {
                Some(Mark::Done) => {}
                Some(Mark::Open) => {
                    let start = stack.iter().position(|(n, _)| *n == child)?;
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|(n, _)| n.to_string()).collect();
                    cycle.push(child.to_string());
                    return Some(cycle);
                }
                None if skills.contains_key(child) => {
                    marks.insert(child, Mark::Open);
                    stack.push((child, 0));
                }
                None => {}
            }
        }
    }
    None
}

/// All prerequisites of `skill_id`, transitively, excluding the skill itself.
pub fn ancestors(skills: &BTreeMap<String, Skill>, skill_id: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![skill_id.to_string()];
    while let Some(id) = todo.pop() {
        if let Some(skill) = skills.get(&id) {
            for prereq in &skill.prerequisite_ids {
                if seen.insert(prereq.clone()) {
                    todo.push(prereq.clone());
                }
            }
        }
    }
    seen
}

/// Skill `id` (named in capitals) with `prereqs`, keyed by its id as in
/// the catalog maps: the skill unit tests across the crate build on.
#[cfg(test)]
pub(crate) fn test_skill(id: &str, prereqs: &[&str]) -> (String, Skill) {
    (
        id.to_string(),
        Skill {
            id: id.to_string(),
            name: id.to_uppercase(),
            prerequisite_ids: prereqs.iter().map(|s| s.to_string()).collect(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::test_skill as skill;
    use super::*;

    #[test]
    fn dag_is_accepted() {
        let skills = BTreeMap::from([skill("a", &[]), skill("b", &["a"]), skill("c", &["a", "b"])]);
        check_graph(&skills).unwrap();
        assert_eq!(
            ancestors(&skills, "c"),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn cycle_is_named() {
        let skills = BTreeMap::from([skill("a", &["c"]), skill("b", &["a"]), skill("c", &["b"])]);
        let err = check_graph(&skills).unwrap_err().to_string();
        assert!(
            err.contains("prerequisite cycle: a -> c -> b -> a"),
            "{err}"
        );
    }

    #[test]
    fn faults_name_skills_by_id_and_list_their_edges() {
        let unknown = BTreeMap::from([skill("a", &[]), skill("d", &["a", "zz"])]);
        let err = check_graph(&unknown).unwrap_err();
        assert_eq!(
            err,
            GraphError::UnknownPrerequisite {
                skill_id: "d".into(),
                prerequisite_id: "zz".into()
            }
        );
        assert_eq!(err.edges(), [("d", "zz")]);

        let looped = BTreeMap::from([skill("a", &["c"]), skill("b", &["a"]), skill("c", &["b"])]);
        let err = check_graph(&looped).unwrap_err();
        assert_eq!(err.edges(), [("a", "c"), ("c", "b"), ("b", "a")]);

        let own = BTreeMap::from([skill("x", &["x"])]);
        assert_eq!(check_graph(&own).unwrap_err().edges(), [("x", "x")]);
    }

    #[test]
    fn self_loop_and_unknown_prerequisite_are_refused() {
        let looped = BTreeMap::from([skill("a", &["a"])]);
        assert!(
            check_graph(&looped)
                .unwrap_err()
                .to_string()
                .contains("a -> a")
        );
        let unknown = BTreeMap::from([skill("a", &["zz"])]);
        assert!(
            check_graph(&unknown)
                .unwrap_err()
                .to_string()
                .contains("unknown skill id 'zz'")
        );
    }
}
