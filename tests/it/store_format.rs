//! The store format: a data folder written by the release before the
//! compact attempt layout (format 1, `tests/fixtures/store-v1.tar`) opens
//! with this code, is migrated, and every record comes through.
//!
//! The fixture was written by `write_v1_fixture` below, run on the format-1
//! code (`SPOC_FIXTURE_OUT=DIR cargo test --test it store_format:: -- --ignored`),
//! then packed with `tar -cf store-v1.tar -C DIR data expected.json`:
//! `expected.json` holds what that release answered (each learner's export,
//! mastery and the program's cohorts), which the migrated store must answer
//! the same.

use std::path::Path;

use crate::common::*;
use spoc_engine::api::pb;

/// Learners of the fixture.
const LEARNERS: [&str; 3] = ["alice", "bob", "chloé-3"];

/// Every answer a client can observe of the fixture's records: each
/// learner's export (less its export time), mastery, and the cohorts.
async fn observed(server: &TestServer) -> serde_json::Value {
    let mut learners = server.learners().await;
    let mut mastery = server.mastery().await;
    let mut out = serde_json::Map::new();
    for id in LEARNERS {
        let json = learners
            .export_learner(pb::ExportLearnerRequest {
                learner_id: id.into(),
            })
            .await
            .expect("export")
            .into_inner()
            .json;
        let mut doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        doc.as_object_mut().expect("object").remove("exported_at");
        let states = mastery
            .get_mastery(pb::GetMasteryRequest {
                learner_id: id.into(),
                skill_ids: vec![],
            })
            .await
            .expect("mastery")
            .into_inner()
            .skills
            .into_iter()
            .map(|s| {
                serde_json::json!({
                    "skill": s.skill_id,
                    "p": s.p_mastered,
                    "count": s.attempt_count,
                })
            })
            .collect::<Vec<_>>();
        out.insert(
            id.to_string(),
            serde_json::json!({"export": doc, "mastery": states}),
        );
    }
    let cohorts = server
        .program_cohorts("excel")
        .await
        .cohorts
        .into_iter()
        .map(|c| serde_json::json!({"id": c.id, "members": c.learner_ids}))
        .collect::<Vec<_>>();
    out.insert("cohorts".into(), serde_json::Value::Array(cohorts));
    serde_json::Value::Object(out)
}

/// Writes the fixture's records through the API.
async fn populate(server: &TestServer) {
    server
        .catalog()
        .await
        .import_catalog(pb::ImportCatalogRequest {
            items: vec![pb::Item {
                external_ids: Vec::new(),
                pass_mark: None,
                id: "q-ab".into(),
                skill_ids: vec!["a".into(), "b".into()],
                title: "Question on a and b".into(),
            }],
            ..small_catalog()
        })
        .await
        .expect("catalog");
    seed_cohort_program(
        server,
        "excel",
        Some(pb::CohortRules {
            min_size: Some(15),
            max_size: Some(17),
            ..Default::default()
        }),
        &LEARNERS
            .iter()
            .map(|id| id.to_string())
            .chain((0..12).map(|n| format!("staff-{n:02}")))
            .enumerate()
            .map(|(n, id)| learner(&id, &format!("company-{}", n % 5)))
            .collect::<Vec<_>>(),
    )
    .await;
    let base = 1_750_000_000;
    let mut attempts = Vec::new();
    for (l, id) in LEARNERS.iter().enumerate() {
        for k in 0..6i64 {
            let skill = ["a", "b", "c"][(k as usize + l) % 3];
            let mut a = attempt(
                &format!("{id}-{k}"),
                id,
                &[skill],
                (k + l as i64) % 3 != 0,
                base + 600 * k + l as i64,
            );
            if k == 2 {
                a.score = Some(0.75);
            }
            if k == 4 {
                // Skills from the item.
                a.item_id = "q-ab".into();
                a.skill_ids.clear();
            }
            attempts.push(a);
        }
    }
    // A late attempt (before the others of its learner) in a later batch.
    let late = attempt("alice-late", "alice", &["a"], false, base - 3_600);
    let mut client = server.mastery().await;
    client
        .record_attempts(pb::RecordAttemptsRequest { attempts })
        .await
        .expect("attempts");
    client
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![late],
        })
        .await
        .expect("late attempt");
    server
        .remediation()
        .await
        .record_activity(pb::RecordActivityRequest {
            activities: vec![
                activity("ev-1", "alice", "m-a", false, base + 100, 5),
                activity("ev-2", "alice", "m-a", true, base + 700, 12),
                activity("ev-3", "bob", "m-b", false, base + 200, 3),
            ],
        })
        .await
        .expect("activity");
    server
        .cohorts()
        .await
        .form_cohorts(pb::FormCohortsRequest {
            program_id: "excel".into(),
            objective: pb::CohortObjective::Balanced as i32,
            seed: 7,
            dry_run: false,
        })
        .await
        .expect("form cohorts");
}

/// Writes the format-1 fixture into `$SPOC_FIXTURE_OUT` (run once, on the
/// format-1 code; see the module comment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run by hand on the release it captures"]
async fn write_v1_fixture() {
    let out =
        std::path::PathBuf::from(std::env::var("SPOC_FIXTURE_OUT").expect("SPOC_FIXTURE_OUT"));
    let data = out.join("data");
    let server = TestServer::start_in(&data).await;
    populate(&server).await;
    let expected = observed(&server).await;
    server.stop().await;
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&expected).expect("JSON"),
    )
    .expect("write expected.json");
}

/// Unpacks the fixture into `dir`: `dir/data` and `dir/expected.json`.
fn unpack(dir: &Path) {
    let tar = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1.tar");
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar");
    assert!(status.success(), "tar -xf {}", tar.display());
}

/// The format-1 folder opens, is migrated at start, and answers exactly
/// what the release that wrote it answered; it takes new attempts on top
/// of the migrated ones, keeps them through a restart, and `spoc verify`
/// finds it clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_folder_is_migrated_with_every_record() {
    let temp = tempfile::tempdir().expect("temp dir");
    unpack(temp.path());
    let mut expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(temp.path().join("expected.json")).expect("read"))
            .expect("expected.json");
    // Exports gained the learner's pauses, withdrawals and closed alert
    // episodes after the fixture was written; its learners have none.
    for learner in ["alice", "bob", "chloé-3"] {
        let export = &mut expected[learner]["export"];
        assert!(export.is_object(), "{learner} in expected.json");
        export["pauses"] = serde_json::json!([]);
        export["withdrawals"] = serde_json::json!([]);
        export["alert_episodes"] = serde_json::json!([]);
    }
    let data = temp.path().join("data");
    let before = tree_names(&data);
    assert!(before.contains(&"attempts".to_string()), "{before:?}");
    let (ok, text) = verify(&data);
    assert!(ok && text.contains("store format 1"), "{text}");

    let server = TestServer::start_in(&data).await;
    assert_eq!(observed(&server).await, expected);
    // A new attempt folds on top of the migrated state.
    let count = |v: &serde_json::Value| {
        v["alice"]["mastery"]
            .as_array()
            .expect("mastery")
            .iter()
            .find(|s| s["skill"] == "a")
            .expect("skill a")["count"]
            .as_u64()
            .expect("count")
    };
    server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("alice-new", "alice", &["a"], true, 1_760_000_000)],
        })
        .await
        .expect("new attempt");
    let after = observed(&server).await;
    assert_eq!(count(&after), count(&expected) + 1);
    // A resend of a migrated attempt is a duplicate (the id index holds it).
    let resent = expected["bob"]["export"]["attempts"][0].clone();
    let duplicate = server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt(
                resent["attempt_id"].as_str().expect("id"),
                "bob",
                &[resent["skill_ids"][0].as_str().expect("skill")],
                resent["correct"].as_bool().expect("correct"),
                resent["occurred_at"].as_i64().expect("time") / 1_000_000,
            )],
        })
        .await
        .expect("resend")
        .into_inner();
    assert_eq!(duplicate.duplicates, 1, "{duplicate:?}");
    server.stop().await;

    let trees = tree_names(&data);
    for old in ["attempts", "observations", "mastery"] {
        assert!(!trees.contains(&old.to_string()), "{old} left: {trees:?}");
    }
    let server = TestServer::start_in(&data).await;
    assert_eq!(observed(&server).await, after);
    server.stop().await;
    let (ok, text) = verify(&data);
    assert!(ok && !text.contains("store format 1"), "{text}");
}

/// `spoc verify` on a stopped server's folder: (clean, its output).
fn verify(data: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .arg("verify")
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("spoc verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The sled trees of the folder that hold entries.
fn tree_names(data: &Path) -> Vec<String> {
    let (trees, _) = spoc_engine::store::footprint::footprint(data).expect("footprint");
    trees.into_iter().map(|t| t.name).collect()
}
