//! The synthetic world: a catalog with a prerequisite DAG, and hidden
//! learners.
//!
//! The catalog is what the engine sees. The module *quality* and the
//! learners' *true* knowledge, format affinities, speed, slip and guess are
//! what it does not see; they decide what really happens.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SimOptions;
use serde::{Deserialize, Serialize};

use crate::domain::catalog::{Format, Item, Module, Skill};
use crate::domain::catalog_index::CatalogIndex;

/// Stream of the world's draws; learner `i` uses stream `LEARNER_STREAM + i`.
const WORLD_STREAM: u64 = 0;
/// First stream of the learners' draws.
pub(crate) const LEARNER_STREAM: u64 = 1 << 32;

/// Learner minutes at which a module of quality 1, for an average learner,
/// teaches with probability 1 − 1/e.
const MINUTES_SCALE: f64 = 15.0;

/// How learning grows with time spent: the "effort" of a module is
/// `(minutes / MINUTES_SCALE)^LEARNING_EXPONENT`, and P(learn) = 1 − e^−effort.
/// An exponent below one encodes diminishing returns (attention fades, a
/// half-day workshop does not teach one skill sixteen times better than a
/// quarter-hour video); 0.5 is a middle ground between "duration does not
/// matter" (0) and "linear in time" (1).
const LEARNING_EXPONENT: f64 = 0.5;

/// Spread (σ of the log) of the hidden module quality: a module one σ above
/// the mean teaches about twice as fast as one σ below.
const QUALITY_SPREAD: f64 = 0.7;

/// A fresh RNG on its own stream of the seed.
pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A standard normal draw (Box-Muller), to keep to the allowed crates.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Typical duration range (minutes) and how well a format teaches, on
/// average, per minute.
fn format_profile(format: Format) -> (u32, u32, f64) {
    match format {
        Format::Video => (3, 15, 1.0),
        Format::Document => (10, 30, 0.8),
        Format::Quiz => (5, 15, 0.7),
        Format::Exercise => (15, 45, 1.3),
        Format::SeriousGame => (20, 60, 1.2),
        Format::Workshop => (120, 240, 1.1),
        Format::LiveSession => (60, 120, 1.0),
        Format::Podcast => (10, 30, 0.6),
    }
}

/// Which hidden learner model the simulated learners follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum WorldKind {
    /// Not the engine's model: per-skill continuous ability, answers from a
    /// three-parameter IRT curve (item difficulty, discrimination, guess),
    /// gains that grow with the module's quality and the learner's format
    /// affinity, and forgetting. The world a policy was not designed around.
    #[default]
    Irt,
    /// The engine's own model: a skill is known or not, answers slip and
    /// guess, a module teaches with some probability.
    Bkt,
}

impl WorldKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorldKind::Irt => "irt",
            WorldKind::Bkt => "bkt",
        }
    }
}

/// One quiz item of the bank, with its hidden IRT parameters.
#[derive(Debug, Clone)]
pub struct BankItem {
    /// Item id (what the engine sees).
    pub id: String,
    /// Discrimination `a`.
    pub a: f64,
    /// Difficulty `b`, on the ability scale.
    pub b: f64,
    /// Guess floor `c`.
    pub c: f64,
}

/// The catalog and the hidden module qualities.
#[derive(Debug, Clone)]
pub struct World {
    /// The learner model.
    pub kind: WorldKind,
    /// The skills, by id (what the engine sees).
    pub skills: BTreeMap<String, Skill>,
    /// The modules, sorted by id (what the engine sees).
    pub modules: Vec<Module>,
    /// The item bank, as the engine sees it (ids and skills).
    pub items: Vec<Item>,
    /// The bank per skill index (hidden parameters).
    pub bank: Vec<Vec<BankItem>>,
    /// The program: every skill of the catalog.
    pub program: Vec<String>,
    /// Skill ids in topological order (prerequisites first, ties by id).
    pub topo: Vec<String>,
    /// Hidden per-module quality multiplier, aligned with `modules`.
    pub quality: Vec<f64>,
    /// Hidden: whether each module is near-useless.
    pub useless: Vec<bool>,
    /// Skill id to index in `skill_ids`.
    pub skill_index: BTreeMap<String, usize>,
    /// Skill ids by index.
    pub skill_ids: Vec<String>,
    /// Prerequisite indices per skill index.
    pub prereqs: Vec<Vec<usize>>,
    /// Skill indices per module index.
    pub module_skills: Vec<Vec<usize>>,
    /// Module id to index in `modules`.
    pub module_index: BTreeMap<String, usize>,
    /// Item id to (skill index, number in its bank).
    pub item_index: BTreeMap<String, (usize, usize)>,
    /// The policy's lookup tables over `skills` and `modules`.
    pub catalog_index: CatalogIndex,
}

/// One synthetic learner: what they truly know and how they learn.
#[derive(Debug, Clone)]
pub struct SimLearner {
    /// BCP 47 language tag.
    pub language: String,
    /// True ability per skill index at the start; a skill is truly mastered
    /// at [`MASTERY_THETA`] or above (BKT world: ±1, known or not).
    pub theta: Vec<f64>,
    /// Learning multiplier per format (index in [`Format::ALL`]).
    pub affinity: [f64; 8],
    /// Overall learning speed multiplier.
    pub speed: f64,
    /// BKT world: P(wrong answer | skill known).
    pub slip: f64,
    /// BKT world: P(right answer | skill unknown).
    pub guess: f64,
}

/// Ability at or above which a skill is truly mastered.
pub const MASTERY_THETA: f64 = 0.0;

/// Items per skill in the bank.
const ITEMS_PER_SKILL: usize = 8;

/// Share of near-useless modules (quality a twentieth of a normal one).
const USELESS_SHARE: f64 = 0.12;

/// IRT world: ability gained by an average learner in a 15-minute module of
/// quality 1 whose prerequisites are known.
const GAIN: f64 = 1.2;

/// IRT world: what a module teaches when a prerequisite is truly unknown.
const BLOCKED_GAIN: f64 = 0.15;

/// IRT world: ability lost per learner minute on a skill not practised,
/// down to the learner's starting level (learners study about half an hour
/// a day: about 0.05 a month, at most [`MAX_FORGET`] in all).
pub const FORGET_PER_MINUTE: f64 = 0.00005;

/// IRT world: most ability a skill loses to forgetting below its best.
pub const MAX_FORGET: f64 = 0.3;

impl World {
    /// Builds the catalog from the seed: a layered DAG of `skills` skills
    /// (a few roots, then one to three prerequisites among the ten previous
    /// skills), and `modules` modules with every skill taught at least once
    /// in English and once in French (`fr` or `fr-CA`); about one module in
    /// eight is near-useless (never all of a skill's modules in one
    /// language); each skill has a bank of items, a few hard.
    pub fn generate(options: &SimOptions) -> World {
        let mut rng = rng(options.seed, WORLD_STREAM);
        let n = options.skills.max(2);
        let width = n.to_string().len().max(2);
        let skill_ids: Vec<String> = (0..n).map(|i| format!("s{i:0width$}")).collect();
        let prereqs = prerequisite_graph(&mut rng, n);
        let skills: BTreeMap<String, Skill> = (0..n)
            .map(|i| {
                let id = skill_ids[i].clone();
                let skill = Skill {
                    id: id.clone(),
                    name: format!("Skill {i}"),
                    prerequisite_ids: prereqs[i].iter().map(|&q| skill_ids[q].clone()).collect(),
                };
                (id, skill)
            })
            .collect();

        // Modules: (skills, language) drafts, then formats, durations, ids.
        let total = options.modules.max(3 * n);
        let drafts = module_drafts(&mut rng, n, total);
        let mwidth = total.to_string().len().max(3);
        let mut modules = Vec::with_capacity(total);
        let mut quality = Vec::with_capacity(total);
        let mut useless = Vec::with_capacity(total);
        let mut module_skills = Vec::with_capacity(total);
        let mut working = Vec::with_capacity(total);
        for (k, (taught, language)) in drafts.into_iter().enumerate() {
            let format = Format::ALL[rng.random_range(0..Format::ALL.len())];
            let (lo, hi, factor) = format_profile(format);
            let duration = rng.random_range(lo..=hi);
            let q = factor * (QUALITY_SPREAD * normal(&mut rng)).exp();
            let bad = rng.random_bool(USELESS_SHARE);
            quality.push(if bad { 0.05 * q.min(1.0) } else { q });
            working.push(q);
            useless.push(bad);
            modules.push(Module {
                external_ids: Vec::new(),
                id: format!("m{k:0mwidth$}"),
                title: format!(
                    "{} on {}",
                    format.name(),
                    taught
                        .iter()
                        .map(|&i| skill_ids[i].as_str())
                        .collect::<Vec<_>>()
                        .join("+")
                ),
                skill_ids: taught.iter().map(|&i| skill_ids[i].clone()).collect(),
                format,
                duration_minutes: duration,
                language: language.to_string(),
            });
            module_skills.push(taught);
        }
        keep_one_working(
            n,
            &modules,
            &module_skills,
            &working,
            &mut quality,
            &mut useless,
        );
        let (items, bank) = item_bank(&mut rng, &skill_ids);
        let topo = topological(&skill_ids, &prereqs);
        World {
            kind: options.world,
            catalog_index: CatalogIndex::new(&skills, &modules).with_items(&items),
            item_index: bank
                .iter()
                .enumerate()
                .flat_map(|(s, own)| {
                    own.iter()
                        .enumerate()
                        .map(move |(k, item)| (item.id.clone(), (s, k)))
                })
                .collect(),
            program: skill_ids.clone(),
            skill_index: skill_ids
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i))
                .collect(),
            module_index: modules
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), i))
                .collect(),
            skills,
            modules,
            items,
            bank,
            topo,
            quality,
            useless,
            skill_ids,
            prereqs,
            module_skills,
        }
    }

    /// Draws learner `index` from its own stream: language, true initial
    /// ability (consistent with the DAG: nothing mastered above an
    /// unmastered prerequisite; 55 % of learners with some prior
    /// knowledge), format affinities (three learners in ten are hands-on
    /// and get a quarter from video or podcast), speed, slip and guess.
    pub fn learner(&self, options: &SimOptions, index: usize) -> SimLearner {
        let mut rng = rng(options.seed, LEARNER_STREAM + index as u64);
        let language = if rng.random_bool(options.french_share.clamp(0.0, 1.0)) {
            "fr"
        } else {
            "en"
        };
        let experienced = rng.random_bool(0.55);
        let experience: f64 = if experienced {
            rng.random_range(0.2..0.8)
        } else {
            0.0
        };
        let mut theta = vec![0.0; self.skill_ids.len()];
        let mut known = vec![false; self.skill_ids.len()];
        // Indices are already a topological order (prerequisites are lower).
        for i in 0..known.len() {
            let ready = self.prereqs[i].iter().all(|&q| known[q]);
            known[i] = ready && rng.random_bool(experience);
            let z = normal(&mut rng);
            theta[i] = match (self.kind, known[i]) {
                (WorldKind::Bkt, true) => 1.0,
                (WorldKind::Bkt, false) => -1.0,
                (WorldKind::Irt, true) => (0.9 + 0.5 * z).max(0.1),
                (WorldKind::Irt, false) => (-1.5 + 0.5 * z).min(-0.3),
            };
        }
        let mut affinity = [1.0; 8];
        for a in &mut affinity {
            *a = (0.4 * normal(&mut rng)).exp();
        }
        if rng.random_bool(0.3) {
            for (f, a) in Format::ALL.iter().zip(affinity.iter_mut()) {
                match f {
                    Format::Video | Format::Podcast => *a *= 0.25,
                    Format::Exercise | Format::SeriousGame | Format::Workshop => *a *= 1.3,
                    _ => {}
                }
            }
        }
        SimLearner {
            language: language.to_string(),
            theta,
            affinity,
            speed: (0.3 * normal(&mut rng)).exp(),
            slip: rng.random_range(0.05..0.15),
            guess: rng.random_range(0.1..0.3),
        }
    }

    /// The learner's effort in module `m`: saturating in time spent, scaled
    /// by the module's hidden quality, the learner's affinity for its format
    /// and speed (see [`LEARNING_EXPONENT`]).
    fn effort(&self, learner: &SimLearner, m: usize) -> f64 {
        let module = &self.modules[m];
        let f = Format::ALL
            .iter()
            .position(|f| *f == module.format)
            .unwrap_or(0);
        (f64::from(module.duration_minutes) / MINUTES_SCALE).powf(LEARNING_EXPONENT)
            * self.quality[m]
            * learner.affinity[f]
            * learner.speed
    }

    /// BKT world: the true probability that `learner` learns each learnable
    /// skill of module `m`, clamped to [0.01, 0.95] (0.01 for a
    /// near-useless module).
    pub fn p_learn(&self, learner: &SimLearner, m: usize) -> f64 {
        (1.0 - (-self.effort(learner, m)).exp()).clamp(0.01, 0.95)
    }

    /// Plays module `m` on the learner's true abilities: in the BKT world a
    /// learnable skill (unknown, prerequisites known) becomes known with
    /// [`World::p_learn`]; in the IRT world every skill of the module gains
    /// ability (less once mastered, much less while a prerequisite is truly
    /// unmastered).
    pub fn teach(&self, learner: &SimLearner, m: usize, theta: &mut [f64], rng: &mut ChaCha8Rng) {
        match self.kind {
            WorldKind::Bkt => {
                let p = self.p_learn(learner, m);
                for &s in &self.module_skills[m] {
                    if self.learnable(s, theta) && rng.random_bool(p) {
                        theta[s] = 1.0;
                    }
                }
            }
            WorldKind::Irt => {
                let effort = self.effort(learner, m);
                for &s in &self.module_skills[m] {
                    let ready = self.prereqs[s].iter().all(|&q| theta[q] >= MASTERY_THETA);
                    let mut gain = GAIN * effort * (0.7 + 0.6 * rng.random::<f64>());
                    if !ready {
                        gain *= BLOCKED_GAIN;
                    }
                    if theta[s] >= MASTERY_THETA + 1.0 {
                        gain *= 0.3;
                    }
                    theta[s] += gain;
                }
            }
        }
    }

    /// `count` distinct items of skill `s`'s bank (all of them when it is
    /// smaller), drawn as the LMS's quizzes draw them.
    pub fn quiz_items(&self, s: usize, count: u32, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let bank = self.bank[s].len();
        let mut picked: Vec<usize> = Vec::new();
        while picked.len() < (count as usize).min(bank) {
            let k = rng.random_range(0..bank);
            if !picked.contains(&k) {
                picked.push(k);
            }
        }
        picked
    }

    /// Forgetting (IRT world): every skill not in `practised` loses ability
    /// over `minutes`, down to the learner's starting level and never more
    /// than [`MAX_FORGET`] below the best reached (`best`, kept up to date
    /// here). Nothing is forgotten in the BKT world.
    pub fn forget(
        &self,
        learner: &SimLearner,
        theta: &mut [f64],
        best: &mut [f64],
        minutes: u32,
        practised: &[usize],
    ) {
        if self.kind != WorldKind::Irt {
            return;
        }
        for (s, theta) in theta.iter_mut().enumerate() {
            let best = &mut best[s];
            *best = best.max(*theta);
            let floor = learner.theta[s].max(*best - MAX_FORGET);
            if *theta > floor && !practised.contains(&s) {
                *theta = (*theta - FORGET_PER_MINUTE * f64::from(minutes)).max(floor);
            }
        }
    }

    /// A skill the learner could profit from: not truly mastered, every
    /// prerequisite truly mastered.
    pub fn learnable(&self, s: usize, theta: &[f64]) -> bool {
        theta[s] < MASTERY_THETA && self.prereqs[s].iter().all(|&q| theta[q] >= MASTERY_THETA)
    }

    /// One answer on item `k` of skill `s` at ability `theta`.
    pub fn answer(
        &self,
        learner: &SimLearner,
        s: usize,
        k: usize,
        theta: f64,
        rng: &mut ChaCha8Rng,
    ) -> bool {
        match self.kind {
            WorldKind::Bkt => {
                if theta >= MASTERY_THETA {
                    !rng.random_bool(learner.slip)
                } else {
                    rng.random_bool(learner.guess)
                }
            }
            WorldKind::Irt => {
                let item = &self.bank[s][k];
                let p = item.c + (1.0 - item.c) / (1.0 + (-item.a * (theta - item.b)).exp());
                rng.random_bool(p.clamp(0.0, 1.0))
            }
        }
    }
}

/// The prerequisite graph of `n` skills: a few roots, then one to three
/// prerequisites for each among the ten previous skills (by index).
fn prerequisite_graph(rng: &mut ChaCha8Rng, n: usize) -> Vec<Vec<usize>> {
    let roots = (n / 10).max(2);
    let mut prereqs: Vec<Vec<usize>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut p: Vec<usize> = Vec::new();
        if i >= roots {
            let k = 1 + usize::from(rng.random_bool(0.5)) + usize::from(rng.random_bool(0.15));
            let lo = i.saturating_sub(10);
            for _ in 0..k {
                let q = rng.random_range(lo..i);
                if !p.contains(&q) {
                    p.push(q);
                }
            }
            p.sort_unstable();
        }
        prereqs.push(p);
    }
    prereqs
}

/// `total` (skills taught, language) drafts: three per skill (two English,
/// one French), then random ones (some teaching two neighbouring skills),
/// shuffled so that catalog order says nothing about content.
fn module_drafts(rng: &mut ChaCha8Rng, n: usize, total: usize) -> Vec<(Vec<usize>, &'static str)> {
    let mut drafts: Vec<(Vec<usize>, &'static str)> = Vec::with_capacity(total);
    for i in 0..n {
        drafts.push((vec![i], "en"));
        drafts.push((vec![i], if rng.random_bool(0.5) { "en" } else { "en-GB" }));
        drafts.push((vec![i], if rng.random_bool(0.5) { "fr" } else { "fr-CA" }));
    }
    while drafts.len() < total {
        let i = rng.random_range(0..n);
        let mut taught = vec![i];
        if rng.random_bool(0.15) && n > 1 {
            // A module covering two neighbouring skills.
            let j = if i + 1 < n { i + 1 } else { i - 1 };
            taught.push(j);
            taught.sort_unstable();
        }
        let language = match rng.random_range(0..10) {
            0 => "fr",
            1 => "fr-CA",
            2 => "en-GB",
            _ => "en",
        };
        drafts.push((taught, language));
    }
    // Shuffle so that catalog order says nothing about content.
    for i in (1..drafts.len()).rev() {
        let j = rng.random_range(0..=i);
        drafts.swap(i, j);
    }
    drafts
}

/// Every skill keeps one working module per language: a language whose
/// only content does not work is a content gap, which the engine reports
/// (NO_CONTENT), not a choice any policy can make. The first module of
/// such a language gets its working quality back.
fn keep_one_working(
    n: usize,
    modules: &[Module],
    module_skills: &[Vec<usize>],
    working: &[f64],
    quality: &mut [f64],
    useless: &mut [bool],
) {
    for skill in 0..n {
        for french in [false, true] {
            let of_language: Vec<usize> = (0..modules.len())
                .filter(|&m| {
                    module_skills[m].contains(&skill)
                        && modules[m].language.starts_with("fr") == french
                })
                .collect();
            if of_language.iter().all(|&m| useless[m]) {
                if let Some(&m) = of_language.first() {
                    useless[m] = false;
                    quality[m] = working[m];
                }
            }
        }
    }
}

/// The item bank: [`ITEMS_PER_SKILL`] items per skill (two of them hard),
/// as the engine sees them and with their hidden IRT parameters.
fn item_bank(rng: &mut ChaCha8Rng, skill_ids: &[String]) -> (Vec<Item>, Vec<Vec<BankItem>>) {
    let n = skill_ids.len();
    let mut items = Vec::with_capacity(n * ITEMS_PER_SKILL);
    let mut bank = Vec::with_capacity(n);
    for id in skill_ids {
        let mut own = Vec::with_capacity(ITEMS_PER_SKILL);
        for k in 0..ITEMS_PER_SKILL {
            // Most items sit below the mastery level; two are hard.
            let b = if k < 2 {
                0.6 + 0.3 * normal(rng)
            } else {
                -0.3 + 0.3 * normal(rng)
            };
            let item = BankItem {
                id: format!("{id}-i{k}"),
                a: rng.random_range(1.2..2.5),
                b,
                c: rng.random_range(0.1..0.25),
            };
            items.push(Item {
                id: item.id.clone(),
                skill_ids: vec![id.clone()],
                title: String::new(),
                external_ids: Vec::new(),
                pass_mark: None,
            });
            own.push(item);
        }
        bank.push(own);
    }
    (items, bank)
}

/// Kahn's algorithm, smallest id first among the ready skills.
fn topological(ids: &[String], prereqs: &[Vec<usize>]) -> Vec<String> {
    let n = ids.len();
    let mut indegree: Vec<usize> = prereqs.iter().map(Vec::len).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ps) in prereqs.iter().enumerate() {
        for &q in ps {
            children[q].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<(&str, usize)> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| (ids[i].as_str(), i))
        .collect();
    let mut out = Vec::with_capacity(n);
    while let Some(first) = ready.pop_first() {
        let i = first.1;
        out.push(ids[i].clone());
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.insert((ids[c].as_str(), c));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::check_graph;

    #[test]
    fn catalog_is_a_dag_with_enough_content() {
        let options = SimOptions::default();
        let world = World::generate(&options);
        check_graph(&world.skills).unwrap();
        assert!(world.skills.len() >= 30);
        assert!(world.modules.len() >= 120);
        let formats: std::collections::BTreeSet<Format> =
            world.modules.iter().map(|m| m.format).collect();
        assert!(formats.len() >= 5);
        assert!(world.skills.values().any(|s| s.prerequisite_ids.len() >= 2));
        // Topological order puts prerequisites first.
        let pos: BTreeMap<&str, usize> = world
            .topo
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        for s in world.skills.values() {
            for q in &s.prerequisite_ids {
                assert!(pos[q.as_str()] < pos[s.id.as_str()]);
            }
        }
    }

    #[test]
    fn learners_know_nothing_above_an_unknown_prerequisite() {
        let options = SimOptions::default();
        let world = World::generate(&options);
        for i in 0..50 {
            let l = world.learner(&options, i);
            for (s, ps) in world.prereqs.iter().enumerate() {
                if l.theta[s] >= MASTERY_THETA {
                    assert!(ps.iter().all(|&q| l.theta[q] >= MASTERY_THETA));
                }
            }
        }
    }
}
