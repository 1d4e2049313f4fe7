//! `spoc simulate-grpc`: the simulator's learners played through a real
//! service (every decision by RecommendNext over gRPC), beside the
//! in-process run on the same learners.

use serde_json::Value;

/// On a small BKT world the service takes every learner to true mastery,
/// as the in-process policy does, with about as many modules; the JSON has
/// both columns with `spoc simulate`'s fields, the same on a second run;
/// the scratch folder is removed afterwards, and a folder it did not make
/// is refused untouched.
#[test]
fn the_service_plays_the_simulated_learners_as_the_policy_does() {
    let temp = tempfile::tempdir().unwrap();
    let scratch = temp.path().join("scratch");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
            .args([
                "simulate-grpc",
                "--learners",
                "20",
                "--world",
                "bkt",
                "--seed",
                "7",
                "--format",
                "json",
                "--data-dir",
            ])
            .arg(&scratch)
            .env_remove("RUST_LOG")
            .output()
            .expect("run spoc simulate-grpc");
        crate::common::assert_success(&out);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
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
    // The service decides as the policy does: within a third in modules.
    let (g, l) = (
        grpc["mean_modules"].as_f64().unwrap(),
        local["mean_modules"].as_f64().unwrap(),
    );
    assert!(g > 0.0 && (g - l).abs() <= l / 3.0, "{g} vs {l}: {report}");
    assert!(!scratch.exists(), "the scratch folder is removed");

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
