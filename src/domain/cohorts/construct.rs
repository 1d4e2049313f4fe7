//! First assignments that already satisfy every hard constraint.
//!
//! Sizes, language and time zone are fixed by the plan's blocks; what is
//! left is the company cap. We first decide *how many* learners of each
//! company go to each cohort with a capacity-aware greedy (largest
//! companies first, each learner to the cohort with most free seats where
//! the company is under its cap, the constructive side of the Gale–Ryser
//! check the plan ran), then decide *which* learners: randomly for the
//! reference assignment, or in a snake over mastery for the balanced start.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::search::{Assignment, BlockInfo, NO_COMPANY, Problem};
use super::{CohortError, Constraint};

/// `counts[c][j]`: learners of block company `c` in the block's cohort `j`;
/// the last row holds learners without a company.
fn company_counts(p: &Problem, b: &BlockInfo, bi: usize) -> Result<Vec<Vec<usize>>, CohortError> {
    let k = b.sizes.len();
    let mut m = vec![0usize; b.companies + 1];
    for li in b.learners.clone() {
        m[company_slot(p, b, li)] += 1;
    }
    let caps: Vec<usize> = b.cohorts.clone().map(|j| p.caps[j] as usize).collect();
    let mut free = b.sizes.clone();
    let mut counts = vec![vec![0usize; k]; b.companies + 1];
    let mut order: Vec<usize> = (0..b.companies).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(m[c]), c));
    let mut rot = 0usize;
    for c in order {
        for _ in 0..m[c] {
            let mut best: Option<usize> = None;
            for t in 0..k {
                let j = (rot + t) % k;
                if free[j] > 0 && counts[c][j] < caps[j] && best.is_none_or(|bj| free[j] > free[bj])
                {
                    best = Some(j);
                }
            }
            let Some(j) = best else {
                return Err(CohortError::Infeasible {
                    constraint: Constraint::CompanyShare,
                    reason: format!(
                        "could not spread the companies of block {bi} over {k} cohorts \
                         under the cap of {:.0}%",
                        100.0 * p.cons.max_company_share
                    ),
                });
            };
            counts[c][j] += 1;
            free[j] -= 1;
            rot = (j + 1) % k;
        }
    }
    // Learners without a company fill the remaining seats.
    for (j, f) in free.iter().enumerate() {
        counts[b.companies][j] = *f;
    }
    Ok(counts)
}

/// Local learners of a block grouped by company (last group: no company).
fn by_company(p: &Problem, b: &BlockInfo) -> Vec<Vec<u32>> {
    let mut groups = vec![Vec::new(); b.companies + 1];
    for li in b.learners.clone() {
        groups[company_slot(p, b, li)].push(li as u32);
    }
    groups
}

/// The block company row of learner `li` (the last row: no company).
fn company_slot(p: &Problem, b: &BlockInfo, li: usize) -> usize {
    match p.company[li] {
        NO_COMPANY => b.companies,
        c => c as usize,
    }
}

/// A uniformly shuffled feasible assignment: the reference a manager would
/// get by drawing lots, against which the report measures the gain.
pub fn random_feasible(p: &Problem, rng: &mut ChaCha8Rng) -> Result<Assignment, CohortError> {
    let mut out: Assignment = vec![Vec::new(); p.cohort_count()];
    for (bi, b) in p.blocks.iter().enumerate() {
        random_block(p, b, bi, rng, &mut out)?;
    }
    Ok(out)
}

/// Block `bi`'s learners drawn by lots into its cohorts of `out`, as many
/// of each company in each cohort as the counts say (also the leveled
/// start's fallback).
pub(crate) fn random_block(
    p: &Problem,
    b: &BlockInfo,
    bi: usize,
    rng: &mut ChaCha8Rng,
    out: &mut Assignment,
) -> Result<(), CohortError> {
    let counts = company_counts(p, b, bi)?;
    for (c, mut group) in by_company(p, b).into_iter().enumerate() {
        group.shuffle(rng);
        let mut it = group.into_iter();
        for (j, &n) in counts[c].iter().enumerate() {
            out[b.cohorts.start + j].extend(it.by_ref().take(n));
        }
    }
    Ok(())
}

/// A balanced start: within each company, learners sorted by overall
/// mastery are dealt in a snake over the cohorts that receive that company
/// (cohort order shuffled per company so no cohort always picks first).
pub fn balanced_start(p: &Problem, rng: &mut ChaCha8Rng) -> Result<Assignment, CohortError> {
    let mut out: Assignment = vec![Vec::new(); p.cohort_count()];
    let s = p.skills;
    for (bi, b) in p.blocks.iter().enumerate() {
        let counts = company_counts(p, b, bi)?;
        let k = b.sizes.len();
        for (c, mut group) in by_company(p, b).into_iter().enumerate() {
            let score = |l: u32| -> f64 { p.feat(l)[..s].iter().sum() };
            group.sort_by(|&x, &y| score(y).total_cmp(&score(x)).then(x.cmp(&y)));
            let mut cohorts: Vec<usize> = (0..k).collect();
            cohorts.shuffle(rng);
            let mut left: Vec<usize> = cohorts.iter().map(|&j| counts[c][j]).collect();
            let mut it = group.into_iter();
            let mut forward = true;
            while left.iter().any(|&x| x > 0) {
                let idx: Vec<usize> = if forward {
                    (0..k).collect()
                } else {
                    (0..k).rev().collect()
                };
                for t in idx {
                    if left[t] > 0 {
                        left[t] -= 1;
                        let l = it.next().expect("counts sum to the group size");
                        out[b.cohorts.start + cohorts[t]].push(l);
                    }
                }
                forward = !forward;
            }
        }
    }
    Ok(out)
}
