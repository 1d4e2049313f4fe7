//! Population-level learning: per-module learn rates fitted on the learners
//! already served, the data flow of production.
//!
//! In production the engine fits its model on the stored attempts (issue 8)
//! and `RecommendNext` then ranks modules with the fitted per-module learn
//! rates. The simulator plays the same flow: learners are served in cohorts
//! of [`SimOptions::refit_every`](super::SimOptions::refit_every); before
//! each cohort, the adaptive runs of every earlier learner (what the LMS
//! recorded: which module was done, which quiz answers followed, and the
//! final exams) are fitted, and the cohort's adaptive runs receive the
//! fitted rates as [`RecommendInput::module_learn_rates`]. The first cohort
//! sees no rates (a new catalog). The fixed and random policies use no rates,
//! so the fit changes nothing for them. The fit sees only what the engine
//! sees, never the hidden truth.
//!
//! The model is BKT with the transitions where learning happens: one chain
//! per (learner, skill); a module on the skill may turn "unknown" into
//! "known" with the module's rate λ_m, then the quiz answers are emitted
//! with a guess and a slip; exam answers are emissions without transition.
//! Baum-Welch (EM) fits λ per module, P(L0) per skill and one guess and one
//! slip. Rates are the posterior mean under a Beta prior centred on the
//! pooled rate ([`PRIOR_ATTEMPTS`] pseudo-attempts), so a module tried by
//! few learners stays near the average and a module never tried gets it.
//!
//! [`RecommendInput::module_learn_rates`]: crate::domain::remediation::RecommendInput::module_learn_rates

use std::collections::BTreeMap;

use super::world::World;

/// Strength, in pseudo-attempts, of the Beta prior that pulls a module's
/// rate towards the pooled rate.
const PRIOR_ATTEMPTS: f64 = 5.0;

/// EM iterations per fit (the fit starts from neutral values each time).
const ITERATIONS: usize = 30;

/// What the LMS recorded about one skill at one moment: the module done on
/// it (none for an exam) and the quiz answers that followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index in `World::modules` of the module done, `None` for an exam.
    pub module: Option<u32>,
    /// Right answers.
    pub correct: u32,
    /// Answers.
    pub items: u32,
}

/// The recorded steps of one learner, per skill index, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// `(skill index, steps on that skill)`, skills in first-seen order.
    pub chains: Vec<(u32, Vec<Step>)>,
}

impl Trace {
    /// Appends a step on `skill`.
    pub fn push(&mut self, skill: usize, step: Step) {
        let skill = skill as u32;
        match self.chains.iter_mut().find(|(s, _)| *s == skill) {
            Some((_, steps)) => steps.push(step),
            None => self.chains.push((skill, vec![step])),
        }
    }
}

/// Fitted parameters (indices as in the world).
struct Params {
    learn: Vec<f64>,
    prior: Vec<f64>,
    guess: f64,
    slip: f64,
}

/// Expected counts of one E-step.
struct Counts {
    learnt: Vec<f64>,
    exposed: Vec<f64>,
    known0: Vec<f64>,
    chains: Vec<f64>,
    guessed: f64,
    unknown_items: f64,
    slipped: f64,
    known_items: f64,
}

fn emission(p: &Params, step: &Step) -> (f64, f64) {
    let (k, n) = (f64::from(step.correct), f64::from(step.items));
    let known = (1.0 - p.slip).powf(k) * p.slip.powf(n - k);
    let unknown = p.guess.powf(k) * (1.0 - p.guess).powf(n - k);
    (known, unknown)
}

/// Forward-backward on one chain, adding its expected counts.
fn chain(p: &Params, skill: usize, steps: &[Step], c: &mut Counts) {
    let t_len = steps.len();
    // alpha[t] = P(state after step t | steps ..= t), normalised; index 0 is
    // the initial state (before the first step).
    let mut alpha: Vec<(f64, f64)> = Vec::with_capacity(t_len + 1);
    let mut emis: Vec<(f64, f64)> = Vec::with_capacity(t_len);
    let mut lam: Vec<f64> = Vec::with_capacity(t_len);
    alpha.push((p.prior[skill], 1.0 - p.prior[skill]));
    for step in steps {
        let l = step.module.map_or(0.0, |m| p.learn[m as usize]);
        let e = emission(p, step);
        let (k0, u0) = alpha[alpha.len() - 1];
        let k = (k0 + u0 * l) * e.0;
        let u = u0 * (1.0 - l) * e.1;
        let z = (k + u).max(f64::MIN_POSITIVE);
        alpha.push((k / z, u / z));
        emis.push(e);
        lam.push(l);
    }
    // Backward, normalised at each step (only ratios matter).
    let mut beta = (1.0, 1.0);
    for t in (0..t_len).rev() {
        let (ak, au) = alpha[t + 1];
        let gk = ak * beta.0;
        let gu = au * beta.1;
        let z = (gk + gu).max(f64::MIN_POSITIVE);
        c.guessed += gu / z * f64::from(steps[t].correct);
        c.unknown_items += gu / z * f64::from(steps[t].items);
        c.slipped += gk / z * f64::from(steps[t].items - steps[t].correct);
        c.known_items += gk / z * f64::from(steps[t].items);
        // The transition into step t.
        let (pk, pu) = alpha[t];
        let (ek, eu) = emis[t];
        let l = lam[t];
        let to_k = pu * l * ek * beta.0;
        let stay_u = pu * (1.0 - l) * eu * beta.1;
        let from_k = pk * ek * beta.0;
        let zt = (to_k + stay_u + from_k).max(f64::MIN_POSITIVE);
        if let Some(m) = steps[t].module {
            c.learnt[m as usize] += to_k / zt;
            c.exposed[m as usize] += (to_k + stay_u) / zt;
        }
        let nb = (ek * beta.0, l * ek * beta.0 + (1.0 - l) * eu * beta.1);
        let s = (nb.0 + nb.1).max(f64::MIN_POSITIVE);
        beta = (nb.0 / s, nb.1 / s);
    }
    let (ak, au) = alpha[0];
    let gk = ak * beta.0;
    let gu = au * beta.1;
    c.known0[skill] += gk / (gk + gu).max(f64::MIN_POSITIVE);
    c.chains[skill] += 1.0;
}

/// Fits per-module learn rates on `traces` (see the module doc) and returns
/// them by module id, for every module of the catalog. Deterministic: the
/// same traces in the same order give the same rates.
pub fn fit_module_rates(world: &World, traces: &[Trace]) -> BTreeMap<String, f64> {
    let (n_mod, n_skill) = (world.modules.len(), world.skill_ids.len());
    let mut p = Params {
        learn: vec![0.3; n_mod],
        prior: vec![0.2; n_skill],
        guess: 0.2,
        slip: 0.1,
    };
    if !traces
        .iter()
        .flat_map(|t| &t.chains)
        .any(|(_, steps)| steps.iter().any(|s| s.module.is_some()))
    {
        return BTreeMap::new();
    }
    for _ in 0..ITERATIONS {
        let mut c = Counts {
            learnt: vec![0.0; n_mod],
            exposed: vec![0.0; n_mod],
            known0: vec![0.0; n_skill],
            chains: vec![0.0; n_skill],
            guessed: 0.0,
            unknown_items: 0.0,
            slipped: 0.0,
            known_items: 0.0,
        };
        for trace in traces {
            for (skill, steps) in &trace.chains {
                chain(&p, *skill as usize, steps, &mut c);
            }
        }
        let (learnt, exposed): (f64, f64) = (c.learnt.iter().sum(), c.exposed.iter().sum());
        if exposed <= 0.0 {
            break;
        }
        let pooled = (learnt / exposed).clamp(0.01, 0.99);
        for m in 0..n_mod {
            p.learn[m] = ((c.learnt[m] + PRIOR_ATTEMPTS * pooled)
                / (c.exposed[m] + PRIOR_ATTEMPTS))
                .clamp(0.01, 0.99);
        }
        let pooled_prior = c.known0.iter().sum::<f64>() / c.chains.iter().sum::<f64>().max(1.0);
        for s in 0..n_skill {
            p.prior[s] = ((c.known0[s] + PRIOR_ATTEMPTS * pooled_prior)
                / (c.chains[s] + PRIOR_ATTEMPTS))
                .clamp(0.01, 0.99);
        }
        if c.unknown_items > 0.0 {
            p.guess = (c.guessed / c.unknown_items).clamp(0.01, 0.45);
        }
        if c.known_items > 0.0 {
            p.slip = (c.slipped / c.known_items).clamp(0.01, 0.45);
        }
    }
    world
        .modules
        .iter()
        .zip(&p.learn)
        .map(|(m, &l)| (m.id.clone(), l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::simulator::SimOptions;
    use rand::{Rng, SeedableRng};

    /// Chains drawn from the model itself: the fit recovers a good module
    /// from a poor one, and an untried module gets the pooled rate.
    #[test]
    fn recovers_module_rates_from_synthetic_chains() {
        let world = World::generate(&SimOptions::default());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (good, poor, untried) = (0usize, 1usize, 2usize);
        let truth = [0.7, 0.15];
        let mut traces = Vec::new();
        for _ in 0..400 {
            let mut trace = Trace::default();
            for skill in 0..4 {
                let mut known = rng.random_bool(0.2);
                for _ in 0..4 {
                    let m = if rng.random_bool(0.5) { good } else { poor };
                    if !known && rng.random_bool(truth[m]) {
                        known = true;
                    }
                    let correct = (0..3)
                        .filter(|_| {
                            if known {
                                !rng.random_bool(0.1)
                            } else {
                                rng.random_bool(0.2)
                            }
                        })
                        .count() as u32;
                    trace.push(
                        skill,
                        Step {
                            module: Some(m as u32),
                            correct,
                            items: 3,
                        },
                    );
                }
            }
            traces.push(trace);
        }
        let rates = fit_module_rates(&world, &traces);
        let rate = |i: usize| rates[&world.modules[i].id];
        assert!((rate(good) - 0.7).abs() < 0.08, "good {}", rate(good));
        assert!((rate(poor) - 0.15).abs() < 0.08, "poor {}", rate(poor));
        let pooled = rate(untried);
        assert!(pooled > rate(poor) && pooled < rate(good), "{pooled}");
        assert_eq!(rates.len(), world.modules.len());
        assert!(
            fit_module_rates(&world, &[]).is_empty(),
            "no data, no rates"
        );
    }
}
