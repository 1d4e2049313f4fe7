//! Exchange local search: swap learners between pairs of cohorts while the
//! objective improves and every hard constraint keeps holding.
//!
//! Each round pairs up the cohorts of a block (a random perfect matching;
//! for leveled cohorts, neighbours along a random direction) and improves
//! every pair independently: for each member of one cohort, the best swap
//! with a member of the other. A swap only moves learners between two
//! cohorts of the same block, so language and time zone hold by
//! construction, sizes never change, and the company cap is checked in
//! O(1) from per-cohort company counts. With per-cohort feature sums the
//! cost change of a candidate swap is `G_j - G_i + sum_k h_k (f_jk - f_ik)^2`
//! (see [`objective`](super::objective)): O(features), no recomputation. A
//! round costs O(n * cohort size * features), linear in the number of
//! learners. Pairs of a round are disjoint, so they run in parallel with
//! rayon and the result still depends only on the seed.
//!
//! Pairwise exchange conserves each pair's total, so rounds act like
//! gossip averaging of cohort deviations: the spread shrinks geometrically.
//! A polishing phase then re-weights the cohorts with the largest remaining
//! deviations (iteratively re-weighted least squares towards the max-min
//! gap that managers look at).

use std::ops::Range;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::objective::Scale;
use super::plan::Plan;
use super::{CohortConstraints, CohortLearner, Objective};

/// Company index of learners whose company is unknown: never capped.
pub const NO_COMPANY: u32 = u32::MAX;

/// Members of each new cohort, as local learner indices of a [`Problem`].
pub type Assignment = Vec<Vec<u32>>;

/// A block of the plan, in local indices.
#[derive(Debug, Clone)]
pub struct BlockInfo {
    /// Local learner indices of the block (contiguous).
    pub learners: Range<usize>,
    /// Indices of its cohorts in the assignment (contiguous).
    pub cohorts: Range<usize>,
    /// Sizes of those cohorts.
    pub sizes: Vec<usize>,
    /// Distinct (known) companies in the block.
    pub companies: usize,
}

/// The planned problem in dense form: learners renumbered block by block,
/// features precomputed, companies as small integers.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    /// The population.
    pub learners: &'a [CohortLearner],
    /// The hard rules.
    pub cons: CohortConstraints,
    /// What is optimised.
    pub objective: Objective,
    /// Number of skills.
    pub skills: usize,
    /// Features per learner.
    pub dim: usize,
    /// Local index to population index.
    pub global: Vec<usize>,
    /// Features, `dim` per local learner.
    pub feats: Vec<f64>,
    /// Block-local company index per local learner, or [`NO_COMPANY`].
    pub company: Vec<u32>,
    /// Blocks with their cohort ranges.
    pub blocks: Vec<BlockInfo>,
    /// Company cap of each cohort.
    pub caps: Vec<u32>,
}

impl<'a> Problem<'a> {
    /// Lays out a plan for the search.
    pub fn new(
        learners: &'a [CohortLearner],
        plan: &Plan,
        scale: &Scale,
        objective: Objective,
        cons: &CohortConstraints,
    ) -> Problem<'a> {
        let skills = scale.mean.len();
        let dim = scale.dim(objective);
        let mut global = Vec::new();
        let mut company = Vec::new();
        let mut blocks = Vec::new();
        let mut caps = Vec::new();
        let mut ncoh = 0;
        for b in &plan.blocks {
            let start = global.len();
            let mut names: Vec<&str> = b
                .learners
                .iter()
                .map(|&i| learners[i].company.as_str())
                .filter(|c| !c.is_empty())
                .collect();
            names.sort_unstable();
            names.dedup();
            for &i in &b.learners {
                global.push(i);
                let c = learners[i].company.as_str();
                company.push(if c.is_empty() {
                    NO_COMPANY
                } else {
                    names.binary_search(&c).expect("collected above") as u32
                });
            }
            caps.extend(b.sizes.iter().map(|&s| cons.company_cap(s) as u32));
            blocks.push(BlockInfo {
                learners: start..global.len(),
                cohorts: ncoh..ncoh + b.sizes.len(),
                sizes: b.sizes.clone(),
                companies: names.len(),
            });
            ncoh += b.sizes.len();
        }
        let mut feats = vec![0.0; global.len() * dim];
        for (li, &g) in global.iter().enumerate() {
            scale.features(
                &learners[g].mastery,
                objective,
                &mut feats[li * dim..(li + 1) * dim],
            );
        }
        Problem {
            learners,
            cons: *cons,
            objective,
            skills,
            dim,
            global,
            feats,
            company,
            blocks,
            caps,
        }
    }

    /// Population index of a local learner.
    pub fn global(&self, local: u32) -> usize {
        self.global[local as usize]
    }

    /// Features of a local learner.
    pub fn feat(&self, local: u32) -> &[f64] {
        let l = local as usize;
        &self.feats[l * self.dim..(l + 1) * self.dim]
    }

    /// Number of new cohorts.
    pub fn cohort_count(&self) -> usize {
        self.caps.len()
    }

    /// Block index of each cohort.
    pub fn cohort_blocks(&self) -> Vec<usize> {
        let mut v = vec![0; self.cohort_count()];
        for (bi, b) in self.blocks.iter().enumerate() {
            v[b.cohorts.clone()].iter_mut().for_each(|x| *x = bi);
        }
        v
    }
}

/// Running state of one cohort during the search.
#[derive(Debug, Clone)]
struct CohortState {
    members: Vec<u32>,
    sum: Vec<f64>,
    counts: Vec<u32>,
    cap: u32,
    w: Vec<f64>,
}

impl CohortState {
    fn new(p: &Problem, block: &BlockInfo, members: Vec<u32>, cap: u32) -> CohortState {
        let mut sum = vec![0.0; p.dim];
        let mut counts = vec![0u32; block.companies];
        for &m in &members {
            for (s, f) in sum.iter_mut().zip(p.feat(m)) {
                *s += f;
            }
            let c = p.company[m as usize];
            if c != NO_COMPANY {
                counts[c as usize] += 1;
            }
        }
        let n = members.len() as f64;
        let w = match p.objective {
            Objective::Balanced => vec![1.0; p.dim],
            Objective::Leveled => vec![-n; p.dim],
        };
        CohortState {
            members,
            sum,
            counts,
            cap,
            w,
        }
    }

    /// Mean feature deviation `e_k` (targets are 0 by construction).
    fn err(&self, k: usize) -> f64 {
        self.sum[k] / self.members.len() as f64
    }

    fn cost(&self) -> f64 {
        (0..self.sum.len())
            .map(|k| self.w[k] * self.err(k).powi(2))
            .sum()
    }
}

/// Cost of an assignment for the objective (unweighted), as reported.
pub fn cost(p: &Problem, a: &Assignment) -> f64 {
    let cb = p.cohort_blocks();
    a.iter()
        .enumerate()
        .map(|(j, m)| CohortState::new(p, &p.blocks[cb[j]], m.clone(), p.caps[j]).cost())
        .sum()
}

/// Best-improvement exchange between two cohorts; returns the swaps made.
fn improve_pair(p: &Problem, a: &mut CohortState, b: &mut CohortState, passes: usize) -> usize {
    let d = p.dim;
    let (na, nb) = (a.members.len(), b.members.len());
    let (ia, ib) = (1.0 / na as f64, 1.0 / nb as f64);
    let gather = |m: &[u32]| -> Vec<f64> { m.iter().flat_map(|&x| p.feat(x)).copied().collect() };
    let mut fa = gather(&a.members);
    let mut fb = gather(&b.members);
    let mut g = vec![0.0; d];
    let mut h = vec![0.0; d];
    let mut ga = vec![0.0; na];
    let mut gb = vec![0.0; nb];
    let mut dirty = true;
    let mut swaps = 0;
    for _ in 0..passes {
        let mut improved = false;
        for x in 0..na {
            if dirty {
                for k in 0..d {
                    let (ea, eb) = (a.sum[k] * ia, b.sum[k] * ib);
                    g[k] = 2.0 * (a.w[k] * ea * ia - b.w[k] * eb * ib);
                    h[k] = a.w[k] * ia * ia + b.w[k] * ib * ib;
                }
                for (v, row) in ga.iter_mut().zip(fa.chunks_exact(d)) {
                    *v = row.iter().zip(&g).map(|(f, g)| f * g).sum();
                }
                for (v, row) in gb.iter_mut().zip(fb.chunks_exact(d)) {
                    *v = row.iter().zip(&g).map(|(f, g)| f * g).sum();
                }
                dirty = false;
            }
            let ci = p.company[a.members[x] as usize];
            let b_takes_ci = ci == NO_COMPANY || b.counts[ci as usize] < b.cap;
            let fi = &fa[x * d..(x + 1) * d];
            let gi = ga[x];
            let mut best = -1e-12;
            let mut by = usize::MAX;
            for (y, fj) in fb.chunks_exact(d).enumerate() {
                let cj = p.company[b.members[y] as usize];
                if ci != cj && !(b_takes_ci && (cj == NO_COMPANY || a.counts[cj as usize] < a.cap))
                {
                    continue;
                }
                let mut q = gb[y] - gi;
                for k in 0..d {
                    let t = fj[k] - fi[k];
                    q += h[k] * t * t;
                }
                if q < best {
                    best = q;
                    by = y;
                }
            }
            if by == usize::MAX {
                continue;
            }
            let y = by;
            let cj = p.company[b.members[y] as usize];
            for k in 0..d {
                let t = fb[y * d + k] - fa[x * d + k];
                a.sum[k] += t;
                b.sum[k] -= t;
                std::mem::swap(&mut fa[x * d + k], &mut fb[y * d + k]);
            }
            if ci != cj {
                if ci != NO_COMPANY {
                    a.counts[ci as usize] -= 1;
                    b.counts[ci as usize] += 1;
                }
                if cj != NO_COMPANY {
                    b.counts[cj as usize] -= 1;
                    a.counts[cj as usize] += 1;
                }
            }
            std::mem::swap(&mut a.members[x], &mut b.members[y]);
            dirty = true;
            improved = true;
            swaps += 1;
        }
        if !improved {
            break;
        }
    }
    swaps
}

/// Runs one round over the given disjoint pairs, in parallel.
fn run_pairs(
    p: &Problem,
    states: &mut [CohortState],
    pairs: &[(usize, usize)],
    passes: usize,
) -> usize {
    let mut slots: Vec<Option<&mut CohortState>> = states.iter_mut().map(Some).collect();
    let mut jobs: Vec<(&mut CohortState, &mut CohortState)> = pairs
        .iter()
        .map(|&(x, y)| {
            let a = slots[x].take().expect("pairs are disjoint");
            let b = slots[y].take().expect("pairs are disjoint");
            (a, b)
        })
        .collect();
    let swaps: Vec<usize> = jobs
        .par_iter_mut()
        .with_min_len(4)
        .map(|(a, b)| improve_pair(p, a, b, passes))
        .collect();
    swaps.iter().sum()
}

/// A random perfect matching of each block's cohorts.
fn random_pairs(p: &Problem, rng: &mut ChaCha8Rng) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for b in &p.blocks {
        let mut ids: Vec<usize> = b.cohorts.clone().collect();
        ids.shuffle(rng);
        pairs.extend(ids.chunks_exact(2).map(|c| (c[0], c[1])));
    }
    pairs
}

/// Pairs each block's cohorts with neighbours along a random direction of
/// their mean features, so leveled cohorts trade with similar levels.
fn neighbour_pairs(
    p: &Problem,
    states: &[CohortState],
    rng: &mut ChaCha8Rng,
) -> Vec<(usize, usize)> {
    let dir: Vec<f64> = (0..p.dim).map(|_| rng.random::<f64>() - 0.5).collect();
    let shift = rng.random_range(0..2usize);
    let mut pairs = Vec::new();
    for b in &p.blocks {
        let mut ids: Vec<(f64, usize)> = b
            .cohorts
            .clone()
            .map(|j| {
                let s = &states[j];
                let v: f64 = (0..p.dim).map(|k| dir[k] * s.err(k)).sum();
                (v, j)
            })
            .collect();
        ids.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let start = shift.min(ids.len().saturating_sub(2));
        pairs.extend(ids[start..].chunks_exact(2).map(|c| (c[0].1, c[1].1)));
    }
    pairs
}

/// Improves an initial assignment for the problem's objective; sizes,
/// blocks and company caps are preserved by every move.
pub fn optimise(p: &Problem, initial: Assignment, rng: &mut ChaCha8Rng) -> Assignment {
    let cb = p.cohort_blocks();
    let mut states: Vec<CohortState> = initial
        .into_iter()
        .enumerate()
        .map(|(j, m)| CohortState::new(p, &p.blocks[cb[j]], m, p.caps[j]))
        .collect();
    if p.dim > 0 {
        match p.objective {
            Objective::Balanced => balance(p, &mut states, rng),
            Objective::Leveled => level(p, &mut states, rng),
        }
    }
    states.into_iter().map(|s| s.members).collect()
}

/// Sum of unweighted squared deviations, to watch convergence.
fn plain_cost(states: &[CohortState]) -> f64 {
    states
        .iter()
        .map(|s| (0..s.sum.len()).map(|k| s.err(k).powi(2)).sum::<f64>())
        .sum()
}

fn balance(p: &Problem, states: &mut [CohortState], rng: &mut ChaCha8Rng) {
    let mut prev = plain_cost(states);
    let mut stall = 0;
    for _ in 0..PAIR_ROUNDS {
        let pairs = random_pairs(p, rng);
        run_pairs(p, states, &pairs, 3);
        let c = plain_cost(states);
        if c > prev * 0.9 {
            stall += 1;
            if stall >= 2 {
                break;
            }
        } else {
            stall = 0;
        }
        prev = c;
    }
    polish(p, states, rng);
}

/// Rounds of pair exchange at most, before the neighbour polish.
const PAIR_ROUNDS: usize = 30;
/// Neighbours per learner in the polish.
const NEIGHBOURS: usize = 16;
/// Penalty on deviations beyond the current band in the polish.
const PENALTY: f64 = 50.0;
/// Sweeps of the neighbour polish, in all.
const POLISH_SWEEPS: usize = 60;
/// Of which first on plain squared deviations.
const PLAIN_SWEEPS: usize = 5;
/// Band as a fraction of the current largest deviation.
const SHRINK: f64 = 0.8;

/// Squared deviation plus a steep penalty beyond the band `tau`.
#[inline]
fn phi(e: f64, tau: f64) -> f64 {
    let x = (e.abs() - tau).max(0.0);
    e * e + PENALTY * x * x
}

fn cohort_phi(s: &CohortState, tau: &[f64]) -> f64 {
    (0..s.sum.len()).map(|k| phi(s.err(k), tau[k])).sum()
}

/// Each learner's [`NEIGHBOURS`] nearest learners of its block in mastery
/// (itself where the block is smaller), `NEIGHBOURS` entries per learner.
fn neighbour_table(p: &Problem) -> Vec<u32> {
    let k = NEIGHBOURS;
    let mut nbrs = vec![0u32; p.global.len() * k];
    for b in &p.blocks {
        let pts: Vec<f64> = b
            .learners
            .clone()
            .flat_map(|l| p.feat(l as u32)[..p.skills].iter().copied())
            .collect();
        let nn = super::knn::knn(&pts, p.skills, k);
        let base = b.learners.start as u32;
        for (t, l) in b.learners.clone().enumerate() {
            for s in 0..k {
                nbrs[l * k + s] = base + nn.get(t * k + s).copied().unwrap_or(t as u32);
            }
        }
    }
    nbrs
}

/// Neighbour polish: swaps with near-identical learners anywhere in the
/// block, first on the squared deviations, then with a band that shrinks
/// towards the largest remaining deviation of each feature, which is what
/// closes the max-min gaps.
fn polish(p: &Problem, states: &mut [CohortState], rng: &mut ChaCha8Rng) {
    let n = p.global.len();
    let k = NEIGHBOURS;
    let nbrs = neighbour_table(p);
    let mut cohort_of = vec![0u32; n];
    let mut pos = vec![0u32; n];
    for (j, s) in states.iter_mut().enumerate() {
        s.w.iter_mut().for_each(|w| *w = 1.0);
        for (x, &m) in s.members.iter().enumerate() {
            cohort_of[m as usize] = j as u32;
            pos[m as usize] = x as u32;
        }
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(rng);
    let mut tau = vec![f64::INFINITY; p.dim];
    let mut costs = vec![0.0; states.len()];
    for sweep in 0..POLISH_SWEEPS {
        if sweep >= PLAIN_SWEEPS {
            for (kk, t) in tau.iter_mut().enumerate() {
                let m = states.iter().map(|s| s.err(kk).abs()).fold(0.0, f64::max);
                *t = SHRINK * m;
            }
        }
        for (c, s) in costs.iter_mut().zip(states.iter()) {
            *c = cohort_phi(s, &tau);
        }
        let mut swaps = 0;
        for &i in &order {
            let i = i as usize;
            let a = cohort_of[i] as usize;
            let fi = p.feat(i as u32);
            let ci = p.company[i];
            let mut best = -1e-14;
            let mut bj = usize::MAX;
            let sa = &states[a];
            let ia = 1.0 / sa.members.len() as f64;
            let a_cap_ok = |cj: u32| cj == NO_COMPANY || sa.counts[cj as usize] < sa.cap;
            for &j in &nbrs[i * k..(i + 1) * k] {
                let j = j as usize;
                let b = cohort_of[j] as usize;
                if b == a {
                    continue;
                }
                let sb = &states[b];
                let cj = p.company[j];
                if ci != cj
                    && !((ci == NO_COMPANY || sb.counts[ci as usize] < sb.cap) && a_cap_ok(cj))
                {
                    continue;
                }
                let fj = p.feat(j as u32);
                let ib = 1.0 / sb.members.len() as f64;
                let mut delta = -costs[a] - costs[b];
                for t in 0..p.dim {
                    let dd = fj[t] - fi[t];
                    delta +=
                        phi((sa.sum[t] + dd) * ia, tau[t]) + phi((sb.sum[t] - dd) * ib, tau[t]);
                }
                if delta < best {
                    best = delta;
                    bj = j;
                }
            }
            if bj == usize::MAX {
                continue;
            }
            let j = bj;
            let b = cohort_of[j] as usize;
            let cj = p.company[j];
            let fj = p.feat(j as u32);
            for t in 0..p.dim {
                let dd = fj[t] - fi[t];
                states[a].sum[t] += dd;
                states[b].sum[t] -= dd;
            }
            if ci != cj {
                if ci != NO_COMPANY {
                    states[a].counts[ci as usize] -= 1;
                    states[b].counts[ci as usize] += 1;
                }
                if cj != NO_COMPANY {
                    states[b].counts[cj as usize] -= 1;
                    states[a].counts[cj as usize] += 1;
                }
            }
            let (pi, pj) = (pos[i] as usize, pos[j] as usize);
            states[a].members[pi] = j as u32;
            states[b].members[pj] = i as u32;
            cohort_of.swap(i, j);
            pos.swap(i, j);
            costs[a] = cohort_phi(&states[a], &tau);
            costs[b] = cohort_phi(&states[b], &tau);
            swaps += 1;
        }
        if swaps == 0 && sweep >= PLAIN_SWEEPS {
            break;
        }
    }
}

fn level(p: &Problem, states: &mut [CohortState], rng: &mut ChaCha8Rng) {
    let mut quiet = 0;
    for _ in 0..200 {
        let pairs = neighbour_pairs(p, states, rng);
        let swaps = run_pairs(p, states, &pairs, 4);
        quiet = if swaps == 0 { quiet + 1 } else { 0 };
        if quiet >= 6 {
            break;
        }
    }
}
