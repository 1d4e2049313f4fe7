//! BKT fitting benchmark (harness = false): speed, parameter recovery and
//! cross-validated AUC on synthetic data drawn from known parameters.
//!
//! ```text
//! cargo bench --bench fit                       # the full table (10k, 100k, 200k, 1M)
//! cargo bench --bench fit -- --sizes 200000     # only some sizes
//! cargo bench --bench fit -- --write-csv /tmp/a.csv --attempts 200000 [--multilearn]
//! cargo bench --bench fit -- --write-csv /tmp/a.csv --attempts 408000 --assistments
//! ```
//!
//! Data shape: 5 skills, 20 attempts per learner and skill, learners scaled
//! to the size (200k = 2,000 learners, pyBKT's reference workload). With
//! `--templates T` each skill has T templates (`template_id`).

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]
#![cfg_attr(test, allow(dead_code))]

use std::time::Instant;

use spoc_engine::domain::fit::synth::{
    SynthSpec, generate, max_error, write_assistments_csv, write_csv,
};
use spoc_engine::domain::fit::{FitOptions, Variants, cross_validate, fit};

struct Args {
    write_csv: Option<String>,
    assistments: bool,
    attempts: usize,
    sizes: Vec<usize>,
    skills: usize,
    per_skill: usize,
    templates: usize,
    multilearn: bool,
    forgets: bool,
    restarts: usize,
    folds: usize,
    seed: u64,
}

fn parse() -> Args {
    let mut a = Args {
        write_csv: None,
        assistments: false,
        attempts: 200_000,
        sizes: vec![10_000, 100_000, 200_000, 1_000_000],
        skills: 5,
        per_skill: 20,
        templates: 0,
        multilearn: false,
        forgets: false,
        restarts: 5,
        folds: 5,
        seed: 7,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let value = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().expect("missing value after flag")
    };
    while i < args.len() {
        match args[i].as_str() {
            "--write-csv" => a.write_csv = Some(value(&mut i)),
            "--attempts" => a.attempts = value(&mut i).parse().expect("--attempts N"),
            "--sizes" => {
                a.sizes = value(&mut i)
                    .split(',')
                    .map(|s| s.parse().expect("--sizes N,N"))
                    .collect()
            }
            "--skills" => a.skills = value(&mut i).parse().expect("--skills N"),
            "--per-skill" => a.per_skill = value(&mut i).parse().expect("--per-skill N"),
            "--templates" => a.templates = value(&mut i).parse().expect("--templates N"),
            "--restarts" => a.restarts = value(&mut i).parse().expect("--restarts N"),
            "--folds" => a.folds = value(&mut i).parse().expect("--folds N"),
            "--seed" => a.seed = value(&mut i).parse().expect("--seed N"),
            "--multilearn" => a.multilearn = true,
            "--assistments" => a.assistments = true,
            "--forgets" => a.forgets = true,
            // `cargo bench` passes `--bench`; ignore it and other harness flags.
            _ => {}
        }
        i += 1;
    }
    a
}

fn spec(a: &Args, attempts: usize, multilearn: bool) -> SynthSpec {
    SynthSpec {
        learners: (attempts / (a.skills * a.per_skill)).max(1),
        skills: a.skills,
        attempts_per_skill: a.per_skill,
        templates_per_skill: if multilearn {
            a.templates.max(4)
        } else {
            a.templates
        },
        multilearn,
        forgets: a.forgets,
        groups: 0,
        seed: a.seed,
    }
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let a = parse();
    if let Some(path) = &a.write_csv {
        let spec = spec(&a, a.attempts, a.multilearn);
        let (ds, truth) = generate(&spec);
        let file = std::fs::File::create(path).expect("create CSV");
        if a.assistments {
            write_assistments_csv(&ds, file).expect("write CSV");
        } else {
            write_csv(&ds, file).expect("write CSV");
        }
        eprintln!(
            "wrote {} attempts ({} learners x {} skills x {}) to {path}",
            ds.len(),
            spec.learners,
            spec.skills,
            spec.attempts_per_skill
        );
        for (name, t) in &truth {
            let p = t.params;
            eprintln!(
                "truth {name}: prior {:.4} learn {:.4} guess {:.4} slip {:.4} forget {:.4} {:?}",
                p.prior, p.learn, p.guess, p.slip, p.forget, t.learns
            );
        }
        return;
    }

    println!(
        "threads: {}  restarts: {}  (fit = full EM on all data; cv = {}-fold by learner, sizes <= 200k)",
        rayon::current_num_threads(),
        a.restarts,
        a.folds
    );
    println!(
        "{:<11} {:>9} {:>8} {:>9} {:>7} {:>7} {:>9} {:>8} {:>8}",
        "variant",
        "attempts",
        "learners",
        "fit_s",
        "iters",
        "max_err",
        "attempt/s",
        "cv_auc",
        "cv_rmse"
    );
    let mut cases = Vec::new();
    for &n in &a.sizes {
        cases.push((n, a.multilearn));
    }
    if !a.multilearn && a.sizes.contains(&200_000) {
        cases.push((200_000, true));
    }
    for (n, multilearn) in cases {
        let spec = spec(&a, n, multilearn);
        let (ds, truth) = generate(&spec);
        let opts = FitOptions {
            variants: Variants {
                multilearn,
                forgets: a.forgets,
                ..Variants::default()
            },
            restarts: a.restarts,
            ..FitOptions::default()
        };
        // Small sizes: best of 3 runs to tame the shared machine's noise.
        let repeats = if n <= 200_000 { 3 } else { 1 };
        let mut best = f64::INFINITY;
        let mut model = None;
        for _ in 0..repeats {
            let t = Instant::now();
            let m = fit(&ds, &opts).expect("fit");
            best = best.min(t.elapsed().as_secs_f64());
            model = Some(m);
        }
        let model = model.expect("one run");
        let iters = model
            .skills
            .values()
            .map(|s| s.iterations)
            .max()
            .unwrap_or(0);
        let (auc, rmse) = if n <= 200_000 && a.folds >= 2 {
            let t = Instant::now();
            let cv = cross_validate(&ds, &opts, a.folds, a.seed).expect("cv");
            eprintln!(
                "cross-validation of {} attempts: {:.3} s",
                ds.len(),
                t.elapsed().as_secs_f64()
            );
            (cv.auc, cv.rmse)
        } else {
            (f64::NAN, f64::NAN)
        };
        println!(
            "{:<11} {:>9} {:>8} {:>9.3} {:>7} {:>7.4} {:>9.2e} {:>8.4} {:>8.4}",
            if multilearn { "multilearn" } else { "standard" },
            ds.len(),
            spec.learners,
            best,
            iters,
            max_error(&truth, &model),
            ds.len() as f64 / best,
            auc,
            rmse
        );
    }
    println!("VmHWM: {:.1} MB", vm_hwm_mb());
}
