//! A simulated cohort world whose future is known: what the alert models
//! are trained on and what the alert evaluation (`spoc eval-alerts`) checks
//! them against.
//!
//! One program of `units` skills (two alternative modules each) over
//! `weeks` weeks plus a grace week. Each learner has a usual rhythm
//! (sessions per week, minutes per session), a motivation that drifts day
//! by day around their own mean, and an ability that sets how long a unit
//! takes and how often quiz answers are right. A session is one module
//! event at its end (completed when the unit is done, started otherwise)
//! with the minutes spent, then two or three quiz answers on the unit's
//! skill. Every day a learner may start drifting away, more likely when
//! motivation is low and after a run of wrong answers: while they drift,
//! sessions get rarer and shorter than their own habit, and each day they
//! may stop for good (a dropout) or come back. A few stop at once, with
//! nothing to see before (a new job, a move).
//!
//! Three kinds of learners make the alerts' false alarms measurable:
//! slow-but-steady learners (fewer, shorter sessions, stable motivation,
//! rarely stop, often finish late), pausers (a planned break of one to
//! three weeks, declared through the API or not), and completers, who stop
//! because they are done.
//!
//! The truth of every learner (when they stopped, completed, paused) stays
//! here; only the events an LMS would send leave it. Everything is drawn
//! from seeded `ChaCha8Rng` streams, one per learner, so a world is the
//! same everywhere for given parameters.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::signals::MICROS_PER_DAY;
use crate::domain::learner::Micros;

/// The parameters of a world: several worlds with different values let a
/// model be trained on some and judged on others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorldParams {
    /// A name for reports.
    pub name: String,
    /// Seed of every draw.
    pub seed: u64,
    /// Learners in the program.
    pub learners: usize,
    /// Program length in weeks (a grace week follows).
    pub weeks: u32,
    /// Skills to cover, one unit each.
    pub units: u32,
    /// Median sessions per week of a regular learner.
    pub sessions_per_week: f64,
    /// Spread (log scale) of the usual rhythm across learners.
    pub rhythm_spread: f64,
    /// Standard deviation of the daily motivation drift.
    pub drift: f64,
    /// Daily pull of motivation back to the learner's own mean.
    pub reversion: f64,
    /// Log-odds of starting to drift away on a given day at average
    /// motivation.
    pub hazard_base: f64,
    /// Fall of those log-odds per unit of motivation.
    pub hazard_motivation: f64,
    /// Rise of those log-odds per wrong answer in the current run.
    pub hazard_failures: f64,
    /// Mean days a learner drifts before stopping for good.
    pub drift_days: f64,
    /// Daily probability that a drifting learner comes back.
    pub recover: f64,
    /// Daily fall (log scale) of session frequency while drifting.
    pub fade: f64,
    /// Daily probability of stopping at once, with no drift before.
    pub abrupt: f64,
    /// Motivation lost per wrong answer.
    pub failure_motivation: f64,
    /// Minutes a learner of average ability needs per unit.
    pub unit_minutes: f64,
    /// Share of slow-but-steady learners.
    pub slow_share: f64,
    /// Share of learners who take a planned pause.
    pub pause_share: f64,
    /// Share of pauses declared through the API.
    pub pause_declared: f64,
}

impl WorldParams {
    /// A world of 400 learners over 8 weeks with the middle of every
    /// parameter range; [`training_worlds`] and [`held_out_worlds`] vary
    /// it.
    pub fn base(name: &str, seed: u64) -> Self {
        Self {
            name: name.to_string(),
            seed,
            learners: 400,
            weeks: 8,
            units: 12,
            sessions_per_week: 2.6,
            rhythm_spread: 0.45,
            drift: 0.22,
            reversion: 0.05,
            hazard_base: -5.0,
            hazard_motivation: 0.9,
            hazard_failures: 0.25,
            drift_days: 24.0,
            recover: 0.02,
            fade: 0.2,
            abrupt: 0.001,
            failure_motivation: 0.04,
            unit_minutes: 45.0,
            slow_share: 0.15,
            pause_share: 0.10,
            pause_declared: 0.7,
        }
    }
}

/// The worlds the shipped models are trained on: three parameter sets.
pub fn training_worlds(learners: usize) -> Vec<WorldParams> {
    vec![
        WorldParams {
            learners,
            ..WorldParams::base("train-a", 101)
        },
        WorldParams {
            learners,
            drift: 0.3,
            hazard_base: -4.8,
            rhythm_spread: 0.6,
            drift_days: 14.0,
            ..WorldParams::base("train-b", 202)
        },
        WorldParams {
            learners,
            weeks: 10,
            sessions_per_week: 2.2,
            hazard_failures: 0.4,
            slow_share: 0.2,
            ..WorldParams::base("train-c", 303)
        },
    ]
}

/// Worlds no shipped model saw, with other parameters (other seeds, a
/// shorter and a longer program, calmer and more volatile motivation,
/// more pauses): what the alert evaluation reports on.
pub fn held_out_worlds(learners: usize) -> Vec<WorldParams> {
    vec![
        WorldParams {
            learners,
            drift: 0.16,
            hazard_base: -5.3,
            sessions_per_week: 3.0,
            fade: 0.07,
            drift_days: 25.0,
            ..WorldParams::base("held-out-d", 404)
        },
        WorldParams {
            learners,
            weeks: 6,
            units: 10,
            drift: 0.28,
            rhythm_spread: 0.35,
            pause_share: 0.15,
            slow_share: 0.1,
            ..WorldParams::base("held-out-e", 505)
        },
        WorldParams {
            learners,
            weeks: 9,
            hazard_motivation: 1.2,
            hazard_failures: 0.15,
            abrupt: 0.002,
            recover: 0.05,
            rhythm_spread: 0.55,
            slow_share: 0.2,
            ..WorldParams::base("held-out-f", 606)
        },
    ]
}

/// How a learner behaves (never sent to the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Their own rhythm, drifting motivation.
    Regular,
    /// Few short sessions, stable motivation, rarely stops.
    SlowSteady,
    /// A regular learner who takes one planned break.
    Pauser,
}

/// What an event is.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A session in a module ended without finishing the unit.
    ModuleStarted {
        /// The module.
        module: String,
    },
    /// A session ended with the unit done.
    ModuleCompleted {
        /// The module.
        module: String,
    },
    /// A quiz answer.
    Answer {
        /// The skill it tests.
        skill: String,
        /// Whether it was right.
        correct: bool,
    },
}

/// One event as an LMS would send it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldEvent {
    /// When it happened.
    pub at: Micros,
    /// What it is.
    pub kind: EventKind,
    /// Time spent, in milliseconds (the session for a module event).
    pub time_spent_ms: u64,
}

/// A planned break.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WorldPause {
    /// First paused instant.
    pub starts_at: Micros,
    /// First instant back.
    pub ends_at: Micros,
    /// Whether the LMS declares it (at its start).
    pub declared: bool,
}

/// One learner, what they did and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldLearner {
    /// Learner id.
    pub id: String,
    /// How they behave.
    pub profile: Profile,
    /// Their events, oldest first.
    pub events: Vec<WorldEvent>,
    /// Their planned break, if any.
    pub pause: Option<WorldPause>,
    /// For a learner who stopped before completing (a dropout): the day
    /// they stopped for good (midnight); their last event comes before.
    pub stopped_at: Option<Micros>,
    /// When the last unit was done, for a completer.
    pub completed_at: Option<Micros>,
}

impl WorldLearner {
    /// Still in the program at `t`: not completed before it, not already
    /// stopped.
    pub fn active_at(&self, t: Micros) -> bool {
        self.completed_at.is_none_or(|c| c >= t) && self.stopped_at.is_none_or(|s| s >= t)
    }

    /// Stops (a dropout's stop) within `days` after `t`.
    pub fn stops_within(&self, t: Micros, days: f64) -> bool {
        self.stopped_at
            .is_some_and(|s| s >= t && ((s - t) as f64) < days * MICROS_PER_DAY as f64)
    }

    /// Whether `t` falls in a declared pause.
    pub fn in_declared_pause(&self, t: Micros) -> bool {
        self.pause
            .is_some_and(|p| p.declared && p.starts_at <= t && t < p.ends_at)
    }

    /// Whether `t` falls in a pause, declared or not.
    pub fn in_pause(&self, t: Micros) -> bool {
        self.pause
            .is_some_and(|p| p.starts_at <= t && t < p.ends_at)
    }

    /// Whether the learner completed by `deadline`.
    pub fn completed_by(&self, deadline: Micros) -> bool {
        self.completed_at.is_some_and(|c| c <= deadline)
    }
}

/// One unit of the program: a skill and its two alternative modules.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Skill id.
    pub skill: String,
    /// Module ids teaching it.
    pub modules: [String; 2],
}

/// A generated world.
#[derive(Debug, Clone)]
pub struct World {
    /// Its parameters.
    pub params: WorldParams,
    /// Program start (midnight UTC, a Monday).
    pub starts_at: Micros,
    /// Program end (start + weeks).
    pub ends_at: Micros,
    /// The units in program order.
    pub units: Vec<Unit>,
    /// The learners, in id order.
    pub learners: Vec<WorldLearner>,
}

impl World {
    /// The program end plus the grace week: completion is judged then.
    pub fn deadline(&self) -> Micros {
        self.ends_at + GRACE_DAYS * MICROS_PER_DAY
    }

    /// Midnight of day `day` of the program.
    pub fn day(&self, day: i64) -> Micros {
        self.starts_at + day * MICROS_PER_DAY
    }
}

/// Days after the end during which learners may still finish.
pub const GRACE_DAYS: i64 = 7;

/// 2025-09-01T00:00:00Z, a Monday: day 0 of every world (the evaluation
/// shifts it to the present).
pub const WORLD_EPOCH: Micros = 1_756_684_800_000_000;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A standard normal draw (Box-Muller), to stay on `rand` alone.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Generates a world. Deterministic for given parameters.
pub fn generate(params: &WorldParams) -> World {
    let units: Vec<Unit> = (1..=params.units)
        .map(|u| Unit {
            skill: format!("w-s{u:02}"),
            modules: [format!("w-m{u:02}a"), format!("w-m{u:02}b")],
        })
        .collect();
    let width = params.learners.to_string().len().max(3);
    let learners = (0..params.learners)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
            rng.set_stream(i as u64 + 1);
            simulate(params, &units, format!("w{i:0width$}"), &mut rng)
        })
        .collect();
    World {
        starts_at: WORLD_EPOCH,
        ends_at: WORLD_EPOCH + i64::from(params.weeks) * 7 * MICROS_PER_DAY,
        params: params.clone(),
        units,
        learners,
    }
}

/// A learner's character, drawn once before their first day.
struct Traits {
    profile: Profile,
    /// The motivation they revert to.
    mean: f64,
    /// Their motivation on day 0.
    motivation: f64,
    /// Daily random walk of the motivation.
    drift: f64,
    /// Sessions per week.
    rate: f64,
    /// Typical session length.
    session_minutes: f64,
    ability: f64,
    /// Minutes of study a unit takes them.
    need: f64,
    /// Scales their stopping hazards (slow-but-steady learners rarely stop).
    hazard_scale: f64,
    pause: Option<WorldPause>,
    /// Which of each unit's modules they take.
    module_choice: usize,
}

/// Draws a learner's traits (the draws in a fixed order, so a seed gives
/// the same world).
fn draw_traits(params: &WorldParams, total_days: i64, rng: &mut ChaCha8Rng) -> Traits {
    let draw: f64 = rng.random();
    let profile = if draw < params.slow_share {
        Profile::SlowSteady
    } else if draw < params.slow_share + params.pause_share {
        Profile::Pauser
    } else {
        Profile::Regular
    };
    let slow = profile == Profile::SlowSteady;
    let mean = if slow {
        0.6 + 0.3 * normal(rng)
    } else {
        normal(rng)
    };
    let motivation = mean + 0.4 * normal(rng);
    let drift = if slow {
        0.3 * params.drift
    } else {
        params.drift
    };
    let rate = (params.sessions_per_week
        * (params.rhythm_spread * normal(rng) + 0.15 * mean).exp()
        * if slow { 0.55 } else { 1.0 })
    .clamp(0.6, 6.0);
    let session_minutes = 35.0 * (0.3 * normal(rng)).exp() * if slow { 0.75 } else { 1.0 };
    let ability = if slow {
        -0.7 + 0.4 * normal(rng)
    } else {
        normal(rng)
    };
    let need = params.unit_minutes * (-0.35 * ability).exp();
    let hazard_scale = if slow { 0.25 } else { 1.0 };
    let pause = (profile == Profile::Pauser).then(|| {
        let latest = (total_days - GRACE_DAYS - 21).max(11);
        let start = rng.random_range(10..=latest);
        let length = rng.random_range(7..=21);
        WorldPause {
            starts_at: WORLD_EPOCH + start * MICROS_PER_DAY,
            ends_at: WORLD_EPOCH + (start + length) * MICROS_PER_DAY,
            declared: rng.random_bool(params.pause_declared),
        }
    });
    let module_choice = usize::from(rng.random_bool(0.5));
    Traits {
        profile,
        mean,
        motivation,
        drift,
        rate,
        session_minutes,
        ability,
        need,
        hazard_scale,
        pause,
        module_choice,
    }
}

/// How a learner stands as the days go.
struct Standing {
    motivation: f64,
    /// Wrong answers in a row.
    wrong_run: u32,
    /// Days spent drifting away, while it lasts.
    drifting: Option<u32>,
}

/// Plays one learner's weeks.
fn simulate(
    params: &WorldParams,
    units: &[Unit],
    id: String,
    rng: &mut ChaCha8Rng,
) -> WorldLearner {
    let total_days = i64::from(params.weeks) * 7 + GRACE_DAYS;
    let t = draw_traits(params, total_days, rng);
    let mut learner = WorldLearner {
        id,
        profile: t.profile,
        events: Vec::new(),
        pause: t.pause,
        stopped_at: None,
        completed_at: None,
    };
    let mut st = Standing {
        motivation: t.motivation,
        wrong_run: 0,
        drifting: None,
    };
    let mut unit = 0usize;
    let mut progress = 0.0f64;
    let mut stopped = None;
    for day in 0..total_days {
        let midnight = WORLD_EPOCH + day * MICROS_PER_DAY;
        st.motivation += params.reversion * (t.mean - st.motivation) + t.drift * normal(rng);
        let paused = t
            .pause
            .is_some_and(|p| p.starts_at <= midnight && midnight < p.ends_at);
        if paused {
            continue;
        }
        // Stopping is judged before the end only: after it, learners who
        // have not finished simply run out of time.
        if day < total_days - GRACE_DAYS && stops_today(params, &t, &mut st, rng) {
            stopped = Some(midnight);
            break;
        }
        let fading = st.drifting.map_or(0.0, |d| params.fade * f64::from(d));
        let weekend = day % 7 >= 5;
        let p = (t.rate / 5.0
            * (0.7 * (st.motivation - t.mean) - fading).exp()
            * if weekend { 0.12 } else { 1.0 })
        .clamp(0.0, 0.95);
        if !rng.random_bool(p) {
            continue;
        }
        let start = midnight + rng.random_range(8 * 60..19 * 60) * 60_000_000;
        let minutes = (t.session_minutes
            * (0.4 * (st.motivation - t.mean) - 0.5 * fading + 0.25 * normal(rng)).exp())
        .clamp(5.0, 180.0);
        let Unit { skill, modules } = &units[unit];
        progress += minutes / t.need;
        let ends = start + (minutes * 60_000_000.0) as i64;
        let module = modules[t.module_choice].clone();
        let done = progress >= 1.0;
        learner.events.push(WorldEvent {
            at: ends,
            kind: if done {
                EventKind::ModuleCompleted { module }
            } else {
                EventKind::ModuleStarted { module }
            },
            time_spent_ms: (minutes * 60_000.0) as u64,
        });
        let answers = quiz(params, &t, progress, skill, ends, &mut st, rng);
        learner.events.extend(answers);
        if done {
            unit += 1;
            progress = 0.0;
            if unit == units.len() {
                learner.completed_at = Some(ends);
                break;
            }
        }
    }
    learner.stopped_at = stopped;
    learner
}

/// Whether the learner stops today: a drift away may start (likelier with
/// low motivation and failures), then end in stopping or recover; an
/// abrupt stop may come any day.
fn stops_today(params: &WorldParams, t: &Traits, st: &mut Standing, rng: &mut ChaCha8Rng) -> bool {
    match st.drifting {
        None => {
            let hazard = t.hazard_scale
                * sigmoid(
                    params.hazard_base - params.hazard_motivation * st.motivation
                        + params.hazard_failures * f64::from(st.wrong_run.min(6)),
                );
            if rng.random_bool(hazard.clamp(0.0, 1.0)) {
                st.drifting = Some(0);
            }
        }
        Some(days) => {
            if rng.random_bool((1.0 / params.drift_days).clamp(0.0, 1.0)) {
                return true;
            }
            st.drifting = if rng.random_bool(params.recover) {
                None
            } else {
                Some(days + 1)
            };
        }
    }
    rng.random_bool(params.abrupt * t.hazard_scale)
}

/// The quiz that follows a module session ending at `ends`: two or three
/// answers on `skill`, each failure lowering the motivation.
fn quiz(
    params: &WorldParams,
    t: &Traits,
    progress: f64,
    skill: &str,
    ends: Micros,
    st: &mut Standing,
    rng: &mut ChaCha8Rng,
) -> Vec<WorldEvent> {
    let answers = 2 + usize::from(rng.random_bool(0.5));
    (0..answers)
        .map(|k| {
            let p_right = sigmoid(0.2 + t.ability + 1.6 * progress.min(1.2) - 0.8);
            let correct = rng.random_bool(p_right);
            if correct {
                st.wrong_run = 0;
            } else {
                st.wrong_run += 1;
                st.motivation -= params.failure_motivation;
            }
            WorldEvent {
                at: ends + (k as i64 + 1) * 2 * 60_000_000,
                kind: EventKind::Answer {
                    skill: skill.to_string(),
                    correct,
                },
                time_spent_ms: 60_000,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> WorldParams {
        WorldParams {
            learners: 300,
            ..WorldParams::base("test", seed)
        }
    }

    #[test]
    fn same_parameters_same_world() {
        let a = generate(&small(1));
        let b = generate(&small(1));
        assert_eq!(a.learners, b.learners);
        assert_ne!(a.learners, generate(&small(2)).learners);
    }

    #[test]
    fn the_world_holds_every_kind_of_learner_and_outcome() {
        let world = generate(&small(3));
        let n = world.learners.len() as f64;
        let share = |f: &dyn Fn(&WorldLearner) -> bool| {
            world.learners.iter().filter(|l| f(l)).count() as f64 / n
        };
        let dropouts = share(&|l| l.stopped_at.is_some());
        let completers = share(&|l| l.completed_by(world.deadline()));
        assert!((0.15..0.5).contains(&dropouts), "dropouts {dropouts}");
        assert!((0.3..0.85).contains(&completers), "completers {completers}");
        assert!(share(&|l| l.profile == Profile::SlowSteady) > 0.05);
        assert!(share(&|l| l.pause.is_some_and(|p| p.declared)) > 0.02);
        // Slow learners rarely stop and often finish late or not at all.
        let slow: Vec<&WorldLearner> = world
            .learners
            .iter()
            .filter(|l| l.profile == Profile::SlowSteady)
            .collect();
        let slow_stopped =
            slow.iter().filter(|l| l.stopped_at.is_some()).count() as f64 / slow.len() as f64;
        assert!(slow_stopped < dropouts, "{slow_stopped} vs {dropouts}");
    }

    #[test]
    fn events_are_ordered_and_none_fall_in_a_pause_or_after_the_end() {
        let world = generate(&small(4));
        for l in &world.learners {
            assert!(l.events.windows(2).all(|w| w[0].at <= w[1].at), "{}", l.id);
            for e in &l.events {
                assert!(!l.in_pause(e.at), "{} has an event in its pause", l.id);
                assert!(e.at < world.deadline() + MICROS_PER_DAY);
            }
            if let Some(s) = l.stopped_at {
                assert!(l.events.last().is_none_or(|e| e.at < s));
                assert!(l.completed_at.is_none());
            }
        }
    }

    #[test]
    fn a_dropout_is_active_until_last_seen_and_stops_within_the_window() {
        let world = generate(&small(5));
        let l = world
            .learners
            .iter()
            .find(|l| l.stopped_at.is_some_and(|s| s > world.day(10)))
            .unwrap();
        let s = l.stopped_at.unwrap();
        assert!(l.active_at(s));
        assert!(!l.active_at(s + 1));
        assert!(l.stops_within(s - 20 * MICROS_PER_DAY, 21.0));
        assert!(!l.stops_within(s - 22 * MICROS_PER_DAY, 21.0));
    }
}
