//! The write-ahead log of attempts and module activity.
//!
//! An acknowledged attempt must survive SIGKILL, but a sled `flush` costs
//! about 24 ms here whatever it writes, which would cap ingestion at a few
//! thousand calls per second. So ingestion appends each batch to this log
//! and waits for an `fdatasync` (a fraction of a millisecond, shared by all
//! concurrent writers: group commit; the sync thread also writes the
//! records, one `write` per sync), while sled is flushed in the
//! background every second (a checkpoint). At start, the records of the log
//! are replayed through the normal ingestion path: module events are
//! idempotent per event id, attempts are written again and the mastery they
//! touch rebuilt (sled may hold part of a logged batch, see
//! `write_behind.rs`), so replaying a record sled already has changes
//! nothing.
//!
//! Files: `wal/wal-<seq>.log`, 16 hex digits. Record: length (u32 LE), CRC32
//! of the payload (u32 LE), payload (`codec` encoding of [`WalRecord`]).
//! Rotation starts a new segment; once sled is flushed, older segments are
//! deleted. Invariant: a segment closed by a rotation only holds batches the
//! following sled flush covers: module activity is applied to sled before
//! it is appended here, and attempts are appended and added to the
//! write-behind rows under one lock that the checkpoint takes, after the
//! rotation, to apply those rows (see `write_behind.rs`).
//!
//! Erasure (GDPR): once a learner is erased, [`Wal::forget_learner`] makes
//! every later append drop that learner's entries (a batch applied just
//! before the erasure may reach the log just after it), and the erasure's
//! checkpoint deletes the segments that held them; so the id leaves the log
//! and no replay can bring the learner's records back.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::codec;
use crate::domain::activity::Activity;
use crate::domain::mastery::Attempt;
use crate::error::{Error, Result};

/// One logged write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalRecord {
    /// A `RecordAttempts` batch, as validated.
    Attempts(Vec<Attempt>),
    /// A `RecordActivity` batch, as validated.
    Activities(Vec<Activity>),
}

struct Segment {
    seq: u64,
    file: File,
    /// Bytes written to `file`: where a failed write cuts it back to.
    len: u64,
    /// Framed records not yet written to `file`. Callers only copy their
    /// record here; the sync thread writes them all with one `write` just
    /// before its `fdatasync`, so no call makes a syscall of its own or
    /// holds the lock during one.
    pending: Vec<u8>,
}

impl Segment {
    /// Writes the pending records to the file. On failure the file is cut
    /// back to its last whole record, and the error says so (or that the
    /// cut failed too).
    fn write_pending(&mut self, full: &FullDisk) -> std::result::Result<(), WriteFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = match full.injected() {
            true => Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            false => self.file.write_all(&self.pending),
        };
        if let Err(err) = written {
            let no_space = matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
            return Err(match self.file.set_len(self.len) {
                // Nothing of the records stays in the file: they stay
                // pending, and the write is tried again once space is back.
                Ok(()) if no_space => WriteFailure::NoSpace(format!("wal write failed: {err}")),
                Ok(()) => WriteFailure::Fatal(format!("wal write failed: {err}")),
                Err(cut) => WriteFailure::Fatal(format!(
                    "wal write failed: {err}; cutting the partial write failed: {cut}"
                )),
            });
        }
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// Why pending records could not be written.
enum WriteFailure {
    /// The disk (or quota) is full; the file was cut back to its last
    /// whole record, so the records can be written again later.
    NoSpace(String),
    /// Anything else: the log is unusable until a restart.
    Fatal(String),
}

impl WriteFailure {
    fn reason(self) -> String {
        match self {
            WriteFailure::NoSpace(r) | WriteFailure::Fatal(r) => r,
        }
    }
}

/// Starts every error of a batch caught by a full disk: `Wal::wait` turns
/// it into UNAVAILABLE.
const DISK_FULL: &str = "disk full";

/// How long the sync thread waits before writing again after a full disk.
const FULL_RETRY: Duration = Duration::from_secs(1);

/// Whether the disk was found full (writes refused until space is back),
/// and a switch tests use to make writes fail with ENOSPC.
#[derive(Default)]
struct FullDisk {
    full: std::sync::atomic::AtomicBool,
    inject: std::sync::atomic::AtomicBool,
}

impl FullDisk {
    fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    fn injected(&self) -> bool {
        self.inject.load(Ordering::SeqCst)
    }
}

struct Shared {
    /// Set while pending records wait for disk space.
    disk: FullDisk,
    segment: Mutex<Segment>,
    /// Records appended so far (tickets).
    appended: AtomicU64,
    closed: Mutex<bool>,
    wake: Condvar,
    /// While the sync thread gathers records, the ticket whose write must
    /// wake it (`u64::MAX` otherwise).
    gather_until: AtomicU64,
    /// Learners erased since the log was opened: dropped from appends.
    erased: RwLock<HashSet<String>>,
    /// Bumped by every erasure; an append encoded under an older value is
    /// filtered again before it is written.
    erasures: AtomicU64,
    /// What is synced, and who waits for what.
    waiters: Mutex<Waiters>,
}

/// The synced ticket and the callers waiting for later ones. Each sync
/// wakes only the callers it covers: with a broadcast, every sync woke
/// every waiting call, most of them to wait again.
#[derive(Default)]
struct Waiters {
    /// Highest ticket on disk.
    done: u64,
    /// Set by a failed sync, for good (see [`Wal::write`]).
    failed: Option<String>,
    waiting: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
}

impl Shared {
    /// Tells every waiting caller that its batch was not written for want
    /// of space (it may be stored later: unknown), without failing the log.
    fn settle_unknown(&self, reason: &str) {
        let waiting = std::mem::take(&mut self.waiters.lock().waiting);
        let message = format!(
            "{DISK_FULL}: {reason}; whether the batch is stored is unknown (it is written \
             once space is back, unless the server stops first): free space, then resend it \
             (idempotent per id)"
        );
        for (_, tx) in waiting {
            let _ = tx.send(Err(message.clone()));
        }
    }

    /// Records the outcome of a sync up to `target` and wakes the callers
    /// it settles; an error settles everyone.
    fn synced(&self, outcome: Result<u64, String>) {
        let (settled, result) = {
            let mut w = self.waiters.lock();
            let waiting = std::mem::take(&mut w.waiting);
            // A sync that succeeds after another failed proves nothing
            // (the failed one may have dropped pages): stay failed.
            match (w.failed.clone(), outcome) {
                (None, Ok(target)) => {
                    w.done = target;
                    let (settled, left): (Vec<_>, Vec<_>) =
                        waiting.into_iter().partition(|(t, _)| *t <= target);
                    w.waiting = left;
                    (settled, Ok(()))
                }
                (Some(reason), _) | (None, Err(reason)) => {
                    w.failed = Some(reason.clone());
                    (waiting, Err(reason))
                }
            }
        };
        for (_, tx) in settled {
            let _ = tx.send(result.clone());
        }
    }
}

/// The log: append, wait for durability, rotate.
pub struct Wal {
    dir: PathBuf,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Wal {
    /// Opens the log in `dir`, returning the records of existing segments
    /// (to replay) and the log, writing to a fresh segment.
    pub fn open(dir: &Path) -> Result<(Self, Vec<WalRecord>)> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let segments = list_segments(dir)?;
        let backlog = read_segments(&segments)?;
        let next = segments.last().map_or(1, |(seq, _)| seq + 1);
        let shared = Arc::new(Shared {
            disk: FullDisk::default(),
            segment: Mutex::new(Segment {
                seq: next,
                file: create_segment(dir, next)?,
                len: 0,
                pending: Vec::new(),
            }),
            appended: AtomicU64::new(0),
            closed: Mutex::new(false),
            gather_until: AtomicU64::new(u64::MAX),
            wake: Condvar::new(),
            erased: RwLock::new(HashSet::new()),
            erasures: AtomicU64::new(0),
            waiters: Mutex::new(Waiters::default()),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("spoc-wal-sync".into())
            .spawn(move || sync_loop(thread_shared))
            .map_err(|e| Error::Storage(format!("cannot start wal thread: {e}")))?;
        let wal = Self {
            dir: dir.to_path_buf(),
            shared,
            thread: Some(thread),
        };
        Ok((wal, backlog))
    }

    /// Appends a record and waits until it is on disk.
    pub async fn append(&self, record: &WalRecord) -> Result<()> {
        match self.write(record)? {
            Some(ticket) => self.wait(ticket).await,
            None => Ok(()),
        }
    }

    /// Writes a record to the current segment and returns its ticket for
    /// [`Wal::wait`]; `None` when nothing is left to log (only erased
    /// learners). Does not wait for the disk.
    pub fn write(&self, record: &WalRecord) -> Result<Option<u64>> {
        if let Some(reason) = &self.shared.waiters.lock().failed {
            // A failed sync poisons the log for good: after an fsync error
            // the kernel may have dropped dirty pages, and no later success
            // proves them written (the PostgreSQL "fsyncgate" lesson).
            return Err(Error::Storage(format!(
                "wal unusable since a failed sync: {reason}"
            )));
        }
        if self.shared.disk.is_full() {
            return Err(Error::Unavailable(format!(
                "{DISK_FULL}: the write-ahead log cannot be written, so this batch is not \
                 durable (attempts were not stored; module events may be, until a restart): \
                 resend it in a few seconds, it is idempotent per id; ingestion resumes by \
                 itself once space is freed"
            )));
        }
        let (ticket, wake) = loop {
            let erasures = self.shared.erasures.load(Ordering::SeqCst);
            let Some(frame) = self.frame(record, erasures) else {
                return Ok(None); // only erased learners: nothing to keep
            };
            let mut segment = self.shared.segment.lock();
            if self.shared.erasures.load(Ordering::SeqCst) != erasures {
                continue; // an erasure came in between: filter again
            }
            // The sync thread takes pending records and then checks for
            // more, so it needs waking only for the first after a take.
            let wake = segment.pending.is_empty();
            segment.pending.extend_from_slice(&frame);
            // Taken under the lock: the ticket's record reaches the file
            // that is current now, or one a rotation wrote and synced.
            break (
                self.shared.appended.fetch_add(1, Ordering::SeqCst) + 1,
                wake,
            );
        };
        if wake || ticket == self.shared.gather_until.load(Ordering::SeqCst) {
            let _guard = self.shared.closed.lock();
            self.shared.wake.notify_one();
        }
        Ok(Some(ticket))
    }

    /// Waits until the record of `ticket` (and every earlier one) is on disk.
    pub async fn wait(&self, ticket: u64) -> Result<()> {
        let rx = {
            let mut w = self.shared.waiters.lock();
            if let Some(reason) = &w.failed {
                return Err(Error::Storage(format!("wal sync failed: {reason}")));
            }
            if w.done >= ticket {
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            w.waiting.push((ticket, tx));
            rx
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) if reason.starts_with(DISK_FULL) => Err(Error::Unavailable(reason)),
            Ok(Err(reason)) => Err(Error::Storage(format!("wal sync failed: {reason}"))),
            Err(_) => Err(Error::Unavailable("store is shutting down".into())),
        }
    }

    /// Makes every record written so far durable, from the calling thread
    /// (earlier segments were synced when they were closed).
    pub fn sync(&self) -> Result<()> {
        // The group commit may already have synced every record appended
        // so far: then there is nothing to write. A settle of the waiting
        // rows calls this once per model-recomputation group, beside
        // ingestion.
        let appended = self.shared.appended.load(Ordering::SeqCst);
        {
            let w = self.shared.waiters.lock();
            if w.failed.is_none() && w.done >= appended {
                return Ok(());
            }
        }
        let file = {
            let mut segment = self.shared.segment.lock();
            segment
                .write_pending(&self.shared.disk)
                .map_err(|failure| self.fail(failure))?;
            segment.file.try_clone()
        };
        file.and_then(|f| f.sync_data())
            .map_err(|e| self.poison(format!("wal sync failed: {e}")))
    }

    /// The error of a failed write: UNAVAILABLE for a full disk (the
    /// records stay pending, written again later), the log poisoned
    /// otherwise.
    fn fail(&self, failure: WriteFailure) -> Error {
        match failure {
            WriteFailure::NoSpace(reason) => {
                self.shared.disk.full.store(true, Ordering::SeqCst);
                Error::Unavailable(format!("{DISK_FULL}: {reason}; retry in a few seconds"))
            }
            WriteFailure::Fatal(reason) => self.poison(reason),
        }
    }

    /// Fails every waiting and later call for good (see [`Wal::write`]).
    fn poison(&self, reason: String) -> Error {
        tracing::error!(error = %reason, "write-ahead log unusable; ingestion stops until restart");
        self.shared.synced(Err(reason.clone()));
        Error::Storage(reason)
    }

    /// The framed record, without the entries of erased learners; `None`
    /// when nothing is left. `erasures` is the erasure count it reflects.
    fn frame(&self, record: &WalRecord, erasures: u64) -> Option<Vec<u8>> {
        let filtered;
        let record = if erasures == 0 {
            record
        } else {
            let erased = self.shared.erased.read();
            filtered = match record {
                WalRecord::Attempts(batch) => WalRecord::Attempts(
                    batch
                        .iter()
                        .filter(|a| !erased.contains(&a.learner_id))
                        .cloned()
                        .collect(),
                ),
                WalRecord::Activities(batch) => WalRecord::Activities(
                    batch
                        .iter()
                        .filter(|a| !erased.contains(&a.learner_id))
                        .cloned()
                        .collect(),
                ),
            };
            &filtered
        };
        let empty = match record {
            WalRecord::Attempts(batch) => batch.is_empty(),
            WalRecord::Activities(batch) => batch.is_empty(),
        };
        if empty {
            return None;
        }
        let payload = codec::encode(record);
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        Some(frame)
    }

    /// Drops `learner`'s entries from every later append (see the module
    /// doc); the caller then checkpoints to delete the segments that may
    /// still hold them.
    pub fn forget_learner(&self, learner: &str) {
        self.shared.erased.write().insert(learner.to_string());
        self.shared.erasures.fetch_add(1, Ordering::SeqCst);
    }

    /// Logs `learner`'s entries again: a learner created anew under an
    /// erased id is a new person whose acknowledged writes must be durable.
    pub fn remember_learner(&self, learner: &str) {
        let erased = self.shared.erased.read();
        if !erased.contains(learner) {
            return;
        }
        drop(erased);
        self.shared.erased.write().remove(learner);
    }

    /// Syncs and closes the current segment and starts a new one; returns
    /// the new segment's number. Segments below it may be removed once
    /// sled has been flushed.
    pub fn rotate(&self) -> Result<u64> {
        let mut segment = self.shared.segment.lock();
        segment
            .write_pending(&self.shared.disk)
            .map_err(|failure| self.fail(failure))?;
        segment
            .file
            .sync_data()
            .map_err(|e| self.poison(format!("wal sync failed: {e}")))?;
        let next = segment.seq + 1;
        segment.file = create_segment(&self.dir, next)?;
        segment.seq = next;
        segment.len = 0;
        Ok(next)
    }

    /// Deletes the segments numbered below `seq`.
    pub fn remove_before(&self, seq: u64) -> Result<()> {
        for (number, path) in list_segments(&self.dir)? {
            if number < seq {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        Ok(())
    }

    /// Records appended since the log was opened.
    pub fn appended(&self) -> u64 {
        self.shared.appended.load(Ordering::SeqCst)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        *self.shared.closed.lock() = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long, at most, the sync thread lets records gather between two
/// syncs when calls are concurrent, counted from the start of the last
/// sync (so a sync slower than this leaves no time to gather). Each
/// `fdatasync` costs a disk write, a VM exit on virtual disks and a context
/// switch; without gathering, 64 concurrent writers got a sync for every
/// two or three records.
const COMMIT_DELAY: Duration = Duration::from_micros(500);

/// The ticket to gather records up to before the next sync, `done` being
/// the last synced one: as many records as the last sync covered, so that
/// a group of concurrent callers that all wait is synced as soon as all of
/// them are back, not after the whole delay. `None` when the last sync
/// covered a single record: a lone caller must not wait for company that
/// never comes. PostgreSQL's `commit_delay` with `commit_siblings` follows
/// the same idea.
fn gather_target(done: u64, last_covered: u64) -> Option<u64> {
    (last_covered >= 2).then_some(done + last_covered)
}

fn sync_loop(shared: Arc<Shared>) {
    let mut done = 0;
    let mut last_start = Instant::now();
    let mut last_covered = 0;
    loop {
        {
            let mut closed = shared.closed.lock();
            while !*closed && shared.appended.load(Ordering::SeqCst) <= done {
                shared.wake.wait(&mut closed);
            }
            if *closed && shared.appended.load(Ordering::SeqCst) <= done {
                // Anyone still waiting hears that the log is gone.
                shared.waiters.lock().waiting.clear();
                return;
            }
            if let Some(target) = gather_target(done, last_covered) {
                // SeqCst pairs with `Wal::write`: either the writer of
                // `target` sees it set and notifies under this lock, or
                // its `appended` is seen by the check below.
                shared.gather_until.store(target, Ordering::SeqCst);
                let deadline = last_start + COMMIT_DELAY;
                while !*closed && shared.appended.load(Ordering::SeqCst) < target {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    shared.wake.wait_for(&mut closed, left);
                }
                shared.gather_until.store(u64::MAX, Ordering::SeqCst);
            }
        }
        // Under the lock: read the target, write the pending records and
        // duplicate the descriptor; sync outside it so that calls go on
        // adding records meanwhile.
        last_start = Instant::now();
        let taken = {
            let mut segment = shared.segment.lock();
            let target = shared.appended.load(Ordering::SeqCst);
            segment
                .write_pending(&shared.disk)
                .and_then(|()| {
                    segment
                        .file
                        .try_clone()
                        .map_err(|e| WriteFailure::Fatal(e.to_string()))
                })
                .map(|file| (target, file))
        };
        let taken = match taken {
            Err(WriteFailure::NoSpace(reason)) => {
                // The records stay pending; new writes are refused until
                // they are written (`Wal::write`). Their callers hear that
                // the outcome is unknown; try again in a moment.
                if !shared.disk.full.swap(true, Ordering::SeqCst) {
                    tracing::error!(error = %reason, "disk full: ingestion refused until space is freed");
                }
                shared.settle_unknown(&reason);
                if *shared.closed.lock() {
                    return; // stopping: the records were never acknowledged
                }
                std::thread::sleep(FULL_RETRY);
                continue;
            }
            other => other.map_err(WriteFailure::reason),
        };
        let outcome = taken.and_then(|(target, file)| {
            file.sync_data()
                .map(|()| target)
                .map_err(|e| format!("wal sync failed: {e}"))
        });
        match outcome {
            Ok(target) => {
                last_covered = target - done;
                done = target;
                shared.synced(Ok(done));
                if shared.disk.full.swap(false, Ordering::SeqCst) {
                    tracing::warn!("disk space is back: ingestion resumed");
                }
            }
            Err(reason) => {
                // Sticky: every waiter, now and later, gets the error.
                tracing::error!(error = %reason, "write-ahead log unusable; ingestion stops until restart");
                shared.synced(Err(reason));
                return;
            }
        }
    }
}

fn io_error(path: &Path, err: std::io::Error) -> Error {
    Error::Storage(format!("{}: {err}", path.display()))
}

fn create_segment(dir: &Path, seq: u64) -> Result<File> {
    let path = dir.join(format!("wal-{seq:016x}.log"));
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, super::private::FILE_MODE);
    let file = options.open(&path).map_err(|e| io_error(&path, e))?;
    // Make the new file's directory entry durable too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file)
}

/// The segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(hex) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                out.push((seq, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// No record is larger: a gRPC message is at most 16 MiB and an xAPI body
/// less, so a longer length field is damage, never a torn write.
pub const MAX_RECORD: usize = 64 << 20;

/// Reads the records of every segment, in order. A damaged record is
/// taken for a write torn by a crash (never acknowledged: replies wait for
/// the sync) only at the end of the last segment holding data, when no
/// valid record follows it; anything else is damage, reported with the
/// file and offset, so that no acknowledged record is dropped silently.
pub fn read_segments(segments: &[(u64, PathBuf)]) -> Result<Vec<WalRecord>> {
    let last_with_data = segments
        .iter()
        .rposition(|(_, path)| std::fs::metadata(path).map_or(true, |m| m.len() > 0));
    let mut records = Vec::new();
    for (i, (_, path)) in segments.iter().enumerate() {
        records.extend(read_segment(path, Some(i) == last_with_data)?);
    }
    Ok(records)
}

/// Reads a segment's records; `last`: a torn tail is allowed (see
/// [`read_segments`]).
pub fn read_segment(path: &Path, last: bool) -> Result<Vec<WalRecord>> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match frame_at(&bytes, at) {
            Some((len, payload)) => {
                let key = format!("{}@{at}", path.display());
                records.push(codec::decode("wal", key.as_bytes(), payload)?);
                at += 8 + len;
            }
            None if last && is_tail(&bytes, at) => {
                tracing::warn!(
                    file = %path.display(),
                    offset = at,
                    "ignoring a record torn by a crash at the end of the write-ahead log \
                     (it was never acknowledged)"
                );
                break;
            }
            None => return Err(damaged(path, at, last)),
        }
    }
    Ok(records)
}

/// The record at `at` if its frame is whole and its CRC matches: (payload
/// length, payload).
fn frame_at(bytes: &[u8], at: usize) -> Option<(usize, &[u8])> {
    let header = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    // No record is empty: a zero length is damage (zero-filled tail).
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(at + 8..at + 8 + len)?;
    (crc32fast::hash(payload) == crc).then_some((len, payload))
}

/// The error of a damaged record: the file, the offset and what to do.
fn damaged(path: &Path, at: usize, last: bool) -> Error {
    let why = if last {
        "a damaged record with data after it (not a write torn by a crash)"
    } else {
        "a damaged record in a segment that later segments follow (only the last one can \
         hold a torn write)"
    };
    Error::Corrupt {
        tree: "wal",
        key: format!("{} at byte {at}", path.display()),
        reason: format!(
            "{why}: acknowledged records may be lost, so the server does not start. \
             Keep the data folder as it is, run `spoc verify --data-dir DIR`, then follow \
             the recovery procedure of OPERATIONS.md (restore the last backup, replay the \
             newer log segments)"
        ),
    }
}

/// Whether a damaged record at `at` is a torn end of the file: zeros up to
/// the end (some filesystems zero-fill a file's tail after a crash), or a
/// plausible header or payload cut short by the end of the file with no
/// valid record anywhere after it. A damaged record followed by valid
/// data is corruption, not a torn write.
fn is_tail(bytes: &[u8], at: usize) -> bool {
    let rest = &bytes[at..];
    if rest.iter().all(|b| *b == 0) {
        return true;
    }
    let cut_short = match rest.get(..4) {
        None => true,
        Some(len) => {
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            len > 0 && len <= MAX_RECORD && 8 + len > rest.len()
        }
    };
    cut_short && !(at + 1..bytes.len()).any(|p| frame_at(bytes, p).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: &str) -> Attempt {
        crate::domain::mastery::test_attempt(id, 1, true)
    }

    #[test]
    fn only_concurrent_records_wait_for_company() {
        assert_eq!(gather_target(0, 0), None, "first sync");
        assert_eq!(gather_target(7, 1), None, "a lone caller never waits");
        assert_eq!(gather_target(7, 2), Some(9));
        assert_eq!(gather_target(100, 23), Some(123), "as many as last time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_of_concurrent_writers_keep_being_synced() {
        // Rounds of 8 concurrent writers: from the second round on, the
        // sync thread gathers up to 8 records; every round must complete.
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path()).unwrap();
        let wal = Arc::new(wal);
        for round in 0..20 {
            let calls: Vec<_> = (0..8)
                .map(|k| {
                    let wal = wal.clone();
                    tokio::spawn(async move {
                        let record = WalRecord::Attempts(vec![attempt(&format!("r{round}-{k}"))]);
                        wal.append(&record).await
                    })
                })
                .collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
        }
        drop(wal);
        let (_, backlog) = Wal::open(dir.path()).unwrap();
        assert_eq!(backlog.len(), 160);
    }

    #[tokio::test]
    async fn records_are_replayed_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, backlog) = Wal::open(dir.path()).unwrap();
            assert!(backlog.is_empty());
            wal.append(&WalRecord::Attempts(vec![attempt("a")]))
                .await
                .unwrap();
            wal.append(&WalRecord::Attempts(vec![attempt("b")]))
                .await
                .unwrap();
        }
        // Simulate a crash in the middle of a third append.
        let (_, path) = list_segments(dir.path()).unwrap().remove(0);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        let (wal, backlog) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            backlog,
            vec![
                WalRecord::Attempts(vec![attempt("a")]),
                WalRecord::Attempts(vec![attempt("b")])
            ]
        );
        // After a rotation, older segments can go.
        let keep = wal.rotate().unwrap();
        wal.remove_before(keep).unwrap();
        assert!(
            list_segments(dir.path())
                .unwrap()
                .iter()
                .all(|(s, _)| *s >= keep)
        );
    }

    #[tokio::test]
    async fn a_zero_filled_tail_is_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&WalRecord::Attempts(vec![attempt("a")]))
                .await
                .unwrap();
        }
        let (_, path) = list_segments(dir.path()).unwrap().remove(0);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0u8; 64]).unwrap();
        drop(file);
        let (_, backlog) = Wal::open(dir.path()).unwrap();
        assert_eq!(backlog, vec![WalRecord::Attempts(vec![attempt("a")])]);
    }

    #[tokio::test]
    async fn erased_learners_are_dropped_from_later_appends() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path()).unwrap();
            wal.forget_learner("l");
            let mut other = attempt("b");
            other.learner_id = "m".into();
            wal.append(&WalRecord::Attempts(vec![attempt("a"), other.clone()]))
                .await
                .unwrap();
            wal.append(&WalRecord::Attempts(vec![attempt("c")]))
                .await
                .unwrap();
            assert_eq!(wal.appended(), 1, "an all-erased record is not written");
            // Created again under the same id: a new person, logged again.
            wal.remember_learner("l");
            wal.append(&WalRecord::Attempts(vec![attempt("again")]))
                .await
                .unwrap();
            assert_eq!(wal.appended(), 2);
        }
        let (_, backlog) = Wal::open(dir.path()).unwrap();
        let mut other = attempt("b");
        other.learner_id = "m".into();
        assert_eq!(
            backlog,
            vec![
                WalRecord::Attempts(vec![other]),
                WalRecord::Attempts(vec![attempt("again")])
            ]
        );
    }

    /// After a failed sync, a later successful one acknowledges nothing:
    /// the failure may have dropped pages that no later sync rewrites.
    #[tokio::test]
    async fn a_failed_sync_poisons_the_log_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path()).unwrap();
        let ticket = wal
            .write(&WalRecord::Attempts(vec![attempt("a")]))
            .unwrap()
            .unwrap();
        wal.shared.synced(Err("disk said no".into()));
        wal.shared.synced(Ok(ticket));
        assert!(matches!(wal.wait(ticket).await, Err(Error::Storage(_))));
        assert!(wal.write(&WalRecord::Attempts(vec![attempt("b")])).is_err());
    }

    #[test]
    fn damage_before_the_end_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-0000000000000001.log");
        let payload = codec::encode(&WalRecord::Attempts(vec![attempt("a")]));
        let mut bytes = Vec::new();
        for _ in 0..2 {
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        bytes[9] ^= 0xff; // first record's payload
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read_segment(&path, true),
            Err(Error::Corrupt { .. })
        ));
    }

    /// A full disk: the batch caught by it is answered UNAVAILABLE (its
    /// outcome unknown), later ones are refused UNAVAILABLE without being
    /// logged, and once space is back the caught batch is written and new
    /// ones go through, without a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_refuses_then_resumes_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&WalRecord::Attempts(vec![attempt("before")]))
                .await
                .unwrap();
            wal.shared.disk.inject.store(true, Ordering::SeqCst);
            let caught = wal
                .append(&WalRecord::Attempts(vec![attempt("caught")]))
                .await
                .unwrap_err();
            assert!(
                matches!(&caught, Error::Unavailable(m) if m.contains("unknown")),
                "{caught}"
            );
            let refused = wal
                .append(&WalRecord::Attempts(vec![attempt("refused")]))
                .await
                .unwrap_err();
            assert!(
                matches!(&refused, Error::Unavailable(m) if m.contains("not durable")),
                "{refused}"
            );
            wal.shared.disk.inject.store(false, Ordering::SeqCst);
            let mut after = None;
            for _ in 0..50 {
                match wal
                    .append(&WalRecord::Attempts(vec![attempt("after")]))
                    .await
                {
                    Ok(()) => {
                        after = Some(());
                        break;
                    }
                    Err(Error::Unavailable(_)) => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(other) => panic!("{other}"),
                }
            }
            after.expect("ingestion never resumed");
        }
        let (_, backlog) = Wal::open(dir.path()).unwrap();
        let ids: Vec<String> = backlog
            .iter()
            .map(|r| match r {
                WalRecord::Attempts(a) => a[0].attempt_id.clone(),
                WalRecord::Activities(_) => unreachable!(),
            })
            .collect();
        assert_eq!(ids, ["before", "caught", "after"]);
    }

    /// Three framed records of one attempt each.
    fn three_records() -> Vec<u8> {
        let mut bytes = Vec::new();
        for id in ["a", "b", "c"] {
            let payload = codec::encode(&WalRecord::Attempts(vec![attempt(id)]));
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        bytes
    }

    #[test]
    fn a_damaged_length_is_not_taken_for_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-0000000000000001.log");
        let whole = three_records();
        let second = whole.len() / 3;
        for (byte, flip) in [(3, 0x5a), (0, 0x01), (second + 3, 0x80), (second, 0x10)] {
            let mut bytes = whole.clone();
            bytes[byte] ^= flip;
            std::fs::write(&path, &bytes).unwrap();
            let err = read_segment(&path, true).unwrap_err().to_string();
            assert!(err.contains("wal-0000000000000001.log at byte"), "{err}");
        }
        // A record cut short at the end of the last segment: a torn write.
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        assert_eq!(read_segment(&path, true).unwrap().len(), 2);
    }

    #[test]
    fn a_torn_record_is_only_allowed_in_the_last_segment_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let whole = three_records();
        let first = dir.path().join("wal-0000000000000001.log");
        let second = dir.path().join("wal-0000000000000002.log");
        let third = dir.path().join("wal-0000000000000003.log");
        std::fs::write(&first, &whole[..whole.len() - 5]).unwrap();
        std::fs::write(&third, b"").unwrap();
        std::fs::write(&second, &whole).unwrap();
        let err = read_segments(&list_segments(dir.path()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("wal-0000000000000001.log at byte"), "{err}");
        std::fs::write(&second, b"").unwrap();
        let records = read_segments(&list_segments(dir.path()).unwrap()).unwrap();
        assert_eq!(records.len(), 2, "later segments are empty: a torn tail");
    }
}
