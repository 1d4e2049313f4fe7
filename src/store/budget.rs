//! The memory budget (`spoc serve --memory-mb`, default 512): one figure
//! from which sled's cache and every cache of the store and the engine are
//! sized, so that the server's resident memory stays under it whatever the
//! size of the data folder.
//!
//! Why shares of one figure rather than a setting per cache: an operator
//! knows how much memory the machine gives the service, not how many
//! mastery vectors fit in it. Each cache gets a share of the bytes and
//! turns it into a number of entries with the measured cost of one entry
//! (`*_BYTES` below: key, value, heap parts and the hash table's slot,
//! under mimalloc; measured by filling each cache with 200k to 600k
//! entries of the scale bench's shape and reading mimalloc's committed
//! bytes, 2026-12-06: vector entry 69, state 195, observation 100, seen
//! key 74). What is not shared out is headroom for what no cache holds:
//! the runtime, connections and their buffers, requests in flight, the
//! catalog, the allocator's free pages, and sled's memory beyond its
//! cache: its records of every page, paged out or not, which grow with
//! the store (measured on sled alone under the scale bench's writes,
//! `cargo bench --bench sled_layout`: about 135 MiB at 3M attempts).
//!
//! sled counts its cache in serialized bytes and holds more in memory for
//! them: 3.5 times `cache_capacity` in the server (measured on a server
//! that ingested 3M attempts of the scale bench without a restart: RSS
//! 152, 199 and 183 MiB lower at 1M, 2M and 3M attempts with a 4 MiB
//! `cache_capacity` than with 61 MiB, i.e. 2.7 to 3.5 bytes per byte; the
//! worst is kept). So its share below is what it really holds, and
//! `cache_capacity` is that share / 3.5 ([`SLED_RESIDENT_TENTHS`]). An
//! earlier figure, 2.1, came from sled alone under the same writes
//! (`cargo bench --bench sled_layout`), without the server's reads.
//!
//! Also outside every share, in the headroom: sled's I/O buffers, one log
//! segment each (16 MiB for new folders, `SEGMENT_BYTES` in `mod.rs`),
//! of which one fills while the previous one is written: up to 32 MiB.
//!
//! | share | what                                                   |
//! |-------|--------------------------------------------------------|
//! | 25%   | sled's page cache (`cache_capacity` 25% / 3.5)         |
//! | 10%   | P(mastered) vectors (`mastery_cache.rs`)               |
//! | 6%    | last mastery state per (learner, skill) (`state_cache.rs`) |
//! | 6%    | observation histories of late pairs (`engine/history.rs`) |
//! | 3%    | learners known to exist (`engine/seen.rs`)             |
//! | 3%    | recommendations already noted (`engine/seen.rs`)       |
//! | 6%    | ingested rows waiting for sled before refusing (`write_behind.rs`) |
//! | 41%   | headroom (see above)                                   |
//!
//! The shares are fixed, what lies outside them is not: sled's records of
//! its pages grow with the store. So the shares of the caches are also a
//! ceiling that feedback from the measured resident memory lowers while
//! the process is over the budget ([`Pressure`], [`Capacity`]): every 10 s
//! the checkpoint thread reads it, and the caches of the store and the
//! engine shrink or grow back together. sled's cache cannot be resized
//! once open and keeps its share.
//!
//! Before these figures were measured, sled had 20% as `cache_capacity`
//! (about 42% really held) and the waiting rows 10%: the server peaked at
//! 633 to 692 MiB between 3M and 5M attempts at the default 512
//! (BENCHMARKS.md, issue 20). With 25% / 2.1 (61 MiB of `cache_capacity`,
//! about 210 MiB really held), a server that ingested without restarts
//! reached 560 MiB at 2M attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes sled holds in memory per ten bytes of `cache_capacity` (35: 3.5
/// per byte, measured in the server, see the module doc).
pub const SLED_RESIDENT_TENTHS: u64 = 35;

/// Default of `--memory-mb`.
pub const DEFAULT_MB: u64 = 512;

/// The smallest budget accepted: below it the fixed costs (runtime, sled's
/// buffers, two threads' stacks per core) leave the caches nothing.
pub const MIN_MB: u64 = 64;

/// One skill's entry in a cached P(mastered) vector: skill id string
/// (24 bytes + heap), `f64`, B-tree node share, and the learner's key and
/// `Arc` spread over its skills (measured 69).
const VECTOR_ENTRY_BYTES: u64 = 80;
/// One cached mastery state: skill and learner keys, `MasteryState` with
/// its attempt id, hash table slots (measured 195).
const STATE_BYTES: u64 = 200;
/// One cached observation: `Position` (time, attempt id string) and the
/// observation, in a vector (measured 100).
const OBSERVATION_BYTES: u64 = 100;
/// One remembered key (learner id, or learner and module): string, heap,
/// hash set slot (measured 74).
const SEEN_KEY_BYTES: u64 = 76;
/// One ingested row waiting for sled (attempt with its strings, index
/// entry or mastery state, map node).
const WAITING_ROW_BYTES: u64 = 320;

/// How many bytes the server may hold, and each cache's share of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    bytes: u64,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::from_mb(DEFAULT_MB)
    }
}

impl MemoryBudget {
    /// A budget of `mb` MiB; at least [`MIN_MB`] (the edge refuses less).
    pub fn from_mb(mb: u64) -> Self {
        Self {
            bytes: mb.max(MIN_MB) * 1024 * 1024,
        }
    }

    /// The whole budget in MiB.
    pub fn mb(&self) -> u64 {
        self.bytes / (1024 * 1024)
    }

    fn share(&self, percent: u64, per_entry: u64) -> usize {
        (self.bytes * percent / 100 / per_entry) as usize
    }

    /// sled's `cache_capacity` in bytes: its share over what sled holds
    /// per byte it counts ([`SLED_RESIDENT_TENTHS`]).
    pub fn sled_cache_bytes(&self) -> u64 {
        self.bytes * 25 / 100 * 10 / SLED_RESIDENT_TENTHS
    }

    /// Skill entries the P(mastered) vectors may hold in all.
    pub fn mastery_vector_entries(&self) -> usize {
        self.share(10, VECTOR_ENTRY_BYTES)
    }

    /// Mastery states the ingestion cache may hold.
    pub fn cached_states(&self) -> usize {
        self.share(6, STATE_BYTES)
    }

    /// Observations the late-arrival histories may hold.
    pub fn history_observations(&self) -> usize {
        self.share(6, OBSERVATION_BYTES)
    }

    /// Keys each remembered-fact set may hold (known learners, noted
    /// recommendations).
    pub fn seen_keys(&self) -> usize {
        self.share(3, SEEN_KEY_BYTES)
    }

    /// Rows that may wait for sled before ingestion is refused.
    pub fn waiting_rows(&self) -> usize {
        self.share(6, WAITING_ROW_BYTES)
    }
}

/// mimalloc's `mi_option_purge_delay` (its index in `mi_option_t` of
/// mimalloc 3, the version `libmimalloc-sys` builds by default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long mimalloc keeps freed memory before returning it to the OS.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// How much of their shares the caches of the store and the engine may
/// fill now, in percent: feedback from the measured resident memory.
///
/// Why: the shares are sized for what the caches hold, but sled's records
/// of its pages grow with the store outside every share (RSS after a
/// restart: 128 MiB at 1M attempts, 196 MiB at 10M), so a server that
/// ingested 10M attempts without a restart reached 614 MiB with the
/// default 512 (BENCHMARKS.md, issue 20). Every 10 s the checkpoint thread
/// compares the resident memory with the budget ([`observe`]): over it,
/// the caches' capacities are cut by [`CUT`] points (down to [`FLOOR`]);
/// under [`REGROW_BELOW`] percent of it, they grow back by [`REGROW`]. A
/// cache past its cut capacity starts over at its next insert, which
/// gives the memory back at once (the allocator purges freed pages after
/// 10 ms). Cold reads are slower while the caches are cut.
#[derive(Debug)]
pub struct Pressure {
    percent: AtomicUsize,
}

/// Points cut from the caches' capacities per reading over the budget.
pub const CUT: usize = 20;
/// The smallest share of their capacities the caches keep, in percent.
pub const FLOOR: usize = 10;
/// Points given back per reading under [`REGROW_BELOW`].
pub const REGROW: usize = 10;
/// Resident memory, in percent of the budget, under which the caches grow
/// back: apart from the cut threshold (100), so that one reading's
/// regrowth does not undo the last cut at once.
pub const REGROW_BELOW: u64 = 85;

impl Default for Pressure {
    fn default() -> Self {
        Self {
            percent: AtomicUsize::new(100),
        }
    }
}

impl Pressure {
    /// The part of `full` a cache may hold now.
    pub fn allowed(&self, full: usize) -> usize {
        let percent = self.percent();
        if percent >= 100 {
            full
        } else {
            (full as u128 * percent as u128 / 100) as usize
        }
    }

    /// The caches' capacities in force, in percent of their shares.
    pub fn percent(&self) -> usize {
        self.percent.load(Ordering::Relaxed)
    }

    /// One step of feedback: `resident` bytes against `budget`. Returns
    /// the percent now in force.
    pub fn adjust(&self, resident: u64, budget: &MemoryBudget) -> usize {
        let now = self.percent();
        let next = if resident > budget.bytes {
            now.saturating_sub(CUT).max(FLOOR)
        } else if resident < budget.bytes / 100 * REGROW_BELOW {
            (now + REGROW).min(100)
        } else {
            now
        };
        self.percent.store(next, Ordering::Relaxed);
        next
    }
}

/// A cache's capacity: its share of the budget in entries, as cut by the
/// budget's [`Pressure`] while the process is over it.
#[derive(Debug, Clone)]
pub struct Capacity {
    full: usize,
    pressure: Arc<Pressure>,
}

impl Capacity {
    /// `full` entries under `pressure`.
    pub fn new(full: usize, pressure: Arc<Pressure>) -> Self {
        Self { full, pressure }
    }

    /// The entries the cache may hold now.
    pub fn get(&self) -> usize {
        self.pressure.allowed(self.full)
    }
}

/// A fixed capacity, under no pressure (tests, tools).
impl From<usize> for Capacity {
    fn from(full: usize) -> Self {
        Self::new(full, Arc::default())
    }
}

/// Reads the resident memory, moves `pressure` by it (see [`Pressure`]),
/// and logs both with the rows waiting for sled at debug (every 10 s from
/// the checkpoint thread; `RUST_LOG=spoc_engine::store::budget=debug`):
/// how an operator sees the budget hold on a long-running server.
pub(crate) fn observe(pressure: &Pressure, budget: &MemoryBudget, waiting_rows: usize) {
    let resident = resident_bytes();
    let before = pressure.percent();
    let percent = resident.map_or(before, |r| pressure.adjust(r, budget));
    if percent != before {
        tracing::info!(
            resident_mib = resident.map(|b| b / (1024 * 1024)),
            budget_mib = budget.mb(),
            cache_percent = percent,
            "memory over or back under the budget: caches resized"
        );
    }
    tracing::debug!(
        resident_mib = resident.map(|b| b / (1024 * 1024)),
        waiting_rows,
        cache_percent = percent,
        "memory"
    );
}

/// The process's resident memory in bytes (`/proc/self/statm`), if known.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Makes the allocator return freed memory to the OS after 10 ms instead
/// of mimalloc 3's default second: under ingestion the server frees and
/// allocates hundreds of MiB a second (batches, sled's pages), and a
/// second of freed pages held back was about 100 MiB of resident memory
/// outside every share of the budget (measured at 2M attempts, see
/// BENCHMARKS.md). Call first thing in `main`, before other threads start.
pub fn purge_freed_memory_soon() {
    // SAFETY: plain setters of mimalloc (linked as the global allocator);
    // called before any other thread exists.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// The allocator's current purge delay in milliseconds.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: a plain getter of mimalloc.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is mimalloc's purge delay: its documented default
    /// (1000 ms in mimalloc 3) is read there, and the setter changes it.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        assert_eq!(purge_delay_ms(), 1000, "index 15 is not purge_delay");
        purge_freed_memory_soon();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }

    #[test]
    fn shares_scale_with_the_budget_and_stay_inside_it() {
        let small = MemoryBudget::from_mb(128);
        let default = MemoryBudget::default();
        assert_eq!(default.mb(), 512);
        assert_eq!(
            default.mastery_vector_entries(),
            4 * small.mastery_vector_entries()
        );
        assert_eq!(MemoryBudget::from_mb(1).mb(), MIN_MB);
        let b = default;
        let shared = b.sled_cache_bytes() * SLED_RESIDENT_TENTHS / 10
            + b.mastery_vector_entries() as u64 * VECTOR_ENTRY_BYTES
            + b.cached_states() as u64 * STATE_BYTES
            + b.history_observations() as u64 * OBSERVATION_BYTES
            + 2 * b.seen_keys() as u64 * SEEN_KEY_BYTES
            + b.waiting_rows() as u64 * WAITING_ROW_BYTES;
        assert!(shared <= b.bytes * 59 / 100, "{shared} of {}", b.bytes);
        // The default keeps the figures the caches had before the budget
        // within a small factor (65,536 learners of ~10 skills, 2^18 states).
        assert!(b.mastery_vector_entries() > 600_000);
        assert!(b.cached_states() > 150_000);
    }

    /// The figure the memory log reports is the process's own (a test
    /// process holds at least its binary and this buffer, touched).
    #[test]
    fn resident_memory_is_read_from_the_process() {
        let touched = vec![1u8; 8 << 20];
        let resident = resident_bytes().expect("/proc/self/statm");
        assert!(resident >= 8 << 20, "{resident}");
        assert_eq!(touched.iter().map(|&b| u64::from(b)).sum::<u64>(), 8 << 20);
    }

    /// Over the budget the caches are cut step by step down to the floor;
    /// well under it they grow back; in between nothing moves.
    #[test]
    fn pressure_cuts_the_caches_over_the_budget_and_gives_back_under_it() {
        let budget = MemoryBudget::default();
        let mib = |n: u64| n * 1024 * 1024;
        let pressure = Arc::new(Pressure::default());
        let capacity = Capacity::new(1_000, pressure.clone());
        assert_eq!(capacity.get(), 1_000);
        assert_eq!(pressure.adjust(mib(600), &budget), 100 - CUT);
        assert_eq!(capacity.get(), 1_000 * (100 - CUT) / 100);
        for _ in 0..10 {
            pressure.adjust(mib(600), &budget);
        }
        assert_eq!(pressure.percent(), FLOOR);
        assert_eq!(capacity.get(), 1_000 * FLOOR / 100);
        // Between the regrowth line and the budget: held.
        assert_eq!(pressure.adjust(mib(480), &budget), FLOOR);
        assert_eq!(pressure.adjust(mib(400), &budget), FLOOR + REGROW);
        for _ in 0..20 {
            pressure.adjust(mib(300), &budget);
        }
        assert_eq!(capacity.get(), 1_000);
        // A fixed capacity never moves.
        assert_eq!(Capacity::from(7).get(), 7);
    }

    /// sled's `cache_capacity` is its 25% share over what sled really
    /// holds per byte counted: about 36.6 MiB of the default 512, i.e.
    /// 128 MiB resident (it was 61 MiB, about 210 MiB resident).
    #[test]
    fn sled_gets_its_share_of_resident_memory_not_of_counted_bytes() {
        let b = MemoryBudget::default();
        let resident = b.sled_cache_bytes() * SLED_RESIDENT_TENTHS / 10;
        let share = b.bytes / 4;
        assert!(
            resident <= share && share - resident < 16,
            "{resident} of {share}"
        );
        assert_eq!(b.sled_cache_bytes() >> 20, 36);
        assert_eq!(MemoryBudget::from_mb(1024).sled_cache_bytes() >> 20, 73);
    }
}
