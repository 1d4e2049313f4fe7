//! The `spoc` client subcommands, run as the real binary against a real
//! server: their JSON output parses and says what the server holds, and
//! bad flags fail with a clear message.

use std::process::{Output, Stdio};

use crate::common::*;
use serde_json::Value;
use spoc_engine::api::pb;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs to the end and checks it succeeded.
async fn ok(cmd: &mut tokio::process::Command) -> Output {
    let out = cmd.output().await.expect("run spoc");
    assert!(
        out.status.success(),
        "spoc failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs to the end, checks it failed, returns stderr.
async fn fails(cmd: &mut tokio::process::Command) -> String {
    let out = cmd.output().await.expect("run spoc");
    assert!(
        !out.status.success(),
        "spoc should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout parsed as one JSON document.
fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The first open alert of `program`, once the server holds one.
async fn first_open_alert(server: &TestServer, program: &str) -> pb::Alert {
    let request = pb::ListAlertsRequest {
        program_id: program.into(),
        status: pb::AlertStatus::Open as i32,
        ..Default::default()
    };
    server
        .alerts_when(request, |a| !a.is_empty())
        .await
        .remove(0)
}

/// `learners import` loads a roster and reports it in JSON; `cohorts form`
/// forms through CohortService (JSON cohorts and balance report, optional
/// CSV) and `cohorts export` writes what the server holds; a dry run in
/// table form prints the balance report and stores nothing; the offline
/// mode is `cohorts form --input F --output F` with issue 4's flags, also
/// named `form-offline`, and its flags are refused beside `--program`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_form_and_export_cohorts() {
    let server = TestServer::start().await;
    seed_cohort_program(&server, "excel", None, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("learners.csv");
    let mut csv = String::from("learner_id,company_id,language,timezone\n");
    for i in 0..40 {
        csv.push_str(&format!("u{i:02},co{},fr,Europe/Paris\n", i % 5));
    }
    std::fs::write(&roster, csv).unwrap();

    let out = ok(spoc(
        &server,
        &[
            "learners",
            "import",
            "--program",
            "excel",
            "--format",
            "json",
            "--input",
        ],
    )
    .arg(&roster))
    .await;
    let summary = json(&out);
    assert_eq!(summary["learners"], 40);
    assert_eq!(summary["companies"], 5);
    let enrolled = server.enrolments("excel").await;
    assert_eq!(enrolled.enrolments.len(), 40);

    let formed_csv = dir.path().join("formed.csv");
    let out = ok(spoc(
        &server,
        &[
            "cohorts",
            "form",
            "--program",
            "excel",
            "--seed",
            "3",
            "--format",
            "json",
            "--output",
        ],
    )
    .arg(&formed_csv))
    .await;
    let formed = json(&out);
    assert_eq!(formed["program_id"], "excel");
    assert_eq!(formed["version"], 1);
    assert_eq!(formed["dry_run"], false);
    let cohorts = formed["cohorts"].as_array().unwrap();
    assert!(!cohorts.is_empty(), "{formed}");
    let placed: u64 = cohorts.iter().map(|c| c["size"].as_u64().unwrap()).sum();
    assert_eq!(placed, 40);
    assert_eq!(formed["report"]["learner_count"], 40);
    assert_eq!(formed["report"]["skills"].as_array().unwrap().len(), 3);
    assert!(formed["report"]["max_company_share"].as_f64().unwrap() <= 0.3);
    let listed = server.program_cohorts("excel").await;
    assert_eq!(listed.version, 1);
    let ids: Vec<&str> = cohorts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let server_ids: Vec<&str> = listed.cohorts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, server_ids);
    assert_eq!(
        std::fs::read_to_string(&formed_csv)
            .unwrap()
            .lines()
            .count(),
        41
    );

    let exported = dir.path().join("exported.csv");
    let out = ok(spoc(
        &server,
        &[
            "cohorts",
            "export",
            "--program",
            "excel",
            "--format",
            "json",
            "--output",
        ],
    )
    .arg(&exported))
    .await;
    let summary = json(&out);
    assert_eq!(summary["cohorts"], cohorts.len());
    assert_eq!(summary["learners"], 40);
    let text = std::fs::read_to_string(&exported).unwrap();
    for c in &listed.cohorts {
        for l in &c.learner_ids {
            assert!(text.contains(&format!("{l},{}\n", c.id)), "{text}");
        }
    }

    // A dry run for people: the balance report, nothing stored.
    let out = ok(&mut spoc(
        &server,
        &["cohorts", "form", "--program", "excel", "--dry-run"],
    ))
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("balance report") && text.contains("random draw"),
        "{text}"
    );
    assert!(text.contains("dry run"), "{text}");
    let listed = server.program_cohorts("excel").await;
    assert_eq!(listed.version, 1, "a dry run stores nothing");

    // The offline mode: issue 4's command, then under its own name.
    let offline_in = dir.path().join("offline.csv");
    let mut csv = String::from("learner_id,company_id,language,timezone,sql,excel\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "o{i:02},co{},fr,Europe/Paris,{:.2},{:.2}\n",
            i % 5,
            (i % 10) as f64 / 10.0,
            (i % 7) as f64 / 7.0
        ));
    }
    std::fs::write(&offline_in, csv).unwrap();
    for command in ["form", "form-offline"] {
        let offline_out = dir.path().join(format!("{command}-out.csv"));
        let out = ok(spoc(
            &server,
            &[
                "cohorts",
                command,
                "--min",
                "15",
                "--max",
                "50",
                "--company-cap",
                "0.3",
                "--max-tz-spread",
                "3",
                "--objective",
                "leveled",
                "--seed",
                "7",
                "--input",
            ],
        )
        .arg(&offline_in)
        .arg("--output")
        .arg(&offline_out))
        .await;
        let written = std::fs::read_to_string(&offline_out).unwrap();
        assert_eq!(written.lines().next(), Some("learner_id,cohort_id"));
        assert_eq!(written.lines().count(), 41, "{command}: {written}");
        let report = String::from_utf8_lossy(&out.stderr);
        assert!(!report.trim().is_empty(), "{command}: a report on stderr");
    }
    assert_eq!(
        std::fs::read(dir.path().join("form-out.csv")).unwrap(),
        std::fs::read(dir.path().join("form-offline-out.csv")).unwrap(),
        "one command under two names"
    );
    let err = fails(
        spoc(
            &server,
            &["cohorts", "form", "--program", "excel", "--input"],
        )
        .arg(&offline_in),
    )
    .await;
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&mut spoc(
        &server,
        &["cohorts", "form", "--program", "excel", "--min", "15"],
    ))
    .await;
    assert!(err.contains("--input"), "offline flags need --input: {err}");
    let err = fails(spoc(&server, &["cohorts", "form", "--input"]).arg(&offline_in)).await;
    assert!(err.contains("--output"), "{err}");
    let err = fails(
        spoc(&server, &["cohorts", "form", "--format", "json", "--input"])
            .arg(&offline_in)
            .arg("--output")
            .arg(dir.path().join("unused.csv")),
    )
    .await;
    assert!(err.contains("cannot be used with"), "{err}");
    server.stop().await;
}

/// `alerts list` returns what the server holds, filtered; `alerts watch`
/// streams the active alert first, then the change an `alerts ack` makes,
/// as JSON lines; `alerts resolve` closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_acknowledge_and_resolve_alerts() {
    let server = TestServer::start().await;
    seed(&server).await;
    server.enroll(&["alice", "bob"], "excel").await;
    let now = jiff::Timestamp::now().as_second();
    let failures: Vec<pb::Attempt> = (0..4)
        .map(|i| attempt(&format!("f{i}"), "alice", &["a"], false, now - 300 + i))
        .collect();
    server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest { attempts: failures })
        .await
        .unwrap();
    let alert = first_open_alert(&server, "excel").await;

    let out = ok(&mut spoc(
        &server,
        &[
            "alerts",
            "list",
            "--program",
            "excel",
            "--state",
            "open",
            "--format",
            "json",
        ],
    ))
    .await;
    let listed = json(&out);
    let listed = listed.as_array().unwrap();
    let mine = listed
        .iter()
        .find(|a| a["id"] == alert.id.as_str())
        .unwrap_or_else(|| panic!("{alert:?} not in {listed:?}"));
    assert_eq!(mine["learner_id"], "alice");
    assert_eq!(mine["state"], "open");
    assert_eq!(mine["kind"], "blocking_point");
    assert!(mine["reason"].as_str().unwrap().contains("failed attempts"));
    let out = ok(&mut spoc(
        &server,
        &["alerts", "list", "--learner", "bob", "--format", "json"],
    ))
    .await;
    assert_eq!(json(&out), serde_json::json!([]));
    let out = ok(&mut spoc(
        &server,
        &["alerts", "list", "--program", "excel"],
    ))
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&alert.id) && table.contains("blocking_point"),
        "{table}"
    );

    let mut watch = spoc(
        &server,
        &["alerts", "watch", "--program", "excel", "--format", "json"],
    );
    let mut child = watch.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["id"], alert.id.as_str());
    assert_eq!(first["snapshot"], true);

    let out = ok(&mut spoc(
        &server,
        &[
            "alerts",
            "ack",
            "--id",
            &alert.id,
            "--by",
            "trainer-1",
            "--note",
            "called",
            "--format",
            "json",
        ],
    ))
    .await;
    let acked = json(&out);
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["status_by"], "trainer-1");
    // The watcher sees the change live (other changes may come first).
    loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the stream goes on");
        let change: Value = serde_json::from_str(&line).unwrap();
        if change["id"] == alert.id.as_str() && change["state"] == "acknowledged" {
            assert_eq!(change["snapshot"], false);
            assert_eq!(change["note"], "called");
            break;
        }
    }
    child.kill().await.unwrap();

    let out = ok(&mut spoc(
        &server,
        &[
            "alerts",
            "resolve",
            "--id",
            &alert.id,
            "--by",
            "trainer-1",
            "--format",
            "json",
        ],
    ))
    .await;
    assert_eq!(json(&out)["state"], "resolved");
    let err = fails(&mut spoc(
        &server,
        &["alerts", "watch", "--program", "nope"],
    ))
    .await;
    assert!(err.contains("NotFound"), "{err}");
    server.stop().await;
}

/// `report` writes the HTML file and summarises it in JSON; `model fit`
/// waits for the fit and prints the fitted model; `model show` agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_model_fit() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut learners = server.learners().await;
    let mut attempts = Vec::new();
    for l in 0..8 {
        let id = format!("l{l}");
        let company = format!("co{}", l % 3);
        add_enrolled(&mut learners, learner(&id, &company), "excel").await;
        for t in 0..12 {
            let correct = (t * 7 + l) % 3 != 0 || t > 6;
            attempts.push(attempt(
                &format!("{id}-{t}"),
                &id,
                &[if t % 2 == 0 { "a" } else { "b" }],
                correct,
                1_700_000_000 + i64::from(t),
            ));
        }
    }
    let stored = attempts.len();
    server.record(attempts).await;

    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = ok(spoc(
        &server,
        &[
            "report",
            "--program",
            "excel",
            "--summary",
            "json",
            "--output",
        ],
    )
    .arg(&html))
    .await;
    let summary = json(&out);
    assert_eq!(summary["scope_id"], "excel");
    assert_eq!(summary["learner_count"], 8);
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    // `--format json`: the file holds the report's fields in proto3 JSON,
    // zeros written out.
    let file = dir.path().join("report.json");
    ok(spoc(
        &server,
        &[
            "report",
            "--program",
            "excel",
            "--format",
            "json",
            "--output",
        ],
    )
    .arg(&file))
    .await;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(report["scopeId"], "excel", "{report}");
    assert_eq!(report["learnerCount"], 8, "{report}");
    assert_eq!(report["completedCount"], 0, "{report}");
    let competence = report["competence"].as_array().unwrap();
    assert_eq!(competence.len(), 3, "{report}");
    assert_eq!(competence[2]["learnerCount"], 0, "{report}");

    let out = ok(&mut spoc(
        &server,
        &[
            "model",
            "fit",
            "--folds",
            "2",
            "--restarts",
            "1",
            "--seed",
            "3",
            "--format",
            "json",
        ],
    ))
    .await;
    let model = json(&out);
    assert_eq!(model["fit_state"], "succeeded", "{model}");
    assert_eq!(model["attempts"], stored);
    assert_eq!(model["learners"], 8);
    let skills: Vec<&str> = model["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["skill_id"].as_str().unwrap())
        .collect();
    assert_eq!(skills, ["a", "b"]);
    let out = ok(&mut spoc(&server, &["model", "show", "--format", "json"])).await;
    assert_eq!(json(&out)["model_id"], model["model_id"]);
    server.stop().await;
}

/// Connection flags fail before any call, saying what to do; a key is
/// accepted (a service without access control ignores it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flags_fail_clearly() {
    let server = TestServer::start().await;
    seed(&server).await;
    let err = fails(&mut spoc(
        &server,
        &["alerts", "list", "--addr", "https://127.0.0.1:9"],
    ))
    .await;
    assert!(err.contains("--tls-ca"), "{err}");
    let err = fails(&mut spoc(
        &server,
        &["alerts", "list", "--tls-ca", "/nonexistent/ca.pem"],
    ))
    .await;
    assert!(err.contains("not an https"), "{err}");
    let err = fails(&mut spoc(
        &server,
        &["alerts", "list", "--api-key", "bad\u{7f}key"],
    ))
    .await;
    assert!(err.contains("printable ASCII"), "{err}");
    // A key the service does not know is refused, and the message says so.
    let err = fails(&mut spoc(
        &server,
        &["alerts", "list", "--format", "json", "--api-key", "k-123"],
    ))
    .await;
    assert!(
        err.contains("Unauthenticated") && err.contains("API key"),
        "{err}"
    );
    let out = ok(&mut spoc(&server, &["alerts", "list", "--format", "json"])).await;
    assert_eq!(json(&out), serde_json::json!([]));
    server.stop().await;
}
