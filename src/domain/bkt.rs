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

    /// The belief before any attempt.
    pub fn prior_belief(&self) -> Belief {
        Belief::from_p_known(self.prior)
    }

    /// P(correct) predicted for the next answer under `belief`.
    pub fn p_correct(&self, belief: Belief) -> f64 {
        belief.p_known() * (1.0 - self.slip) + belief.p_unknown() * self.guess
    }

    /// Bayes' rule: the belief after the observation. In log-odds it adds
    /// the log-likelihood ratio of the answer, so no answer is ever lost to
    /// rounding.
    pub fn posterior(&self, belief: Belief, obs: Observation) -> Belief {
        let credit = obs
            .score
            .unwrap_or(if obs.correct { 1.0 } else { 0.0 })
            .clamp(0.0, 1.0);
        // Likelihood of the observation if known / unknown; a score mixes the
        // likelihoods of a right and a wrong answer.
        let if_known = credit * (1.0 - self.slip) + (1.0 - credit) * self.slip;
        let if_unknown = credit * self.guess + (1.0 - credit) * (1.0 - self.guess);
        let odds = belief.0;
        Belief(match (if_known > 0.0, if_unknown > 0.0) {
            (true, true) => odds + (if_known.ln() - if_unknown.ln()),
            // Only one state explains the answer, unless the other is
            // certain (then nothing explains it, and the belief stays).
            (false, true) if odds != f64::INFINITY => f64::NEG_INFINITY,
            (true, false) if odds != f64::NEG_INFINITY => f64::INFINITY,
            _ => odds,
        })
    }

    /// The learning (and forgetting) transition between two opportunities:
    /// P(known') = P(known)(1 - forget) + P(unknown) learn, computed on the
    /// log scale so that neither side is rounded away.
    pub fn transition(&self, belief: Belief) -> Belief {
        let (learn, forget) = (self.learn, self.forget);
        if forget == 0.0 {
            // odds' = (odds + learn) / (1 - learn)
            return Belief(ln_add_exp(belief.0, learn.ln()) - (1.0 - learn).ln());
        }
        let (known, unknown) = belief.ln_pair();
        let next_known = ln_add_exp(known + (1.0 - forget).ln(), unknown + learn.ln());
        let next_unknown = ln_add_exp(known + forget.ln(), unknown + (1.0 - learn).ln());
        Belief(next_known - next_unknown)
    }

    /// The full BKT step: condition on the answer, then apply the transition.
    /// The result is the belief at the next opportunity, whose P(known) is
    /// the value reported as "P(mastered)".
    pub fn update(&self, belief: Belief, obs: Observation) -> Belief {
        self.transition(self.posterior(belief, obs))
    }

    /// Replays a whole sequence of answers from the prior.
    pub fn replay(&self, observations: impl IntoIterator<Item = Observation>) -> Belief {
        observations
            .into_iter()
            .fold(self.prior_belief(), |b, obs| self.update(b, obs))
    }
}

/// One learner's belief about one skill: the log-odds
/// `ln(P(known) / P(unknown))`.
///
/// P(known) alone, as one `f64`, rounds to exactly 1.0 once P(unknown)
/// falls below 1.1e-16 (some 18 to 22 right answers in a row), and from
/// there Bayes' rule has nothing left to move: no number of wrong answers
/// brings it down. The log-odds keep P(known) and P(unknown) apart, each
/// with its own relative precision, over the whole range of `f64`
/// exponents; `±inf` stand for certainty (a prior of 0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Belief(f64);

impl Belief {
    /// The belief that P(known) is `p` (a probability in `[0, 1]`).
    pub fn from_p_known(p: f64) -> Self {
        Self(p.ln() - (1.0 - p).ln())
    }

    /// The belief of log-odds `log_odds` (`±inf` for certainty; NaN is
    /// taken as even odds).
    pub fn from_log_odds(log_odds: f64) -> Self {
        Self(if log_odds.is_nan() { 0.0 } else { log_odds })
    }

    /// `ln(P(known) / P(unknown))`.
    pub fn log_odds(self) -> f64 {
        self.0
    }

    /// P(known), the value reported as "P(mastered)".
    pub fn p_known(self) -> f64 {
        sigmoid(self.0)
    }

    /// P(unknown) = 1 - P(known), with its own precision (not computed as
    /// `1 - p_known`).
    pub fn p_unknown(self) -> f64 {
        sigmoid(-self.0)
    }

    /// `(ln P(known), ln P(unknown))`, both from one exponential.
    fn ln_pair(self) -> (f64, f64) {
        let x = self.0;
        let tail = (-x.abs()).exp().ln_1p();
        if x >= 0.0 {
            (-tail, -x - tail)
        } else {
            (x - tail, -tail)
        }
    }
}

/// `1 / (1 + e^-x)` without overflow on either side.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(e^a + e^b)` for `a, b` in `[-inf, +inf)`.
fn ln_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    a.max(b) + (-(a - b).abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;
    use num_rational::BigRational;
    use num_traits::Zero;
    use proptest::prelude::*;

    fn obs(correct: bool) -> Observation {
        Observation {
            correct,
            score: None,
        }
    }

    fn at(p: f64) -> Belief {
        Belief::from_p_known(p)
    }

    #[test]
    fn correct_answer_raises_and_wrong_answer_lowers_belief() {
        let p = BktParams::default();
        assert!(p.posterior(at(0.5), obs(true)).p_known() > 0.5);
        assert!(p.posterior(at(0.5), obs(false)).p_known() < 0.5);
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
        assert!((p.update(at(0.3), obs(true)).p_known() - expected).abs() < 1e-12);
        let forgetting = BktParams { forget: 0.05, ..p };
        let expected = post * 0.95 + (1.0 - post) * 0.1;
        let got = forgetting.update(at(0.3), obs(true));
        assert!((got.p_known() - expected).abs() < 1e-12);
        assert!((got.p_unknown() - (1.0 - expected)).abs() < 1e-12);
    }

    #[test]
    fn full_score_equals_correct_answer() {
        let p = BktParams::default();
        let scored = Observation {
            correct: false,
            score: Some(1.0),
        };
        let (a, b) = (p.update(at(0.4), scored), p.update(at(0.4), obs(true)));
        assert!((a.log_odds() - b.log_odds()).abs() < 1e-12);
    }

    #[test]
    fn validate_names_bad_parameter() {
        let p = BktParams {
            slip: f64::NAN,
            ..BktParams::default()
        };
        assert!(p.validate().unwrap_err().starts_with("slip"));
    }

    /// The case: past the point where P(known) rounds to 1.0, wrong
    /// answers still bring mastery down (a single `f64` P(known) stayed at
    /// exactly 1.0 through 50 wrong answers).
    #[test]
    fn mastery_falls_again_after_a_long_run_of_right_answers() {
        let p = BktParams {
            prior: 0.4,
            learn: 0.2,
            guess: 0.15,
            slip: 0.08,
            forget: 0.0,
        };
        let mut belief = p.replay((0..25).map(|_| obs(true)));
        assert_eq!(belief.p_known(), 1.0, "rounds to 1.0 as an f64");
        let mut previous = belief.log_odds();
        for _ in 0..40 {
            belief = p.update(belief, obs(false));
            assert!(
                belief.log_odds() < previous,
                "each wrong answer moves it down"
            );
            previous = belief.log_odds();
        }
        assert!(belief.p_known() < 0.5, "{}", belief.p_known());
    }

    #[test]
    fn certainty_is_kept_and_never_turns_into_nan() {
        let sure = BktParams {
            prior: 1.0,
            learn: 0.0,
            guess: 0.0,
            slip: 0.0,
            forget: 0.0,
        };
        let b = sure.replay([obs(false), obs(true)]);
        assert_eq!(b.p_known(), 1.0);
        let unsure = BktParams {
            prior: 0.0,
            learn: 1.0,
            forget: 1.0,
            ..sure
        };
        for o in [obs(true), obs(false)] {
            assert!(!unsure.update(unsure.prior_belief(), o).log_odds().is_nan());
        }
    }

    /// Exact arithmetic from the very `f64` parameter values the filter
    /// uses: each is an integer over one common power-of-two denominator
    /// `one`, and a belief is the pair of big integers P(known) and
    /// P(unknown) are in proportion to. A step only multiplies and adds
    /// (no rounding, and no reduction by a gcd, which made rationals slow
    /// on long runs).
    struct Exact {
        one: BigInt,
        prior: BigInt,
        learn: BigInt,
        guess: BigInt,
        slip: BigInt,
        forget: BigInt,
    }

    /// Weights of known and unknown: P(known) = known / (known + unknown).
    struct Weights {
        known: BigInt,
        unknown: BigInt,
    }

    impl Exact {
        fn new(p: &BktParams) -> Self {
            let values = [p.prior, p.learn, p.guess, p.slip, p.forget]
                .map(|x| BigRational::from_float(x).expect("finite"));
            // Every denominator is a power of two: the largest is a
            // multiple of the others.
            let one = values
                .iter()
                .map(|v| v.denom().clone())
                .max()
                .expect("five values");
            let [prior, learn, guess, slip, forget] =
                values.map(|v| v.numer() * (&one / v.denom()));
            Self {
                one,
                prior,
                learn,
                guess,
                slip,
                forget,
            }
        }

        fn prior(&self) -> Weights {
            Weights {
                known: self.prior.clone(),
                unknown: &self.one - &self.prior,
            }
        }

        /// One step: the posterior k / (k + u), then learning and forgetting,
        /// both weights scaled by the same (k + u) and `one`.
        fn update(&self, w: &Weights, correct: bool) -> Weights {
            let (if_known, if_unknown) = if correct {
                (&self.one - &self.slip, self.guess.clone())
            } else {
                (self.slip.clone(), &self.one - &self.guess)
            };
            let (k, u) = (&w.known * if_known, &w.unknown * if_unknown);
            Weights {
                known: &k * (&self.one - &self.forget) + &u * &self.learn,
                unknown: &k * &self.forget + &u * (&self.one - &self.learn),
            }
        }
    }

    /// `ln x` of a positive big integer, exact to `f64` precision at any size.
    fn ln_big(x: &BigInt) -> f64 {
        let bits = x.bits();
        let shift = bits.saturating_sub(60);
        let top: BigInt = x >> shift;
        let top: f64 = top.to_string().parse().expect("integer");
        top.ln() + shift as f64 * std::f64::consts::LN_2
    }

    /// `ln(known / unknown)` of an exact belief strictly inside (0, 1).
    fn exact_log_odds(w: &Weights) -> f64 {
        ln_big(&w.known) - ln_big(&w.unknown)
    }

    fn params() -> impl Strategy<Value = BktParams> {
        (
            0.01f64..0.99,
            0.0f64..0.5,
            0.01f64..0.45,
            0.01f64..0.45,
            prop_oneof![Just(0.0), 0.0f64..0.2],
        )
            .prop_map(|(prior, learn, guess, slip, forget)| BktParams {
                prior,
                learn,
                guess,
                slip,
                forget,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// On long runs (18 or more right answers, then wrong ones, then a
        /// random tail), the filter agrees with exact arithmetic at every
        /// step, in log-odds, so P(known) and P(unknown) both keep their
        /// relative precision; and once right answers have pushed P(known)
        /// up, a wrong answer moves it down whenever the exact filter does.
        #[test]
        fn filter_agrees_with_exact_arithmetic_on_long_runs(
            p in params(),
            right in 18usize..60,
            wrong in 1usize..30,
            tail in proptest::collection::vec(proptest::bool::ANY, 0..40),
        ) {
            let exact = Exact::new(&p);
            let mut known = exact.prior();
            let mut belief = p.prior_belief();
            let mut was = exact_log_odds(&known);
            let answers = std::iter::repeat_n(true, right)
                .chain(std::iter::repeat_n(false, wrong))
                .chain(tail);
            for (t, correct) in answers.enumerate() {
                let next_known = exact.update(&known, correct);
                let next = p.update(belief, obs(correct));
                let want = exact_log_odds(&next_known);
                prop_assert!(
                    (next.log_odds() - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "step {t}: {} vs exact {want}", next.log_odds()
                );
                // A fall the exact filter sees beyond rounding is seen.
                if !correct && want < was - 1e-6 * want.abs().max(1.0) {
                    prop_assert!(next.log_odds() < belief.log_odds(), "step {t} did not fall");
                }
                was = want;
                let (k, u) = (next.p_known(), next.p_unknown());
                prop_assert!((k + u - 1.0).abs() < 1e-12);
                prop_assert!(!next_known.known.is_zero());
                known = next_known;
                belief = next;
            }
        }
    }
}
