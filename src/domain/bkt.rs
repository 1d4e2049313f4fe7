//! Bayesian Knowledge Tracing: the per-skill hidden Markov model behind mastery.
//!
//! A learner either knows a skill or not. Each observed answer updates the
//! belief with Bayes' rule (guess and slip make answers noisy evidence), then
//! the learner may learn (probability `learn`) or forget (`forget`) before the
//! next opportunity. This is the standard model of Corbett & Anderson (1995),
//! as implemented by pyBKT; `forget = 0` is the classic variant.

use serde::{Deserialize, Serialize};

/// The four (five with forgetting) parameters of BKT for one skill.
///
/// All values are probabilities in `[0, 1]`; `guess` and `slip` are kept below
/// 0.5 by the fitter so that a correct answer is always evidence of mastery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BktParams {
    /// P(L0): probability that the skill is known before any attempt.
    pub prior: f64,
    /// P(T): probability of learning the skill at each opportunity.
    pub learn: f64,
    /// P(G): probability of answering correctly without knowing the skill.
    pub guess: f64,
    /// P(S): probability of answering wrongly while knowing the skill.
    pub slip: f64,
    /// P(F): probability of forgetting a known skill at each opportunity.
    #[serde(default)]
    pub forget: f64,
}

impl Default for BktParams {
    /// Conservative defaults used when no fitted or configured value exists
    /// (close to the averages reported for skill-builder data).
    fn default() -> Self {
        Self {
            prior: 0.2,
            learn: 0.15,
            guess: 0.2,
            slip: 0.1,
            forget: 0.0,
        }
    }
}

/// One observed answer, as BKT sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Whether the answer was right.
    pub correct: bool,
    /// Optional partial credit in `[0, 1]`; when present it replaces `correct`
    /// as soft evidence (a score of 1.0 is a correct answer, 0.0 a wrong one).
    pub score: Option<f64>,
}

impl BktParams {
    /// Checks that every parameter is a finite probability; names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("prior", self.prior),
            ("learn", self.learn),
            ("guess", self.guess),
            ("slip", self.slip),
            ("forget", self.forget),
        ] {
            if !value.is_finite() || !(0.0..=1.0).contains(&value) {
                return Err(format!(
                    "{name} must be a probability in [0, 1], got {value}"
                ));
            }
        }
        Ok(())
    }

    /// P(correct) predicted for the next answer when P(known) is `p_known`.
    pub fn p_correct(&self, p_known: f64) -> f64 {
        p_known * (1.0 - self.slip) + (1.0 - p_known) * self.guess
    }

    /// Bayes' rule: P(known | observation) from the belief before it.
    pub fn posterior(&self, p_known: f64, obs: Observation) -> f64 {
        let credit = obs
            .score
            .unwrap_or(if obs.correct { 1.0 } else { 0.0 })
            .clamp(0.0, 1.0);
        // Likelihood of the observation if known / unknown; a score mixes the
        // likelihoods of a right and a wrong answer.
        let if_known = credit * (1.0 - self.slip) + (1.0 - credit) * self.slip;
        let if_unknown = credit * self.guess + (1.0 - credit) * (1.0 - self.guess);
        let num = p_known * if_known;
        let den = num + (1.0 - p_known) * if_unknown;
        if den <= 0.0 { p_known } else { num / den }
    }

    /// The learning (and forgetting) transition between two opportunities.
    pub fn transition(&self, p_known: f64) -> f64 {
        p_known * (1.0 - self.forget) + (1.0 - p_known) * self.learn
    }

    /// The full BKT step: condition on the answer, then apply the transition.
    /// The result is P(known) at the next opportunity, the value reported as
    /// "P(mastered)".
    pub fn update(&self, p_known: f64, obs: Observation) -> f64 {
        self.transition(self.posterior(p_known, obs))
    }

    /// Replays a whole sequence of answers from the prior.
    pub fn replay(&self, observations: impl IntoIterator<Item = Observation>) -> f64 {
        observations
            .into_iter()
            .fold(self.prior, |p, obs| self.update(p, obs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(correct: bool) -> Observation {
        Observation {
            correct,
            score: None,
        }
    }

    #[test]
    fn correct_answer_raises_and_wrong_answer_lowers_belief() {
        let p = BktParams::default();
        assert!(p.posterior(0.5, obs(true)) > 0.5);
        assert!(p.posterior(0.5, obs(false)) < 0.5);
    }

    #[test]
    fn update_matches_hand_computation() {
        let p = BktParams {
            prior: 0.3,
            learn: 0.1,
            guess: 0.2,
            slip: 0.1,
            forget: 0.0,
        };
        // posterior = 0.3*0.9 / (0.3*0.9 + 0.7*0.2) = 0.27 / 0.41
        let post = 0.27 / 0.41;
        let expected = post + (1.0 - post) * 0.1;
        assert!((p.update(0.3, obs(true)) - expected).abs() < 1e-12);
    }

    #[test]
    fn full_score_equals_correct_answer() {
        let p = BktParams::default();
        let scored = Observation {
            correct: false,
            score: Some(1.0),
        };
        assert!((p.update(0.4, scored) - p.update(0.4, obs(true))).abs() < 1e-12);
    }

    #[test]
    fn validate_names_bad_parameter() {
        let p = BktParams {
            slip: f64::NAN,
            ..BktParams::default()
        };
        assert!(p.validate().unwrap_err().starts_with("slip"));
    }
}
