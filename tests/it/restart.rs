//! A graceful stop of the real `spoc serve` leaves sled's page-table
//! snapshot at the end of its log (`store/page_table.rs`), so that the
//! next start does not replay what the server wrote; the data is all
//! there after it.

use std::path::Path;

use crate::common::*;
use spoc_engine::api::pb;

/// The log position sled's newest snapshot covers (its file name).
fn snapshot_position(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("sled"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .max()
        .unwrap_or(0)
}

async fn connect(port: u16, dir: &Path) -> AuthChannel {
    let channel = connect_when_up(([127, 0, 0, 1], port).into()).await;
    authed(channel, Some(&admin_key_in(dir)))
}

/// Alice's mastery, as GetMastery answers.
async fn alice(channel: &AuthChannel) -> pb::GetMasteryResponse {
    pb::mastery_service_client::MasteryServiceClient::new(channel.clone())
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_the_snapshot_and_keeps_every_attempt() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let port = free_addr().port();
    let spoc = Spoc::start(dir, ([127, 0, 0, 1], port).into(), "127.0.0.1:0", &[]);
    let channel = connect(port, dir).await;
    let at_start = snapshot_position(dir);
    seed_alice(&channel).await;
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
    for batch in 0..20 {
        let attempts = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                attempt(
                    &format!("a{n}"),
                    "alice",
                    &["a"],
                    n % 3 != 0,
                    1_700_000_000 + n,
                )
            })
            .collect();
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .unwrap();
    }
    let before = alice(&channel).await;
    drop((mastery, channel));
    spoc.stop();

    let after_stop = snapshot_position(dir);
    assert!(
        after_stop > at_start,
        "the snapshot stayed where the start left it ({at_start}, then {after_stop})"
    );

    let port = free_addr().port();
    let _spoc = Spoc::start(dir, ([127, 0, 0, 1], port).into(), "127.0.0.1:0", &[]);
    let again = alice(&connect(port, dir).await).await;
    assert_eq!(again.skills, before.skills);
    let a = again.skills.iter().find(|s| s.skill_id == "a").unwrap();
    assert_eq!(a.attempt_count, 2_000);
}
