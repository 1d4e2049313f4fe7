//! Dropout-model benchmark (harness = false): held-out AUC and timings of
//! the risk model trained on synthetic learner histories.
//!
//! ```text
//! cargo bench --bench risk                          # 1k, 5k and 20k learners
//! cargo bench --bench risk -- --sizes 5000 --seed 7
//! ```

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use spoc_engine::domain::risk::synth::{SynthOptions, samples};
use spoc_engine::domain::risk::{TrainOptions, train};

fn main() {
    let mut sizes = vec![1_000, 5_000, 20_000];
    let mut seed = 42u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--sizes" => {
                i += 1;
                sizes = args[i]
                    .split(',')
                    .map(|s| s.parse().expect("--sizes takes numbers"))
                    .collect();
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
    println!(
        "{:>8} {:>7} {:>6} {:>8} {:>7} {:>11} {:>9}",
        "learners", "train", "test", "dropout", "AUC", "simulate_s", "train_s"
    );
    for n in sizes {
        let t0 = Instant::now();
        let data = samples(&SynthOptions {
            learners: n,
            seed,
            ..SynthOptions::default()
        });
        let simulate_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let model = train(
            &data,
            &TrainOptions {
                seed,
                source: format!("bench, seed {seed}"),
                ..TrainOptions::default()
            },
        )
        .expect("training on synthetic data succeeds");
        let train_s = t1.elapsed().as_secs_f64();
        let rate = model.training.positives as f64 / n as f64;
        println!(
            "{:>8} {:>7} {:>6} {:>7.1}% {:>7.4} {:>11.3} {:>9.3}",
            n,
            model.training.train_size,
            model.training.test_size,
            rate * 100.0,
            model.auc,
            simulate_s,
            train_s
        );
    }
}
