//! The alert models: standardized logistic regressions over named
//! [`Features`], fitted with `linfa-logistic`, stored as plain JSON.
//!
//! Two questions, two models ([`RiskModels`]): *behind schedule* (will the
//! learner not complete the program by its end?) and *stopping* (will the
//! learner stop within the next three weeks?). A linear model trains in
//! milliseconds on a deployment's own history, and each prediction is
//! explained by its per-feature contributions (coefficient × standardized
//! value), which is what an alert reason needs. The file carries what it
//! takes to score without linfa (feature names, means, scales,
//! coefficients, intercept) and what a reader needs to trust it (training
//! data, held-out AUC).

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::features::{Features, is_feature};
use crate::error::{Error, Result};

/// Version of the model file layout; bumped on any incompatible change.
/// Version 1 held one dropout model over eight fixed signals.
pub const MODEL_FORMAT_VERSION: u32 = 2;

/// One trained logistic model: P(`target`) from named features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// What it predicts, in words (`"stops within 21 days"`).
    pub target: String,
    /// Area under the ROC curve on held-out learners: the one number to
    /// judge the model by (0.5 = chance).
    pub auc: f64,
    /// Feature names in coefficient order (see `features::FEATURE_NAMES`).
    pub features: Vec<String>,
    /// Training mean of each feature (standardization).
    pub means: Vec<f64>,
    /// Training standard deviation of each feature (1 for constant ones).
    pub scales: Vec<f64>,
    /// Weight of each standardized feature towards the target.
    pub coefficients: Vec<f64>,
    /// Log-odds of the target at the training means.
    pub intercept: f64,
    /// Where the model comes from.
    pub training: TrainingInfo,
}

/// The two alert models, as `models/risk.json` stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskModels {
    /// File layout version ([`MODEL_FORMAT_VERSION`]).
    pub version: u32,
    /// The held-out AUC of the completion model (`behind_schedule`), at
    /// the top of the file: issue 5's single model, "will not complete the
    /// program", put it there, and tools read it there. Always that model's
    /// `auc` ([`RiskModels::new`]; filled in when a file lacks it).
    #[serde(default = "missing_auc")]
    pub auc: f64,
    /// P(the learner does not complete the program by its end).
    pub behind_schedule: LinearModel,
    /// P(the learner stops within the next 21 days).
    pub stopping: LinearModel,
}

/// Description of the data and settings a model was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Free text naming the data, e.g. the simulated worlds and seeds.
    pub source: String,
    /// Examples in the data set (learner × observation time).
    pub samples: usize,
    /// Of which positive.
    pub positives: usize,
    /// Examples used to fit.
    pub train_size: usize,
    /// Examples held out to measure the AUC (whole learners).
    pub test_size: usize,
    /// L2 penalty used by the fit.
    pub alpha: f64,
    /// Seed of the train/test split.
    pub seed: u64,
}

/// One labelled example: its features, its label, and the group it
/// belongs to (a learner: all their observation times fall on the same
/// side of the train/test split).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The features at the observation time.
    pub features: Features,
    /// Whether the target happened.
    pub label: bool,
    /// Split group (e.g. a hash of world and learner).
    pub group: u64,
}

/// Settings of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// L2 penalty. linfa's default (1.0) flattens a small model towards the
    /// base rate, hence a small default.
    pub alpha: f64,
    /// Share of groups held out for the AUC, in `(0, 1)`.
    pub test_fraction: f64,
    /// Seed of the split.
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

impl LinearModel {
    /// Checks that the model can be scored: known feature names,
    /// consistent lengths, finite numbers. `at` prefixes the field names
    /// of errors.
    pub fn validate(&self, at: &str) -> Result<()> {
        if self.features.is_empty() {
            return Err(Error::invalid(
                format!("{at}.features"),
                "must not be empty",
            ));
        }
        if let Some(unknown) = self.features.iter().find(|f| !is_feature(f)) {
            return Err(Error::invalid(
                format!("{at}.features"),
                format!("unknown feature '{unknown}'"),
            ));
        }
        let n = self.features.len();
        for (name, v) in [
            ("means", &self.means),
            ("scales", &self.scales),
            ("coefficients", &self.coefficients),
        ] {
            if v.len() != n {
                return Err(Error::invalid(
                    format!("{at}.{name}"),
                    format!("expected {n} values, got {}", v.len()),
                ));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid(
                    format!("{at}.{name}"),
                    "values must be finite",
                ));
            }
        }
        if self.scales.iter().any(|s| *s <= 0.0) {
            return Err(Error::invalid(
                format!("{at}.scales"),
                "values must be positive",
            ));
        }
        if !self.intercept.is_finite() {
            return Err(Error::invalid(format!("{at}.intercept"), "must be finite"));
        }
        Ok(())
    }

    /// Per-feature contribution to the log-odds (coefficient ×
    /// standardized value), in [`LinearModel::features`] order: positive
    /// values push towards the target. A missing feature counts as its
    /// training mean (no contribution). Explains a prediction.
    pub fn contributions(&self, features: &Features) -> Vec<f64> {
        self.features
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let x = features.get(name).copied().unwrap_or(self.means[i]);
                self.coefficients[i] * (x - self.means[i]) / self.scales[i]
            })
            .collect()
    }

    /// P(target), in `(0, 1)`.
    pub fn predict(&self, features: &Features) -> f64 {
        sigmoid(self.intercept + self.contributions(features).iter().sum::<f64>())
    }
}

/// A file without the top-level `auc` (written before it came back).
fn missing_auc() -> f64 {
    f64::NAN
}

impl RiskModels {
    /// The two models as one file of the current version.
    pub fn new(behind_schedule: LinearModel, stopping: LinearModel) -> Self {
        Self {
            version: MODEL_FORMAT_VERSION,
            auc: behind_schedule.auc,
            behind_schedule,
            stopping,
        }
    }

    /// Checks both models and the version.
    pub fn validate(&self) -> Result<()> {
        if self.version != MODEL_FORMAT_VERSION {
            return Err(Error::invalid(
                "version",
                format!(
                    "risk model version {} is not supported (expected {MODEL_FORMAT_VERSION}; \
                     a version 1 file holds the former single dropout model: retrain with \
                     `spoc train-risk`)",
                    self.version
                ),
            ));
        }
        self.behind_schedule.validate("behind_schedule")?;
        self.stopping.validate("stopping")?;
        if self.auc.to_bits() != self.behind_schedule.auc.to_bits() {
            return Err(Error::invalid(
                "auc",
                format!(
                    "{} is not behind_schedule.auc ({}): the top-level auc is the completion model's",
                    self.auc, self.behind_schedule.auc
                ),
            ));
        }
        Ok(())
    }

    /// Parses and validates a model file.
    pub fn from_json(text: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        // The version first: an old file gets the version message, not a
        // missing field.
        let version: Version =
            serde_json::from_str(text).map_err(|e| Error::invalid("risk model", e.to_string()))?;
        if version.version != MODEL_FORMAT_VERSION {
            let placeholder = RiskModels {
                version: version.version,
                ..RiskModels::new(empty_model(), empty_model())
            };
            placeholder.validate()?;
        }
        let mut models: RiskModels =
            serde_json::from_str(text).map_err(|e| Error::invalid("risk model", e.to_string()))?;
        if models.auc.is_nan() {
            models.auc = models.behind_schedule.auc;
        }
        models.validate()?;
        Ok(models)
    }

    /// The model file, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("risk models always serialize")
    }
}

/// A model with no features (only to carry a version error).
pub(super) fn empty_model() -> LinearModel {
    LinearModel {
        target: String::new(),
        auc: f64::NAN,
        features: Vec::new(),
        means: Vec::new(),
        scales: Vec::new(),
        coefficients: Vec::new(),
        intercept: 0.0,
        training: TrainingInfo {
            source: String::new(),
            samples: 0,
            positives: 0,
            train_size: 0,
            test_size: 0,
            alpha: 0.0,
            seed: 0,
        },
    }
}

/// The logistic function.
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A 64-bit mix of a group id and the seed (SplitMix64): which side of the
/// split a group falls on, stable for given seeds.
fn mix(group: u64, seed: u64) -> u64 {
    let mut z = group ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Trains a model of `target` on `features` of labelled samples.
///
/// Holds out `options.test_fraction` of the groups (whole learners),
/// fits standardization and the regression on the rest, and measures the
/// AUC on the held-out part. Deterministic for given samples and options.
pub fn train(
    samples: &[Sample],
    features: &[&str],
    target: &str,
    options: &TrainOptions,
) -> Result<LinearModel> {
    let n = features.len();
    let rows = feature_rows(samples, features, options)?;
    let (test_idx, train_idx) = split(samples, options)?;
    let (means, scales) = standardization(&rows, &train_idx, n);
    let x_train = Array2::from_shape_fn((train_idx.len(), n), |(r, c)| {
        (rows[train_idx[r]][c] - means[c]) / scales[c]
    });
    let y_train: Array1<bool> = train_idx.iter().map(|&i| samples[i].label).collect();
    let fitted = LogisticRegression::default()
        .alpha(options.alpha)
        .max_iterations(options.max_iterations)
        .fit(&Dataset::new(x_train, y_train))
        .map_err(|e| Error::FailedPrecondition(format!("logistic regression failed: {e}")))?;
    // linfa models P(the more frequent training label): flip the sign to
    // always model P(target).
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let mut model = LinearModel {
        target: target.to_string(),
        auc: f64::NAN,
        features: features.iter().map(|s| s.to_string()).collect(),
        means,
        scales,
        coefficients: fitted.params().iter().map(|w| sign * w).collect(),
        intercept: sign * fitted.intercept(),
        training: TrainingInfo {
            source: options.source.clone(),
            samples: samples.len(),
            positives: samples.iter().filter(|s| s.label).count(),
            train_size: train_idx.len(),
            test_size: test_idx.len(),
            alpha: options.alpha,
            seed: options.seed,
        },
    };
    let scores: Vec<f64> = test_idx
        .iter()
        .map(|&i| model.predict(&samples[i].features))
        .collect();
    let labels: Vec<bool> = test_idx.iter().map(|&i| samples[i].label).collect();
    model.auc = auc(&scores, &labels);
    model.validate("model")?;
    Ok(model)
}

/// Each sample's values of `features` (0 for a feature it lacks), once
/// the options and the feature names are checked; every value finite.
fn feature_rows(
    samples: &[Sample],
    features: &[&str],
    options: &TrainOptions,
) -> Result<Vec<Vec<f64>>> {
    if !(options.test_fraction > 0.0 && options.test_fraction < 1.0) {
        return Err(Error::invalid("test_fraction", "must be in (0, 1)"));
    }
    if !(options.alpha.is_finite() && options.alpha >= 0.0) {
        return Err(Error::invalid("alpha", "must be finite and non-negative"));
    }
    if let Some(unknown) = features.iter().find(|f| !is_feature(f)) {
        return Err(Error::invalid(
            "features",
            format!("unknown feature '{unknown}'"),
        ));
    }
    let rows: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| {
            features
                .iter()
                .map(|f| s.features.get(*f).copied().unwrap_or(0.0))
                .collect()
        })
        .collect();
    if let Some(i) = rows.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
        return Err(Error::invalid(
            format!("samples[{i}]"),
            "features must be finite",
        ));
    }
    Ok(rows)
}

/// The held-out and the training samples' indices: whole groups fall on
/// one side, by a hash of the group and the seed. Each side must hold
/// both labels.
fn split(samples: &[Sample], options: &TrainOptions) -> Result<(Vec<usize>, Vec<usize>)> {
    let cut = (options.test_fraction * u64::MAX as f64) as u64;
    let (test_idx, train_idx): (Vec<usize>, Vec<usize>) =
        (0..samples.len()).partition(|&i| mix(samples[i].group, options.seed) < cut);
    let has_both = |idx: &[usize]| {
        idx.iter().any(|&i| samples[i].label) && idx.iter().any(|&i| !samples[i].label)
    };
    if !has_both(&train_idx) || !has_both(&test_idx) {
        return Err(Error::FailedPrecondition(format!(
            "training needs positive and negative examples in both the training and the \
             held-out part ({} samples, {} positive)",
            samples.len(),
            samples.iter().filter(|s| s.label).count()
        )));
    }
    Ok((test_idx, train_idx))
}

/// Means and standard deviations of the `n` features over the training
/// rows (a constant feature gets a scale of 1).
fn standardization(rows: &[Vec<f64>], train_idx: &[usize], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut means = vec![0.0; n];
    let mut scales = vec![0.0; n];
    for &i in train_idx {
        for (m, x) in means.iter_mut().zip(&rows[i]) {
            *m += x;
        }
    }
    means.iter_mut().for_each(|m| *m /= train_idx.len() as f64);
    for &i in train_idx {
        for (j, x) in rows[i].iter().enumerate() {
            scales[j] += (x - means[j]).powi(2);
        }
    }
    for s in &mut scales {
        let sd = (*s / train_idx.len() as f64).sqrt();
        *s = if sd > 1e-12 { sd } else { 1.0 };
    }
    (means, scales)
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

    /// Samples whose label is a noisy threshold on `days_away` only; the
    /// positives are the minority, so linfa's positive class is `false`,
    /// which `train` must undo.
    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                let days = (i % 20) as f64;
                let features = Features::from([
                    ("days_away".to_string(), days),
                    ("time_trend".to_string(), 1.0 + (i % 7) as f64 / 10.0),
                    ("pace_gap".to_string(), 0.0),
                ]);
                Sample {
                    features,
                    label: days >= 14.0 && i % 11 != 0,
                    group: i as u64,
                }
            })
            .collect()
    }

    const FEATURES: [&str; 3] = ["days_away", "time_trend", "pace_gap"];

    #[test]
    fn predicts_the_target_even_when_it_is_the_minority() {
        let data = samples(400);
        assert!(data.iter().filter(|s| s.label).count() < 200);
        let model = train(&data, &FEATURES, "stops", &TrainOptions::default()).unwrap();
        assert!(model.coefficients[0] > 0.0, "{model:?}");
        let idle = Features::from([("days_away".to_string(), 19.0)]);
        let busy = Features::from([("days_away".to_string(), 0.0)]);
        assert!(model.predict(&idle) > 0.5 && model.predict(&busy) < 0.5);
        assert!(model.auc > 0.9, "{}", model.auc);
        // The constant feature got a unit scale, not a division by zero.
        assert_eq!(model.scales[2], 1.0);
    }

    #[test]
    fn a_learner_never_falls_on_both_sides_of_the_split() {
        let mut data = samples(400);
        // Four samples per group.
        for (i, s) in data.iter_mut().enumerate() {
            s.group = (i / 4) as u64;
        }
        let model = train(&data, &FEATURES, "stops", &TrainOptions::default()).unwrap();
        assert_eq!(model.training.test_size % 4, 0, "{:?}", model.training);
        assert!((80..160).contains(&model.training.test_size));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let m = train(&samples(200), &FEATURES, "stops", &TrainOptions::default()).unwrap();
        let models = RiskModels::new(m.clone(), m.clone());
        let back = RiskModels::from_json(&models.to_json()).unwrap();
        let x = Features::from([("days_away".to_string(), 9.0)]);
        assert!((back.stopping.predict(&x) - m.predict(&x)).abs() < 1e-12);
        let mut bad = models.clone();
        bad.stopping.features[0] = "nope".into();
        let err = RiskModels::from_json(&bad.to_json())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stopping.features") && err.contains("nope"),
            "{err}"
        );
        let err = RiskModels::from_json(r#"{"version": 1, "auc": 0.9}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 1"), "{err}");
        let mut bad = models;
        bad.behind_schedule.scales.pop();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn refuses_one_class_data() {
        let data: Vec<Sample> = samples(100)
            .into_iter()
            .map(|s| Sample { label: false, ..s })
            .collect();
        assert!(matches!(
            train(&data, &FEATURES, "stops", &TrainOptions::default()),
            Err(Error::FailedPrecondition(_))
        ));
    }
}
