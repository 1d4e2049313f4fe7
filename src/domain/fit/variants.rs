//! What a fit may vary: pyBKT's model variants, parameter bounds, pinned
//! values and the EM knobs, gathered in [`FitOptions`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which BKT variants a fit uses; each is independent of the others.
///
/// These mirror pyBKT's `forgets`, `multilearn`, `multigs` and `multiprior`
/// switches, so a model fitted here can be compared one-to-one with pyBKT's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variants {
    /// Fit P(F) (forgetting); otherwise it stays 0 (classic BKT).
    pub forgets: bool,
    /// One learn rate per template: the transition after an attempt uses the
    /// rate of the template (module) of that attempt.
    pub multilearn: bool,
    /// One guess and slip per template (item), used by that attempt's emission.
    pub multigs: bool,
    /// One prior per group (company, cohort) of the learner.
    pub multiprior: bool,
}

/// Closed interval `[min, max]` a parameter is clamped into after every M-step.
pub type Range = (f64, f64);

/// Bounds of each parameter.
///
/// Why: guess and slip above 0.5 make a correct answer evidence of *not*
/// knowing (the model degenerates into its mirror image); tiny margins away
/// from 0 and 1 keep the forward-backward recursion free of 0/0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Range of P(L0).
    pub prior: Range,
    /// Range of P(T).
    pub learn: Range,
    /// Range of P(F) (only used with [`Variants::forgets`]).
    pub forget: Range,
    /// Range of P(G).
    pub guess: Range,
    /// Range of P(S).
    pub slip: Range,
}

const EPS: f64 = 1e-6;

impl Default for Bounds {
    fn default() -> Self {
        Self {
            prior: (EPS, 1.0 - EPS),
            learn: (EPS, 1.0 - EPS),
            forget: (EPS, 1.0 - EPS),
            guess: (EPS, 0.5 - EPS),
            slip: (EPS, 0.5 - EPS),
        }
    }
}

impl Bounds {
    /// The plausibility bounds of a model that decides mastery: guess at
    /// most 0.3 and slip at most 0.1 (Corbett and Anderson's bounds).
    ///
    /// Why: BKT's likelihood has a degenerate optimum where knowledge is
    /// explained as guessing (a low prior and a guess near 0.4). It
    /// predicts answers about as well, but under it five right answers in
    /// a row leave a skill unmastered, so the engine teaches what learners
    /// already know. In `spoc simulate`'s non-BKT world (BENCHMARKS.md,
    /// issue 18) a `FitModel` without these bounds fitted guess 0.39, slip
    /// 0.11 and made the median learner 3-6% slower than no fit at all;
    /// with them, every figure beat no fit. `spoc fit` keeps pyBKT's wider
    /// bounds: it is compared with pyBKT.
    pub fn for_mastery() -> Self {
        Self {
            guess: (EPS, 0.3),
            slip: (EPS, 0.1),
            ..Self::default()
        }
    }
}

/// Values pinned by the caller: a `Some` is never re-estimated.
///
/// Why: course authors often know a guess rate (e.g. 0.25 for four-choice
/// questions) or want a zero prior; pinning it removes a degree of freedom
/// and makes the others better determined. With multilearn / multigs /
/// multiprior a pinned value applies to every template / item / group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Fixed {
    /// Pinned P(L0).
    pub prior: Option<f64>,
    /// Pinned P(T).
    pub learn: Option<f64>,
    /// Pinned P(F) (overrides `forgets = false` too).
    pub forget: Option<f64>,
    /// Pinned P(G).
    pub guess: Option<f64>,
    /// Pinned P(S).
    pub slip: Option<f64>,
}

impl Fixed {
    /// `self` with the unset values taken from `fallback`.
    pub fn or(self, fallback: Fixed) -> Fixed {
        Fixed {
            prior: self.prior.or(fallback.prior),
            learn: self.learn.or(fallback.learn),
            forget: self.forget.or(fallback.forget),
            guess: self.guess.or(fallback.guess),
            slip: self.slip.or(fallback.slip),
        }
    }
}

/// Everything that shapes a fit. `Default` matches pyBKT's defaults
/// (5 restarts, 100 iterations) with a tolerance scaled to the data size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Model variants.
    pub variants: Variants,
    /// Random restarts per skill; the best log-likelihood wins. EM only finds
    /// a local optimum, and BKT's likelihood has several.
    pub restarts: usize,
    /// Iteration cap per restart.
    pub max_iter: usize,
    /// Convergence: stop when the log-likelihood improves by less than
    /// `tolerance` per attempt (i.e. `tolerance * attempts` in total), so the
    /// criterion means the same on 1k and 1M attempts.
    pub tolerance: f64,
    /// Seed of the random restarts (and nothing else): same seed, same fit.
    pub seed: u64,
    /// Parameter bounds.
    pub bounds: Bounds,
    /// Values pinned for every skill.
    pub fixed: Fixed,
    /// Values pinned for one skill (by name); they override `fixed`.
    pub fixed_per_skill: BTreeMap<String, Fixed>,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            variants: Variants::default(),
            restarts: 5,
            max_iter: 100,
            tolerance: 1e-6,
            seed: 42,
            bounds: Bounds::default(),
            fixed: Fixed::default(),
            fixed_per_skill: BTreeMap::new(),
        }
    }
}

impl FitOptions {
    /// The options of `FitModel`, the fit whose parameters decide mastery:
    /// `variants`, `restarts` and `seed` as asked, within
    /// [`Bounds::for_mastery`].
    pub fn for_mastery(variants: Variants, restarts: usize, seed: u64) -> Self {
        Self {
            variants,
            restarts,
            seed,
            bounds: Bounds::for_mastery(),
            ..Self::default()
        }
    }

    /// The pinned values that apply to `skill`.
    pub fn fixed_for(&self, skill: &str) -> Fixed {
        self.fixed_per_skill
            .get(skill)
            .copied()
            .unwrap_or_default()
            .or(self.fixed)
    }
}
