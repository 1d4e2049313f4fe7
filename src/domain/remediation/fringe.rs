//! The fringe: what a learner can learn now (knowledge space theory).

use std::collections::{BTreeMap, BTreeSet};

use super::RecommendInput;
use super::beliefs::Beliefs;

/// The candidate skills of a learner: what [`recommend`] teaches next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fringe {
    /// Unmastered program skills whose prerequisites are all mastered.
    pub ready: BTreeSet<String>,
    /// Unmastered skills outside the program, all prerequisites mastered, on
    /// which some unmastered program skill depends; each with the program
    /// skills that need it.
    pub deep: BTreeMap<String, BTreeSet<String>>,
    /// Unmastered program skills (ready or not).
    pub unmastered_program: BTreeSet<String>,
}

impl Fringe {
    /// Whether `skill` can be learnt now (ready or deep).
    pub fn contains(&self, skill: &str) -> bool {
        self.ready.contains(skill) || self.deep.contains_key(skill)
    }
}

/// Computes the fringe: the ready program skills and, for blocked program
/// skills, the deepest unmastered prerequisites (following the graph outside
/// the program). Terminates on any graph, cyclic or not, thanks to a visited
/// set.
pub fn fringe(input: &RecommendInput<'_>) -> Fringe {
    fringe_of(&Beliefs::new(input))
}

pub(super) fn fringe_of(beliefs: &Beliefs<'_>) -> Fringe {
    let input = beliefs.input;
    let index = input.index;
    let program: BTreeSet<&str> = input.program_skill_ids.iter().map(String::as_str).collect();
    let mut in_program = vec![false; index.skill_count()];
    for s in &program {
        if let Some(at) = index.skill(s) {
            in_program[at] = true;
        }
    }
    let mut out = Fringe::default();
    // `seen[q] == mark` when q was reached from the current program skill.
    let mut seen = vec![usize::MAX; index.skill_count()];
    let mut todo: Vec<usize> = Vec::new();
    for (mark, &skill) in program.iter().enumerate() {
        let Some(at) = index.skill(skill) else {
            // Unknown to the catalog: no prerequisites, so ready unless mastered.
            if !beliefs.mastered(skill) {
                out.unmastered_program.insert(skill.to_string());
                out.ready.insert(skill.to_string());
            }
            continue;
        };
        if beliefs.mastered_at(at) {
            continue;
        }
        out.unmastered_program.insert(skill.to_string());
        if beliefs.prereqs_mastered_at(at) {
            out.ready.insert(skill.to_string());
            continue;
        }
        // Walk down through unmastered prerequisites.
        seen[at] = mark;
        todo.clear();
        todo.push(at);
        while let Some(id) = todo.pop() {
            for &q in index.prerequisites(id) {
                if beliefs.mastered_at(q) || seen[q] == mark {
                    continue;
                }
                seen[q] = mark;
                if in_program[q] {
                    // Reached on its own account (ready or walked from).
                    continue;
                }
                if beliefs.prereqs_mastered_at(q) {
                    out.deep
                        .entry(index.skill_id(q).to_string())
                        .or_default()
                        .insert(skill.to_string());
                } else {
                    todo.push(q);
                }
            }
        }
    }
    out
}
