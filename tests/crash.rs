//! Durability of acknowledged attempts against SIGKILL, with the real
//! `spoc serve` binary.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use spoc_engine::api::pb;
use tonic::transport::Channel;

/// A `spoc serve` child process.
struct Spoc(Child);

impl Spoc {
    fn start(dir: &std::path::Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_spoc"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                // Not the default 8080: tests run side by side.
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn spoc serve");
        Spoc(child)
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown hook, no final flush.
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

impl Drop for Spoc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connect(port: u16) -> Channel {
    for _ in 0..250 {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("spoc serve did not come up on port {port}");
}

/// Attempts acknowledged just before a SIGKILL are all there after restart,
/// and mastery equals a recomputation from the stored attempts; repeated at
/// several kill points under concurrent load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_attempts_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<(String, bool, i64)> = Vec::new();
    for round in 0..3u64 {
        let port = free_port();
        let spoc = Spoc::start(temp.path(), port);
        let channel = connect(port).await;
        if round == 0 {
            let mut catalog =
                pb::catalog_service_client::CatalogServiceClient::new(channel.clone());
            catalog
                .import_catalog(pb::ImportCatalogRequest {
                    skills: vec![skill("a", &[])],
                    modules: vec![],
                    items: vec![],
                })
                .await
                .unwrap();
            let mut learners =
                pb::learner_service_client::LearnerServiceClient::new(channel.clone());
            learners
                .upsert_learner(pb::UpsertLearnerRequest {
                    learner: Some(learner("alice", "acme")),
                })
                .await
                .unwrap();
        }
        // Concurrent writers; stop after a round-dependent number of acks.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut writers = Vec::new();
        for writer in 0..4u64 {
            let mut client = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
            let tx = tx.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("r{round}-w{writer}-{i}");
                    let correct = (i + writer + round) % 3 != 0;
                    let t = 1_700_000_000 + (round * 100_000 + i * 10 + writer) as i64;
                    let sent = attempt(&id, "alice", &["a"], correct, t);
                    if client
                        .record_attempts(pb::RecordAttemptsRequest {
                            attempts: vec![sent],
                        })
                        .await
                        .is_ok()
                    {
                        if tx.send((id, correct, t)).is_err() {
                            break;
                        }
                    } else {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let target = 40 + 30 * round as usize;
        let mut got = 0;
        while got < target {
            let ack = rx.recv().await.expect("writers stopped early");
            acknowledged.push(ack);
            got += 1;
        }
        spoc.kill();
        // Acks that raced with the kill are acknowledged too.
        while let Ok(ack) = rx.try_recv() {
            acknowledged.push(ack);
        }
        for w in writers {
            let _ = w.await;
        }
    }

    // Restart once more and check everything.
    let port = free_port();
    let _spoc = Spoc::start(temp.path(), port);
    let channel = connect(port).await;
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel);
    let got = mastery
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "alice".into(),
            skill_ids: vec!["a".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let stored = got.skills[0].attempt_count as usize;
    assert!(
        stored >= acknowledged.len(),
        "lost acknowledged attempts: {stored} < {}",
        acknowledged.len()
    );
    // Resending every acknowledged attempt finds each of them stored.
    for chunk in acknowledged.chunks(500) {
        let attempts = chunk
            .iter()
            .map(|(id, c, t)| attempt(id, "alice", &["a"], *c, *t))
            .collect();
        let reply = mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.recorded, 0,
            "an acknowledged attempt was missing after SIGKILL"
        );
    }
    // Mastery equals the recomputation from the stored attempts when every
    // stored attempt was acknowledged (the usual case); otherwise the
    // unacknowledged extras are part of the sequence, so only bounds hold.
    if stored == acknowledged.len() {
        let mut sorted = acknowledged.clone();
        sorted.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        let answers: Vec<bool> = sorted.iter().map(|a| a.1).collect();
        assert!((got.skills[0].p_mastered - hand_bkt(&answers)).abs() < 1e-9);
    }
}
