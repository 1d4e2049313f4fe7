//! Scores of next-attempt predictions, computed as pyBKT and scikit-learn do.

use serde::{Deserialize, Serialize};

/// AUC, RMSE and accuracy of one set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Area under the ROC curve (ties count one half); NaN when only one
    /// class is present, as AUC is then undefined.
    pub auc: f64,
    /// Root mean squared error of P(correct) against the 0/1 answer.
    pub rmse: f64,
    /// Share of answers on the side of 0.5 that the prediction was on.
    pub accuracy: f64,
    /// Number of predictions scored.
    pub count: usize,
}

impl Scores {
    /// Scores `(p_correct, answer)` pairs; `answer` is 1 for correct.
    pub fn of(pairs: &[(f64, u8)]) -> Self {
        Self {
            auc: auc(pairs),
            rmse: rmse(pairs),
            accuracy: accuracy(pairs),
            count: pairs.len(),
        }
    }
}

/// Area under the ROC curve by the rank-sum (Mann-Whitney) formula, with
/// tied predictions sharing their average rank (scikit-learn's convention).
pub fn auc(pairs: &[(f64, u8)]) -> f64 {
    let mut sorted: Vec<(f64, u8)> = pairs.to_vec();
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|p| p.1 != 0).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        // Ranks i+1..=j share their mean.
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        let pos = sorted[i..j].iter().filter(|p| p.1 != 0).count() as f64;
        rank_sum += pos * mean_rank;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Root mean squared error; NaN for no prediction.
pub fn rmse(pairs: &[(f64, u8)]) -> f64 {
    let sse: f64 = pairs.iter().map(|&(p, y)| (p - f64::from(y)).powi(2)).sum();
    (sse / pairs.len() as f64).sqrt()
}

/// Accuracy with a 0.5 threshold (a prediction of exactly 0.5 counts as
/// "correct", as pyBKT's `accuracy` does with `>= 0.5`); NaN for none.
pub fn accuracy(pairs: &[(f64, u8)]) -> f64 {
    let hits = pairs
        .iter()
        .filter(|&&(p, y)| (p >= 0.5) == (y != 0))
        .count();
    hits as f64 / pairs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_tied_rankings() {
        assert_eq!(auc(&[(0.1, 0), (0.9, 1), (0.2, 0), (0.8, 1)]), 1.0);
        assert_eq!(auc(&[(0.9, 0), (0.1, 1)]), 0.0);
        assert_eq!(auc(&[(0.5, 0), (0.5, 1)]), 0.5);
        // One inversion among 2x2 pairs: 3/4.
        assert_eq!(auc(&[(0.1, 0), (0.3, 1), (0.4, 0), (0.9, 1)]), 0.75);
        assert!(auc(&[(0.3, 1)]).is_nan());
    }

    #[test]
    fn rmse_and_accuracy_by_hand() {
        let pairs = [(0.8, 1), (0.4, 1), (0.3, 0)];
        let want = ((0.04 + 0.36 + 0.09) / 3.0f64).sqrt();
        assert!((rmse(&pairs) - want).abs() < 1e-12);
        assert!((accuracy(&pairs) - 2.0 / 3.0).abs() < 1e-12);
    }
}
