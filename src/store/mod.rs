//! Storage: sled behind a small interface.
//!
//! Only this module knows sled and the key layout ([`keys`]). The engine asks
//! for domain objects and hands back domain objects; multi-tree writes that
//! must stay consistent happen in one sled transaction. Durability comes
//! two ways: high-rate ingestion (attempts, module activity) is logged to
//! the write-ahead log ([`wal`], [`Store::commit_attempts`], [`Store::log`])
//! and sled is checkpointed in the background, attempts reaching sled
//! through the write-behind rows ([`write_behind`]); low-rate writes
//! (catalog, learners...) wait for a sled flush ([`Store::durable`], group
//! commit, see [`durability`]).

mod activity;
pub mod alerts;
pub mod api_keys;
pub mod attempt_index;
pub mod attempt_trees;
pub mod backup;
pub mod budget;
mod catalog;
pub mod codec;
pub mod cohorts;
pub mod compact;
pub mod damage;
pub mod durability;
pub mod effects;
pub mod footprint;
pub mod interner;
pub mod items;
pub mod keys;
mod learners;
pub mod mapping;
mod mastery;
pub mod mastery_cache;
pub mod migrate;
pub mod models;
pub mod outbox;
pub mod page_table;
pub mod pauses;
pub mod privacy;
pub mod private;
pub mod recommended;
pub mod state_cache;
pub mod table;
pub mod verify;
pub mod wal;
pub mod write_behind;
pub mod xapi;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::domain::activity::{ActivityKind, StoredActivity};
use crate::domain::bkt::Observation;
use crate::domain::catalog::{Module, Skill};
use crate::domain::learner::{Enrolment, Learner, Program};
use crate::domain::mastery::{Attempt, MasteryState, Position};
use crate::error::{Error, Result};
use attempt_trees::AttemptTrees;
use durability::GroupCommit;
use table::Table;
use wal::{Wal, WalRecord};
use write_behind::WriteBehind;

pub use mastery::Answer;

/// How often sled is flushed in the background so that the write-ahead log
/// can be trimmed.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often waiting ingestion rows are applied to sled between
/// checkpoints: small, frequent applies spread sled's disk writes instead
/// of one burst per checkpoint that would delay the log's syncs.
pub const APPLY_EVERY: Duration = Duration::from_millis(100);

/// How often the resident memory is logged (debug, target
/// `spoc_engine::store::budget`).
const MEMORY_REPORT_EVERY: Duration = Duration::from_secs(10);

/// A page of results and the key to continue after, if more follow.
pub type Page<T> = (Vec<T>, Option<Vec<u8>>);

/// The whole persistent state of one deployment.
pub struct Store {
    /// The data folder (sled, write-ahead log, model files).
    dir: std::path::PathBuf,
    db: sled::Db,
    skills: Table<Skill>,
    modules: Table<Module>,
    learners: Table<Learner>,
    programs: Table<Program>,
    enrolments: Table<Enrolment>,
    program_members: Table<Enrolment>,
    /// Attempts, their index and mastery, compact (`attempt_trees.rs`).
    ingested: Arc<AttemptTrees>,
    activities: Table<StoredActivity>,
    learner_activity: Table<StoredActivity>,
    commit: GroupCommit,
    checkpoints: Arc<Checkpoints>,
    /// Records found in the log at open, until the engine replays them.
    backlog: Mutex<Vec<WalRecord>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    /// Held shared by every write, exclusive by a snapshot (`backup.rs`).
    gate: RwLock<()>,
    /// P(mastered) vectors read lately; every write of `mastery` evicts.
    mastery_cache: mastery_cache::MasteryCache,
    /// The last state ingestion wrote per (learner, skill); other writes
    /// of `mastery` evict.
    state_cache: state_cache::StateCache,
    /// Ingested rows not yet in sled (see `write_behind.rs`).
    behind: Arc<WriteBehind>,
    /// What every cache is sized from (`budget.rs`).
    budget: budget::MemoryBudget,
    /// The budget's feedback on every cache's capacity (`budget.rs`).
    pressure: Arc<budget::Pressure>,
}

/// What the background checkpointer shares with the store.
struct Checkpoints {
    /// The data folder (the `checkpoint` file).
    dir: std::path::PathBuf,
    /// The last checkpoint generation (see `damage.rs`).
    generation: AtomicU64,
    db: sled::Db,
    wal: Wal,
    behind: Arc<WriteBehind>,
    /// Log records already covered by a checkpoint.
    covered: AtomicU64,
    /// Serializes checkpoints (background thread, shutdown).
    running: Mutex<()>,
    stop: AtomicBool,
}

impl Checkpoints {
    /// Applies the waiting ingestion rows to sled, once the log holds them.
    fn settle(&self) -> Result<()> {
        self.behind.settle(|| self.wal.sync())
    }

    /// Rotates the log, applies the waiting rows to sled, flushes sled and
    /// drops the covered segments. Every record of a closed segment was
    /// applied (to memory) before it was logged, so the settle covers it.
    /// The attempt index is not synced here (`attempt_index.rs` says why
    /// it need not be), only by [`Store::flush_at_stop`].
    fn run(&self) -> Result<()> {
        let _guard = self.running.lock();
        let appended = self.wal.appended();
        let keep_from = self.wal.rotate()?;
        self.settle()?;
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        damage::mark_in_sled(&self.db, generation)?;
        self.db.flush()?;
        damage::mark_in_file(&self.dir, generation)?;
        self.generation.store(generation, Ordering::SeqCst);
        self.wal.remove_before(keep_from)?;
        self.covered.store(appended, Ordering::SeqCst);
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` with the default memory
    /// budget.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, budget::MemoryBudget::default())
    }

    /// Opens (or creates) the store in `dir`, checking its format version;
    /// sled's cache and the store's caches are sized from `budget`.
    pub fn open_with(dir: &Path, budget: budget::MemoryBudget) -> Result<Self> {
        // 0700, refused if others can write it, umask 0077 for what sled
        // creates, leftovers of killed backups and fits removed.
        private::open_private(dir)?;
        // A panic or damage is reported naming the file; a sled that lost
        // flushed writes is refused (`damage.rs`).
        let db = damage::open_sled(dir, sled_config(dir, &budget)?)?;
        let generation = damage::check_generation(dir, &db)?;
        // An older layout is migrated here, before anything reads it
        // (`migrate.rs`); a newer one is refused.
        let ingested = Arc::new(migrate::open_current(&db, dir, generation)?);
        let (wal, backlog) = Wal::open(&dir.join("wal"))?;
        let behind = Arc::new(WriteBehind::bounded(
            ingested.clone(),
            budget.waiting_rows(),
        ));
        let checkpoints = Arc::new(Checkpoints {
            dir: dir.to_path_buf(),
            generation: AtomicU64::new(generation),
            db: db.clone(),
            wal,
            behind: behind.clone(),
            covered: AtomicU64::new(0),
            running: Mutex::new(()),
            stop: AtomicBool::new(false),
        });
        let background = checkpoints.clone();
        let pressure = Arc::new(budget::Pressure::default());
        let (felt, budget_copy) = (pressure.clone(), budget);
        let checkpointer = std::thread::Builder::new()
            .name("spoc-checkpoint".into())
            .spawn(move || {
                let mut last_checkpoint = std::time::Instant::now();
                let mut last_report = std::time::Instant::now();
                while !background.stop.load(Ordering::SeqCst) {
                    std::thread::park_timeout(APPLY_EVERY);
                    if background.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if last_report.elapsed() >= MEMORY_REPORT_EVERY {
                        last_report = std::time::Instant::now();
                        budget::observe(&felt, &budget_copy, background.behind.waiting());
                    }
                    if last_checkpoint.elapsed() < CHECKPOINT_EVERY {
                        if let Err(err) = background.settle() {
                            tracing::error!(error = %err, "applying ingested rows failed");
                        }
                        continue;
                    }
                    last_checkpoint = std::time::Instant::now();
                    let pending =
                        background.wal.appended() > background.covered.load(Ordering::SeqCst);
                    if pending {
                        if let Err(err) = background.run() {
                            tracing::error!(error = %err, "checkpoint failed");
                        }
                    }
                }
            })
            .map_err(|e| Error::Storage(format!("cannot start checkpoint thread: {e}")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            checkpoints,
            backlog: Mutex::new(backlog),
            checkpointer: Some(checkpointer),
            skills: Table::open(&db, "skills")?,
            modules: Table::open(&db, "modules")?,
            learners: Table::open(&db, "learners")?,
            programs: Table::open(&db, "programs")?,
            enrolments: Table::open(&db, "enrolments")?,
            program_members: Table::open(&db, "program_members")?,
            ingested,
            behind,
            activities: Table::open(&db, "activities")?,
            learner_activity: Table::open(&db, "learner_activity")?,
            commit: GroupCommit::start(db.clone()),
            gate: RwLock::new(()),
            mastery_cache: mastery_cache::MasteryCache::new(budget::Capacity::new(
                budget.mastery_vector_entries(),
                pressure.clone(),
            )),
            state_cache: state_cache::StateCache::new(budget::Capacity::new(
                budget.cached_states(),
                pressure.clone(),
            )),
            budget,
            pressure,
            db,
        })
    }

    /// A typed view of the tree `name`, opened on demand: lets a feature keep
    /// its storage code in its own file (`impl Store` blocks next to this
    /// one) without widening this struct. Document every tree in `keys.rs`.
    pub(crate) fn table<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
    ) -> Result<Table<T>> {
        Table::open(&self.db, name)
    }

    /// The memory budget the store was opened with: the engine sizes its
    /// own caches from it.
    pub fn budget(&self) -> budget::MemoryBudget {
        self.budget
    }

    /// A cache capacity of `full` entries under the budget's feedback: for
    /// the engine's caches, so that all shrink together.
    pub fn capacity(&self, full: usize) -> budget::Capacity {
        budget::Capacity::new(full, self.pressure.clone())
    }

    /// Waits until every write made before this call is on disk.
    pub async fn durable(&self) -> Result<()> {
        self.commit.durable().await
    }

    /// Logs a batch of ingested records and waits until the log is on
    /// disk. Call it after the batch was applied to sled (see [`wal`]).
    pub async fn log(&self, record: &WalRecord) -> Result<()> {
        self.checkpoints.wal.append(record).await
    }

    /// The records the log held at open, for the engine to replay; empty
    /// afterwards.
    pub fn take_backlog(&self) -> Vec<WalRecord> {
        std::mem::take(&mut *self.backlog.lock())
    }

    /// Puts every sled write made so far on disk, blocking (one fsync):
    /// for rare writes that must be durable before anyone hears of them,
    /// off the async runtime. Frequent writers use [`Store::durable`].
    pub fn sync(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Flushes sled and trims the log; used after a replay, an erasure,
    /// and at shutdown ([`Store::flush_at_stop`]).
    pub fn flush(&self) -> Result<()> {
        self.checkpoints.run()
    }

    /// [`Store::flush`], then syncs the attempt index at the checkpoint's
    /// generation, so that the next start uses it as it is (not at every
    /// flush: under ingestion most of its pages are dirty, up to 134 MB
    /// at 10M attempts, and an unsynced index is sound within one boot of
    /// the machine, see `attempt_index.rs`).
    pub fn flush_at_stop(&self) -> Result<()> {
        self.flush()?;
        self.ingested
            .index
            .sync(self.checkpoints.generation.load(Ordering::SeqCst))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.checkpoints.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.checkpointer.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Pages a table and turns "more follow" into the key to continue after.
fn page<T: Serialize + serde::de::DeserializeOwned>(
    table: &Table<T>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Page<T>> {
    page_where(table, prefix, after, limit, |_| true)
}

/// [`page`] of only the values `keep` takes ([`Table::page_where`]).
fn page_where<T: Serialize + serde::de::DeserializeOwned>(
    table: &Table<T>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>> {
    let (rows, more) = table.page_where(prefix, after, limit, keep)?;
    let next = if more {
        rows.last().map(|(key, _)| key.clone())
    } else {
        None
    };
    Ok((rows.into_iter().map(|(_, v)| v).collect(), next))
}

/// How the store opens sled in `dir/sled`, its cache sized from `budget`;
/// refused when the folder's segment size is unknown ([`segment_size`]).
pub(crate) fn sled_config(dir: &Path, budget: &budget::MemoryBudget) -> Result<sled::Config> {
    // Throughput mode and no timer flush: durability comes from the
    // write-ahead log and explicit flushes (checkpoints, group commit),
    // so sled's own 500 ms flush would only add write amplification.
    let path = dir.join("sled");
    Ok(sled::Config::new()
        .segment_size(segment_size(&path)?)
        .path(path)
        .cache_capacity(budget.sled_cache_bytes())
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None))
}

/// sled's log segment size for a new data folder, in place of sled's
/// 512 KiB (16 MiB is sled's largest). sled frees a segment once at most
/// half of it is live, and ingestion rewrites small values all over the
/// store (an attempt index page per attempt): in small segments the live
/// pages of every segment stay above half for long, in large ones the
/// dead fragments pool. The scale bench's write pattern straight on sled
/// (3M attempts, one run each): 512 KiB 204 bytes on disk per attempt,
/// 128 KiB 209, 2 MiB 195, 8 MiB 177, 16 MiB 168, resident memory within
/// 235 to 252 MiB for all (see BENCHMARKS.md).
pub const SEGMENT_BYTES: usize = 16 << 20;

/// The segment size of the sled folder `path`: the one its `conf` file
/// records (sled refuses to open a folder with another; folders created
/// before [`SEGMENT_BYTES`] keep 512 KiB), else, for a new folder (no
/// data in `db`), [`SEGMENT_BYTES`]. A folder with data but no readable
/// `conf` is refused: sled would write a new `conf` and read the log at
/// the wrong segment boundaries (its recovery may then truncate it).
fn segment_size(path: &Path) -> Result<usize> {
    let conf = path.join("conf");
    let recorded = match std::fs::read(&conf) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).lines().find_map(|line| {
            line.strip_prefix("segment_size: ")?
                .trim()
                .parse::<usize>()
                .ok()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::Storage(format!("{}: {e}", conf.display()))),
    };
    if let Some(size) = recorded {
        return Ok(size);
    }
    let db = path.join("db");
    let has_data = match std::fs::metadata(&db) {
        Ok(meta) => meta.len() > 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::Storage(format!("{}: {e}", db.display()))),
    };
    if has_data {
        return Err(Error::Corrupt {
            tree: "sled",
            key: conf.display().to_string(),
            reason: format!(
                "sled's conf file is missing or unreadable while {} holds data: the \
                 folder's log segment size is unknown and opening it with another \
                 would misread the log. The folder is left as it is; restore the \
                 data folder from the last backup (OPERATIONS.md, \"Backup and \
                 restore\")",
                db.display()
            ),
        });
    }
    Ok(SEGMENT_BYTES)
}

fn transaction_error(err: sled::transaction::TransactionError<()>) -> Error {
    match err {
        sled::transaction::TransactionError::Abort(()) => {
            Error::Storage("transaction aborted".into())
        }
        sled::transaction::TransactionError::Storage(e) => e.into(),
    }
}

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        match &err {
            // A full disk is temporary: the client retries once space is
            // freed (UNAVAILABLE), as for the write-ahead log.
            sled::Error::Io(io)
                if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
            {
                Error::Unavailable(format!("disk full: {err}; retry in a few seconds"))
            }
            _ => Error::Storage(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new folder gets [`SEGMENT_BYTES`]; one sled created with its
    /// default 512 KiB (every folder before it) opens with that size kept.
    #[test]
    fn segment_size_is_new_for_new_folders_and_kept_for_old_ones() {
        let fresh = tempfile::tempdir().unwrap();
        drop(Store::open(fresh.path()).unwrap());
        assert_eq!(
            segment_size(&fresh.path().join("sled")).unwrap(),
            SEGMENT_BYTES
        );

        let old = tempfile::tempdir().unwrap();
        private::open_private(old.path()).unwrap();
        let db = sled::Config::new()
            .path(old.path().join("sled"))
            .open()
            .unwrap();
        db.flush().unwrap();
        drop(db);
        let store = Store::open(old.path()).unwrap();
        store
            .put_learner(&Learner {
                id: "l".into(),
                company_id: "c".into(),
                language: String::new(),
                time_zone: String::new(),
                display_name: String::new(),
            })
            .unwrap();
        drop(store);
        assert_eq!(segment_size(&old.path().join("sled")).unwrap(), 512 * 1024);
        assert!(Store::open(old.path()).unwrap().has_learner("l").unwrap());
    }

    /// Every file of `dir` and its bytes.
    fn files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
        out
    }

    /// A folder whose sled `db` holds data but whose `conf` is gone (or
    /// too short for sled to read) is refused, naming the conf and the
    /// restore section, and left byte for byte as it was; `spoc verify`
    /// reports it as damage.
    #[test]
    fn a_folder_with_data_and_no_sled_conf_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conf = dir.path().join("sled").join("conf");
        assert!(
            std::fs::metadata(dir.path().join("sled").join("db"))
                .unwrap()
                .len()
                > 0
        );
        for damage in [None, Some(&b"12345678"[..])] {
            let _ = std::fs::remove_file(&conf);
            if let Some(bytes) = damage {
                std::fs::write(&conf, bytes).unwrap();
            }
            let before = files(dir.path());
            let err = Store::open(dir.path()).err().expect("refused");
            let text = err.to_string();
            assert!(matches!(err, Error::Corrupt { .. }), "{text}");
            assert!(text.contains("sled's conf file is missing"), "{text}");
            assert!(text.contains("OPERATIONS.md"), "{text}");
            assert!(text.contains("Backup and restore"), "{text}");
            assert_eq!(files(dir.path()), before, "bytes untouched");
            let report = verify::verify(dir.path()).unwrap();
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| f.what.contains("sled's conf file is missing")),
                "{:?}",
                report.findings
            );
        }
    }
}
