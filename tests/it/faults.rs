//! Faults and abuse through the real `spoc serve` binary: private data
//! files, damaged data found and named.

use std::path::{Path, PathBuf};

use crate::common::*;
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
    seed_alice(channel).await;
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
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
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
    assert!(
        found.iter().any(|(p, _)| p.ends_with("sled/db")),
        "{found:?}"
    );
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
    assert!(
        !leftover.exists(),
        "the killed backup's copy is still there"
    );
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

/// alice's attempt count on skill `a` (0 without a state).
async fn attempt_count(channel: &AuthChannel) -> i32 {
    pb::mastery_service_client::MasteryServiceClient::new(channel.clone())
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "alice".into(),
            skill_ids: vec!["a".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .skills
        .first()
        .map_or(0, |m| m.attempt_count)
}

/// `spoc verify --data-dir DIR`: (exit code, stdout + stderr).
fn verify(dir: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run spoc verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The log segments holding data, oldest first.
fn segments_with_data(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    out.sort();
    out
}

/// A data folder whose log holds three acknowledged attempts, sled none
/// of them (killed before a checkpoint trimmed the log); returns the
/// segment holding them.
async fn logged_attempts(dir: &Path) -> PathBuf {
    let (spoc, channel) = serve(dir).await;
    seed_attempts(&channel, 0).await;
    // Checkpoints run every second: retry until the kill beats one.
    for round in 0..5 {
        record(&channel, round * 3, 3).await;
        let before = segments_with_data(dir);
        if let Some(segment) = before.last() {
            if std::fs::metadata(segment).unwrap().len() > 0 {
                let copy = std::fs::read(segment).unwrap();
                spoc.kill();
                // Whatever raced with the kill, keep exactly those bytes.
                std::fs::write(segment, copy).unwrap();
                return segment.clone();
            }
        }
    }
    panic!("every round was checkpointed before the kill");
}

/// A flipped high byte of a record's length is damage, not a torn tail:
/// the start is refused naming the file and offset, and `spoc verify`
/// exits 1 naming them too; nothing is trimmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_length_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let segment = logged_attempts(&dir).await;
    let mut bytes = std::fs::read(&segment).unwrap();
    let whole = bytes.clone();
    bytes[3] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let stderr = refused_start(&dir);
    assert!(
        stderr.contains(&name) && stderr.contains("at byte 0"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, text) = verify(&dir);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&name), "{text}");
    // Repaired (as a restore would), every acknowledged attempt is back.
    std::fs::write(&segment, &whole).unwrap();
    let (spoc, channel) = serve(&dir).await;
    assert!(attempt_count(&channel).await >= 3);
    spoc.kill();
}

/// Damage in a segment that a later segment with data follows is never a
/// torn tail, even at its very end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_a_middle_segment_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let segment = logged_attempts(&dir).await;
    let bytes = std::fs::read(&segment).unwrap();
    // A later segment with the same (idempotent) records.
    let later = dir.join("wal").join("wal-00000000ffffffff.log");
    std::fs::write(&later, &bytes).unwrap();
    // The middle one loses its last bytes, as a torn write would.
    std::fs::write(&segment, &bytes[..bytes.len() - 3]).unwrap();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let stderr = refused_start(&dir);
    assert!(stderr.contains(&name), "{stderr}");
    let (code, text) = verify(&dir);
    assert_eq!(code, 1, "{text}");
}

/// A record cut short at the end of the last segment is a torn write of a
/// call never acknowledged: the server starts with the records before it,
/// and verify finds nothing once the replay applied them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_still_starts() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let segment = logged_attempts(&dir).await;
    let bytes = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, &bytes[..bytes.len() - 3]).unwrap();
    let (spoc, channel) = serve(&dir).await;
    assert!(attempt_count(&channel).await >= 2);
    spoc.kill();
    let (code, text) = verify(&dir);
    assert_eq!(code, 0, "{text}");
}

/// Flipped bytes in `sled/db`: the server either refuses naming the file
/// (never a panic), or starts with every acknowledged attempt; `spoc
/// verify` answers 0 or 1, never crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_in_sled_never_pass_silently() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let (spoc, channel) = serve(&dir).await;
    seed_attempts(&channel, 40).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    spoc.kill();
    let (code, text) = verify(&dir);
    assert_eq!(code, 0, "{text}");
    // Flip where sled wrote something (its file is mostly preallocated).
    let clean = std::fs::read(dir.join("sled").join("db")).unwrap();
    let len = clean.len();
    let written: Vec<usize> = (0..len - 16).filter(|i| clean[*i] != 0).collect();
    let picks = [1, 3, 5, 7, 9, 11, 13, 15].map(|k| written[written.len() * k / 16]);
    for (n, at) in picks.into_iter().enumerate() {
        let dir = temp.path().join(format!("flip-{n}"));
        copy_dir(&temp.path().join("data"), &dir);
        let db = dir.join("sled").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        for b in &mut bytes[at..at + 16] {
            *b ^= 0xa5;
        }
        std::fs::write(&db, &bytes).unwrap();
        let addr = free_addr();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--http-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Up, or exited: whichever comes first.
        let mut up = false;
        for _ in 0..500 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::net::TcpStream::connect(addr).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if up {
            let channel = authed(connect_when_up(addr).await, Some(&admin_key_in(&dir)));
            let count = attempt_count(&channel).await;
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("flip at {at} of {len}: started, {count} attempts");
            assert_eq!(count, 40, "flip at {at}: started with attempts missing");
        } else {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(!stderr.contains("panicked"), "flip at {at}: {stderr}");
            assert!(stderr.contains("sled"), "flip at {at}: {stderr}");
            eprintln!("flip at {at} of {len}: refused: {stderr}");
        }
        let (code, text) = verify(&dir);
        assert!(code == 0 || code == 1, "flip at {at}: {text}");
    }
}

/// Copies the folder `from` to the new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Failed answers of `learner` on skill `a` (three raise a blocking point).
async fn fail_three(server: &TestServer, learner: &str) {
    let attempts = (0..3)
        .map(|k| attempt(&format!("{learner}-f{k}"), learner, &["a"], false, t0() + k))
        .collect();
    server.record(attempts).await;
}

/// Forms the cohorts of `program` (one cohort of its 16 learners).
async fn form(server: &TestServer, program: &str) -> String {
    server.form_one_cohort(program).await
}

/// Every page of ListAlerts for `key` with page_size 1: (alerts of each
/// page, tokens).
async fn walk(server: &TestServer, key: &str) -> (Vec<Vec<pb::Alert>>, Vec<String>) {
    let mut client =
        pb::alert_service_client::AlertServiceClient::new(server.channel_with(Some(key)).await);
    let (mut pages, mut tokens) = (Vec::new(), Vec::new());
    let mut token = String::new();
    loop {
        let page = client
            .list_alerts(pb::ListAlertsRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list alerts")
            .into_inner();
        pages.push(page.alerts);
        if page.next_page_token.is_empty() {
            return (pages, tokens);
        }
        token = page.next_page_token;
        tokens.push(token.clone());
    }
}

/// A trainer's ListAlerts scopes first, then pages: with page_size 1 every
/// page holds one of its alerts (no empty pages counting other cohorts'
/// alerts), and no token carries an alert id outside its scope. After a new
/// formation the former trainer loses the learners' alerts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_pages_over_its_own_alerts_only() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    // Scoped pages, not the budget: every alert may be open.
    server.engine.set_alert_budget(0);
    let p1: Vec<pb::Learner> = staff("l", 16, "co", 5);
    let p2: Vec<pb::Learner> = staff("m", 16, "other", 5);
    seed_cohort_program(&server, "p1", None, &p1).await;
    seed_cohort_program(&server, "p2", None, &p2).await;
    let cohort1 = form(&server, "p1").await;
    form(&server, "p2").await;
    // Other cohorts' alerts before, between and after the trainer's.
    for learner in ["m00", "l00", "m01", "m02", "l01", "m03", "l02", "m04"] {
        fail_three(&server, learner).await;
    }
    let request = pb::ListAlertsRequest {
        page_size: 100,
        ..Default::default()
    };
    let all = server.alerts_when(request, |a| a.len() >= 8).await;
    let trainer = server.key(pb::ApiKeyRole::Trainer, &[&cohort1], "").await;
    let (pages, tokens) = walk(&server, &trainer).await;
    let seen: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|a| a.learner_id.as_str())
        .collect();
    assert_eq!(seen, ["l00", "l01", "l02"], "pages: {pages:?}");
    assert!(pages.iter().all(|p| p.len() == 1), "empty pages: {pages:?}");
    for token in &tokens {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for other in all.iter().filter(|a| !a.learner_id.starts_with('l')) {
            assert!(
                !text.contains(&other.id),
                "token {token} carries {}",
                other.id
            );
        }
    }

    // A new formation: the former cohort is gone, and its alerts with it.
    form(&server, "p1").await;
    let (pages, _) = walk(&server, &trainer).await;
    assert!(pages.iter().all(|p| p.is_empty()), "still sees {pages:?}");
    let l00 = all.iter().find(|a| a.learner_id == "l00").unwrap();
    let status = pb::alert_service_client::AlertServiceClient::new(
        server.channel_with(Some(&trainer)).await,
    )
    .acknowledge_alert(pb::AcknowledgeAlertRequest {
        alert_id: l00.id.clone(),
        by: "former trainer".into(),
        note: String::new(),
    })
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

/// Sends the head of a statements POST declaring `length` bytes of body
/// (none sent) with `key`; returns the open connection.
async fn slow_upload(addr: std::net::SocketAddr, key: &str, length: u64) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /xapi/statements HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// The status line of the reply on `stream`.
async fn status_line(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without a reply");
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines().next().unwrap().to_string()
}

/// The HTTP edge: a declared body over the limit gets 413 before any byte
/// of it; one key's slow uploads take at most its own share of the slots,
/// so another key's request is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_huge_uploads_of_one_key_do_not_block_the_others() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let (grpc, http) = (free_addr(), free_addr());
    let spoc = Spoc::start(&dir, grpc, &http.to_string(), &[]);
    let channel = authed(connect_when_up(grpc).await, Some(&admin_key_in(&dir)));
    let admin = pb::admin_service_client::AdminServiceClient::new(channel);
    let lms_key = || {
        let request = pb::CreateApiKeyRequest {
            role: pb::ApiKeyRole::Lms as i32,
            cohort_ids: vec![],
            company_id: String::new(),
            display_name: "lms".into(),
        };
        let mut admin = admin.clone();
        async move {
            admin
                .create_api_key(request)
                .await
                .unwrap()
                .into_inner()
                .secret
        }
    };
    let (greedy, other) = (lms_key().await, lms_key().await);

    let mut huge = slow_upload(http, &greedy, 1_000_000_000_000).await;
    assert!(status_line(&mut huge).await.contains(" 413 "));

    let limit = spoc_engine::http::limits::PER_KEY_IN_FLIGHT;
    let mut held = Vec::new();
    for _ in 0..limit {
        held.push(slow_upload(http, &greedy, 100).await);
    }
    // Wait until the server took them all in (each holds a slot).
    let mut refused = None;
    for _ in 0..200 {
        let mut one_more = slow_upload(http, &greedy, 100).await;
        let line = status_line_or_pending(&mut one_more).await;
        if let Some(line) = line {
            refused = Some(line);
            break;
        }
        held.push(one_more);
    }
    let refused = refused.expect("the greedy key was never refused");
    assert!(refused.contains(" 429 "), "{refused}");
    // The other key still gets an answer about its request (400: the
    // body is not a statement), not a 503.
    let mut fine = slow_upload(http, &other, 2).await;
    tokio::io::AsyncWriteExt::write_all(&mut fine, b"{}")
        .await
        .unwrap();
    let line = status_line(&mut fine).await;
    assert!(line.contains(" 400 "), "{line}");
    drop(held);
    spoc.kill();
}

/// The status line if a reply arrives within a moment, `None` while the
/// server waits for the body.
async fn status_line_or_pending(stream: &mut tokio::net::TcpStream) -> Option<String> {
    tokio::time::timeout(std::time::Duration::from_millis(300), status_line(stream))
        .await
        .ok()
}

/// A client that sends part of its headers and then nothing is cut off
/// after the header read timeout (it would otherwise hold its connection
/// forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let (grpc, http) = (free_addr(), free_addr());
    let spoc = Spoc::start(&dir, grpc, &http.to_string(), &[]);
    connect_when_up(grpc).await;
    let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"POST /xapi/statements HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server closes the connection (possibly after a 408): the read
    // ends instead of waiting forever.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    spoc.kill();
}

/// A tmpfs of `mb` megabytes mounted on a fresh folder, unmounted on drop;
/// `None` where mounting is not allowed (not root, no CAP_SYS_ADMIN).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(mb: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }

    /// Fills the disk with a file, leaving at most a few KB.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// A full disk: writes are UNAVAILABLE (never INTERNAL, never a failure
/// for what was stored), reads keep working, ingestion resumes by itself
/// once space is freed, and nothing acknowledged is lost across a restart.
#[tokio::test]
async fn a_full_disk_is_unavailable_then_ingestion_resumes() {
    let Some(disk) = SmallDisk::mount(48) else {
        eprintln!("note: cannot mount a tmpfs here (not root?): full-disk test skipped");
        return;
    };
    let dir = disk.0.path().join("data");
    let (spoc, channel) = serve(&dir).await;
    seed_attempts(&channel, 5).await;
    let filler = disk.fill();
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
    let mut acknowledged = 5;
    let mut refused = 0;
    // Batches of 50 until the disk refuses (the log and sled fill what
    // little room is left within a few batches).
    for call in 0..60 {
        let attempts: Vec<_> = (0..50)
            .map(|k| {
                let i = 5 + call * 50 + k;
                attempt(
                    &format!("t{i}"),
                    "alice",
                    &["a"],
                    true,
                    1_700_000_000 + i as i64,
                )
            })
            .collect();
        let reply = mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await;
        match reply {
            Ok(_) => acknowledged += 50,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                refused += 1;
            }
        }
        if refused >= 5 {
            break;
        }
    }
    assert!(refused > 0, "a full disk refused nothing");
    // Reads are served while writes cannot be.
    assert!(attempt_count(&channel).await >= 5);
    std::fs::remove_file(filler).unwrap();
    // Ingestion resumes by itself once space is back.
    eventually("ingestion resuming after space was freed", async || {
        mastery
            .record_attempts(pb::RecordAttemptsRequest {
                attempts: vec![attempt("after", "alice", &["a"], true, 1_700_100_000)],
            })
            .await
            .ok()
    })
    .await;
    let before_restart = attempt_count(&channel).await;
    assert!(
        before_restart > acknowledged,
        "{before_restart} < {acknowledged} + 1"
    );
    spoc.kill();
    let (spoc, channel) = serve(&dir).await;
    assert_eq!(attempt_count(&channel).await, before_restart);
    spoc.kill();
}

/// The recovery procedure of OPERATIONS.md, end to end through the binary:
/// a backup, more writes, damage that stops the start; `spoc verify` names
/// it; the backup restored into a new folder verifies clean and serves
/// what it held; what came after it, sent again (idempotent ids), is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_procedure_restores_the_last_backup() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let addr = free_addr();
    let spoc = Spoc::start(&dir, addr, "127.0.0.1:0", &[]);
    let channel = authed(connect_when_up(addr).await, Some(&admin_key_in(&dir)));
    seed_attempts(&channel, 10).await;
    let snap = temp.path().join("last.snap");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .arg("backup")
        .arg("--out")
        .arg(&snap)
        .args([
            "--addr",
            &format!("http://{addr}"),
            "--api-key",
            &admin_key_in(&dir),
        ])
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    // More writes after the backup, killed before a checkpoint trims the
    // log that holds them (retried until the kill wins the race).
    let mut segment = None;
    for round in 0..5 {
        record(&channel, 10 + round, 1).await;
        if let Some(last) = segments_with_data(&dir).last() {
            segment = Some((last.clone(), std::fs::read(last).unwrap()));
            break;
        }
    }
    spoc.kill();
    let (segment, mut bytes) = segment.expect("every write was checkpointed before the kill");
    // Damage: a record's length, as a disk error would.
    bytes[3] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();
    assert!(!refused_start(&dir).contains("panicked"));
    let (code, text) = verify(&dir);
    assert_eq!(code, 1, "damage passed verify: {text}");
    // Restore into a new folder, verify, serve.
    let restored = temp.path().join("data.restored");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
        .arg("restore")
        .arg("--from")
        .arg(&snap)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let (code, text) = verify(&restored);
    assert_eq!(code, 0, "{text}");
    // The restored store holds the keys (hashed) of the backed-up one.
    let addr = free_addr();
    let spoc = Spoc::start(&restored, addr, "127.0.0.1:0", &[]);
    let channel = authed(connect_when_up(addr).await, Some(&admin_key_in(&dir)));
    assert_eq!(attempt_count(&channel).await, 10);
    // Clients resend what came after the backup: the resends of attempts
    // the backup held are duplicates, the rest comes back.
    record(&channel, 5, 10).await;
    assert_eq!(attempt_count(&channel).await, 15);
    spoc.kill();
}

/// POSTs a JSON body to the xAPI listener; returns the HTTP status.
fn post_statements(http: std::net::SocketAddr, key: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    write!(
        stream,
        "POST /xapi/statements HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {key}\r\n\
         X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// xAPI statements that create their learner, acknowledged, then SIGKILL
/// before any checkpoint: the restart's log replay keeps every attempt
/// (the learner was made durable before its attempts were logged; before,
/// the replay dropped them as "entries of an erased learner").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_xapi_attempts_of_new_learners_survive_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    for round in 0..4 {
        let (grpc, http) = (free_addr(), free_addr());
        let spoc = Spoc::start(&dir, grpc, &http.to_string(), &[]);
        let channel = authed(connect_when_up(grpc).await, Some(&admin_key_in(&dir)));
        if round == 0 {
            pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
                .import_catalog(pb::ImportCatalogRequest {
                    skills: vec![skill("a", &[])],
                    items: vec![pb::Item {
                        id: "https://lms.example.com/q/1".into(),
                        skill_ids: vec!["a".into()],
                        ..Default::default()
                    }],
                    modules: vec![],
                })
                .await
                .unwrap();
        } else {
            // Every learner of the rounds before kept its acknowledged
            // attempts across the kill.
            for earlier in 0..round {
                let skills = pb::mastery_service_client::MasteryServiceClient::new(channel.clone())
                    .get_mastery(pb::GetMasteryRequest {
                        learner_id: format!("x{earlier}"),
                        skill_ids: vec!["a".into()],
                    })
                    .await
                    .expect("learner kept")
                    .into_inner()
                    .skills;
                assert_eq!(skills[0].attempt_count, 5, "round {earlier}");
            }
        }
        let body: Vec<String> = (0..5)
            .map(|k| {
                format!(
                    r#"{{"id":"00000000-0000-4000-8000-{round:06}{k:06}","actor":{{"account":{{"homePage":"https://lms.example.com","name":"x{round}"}}}},"verb":{{"id":"http://adlnet.gov/expapi/verbs/answered"}},"object":{{"id":"https://lms.example.com/q/1"}},"result":{{"success":true}},"timestamp":"2026-11-20T09:00:0{k}Z"}}"#
                )
            })
            .collect();
        let key = admin_key_in(&dir);
        let body = format!("[{}]", body.join(","));
        let status = tokio::task::spawn_blocking(move || post_statements(http, &key, &body))
            .await
            .unwrap();
        assert_eq!(status, 200);
        spoc.kill();
    }
}
