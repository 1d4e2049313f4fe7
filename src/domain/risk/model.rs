//! The dropout model: standardized logistic regression over
//! [`LearnerSignals`], fitted with `linfa-logistic`, stored as plain JSON.
//!
//! A linear model is enough for eight hand-made signals, trains in
//! milliseconds on a deployment's own history, and each prediction can be
//! explained by its per-feature contributions (coefficient × standardized
//! value), which is what an alert reason needs. The file carries what it
//! takes to score without linfa (means, scales, coefficients, intercept) and
//! what a reader needs to trust it (training data, held-out AUC).

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::signals::LearnerSignals;
use crate::error::{Error, Result};

/// Version of the model file layout; bumped on any incompatible change.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// A trained dropout model: P(the learner will not complete the program).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskModel {
    /// File layout version ([`MODEL_FORMAT_VERSION`]).
    pub version: u32,
    /// Area under the ROC curve on the held-out learners: the one number to
    /// judge the model by (0.5 = chance).
    pub auc: f64,
    /// Feature names in coefficient order; must equal
    /// [`LearnerSignals::NAMES`] to score.
    pub features: Vec<String>,
    /// Training mean of each feature (standardization).
    pub means: Vec<f64>,
    /// Training standard deviation of each feature (1 for constant ones).
    pub scales: Vec<f64>,
    /// Weight of each standardized feature towards "will not complete".
    pub coefficients: Vec<f64>,
    /// Log-odds of not completing for a learner at the training means.
    pub intercept: f64,
    /// Where the model comes from.
    pub training: TrainingInfo,
}

/// Description of the data and settings a model was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Free text naming the data, e.g. the synthetic generator and its seed.
    pub source: String,
    /// Learners in the data set.
    pub samples: usize,
    /// Of which did not complete.
    pub positives: usize,
    /// Learners used to fit.
    pub train_size: usize,
    /// Learners held out to measure the AUC.
    pub test_size: usize,
    /// L2 penalty used by the fit.
    pub alpha: f64,
    /// Seed of the train/test split.
    pub seed: u64,
}

/// Settings of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// L2 penalty. linfa's default (1.0) flattens a small model towards the
    /// base rate, hence a small default.
    pub alpha: f64,
    /// Share of learners held out for the AUC, in `(0, 1)`.
    pub test_fraction: f64,
    /// Seed of the shuffle that splits train from test.
    pub seed: u64,
    /// Iteration cap of the L-BFGS fit.
    pub max_iterations: u64,
    /// Description of the data, copied into [`TrainingInfo::source`].
    pub source: String,
}

impl Default for TrainOptions {
    /// Small penalty, 30% held out, seed 42.
    fn default() -> Self {
        Self {
            alpha: 1e-3,
            test_fraction: 0.3,
            seed: 42,
            max_iterations: 500,
            source: "unspecified".into(),
        }
    }
}

impl RiskModel {
    /// Checks that the file can score today's signals: right version, right
    /// feature names, consistent lengths, finite numbers.
    pub fn validate(&self) -> Result<()> {
        if self.version != MODEL_FORMAT_VERSION {
            return Err(Error::invalid(
                "version",
                format!(
                    "risk model version {} is not supported (expected {MODEL_FORMAT_VERSION})",
                    self.version
                ),
            ));
        }
        if self.features != LearnerSignals::NAMES {
            return Err(Error::invalid(
                "features",
                format!(
                    "expected {:?}, got {:?}",
                    LearnerSignals::NAMES,
                    self.features
                ),
            ));
        }
        for (name, v) in [
            ("means", &self.means),
            ("scales", &self.scales),
            ("coefficients", &self.coefficients),
        ] {
            if v.len() != LearnerSignals::LEN {
                return Err(Error::invalid(
                    name,
                    format!("expected {} values, got {}", LearnerSignals::LEN, v.len()),
                ));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid(name, "values must be finite"));
            }
        }
        if self.scales.iter().any(|s| *s <= 0.0) {
            return Err(Error::invalid("scales", "values must be positive"));
        }
        if !self.intercept.is_finite() {
            return Err(Error::invalid("intercept", "must be finite"));
        }
        Ok(())
    }

    /// Parses and validates a model file.
    pub fn from_json(text: &str) -> Result<Self> {
        let model: RiskModel =
            serde_json::from_str(text).map_err(|e| Error::invalid("risk model", e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    /// The model file, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a risk model always serializes")
    }

    /// Per-feature contribution to the log-odds of not completing
    /// (coefficient × standardized value), in [`LearnerSignals::NAMES`]
    /// order: positive values push towards dropout. Explains a prediction.
    pub fn contributions(&self, signals: &LearnerSignals) -> [f64; LearnerSignals::LEN] {
        let x = signals.to_array();
        std::array::from_fn(|i| self.coefficients[i] * (x[i] - self.means[i]) / self.scales[i])
    }

    /// P(the learner will not complete the program), in `(0, 1)`.
    pub fn predict(&self, signals: &LearnerSignals) -> f64 {
        sigmoid(self.intercept + self.contributions(signals).iter().sum::<f64>())
    }
}

/// The logistic function.
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Trains a model on labelled signals (`true` = did not complete), from any
/// source: the synthetic generator or a deployment's own history.
///
/// Shuffles with `options.seed`, holds out `options.test_fraction`, fits
/// standardization and the regression on the rest, and measures the AUC on
/// the held-out part. Deterministic for given samples and options.
pub fn train(samples: &[(LearnerSignals, bool)], options: &TrainOptions) -> Result<RiskModel> {
    if !(options.test_fraction > 0.0 && options.test_fraction < 1.0) {
        return Err(Error::invalid("test_fraction", "must be in (0, 1)"));
    }
    if !(options.alpha.is_finite() && options.alpha >= 0.0) {
        return Err(Error::invalid("alpha", "must be finite and non-negative"));
    }
    if let Some(i) = samples
        .iter()
        .position(|(s, _)| s.to_array().iter().any(|x| !x.is_finite()))
    {
        return Err(Error::invalid(
            format!("samples[{i}]"),
            "signals must be finite",
        ));
    }
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed));
    let test_size = (samples.len() as f64 * options.test_fraction).round() as usize;
    let (test_idx, train_idx) = order.split_at(test_size);
    let has_both =
        |idx: &[usize]| idx.iter().any(|&i| samples[i].1) && idx.iter().any(|&i| !samples[i].1);
    if !has_both(train_idx) || !has_both(test_idx) {
        return Err(Error::FailedPrecondition(format!(
            "training needs completers and non-completers in both the training and the held-out \
             part ({} samples, {} did not complete)",
            samples.len(),
            samples.iter().filter(|(_, y)| *y).count()
        )));
    }

    let n = LearnerSignals::LEN;
    let mut means = vec![0.0; n];
    let mut scales = vec![0.0; n];
    for &i in train_idx {
        for (m, x) in means.iter_mut().zip(samples[i].0.to_array()) {
            *m += x;
        }
    }
    means.iter_mut().for_each(|m| *m /= train_idx.len() as f64);
    for &i in train_idx {
        for (j, x) in samples[i].0.to_array().into_iter().enumerate() {
            scales[j] += (x - means[j]).powi(2);
        }
    }
    for s in &mut scales {
        let sd = (*s / train_idx.len() as f64).sqrt();
        *s = if sd > 1e-12 { sd } else { 1.0 };
    }
    let standardize = |idx: &[usize]| {
        Array2::from_shape_fn((idx.len(), n), |(r, c)| {
            (samples[idx[r]].0.to_array()[c] - means[c]) / scales[c]
        })
    };
    let x_train = standardize(train_idx);
    let y_train: Array1<bool> = train_idx.iter().map(|&i| samples[i].1).collect();
    let fitted = LogisticRegression::default()
        .alpha(options.alpha)
        .max_iterations(options.max_iterations)
        .fit(&Dataset::new(x_train, y_train))
        .map_err(|e| Error::FailedPrecondition(format!("logistic regression failed: {e}")))?;
    // linfa models P(larger training class), which is "completed" whenever
    // most learners complete: flip the sign to always model P(not complete).
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let model_without_auc = RiskModel {
        version: MODEL_FORMAT_VERSION,
        auc: f64::NAN,
        features: LearnerSignals::NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        means,
        scales,
        coefficients: fitted.params().iter().map(|w| sign * w).collect(),
        intercept: sign * fitted.intercept(),
        training: TrainingInfo {
            source: options.source.clone(),
            samples: samples.len(),
            positives: samples.iter().filter(|(_, y)| *y).count(),
            train_size: train_idx.len(),
            test_size: test_idx.len(),
            alpha: options.alpha,
            seed: options.seed,
        },
    };
    let scores: Vec<f64> = test_idx
        .iter()
        .map(|&i| model_without_auc.predict(&samples[i].0))
        .collect();
    let labels: Vec<bool> = test_idx.iter().map(|&i| samples[i].1).collect();
    let model = RiskModel {
        auc: auc(&scores, &labels),
        ..model_without_auc
    };
    model.validate()?;
    Ok(model)
}

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative (ties count one half), by the rank-sum formula.
/// NaN when either class is missing.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over ties.
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|y| **y).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, y)| **y)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computation() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert_eq!(auc(&[0.9, 0.1], &[false, true]), 0.0);
        assert!(auc(&[0.9, 0.1], &[true, true]).is_nan());
    }

    /// Samples whose label is a noisy threshold on inactivity only; the
    /// minority class is "did not complete" so linfa's positive class is
    /// `false`, which `train` must undo.
    fn inactivity_samples(n: usize) -> Vec<(LearnerSignals, bool)> {
        (0..n)
            .map(|i| {
                let days = (i % 20) as f64;
                let mut x = [0.0; LearnerSignals::LEN];
                x[0] = days;
                x[6] = 1.0 + (i % 7) as f64 / 10.0;
                (LearnerSignals::from_array(x), days >= 14.0 && i % 11 != 0)
            })
            .collect()
    }

    #[test]
    fn predicts_not_completing_even_when_it_is_the_minority() {
        let samples = inactivity_samples(400);
        assert!(samples.iter().filter(|(_, y)| *y).count() < 200);
        let model = train(&samples, &TrainOptions::default()).unwrap();
        assert!(model.coefficients[0] > 0.0, "{model:?}");
        let mut idle = [0.0; LearnerSignals::LEN];
        idle[0] = 19.0;
        let busy = [0.0; LearnerSignals::LEN];
        let p_idle = model.predict(&LearnerSignals::from_array(idle));
        let p_busy = model.predict(&LearnerSignals::from_array(busy));
        assert!(p_idle > 0.5 && p_busy < 0.5, "{p_idle} {p_busy}");
        assert!(model.auc > 0.9, "{}", model.auc);
        // The constant feature got a unit scale, not a division by zero.
        assert_eq!(model.scales[1], 1.0);
    }

    #[test]
    fn json_round_trip_and_validation() {
        let model = train(&inactivity_samples(200), &TrainOptions::default()).unwrap();
        let json = model.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(value["auc"].is_f64());
        // serde_json may parse a float one ulp away: compare what matters.
        let back = RiskModel::from_json(&json).unwrap();
        assert_eq!(back.features, model.features);
        assert_eq!(back.training, model.training);
        let x = LearnerSignals::from_array([9.0, 0.2, -0.1, 0.0, 2.0, 0.1, 0.8, 1.0]);
        assert!((back.predict(&x) - model.predict(&x)).abs() < 1e-12);
        let mut bad = model.clone();
        bad.features.swap(0, 1);
        assert!(bad.validate().is_err());
        let mut bad = model;
        bad.version = 99;
        assert!(RiskModel::from_json(&bad.to_json()).is_err());
    }

    #[test]
    fn refuses_one_class_data() {
        let samples: Vec<_> = inactivity_samples(100)
            .into_iter()
            .map(|(s, _)| (s, false))
            .collect();
        assert!(matches!(
            train(&samples, &TrainOptions::default()),
            Err(Error::FailedPrecondition(_))
        ));
    }
}
