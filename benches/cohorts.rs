//! Cohort formation benchmark: prints the figures quoted in BENCHMARKS.md.
//!
//! Instances are generated here from fixed seeds (uniform mastery, Zipf
//! company sizes so the largest company holds about 23% of learners), so
//! the figures are reproducible: `cargo bench --bench cohorts`.

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spoc_engine::domain::cohorts::{
    CohortConstraints, CohortLearner, Formation, FormationRequest, Objective, form_cohorts,
    verify_partition,
};

/// Zipf(1) company sizes: company `c` has weight `1 / (c + 1)`.
fn company_of(rng: &mut ChaCha8Rng, companies: usize) -> usize {
    let h: f64 = (1..=companies).map(|c| 1.0 / c as f64).sum();
    let mut u = rng.random::<f64>() * h;
    for c in 0..companies {
        u -= 1.0 / (c + 1) as f64;
        if u <= 0.0 {
            return c;
        }
    }
    companies - 1
}

/// Generates `n` learners; with `languages > 1` each language lives in its
/// own region of time zones (one of them wider than 3 h, to exercise the
/// time-zone windows).
fn instance(
    n: usize,
    skills: usize,
    companies: usize,
    languages: usize,
    seed: u64,
) -> Vec<CohortLearner> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let regions: [&[i32]; 3] = [
        &[0, 60, 120],
        &[-480, -420, -360, -300, -240],
        &[330, 420, 480, 540],
    ];
    (0..n)
        .map(|i| {
            let lang = if languages == 1 {
                0
            } else {
                let u: f64 = rng.random();
                if u < 0.5 {
                    0
                } else if u < 0.8 {
                    1 % languages
                } else {
                    2 % languages
                }
            };
            let zones = regions[lang % 3];
            let tz = if languages == 1 {
                60
            } else {
                zones[rng.random_range(0..zones.len())]
            };
            CohortLearner {
                id: format!("L{i:06}"),
                company: format!("C{:02}", company_of(&mut rng, companies)),
                language: ["en", "fr", "ja"][lang % 3].to_string(),
                utc_offsets: vec![tz],
                mastery: (0..skills).map(|_| rng.random::<f64>()).collect(),
            }
        })
        .collect()
}

fn vm_hwm_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run(
    title: &str,
    learners: &[CohortLearner],
    cons: CohortConstraints,
    objective: Objective,
    seed: u64,
) -> (Formation, f64) {
    let t = Instant::now();
    let f = form_cohorts(&FormationRequest {
        learners,
        constraints: cons,
        objective,
        seed,
        locked: &[],
    })
    .expect("formation succeeds");
    let secs = t.elapsed().as_secs_f64();
    let ok = verify_partition(learners, &f.cohorts, &cons).is_ok();
    let r = &f.report;
    println!(
        "{title} seed {seed}: {:.3} s, {} cohorts {}..{}, means gap {:.4} (random {:.4}), \
         SD gap {:.4} (random {:.4}), max company share {:.1}%, constraints hold: {ok}",
        secs,
        r.cohorts,
        r.size_range.0,
        r.size_range.1,
        r.max_mean_gap(),
        r.random_max_mean_gap(),
        r.max_sd_gap(),
        r.random_max_sd_gap(),
        100.0 * r.max_company_share
    );
    assert!(ok, "hard constraints must hold");
    (f, secs)
}

fn main() {
    let seeds = [1u64, 2, 3];
    println!(
        "== A: 10,000 learners, 5 skills, 40 companies, 3 languages (tz windows), sizes 15..50, balanced"
    );
    let a = instance(10_000, 5, 40, 3, 7);
    for &s in &seeds {
        run(
            "A",
            &a,
            CohortConstraints::default(),
            Objective::Balanced,
            s,
        );
    }
    println!("== A-leveled: same instance, leveled");
    run(
        "A-lev",
        &a,
        CohortConstraints::default(),
        Objective::Leveled,
        1,
    );

    println!(
        "== B: 10,000 learners, 5 uniform skills, 40 Zipf companies, one language; target n/30 = 333 cohorts (sizes 30..31), bounds 15..50"
    );
    let b = instance(10_000, 5, 40, 1, 11);
    let cons_b = CohortConstraints {
        target_cohorts: Some(10_000 / 30),
        ..CohortConstraints::default()
    };
    let largest = {
        let mut m = std::collections::BTreeMap::new();
        for l in &b {
            *m.entry(l.company.as_str()).or_insert(0usize) += 1;
        }
        *m.values().max().unwrap_or(&0) as f64 / b.len() as f64
    };
    println!("   largest company: {:.1}% of learners", 100.0 * largest);
    for &s in &seeds {
        let (f, _) = run("B", &b, cons_b, Objective::Balanced, s);
        if s == seeds[0] {
            println!("{}", f.report);
        }
    }

    println!("== C: 1,000 learners, same generator, target n/30 = 33 cohorts (sizes 30..31)");
    let c = instance(1_000, 5, 40, 1, 13);
    let cons_c = CohortConstraints {
        target_cohorts: Some(1_000 / 30),
        ..CohortConstraints::default()
    };
    for &s in &seeds {
        run("C", &c, cons_c, Objective::Balanced, s);
    }
    if let Some(kb) = vm_hwm_kb() {
        println!("max RSS (VmHWM): {:.1} MB", kb as f64 / 1024.0);
    }
}
