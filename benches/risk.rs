//! Alert-model benchmark (harness = false), in the domain alone (no
//! engine): the two models and the baseline trained on the training
//! worlds, judged on worlds they never saw, each world left out in turn.
//!
//! ```text
//! cargo bench --bench risk                          # 1000 learners per world
//! cargo bench --bench risk -- --learners 400 --seed 7
//! ```
//!
//! For each held-out world: the stopping model's and the baseline's AUC
//! for "stops within 21 days" among learners still in the program (not on
//! a declared pause), observed every 3 days; the behind-schedule model's
//! AUC for non-completion; the precision of each among the fifth of the
//! observations it ranks first (the budget's 5 per 25) over the base rate
//! (lift). Then leave-one-world-out over all six worlds:
//! trained on five, judged on the sixth. Timings of simulation and fit.
//! `spoc eval-alerts` measures the same models through the running engine.

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use spoc_engine::domain::risk::auc;
use spoc_engine::domain::risk::model::{TrainOptions, train};
use spoc_engine::domain::risk::training::{
    BASELINE_FEATURES, BEHIND_SCHEDULE_FEATURES, STOPPING_FEATURES, TrainingSet, observe,
    training_cuts, training_set,
};
use spoc_engine::domain::risk::world::{World, generate, held_out_worlds, training_worlds};

/// Scores of one world's observations.
#[derive(Default)]
struct Scores {
    stop: Vec<f64>,
    base: Vec<f64>,
    stops: Vec<bool>,
    pace: Vec<f64>,
    late: Vec<bool>,
}

/// Precision among the fifth of the observations ranked first (the
/// budget's 5 per 25), over the base rate.
fn lift_at_budget(scores: &[f64], stops: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let k = scores.len() * 5 / 25;
    let hits = order[..k].iter().filter(|i| stops[**i]).count() as f64;
    let rate = stops.iter().filter(|y| **y).count() as f64 / stops.len() as f64;
    hits / k as f64 / rate
}

/// Trains the three models on `set`.
fn fit(set: &TrainingSet, seed: u64) -> [spoc_engine::domain::risk::LinearModel; 3] {
    let options = TrainOptions {
        seed,
        ..TrainOptions::default()
    };
    [
        train(&set.stopping, &STOPPING_FEATURES, "stop", &options).expect("stopping model"),
        train(&set.stopping, &BASELINE_FEATURES, "baseline", &options).expect("baseline"),
        train(
            &set.behind_schedule,
            &BEHIND_SCHEDULE_FEATURES,
            "behind",
            &options,
        )
        .expect("behind-schedule model"),
    ]
}

/// Scores every observation of `world` with the three models.
fn score(world: &World, models: &[spoc_engine::domain::risk::LinearModel; 3]) -> Scores {
    let mut s = Scores::default();
    for at in training_cuts(world) {
        for o in observe(world, at) {
            if !o.active {
                continue;
            }
            s.pace.push(models[2].predict(&o.features));
            s.late.push(o.not_completing);
            if !o.declared_pause {
                s.stop.push(models[0].predict(&o.features));
                s.base.push(models[1].predict(&o.features));
                s.stops.push(o.stops_soon);
            }
        }
    }
    s
}

fn main() {
    let mut learners = 1000usize;
    let mut seed = 42u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--learners" => {
                i += 1;
                learners = args[i].parse().expect("--learners takes a number");
            }
            "--seed" => {
                i += 1;
                seed = args[i].parse().expect("--seed takes a number");
            }
            // `cargo bench` passes --bench; ignore anything else.
            _ => {}
        }
        i += 1;
    }
    let t0 = Instant::now();
    let train: Vec<World> = training_worlds(learners).iter().map(generate).collect();
    let held: Vec<World> = held_out_worlds(learners).iter().map(generate).collect();
    let simulate_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let set = training_set(&train);
    let models = fit(&set, seed);
    let train_s = t1.elapsed().as_secs_f64();
    println!(
        "trained on {} worlds of {learners} learners: {} stopping, {} behind-schedule examples \
         (simulate {simulate_s:.1}s, observe and fit {train_s:.1}s)",
        train.len(),
        set.stopping.len(),
        set.behind_schedule.len()
    );
    println!(
        "{:<12} {:>7} {:>9} {:>10} {:>9} {:>12} {:>8} {:>8}",
        "world", "stop%", "stop AUC", "baseline", "pace AUC", "not complete%", "lift@b", "base l@b"
    );
    let mut pooled = Scores::default();
    for world in &held {
        let s = score(world, &models);
        let rate = |y: &[bool]| y.iter().filter(|x| **x).count() as f64 / y.len() as f64;
        println!(
            "{:<12} {:>6.1}% {:>9.3} {:>10.3} {:>9.3} {:>12.1}% {:>7.2}x {:>7.2}x",
            world.params.name,
            rate(&s.stops) * 100.0,
            auc(&s.stop, &s.stops),
            auc(&s.base, &s.stops),
            auc(&s.pace, &s.late),
            rate(&s.late) * 100.0,
            lift_at_budget(&s.stop, &s.stops),
            lift_at_budget(&s.base, &s.stops)
        );
        pooled.stop.extend(s.stop);
        pooled.base.extend(s.base);
        pooled.stops.extend(s.stops);
        pooled.pace.extend(s.pace);
        pooled.late.extend(s.late);
    }
    println!(
        "{:<12} {:>7} {:>9.3} {:>10.3} {:>9.3} {:>13} {:>7.2}x {:>7.2}x",
        "pooled",
        "",
        auc(&pooled.stop, &pooled.stops),
        auc(&pooled.base, &pooled.stops),
        auc(&pooled.pace, &pooled.late),
        "",
        lift_at_budget(&pooled.stop, &pooled.stops),
        lift_at_budget(&pooled.base, &pooled.stops)
    );
    println!("leave one world out (trained on the five others):");
    let all: Vec<&World> = train.iter().chain(&held).collect();
    for (k, left) in all.iter().enumerate() {
        let others: Vec<World> = all
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, w)| (*w).clone())
            .collect();
        let models = fit(&training_set(&others), seed);
        let s = score(left, &models);
        println!(
            "{:<12} {:>7} {:>9.3} {:>10.3} {:>9.3} {:>13} {:>7.2}x {:>7.2}x",
            left.params.name,
            "",
            auc(&s.stop, &s.stops),
            auc(&s.base, &s.stops),
            auc(&s.pace, &s.late),
            "",
            lift_at_budget(&s.stop, &s.stops),
            lift_at_budget(&s.base, &s.stops)
        );
    }
}
