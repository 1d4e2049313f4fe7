//! A real LRS beside the engine (issue 16, point 3): Ralph (PyPI
//! `ralph-malph` 5.1.0, file-system backend) takes the statements and
//! forwards them to `spoc serve`; mastery changes in the engine.
//!
//! The test runs `scripts/ralph-forwarding.sh` (which installs Ralph into
//! `target/tmp/ralph-venv` once, starts the real `spoc serve` binary and
//! Ralph, creates an `lms` key and a catalog whose items are the
//! statements' activities, sends the statements of
//! `tests/fixtures/xapi/ralph_statements.json` to Ralph by PUT, POST and a
//! POST batch, and waits for them in the engine), with the engine's data
//! folder kept; then it opens that store in a server of its own and reads
//! each learner's mastery through gRPC. Without python3 it says so and
//! passes; `SPOC_SKIP_RALPH=1` skips it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::outside::{cache, have, mastery, run_bounded, skipped};
use crate::common::{TestServer, hand_bkt};

/// The skill the script's catalog gives every answered activity.
const FORWARDED_SKILL: &str = "forwarded-answers";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_sent_to_ralph_reach_the_engine_and_move_mastery() {
    if skipped("SPOC_SKIP_RALPH", "Ralph forwarding") {
        return;
    }
    if !have("python3") {
        eprintln!("Ralph forwarding: skipped (no python3)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/xapi/ralph_statements.json");
    let statements: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    // Answers per learner (mbox address), as the engine names learners.
    let mut expected: BTreeMap<String, i32> = BTreeMap::new();
    for statement in statements.as_array().unwrap() {
        assert_eq!(
            statement["verb"]["id"],
            "http://adlnet.gov/expapi/verbs/answered"
        );
        let mbox = statement["actor"]["mbox"].as_str().unwrap();
        *expected
            .entry(mbox.trim_start_matches("mailto:").to_string())
            .or_default() += 1;
    }

    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new("bash");
    command
        .arg(root.join("scripts/ralph-forwarding.sh"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("--statements")
        .arg(&fixture)
        .env("SPOC_BIN", env!("CARGO_BIN_EXE_spoc"))
        .env("RALPH_VENV", cache("ralph-venv"));
    // A bound against a hung install or server, not a timing assertion.
    let output =
        tokio::task::spawn_blocking(move || run_bounded(&mut command, Duration::from_secs(900)))
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ralph-forwarding.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary:\n{stdout}\n{stderr}"));
    assert_eq!(summary["ralph_statements"], 5, "{summary}");

    // The engine's own store, read back through gRPC.
    let server = TestServer::start_in(data.path()).await;
    for (learner, answers) in &expected {
        let (p, attempts) = mastery(server.channel().await, learner, FORWARDED_SKILL).await;
        assert_eq!(attempts, *answers, "{learner}: {summary}");
        assert!(
            (p - hand_bkt(&[])).abs() > 1e-6,
            "{learner}: mastery at the prior"
        );
        assert_eq!(
            summary["learners"][learner]["attempts"], *answers,
            "{summary}"
        );
    }
    assert_eq!(expected.len(), 2);
    server.stop().await;
}
