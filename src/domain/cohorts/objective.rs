//! What the search optimises, as linear features summed per cohort.
//!
//! Balanced: for each skill a learner contributes `y = (x - mu) / sd` and
//! `z = ((x - mu)^2 / var - 1) / 2`. A cohort's mean of `y` is its mean's
//! deviation from the population in SD units, and its mean of `z` is, to
//! first order, its SD's relative deviation (`sd_g / sd - 1`). Both are
//! plain sums, so a cohort keeps one running sum per feature and a swap
//! changes the objective in O(features): the incremental update the
//! exchange search needs. The cost of a cohort is `sum_k w_k e_k^2` with
//! `e_k` its mean feature; weights start at 1 and are raised on the worst
//! cohorts in the polishing phase to close max-min gaps.
//!
//! Leveled: features are the raw mastery values and `w_k = -n`, which makes
//! the cost `-|sum|^2 / n`: minimising it is minimising the within-cohort
//! sum of squares (the k-means criterion).

use super::{CohortLearner, Objective};

/// Population mean and SD per skill, the reference for "balanced".
#[derive(Debug, Clone)]
pub struct Scale {
    /// Mean mastery per skill.
    pub mean: Vec<f64>,
    /// SD per skill (population formula), floored to avoid dividing by 0.
    pub sd: Vec<f64>,
}

impl Scale {
    /// Measures the whole program population.
    pub fn from_population(learners: &[CohortLearner], skills: usize) -> Scale {
        let n = learners.len().max(1) as f64;
        let mut mean = vec![0.0; skills];
        for l in learners {
            for (m, x) in mean.iter_mut().zip(&l.mastery) {
                *m += x;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; skills];
        for l in learners {
            for s in 0..skills {
                let d = l.mastery[s] - mean[s];
                var[s] += d * d;
            }
        }
        let sd = var.iter().map(|v| (v / n).sqrt().max(1e-6)).collect();
        Scale { mean, sd }
    }

    /// Number of features per learner for an objective.
    pub fn dim(&self, objective: Objective) -> usize {
        match objective {
            Objective::Balanced => 2 * self.mean.len(),
            Objective::Leveled => self.mean.len(),
        }
    }

    /// Writes a learner's features into `out` (length [`Scale::dim`]).
    pub fn features(&self, mastery: &[f64], objective: Objective, out: &mut [f64]) {
        let s = self.mean.len();
        match objective {
            Objective::Balanced => {
                for k in 0..s {
                    let y = (mastery[k] - self.mean[k]) / self.sd[k];
                    out[k] = y;
                    out[s + k] = (y * y - 1.0) / 2.0;
                }
            }
            Objective::Leveled => out.copy_from_slice(mastery),
        }
    }
}

/// Mean and SD (population formula) per skill of one cohort's raw mastery:
/// the figures managers see and the gaps are measured on.
pub fn cohort_stats(rows: &[&[f64]], skills: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; skills];
    for r in rows {
        for s in 0..skills {
            mean[s] += r[s];
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; skills];
    for r in rows {
        for s in 0..skills {
            let d = r[s] - mean[s];
            var[s] += d * d;
        }
    }
    (mean, var.iter().map(|v| (v / n).sqrt()).collect())
}

/// Per skill, the spread (max - min) across cohorts of their means and of
/// their SDs: the balance figures of the quality report.
pub fn gaps(cohorts: &[Vec<&[f64]>], skills: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = vec![(f64::INFINITY, f64::INFINITY); skills];
    let mut hi = vec![(f64::NEG_INFINITY, f64::NEG_INFINITY); skills];
    for rows in cohorts {
        let (m, sd) = cohort_stats(rows, skills);
        for s in 0..skills {
            lo[s] = (lo[s].0.min(m[s]), lo[s].1.min(sd[s]));
            hi[s] = (hi[s].0.max(m[s]), hi[s].1.max(sd[s]));
        }
    }
    if cohorts.is_empty() {
        return (vec![0.0; skills], vec![0.0; skills]);
    }
    (
        (0..skills).map(|s| hi[s].0 - lo[s].0).collect(),
        (0..skills).map(|s| hi[s].1 - lo[s].1).collect(),
    )
}
