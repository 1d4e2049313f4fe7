//! Durability of acknowledged attempts against SIGKILL, with the real
//! `spoc serve` binary: concurrent `RecordAttempts` calls, a SIGKILL at a
//! different point in each of several rounds, a restart on the same data
//! folder each time.
//!
//! `spoc serve` writes its first admin key to `DATA_DIR/admin-key` before
//! it listens; every call carries it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use spoc_engine::api::pb;
use spoc_engine::domain::mastery::fold;
use spoc_engine::engine::params::ParamSet;
use spoc_engine::engine::{Engine, EngineConfig};
use spoc_engine::store::Store;
use tokio_stream::StreamExt;

/// Learners and skills of the load; each attempt tests one or two skills.
const LEARNERS: [&str; 2] = ["alice", "bob"];
const SKILLS: [&str; 2] = ["a", "b"];

/// A channel to the server once it accepts, carrying its admin key.
async fn connect(port: u16, dir: &Path) -> AuthChannel {
    let channel = connect_when_up(([127, 0, 0, 1], port).into()).await;
    authed(channel, Some(&admin_key_in(dir)))
}

/// An acknowledged attempt: id, learner, skills, correct, seconds.
type Ack = (String, &'static str, Vec<&'static str>, bool, i64);

/// How a round picks its kill point.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// After this many acknowledged calls.
    Acks(usize),
    /// This long after the load started, whatever was acknowledged.
    After(Duration),
}

/// Acknowledged attempts survive SIGKILL at several kill points; after a
/// final restart the store opens cleanly, holds every acknowledged attempt,
/// and GetMastery equals the fold of the stored attempts with the shipped
/// BKT parameters for every (learner, skill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_attempts_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut acknowledged: Vec<Ack> = Vec::new();
    let kill_points = [
        KillPoint::Acks(30),
        KillPoint::After(Duration::from_millis(15)),
        KillPoint::Acks(120),
        KillPoint::After(Duration::from_millis(250)),
    ];
    for (round, kill_point) in kill_points.into_iter().enumerate() {
        let round = round as u64;
        let port = free_addr().port();
        let spoc = Spoc::start(dir, ([127, 0, 0, 1], port).into(), "127.0.0.1:0", &[]);
        let channel = connect(port, dir).await;
        if round == 0 {
            let mut catalog =
                pb::catalog_service_client::CatalogServiceClient::new(channel.clone());
            catalog
                .import_catalog(crate::common::skills_a_b())
                .await
                .unwrap();
            let mut learners =
                pb::learner_service_client::LearnerServiceClient::new(channel.clone());
            for id in LEARNERS {
                learners
                    .upsert_learner(pb::UpsertLearnerRequest {
                        learner: Some(learner(id, "acme")),
                    })
                    .await
                    .unwrap();
            }
        }
        // Concurrent writers of batches of one to three attempts; times
        // interleave across writers and rounds, so late arrivals replay.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Ack>>();
        let mut writers = Vec::new();
        for writer in 0..4u64 {
            let mut client = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
            let tx = tx.clone();
            writers.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let batch: Vec<Ack> = (0..1 + (i + writer) % 3)
                        .map(|k| {
                            let n = i * 3 + k;
                            let skills = match (n + writer) % 3 {
                                0 => vec!["a"],
                                1 => vec!["b"],
                                _ => vec!["a", "b"],
                            };
                            let t = 1_700_000_000 + ((n * 4 + writer) * 7 + round * 3) as i64;
                            (
                                format!("r{round}-w{writer}-{n}"),
                                LEARNERS[((n + writer) % 2) as usize],
                                skills,
                                (n + writer + round) % 3 != 0,
                                t,
                            )
                        })
                        .collect();
                    let attempts = batch
                        .iter()
                        .map(|(id, l, s, c, t)| attempt(id, l, s, *c, *t))
                        .collect();
                    let sent = client
                        .record_attempts(pb::RecordAttemptsRequest { attempts })
                        .await;
                    if sent.is_err() || tx.send(batch).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        match kill_point {
            KillPoint::Acks(target) => {
                for _ in 0..target {
                    let acks = rx.recv().await.expect("writers stopped early");
                    acknowledged.extend(acks);
                }
            }
            KillPoint::After(delay) => tokio::time::sleep(delay).await,
        }
        spoc.kill();
        // Acks that raced with the kill are acknowledged too.
        for w in writers {
            let _ = w.await;
        }
        while let Ok(acks) = rx.try_recv() {
            acknowledged.extend(acks);
        }
    }
    assert!(
        acknowledged.len() > 150,
        "load too light: {}",
        acknowledged.len()
    );

    // Restart once more: it comes up on the crashed folder and serves.
    let port = free_addr().port();
    let spoc = Spoc::start(dir, ([127, 0, 0, 1], port).into(), "127.0.0.1:0", &[]);
    let channel = connect(port, dir).await;
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
    let mut served = BTreeMap::new();
    for learner in LEARNERS {
        let got = client
            .get_mastery(pb::GetMasteryRequest {
                learner_id: learner.into(),
                skill_ids: SKILLS.iter().map(|s| s.to_string()).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        for m in got.skills {
            served.insert(
                (learner.to_string(), m.skill_id),
                (m.p_mastered, m.attempt_count),
            );
        }
    }
    spoc.kill();

    // The store opens cleanly after that crash too (the log replays).
    let store = Store::open(dir).expect("store opens");
    let stored = store.all_attempts().expect("attempts readable");
    let params = ParamSet::load(None).expect("shipped params");
    let ids: BTreeSet<&str> = stored.iter().map(|a| a.attempt_id.as_str()).collect();
    let lost: Vec<&str> = acknowledged
        .iter()
        .map(|a| a.0.as_str())
        .filter(|id| !ids.contains(id))
        .collect();
    assert!(lost.is_empty(), "lost acknowledged attempts: {lost:?}");

    // Mastery served equals the fold of the stored attempts.
    for learner in LEARNERS {
        for skill in SKILLS {
            let mut seq: Vec<_> = stored
                .iter()
                .filter(|a| a.learner_id == learner && a.skill_ids.iter().any(|s| s == skill))
                .map(|a| (a.position(), a.observation()))
                .collect();
            seq.sort_by(|a, b| a.0.cmp(&b.0));
            let folded = fold(params.for_skill(skill), None, &seq, 0).expect("attempts");
            let (p, count) = served[&(learner.to_string(), skill.to_string())];
            assert_eq!(count as usize, seq.len(), "{learner}/{skill}");
            assert!(
                (p - folded.p_mastered()).abs() < 1e-9,
                "{learner}/{skill}: served {p}, fold {}",
                folded.p_mastered()
            );
            let kept = store
                .mastery(learner, skill)
                .unwrap()
                .expect("stored state");
            assert_eq!(kept.attempt_count as usize, seq.len());
        }
    }
    Engine::new(
        store,
        EngineConfig {
            mastery_threshold: 0.95,
            params,
        },
    )
    .expect("engine starts: the log replays cleanly");
}

/// A change a watcher saw survives SIGKILL: after a restart the alert log
/// holds it under the same sequence number, unchanged, so a watcher that
/// resumes from that number misses nothing (an alert published before it
/// was durable could be lost, and its number given to another change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_alerts_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut seen: Vec<pb::Alert> = Vec::new();
    for round in 0..3 {
        let port = free_addr().port();
        // One alert per learner of a tiny program: no budget.
        let no_budget = [
            std::ffi::OsStr::new("--alerts-per-25"),
            std::ffi::OsStr::new("0"),
        ];
        let spoc = Spoc::start(
            dir,
            ([127, 0, 0, 1], port).into(),
            "127.0.0.1:0",
            &no_budget,
        );
        let channel = connect(port, dir).await;
        let learner_id = format!("l{round}");
        if round == 0 {
            pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
                .import_catalog(pb::ImportCatalogRequest {
                    skills: vec![skill("a", &[])],
                    ..Default::default()
                })
                .await
                .unwrap();
            pb::program_service_client::ProgramServiceClient::new(channel.clone())
                .upsert_program(pb::UpsertProgramRequest {
                    program: Some(pb::Program {
                        id: "p".into(),
                        name: "Program p".into(),
                        skill_ids: vec!["a".into()],
                        ..Default::default()
                    }),
                })
                .await
                .unwrap();
        }
        let mut learners = pb::learner_service_client::LearnerServiceClient::new(channel.clone());
        add_enrolled(&mut learners, learner(&learner_id, "co"), "p").await;
        let after = seen.last().map_or(0, |a| a.sequence);
        let mut stream = watch_program_p(&channel, after).await;
        // Three failures on one skill raise a blocking point.
        let attempts = (0..3)
            .map(|k| {
                attempt(
                    &format!("{learner_id}-{k}"),
                    &learner_id,
                    &["a"],
                    false,
                    t0() + k,
                )
            })
            .collect();
        pb::mastery_service_client::MasteryServiceClient::new(channel.clone())
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .unwrap();
        let alert = loop {
            let alert = next_alert(&mut stream).await;
            if alert.learner_id == learner_id {
                break alert;
            }
        };
        // Killed the moment the change is seen.
        spoc.kill();
        seen.push(alert);
    }

    // After a last restart, the log replays exactly what was seen.
    let port = free_addr().port();
    let _spoc = Spoc::start(dir, ([127, 0, 0, 1], port).into(), "127.0.0.1:0", &[]);
    let channel = connect(port, dir).await;
    // Resumed from before the first change seen.
    let mut stream = watch_program_p(&channel, seen[0].sequence - 1).await;
    let last = seen.iter().map(|a| a.sequence).max().unwrap();
    let mut replayed = BTreeMap::new();
    while replayed.keys().next_back() < Some(&last) {
        let alert = next_alert(&mut stream).await;
        replayed.insert(alert.sequence, alert);
    }
    // The figures (signals) are recomputed at every evaluation without a
    // new sequence number (not a change): the change itself must survive.
    let change = |a: &pb::Alert| pb::Alert {
        signals: Default::default(),
        ..a.clone()
    };
    for alert in &seen {
        let stored = replayed.get(&alert.sequence).map(change);
        assert_eq!(
            stored,
            Some(change(alert)),
            "sequence {} after the crash",
            alert.sequence
        );
    }
}

/// WatchAlerts on program `p` after `after_sequence`.
async fn watch_program_p(
    channel: &AuthChannel,
    after_sequence: u64,
) -> tonic::codec::Streaming<pb::AlertEvent> {
    pb::alert_service_client::AlertServiceClient::new(channel.clone())
        .watch_alerts(pb::WatchAlertsRequest {
            cohort_ids: vec![],
            program_id: "p".into(),
            after_sequence,
        })
        .await
        .expect("watch")
        .into_inner()
}

/// The alert of the next event, within 5 s.
async fn next_alert(stream: &mut tonic::codec::Streaming<pb::AlertEvent>) -> pb::Alert {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an alert event in time")
        .expect("stream open")
        .expect("event")
        .alert
        .expect("alert")
}
