//! A fresh sled page-table snapshot at shutdown, so that the next start is
//! quick.
//!
//! Why: sled 0.34 writes the snapshot of its page table only while it
//! opens (its periodic snapshot is gone since 0.31), and an open replays
//! every log segment written since the snapshot before it serves. A
//! server that ingested for hours therefore started slowly the next time:
//! 4.6 to 5.7 s at 10M attempts after a long run, against 0.5 to 1.1 s for
//! the same folder opened again at once (BENCHMARKS.md, issue 20). A
//! graceful stop opens the closed store once more, which makes sled
//! replay that tail now and write the snapshot: the stop takes those
//! seconds instead of the next start. After a crash the start still
//! replays the tail; nothing is lost either way.

use std::path::Path;
use std::time::{Duration, Instant};

use super::budget::{MIN_MB, MemoryBudget};
use super::{damage, sled_config};
use crate::error::Result;

/// How long [`refresh`] waits for the closing store to let go of sled's
/// file lock (background threads finishing their last write).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens the store's sled in `dir` once more and closes it, leaving a
/// snapshot of the page table that covers the whole log; returns how long
/// it took. Call it after the [`Store`](super::Store) of `dir` has been
/// dropped: while any handle of it is alive sled's lock is held, and this
/// waits up to [`LOCK_WAIT`] before giving up with the lock error.
pub fn refresh(dir: &Path) -> Result<Duration> {
    refresh_waiting(dir, LOCK_WAIT)
}

/// [`refresh`], waiting at most `lock_wait` for sled's lock.
fn refresh_waiting(dir: &Path, lock_wait: Duration) -> Result<Duration> {
    let started = Instant::now();
    // The smallest cache: the replay reads each segment once.
    let budget = MemoryBudget::from_mb(MIN_MB);
    loop {
        match damage::open_sled(dir, sled_config(dir, &budget)?) {
            Ok(db) => {
                drop(db);
                return Ok(started.elapsed());
            }
            Err(err) if err.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= lock_wait {
                    return Err(err);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replayed log tail since the snapshot, as sled's recovery sees
    /// it: the snapshot file's name is the log position it covers.
    fn snapshot_position(dir: &Path) -> u64 {
        std::fs::read_dir(dir.join("sled"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let hex = name.strip_prefix("snap.")?;
                u64::from_str_radix(hex, 16).ok()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn refresh_moves_the_snapshot_to_the_end_of_the_log_and_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled_config(dir.path(), &MemoryBudget::default()).unwrap();
        let db = damage::open_sled(dir.path(), config).unwrap();
        let before = snapshot_position(dir.path());
        for i in 0u32..20_000 {
            db.insert(i.to_be_bytes(), vec![7u8; 64]).unwrap();
        }
        db.flush().unwrap();

        // Still open: the lock is held, and refresh says so.
        let held = refresh_waiting(dir.path(), Duration::ZERO).unwrap_err();
        assert!(held.to_string().contains("lock"), "{held}");
        drop(db);
        refresh(dir.path()).unwrap();
        let after = snapshot_position(dir.path());
        assert!(after > before, "snapshot at {before}, then {after}");

        let config = sled_config(dir.path(), &MemoryBudget::default()).unwrap();
        let db = damage::open_sled(dir.path(), config).unwrap();
        assert_eq!(db.len(), 20_000);
        assert_eq!(
            db.get(19_999u32.to_be_bytes()).unwrap().unwrap(),
            vec![7u8; 64]
        );
    }
}
