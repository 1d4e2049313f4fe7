//! The attempts a fit learns from, and their per-skill sequence layout.
//!
//! A [`Dataset`] is what callers build (from the store, a CSV, or the
//! synthetic generator): one row per attempt, names interned to small ids so
//! that a million rows stay a few tens of megabytes. The fitter never walks
//! rows directly; it first lays each skill out as [`SkillData`], contiguous
//! ndarray columns grouped by learner, which is what the forward-backward loop
//! streams through.

use std::collections::HashMap;

use ndarray::Array1;
use serde::{Deserialize, Serialize};

/// Maps names to dense ids and back, so rows carry `u32`s instead of strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    names: Vec<String>,
    index: HashMap<String, u32>,
    /// The id [`Interner::intern`] returned last.
    last: Option<u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        // Rows come grouped (a learner's, a skill's in turn): the name of
        // the previous row, compared as bytes, spares most of the hashing
        // (10M rows of a store scan, two names each).
        if let Some(last) = self.last
            && self.names[last as usize] == name
        {
            return last;
        }
        let id = match self.index.get(name) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.names.len()).expect("more than u32::MAX names");
                self.names.push(name.to_owned());
                self.index.insert(name.to_owned(), id);
                id
            }
        };
        self.last = Some(id);
        id
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Every name, by id.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }
}

/// One stored attempt, with its names already interned by the [`Dataset`].
///
/// Kept `Copy` and small (20 bytes) because a fit may hold ten million of
/// them: the optional ids are stored with [`NONE_ID`] for "none" rather
/// than as `Option<u32>` (8 bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Learner id (see [`Dataset::learner_name`]).
    pub learner: u32,
    /// Skill id (see [`Dataset::skill_name`]).
    pub skill: u32,
    template: u32,
    group: u32,
    /// Whether the answer was right.
    pub correct: bool,
}

/// The stored form of an absent template or group id (interned ids stay
/// far below it).
const NONE_ID: u32 = u32::MAX;

impl Attempt {
    /// An attempt of interned ids.
    pub fn new(
        learner: u32,
        skill: u32,
        template: Option<u32>,
        group: Option<u32>,
        correct: bool,
    ) -> Self {
        Self {
            learner,
            skill,
            template: template.unwrap_or(NONE_ID),
            group: group.unwrap_or(NONE_ID),
            correct,
        }
    }

    /// Module / item template id, when known (see
    /// [`Dataset::template_name`]). Drives the per-template learn rate
    /// (multilearn) and the per-item guess/slip (multigs), as pyBKT's
    /// `template_id` column does.
    pub fn template(&self) -> Option<u32> {
        (self.template != NONE_ID).then_some(self.template)
    }

    /// Group id (company, cohort), when known: drives per-group priors.
    pub fn group(&self) -> Option<u32> {
        (self.group != NONE_ID).then_some(self.group)
    }
}

/// An attempt as a caller describes it, by names; see [`Dataset::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord<'a> {
    /// Who answered.
    pub learner: &'a str,
    /// Which skill the question exercises (one BKT model per skill).
    pub skill: &'a str,
    /// Whether the answer was right.
    pub correct: bool,
    /// Module or item template the attempt belongs to, if any.
    pub template: Option<&'a str>,
    /// Group (company, cohort) of the learner, if any.
    pub group: Option<&'a str>,
    /// Unix seconds, if known.
    pub timestamp: Option<i64>,
}

/// The attempts one fit sees, in chronological order per learner.
///
/// Why a dedicated type rather than a `Vec` of records: interning lets the
/// fitter, the cross-validation and the model file agree on ids cheaply, and
/// it is the single input of every function of this module.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    attempts: Vec<Attempt>,
    pub(crate) learners: Interner,
    pub(crate) skills: Interner,
    pub(crate) templates: Interner,
    pub(crate) groups: Interner,
    /// Earliest and latest timestamp pushed (Unix seconds): times are only
    /// summarised, so rows do not carry them.
    span: Option<(i64, i64)>,
}

impl Dataset {
    /// An empty dataset.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty dataset with room for `rows` attempts, so that one read
    /// of a known size allocates its rows once (a growing vector holds
    /// twice its rows for a moment, each time it grows).
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            attempts: Vec::with_capacity(rows),
            ..Self::default()
        }
    }

    /// Appends an attempt. Attempts of one learner must be pushed in the
    /// order they happened (attempts of different learners may interleave):
    /// BKT is a sequence model, and the order is all it knows of time.
    pub fn push(&mut self, record: AttemptRecord<'_>) {
        let attempt = Attempt::new(
            self.learners.intern(record.learner),
            self.skills.intern(record.skill),
            record.template.map(|t| self.templates.intern(t)),
            record.group.map(|g| self.groups.intern(g)),
            record.correct,
        );
        if let Some(t) = record.timestamp {
            self.saw_timestamp(t);
        }
        self.attempts.push(attempt);
    }

    /// Widens the summarised time span to `t` (Unix seconds).
    pub(crate) fn saw_timestamp(&mut self, t: i64) {
        self.span = Some(self.span.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
    }

    /// Replaces the rows by `attempts`, whose ids were interned by this
    /// dataset (the CSV reader lays its rows out once, this way).
    pub(crate) fn set_attempts(&mut self, attempts: Vec<Attempt>) {
        self.attempts = attempts;
    }

    /// Rows the dataset has room for (tests of the sizing).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.attempts.capacity()
    }

    /// All attempts, in insertion order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Number of attempts.
    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    /// True when there is no attempt.
    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }

    /// Number of distinct learners.
    pub fn num_learners(&self) -> usize {
        self.learners.len()
    }

    /// Number of distinct skills.
    pub fn num_skills(&self) -> usize {
        self.skills.len()
    }

    /// Name of a learner id.
    pub fn learner_name(&self, id: u32) -> &str {
        self.learners.name(id)
    }

    /// Name of a skill id.
    pub fn skill_name(&self, id: u32) -> &str {
        self.skills.name(id)
    }

    /// Name of a template id.
    pub fn template_name(&self, id: u32) -> &str {
        self.templates.name(id)
    }

    /// Name of a group id.
    pub fn group_name(&self, id: u32) -> &str {
        self.groups.name(id)
    }

    /// What the data looks like, for the model file.
    pub fn summary(&self) -> DataSummary {
        let correct = self.attempts.iter().filter(|a| a.correct).count();
        DataSummary {
            attempts: self.attempts.len(),
            learners: self.learners.len(),
            skills: self.skills.len(),
            templates: self.templates.len(),
            groups: self.groups.len(),
            correct_rate: if self.attempts.is_empty() {
                0.0
            } else {
                correct as f64 / self.attempts.len() as f64
            },
            first_timestamp: self.span.map(|(first, _)| first),
            last_timestamp: self.span.map(|(_, last)| last),
        }
    }

    /// Lays out every skill's sequences for the fitter, keeping only learners
    /// for which `keep(learner)` holds (all when `keep` is `None`).
    ///
    /// Two stable counting sorts (by learner, then by skill) group rows by
    /// (skill, learner) in O(n) while keeping each learner's order.
    pub(crate) fn layout(&self, keep: Option<&[bool]>) -> Vec<SkillData> {
        let n_learners = self.learners.len();
        let n_skills = self.skills.len();
        let kept = |a: &Attempt| keep.is_none_or(|k| k[a.learner as usize]);

        // Counting sort by learner.
        let mut offsets = vec![0u32; n_learners + 1];
        for a in self.attempts.iter().filter(|a| kept(a)) {
            offsets[a.learner as usize + 1] += 1;
        }
        for i in 0..n_learners {
            offsets[i + 1] += offsets[i];
        }
        let total = offsets[n_learners] as usize;
        let mut by_learner = vec![0u32; total];
        for (i, a) in self.attempts.iter().enumerate() {
            if kept(a) {
                let slot = &mut offsets[a.learner as usize];
                by_learner[*slot as usize] = i as u32;
                *slot += 1;
            }
        }

        // Stable counting sort by skill.
        let mut skill_off = vec![0usize; n_skills + 1];
        for &i in &by_learner {
            skill_off[self.attempts[i as usize].skill as usize + 1] += 1;
        }
        for s in 0..n_skills {
            skill_off[s + 1] += skill_off[s];
        }
        let mut order = vec![0u32; total];
        let mut fill = skill_off.clone();
        for &i in &by_learner {
            let s = self.attempts[i as usize].skill as usize;
            order[fill[s]] = i;
            fill[s] += 1;
        }
        drop(by_learner);

        let mut tmpl_map = vec![u32::MAX; self.templates.len() + 1];
        let mut group_map = vec![u32::MAX; self.groups.len() + 1];
        (0..n_skills)
            .map(|s| {
                let rows = &order[skill_off[s]..skill_off[s + 1]];
                SkillData::build(self, s as u32, rows, &mut tmpl_map, &mut group_map)
            })
            .collect()
    }
}

/// Counts and span of the data a model was fitted on (part of the model file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Number of attempts.
    pub attempts: usize,
    /// Number of distinct learners.
    pub learners: usize,
    /// Number of distinct skills.
    pub skills: usize,
    /// Number of distinct templates (modules / items).
    pub templates: usize,
    /// Number of distinct groups.
    pub groups: usize,
    /// Share of correct answers.
    pub correct_rate: f64,
    /// Earliest timestamp seen (Unix seconds), if any row had one.
    pub first_timestamp: Option<i64>,
    /// Latest timestamp seen (Unix seconds), if any row had one.
    pub last_timestamp: Option<i64>,
}

/// One skill's attempts as contiguous columns, grouped into learner sequences.
///
/// Template and group ids are re-numbered locally (dense per skill) so that
/// parameter vectors stay as short as the skill needs; `*_names` map back.
#[derive(Debug, Clone)]
pub(crate) struct SkillData {
    pub skill: u32,
    /// 1 for a correct answer, 0 otherwise.
    pub obs: Array1<u8>,
    /// Local template index of each attempt.
    pub tmpl: Array1<u32>,
    /// Offsets of the sequences: sequence `i` is `starts[i]..starts[i + 1]`.
    pub starts: Array1<u32>,
    /// Local group index of each sequence (its learner's first group).
    pub seq_group: Array1<u32>,
    /// Global template id of each local template (`None`: no template).
    pub tmpl_names: Vec<Option<u32>>,
    /// Global group id of each local group (`None`: no group).
    pub group_names: Vec<Option<u32>>,
    /// Attempts per local template.
    pub tmpl_count: Vec<f64>,
    /// Correct attempts per local template.
    pub tmpl_correct: Vec<f64>,
    /// Transitions (attempts that are not last in their sequence) per template.
    pub tmpl_trans: Vec<f64>,
    /// Sequences per local group.
    pub group_count: Vec<f64>,
    /// Length of the longest sequence (sizes the worker buffers).
    pub max_len: usize,
}

impl SkillData {
    fn build(
        ds: &Dataset,
        skill: u32,
        rows: &[u32],
        tmpl_map: &mut [u32],
        group_map: &mut [u32],
    ) -> Self {
        let n = rows.len();
        let mut obs = Vec::with_capacity(n);
        let mut tmpl = Vec::with_capacity(n);
        let mut starts = Vec::new();
        let mut seq_group = Vec::new();
        let mut tmpl_names = Vec::new();
        let mut group_names = Vec::new();
        let mut tmpl_count = Vec::new();
        let mut tmpl_correct = Vec::new();
        let mut tmpl_trans = Vec::new();
        let mut group_count = Vec::new();
        let none_t = tmpl_map.len() - 1;
        let none_g = group_map.len() - 1;
        let mut prev_learner = u32::MAX;
        let mut max_len = 0usize;
        for (k, &r) in rows.iter().enumerate() {
            let a = &ds.attempts[r as usize];
            if a.learner != prev_learner {
                if let Some(&s) = starts.last() {
                    max_len = max_len.max(k - s as usize);
                }
                starts.push(k as u32);
                prev_learner = a.learner;
                let gkey = a.group().map_or(none_g, |g| g as usize);
                if group_map[gkey] == u32::MAX {
                    group_map[gkey] = group_names.len() as u32;
                    group_names.push(a.group());
                    group_count.push(0.0);
                }
                let g = group_map[gkey];
                group_count[g as usize] += 1.0;
                seq_group.push(g);
            } else {
                // The previous attempt of this learner has a transition.
                let prev_t: u32 = *tmpl.last().expect("sequence has a previous attempt");
                tmpl_trans[prev_t as usize] += 1.0;
            }
            let tkey = a.template().map_or(none_t, |t| t as usize);
            if tmpl_map[tkey] == u32::MAX {
                tmpl_map[tkey] = tmpl_names.len() as u32;
                tmpl_names.push(a.template());
                tmpl_count.push(0.0);
                tmpl_correct.push(0.0);
                tmpl_trans.push(0.0);
            }
            let t = tmpl_map[tkey];
            tmpl_count[t as usize] += 1.0;
            tmpl_correct[t as usize] += f64::from(u8::from(a.correct));
            obs.push(u8::from(a.correct));
            tmpl.push(t);
        }
        if let Some(&s) = starts.last() {
            max_len = max_len.max(n - s as usize);
        }
        starts.push(n as u32);
        // Reset the shared maps for the next skill.
        for name in &tmpl_names {
            tmpl_map[name.map_or(none_t, |t| t as usize)] = u32::MAX;
        }
        for name in &group_names {
            group_map[name.map_or(none_g, |g| g as usize)] = u32::MAX;
        }
        Self {
            skill,
            obs: Array1::from(obs),
            tmpl: Array1::from(tmpl),
            starts: Array1::from(starts),
            seq_group: Array1::from(seq_group),
            tmpl_names,
            group_names,
            tmpl_count,
            tmpl_correct,
            tmpl_trans,
            group_count,
            max_len,
        }
    }

    /// Number of attempts.
    pub fn len(&self) -> usize {
        self.obs.len()
    }

    /// Number of learner sequences.
    pub fn num_sequences(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(learner: &'a str, skill: &'a str, correct: bool) -> AttemptRecord<'a> {
        AttemptRecord {
            learner,
            skill,
            correct,
            template: None,
            group: None,
            timestamp: None,
        }
    }

    #[test]
    fn layout_groups_by_skill_and_learner_keeping_order() {
        let mut ds = Dataset::new();
        ds.push(rec("a", "s1", true));
        ds.push(rec("b", "s1", false));
        ds.push(rec("a", "s2", false));
        ds.push(rec("a", "s1", false));
        ds.push(rec("b", "s1", true));
        let skills = ds.layout(None);
        assert_eq!(skills.len(), 2);
        let s1 = &skills[0];
        assert_eq!(s1.obs.to_vec(), vec![1, 0, 0, 1]);
        assert_eq!(s1.starts.to_vec(), vec![0, 2, 4]);
        assert_eq!(s1.max_len, 2);
        assert_eq!(s1.tmpl_trans, vec![2.0]);
        assert_eq!(skills[1].obs.to_vec(), vec![0]);
    }

    #[test]
    fn layout_filters_learners() {
        let mut ds = Dataset::new();
        ds.push(rec("a", "s1", true));
        ds.push(rec("b", "s1", false));
        let skills = ds.layout(Some(&[false, true]));
        assert_eq!(skills[0].obs.to_vec(), vec![0]);
    }
}
