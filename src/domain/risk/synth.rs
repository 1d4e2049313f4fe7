//! Synthetic learner histories with realistic dropout, to train and test the
//! risk model before a deployment has history of its own.
//!
//! Each learner has a latent motivation and ability. Motivation sets how
//! often they work and how long; ability how fast they learn (latent BKT).
//! Every day an engaged learner may disengage, more likely when motivation is
//! low or after a run of failures; a disengaged learner's engagement decays,
//! so gaps between sessions grow, and some recover. Failures on a skill lead
//! to remediation recommendations that engaged learners tend to follow.
//! The label is "did not complete every module by the end of a grace week":
//! here modules are the program's steps, two per skill, and each counts as
//! one unit of `ProgramCalendar` (the engine counts skills covered; both
//! measure the share of the program done).
//!
//! Signals are taken at one mid-program observation time per cohort (35-65%
//! of the calendar) from the events before it only, exactly as the engine
//! would compute them: no label leakage. Everything is drawn from one
//! seeded `ChaCha8Rng`, so a seed gives the same learners everywhere.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::signals::{
    LearnerSignals, MICROS_PER_DAY, ProgramCalendar, SignalInput, signals, trace_mastery,
};
use crate::domain::bkt::{BktParams, Observation};
use crate::domain::learner::Micros;

/// Shape of the simulated programs.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Learners to simulate.
    pub learners: usize,
    /// Learners per cohort (they share a calendar and a median time).
    pub cohort_size: usize,
    /// Modules of the program (two per skill).
    pub modules: u32,
    /// Calendar length in days.
    pub days: u32,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SynthOptions {
    /// 30-learner cohorts in an 8-week, 12-module program.
    fn default() -> Self {
        Self {
            learners: 3000,
            cohort_size: 30,
            modules: 12,
            days: 56,
            seed: 42,
        }
    }
}

/// One simulated learner: what the engine would see at the observation
/// time, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticLearner {
    /// The inputs of [`signals`] at the observation time.
    pub input: SignalInput,
    /// The signals at the observation time.
    pub signals: LearnerSignals,
    /// Whether the learner did not complete the program (the label).
    pub dropped_out: bool,
}

/// 2024-09-02T00:00:00Z, a Monday: day 0 of every simulated program.
const EPOCH: Micros = 1_725_235_200_000_000;

/// Simulates `options.learners` learners, cohort by cohort.
pub fn generate(options: &SynthOptions) -> Vec<SyntheticLearner> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut out = Vec::with_capacity(options.learners);
    let cohort_size = options.cohort_size.max(1);
    while out.len() < options.learners {
        let size = cohort_size.min(options.learners - out.len());
        let observe_day = (f64::from(options.days) * rng.random_range(0.35..0.65)).round() as i64;
        let now = EPOCH + observe_day * MICROS_PER_DAY;
        let histories: Vec<History> = (0..size).map(|_| simulate(options, &mut rng)).collect();
        let mut times: Vec<u64> = histories.iter().map(|h| h.time_spent_before(now)).collect();
        times.sort_unstable();
        let median = times[times.len() / 2];
        for h in histories {
            let input = h.input_at(now, options, median);
            out.push(SyntheticLearner {
                signals: signals(&input),
                input,
                dropped_out: !h.completed,
            });
        }
    }
    out
}

/// The labelled signals of [`generate`], ready for `model::train`.
pub fn samples(options: &SynthOptions) -> Vec<(LearnerSignals, bool)> {
    generate(options)
        .into_iter()
        .map(|l| (l.signals, l.dropped_out))
        .collect()
}

/// The whole simulated history of one learner.
struct History {
    /// (skill, correct, time) of every answer.
    answers: Vec<(String, bool, Micros)>,
    /// (time, minutes) of every work session.
    sessions: Vec<(Micros, u64)>,
    /// Completion time of each completed module.
    completions: Vec<Micros>,
    /// (time, started) of each remediation recommendation.
    recommendations: Vec<(Micros, bool)>,
    /// Every module completed by the end of the grace week.
    completed: bool,
}

impl History {
    fn time_spent_before(&self, now: Micros) -> u64 {
        self.sessions
            .iter()
            .filter(|(at, _)| *at < now)
            .map(|(_, minutes)| minutes * 60_000)
            .sum()
    }

    /// What the engine would gather at `now`: events before it only.
    fn input_at(&self, now: Micros, options: &SynthOptions, median_ms: u64) -> SignalInput {
        let tracking = BktParams::default();
        let attempts = trace_mastery(
            self.answers
                .iter()
                .filter(|(_, _, at)| *at < now)
                .map(|(skill, correct, at)| {
                    (
                        skill.as_str(),
                        Observation {
                            correct: *correct,
                            score: None,
                        },
                        *at,
                    )
                }),
            |_| tracking,
        );
        let recommended: Vec<bool> = self
            .recommendations
            .iter()
            .filter(|(at, _)| *at < now)
            .map(|(_, started)| *started)
            .collect();
        SignalInput {
            now,
            calendar: ProgramCalendar {
                starts_at: EPOCH,
                ends_at: EPOCH + i64::from(options.days) * MICROS_PER_DAY,
                units: options.modules,
            },
            enrolled_at: EPOCH,
            last_activity_at: self
                .sessions
                .iter()
                .map(|(at, _)| *at)
                .filter(|at| *at < now)
                .max(),
            units_completed: self.completions.iter().filter(|at| **at < now).count() as u32,
            attempts,
            time_spent_ms: self.time_spent_before(now),
            cohort_median_time_spent_ms: median_ms,
            recommended_modules: recommended.len() as u32,
            recommended_started: recommended.iter().filter(|s| **s).count() as u32,
            skill_names: Default::default(),
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A standard normal draw (Box-Muller), to stay on `rand` alone.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Simulates one learner over the calendar plus a grace week.
fn simulate(options: &SynthOptions, rng: &mut ChaCha8Rng) -> History {
    let motivation = normal(rng);
    let ability = normal(rng);
    let learn = sigmoid(-0.9 + 0.8 * ability);
    let (guess, slip, prior) = (0.2, 0.1, 0.15);
    let skills = options.modules.div_ceil(2).max(1);
    let mut known: Vec<bool> = (0..skills).map(|_| rng.random_bool(prior)).collect();

    let mut engagement = motivation;
    let mut engaged = true;
    let mut streak = 0u32;
    let mut module = 0u32;
    let mut history = History {
        answers: Vec::new(),
        sessions: Vec::new(),
        completions: Vec::new(),
        recommendations: Vec::new(),
        completed: false,
    };
    for day in 0..i64::from(options.days) + 7 {
        if module >= options.modules {
            break;
        }
        if engaged {
            engagement += 0.15 * (motivation - engagement) + 0.15 * normal(rng);
            let hazard = 0.004 + sigmoid(-5.4 - 0.9 * motivation + 0.35 * f64::from(streak));
            if rng.random_bool(hazard) {
                engaged = false;
            }
        } else {
            engagement -= 0.2 + 0.1 * rng.random::<f64>();
            if rng.random_bool(0.04) {
                engaged = true;
                engagement = engagement.max(motivation - 0.5);
            }
        }
        let weekend = day % 7 >= 5;
        let p_active = sigmoid(0.6 + 1.3 * engagement) * if weekend { 0.15 } else { 1.0 };
        if !rng.random_bool(p_active.clamp(0.0, 1.0)) {
            continue;
        }
        let start = EPOCH + day * MICROS_PER_DAY + rng.random_range(8 * 60..18 * 60) * 60_000_000;
        let minutes = (25.0
            * (0.25 * motivation + 0.3 * normal(rng)).exp()
            * if engaged { 1.0 } else { 0.6 })
        .round()
        .max(1.0) as u64;
        history.sessions.push((start, minutes));
        let skill = (module / 2) as usize;
        let tries = 1 + usize::from(rng.random_bool(0.5)) + usize::from(rng.random_bool(0.2));
        let mut last_correct = false;
        for k in 0..tries {
            let correct = rng.random_bool(if known[skill] { 1.0 - slip } else { guess });
            let at = start + (k as i64 + 1) * 5 * 60_000_000;
            history.answers.push((format!("s{skill}"), correct, at));
            if !known[skill] && rng.random_bool(learn) {
                known[skill] = true;
            }
            last_correct = correct;
            if correct {
                streak = 0;
                engagement += 0.05;
            } else {
                streak += 1;
                engagement -= 0.06;
                if streak == 2 {
                    let started = rng.random_bool(sigmoid(0.5 + engagement));
                    history.recommendations.push((at, started));
                }
            }
        }
        if last_correct {
            history
                .completions
                .push(start + minutes as i64 * 60_000_000);
            module += 1;
        }
    }
    history.completed = module >= options.modules;
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthOptions {
        SynthOptions {
            learners: 300,
            seed: 7,
            ..SynthOptions::default()
        }
    }

    #[test]
    fn same_seed_same_learners() {
        assert_eq!(generate(&small()), generate(&small()));
        let other = SynthOptions { seed: 8, ..small() };
        assert_ne!(samples(&small()), samples(&other));
    }

    #[test]
    fn dropout_rate_is_realistic() {
        let s = samples(&small());
        let rate = s.iter().filter(|(_, y)| *y).count() as f64 / s.len() as f64;
        assert!((0.15..0.6).contains(&rate), "dropout rate {rate}");
    }

    #[test]
    fn dropouts_look_disengaged_at_mid_program() {
        let s = samples(&small());
        let mean = |dropped: bool, f: fn(&LearnerSignals) -> f64| {
            let v: Vec<f64> = s
                .iter()
                .filter(|(_, y)| *y == dropped)
                .map(|(x, _)| f(x))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(true, |x| x.days_inactive) > mean(false, |x| x.days_inactive));
        assert!(mean(true, |x| x.pace_gap) > mean(false, |x| x.pace_gap));
        assert!(mean(true, |x| x.time_ratio) < mean(false, |x| x.time_ratio));
    }

    #[test]
    fn inputs_hold_no_event_after_the_observation_time() {
        for l in generate(&small()) {
            assert!(l.input.attempts.iter().all(|a| a.at < l.input.now));
            assert!(l.input.last_activity_at.is_none_or(|t| t < l.input.now));
        }
    }
}
