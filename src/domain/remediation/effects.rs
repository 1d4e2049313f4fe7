//! What each module really does for each skill, learnt from the population.
//!
//! A fitted model gives every module one learn rate, and without one every
//! module of a skill looks the same: the policy then ranks by duration
//! alone and serves a near-useless short module again and again. So the
//! engine keeps, per (module, skill), what happened to the learners who did
//! it while the skill was unmastered: how much better they answered on the
//! skill right after it than just before it.
//!
//! That *value added* (share right after − share right before, `Δ`) is
//! measured against each learner's own level, so it does not depend on who
//! happens to take the module (a module tried late by strong learners is
//! not credited with their strength), and it needs no learner model: a
//! likelihood under BKT would read the mixed answers of a half-learnt skill
//! as "nothing learnt" for every module alike. Under BKT a module teaching
//! with probability `ℓ` raises the share right by `ℓ · (1 − slip − guess)`,
//! which turns `Δ` back into a learn rate.
//!
//! A module is mostly chosen right after a failed quiz, and the answers
//! after *any* module then regress towards the learner's level: a module
//! usually served second (after the first one failed) would collect that
//! regression as merit. So the evidence is also kept per *pattern* of the
//! answers before (two right of three, none of three, ...), and a module is
//! compared with the skill's other modules among learners who stood at the
//! same place ([`Effects::posterior`]): the skill's pooled value added, plus
//! how much better the module did than the pool within each pattern.
//!
//! The estimate is a posterior mean with the fitted rate shrunk toward the
//! skill's ([`prior_rate`]; the skill's alone without a fit) as a prior
//! worth [`PRIOR_STRENGTH`] learners, and a normal uncertainty. The
//! policy *draws* a rate from it (Thompson sampling) with a uniform drawn
//! from a seed of the request: an untried module gets tried now and then, a
//! module that works wins most draws, and one that does not move anyone
//! stops being drawn high.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::hashing::{fnv1a, splitmix};

/// Strength of the prior, in pseudo-learners: small, so that a handful of
/// learners outweigh a fitted rate that a whole-population fit got wrong.
pub const PRIOR_STRENGTH: f64 = 2.0;

/// Weight of a module's fitted learn rate in its prior; the rest is the
/// skill's rate. A multilearn fit credits a module with the rebound that
/// follows any failed quiz, and its rates correlate weakly with what
/// modules really teach (r 0.09 to 0.42 in the outside check of issue
/// 18): taken whole, a near-useless module fitted high was served until
/// the population's evidence overturned it. Halfway, measured with
/// `spoc simulate --refit-every 50` over three sets of ten seeds of the
/// non-BKT world and one of the BKT world (BENCHMARKS.md, issue 18):
/// better than the whole fitted rate on every figure of every set, and
/// than the skill's rate alone (the fit ignored) on most. Checked again
/// once the simulator ran the engine's whole fit (irt and bkt, seeds
/// 42-51): halfway still best on minutes, near-useless and useful share.
pub const FITTED_RATE_WEIGHT: f64 = 0.5;

/// The prior learn rate of a module on a skill of learn rate
/// `skill_rate`: its `fitted` rate, if any, shrunk toward the skill's by
/// [`FITTED_RATE_WEIGHT`].
pub fn prior_rate(fitted: Option<f64>, skill_rate: f64) -> f64 {
    match fitted {
        Some(rate) => FITTED_RATE_WEIGHT * rate + (1.0 - FITTED_RATE_WEIGHT) * skill_rate,
        None => skill_rate,
    }
}

/// Variance of one learner's `Δ` assumed by the prior: a three-item quiz
/// moves the share right in steps of a third.
const PRIOR_VARIANCE: f64 = 0.16;

/// Answers after a module that decide its outcome: the first ones on the
/// skill (later ones may follow other work); as many before it set the
/// learner's level.
pub const EVIDENCE_ANSWERS: u32 = 3;

/// One module's outcome for one learner on one skill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectEvidence {
    /// P(mastered) of the skill just before the module, as the engine saw it.
    pub before: f64,
    /// Right answers among the latest answers on the skill before the
    /// module (at most [`EVIDENCE_ANSWERS`]).
    pub right_before: u32,
    /// Wrong answers among them.
    pub wrong_before: u32,
    /// Right answers on the skill after the module (the first few).
    pub right: u32,
    /// Wrong answers on the skill after the module (the first few).
    pub wrong: u32,
    /// The skill's guess (P(right | not mastered)).
    pub guess: f64,
    /// The skill's slip (P(wrong | mastered)).
    pub slip: f64,
    /// Weight of this evidence in (0, 1]: `1 / k` when `k` modules on the
    /// skill were done before the same answers (each gets a share).
    pub weight: f64,
    /// Whether this is the learner's first go at the module: `tried` and
    /// `moved` count learners, not goes.
    pub first_go: bool,
}

impl EffectEvidence {
    /// Whether the answers show the skill learnt: two thirds right, the
    /// usual pass mark of a short quiz.
    pub fn passed(&self) -> bool {
        3 * self.right >= 2 * (self.right + self.wrong) && self.right > 0
    }

    /// The share right before the module: the learner's latest answers,
    /// smoothed towards what the engine's belief predicts (worth two
    /// answers). A module is usually chosen right after a failed quiz,
    /// whose share right is below the learner's level: the raw share would
    /// credit every module with the regression to the mean that follows.
    fn level_before(&self) -> f64 {
        let p = finite_or(self.before, 0.0).clamp(0.0, 1.0);
        let predicted = p * (1.0 - self.slip) + (1.0 - p) * self.guess;
        let n = f64::from(self.right_before + self.wrong_before);
        (f64::from(self.right_before) + 2.0 * predicted) / (n + 2.0)
    }
}

/// The evidence on one (module, skill) pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleEffect {
    /// Learners who did the module while the skill was unmastered and then
    /// answered on it, each counted at their first go.
    pub tried: u32,
    /// Of whom passed the answers after that first go.
    pub moved: u32,
    /// Weighted count of value-added observations.
    pub weight: f64,
    /// Weighted sum of `Δ`.
    pub sum: f64,
    /// Weighted sum of `Δ²`.
    pub sum_sq: f64,
    /// The same evidence per pattern of the answers before the module.
    pub strata: Strata,
}

/// Patterns of the answers before a module: (right, wrong) with at most
/// [`EVIDENCE_ANSWERS`] answers in all (none, 0/1, 1/1, 0/2, ...): ten.
pub const PATTERNS: usize = 10;

/// Weight and weighted sum of `Δ` per pattern of the answers before a
/// module (index by [`pattern`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Strata {
    /// Weight per pattern.
    pub weight: [f64; PATTERNS],
    /// Weighted sum of `Δ` per pattern.
    pub sum: [f64; PATTERNS],
}

impl Strata {
    fn add(&mut self, k: usize, weight: f64, delta: f64) {
        self.weight[k] += weight;
        self.sum[k] += weight * delta;
    }

    fn merge(&mut self, other: &Strata) {
        for k in 0..PATTERNS {
            self.weight[k] += other.weight[k];
            self.sum[k] += other.sum[k];
        }
    }
}

/// The index of a pattern of `right` right and `wrong` wrong answers before
/// a module, in `0..PATTERNS`; more than [`EVIDENCE_ANSWERS`] answers are
/// scaled down to that many.
pub fn pattern(right: u32, wrong: u32) -> usize {
    let n = u64::from(right) + u64::from(wrong);
    let (right, n) = if n > u64::from(EVIDENCE_ANSWERS) {
        let share = f64::from(right) / n as f64;
        let scaled = (share * f64::from(EVIDENCE_ANSWERS)).round() as u32;
        (scaled.min(EVIDENCE_ANSWERS), EVIDENCE_ANSWERS)
    } else {
        (right, n as u32)
    };
    (n * (n + 1) / 2 + right) as usize
}

/// What one outcome added to a module's evidence: its pattern, weight and
/// value added.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    pattern: usize,
    weight: f64,
    delta: f64,
}

impl ModuleEffect {
    /// Adds one learner's outcome and returns what it added. Evidence
    /// gathered while the skill was already mastered says little about the
    /// module (the answers are at their ceiling), so it is left out.
    pub fn observe(&mut self, e: &EffectEvidence, threshold: f64) -> Option<Observed> {
        let weight = finite_or(e.weight, 1.0).clamp(0.0, 1.0);
        let after = e.right + e.wrong;
        let p = finite_or(e.before, 0.0);
        if after == 0 || weight == 0.0 || p >= threshold {
            return None;
        }
        if e.first_go {
            self.tried += 1;
            self.moved += u32::from(e.passed());
        }
        let delta = f64::from(e.right) / f64::from(after) - e.level_before();
        self.weight += weight;
        self.sum += weight * delta;
        self.sum_sq += weight * delta * delta;
        let pattern = pattern(e.right_before, e.wrong_before);
        self.strata.add(pattern, weight, delta);
        Some(Observed {
            pattern,
            weight,
            delta,
        })
    }

    /// The posterior over the learn rate from this module's evidence alone,
    /// with `prior_rate` (the fitted module rate, or the skill's) as its
    /// prior, for a skill of that guess and slip.
    pub fn posterior(&self, prior_rate: f64, guess: f64, slip: f64) -> Posterior {
        let mean = if self.weight > 0.0 {
            self.sum / self.weight
        } else {
            0.0
        };
        self.posterior_around(mean, prior_rate, guess, slip)
    }

    /// The posterior when the evidence's mean value added is `mean` (this
    /// module's own, or adjusted for the patterns it was taken at), with
    /// the spread of its own outcomes around it.
    fn posterior_around(&self, mean: f64, prior_rate: f64, guess: f64, slip: f64) -> Posterior {
        let span = (1.0 - finite_or(slip, 0.1) - finite_or(guess, 0.2)).clamp(0.1, 1.0);
        let prior = finite_or(prior_rate, 0.15).clamp(0.0, 1.0) * span;
        let weight = self.weight.max(0.0);
        let n = PRIOR_STRENGTH + weight;
        // Σ(Δ − own mean)², the scatter of the outcomes, kept whatever mean.
        let scatter = if weight > 0.0 {
            (self.sum_sq - self.sum * self.sum / weight).max(0.0)
        } else {
            0.0
        };
        let post = (PRIOR_STRENGTH * prior + weight * mean) / n;
        let squares =
            PRIOR_STRENGTH * (PRIOR_VARIANCE + prior * prior) + scatter + weight * mean * mean;
        let variance = (squares / n - post * post).max(0.01);
        Posterior {
            mean: post / span,
            sd: (variance / n).sqrt() / span,
        }
    }
}

fn finite_or(x: f64, default: f64) -> f64 {
    if x.is_finite() { x } else { default }
}

/// What is known of a module's learn rate: a mean and its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    mean: f64,
    sd: f64,
}

/// Scale of the floor under a rate: estimates below it are squeezed
/// towards zero but keep their order (see [`soft_floor`]).
const FLOOR: f64 = 0.005;

/// A rate from an estimate that may be zero or negative: positive, at most
/// 1, the estimate itself above a few [`FLOOR`]s, and increasing
/// everywhere (`FLOOR · ln(1 + e^(x / FLOOR))`).
///
/// Why not a plain clamp at the floor: when every module of a skill teaches
/// almost nobody (a content gap in a language, `spoc simulate --world bkt
/// --seed 60`), every estimate fell under the floor, all modules tied, and
/// per minute the shortest won: a 10-minute near-useless module was served
/// to one learner 587 times while a 14-minute module that taught three
/// times as often never was. Kept in order, the weaker ones fall under a
/// third of the best and stop being served.
fn soft_floor(x: f64) -> f64 {
    let x = finite_or(x, 0.0);
    let rate = if x > 40.0 * FLOOR {
        x
    } else {
        FLOOR * (x / FLOOR).exp().ln_1p()
    };
    rate.clamp(f64::MIN_POSITIVE, 1.0)
}

impl Posterior {
    /// The estimated learn rate, in (0, 1] (see [`soft_floor`]).
    pub fn mean(&self) -> f64 {
        soft_floor(self.mean)
    }

    /// Whether the rate at cumulative probability `u` of the posterior is
    /// above zero, before any floor: with a small `u`, whether the module
    /// credibly teaches at all.
    pub fn above_zero_at(&self, u: f64) -> bool {
        self.mean + self.sd * normal_quantile(u) > 0.0
    }

    /// The rate at cumulative probability `u` of the (normal) posterior,
    /// in (0, 1]: a posterior draw when `u` is uniform.
    pub fn sample(&self, u: f64) -> f64 {
        soft_floor(self.mean + self.sd * normal_quantile(u))
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative
/// error under 1.2e-9), for `u` in (0, 1).
fn normal_quantile(u: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let u = finite_or(u, 0.5).clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if u < 0.02425 {
        tail((-2.0 * u.ln()).sqrt())
    } else if u > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - u).ln()).sqrt())
    } else {
        let q = u - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The evidence on every (module, skill) pair, by module id then skill id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Effects {
    by_module: BTreeMap<String, BTreeMap<String, ModuleEffect>>,
    /// Per skill, every module's evidence pooled (derived, not stored).
    #[serde(skip)]
    by_skill: BTreeMap<String, Pool>,
}

/// Equal when the pairs are (the pools are derived from them, summed in
/// whatever order the pairs came).
impl PartialEq for Effects {
    fn eq(&self, other: &Self) -> bool {
        self.by_module == other.by_module
    }
}

/// A skill's evidence over all its modules.
#[derive(Debug, Clone, Default)]
struct Pool {
    weight: f64,
    sum: f64,
    strata: Strata,
}

impl Pool {
    /// Adds a whole stored pair.
    fn add(&mut self, effect: &ModuleEffect) {
        self.weight += effect.weight;
        self.sum += effect.sum;
        self.strata.merge(&effect.strata);
    }

    /// Adds one outcome, as the pair it came with took it.
    fn observe(&mut self, added: Observed) {
        self.weight += added.weight;
        self.sum += added.weight * added.delta;
        self.strata.add(added.pattern, added.weight, added.delta);
    }

    /// The value added of `effect` adjusted for the patterns it was taken
    /// at: the pool's mean, plus the module's weighted lead over the pool
    /// within each pattern. `None` without patterns to compare (evidence
    /// stored before patterns were kept).
    fn adjusted_mean(&self, effect: &ModuleEffect) -> Option<f64> {
        let (mut weight, mut lead) = (0.0, 0.0);
        for k in 0..PATTERNS {
            let (w, pooled) = (effect.strata.weight[k], self.strata.weight[k]);
            if w > 0.0 && pooled > 0.0 {
                weight += w;
                lead += effect.strata.sum[k] - w * self.strata.sum[k] / pooled;
            }
        }
        (weight > 0.0 && self.weight > 0.0).then(|| self.sum / self.weight + lead / weight)
    }
}

impl Effects {
    /// The evidence on `module` for `skill`, if any.
    pub fn get(&self, module: &str, skill: &str) -> Option<&ModuleEffect> {
        self.by_module.get(module)?.get(skill)
    }

    /// Adds one outcome; returns the updated pair (to be stored).
    pub fn observe(
        &mut self,
        module: &str,
        skill: &str,
        evidence: &EffectEvidence,
        threshold: f64,
    ) -> &ModuleEffect {
        let effect = self
            .by_module
            .entry(module.to_string())
            .or_default()
            .entry(skill.to_string())
            .or_default();
        if let Some(added) = effect.observe(evidence, threshold) {
            self.by_skill
                .entry(skill.to_string())
                .or_default()
                .observe(added);
        }
        effect
    }

    /// Puts a stored pair back (loading at start).
    pub fn insert(&mut self, module: String, skill: String, effect: ModuleEffect) {
        self.by_skill.entry(skill.clone()).or_default().add(&effect);
        let pairs = self.by_module.entry(module).or_default();
        if pairs.insert(skill.clone(), effect).is_some() {
            // A pair replaced: the pool counted the old one too.
            self.repool(&skill);
        }
    }

    /// Rebuilds the pool of `skill` from its pairs.
    fn repool(&mut self, skill: &str) {
        let mut pool = Pool::default();
        for pairs in self.by_module.values() {
            if let Some(effect) = pairs.get(skill) {
                pool.add(effect);
            }
        }
        self.by_skill.insert(skill.to_string(), pool);
    }

    /// What is known of `module`'s rate on `skill` (see the module doc):
    /// its value added compared with the skill's other modules within each
    /// pattern of the answers before, around the skill's pooled value
    /// added; the module's own evidence alone when it has no patterns yet.
    pub fn posterior(
        &self,
        module: &str,
        skill: &str,
        prior_rate: f64,
        guess: f64,
        slip: f64,
    ) -> Posterior {
        let Some(effect) = self.get(module, skill) else {
            return ModuleEffect::default().posterior(prior_rate, guess, slip);
        };
        match self
            .by_skill
            .get(skill)
            .and_then(|p| p.adjusted_mean(effect))
        {
            Some(mean) => effect.posterior_around(mean, prior_rate, guess, slip),
            None => effect.posterior(prior_rate, guess, slip),
        }
    }

    /// Every pair, by module then skill.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &ModuleEffect)> {
        self.by_module
            .iter()
            .flat_map(|(m, skills)| skills.iter().map(move |(s, e)| (m.as_str(), s.as_str(), e)))
    }
}

/// A uniform in [0, 1) from a request seed and a module id: the same
/// request gives the same draw (reproducible answers), another learner or
/// another moment another draw. SplitMix64 over FNV-1a of the id.
pub fn uniform(seed: u64, module: &str) -> f64 {
    (splitmix(seed ^ fnv1a(module)) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fitted_rate_is_shrunk_halfway_to_the_skills() {
        assert!((prior_rate(Some(0.75), 0.15) - 0.45).abs() < 1e-12);
        assert!((prior_rate(Some(0.05), 0.25) - 0.15).abs() < 1e-12);
        assert_eq!(prior_rate(None, 0.2), 0.2);
    }

    fn evidence(before: (u32, u32), right: u32, wrong: u32) -> EffectEvidence {
        EffectEvidence {
            before: 0.2,
            right_before: before.0,
            wrong_before: before.1,
            right,
            wrong,
            guess: 0.2,
            slip: 0.1,
            weight: 1.0,
            first_go: true,
        }
    }

    fn rate(e: &ModuleEffect) -> f64 {
        e.posterior(0.15, 0.2, 0.1).mean()
    }

    /// Two modules that leave learners worse than their level (a content
    /// gap): both estimates are under the floor, and the one that hurts
    /// less still ranks higher, by more than the factor of three that
    /// stops a module being served.
    #[test]
    fn estimates_under_the_floor_keep_their_order() {
        let (mut weak, mut useless) = (ModuleEffect::default(), ModuleEffect::default());
        for i in 0..300 {
            // The same level before (1 of 3); after, weak gives one right
            // answer in three and useless one in four.
            weak.observe(&evidence((1, 2), 1, 2), 0.95);
            useless.observe(&evidence((1, 2), u32::from(i % 4 == 0), 1), 0.95);
        }
        let (w, u) = (rate(&weak), rate(&useless));
        assert!(w > 0.0 && u > 0.0, "{w} {u}");
        assert!(w < FLOOR && u < w / 3.0, "weak {w}, useless {u}");
        assert!((soft_floor(0.3) - 0.3).abs() < 1e-12, "no change above");
        assert_eq!(soft_floor(5.0), 1.0);
        assert!(soft_floor(-10.0) > 0.0);
    }

    #[test]
    fn progress_raises_the_rate_and_none_lowers_it() {
        let (mut good, mut bad) = (ModuleEffect::default(), ModuleEffect::default());
        for _ in 0..20 {
            good.observe(&evidence((1, 2), 3, 0), 0.95);
            bad.observe(&evidence((1, 2), 1, 2), 0.95);
        }
        let prior = rate(&ModuleEffect::default());
        assert!((prior - 0.15).abs() < 1e-9, "{prior}");
        assert!(rate(&good) > 0.8, "{}", rate(&good));
        assert!(rate(&bad) < 0.03, "{}", rate(&bad));
        assert_eq!(
            (good.tried, good.moved, bad.tried, bad.moved),
            (20, 20, 20, 0)
        );
    }

    #[test]
    fn a_strong_learner_passing_is_not_the_module_s_merit() {
        // Learners who already answered two thirds right and still do: the
        // module added nothing, however often they pass after it.
        let mut e = ModuleEffect::default();
        for _ in 0..30 {
            e.observe(
                &EffectEvidence {
                    before: 0.7,
                    ..evidence((2, 1), 2, 1)
                },
                0.95,
            );
        }
        assert_eq!(e.moved, 30);
        assert!(rate(&e) < 0.03, "{}", rate(&e));
    }

    #[test]
    fn a_mastered_skill_tells_nothing_about_the_module() {
        let mut e = ModuleEffect::default();
        e.observe(
            &EffectEvidence {
                before: 0.99,
                ..evidence((3, 0), 0, 3)
            },
            0.95,
        );
        assert_eq!(e, ModuleEffect::default());
    }

    #[test]
    fn without_earlier_answers_the_belief_sets_the_level() {
        // (With answers, it is worth two of them.)
        // P 0.2 predicts 0.2·0.9 + 0.8·0.2 = 0.34 right: three right is +0.66.
        let mut e = ModuleEffect::default();
        e.observe(&evidence((0, 0), 3, 0), 0.95);
        assert!((e.sum - 0.66).abs() < 1e-9, "{}", e.sum);
    }

    #[test]
    fn uncertainty_shrinks_with_learners_and_draws_follow_it() {
        let mut e = ModuleEffect::default();
        let wide = e.posterior(0.15, 0.2, 0.1);
        for _ in 0..50 {
            e.observe(&evidence((1, 2), 2, 1), 0.95);
        }
        let narrow = e.posterior(0.15, 0.2, 0.1);
        let spread = |p: Posterior| p.sample(0.9) - p.sample(0.1);
        assert!(spread(narrow) < spread(wide) / 3.0);
        let n = 4000;
        let mean: f64 = (0..n).map(|i| narrow.sample(uniform(i, "m"))).sum::<f64>() / n as f64;
        assert!(
            (mean - narrow.mean()).abs() < 0.02,
            "{mean} vs {}",
            narrow.mean()
        );
        assert!(normal_quantile(0.975) > 1.959 && normal_quantile(0.975) < 1.961);
        assert!(normal_quantile(0.001) < -3.09 && normal_quantile(0.001) > -3.1);
    }

    /// One learner failing a module fifteen times is one learner in
    /// `tried`, though every go is evidence.
    #[test]
    fn tried_counts_learners_not_goes() {
        let mut effect = ModuleEffect::default();
        for go in 0..15 {
            let failed = EffectEvidence {
                first_go: go == 0,
                ..evidence((0, 3), 0, 3)
            };
            effect.observe(&failed, 0.95);
        }
        let passed = EffectEvidence {
            first_go: false,
            ..evidence((0, 3), 3, 0)
        };
        effect.observe(&passed, 0.95);
        assert_eq!((effect.tried, effect.moved, effect.weight), (1, 0, 16.0));
        effect.observe(&evidence((0, 3), 3, 0), 0.95);
        assert_eq!((effect.tried, effect.moved), (2, 1));
    }

    /// A posterior credibly above zero, one that is not, one below.
    #[test]
    fn a_module_teaches_when_its_lower_bound_is_above_zero() {
        let mut good = ModuleEffect::default();
        let mut none = ModuleEffect::default();
        for _ in 0..60 {
            good.observe(&evidence((0, 3), 2, 1), 0.95);
            // Right as often as before: no value added.
            none.observe(&evidence((1, 2), 1, 2), 0.95);
        }
        let at = |e: &ModuleEffect| e.posterior(0.15, 0.2, 0.1);
        assert!(at(&good).above_zero_at(0.025));
        assert!(!at(&none).above_zero_at(0.025));
        assert!(at(&none).above_zero_at(0.999));
        assert!(!at(&ModuleEffect::default()).above_zero_at(0.025));
    }

    #[test]
    fn weight_tempers_the_evidence() {
        let (mut full, mut half) = (ModuleEffect::default(), ModuleEffect::default());
        full.observe(&evidence((0, 3), 3, 0), 0.95);
        half.observe(
            &EffectEvidence {
                weight: 0.5,
                ..evidence((0, 3), 3, 0)
            },
            0.95,
        );
        assert!(rate(&full) > rate(&half) && rate(&half) > rate(&ModuleEffect::default()));
    }

    #[test]
    fn a_module_served_after_failed_quizzes_gets_no_credit_for_the_rebound() {
        // Two modules that do exactly as well in each pattern: after a quiz
        // of none right, one of three right follows (the rebound any
        // module gets); after two of three, two of three. "late" is mostly
        // served after failed quizzes, "first" mostly to learners at their
        // level.
        fn add(effects: &mut Effects, module: &str, before: (u32, u32), right: u32, times: usize) {
            for _ in 0..times {
                effects.observe(module, "s", &evidence(before, right, 3 - right), 0.95);
            }
        }
        let mut effects = Effects::default();
        add(&mut effects, "late", (0, 3), 1, 40);
        add(&mut effects, "late", (2, 1), 2, 4);
        add(&mut effects, "first", (0, 3), 1, 4);
        add(&mut effects, "first", (2, 1), 2, 40);
        let own = |effects: &Effects, m: &str| rate(effects.get(m, "s").unwrap());
        let adjusted =
            |effects: &Effects, m: &str| effects.posterior(m, "s", 0.15, 0.2, 0.1).mean();
        // Alone, each module's evidence credits "late" with the rebound.
        let (late, first) = (own(&effects, "late"), own(&effects, "first"));
        assert!(late > first + 0.05, "{late} {first}");
        // Compared within the patterns, they are equal.
        let (late, first) = (adjusted(&effects, "late"), adjusted(&effects, "first"));
        assert!((late - first).abs() < 1e-9, "{late} {first}");
        // A module better than the pool within its pattern stays better.
        add(&mut effects, "good", (0, 3), 3, 40);
        assert!(adjusted(&effects, "good") > adjusted(&effects, "late") + 0.3);
        // Loading the same pairs back gives the same pools.
        let mut loaded = Effects::default();
        for (m, s, e) in effects.iter() {
            loaded.insert(m.to_string(), s.to_string(), e.clone());
        }
        let same = |loaded: &Effects| {
            ["late", "first", "good"]
                .iter()
                .all(|m| (adjusted(loaded, m) - adjusted(&effects, m)).abs() < 1e-9)
        };
        assert_eq!(loaded, effects);
        assert!(same(&loaded));
        loaded.insert(
            "good".into(),
            "s".into(),
            effects.get("good", "s").unwrap().clone(),
        );
        assert!(same(&loaded), "a pair replaced is not counted twice");
    }

    #[test]
    fn patterns_cover_every_short_answer_history() {
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..=EVIDENCE_ANSWERS {
            for right in 0..=n {
                assert!(seen.insert(pattern(right, n - right)));
            }
        }
        assert_eq!(seen.len(), PATTERNS);
        assert!(seen.iter().all(|&k| k < PATTERNS));
        // Longer histories are scaled to three answers.
        assert_eq!(pattern(4, 2), pattern(2, 1));
        assert_eq!(pattern(u32::MAX, u32::MAX), pattern(2, 1));
    }

    #[test]
    fn uniform_is_spread_and_reproducible() {
        assert_eq!(uniform(7, "a"), uniform(7, "a"));
        assert_ne!(uniform(7, "a"), uniform(8, "a"));
        let below: usize = (0..1000).filter(|&i| uniform(i, "x") < 0.25).count();
        assert!((200..300).contains(&below), "{below}");
    }
}
