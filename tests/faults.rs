//! Faults and abuse through the real `spoc serve` binary: private data
//! files, damaged data found and named.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use spoc_engine::api::pb;

/// A started `spoc serve` and a channel to it carrying the admin key.
async fn serve(dir: &Path) -> (Spoc, AuthChannel) {
    let addr = free_addr();
    let spoc = Spoc::start(dir, addr, "127.0.0.1:0", &[]);
    let channel = connect_when_up(addr).await;
    (spoc, authed(channel, Some(&admin_key_in(dir))))
}

/// Skills `a` and `b`, learner `alice`, and `n` acknowledged attempts.
async fn seed_attempts(channel: &AuthChannel, n: usize) {
    pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("a", &[]), skill("b", &[])],
            modules: vec![],
            items: vec![],
        })
        .await
        .unwrap();
    pb::learner_service_client::LearnerServiceClient::new(channel.clone())
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner("alice", "acme")),
        })
        .await
        .unwrap();
    record(channel, 0, n).await;
}

/// Attempts `from..from + n` of alice on skill `a`, one call each.
async fn record(channel: &AuthChannel, from: usize, n: usize) {
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
    for i in from..from + n {
        mastery
            .record_attempts(pb::RecordAttemptsRequest {
                attempts: vec![attempt(
                    &format!("t{i}"),
                    "alice",
                    &["a"],
                    i % 3 != 0,
                    1_700_000_000 + i as i64,
                )],
            })
            .await
            .unwrap();
    }
}

/// Every file and folder under `dir`, with its mode bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if entry.file_type().unwrap().is_dir() {
            out.extend(modes(&path));
        }
        out.push((path, mode));
    }
    out
}

/// `spoc serve` on `dir` that must refuse to start: its stderr.
fn refused_start(dir: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run spoc serve");
    assert!(!out.status.success(), "spoc serve started on {dir:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The data folder is 0700 and every file in it 0600 (sled's own files,
/// log segments, the admin key, models); files an older version left
/// readable are tightened, a killed backup's temporary copy is removed, and
/// a folder others can write is refused with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let (spoc, channel) = serve(&dir).await;
    seed_attempts(&channel, 5).await;
    // A backup streamed (its temporary copy lives in the data folder).
    let mut backup = pb::backup_service_client::BackupServiceClient::new(channel.clone())
        .create_backup(pb::CreateBackupRequest {})
        .await
        .unwrap()
        .into_inner();
    while backup.message().await.unwrap().is_some() {}
    // Wait for a checkpoint to have written sled's files.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    spoc.kill();
    let found = modes(&dir);
    assert!(found.iter().any(|(p, _)| p.ends_with("sled/db")), "{found:?}");
    assert!(found.iter().any(|(p, _)| p.ends_with("admin-key")));
    let wide: Vec<_> = found.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(wide.is_empty(), "readable by others: {wide:?}");
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);

    // What an older version left: wide modes and a killed backup's copy.
    let leftover = dir.join(".snapshot-1700000000000000-0.tmp");
    std::fs::write(&leftover, b"half a snapshot").unwrap();
    for (path, _) in &found {
        let wide = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(wide)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (spoc, channel) = serve(&dir).await;
    record(&channel, 5, 1).await;
    spoc.kill();
    assert!(!leftover.exists(), "the killed backup's copy is still there");
    let wide: Vec<_> = modes(&dir)
        .into_iter()
        .filter(|(_, m)| m & 0o077 != 0)
        .collect();
    assert!(wide.is_empty(), "left readable by others: {wide:?}");

    // Others can write the folder: refused, naming the folder and the fix.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = refused_start(&dir);
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("chmod 700"), "{stderr}");
}
