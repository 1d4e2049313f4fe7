//! GDPR through gRPC: `ExportLearner` returns every record of a learner,
//! `EraseLearner` removes them all, and afterwards no sled tree (keys and
//! values, as raw bytes) nor write-ahead log file holds the learner's id,
//! before and after a restart; other learners keep their data.

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;

/// The erased learner: an id that appears nowhere else by chance.
const SUBJECT: &str = "subject-7f3a9c";

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every write-ahead log file of the data folder, as bytes.
fn wal_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir.join("wal"))
        .expect("wal folder")
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect()
}

fn assert_wal_clean(dir: &std::path::Path) {
    for (file, bytes) in wal_bytes(dir) {
        assert!(
            !holds(&bytes, SUBJECT.as_bytes()),
            "the write-ahead log {file} still holds the erased id"
        );
    }
}

/// Every sled entry of the store in `dir` that mentions `id`, by tree.
fn store_mentions(dir: &std::path::Path, id: &str) -> (usize, Vec<String>) {
    let store = open_store(dir);
    let entries = store.raw_entries().expect("raw scan");
    let hits = entries
        .iter()
        .filter(|e| holds(&e.key, id.as_bytes()) || holds(&e.value, id.as_bytes()))
        .map(|e| format!("{}: {}", e.tree, String::from_utf8_lossy(&e.key)))
        .collect();
    (entries.len(), hits)
}

/// Fills every kind of record for SUBJECT (and some for l00): enrolment,
/// cohort membership, attempts and mastery, module activity, a
/// recommendation, a blocking-point alert (active, dedup index, log).
async fn populate(server: &TestServer) -> String {
    let mut people: Vec<pb::Learner> = staff("l", 15, "co", 5);
    people.push(learner(SUBJECT, "co0"));
    seed_cohort_program(server, "p", None, &people).await;
    server
        .catalog()
        .await
        .import_catalog(pb::ImportCatalogRequest {
            items: vec![],
            skills: vec![skill("a", &[]), skill("b", &["a"]), skill("c", &["b"])],
            modules: vec![
                module("m-a", &["a"], pb::ModuleFormat::Video, 10),
                module("m-b", &["b"], pb::ModuleFormat::Exercise, 20),
            ],
        })
        .await
        .expect("import modules");
    let cohort = server.form_one_cohort("p").await;

    let mut mastery = server.mastery().await;
    for (who, tag) in [(SUBJECT, "s"), ("l00", "o")] {
        let attempts = (0..3)
            .map(|k| attempt(&format!("{tag}-{k}"), who, &["a"], false, t0() + k))
            .collect();
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .expect("record attempts");
    }
    let mut remediation = server.remediation().await;
    remediation
        .record_activity(pb::RecordActivityRequest {
            activities: vec![activity("ev-1", SUBJECT, "m-a", false, t0() + 10, 5)],
        })
        .await
        .expect("record activity");
    remediation
        .recommend_next(pb::RecommendNextRequest {
            learner_id: SUBJECT.into(),
            program_id: "p".into(),
            count: 2,
            exclude_module_ids: vec![],
        })
        .await
        .expect("recommend");

    // The alert thread raises a blocking point for both learners.
    server
        .alerts_when(pb::ListAlertsRequest::default(), |listed| {
            let of = |id: &str| listed.iter().any(|a| a.learner_id == id);
            of(SUBJECT) && of("l00")
        })
        .await;
    cohort
}

/// The whole GDPR path: export, erase, byte scans before and after a
/// restart, retries and refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_erase_leaves_no_trace_of_the_learner() {
    let server = TestServer::start().await;
    let cohort = populate(&server).await;
    let mut learners = server.learners().await;
    // A declared break, with a note only the export shows.
    let in_a_week = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 7 * 86_400;
    server
        .alerts()
        .await
        .declare_pause(pb::DeclarePauseRequest {
            learner_id: SUBJECT.into(),
            program_id: String::new(),
            starts_at: None,
            ends_at: Some(prost_types::Timestamp {
                seconds: in_a_week,
                nanos: 0,
            }),
            note: "surgery, back next week".into(),
            by: "trainer-1".into(),
        })
        .await
        .expect("declare pause");

    // Export: one JSON document with every kind of record.
    let json = learners
        .export_learner(pb::ExportLearnerRequest {
            learner_id: SUBJECT.into(),
        })
        .await
        .expect("export")
        .into_inner()
        .json;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(doc["format"], "spoc-learner-export/1");
    assert_eq!(doc["learner"]["id"], SUBJECT);
    assert_eq!(doc["enrolments"].as_array().unwrap().len(), 1);
    assert_eq!(doc["attempts"].as_array().unwrap().len(), 3);
    assert!(
        doc["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["learner_id"] == SUBJECT)
    );
    assert_eq!(doc["mastery"]["a"]["attempt_count"], 3);
    assert_eq!(doc["activities"].as_array().unwrap().len(), 1);
    assert!(
        !doc["recommended"].as_object().unwrap().is_empty(),
        "{json}"
    );
    assert_eq!(doc["cohorts"][0]["cohort_id"], cohort.as_str());
    assert!(!doc["alerts"].as_array().unwrap().is_empty(), "{json}");
    assert!(
        !doc["alert_history"].as_array().unwrap().is_empty(),
        "{json}"
    );
    assert_eq!(
        doc["pauses"][0]["note"], "surgery, back next week",
        "{json}"
    );
    assert_eq!(doc["pauses"][0]["declared_by"], "trainer-1", "{json}");
    assert!(doc["withdrawals"].as_array().unwrap().is_empty(), "{json}");

    // Erase.
    let erased = learners
        .erase_learner(pb::EraseLearnerRequest {
            learner_id: SUBJECT.into(),
        })
        .await
        .expect("erase")
        .into_inner();
    // learner, enrolment x2, attempts x3, their index entries x3, mastery,
    // interned id, event x2, recommendation(s), alert, dedup entry: at
    // least 15.
    assert!(erased.removed_entries >= 15, "{erased:?}");
    assert!(
        erased.rewritten_entries >= 2,
        "cohort and alert log: {erased:?}"
    );
    assert_wal_clean(&server.data_dir);

    // The API no longer knows the learner; the others keep their data.
    let status = learners
        .get_learner(pb::GetLearnerRequest {
            learner_id: SUBJECT.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("s-9", SUBJECT, &["a"], true, t0() + 99)],
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "ingestion for an erased learner"
    );
    let other = server
        .mastery()
        .await
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "l00".into(),
            skill_ids: vec!["a".into()],
        })
        .await
        .expect("other learner")
        .into_inner();
    assert_eq!(other.skills[0].attempt_count, 3);
    let kept = server
        .cohorts()
        .await
        .get_cohort(pb::GetCohortRequest {
            cohort_id: cohort.clone(),
        })
        .await
        .expect("cohort")
        .into_inner();
    let members = format!("{kept:?}");
    assert!(!members.contains(SUBJECT), "{members}");
    assert!(members.contains("l00"), "{members}");
    let alerts = server.list_alerts(pb::ListAlertsRequest::default()).await;
    assert!(alerts.iter().all(|a| a.learner_id != SUBJECT));
    assert!(alerts.iter().any(|a| a.learner_id == "l00"));

    // A retry succeeds with nothing left to do; an unknown id is NOT_FOUND;
    // a bad id is INVALID_ARGUMENT naming the field.
    let retry = learners
        .erase_learner(pb::EraseLearnerRequest {
            learner_id: SUBJECT.into(),
        })
        .await
        .expect("retry")
        .into_inner();
    assert_eq!((retry.removed_entries, retry.rewritten_entries), (0, 0));
    let status = learners
        .erase_learner(pb::EraseLearnerRequest {
            learner_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = learners
        .export_learner(pb::ExportLearnerRequest {
            learner_id: SUBJECT.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = learners
        .erase_learner(pb::EraseLearnerRequest {
            learner_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "learner_id");

    // Every tree, key and value, as raw bytes: nothing mentions the id.
    let temp = server.stop().await.expect("temp dir");
    let dir = temp.path().to_path_buf();
    let (total, hits) = store_mentions(&dir, SUBJECT);
    assert!(hits.is_empty(), "erased id still stored: {hits:#?}");
    let (_, others) = store_mentions(&dir, "l00");
    assert!(total > 50 && others.len() > 5, "the scan reads the store");
    assert_wal_clean(&dir);

    // After a restart (which replays the log) it is still gone.
    let server = TestServer::start_in(&dir).await;
    let status = server
        .learners()
        .await
        .get_learner(pb::GetLearnerRequest {
            learner_id: SUBJECT.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let listed = server
        .learners()
        .await
        .list_learners(pb::ListLearnersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .learners;
    assert_eq!(listed.len(), 15);
    server.stop().await;
    let (_, hits) = store_mentions(&dir, SUBJECT);
    assert!(hits.is_empty(), "erased id back after restart: {hits:#?}");
    assert_wal_clean(&dir);
    drop(temp);
}
