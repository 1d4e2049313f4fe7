//! Consistent snapshots of the whole store, and restoring one.
//!
//! sled 0.34 has no multi-tree read snapshot, and its `export` walks the
//! trees one after the other while writes go on, so a copy taken that way
//! could hold an attempt without its index entry, or an enrolment of a
//! learner it does not hold. Hence a gate: every store write holds it
//! shared ([`Store::write_gate`], a few nanoseconds uncontended), and a
//! snapshot holds it exclusive while it copies every tree to a local file.
//! Writes pause for that copy only (it runs at disk speed, see
//! `BENCHMARKS.md`), never for the slower streaming of the file to the
//! client. Under the gate, the snapshot first applies the ingestion rows
//! still waiting in memory (`write_behind.rs`), so sled alone then holds
//! everything acknowledged: the write-ahead log is not needed in a
//! snapshot.
//!
//! File format, version [`SNAPSHOT_VERSION`]:
//!
//! ```text
//! magic  b"SPOCSNAP"   store format version (u32 LE)   snapshot version (u32 LE)
//! frames: tag u8, then
//!   1 tree  : name length (u32 LE), name
//!   2 entry : key length (u32 LE), key, value length (u32 LE), value   (in the last tree)
//!   3 file  : path length (u32 LE), path relative to the data folder, length (u64 LE), bytes
//!   0 end   : entry count (u64 LE), CRC32 of every byte before this tag (u32 LE)
//! ```
//!
//! A restore checks the magic, both versions and the checksum before it
//! writes anything, and only ever writes into an empty folder.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use parking_lot::RwLockReadGuard;

use super::{Store, keys};
use crate::error::{Error, Result};

/// First bytes of a snapshot file.
pub const MAGIC: &[u8; 8] = b"SPOCSNAP";
/// Version of the snapshot file layout.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Folders of the data folder copied as plain files (fitted models).
const FILE_DIRS: &[&str] = &["models"];

const TAG_END: u8 = 0;
const TAG_TREE: u8 = 1;
const TAG_ENTRY: u8 = 2;
const TAG_FILE: u8 = 3;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotSummary {
    /// sled trees copied.
    pub trees: u64,
    /// Key-value entries copied, over all trees.
    pub entries: u64,
    /// Plain files copied (fitted models).
    pub files: u64,
    /// Size of the snapshot file in bytes.
    pub bytes: u64,
}

impl Store {
    /// The shared side of the snapshot gate: every write to sled holds it
    /// for the duration of the write, so a snapshot never sees half of one
    /// and never sees a write made after a tree it already copied.
    pub(crate) fn write_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read()
    }

    /// Writes a consistent snapshot of every tree (and the fitted model
    /// files) to `path`, pausing writes while it copies. The file is synced
    /// before returning.
    pub fn snapshot_to(&self, path: &Path) -> Result<SnapshotSummary> {
        let file = private_file(path).map_err(|e| io_error(path, e))?;
        let mut out = Crc32Writer::new(BufWriter::with_capacity(1 << 20, file));
        let mut summary = SnapshotSummary::default();
        out.put(MAGIC)?;
        out.put(&keys::FORMAT_VERSION.to_le_bytes())?;
        out.put(&SNAPSHOT_VERSION.to_le_bytes())?;
        {
            let _exclusive = self.gate.write();
            self.settle()?;
            let mut names = self.db.tree_names();
            names.sort();
            for name in names {
                let tree = self.db.open_tree(&name)?;
                out.put(&[TAG_TREE])?;
                out.put_bytes(&name)?;
                summary.trees += 1;
                for entry in tree.iter() {
                    let (key, value) = entry?;
                    out.put(&[TAG_ENTRY])?;
                    out.put_bytes(&key)?;
                    out.put_bytes(&value)?;
                    summary.entries += 1;
                }
            }
            for dir in FILE_DIRS {
                let folder = self.dir.join(dir);
                let Ok(listing) = std::fs::read_dir(&folder) else {
                    continue;
                };
                let mut files: Vec<PathBuf> = listing
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .collect();
                files.sort();
                for file in files {
                    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if name.starts_with('.') || name.is_empty() {
                        continue; // temporary files of a write in progress
                    }
                    let bytes = std::fs::read(&file).map_err(|e| io_error(&file, e))?;
                    out.put(&[TAG_FILE])?;
                    out.put_bytes(format!("{dir}/{name}").as_bytes())?;
                    out.put(&(bytes.len() as u64).to_le_bytes())?;
                    out.put(&bytes)?;
                    summary.files += 1;
                }
            }
        }
        let crc = out.crc.clone().finalize();
        out.put(&[TAG_END])?;
        out.put(&summary.entries.to_le_bytes())?;
        out.put(&crc.to_le_bytes())?;
        summary.bytes = out.written;
        let file = out
            .inner
            .into_inner()
            .map_err(|e| io_error(path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(path, e))?;
        Ok(summary)
    }
}

/// A snapshot file in the data folder, deleted when dropped (after it was
/// streamed to a client).
#[derive(Debug)]
pub struct TempSnapshot {
    /// Where it is.
    pub path: PathBuf,
}

impl Drop for TempSnapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Store {
    /// Writes a snapshot to a fresh temporary file of the data folder
    /// (same disk, so the pause of writes does not depend on the client).
    pub fn snapshot_temp(&self) -> Result<(TempSnapshot, SnapshotSummary)> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = TempSnapshot {
            path: self
                .dir
                .join(format!(".snapshot-{}-{n}.tmp", crate::clock::now_micros())),
        };
        let summary = self.snapshot_to(&temp.path)?;
        Ok((temp, summary))
    }
}

/// Checks a snapshot file end to end (magic, versions, framing, checksum)
/// without writing anything.
pub fn verify_snapshot(path: &Path) -> Result<SnapshotSummary> {
    read_snapshot(path, |_| Ok(()))
}

/// Restores a snapshot into `dir`, which must be missing or empty: checks
/// the whole file first, then writes the trees and files into a store
/// opened there, and flushes.
pub fn restore_snapshot(path: &Path, dir: &Path) -> Result<SnapshotSummary> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(Error::FailedPrecondition(format!(
                "{} is not empty: a restore only writes into an empty folder",
                dir.display()
            )));
        }
    }
    let summary = verify_snapshot(path)?;
    // Restored beside the target and renamed into place at the end: a
    // restore that fails halfway leaves no half store that would open.
    let name = dir
        .file_name()
        .ok_or_else(|| Error::FailedPrecondition(format!("{} names no folder", dir.display())))?;
    let staging = dir.with_file_name(format!(".{}.restoring", name.to_string_lossy()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io_error(&staging, e))?;
    }
    restore_into(path, &staging)?;
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| io_error(dir, e))?;
    sync_parent(dir).map_err(|e| io_error(dir, e))?;
    Ok(summary)
}

/// Writes a verified snapshot into the new folder `dir`.
fn restore_into(path: &Path, dir: &Path) -> Result<()> {
    // Written through a store opened once (format checked, trees created),
    // so the result is known to open; reopening sled right after closing
    // it can race with its background threads releasing the file lock.
    let store = Store::open(dir)?;
    let db = store.db.clone();
    let mut tree: Option<sled::Tree> = None;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    read_snapshot(path, |item| {
        match item {
            Item::Tree(name) => {
                if let Some(t) = tree.take() {
                    t.apply_batch(std::mem::take(&mut batch))?;
                    pending = 0;
                }
                tree = Some(db.open_tree(name)?);
            }
            Item::Entry(key, value) => {
                batch.insert(key, value);
                pending += 1;
                if pending == 10_000 {
                    if let Some(t) = &tree {
                        t.apply_batch(std::mem::take(&mut batch))?;
                    }
                    pending = 0;
                }
            }
            Item::File(rel, bytes) => {
                let target = dir.join(rel);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
                }
                private_file(&target)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
                    .map_err(|e| io_error(&target, e))?;
            }
        }
        Ok(())
    })?;
    if let Some(t) = tree.take() {
        t.apply_batch(batch)?;
    }
    store.flush()?;
    drop(store);
    // The attempt index is not in a snapshot: derived from the blocks, it
    // is built from them when the restored store is first opened.
    let index = dir.join(super::attempt_index::FILE);
    std::fs::remove_file(&index).map_err(|e| io_error(&index, e))?;
    sync_parent(&index).map_err(|e| io_error(&index, e))?;
    Ok(())
}

/// One item of a snapshot, as read.
enum Item<'a> {
    Tree(&'a [u8]),
    Entry(&'a [u8], &'a [u8]),
    File(&'a Path, &'a [u8]),
}

/// Reads and checks a snapshot, handing each item to `visit`.
fn read_snapshot(
    path: &Path,
    mut visit: impl FnMut(Item<'_>) -> Result<()>,
) -> Result<SnapshotSummary> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let bytes_total = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut input = Crc32Reader {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        path,
    };
    let mut magic = [0u8; 8];
    input.take(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad(path, "not a spoc snapshot (bad magic)"));
    }
    let store_version = input.u32()?;
    // An older format is restored as it was and migrated at the next
    // start (`migrate.rs`).
    if !(keys::OLDEST_FORMAT..=keys::FORMAT_VERSION).contains(&store_version) {
        return Err(bad(
            path,
            &format!(
                "store format {store_version} is not the supported version {}",
                keys::FORMAT_VERSION
            ),
        ));
    }
    let version = input.u32()?;
    if version != SNAPSHOT_VERSION {
        return Err(bad(path, &format!("unknown snapshot version {version}")));
    }
    let mut summary = SnapshotSummary {
        bytes: bytes_total,
        ..Default::default()
    };
    let mut in_tree = false;
    loop {
        let crc_before = input.crc.clone().finalize();
        let mut tag = [0u8; 1];
        input.take(&mut tag)?;
        match tag[0] {
            TAG_TREE => {
                let name = input.bytes()?;
                visit(Item::Tree(&name))?;
                summary.trees += 1;
                in_tree = true;
            }
            TAG_ENTRY if in_tree => {
                let key = input.bytes()?;
                let value = input.bytes()?;
                visit(Item::Entry(&key, &value))?;
                summary.entries += 1;
            }
            TAG_FILE => {
                let rel = String::from_utf8(input.bytes()?)
                    .map_err(|_| bad(path, "file name is not UTF-8"))?;
                let rel = PathBuf::from(rel);
                // Only files of the folders a snapshot carries (`models/x`):
                // never into sled's or the log's folders, never outside.
                let parts: Vec<Component> = rel.components().collect();
                let safe = parts.len() == 2
                    && parts.iter().all(|c| matches!(c, Component::Normal(_)))
                    && FILE_DIRS
                        .iter()
                        .any(|d| parts[0].as_os_str() == std::ffi::OsStr::new(d));
                if !safe {
                    return Err(bad(path, "file path leaves the data folder"));
                }
                let len = input.u64()?;
                if len > bytes_total {
                    return Err(bad(path, "file length beyond the end of the snapshot"));
                }
                let mut bytes = vec![0u8; len as usize];
                input.take(&mut bytes)?;
                visit(Item::File(&rel, &bytes))?;
                summary.files += 1;
            }
            TAG_END => {
                let entries = input.u64()?;
                let crc = input.u32()?;
                if crc != crc_before {
                    return Err(bad(path, "checksum mismatch"));
                }
                if entries != summary.entries {
                    return Err(bad(path, "entry count mismatch"));
                }
                let mut rest = [0u8; 1];
                if input.inner.read(&mut rest).map_err(|e| io_error(path, e))? != 0 {
                    return Err(bad(path, "data after the end of the snapshot"));
                }
                return Ok(summary);
            }
            other => return Err(bad(path, &format!("unknown frame tag {other}"))),
        }
    }
}

fn bad(path: &Path, reason: &str) -> Error {
    Error::Corrupt {
        tree: "snapshot",
        key: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn io_error(path: &Path, err: std::io::Error) -> Error {
    Error::Storage(format!("{}: {err}", path.display()))
}

/// A writer that checksums and counts what goes through it.
struct Crc32Writer<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Crc32Writer<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
            written: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        self.inner
            .write_all(bytes)
            .map_err(|e| Error::Storage(format!("snapshot write failed: {e}")))
    }

    /// A length-prefixed byte string.
    fn put_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| Error::Storage("snapshot item longer than 4 GiB".into()))?;
        self.put(&len.to_le_bytes())?;
        self.put(bytes)
    }
}

/// A reader that checksums what it reads; a short read is a truncated file.
struct Crc32Reader<'a, R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
    path: &'a Path,
}

impl<R: Read> Crc32Reader<'_, R> {
    fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                bad(self.path, "truncated")
            } else {
                io_error(self.path, e)
            }
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.take(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length-prefixed byte string, at most 64 MiB (no sled value is
    /// larger; a bigger length is damage, not a reason to allocate).
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()? as usize;
        if len > 64 << 20 {
            return Err(bad(self.path, "item length out of range"));
        }
        let mut buf = vec![0u8; len];
        self.take(&mut buf)?;
        Ok(buf)
    }
}

/// Makes a rename into `path` durable: a rename changes the folder that
/// holds `path`, and until that folder is synced a power cut can undo it
/// (the old file back, or none) even though the renamed file's own data
/// was synced.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Creates (or truncates) `path` readable by its owner only: a snapshot
/// holds every learner's records.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::learner::Learner;

    #[test]
    fn sync_parent_syncs_the_folder_holding_a_path() {
        let dir = tempfile::tempdir().unwrap();
        sync_parent(&dir.path().join("snapshot.bin")).unwrap();
        sync_parent(Path::new("snapshot.bin")).unwrap(); // the working folder
        let missing = dir.path().join("gone").join("snapshot.bin");
        assert!(
            sync_parent(&missing).is_err(),
            "a missing folder is reported"
        );
    }

    fn learner(id: &str) -> Learner {
        Learner {
            id: id.into(),
            company_id: "acme".into(),
            language: "fr".into(),
            time_zone: String::new(),
            display_name: String::new(),
        }
    }

    #[test]
    fn snapshot_round_trips_and_damage_is_refused() {
        let src = tempfile::tempdir().unwrap();
        let store = Store::open(src.path()).unwrap();
        store.put_learner(&learner("alice")).unwrap();
        store.put_learner(&learner("bob")).unwrap();
        let file = src.path().join("snap.bin");
        let written = store.snapshot_to(&file).unwrap();
        assert!(written.entries >= 3, "{written:?}");
        drop(store);

        let dst = tempfile::tempdir().unwrap();
        let target = dst.path().join("restored");
        let restored = restore_snapshot(&file, &target).unwrap();
        assert_eq!(restored.entries, written.entries);
        // sled releases its folder lock from a background thread.
        let store = (0..250)
            .find_map(|_| {
                Store::open(&target).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("restored store opens");
        assert_eq!(store.learner("bob").unwrap().unwrap(), learner("bob"));
        drop(store);

        // A non-empty folder is refused.
        assert!(matches!(
            restore_snapshot(&file, &target),
            Err(Error::FailedPrecondition(_))
        ));

        // One flipped byte anywhere is refused before anything is written.
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        let damaged = src.path().join("damaged.bin");
        std::fs::write(&damaged, &bytes).unwrap();
        assert!(verify_snapshot(&damaged).is_err());
        let empty = dst.path().join("other");
        assert!(restore_snapshot(&damaged, &empty).is_err());
        assert!(!empty.join("sled").exists(), "nothing written on damage");

        // A truncated file is refused.
        let truncated = src.path().join("truncated.bin");
        std::fs::write(&truncated, &bytes[..bytes.len() - 3]).unwrap();
        assert!(verify_snapshot(&truncated).is_err());
    }
}
