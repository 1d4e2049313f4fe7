//! Baum-Welch EM for the two-state BKT hidden Markov model.
//!
//! The E-step is a scaled forward pass that stores only the filtered
//! P(known | answers so far) of each attempt, followed by a backward
//! (Rauch-Tung-Striebel style) smoothing pass that turns those into the
//! expected transition and emission counts without a separate beta table.
//! Both passes read a worker-owned buffer sized to the longest sequence, so
//! the inner loop never allocates. The variants are monomorphised (const
//! generics) so the classic model pays nothing for multilearn/multigs
//! indexing or for forgetting.
//!
//! The M-step is closed form. Every parameter appears in its own Bernoulli
//! term of the expected complete-data log-likelihood, so clamping the
//! closed-form value into its bounds is the exact constrained maximiser and
//! EM stays monotone (the tests check it).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use thiserror::Error;

use super::data::{Dataset, SkillData};
use super::variants::{Bounds, FitOptions, Fixed, Range, Variants};
use crate::domain::bkt::{Belief, BktParams, Observation};

/// Why a fit could not run.
#[derive(Debug, Error, PartialEq)]
pub enum FitError {
    /// There is no attempt to learn from.
    #[error("no attempts to fit")]
    Empty,
    /// An option is out of range (the message says which).
    #[error("invalid fit options: {0}")]
    InvalidOptions(String),
}

/// Parameters of one skill during EM, in the skill's local indexing:
/// `prior` per group, `learn` per template, `guess`/`slip` per item; each
/// vector has length 1 when its variant is off.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Theta {
    pub prior: Vec<f64>,
    pub learn: Vec<f64>,
    pub forget: f64,
    pub guess: Vec<f64>,
    pub slip: Vec<f64>,
}

/// Expected sufficient statistics of one E-step (same indexing as `Theta`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    /// Sum over sequences of P(known at the first attempt), per group.
    pub init_k: Vec<f64>,
    /// Expected unknown -> known transitions, per template.
    pub xi_uk: Vec<f64>,
    /// Expected P(known) summed over attempts that have a successor, per template.
    pub gk_trans: Vec<f64>,
    /// Expected known -> unknown transitions (forgetting).
    pub xi_ku: f64,
    /// Expected P(known) summed over attempts, per item.
    pub em_gk: Vec<f64>,
    /// Expected P(known) summed over correct attempts, per item.
    pub em_gk_right: Vec<f64>,
    /// Log-likelihood of the data under the parameters of this E-step.
    pub ll: f64,
}

/// Data counts aggregated to the indexing the variants use.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub v: Variants,
    /// Sequences per prior index.
    pub n_seq: Vec<f64>,
    /// Attempts with a successor, per learn index.
    pub n_trans: Vec<f64>,
    /// Attempts per item index.
    pub n_item: Vec<f64>,
    /// Correct attempts per item index.
    pub n_right: Vec<f64>,
    /// Forget is estimated (or pinned to a non-zero value).
    pub forgets: bool,
}

impl Shape {
    pub(crate) fn new(d: &SkillData, v: Variants, fixed: &Fixed) -> Self {
        let pool = |xs: &[f64], split: bool| {
            if split {
                xs.to_vec()
            } else {
                vec![xs.iter().sum()]
            }
        };
        Self {
            v,
            n_seq: pool(&d.group_count, v.multiprior),
            n_trans: pool(&d.tmpl_trans, v.multilearn),
            n_item: pool(&d.tmpl_count, v.multigs),
            n_right: pool(&d.tmpl_correct, v.multigs),
            forgets: match fixed.forget {
                Some(f) => f > 0.0,
                None => v.forgets,
            },
        }
    }

    fn zero_counts(&self) -> Counts {
        Counts {
            init_k: vec![0.0; self.n_seq.len()],
            xi_uk: vec![0.0; self.n_trans.len()],
            gk_trans: vec![0.0; self.n_trans.len()],
            xi_ku: 0.0,
            em_gk: vec![0.0; self.n_item.len()],
            em_gk_right: vec![0.0; self.n_item.len()],
            ll: 0.0,
        }
    }

    /// pyBKT-style random start: prior U(0,1), learn U(0,0.4), guess
    /// U(0,0.4), slip U(0,0.3), forget U(0,0.2) when forgetting (else 0),
    /// then clamped into bounds and overridden by pinned values.
    pub(crate) fn random_theta(&self, rng: &mut impl Rng, b: &Bounds, fx: &Fixed) -> Theta {
        let mut draw = |n: usize, hi: f64, range: Range, pin: Option<f64>| -> Vec<f64> {
            (0..n)
                .map(|_| pin.unwrap_or_else(|| clamp(rng.random::<f64>() * hi, range)))
                .collect()
        };
        let prior = draw(self.n_seq.len(), 1.0, b.prior, fx.prior);
        let learn = draw(self.n_trans.len(), 0.4, b.learn, fx.learn);
        let guess = draw(self.n_item.len(), 0.4, b.guess, fx.guess);
        let slip = draw(self.n_item.len(), 0.3, b.slip, fx.slip);
        let forget = match fx.forget {
            Some(f) => f,
            None if self.forgets => clamp(rng.random::<f64>() * 0.2, b.forget),
            None => 0.0,
        };
        Theta {
            prior,
            learn,
            forget,
            guess,
            slip,
        }
    }

    /// Closed-form M-step with clamping and pinned values.
    pub(crate) fn m_step(
        &self,
        counts: &Counts,
        theta: &mut Theta,
        bounds: &Bounds,
        fixed: &Fixed,
    ) {
        for (g, p) in theta.prior.iter_mut().enumerate() {
            *p = estimate(
                counts.init_k[g],
                self.n_seq[g],
                bounds.prior,
                fixed.prior,
                *p,
            );
        }
        let mut gk_total = 0.0;
        for (r, l) in theta.learn.iter_mut().enumerate() {
            gk_total += counts.gk_trans[r];
            let unknown = self.n_trans[r] - counts.gk_trans[r];
            *l = estimate(counts.xi_uk[r], unknown, bounds.learn, fixed.learn, *l);
        }
        theta.forget = if self.forgets {
            estimate(
                counts.xi_ku,
                gk_total,
                bounds.forget,
                fixed.forget,
                theta.forget,
            )
        } else {
            0.0
        };
        for i in 0..theta.guess.len() {
            let unknown = self.n_item[i] - counts.em_gk[i];
            let unknown_right = self.n_right[i] - counts.em_gk_right[i];
            theta.guess[i] = estimate(
                unknown_right,
                unknown,
                bounds.guess,
                fixed.guess,
                theta.guess[i],
            );
            let wrong_known = counts.em_gk[i] - counts.em_gk_right[i];
            theta.slip[i] = estimate(
                wrong_known,
                counts.em_gk[i],
                bounds.slip,
                fixed.slip,
                theta.slip[i],
            );
        }
    }
}

fn clamp(x: f64, (lo, hi): Range) -> f64 {
    x.clamp(lo, hi)
}

/// `num / den` clamped into `range`, or the pinned value, or `old` when there
/// is no evidence (`den` ~ 0, e.g. a template never followed by an attempt).
fn estimate(num: f64, den: f64, range: Range, pin: Option<f64>, old: f64) -> f64 {
    match pin {
        Some(v) => v,
        None if den > 1e-12 => clamp(num / den, range),
        None => old,
    }
}

const TINY: f64 = f64::MIN_POSITIVE;

fn reset(c: &mut Counts) {
    for v in [
        &mut c.init_k,
        &mut c.xi_uk,
        &mut c.gk_trans,
        &mut c.em_gk,
        &mut c.em_gk_right,
    ] {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    c.xi_ku = 0.0;
    c.ll = 0.0;
}

/// What one E-step reads: a skill's data, its shape and the parameters.
/// Bundled so that the dispatch and the monomorphised kernels share one
/// short signature; three references, passed by value.
#[derive(Clone, Copy)]
pub(crate) struct EStep<'a> {
    pub data: &'a SkillData,
    pub shape: &'a Shape,
    pub theta: &'a Theta,
}

impl EStep<'_> {
    /// One E-step over the skill: fills `c` and returns the log-likelihood.
    /// `filt` must hold at least `data.max_len` values.
    pub(crate) fn run(self, c: &mut Counts, filt: &mut [f64]) -> f64 {
        let s = self.shape;
        match (s.v.multilearn, s.v.multigs, s.forgets) {
            (false, false, false) => kernel::<false, false, false>(self, c, filt),
            (false, false, true) => kernel::<false, false, true>(self, c, filt),
            (false, true, false) => kernel::<false, true, false>(self, c, filt),
            (false, true, true) => kernel::<false, true, true>(self, c, filt),
            (true, false, false) => kernel::<true, false, false>(self, c, filt),
            (true, false, true) => kernel::<true, false, true>(self, c, filt),
            (true, true, false) => kernel::<true, true, false>(self, c, filt),
            (true, true, true) => kernel::<true, true, true>(self, c, filt),
        }
    }
}

/// The E-step for one variant: `ML` multilearn, `GS` multigs, `FG`
/// forgetting, so the classic model pays for none of them.
#[inline(always)]
fn kernel<const ML: bool, const GS: bool, const FG: bool>(
    step: EStep<'_>,
    c: &mut Counts,
    filt: &mut [f64],
) -> f64 {
    let EStep {
        data: d,
        shape: s,
        theta: th,
    } = step;
    reset(c);
    let obs = d.obs.as_slice().expect("contiguous");
    let tmpl = d.tmpl.as_slice().expect("contiguous");
    let starts = d.starts.as_slice().expect("contiguous");
    let groups = d.seq_group.as_slice().expect("contiguous");
    let mp = s.v.multiprior;
    let f = th.forget;
    let (l0, g0, s0) = (th.learn[0], th.guess[0], th.slip[0]);
    let mut ll = 0.0;
    let mut xi_ku = 0.0;
    // Accumulators of the non-indexed case stay in registers.
    let (mut xi_uk0, mut gk_trans0, mut em_gk0, mut em_right0) = (0.0, 0.0, 0.0, 0.0);

    for seq in 0..starts.len() - 1 {
        let (a, b) = (starts[seq] as usize, starts[seq + 1] as usize);
        let len = b - a;
        let o = &obs[a..b];
        let tm = &tmpl[a..b];
        let fl = &mut filt[..len];
        let gi = if mp { groups[seq] as usize } else { 0 };

        // Forward: fl[t] = P(known at t | answers 0..=t). The recursion runs
        // on the unnormalised pair (unknown, known), which is linear: the
        // only division (the normalisation into fl[t]) stays off the
        // loop-carried dependency chain. The pair is rescaled (and the scale
        // logged) only when it nears underflow, so ln is rare too.
        let mut k = th.prior[gi];
        let mut u = 1.0 - k;
        let mut den = 1.0;
        for t in 0..len {
            let (g, sl) = if GS {
                let i = tm[t] as usize;
                (th.guess[i], th.slip[i])
            } else {
                (g0, s0)
            };
            let right = o[t] != 0;
            let lk = if right { 1.0 - sl } else { sl };
            let lu = if right { g } else { 1.0 - g };
            let mut ak = k * lk;
            let mut au = u * lu;
            den = ak + au;
            if den < 1e-150 {
                ll += den.max(TINY).ln();
                let inv = 1.0 / den.max(TINY);
                ak *= inv;
                au *= inv;
                den = 1.0;
            }
            fl[t] = ak / den;
            let l = if ML { th.learn[tm[t] as usize] } else { l0 };
            if FG {
                k = ak * (1.0 - f) + au * l;
                u = ak * f + au * (1.0 - l);
            } else {
                k = ak + au * l;
                u = au * (1.0 - l);
            }
        }
        ll += den.max(TINY).ln();

        // Backward smoothing: gk = P(known at t | all answers).
        let mut gk = fl[len - 1];
        {
            let t = len - 1;
            let right = f64::from(o[t]);
            if GS {
                let i = tm[t] as usize;
                c.em_gk[i] += gk;
                c.em_gk_right[i] += gk * right;
            } else {
                em_gk0 += gk;
                em_right0 += gk * right;
            }
        }
        for t in (0..len - 1).rev() {
            let post = fl[t];
            let r = tm[t] as usize;
            let l = if ML { th.learn[r] } else { l0 };
            let stay = if FG { post * (1.0 - f) } else { post };
            let pk = stay + (1.0 - post) * l;
            // Reciprocals first: they do not depend on `gk`, so only two
            // multiplications sit on the loop-carried chain.
            let rk = gk * (1.0 / pk.max(TINY));
            let xi_uk = (1.0 - post) * l * rk;
            let gk_t = if FG {
                let ru = (1.0 - gk) * (1.0 / (1.0 - pk).max(TINY));
                let ku = post * f * ru;
                xi_ku += ku;
                stay * rk + ku
            } else {
                stay * rk
            };
            let right = f64::from(o[t]);
            if ML {
                c.xi_uk[r] += xi_uk;
                c.gk_trans[r] += gk_t;
            } else {
                xi_uk0 += xi_uk;
                gk_trans0 += gk_t;
            }
            if GS {
                c.em_gk[r] += gk_t;
                c.em_gk_right[r] += gk_t * right;
            } else {
                em_gk0 += gk_t;
                em_right0 += gk_t * right;
            }
            gk = gk_t;
        }
        c.init_k[gi] += gk;
    }
    if !ML {
        c.xi_uk[0] += xi_uk0;
        c.gk_trans[0] += gk_trans0;
    }
    if !GS {
        c.em_gk[0] += em_gk0;
        c.em_gk_right[0] += em_right0;
    }
    c.xi_ku = xi_ku;
    c.ll = ll;
    ll
}

/// Result of EM from one starting point.
#[derive(Debug, Clone)]
pub(crate) struct EmRun {
    pub theta: Theta,
    pub ll: f64,
    /// Log-likelihood after each E-step (non-decreasing, up to rounding).
    pub trace: Vec<f64>,
    pub converged: bool,
}

/// Runs EM from `theta` until the per-attempt gain drops below the
/// tolerance or the cap is hit. The returned `ll` is that of the returned
/// parameters (the loop stops right after an E-step, as pyBKT's does).
pub(crate) fn run_em(
    d: &SkillData,
    s: &Shape,
    mut theta: Theta,
    opts: &FitOptions,
    fixed: &Fixed,
    filt: &mut Vec<f64>,
) -> EmRun {
    if filt.len() < d.max_len {
        filt.resize(d.max_len, 0.0);
    }
    let mut counts = s.zero_counts();
    let threshold = opts.tolerance * d.len() as f64;
    let mut trace = Vec::with_capacity(opts.max_iter);
    let mut converged = false;
    for it in 0..opts.max_iter.max(1) {
        let ll = EStep {
            data: d,
            shape: s,
            theta: &theta,
        }
        .run(&mut counts, filt);
        trace.push(ll);
        if it > 0 && ll - trace[it - 1] < threshold {
            converged = true;
            break;
        }
        if it + 1 == opts.max_iter.max(1) {
            break;
        }
        s.m_step(&counts, &mut theta, &opts.bounds, fixed);
    }
    EmRun {
        theta,
        ll: *trace.last().expect("at least one E-step"),
        trace,
        converged,
    }
}

/// Best EM result of one skill, plus what is needed to name its parameters.
#[derive(Debug, Clone)]
pub(crate) struct SkillFit {
    pub skill: u32,
    pub theta: Theta,
    pub shape: Shape,
    pub ll: f64,
    pub iterations: usize,
    pub converged: bool,
    pub attempts: usize,
    pub tmpl_names: Vec<Option<u32>>,
    pub group_names: Vec<Option<u32>>,
}

impl SkillFit {
    /// Count-weighted averages of the indexed parameters: the skill's
    /// summary parameters, and the fallback for unseen templates / groups.
    pub(crate) fn base(&self) -> (f64, f64, f64, f64, f64) {
        let wavg = |xs: &[f64], w: &[f64]| {
            let tw: f64 = w.iter().sum();
            if tw > 0.0 {
                xs.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / tw
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        };
        let s = &self.shape;
        (
            wavg(&self.theta.prior, &s.n_seq),
            wavg(&self.theta.learn, &s.n_trans),
            self.theta.forget,
            wavg(&self.theta.guess, &s.n_item),
            wavg(&self.theta.slip, &s.n_item),
        )
    }

    /// This fit's parameters re-indexed for another layout of the same skill
    /// (cross-validation: test learners see templates in another order);
    /// unseen templates / groups get the count-weighted average.
    pub(crate) fn align_to(&self, d: &SkillData) -> Theta {
        let (prior, learn, forget, guess, slip) = self.base();
        let lookup = |names: &[Option<u32>], values: &[f64], name: Option<u32>, dflt: f64| {
            names
                .iter()
                .position(|n| *n == name)
                .map_or(dflt, |i| values[i])
        };
        let v = self.shape.v;
        let by_tmpl = |values: &[f64], split: bool, dflt: f64| -> Vec<f64> {
            if split {
                d.tmpl_names
                    .iter()
                    .map(|n| lookup(&self.tmpl_names, values, *n, dflt))
                    .collect()
            } else {
                vec![values[0]]
            }
        };
        Theta {
            prior: if v.multiprior {
                d.group_names
                    .iter()
                    .map(|n| lookup(&self.group_names, &self.theta.prior, *n, prior))
                    .collect()
            } else {
                vec![self.theta.prior[0]]
            },
            learn: by_tmpl(&self.theta.learn, v.multilearn, learn),
            forget,
            guess: by_tmpl(&self.theta.guess, v.multigs, guess),
            slip: by_tmpl(&self.theta.slip, v.multigs, slip),
        }
    }
}

fn check_range(name: &str, (lo, hi): Range) -> Result<(), FitError> {
    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
        return Err(FitError::InvalidOptions(format!(
            "bounds of {name} must satisfy 0 <= min <= max <= 1, got ({lo}, {hi})"
        )));
    }
    Ok(())
}

fn check_fixed(fx: &Fixed) -> Result<(), FitError> {
    for (name, v) in [
        ("prior", fx.prior),
        ("learn", fx.learn),
        ("forget", fx.forget),
        ("guess", fx.guess),
        ("slip", fx.slip),
    ] {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            return Err(FitError::InvalidOptions(format!(
                "fixed {name} must be a probability, got {v}"
            )));
        }
    }
    Ok(())
}

pub(crate) fn validate(opts: &FitOptions) -> Result<(), FitError> {
    if opts.restarts == 0 {
        return Err(FitError::InvalidOptions(
            "restarts must be at least 1".into(),
        ));
    }
    if opts.max_iter == 0 {
        return Err(FitError::InvalidOptions(
            "max_iter must be at least 1".into(),
        ));
    }
    if !(opts.tolerance.is_finite() && opts.tolerance >= 0.0) {
        return Err(FitError::InvalidOptions("tolerance must be >= 0".into()));
    }
    let b = &opts.bounds;
    for (name, r) in [
        ("prior", b.prior),
        ("learn", b.learn),
        ("forget", b.forget),
        ("guess", b.guess),
        ("slip", b.slip),
    ] {
        check_range(name, r)?;
    }
    check_fixed(&opts.fixed)?;
    opts.fixed_per_skill.values().try_for_each(check_fixed)
}

/// Seed of restart `r` of a skill, from the skill's *name* so that a skill
/// gets the same starts whatever other skills the data holds (CV folds).
fn restart_seed(seed: u64, skill: &str, restart: usize) -> u64 {
    let h = crate::domain::hashing::fnv1a(skill);
    splitmix(seed ^ splitmix(h ^ (restart as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

pub(crate) use crate::domain::hashing::splitmix;

/// Fits every skill of a layout: (skill, restart) pairs run in parallel on
/// the rayon pool, each worker reusing one forward buffer.
pub(crate) fn fit_layout(
    ds: &Dataset,
    layout: &[SkillData],
    opts: &FitOptions,
) -> Vec<Option<SkillFit>> {
    let tasks: Vec<(usize, usize)> = layout
        .iter()
        .enumerate()
        .filter(|(_, d)| d.len() > 0)
        .flat_map(|(s, _)| (0..opts.restarts).map(move |r| (s, r)))
        .collect();
    let shapes: Vec<(Shape, Fixed)> = layout
        .iter()
        .map(|d| {
            let fx = opts.fixed_for(ds.skill_name(d.skill));
            (Shape::new(d, opts.variants, &fx), fx)
        })
        .collect();
    let runs: Vec<(usize, usize, EmRun)> = tasks
        .par_iter()
        .map_init(Vec::new, |buf, &(s, r)| {
            let d = &layout[s];
            let (shape, fx) = &shapes[s];
            let mut rng =
                ChaCha8Rng::seed_from_u64(restart_seed(opts.seed, ds.skill_name(d.skill), r));
            let theta = shape.random_theta(&mut rng, &opts.bounds, fx);
            (s, r, run_em(d, shape, theta, opts, fx, buf))
        })
        .collect();
    let mut best: Vec<Option<EmRun>> = vec![None; layout.len()];
    for (s, _, run) in runs {
        // `runs` is in task order, so ties keep the earliest restart.
        if best[s].as_ref().is_none_or(|b| run.ll > b.ll) {
            best[s] = Some(run);
        }
    }
    best.into_iter()
        .zip(layout)
        .zip(shapes)
        .map(|((run, d), (shape, _))| {
            run.map(|run| SkillFit {
                skill: d.skill,
                iterations: run.trace.len(),
                converged: run.converged,
                theta: run.theta,
                shape,
                ll: run.ll,
                attempts: d.len(),
                tmpl_names: d.tmpl_names.clone(),
                group_names: d.group_names.clone(),
            })
        })
        .collect()
}

/// P(correct) of every attempt of `d` before it is observed (forward pass
/// only), appended to `out` with the observed answer. The filter runs on
/// `bkt::Belief` (log-odds), as live mastery does: a P(known) carried as one
/// number rounds to 1.0 after a long run of right answers and then predicts
/// every later answer from 1.0, whatever the wrong answers in between.
pub(crate) fn predict_layout(d: &SkillData, v: Variants, th: &Theta, out: &mut Vec<(f64, u8)>) {
    let obs = d.obs.as_slice().expect("contiguous");
    let tmpl = d.tmpl.as_slice().expect("contiguous");
    let starts = d.starts.as_slice().expect("contiguous");
    for seq in 0..d.num_sequences() {
        let gi = if v.multiprior {
            d.seq_group[seq] as usize
        } else {
            0
        };
        let mut belief = Belief::from_p_known(th.prior[gi]);
        for t in starts[seq] as usize..starts[seq + 1] as usize {
            let r = tmpl[t] as usize;
            let i = if v.multigs { r } else { 0 };
            let p = BktParams {
                prior: th.prior[gi],
                learn: th.learn[if v.multilearn { r } else { 0 }],
                guess: th.guess[i],
                slip: th.slip[i],
                forget: th.forget,
            };
            out.push((p.p_correct(belief), obs[t]));
            let answer = Observation {
                correct: obs[t] != 0,
                score: None,
            };
            belief = p.update(belief, answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fit::data::AttemptRecord;

    fn dataset(seqs: &[(&str, &[(bool, &str)])]) -> Dataset {
        let mut ds = Dataset::new();
        for (learner, answers) in seqs {
            for (correct, tmpl) in answers.iter() {
                ds.push(AttemptRecord {
                    learner,
                    skill: "s",
                    correct: *correct,
                    template: Some(tmpl),
                    group: Some(if learner.starts_with('a') { "g1" } else { "g2" }),
                    timestamp: None,
                });
            }
        }
        ds
    }

    /// Predictions keep falling through wrong answers after a run of right
    /// ones long enough to round P(known) to 1.0 (the CV scores these).
    #[test]
    fn predictions_fall_after_a_long_run_of_right_answers() {
        let mut answers = vec![(true, "x"); 25];
        answers.extend(vec![(false, "x"); 40]);
        let ds = dataset(&[("a1", &answers)]);
        let d = &ds.layout(None)[0];
        let th = Theta {
            prior: vec![0.4],
            learn: vec![0.2],
            forget: 0.0,
            guess: vec![0.15],
            slip: vec![0.08],
        };
        let mut out = Vec::new();
        predict_layout(d, Variants::default(), &th, &mut out);
        assert_eq!(
            out[25].0, 0.92,
            "predicted from a P(known) that rounds to 1.0"
        );
        let wrong: Vec<f64> = out[25..].iter().map(|p| p.0).collect();
        assert!(wrong.windows(2).all(|w| w[1] <= w[0]), "{wrong:?}");
        assert!(wrong[39] < 0.5, "{}", wrong[39]);
    }

    fn small() -> Dataset {
        dataset(&[
            (
                "a1",
                &[(false, "x"), (true, "y"), (true, "x"), (false, "y")],
            ),
            ("b1", &[(true, "y"), (false, "x"), (true, "x")]),
            (
                "a2",
                &[
                    (false, "x"),
                    (false, "x"),
                    (true, "y"),
                    (true, "y"),
                    (true, "x"),
                ],
            ),
        ])
    }

    /// Brute force: enumerate all hidden paths of every sequence.
    fn brute(d: &SkillData, s: &Shape, th: &Theta) -> Counts {
        let mut c = s.zero_counts();
        for seq in 0..d.num_sequences() {
            let (a, b) = (d.starts[seq] as usize, d.starts[seq + 1] as usize);
            let len = b - a;
            let gi = if s.v.multiprior {
                d.seq_group[seq] as usize
            } else {
                0
            };
            let mut total = 0.0;
            let mut acc = s.zero_counts();
            for path in 0..(1u32 << len) {
                let known = |t: usize| (path >> t) & 1 == 1;
                let mut p = if known(0) {
                    th.prior[gi]
                } else {
                    1.0 - th.prior[gi]
                };
                for t in 0..len {
                    let r = d.tmpl[a + t] as usize;
                    let i = if s.v.multigs { r } else { 0 };
                    let right = d.obs[a + t] == 1;
                    p *= match (known(t), right) {
                        (true, true) => 1.0 - th.slip[i],
                        (true, false) => th.slip[i],
                        (false, true) => th.guess[i],
                        (false, false) => 1.0 - th.guess[i],
                    };
                    if t + 1 < len {
                        let l = th.learn[if s.v.multilearn { r } else { 0 }];
                        p *= match (known(t), known(t + 1)) {
                            (false, true) => l,
                            (false, false) => 1.0 - l,
                            (true, false) => th.forget,
                            (true, true) => 1.0 - th.forget,
                        };
                    }
                }
                total += p;
                if known(0) {
                    acc.init_k[gi] += p;
                }
                for t in 0..len {
                    let r = d.tmpl[a + t] as usize;
                    let i = if s.v.multigs { r } else { 0 };
                    let lr = if s.v.multilearn { r } else { 0 };
                    if known(t) {
                        acc.em_gk[i] += p;
                        if d.obs[a + t] == 1 {
                            acc.em_gk_right[i] += p;
                        }
                    }
                    if t + 1 < len {
                        if known(t) {
                            acc.gk_trans[lr] += p;
                            if !known(t + 1) {
                                acc.xi_ku += p;
                            }
                        } else if known(t + 1) {
                            acc.xi_uk[lr] += p;
                        }
                    }
                }
            }
            c.ll += total.ln();
            let add = |dst: &mut Vec<f64>, src: &Vec<f64>| {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s / total);
            };
            add(&mut c.init_k, &acc.init_k);
            add(&mut c.xi_uk, &acc.xi_uk);
            add(&mut c.gk_trans, &acc.gk_trans);
            add(&mut c.em_gk, &acc.em_gk);
            add(&mut c.em_gk_right, &acc.em_gk_right);
            c.xi_ku += acc.xi_ku / total;
        }
        c
    }

    /// One E-step from zeroed counts; `ll` of the result is its log-likelihood.
    fn e_step(d: &SkillData, s: &Shape, th: &Theta) -> Counts {
        let mut c = s.zero_counts();
        let step = EStep {
            data: d,
            shape: s,
            theta: th,
        };
        let ll = step.run(&mut c, &mut vec![0.0; d.max_len]);
        assert_eq!(ll, c.ll);
        c
    }

    fn assert_close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-10, "{a:?} != {b:?}");
        }
    }

    /// Variant set number `bits` of the 16: one bit per option.
    fn variants(bits: u8) -> Variants {
        Variants {
            forgets: bits & 1 != 0,
            multilearn: bits & 2 != 0,
            multigs: bits & 4 != 0,
            multiprior: bits & 8 != 0,
        }
    }

    #[test]
    fn forward_backward_matches_brute_force_in_every_variant() {
        let ds = small();
        let d = &ds.layout(None)[0];
        for bits in 0..16u8 {
            let v = variants(bits);
            let s = Shape::new(d, v, &Fixed::default());
            let mut rng = ChaCha8Rng::seed_from_u64(u64::from(bits));
            let th = s.random_theta(&mut rng, &Bounds::default(), &Fixed::default());
            let c = e_step(d, &s, &th);
            let ll = c.ll;
            let bf = brute(d, &s, &th);
            assert!((ll - bf.ll).abs() < 1e-10, "{v:?}: {ll} vs {}", bf.ll);
            assert_close(&c.init_k, &bf.init_k);
            assert_close(&c.xi_uk, &bf.xi_uk);
            assert_close(&c.gk_trans, &bf.gk_trans);
            assert_close(&c.em_gk, &bf.em_gk);
            assert_close(&c.em_gk_right, &bf.em_gk_right);
            assert!((c.xi_ku - bf.xi_ku).abs() < 1e-10);
        }
    }

    #[test]
    fn hand_checked_single_attempt() {
        // One correct answer: L = prior*(1-slip) + (1-prior)*guess.
        let ds = dataset(&[("a", &[(true, "x")])]);
        let d = &ds.layout(None)[0];
        let s = Shape::new(d, Variants::default(), &Fixed::default());
        let th = Theta {
            prior: vec![0.3],
            learn: vec![0.1],
            forget: 0.0,
            guess: vec![0.2],
            slip: vec![0.1],
        };
        let c = e_step(d, &s, &th);
        let ll = c.ll;
        let l = 0.3 * 0.9 + 0.7 * 0.2;
        assert!((ll - f64::ln(l)).abs() < 1e-12);
        // Posterior P(known) = 0.27 / 0.41, the value bkt.rs computes.
        assert!((c.init_k[0] - 0.27 / 0.41).abs() < 1e-12);
    }

    #[test]
    fn long_sequences_rescale_and_agree_with_bkt_rs() {
        // 3000 attempts drive the unnormalised forward pair far below 1e-150,
        // so the rescaling path runs; the log-likelihood must still equal the
        // sum of ln P(answer | earlier answers) traced with bkt.rs.
        use crate::domain::bkt::{BktParams, Observation};
        let answers: Vec<(bool, &str)> =
            (0..3000).map(|i| (i % 7 != 0 && i % 5 != 1, "x")).collect();
        let ds = dataset(&[("a", &answers)]);
        let d = &ds.layout(None)[0];
        let v = Variants {
            forgets: true,
            ..Variants::default()
        };
        let s = Shape::new(d, v, &Fixed::default());
        let p = BktParams {
            prior: 0.3,
            learn: 0.1,
            guess: 0.2,
            slip: 0.1,
            forget: 0.05,
        };
        let th = Theta {
            prior: vec![p.prior],
            learn: vec![p.learn],
            forget: p.forget,
            guess: vec![p.guess],
            slip: vec![p.slip],
        };
        let c = e_step(d, &s, &th);
        let ll = c.ll;
        let mut known = p.prior_belief();
        let mut want = 0.0;
        for &(correct, _) in &answers {
            let pc = p.p_correct(known);
            want += if correct { pc.ln() } else { (1.0 - pc).ln() };
            known = p.update(
                known,
                Observation {
                    correct,
                    score: None,
                },
            );
        }
        assert!(
            want < -150.0 * std::f64::consts::LN_10,
            "rescaling not exercised"
        );
        assert!((ll - want).abs() < 1e-8 * want.abs(), "{ll} vs {want}");
        // Smoothed P(known) stays a probability everywhere.
        assert!((0.0..=1.0).contains(&c.init_k[0]));
        assert!(c.em_gk[0] <= 3000.0 && c.em_gk[0] >= 0.0);
    }

    #[test]
    fn em_log_likelihood_never_decreases() {
        let ds = small();
        let d = &ds.layout(None)[0];
        for bits in 0..16u8 {
            let v = variants(bits);
            let opts = FitOptions {
                variants: v,
                tolerance: 0.0,
                max_iter: 60,
                ..FitOptions::default()
            };
            let s = Shape::new(d, v, &opts.fixed);
            for seed in 0..5 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let th = s.random_theta(&mut rng, &opts.bounds, &opts.fixed);
                let run = run_em(d, &s, th, &opts, &opts.fixed, &mut Vec::new());
                assert!(run.trace.len() > 1);
                for w in run.trace.windows(2) {
                    assert!(w[1] >= w[0] - 1e-9, "{v:?} seed {seed}: {:?}", run.trace);
                }
            }
        }
    }

    #[test]
    fn bounds_and_pinned_values_hold() {
        let ds = small();
        let d = &ds.layout(None)[0];
        let opts = FitOptions {
            variants: Variants {
                multigs: true,
                ..Variants::default()
            },
            fixed: Fixed {
                learn: Some(0.123),
                ..Fixed::default()
            },
            bounds: Bounds {
                slip: (0.05, 0.1),
                ..Bounds::default()
            },
            ..FitOptions::default()
        };
        let s = Shape::new(d, opts.variants, &opts.fixed);
        let th = s.random_theta(&mut ChaCha8Rng::seed_from_u64(1), &opts.bounds, &opts.fixed);
        let run = run_em(d, &s, th, &opts, &opts.fixed, &mut Vec::new());
        assert_eq!(run.theta.learn, vec![0.123]);
        assert!(run.theta.slip.iter().all(|&x| (0.05..=0.1).contains(&x)));
        assert!(run.theta.guess.iter().all(|&x| x < 0.5));
        assert_eq!(run.theta.forget, 0.0);
    }

    #[test]
    fn invalid_options_are_refused() {
        let bad = FitOptions {
            restarts: 0,
            ..FitOptions::default()
        };
        assert!(validate(&bad).is_err());
        let bad = FitOptions {
            fixed: Fixed {
                guess: Some(1.5),
                ..Fixed::default()
            },
            ..FitOptions::default()
        };
        assert!(validate(&bad).is_err());
        assert!(validate(&FitOptions::default()).is_ok());
    }
}
