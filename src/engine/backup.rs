//! Online backups: a consistent snapshot of the store while it serves.
//!
//! The store pauses writes for the copy (see `store/backup.rs` for the
//! gate and the file format); the caller streams the file afterwards.

use super::Engine;
use crate::error::Result;

/// The snapshot file and its summary, as the engine hands them out: the
/// edges stream them without knowing the store.
pub use crate::store::backup::{SnapshotSummary, TempSnapshot};

impl Engine {
    /// Writes a consistent snapshot of the whole store to a temporary file
    /// (deleted when the returned handle is dropped). Blocking: run it off
    /// the async runtime.
    pub fn snapshot(&self) -> Result<(TempSnapshot, SnapshotSummary)> {
        let started = std::time::Instant::now();
        let (file, summary) = self.store.snapshot_temp()?;
        tracing::info!(
            entries = summary.entries,
            bytes = summary.bytes,
            millis = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok((file, summary))
    }
}
