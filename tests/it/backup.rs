//! Online backup and offline restore: `spoc backup` takes a snapshot from
//! a running server while attempts, learners and enrolments keep coming,
//! `spoc restore` brings it back into a new folder, and a server started
//! on it holds a consistent state (mastery equals the fold of the stored
//! attempts, every enrolment has its learner, everything acknowledged
//! before the backup started is there). A quiet backup restores to tables
//! equal to the original's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use spoc_engine::api::pb;
use tokio::sync::Mutex;

/// Raw entries of one table: (key, value).
type Entries = Vec<(Vec<u8>, Vec<u8>)>;
/// Answers of one (learner, skill): (time, attempt id, correct).
type Answers = Vec<(i64, String, bool)>;

/// Acknowledged writes, in acknowledgement order.
#[derive(Default)]
struct Acked {
    attempts: Vec<(String, String, String, bool, i64)>,
    learners: Vec<String>,
}

/// Runs `spoc` with `args` and the API key `key`; returns (success,
/// stdout + stderr).
async fn spoc(key: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("SPOC_API_KEY", key)
        .output()
        .await
        .expect("run spoc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `spoc restore --from <backup> --data-dir <dir>`: whether it succeeded,
/// and what it printed.
async fn restore(key: &str, backup: &std::path::Path, dir: &std::path::Path) -> (bool, String) {
    spoc(
        key,
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
        ],
    )
    .await
}

/// Writers of attempts (two learners, two skills) and of new learners with
/// their enrolment, until `stop`.
async fn start_writers(
    server: &TestServer,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..2u64 {
        let (stop, acked) = (stop.clone(), acked.clone());
        let channel = server.channel().await;
        tasks.push(tokio::spawn(async move {
            let mut mastery =
                pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
            let mut learners = pb::learner_service_client::LearnerServiceClient::new(channel);
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let who = if (i + w) % 2 == 0 { "alice" } else { "bob" };
                let skill = if i % 3 == 0 { "b" } else { "a" };
                let id = format!("w{w}-{i}");
                let correct = (i * 7 + w) % 3 != 0;
                let t = 1_700_000_000 + (i * 2 + w) as i64;
                let sent = attempt(&id, who, &[skill], correct, t);
                mastery
                    .record_attempts(pb::RecordAttemptsRequest {
                        attempts: vec![sent],
                    })
                    .await
                    .expect("record attempts");
                acked
                    .lock()
                    .await
                    .attempts
                    .push((id, who.into(), skill.into(), correct, t));
                if i % 5 == 0 {
                    let id = format!("x{w}-{i}");
                    add_enrolled(&mut learners, learner(&id, "initech"), "excel").await;
                    acked.lock().await.learners.push(id);
                }
                i += 1;
            }
        }));
    }
    tasks
}

/// Checks the restored store in `dir` (server stopped): every enrolment
/// has its learner, every attempt its index entries, and each mastery
/// state is the fold of its stored attempts.
fn assert_consistent(dir: &Path) -> usize {
    let store = open_store(dir);
    let attempts = store.all_attempts().unwrap();
    let mut answers: BTreeMap<(String, String), Answers> = BTreeMap::new();
    for a in &attempts {
        for s in &a.skill_ids {
            answers
                .entry((a.learner_id.clone(), s.clone()))
                .or_default()
                .push((a.occurred_at, a.attempt_id.clone(), a.correct));
        }
    }
    for ((l, s), mut seq) in answers {
        seq.sort();
        let state = store.mastery(&l, &s).unwrap().expect("mastery of attempts");
        assert_eq!(state.attempt_count as usize, seq.len(), "{l}/{s}");
        assert_eq!(store.observations(&l, &s).unwrap().len(), seq.len());
        let expected = hand_bkt(&seq.iter().map(|a| a.2).collect::<Vec<_>>());
        assert!(
            (state.p_mastered() - expected).abs() < 1e-9,
            "{l}/{s}: {} vs {expected}",
            state.p_mastered()
        );
    }
    let (enrolments, _) = store.program_enrolments("excel", None, usize::MAX).unwrap();
    for e in &enrolments {
        assert!(store.has_learner(&e.learner_id).unwrap(), "{e:?}");
    }
    attempts.len()
}

/// The tables our writers touch, as raw entries.
fn tables(dir: &Path) -> BTreeMap<String, Entries> {
    let keep: BTreeSet<&str> = [
        "skills",
        "modules",
        "learners",
        "programs",
        "enrolments",
        "program_members",
        "attempt_blocks",
        "learner_mastery",
        "ids",
    ]
    .into();
    let store = open_store(dir);
    let mut out: BTreeMap<String, Entries> = BTreeMap::new();
    for e in store.raw_entries().unwrap() {
        if keep.contains(e.tree.as_str()) {
            out.entry(e.tree).or_default().push((e.key, e.value));
        }
    }
    out
}

/// Backup under load, restore, start on the copy, compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_writes_restores_a_consistent_store() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    seed(&server).await;
    let addr = server.addr.to_string();
    let work = tempfile::tempdir().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let writers = start_writers(&server, stop.clone(), acked.clone()).await;
    let acked_past = |n: usize| {
        let acked = acked.clone();
        eventually("more acknowledged writes", async move || {
            (acked.lock().await.attempts.len() >= n).then_some(())
        })
    };
    acked_past(60).await;
    let before = acked.lock().await.attempts.len();
    let learners_before = acked.lock().await.learners.len();
    let file = work.path().join("live.snap");
    let (ok, out) = spoc(
        &key,
        &["backup", "--addr", &addr, "--out", file.to_str().unwrap()],
    )
    .await;
    assert!(ok, "spoc backup failed: {out}");
    assert!(out.contains("entries"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a snapshot holds personal data");
    }
    let during = acked.lock().await.attempts.len();
    // Let writes go on after the snapshot too, then stop them.
    acked_past(during + 20).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert!(during > before, "writes went on during the backup");

    // Restore refuses a folder that is not empty, then restores.
    let busy = work.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    let (ok, out) = restore(&key, &file, &busy).await;
    assert!(!ok && out.contains("not empty"), "{out}");
    let restored = work.path().join("restored");
    let (ok, out) = restore(&key, &file, &restored).await;
    assert!(ok, "spoc restore failed: {out}");

    // A server on the copy has everything acknowledged before the backup,
    // the API keys included: the operator's admin key works there.
    std::fs::write(restored.join("admin-key"), &key).unwrap();
    let copy = TestServer::start_in(&restored).await;
    let acked_now = acked.lock().await;
    let resent: Vec<pb::Attempt> = acked_now.attempts[..before]
        .iter()
        .map(|(id, who, skill, c, t)| attempt(id, who, &[skill.as_str()], *c, *t))
        .collect();
    let reply = copy
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest { attempts: resent })
        .await
        .expect("resend")
        .into_inner();
    assert_eq!(
        reply.recorded, 0,
        "an attempt acknowledged before the backup is missing"
    );
    let mut learners = copy.learners().await;
    for id in &acked_now.learners[..learners_before] {
        learners
            .get_learner(pb::GetLearnerRequest {
                learner_id: id.clone(),
            })
            .await
            .expect("learner acknowledged before the backup");
    }
    drop(acked_now);
    copy.stop().await;
    let in_copy = assert_consistent(&restored);
    assert!(
        in_copy >= before && in_copy <= during + 2,
        "{before} <= {in_copy} <= {during}"
    );

    // Quiet now: a second backup restores to the same tables.
    let quiet = work.path().join("quiet.snap");
    let (ok, out) = spoc(
        &key,
        &["backup", "--addr", &addr, "--out", quiet.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}");
    let temp = server.stop().await.expect("temp dir");
    let again = work.path().join("again");
    let (ok, out) = restore(&key, &quiet, &again).await;
    assert!(ok, "{out}");
    let original = tables(temp.path());
    assert_eq!(original.len(), 9, "{:?}", original.keys());
    assert_eq!(original, tables(&again));
    assert_consistent(temp.path());
}
