//! `spoc simulate-grpc`: the simulator's learners played through a real
//! service (every decision by RecommendNext over gRPC), beside the
//! in-process run on the same learners.

use serde_json::Value;

/// `spoc simulate-grpc --format json` on `learners` learners of `world`,
/// with `FitModel` every `refit` learners (0: never).
fn simulate_grpc(scratch: &std::path::Path, world: &str, learners: u32, refit: u32) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .args(["simulate-grpc", "--world", world, "--seed", "7"])
        .args(["--format", "json", "--learners", &learners.to_string()])
        .args(["--refit-every", &refit.to_string()])
        .arg("--data-dir")
        .arg(scratch)
        .env_remove("RUST_LOG")
        .output()
        .expect("run spoc simulate-grpc");
    crate::common::assert_success(&out);
    serde_json::from_slice::<Value>(&out.stdout).unwrap()
}

/// The figures that differ between the two columns, as (name, through
/// gRPC, in process).
fn differences(report: &Value) -> Vec<(String, Value, Value)> {
    let (grpc, local) = (&report["through_grpc"], &report["in_process"]);
    let names = local.as_object().unwrap().keys();
    names
        .filter(|k| grpc[k.as_str()] != local[k.as_str()])
        .map(|k| {
            (
                k.clone(),
                grpc[k.as_str()].clone(),
                local[k.as_str()].clone(),
            )
        })
        .collect()
}

/// On a small BKT world the service takes every learner to true mastery;
/// it takes exactly the decisions of the in-process policy (the engine and
/// the simulator build the policy's view with the same functions, from the
/// same events on the same clock, and fit the same data), so both columns
/// agree to the last figure, in both worlds (the bkt run with a `FitModel`
/// in between); the JSON has `spoc simulate`'s fields, the same on a second run;
/// the scratch folder is removed afterwards, and a folder it did not make
/// is refused untouched.
#[test]
fn the_service_plays_the_simulated_learners_as_the_policy_does() {
    let temp = tempfile::tempdir().unwrap();
    let scratch = temp.path().join("scratch");
    let run = || simulate_grpc(&scratch, "bkt", 20, 10);
    let report = run();
    // The same seed gives the same report (the service's calendar is fixed).
    assert_eq!(run(), report);
    let (grpc, local) = (&report["through_grpc"], &report["in_process"]);
    for side in [grpc, local] {
        assert_eq!(side["learners"], 20, "{report}");
        for share in [
            "mastered_share",
            "false_certification_rate",
            "useful_share",
            "useless_share_warm",
        ] {
            let x = side[share].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{share} {x}: {report}");
        }
    }
    // Learners of the engine's own world get there, both ways (one in
    // 2,500 does not, BENCHMARKS.md).
    assert!(grpc["mastered_share"].as_f64().unwrap() >= 0.9, "{report}");
    assert!(local["mastered_share"].as_f64().unwrap() >= 0.9, "{report}");
    // The service decides as the policy does, to the last figure, and
    // beats mastery learning on the same learners.
    assert!(grpc["mean_modules"].as_f64().unwrap() > 0.0, "{report}");
    let ratio = grpc["median_vs_mastery_learning"].as_f64().unwrap();
    assert!(ratio < -0.3, "{ratio}: {report}");
    assert_eq!(differences(&report), vec![], "{report}");
    assert!(!scratch.exists(), "the scratch folder is removed");
    // In the IRT world too, where checks ask items of varied difficulty
    // (the service once re-asked the same ones).
    let irt = simulate_grpc(&scratch, "irt", 4, 0);
    assert!(
        irt["in_process"]["mean_diagnostic_items"].as_f64().unwrap() > 0.0,
        "{irt}"
    );
    assert_eq!(differences(&irt), vec![], "{irt}");

    // A folder it did not make is refused, untouched.
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("data"), "keep me").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .args(["simulate-grpc", "--learners", "1", "--data-dir"])
        .arg(&scratch)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
    assert_eq!(
        std::fs::read_to_string(scratch.join("data")).unwrap(),
        "keep me"
    );
}
