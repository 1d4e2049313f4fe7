//! k-fold cross-validation split by learner.
//!
//! Splitting by learner (never by attempt) is what makes the score honest:
//! a learner's later attempts are strongly correlated with the earlier ones,
//! so a learner seen in training would leak into the test fold. Each test
//! attempt is predicted from that learner's earlier attempts only (P(correct)
//! before observing it), as pyBKT's `predict` does.

use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::em::{self, FitError, Theta, fit_layout, predict_layout, splitmix};
use super::metrics::Scores;
use super::variants::FitOptions;
use crate::domain::bkt::BktParams;

/// The fold (0-based) of every learner id.
///
/// Learners are ranked by `splitmix64(fnv1a64(name) ^ seed)` (ties by name)
/// and dealt round-robin, so folds differ in size by at most one and the
/// split is reproducible from names alone, in any language (the pyBKT
/// comparison script re-derives the very same folds in Python).
pub fn assign_folds(ds: &Dataset, folds: usize, seed: u64) -> Vec<usize> {
    let mut ranked: Vec<(u64, &str, usize)> = (0..ds.num_learners())
        .map(|i| {
            let name = ds.learner_name(i as u32);
            (splitmix(fnv1a(name) ^ seed), name, i)
        })
        .collect();
    ranked.sort_unstable();
    let mut fold = vec![0; ranked.len()];
    for (rank, &(_, _, learner)) in ranked.iter().enumerate() {
        fold[learner] = rank % folds.max(1);
    }
    fold
}

pub(crate) use crate::domain::hashing::fnv1a;

/// Cross-validated scores of a fit configuration (part of the model file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the learner split.
    pub seed: u64,
    /// Mean AUC over folds (pyBKT's `crossvalidate` averages folds too).
    pub auc: f64,
    /// Mean RMSE over folds.
    pub rmse: f64,
    /// Mean accuracy over folds.
    pub accuracy: f64,
    /// Scores of each fold.
    pub per_fold: Vec<Scores>,
}

/// Fits on k-1 folds of learners and scores next-attempt predictions on the
/// held-out fold, k times. Skills absent from a training split are predicted
/// with [`BktParams::default`].
pub fn cross_validate(
    ds: &Dataset,
    opts: &FitOptions,
    folds: usize,
    seed: u64,
) -> Result<CvReport, FitError> {
    em::validate(opts)?;
    if ds.is_empty() {
        return Err(FitError::Empty);
    }
    if folds < 2 || folds > ds.num_learners() {
        return Err(FitError::InvalidOptions(format!(
            "folds must be between 2 and the number of learners ({}), got {folds}",
            ds.num_learners()
        )));
    }
    let fold_of = assign_folds(ds, folds, seed);
    let mut per_fold = Vec::with_capacity(folds);
    let mut pairs = Vec::new();
    for k in 0..folds {
        let train: Vec<bool> = fold_of.iter().map(|&f| f != k).collect();
        let test: Vec<bool> = train.iter().map(|t| !t).collect();
        let fits = fit_layout(ds, &ds.layout(Some(&train)), opts);
        pairs.clear();
        for (d, fit) in ds.layout(Some(&test)).iter().zip(&fits) {
            if d.len() == 0 {
                continue;
            }
            let theta = match fit {
                Some(fit) => fit.align_to(d),
                None => {
                    let p = BktParams::default();
                    Theta {
                        prior: vec![p.prior; d.group_names.len()],
                        learn: vec![p.learn; d.tmpl_names.len()],
                        forget: p.forget,
                        guess: vec![p.guess; d.tmpl_names.len()],
                        slip: vec![p.slip; d.tmpl_names.len()],
                    }
                }
            };
            predict_layout(d, opts.variants, &theta, &mut pairs);
        }
        per_fold.push(Scores::of(&pairs));
    }
    let mean = |f: fn(&Scores) -> f64| per_fold.iter().map(f).sum::<f64>() / folds as f64;
    Ok(CvReport {
        folds,
        seed,
        auc: mean(|s| s.auc),
        rmse: mean(|s| s.rmse),
        accuracy: mean(|s| s.accuracy),
        per_fold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fit::data::AttemptRecord;

    fn learners(n: usize) -> Dataset {
        let mut ds = Dataset::new();
        for i in 0..n {
            let name = format!("u{i}");
            for j in 0..3 {
                ds.push(AttemptRecord {
                    learner: &name,
                    skill: if j % 2 == 0 { "a" } else { "b" },
                    correct: (i + j) % 3 != 0,
                    template: None,
                    group: None,
                    timestamp: None,
                });
            }
        }
        ds
    }

    #[test]
    fn folds_partition_learners_evenly_and_depend_on_seed() {
        let ds = learners(103);
        let f = assign_folds(&ds, 5, 7);
        let mut sizes = [0; 5];
        f.iter().for_each(|&k| sizes[k] += 1);
        assert!(sizes.iter().all(|&s| s == 20 || s == 21), "{sizes:?}");
        assert_eq!(f, assign_folds(&ds, 5, 7));
        assert_ne!(f, assign_folds(&ds, 5, 8));
    }

    #[test]
    fn no_learner_is_in_train_and_test() {
        let ds = learners(40);
        let fold_of = assign_folds(&ds, 4, 1);
        for k in 0..4 {
            let train: Vec<bool> = fold_of.iter().map(|&f| f != k).collect();
            let test: Vec<bool> = train.iter().map(|t| !t).collect();
            let seen = |keep: &[bool]| {
                let mut who = std::collections::BTreeSet::new();
                for a in ds.attempts() {
                    if keep[a.learner as usize] {
                        who.insert(a.learner);
                    }
                }
                who
            };
            let (tr, te) = (seen(&train), seen(&test));
            assert!(tr.is_disjoint(&te));
            assert_eq!(tr.len() + te.len(), 40);
            // The layouts really are restricted: attempt counts add up.
            let n = |keep: &[bool]| ds.layout(Some(keep)).iter().map(|d| d.len()).sum::<usize>();
            assert_eq!(n(&train) + n(&test), ds.len());
        }
    }

    #[test]
    fn test_predictions_cover_every_attempt_once() {
        let ds = learners(30);
        let report = cross_validate(&ds, &FitOptions::default(), 3, 0).unwrap();
        let scored: usize = report.per_fold.iter().map(|s| s.count).sum();
        assert_eq!(scored, ds.len());
        assert!(cross_validate(&ds, &FitOptions::default(), 1, 0).is_err());
    }
}
