//! Leveled start: k-means clusters of mastery, repaired into cohorts.
//!
//! k-means (linfa-clustering, one cluster per planned cohort, centroids
//! seeded from our own ChaCha stream so the seed decides) finds levels but
//! ignores sizes and company caps. The repair places learners, most
//! "decided" first (largest gap between nearest and second-nearest
//! centroid), into the nearest cohort that still has a seat and room for
//! their company; the exchange search then tightens the clusters while
//! keeping every constraint. Should the greedy repair dead-end on the
//! caps, the capacity-aware random start is used instead: still feasible,
//! and the search does the leveling.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::CohortError;
use super::construct;
use super::search::{Assignment, BlockInfo, NO_COMPANY, Problem};

/// Builds the leveled starting assignment for every block.
pub fn leveled_start(p: &Problem, rng: &mut ChaCha8Rng) -> Result<Assignment, CohortError> {
    let mut out: Assignment = vec![Vec::new(); p.cohort_count()];
    for (bi, b) in p.blocks.iter().enumerate() {
        match block_start(p, b, rng) {
            Some(groups) => {
                for (j, g) in groups.into_iter().enumerate() {
                    out[b.cohorts.start + j] = g;
                }
            }
            None => construct::random_block(p, b, bi, rng, &mut out)?,
        }
    }
    Ok(out)
}

/// Clusters and repairs one block; `None` when the greedy repair dead-ends.
fn block_start(p: &Problem, b: &BlockInfo, rng: &mut ChaCha8Rng) -> Option<Vec<Vec<u32>>> {
    let k = b.sizes.len();
    let n = b.learners.len();
    let d = p.dim;
    if d == 0 || k == 0 {
        return None;
    }
    let locals: Vec<u32> = b.learners.clone().map(|l| l as u32).collect();
    let data = Array2::from_shape_fn((n, d), |(i, s)| p.feat(locals[i])[s]);
    let centroids = if k == 1 {
        Array2::from_shape_fn((1, d), |(_, s)| data.column(s).mean().unwrap_or(0.0))
    } else {
        let mut pick: Vec<usize> = (0..n).collect();
        pick.shuffle(rng);
        let init = Array2::from_shape_fn((k, d), |(c, s)| data[[pick[c], s]]);
        let ds = DatasetBase::from(data.clone());
        let model = KMeans::params(k)
            .n_runs(1)
            .max_n_iterations(60)
            .tolerance(1e-5)
            .init_method(KMeansInit::Precomputed(init.clone()))
            .fit(&ds)
            .ok();
        model.map_or(init, |m| m.centroids().clone())
    };
    let dist: Vec<f64> = (0..n)
        .flat_map(|i| {
            let row = data.row(i).to_owned();
            let cs = &centroids;
            (0..k).map(move |c| {
                row.iter()
                    .zip(cs.row(c))
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f64>()
            })
        })
        .collect();
    let regret = |i: usize| -> f64 {
        let row = &dist[i * k..(i + 1) * k];
        let (mut a, mut b2) = (f64::INFINITY, f64::INFINITY);
        for &v in row {
            if v < a {
                b2 = a;
                a = v;
            } else if v < b2 {
                b2 = v;
            }
        }
        if b2.is_finite() { b2 - a } else { 0.0 }
    };
    let mut order: Vec<usize> = (0..n).collect();
    let regrets: Vec<f64> = (0..n).map(regret).collect();
    order.sort_by(|&x, &y| regrets[y].total_cmp(&regrets[x]).then(x.cmp(&y)));
    let mut free = b.sizes.clone();
    let mut counts = vec![vec![0u32; k]; b.companies];
    let mut groups = vec![Vec::new(); k];
    for i in order {
        let c = p.company[locals[i] as usize];
        let best = (0..k)
            .filter(|&j| free[j] > 0)
            .filter(|&j| c == NO_COMPANY || counts[c as usize][j] < p.caps[b.cohorts.start + j])
            .min_by(|&x, &y| dist[i * k + x].total_cmp(&dist[i * k + y]).then(x.cmp(&y)))?;
        free[best] -= 1;
        if c != NO_COMPANY {
            counts[c as usize][best] += 1;
        }
        groups[best].push(locals[i]);
    }
    Some(groups)
}
