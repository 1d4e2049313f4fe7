//! The attempt id index: which learner holds an attempt id, for the
//! lookups by id alone (a resend's duplicate check, a retraction). A file
//! of its own, `attempt-index` in the data folder, beside sled (store
//! format 5).
//!
//! Why not a sled tree: attempt ids hash to random places, so every
//! attempt rewrote a random page of the tree, and sled's log keeps each
//! old copy until it cleans the segment. That page garbage was most of the
//! bytes on disk per attempt, most of sled's time applying ingested rows
//! and about 130 MiB of sled's resident records of its pages (measured
//! with `cargo bench --bench sled_layout`, 3M attempts: 165 bytes per
//! attempt and 144k applies/s with the tree, 73 bytes and 3M/s without).
//! Here an entry is written in place: 8 bytes in the file, no garbage.
//!
//! The file is a hash table of `u64` slots ([`Entry`]: the id's 32-bit
//! tag, a hash keyed by a random [`Key`] kept in the header, above the
//! learner number plus one; 0 is an empty slot), 2^bits
//! home slots and a tail of [`TAIL`] slots that a run near the end spills
//! into (it never wraps). Linear probing, with every run kept in ascending
//! order of entries: an insert shifts the rest of its run right by one
//! slot, a removal shifts the displaced entries after it left. So the
//! whole table is sorted and doubling it is one sequential pass (an entry
//! goes to its new home or just after the previous one). Past 3/4 full,
//! it doubles. A lookup reads its run to the first empty slot (a few
//! slots) rather than stopping at a larger entry, so that a damaged slot
//! cannot hide the entries after it.
//! Reads and writes are `pread`/`pwrite` of a few slots: the table lives
//! in the kernel's page cache, not in the server's resident memory.
//!
//! An entry is a candidate only: the caller confirms it in the learner's
//! attempt blocks. So a stale entry (an attempt removed from the blocks
//! but not from here, a crash in between) or an entry written twice (the
//! rows of a failed apply written again) is harmless, and every attempt
//! holds an entry of its own even when two share a tag.
//!
//! Durability without a flush per checkpoint: the entries of the attempts
//! ingested in a second touch most of the table's pages, so syncing it at
//! every checkpoint (each second) would write the whole file each time.
//! Entries are written before their attempts' blocks, with `pwrite`: once
//! written they are in the kernel's page cache, which outlives the
//! process. So the header records whether the file was synced since its
//! last write (at a stop, `Store::flush_at_stop`, and after a migration;
//! [`AttemptIndex::sync`], with sled's checkpoint
//! generation, the slots flushed before the header says so) and, if not,
//! the boot of the machine that wrote it (marked durably before the first
//! write). At open, a synced file at sled's
//! generation is used as it is; an unsynced one of this boot (the process
//! died, the machine did not) is read once, to recount it and look for
//! damage; anything else (a machine that restarted, a file older than
//! sled's checkpoint, a damaged header or slots) is rebuilt from the
//! attempt blocks, logged. The index is derived data: a missing file is
//! rebuilt the same way, and so is the index of a folder of an older
//! format, or a restored one (snapshots do not carry it).
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::domain::hashing::{fnv1a, splitmix};
use crate::error::{Error, Result};

/// The index's file name in the data folder.
pub const FILE: &str = "attempt-index";

/// The file's first bytes.
const MAGIC: &[u8; 8] = b"SPOCAIX\x01";

/// Version of the file's layout.
const VERSION: u32 = 1;

/// Bytes before the first slot: the header, padded to a page.
const HEADER: u64 = 4096;

/// Bits of the smallest table (64Ki home slots, 512 KiB).
const MIN_BITS: u32 = 16;

/// Slots past the last home slot that runs near the end spill into.
pub const TAIL: u64 = 4096;

/// Slots read at a time when walking a run.
const WINDOW: usize = 64;

/// Slots written at a time when laying a table out.
const CHUNK: usize = 1 << 16;

/// One entry: the attempt id's tag in the high half, the learner number
/// plus one in the low half (so that 0 stays the empty slot). Entries sort
/// by tag first, hence by home slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry(pub u64);

impl Entry {
    /// The id's tag.
    pub fn tag(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The learner number (`None` for an empty slot or a damaged one).
    pub fn learner(self) -> Option<u32> {
        (self.0 as u32).checked_sub(1)
    }

    /// The home slot in a table of 2^`bits` home slots.
    pub fn home(self, bits: u32) -> u64 {
        u64::from(self.tag()) >> (32 - bits)
    }
}

/// The key of an index's hash, random for each file built and kept in
/// its header. Attempt ids come from outside: with a public hash, a
/// client could send ids whose tags all fall in one run, which would
/// double the table until it is full. Keyed FNV-1a then SplitMix64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u64);

impl Key {
    fn random() -> Self {
        Self(rand::random())
    }

    /// The 32-bit tag of an attempt id.
    pub fn tag(self, attempt_id: &str) -> u32 {
        let mut h = 0xcbf2_9ce4_8422_2325 ^ self.0;
        for b in attempt_id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (splitmix(h ^ self.0.rotate_left(29)) >> 32) as u32
    }

    /// The entry of `attempt_id` held by learner number `learner` (below
    /// `u32::MAX`, as interned numbers are).
    pub fn entry(self, attempt_id: &str, learner: u32) -> Entry {
        Entry((u64::from(self.tag(attempt_id)) << 32) | (u64::from(learner) + 1))
    }
}

/// The index of one data folder.
pub struct AttemptIndex {
    path: PathBuf,
    table: RwLock<Table>,
}

/// The open file and what its header says.
struct Table {
    file: File,
    head: Header,
    /// Slot writes since open (a sync marks the file synced only if none
    /// came while it flushed).
    writes: u64,
}

impl Table {
    fn slots(&self) -> u64 {
        (1u64 << self.head.bits) + TAIL
    }

    /// Reads `n` slots from `from` (fewer at the end of the table).
    fn read(&self, path: &Path, from: u64, n: usize) -> Result<Vec<u64>> {
        let n = n.min(self.slots().saturating_sub(from) as usize);
        let mut bytes = vec![0u8; n * 8];
        self.file
            .read_exact_at(&mut bytes, HEADER + from * 8)
            .map_err(|e| io(path, e))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    fn write(&self, path: &Path, from: u64, slots: &[u64]) -> Result<()> {
        let bytes: Vec<u8> = slots.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.file
            .write_all_at(&bytes, HEADER + from * 8)
            .map_err(|e| io(path, e))
    }

    /// Writes `slots` from `from` a file page at a time, the last page
    /// first: an insert shifts entries right, so a write that stops
    /// halfway (a full disk, a kill) leaves an entry twice, never none.
    fn write_backward(&self, path: &Path, from: u64, slots: &[u64]) -> Result<()> {
        const PER_PAGE: u64 = 4096 / 8;
        let mut end = slots.len();
        while end > 0 {
            let last = from + end as u64 - 1;
            let page_start = (HEADER / 8 + last) / PER_PAGE * PER_PAGE - HEADER / 8;
            let start = page_start.max(from) - from;
            self.write(path, from + start, &slots[start as usize..end])?;
            end = start as usize;
        }
        Ok(())
    }

    /// The run from `entry`'s home up to and including the first slot
    /// that `stop` accepts (or the table's end): (first slot, slots).
    fn run_until(
        &self,
        path: &Path,
        entry: Entry,
        stop: impl Fn(u64) -> bool,
    ) -> Result<(u64, Vec<u64>)> {
        let from = entry.home(self.head.bits);
        let mut run = Vec::new();
        loop {
            let next = from + run.len() as u64;
            if next >= self.slots() {
                return Ok((from, run));
            }
            let window = self.read(path, next, WINDOW)?;
            for slot in window {
                run.push(slot);
                if stop(slot) {
                    return Ok((from, run));
                }
            }
        }
    }

    /// Inserts `entry` in its run's order; `false` when the run would
    /// pass the table's end.
    fn insert(&mut self, path: &Path, entry: Entry) -> Result<bool> {
        let (from, mut run) = self.run_until(path, entry, |s| s == 0)?;
        let Some(empty) = run.iter().position(|&s| s == 0) else {
            return Ok(false);
        };
        let at = run
            .iter()
            .position(|&s| s == 0 || s > entry.0)
            .unwrap_or(empty);
        run.insert(at, entry.0);
        run.truncate(empty + 1);
        self.write_backward(path, from + at as u64, &run[at..])?;
        self.head.live += 1;
        self.writes += 1;
        Ok(true)
    }

    /// Removes one copy of `entry`, if held.
    fn remove(&mut self, path: &Path, entry: Entry) -> Result<()> {
        let (from, run) = self.run_until(path, entry, |s| s == 0)?;
        let Some(at) = run.iter().position(|&s| s == entry.0) else {
            return Ok(());
        };
        // The entries after it that are displaced move back one slot,
        // up to an empty slot or one at its home.
        let mut shifted = vec![];
        let mut pos = from + at as u64 + 1;
        loop {
            let window = self.read(path, pos, WINDOW)?;
            let mut done = window.is_empty();
            for slot in window {
                if slot == 0 || Entry(slot).home(self.head.bits) >= pos {
                    done = true;
                    break;
                }
                shifted.push(slot);
                pos += 1;
            }
            if done {
                break;
            }
        }
        // Written first to last (one `pwrite` copies its pages in order):
        // a write that stops halfway leaves an entry twice, never none.
        shifted.push(0);
        self.write(path, from + at as u64, &shifted)?;
        self.head.live -= 1;
        self.writes += 1;
        Ok(())
    }

    fn header(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.head.bits.to_le_bytes());
        h[16..24].copy_from_slice(&self.head.live.to_le_bytes());
        h[24..32].copy_from_slice(&self.head.generation.to_le_bytes());
        h[32..36].copy_from_slice(&u32::from(self.head.clean).to_le_bytes());
        h[36..44].copy_from_slice(&self.head.boot.to_le_bytes());
        h[44..52].copy_from_slice(&self.head.key.0.to_le_bytes());
        let crc = crc32fast::hash(&h[..52]);
        h[52..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn write_header(&self, path: &Path) -> Result<()> {
        self.file
            .write_all_at(&self.header(), 0)
            .map_err(|e| io(path, e))
    }

    /// Before the first write after a sync: marks the header unsynced,
    /// with this boot, durably (one flush, while nothing else is dirty).
    fn dirty(&mut self, path: &Path) -> Result<()> {
        if self.head.clean {
            self.head.clean = false;
            self.head.boot = boot_id();
            self.write_header(path)?;
            self.file.sync_data().map_err(|e| io(path, e))?;
        }
        Ok(())
    }
}

/// What a header says.
#[derive(Clone, Copy)]
struct Header {
    bits: u32,
    /// Entries held.
    live: u64,
    /// Checkpoint generation of the last sync.
    generation: u64,
    /// Whether the count is that of the slots (no write since the last
    /// sync).
    clean: bool,
    /// The machine's boot the writes since the last sync were made in.
    boot: u64,
    /// The hash's key.
    key: Key,
}

impl Header {
    /// Why a file with this header must be rebuilt rather than used, for a
    /// store at checkpoint `generation` (`None`: use it; one written
    /// unsynced in this boot is still read once, see
    /// [`AttemptIndex::open`]).
    fn stale(&self, generation: u64) -> Option<String> {
        if self.clean {
            // Synced at a flush: whole if sled is where it was then.
            (self.generation < generation).then(|| {
                format!(
                    "synced at checkpoint {}, older than the store's {generation}",
                    self.generation
                )
            })
        } else if self.boot != 0 && self.boot == boot_id() {
            // The process died, the machine did not: every write is in
            // the page cache.
            None
        } else {
            Some("written since its last sync by a boot of the machine that ended".into())
        }
    }
}

/// Bytes of the header that are used (the rest of [`HEADER`] is zero).
const HEADER_BYTES: usize = 56;

/// This boot of the machine (a hash of Linux's boot id; 0 if unknown): a
/// write survives the death of the process that made it (it is in the
/// kernel's page cache), not a restart of the machine before it reached
/// the disk.
fn boot_id() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map_or(0, |id| fnv1a(id.trim()).max(1))
}

/// Reads and checks the header of the file at `path`; `Err` says what is
/// wrong with it.
fn read_header(file: &File) -> std::result::Result<Header, String> {
    let mut h = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut h, 0)
        .map_err(|e| format!("header unreadable: {e}"))?;
    if &h[..8] != MAGIC {
        return Err("not an attempt index (magic)".into());
    }
    let crc = u32::from_le_bytes(h[52..56].try_into().expect("4 bytes"));
    if crc32fast::hash(&h[..52]) != crc {
        return Err("header checksum mismatch".into());
    }
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(8) != VERSION {
        return Err(format!("layout version {} unknown", u32_at(8)));
    }
    let bits = u32_at(12);
    if !(MIN_BITS..=32).contains(&bits) {
        return Err(format!("{bits} bits of home slots"));
    }
    let len = file
        .metadata()
        .map_err(|e| format!("size unreadable: {e}"))?
        .len();
    let expected = HEADER + ((1u64 << bits) + TAIL) * 8;
    if len != expected {
        return Err(format!("{len} bytes, {expected} expected for {bits} bits"));
    }
    Ok(Header {
        bits,
        live: u64_at(16),
        generation: u64_at(24),
        clean: u32_at(32) == 1,
        boot: u64_at(36),
        key: Key(u64_at(44)),
    })
}

impl AttemptIndex {
    /// Opens the index of the data folder `dir`, whose sled store is at
    /// checkpoint `generation`. `entries` gives the entry of every attempt
    /// the blocks hold under a new key; it is called to rebuild a
    /// missing, damaged or stale file.
    pub fn open(
        dir: &Path,
        generation: u64,
        entries: impl FnOnce(Key) -> Result<Vec<Entry>>,
    ) -> Result<Self> {
        let path = dir.join(FILE);
        let _ = std::fs::remove_file(temporary(&path));
        let table = match reopen(&path, generation)? {
            Some(table) => table,
            None => {
                let started = std::time::Instant::now();
                let key = Key::random();
                let mut entries = entries(key)?;
                let n = entries.len();
                let table = lay_out(&path, &mut entries, generation, key)?;
                tracing::info!(
                    entries = n,
                    seconds = started.elapsed().as_secs_f64(),
                    "attempt index built from the attempt blocks"
                );
                table
            }
        };
        Ok(Self {
            path,
            table: RwLock::new(table),
        })
    }

    /// The hash key entries are made with.
    pub fn key(&self) -> Key {
        self.table.read().head.key
    }

    /// The learner numbers that may hold `attempt_id` (to be confirmed).
    pub fn candidates(&self, attempt_id: &str) -> Result<Vec<u32>> {
        let table = self.table.read();
        let tag = table.head.key.tag(attempt_id);
        let probe = Entry((u64::from(tag) << 32) | u64::from(u32::MAX));
        let (_, run) = table.run_until(&self.path, probe, |s| s == 0)?;
        let mut out = Vec::new();
        for slot in run {
            let entry = Entry(slot);
            if slot != 0 && entry.tag() == tag {
                if let Some(learner) = entry.learner() {
                    if !out.contains(&learner) {
                        out.push(learner);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds one entry per attempt (an entry given twice is held twice).
    pub fn add(&self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut table = self.table.write();
        table.dirty(&self.path)?;
        for &entry in entries {
            if (table.head.live + 1) * 4 > (1u64 << table.head.bits) * 3 {
                self.grow(&mut table)?;
            }
            while !table.insert(&self.path, entry)? {
                self.grow(&mut table)?;
            }
        }
        Ok(())
    }

    /// Removes one copy of each entry (those not held are ignored).
    pub fn remove(&self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut table = self.table.write();
        table.dirty(&self.path)?;
        for &entry in entries {
            table.remove(&self.path, entry)?;
        }
        Ok(())
    }

    /// Makes every entry written so far durable and, if nothing was
    /// written while it flushed, records the file as synced at checkpoint
    /// `generation` (at a stop, and after a migration). The slots are flushed
    /// before the header says so, and outside the lock, so that lookups
    /// and ingestion go on meanwhile.
    pub fn sync(&self, generation: u64) -> Result<()> {
        let (file, writes) = {
            let table = self.table.read();
            let file = table.file.try_clone().map_err(|e| io(&self.path, e))?;
            (file, table.writes)
        };
        file.sync_data().map_err(|e| io(&self.path, e))?;
        let mut table = self.table.write();
        if table.writes != writes {
            return Ok(()); // still unsynced: the next flush marks it
        }
        table.head.generation = generation;
        table.head.clean = true;
        table.write_header(&self.path)?;
        table.file.sync_data().map_err(|e| io(&self.path, e))
    }

    /// Removes every entry (a migration starting over).
    pub fn clear(&self) -> Result<()> {
        let mut table = self.table.write();
        let generation = table.head.generation;
        let writes = table.writes + 1;
        *table = lay_out(&self.path, &mut [], generation, Key::random())?;
        table.writes = writes;
        table.dirty(&self.path)
    }

    /// Copies of `entry` held (tests of removal).
    #[cfg(test)]
    pub(crate) fn copies(&self, entry: Entry) -> Result<usize> {
        let table = self.table.read();
        let (_, run) = table.run_until(&self.path, entry, |s| s == 0)?;
        Ok(run.iter().filter(|&&s| s == entry.0).count())
    }

    /// Entries held.
    pub fn len(&self) -> u64 {
        self.table.read().head.live
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Doubles the table: one sequential pass over the old one (0.17 s
    /// from 8M to 16M slots, holding the lock).
    fn grow(&self, table: &mut Table) -> Result<()> {
        let started = std::time::Instant::now();
        let mut bits = table.head.bits;
        let grown = loop {
            bits += 1;
            if bits > 32 {
                return Err(full(&self.path));
            }
            let slots = table.slots();
            let old = &*table;
            let path = &self.path;
            let mut from = 0;
            let source = std::iter::from_fn(move || {
                if from >= slots {
                    return None;
                }
                let chunk = old.read(path, from, CHUNK);
                from += CHUNK as u64;
                Some(chunk)
            });
            if let Some(grown) = write_table(
                &self.path,
                bits,
                table.head.generation,
                table.head.key,
                source,
            )? {
                break grown;
            }
        };
        tracing::info!(
            entries = grown.head.live,
            slots = 1u64 << bits,
            seconds = started.elapsed().as_secs_f64(),
            "attempt index doubled"
        );
        let writes = table.writes + 1;
        *table = grown;
        table.writes = writes;
        table.dirty(&self.path)
    }
}

/// The file at `path`, if a store at checkpoint `generation` may use it
/// (why not is logged: it is rebuilt then).
fn reopen(path: &Path, generation: u64) -> Result<Option<Table>> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let reason = match read_header(&file) {
        Err(reason) => format!("damaged: {reason}"),
        Ok(head) => match head.stale(generation) {
            Some(reason) => reason,
            None if head.clean => {
                return Ok(Some(Table {
                    file,
                    head,
                    writes: 0,
                }));
            }
            None => {
                // Unsynced in this boot: recount, and look for damage
                // while reading every slot anyway.
                let mut table = Table {
                    file,
                    head,
                    writes: 0,
                };
                let (live, problems) = scan(&table, path, |_| ())?;
                let Some((slot, what)) = problems.into_iter().next() else {
                    table.head.live = live;
                    return Ok(Some(table));
                };
                format!("slot {slot}: {what}")
            }
        },
    };
    tracing::warn!(file = %path.display(), %reason, "the attempt index is rebuilt from the attempt blocks");
    Ok(None)
}

/// Reads every slot of a table, handing each entry to `visit`: the
/// entries held, and what is wrong with the runs (slot, what).
fn scan(
    table: &Table,
    path: &Path,
    mut visit: impl FnMut(Entry),
) -> Result<(u64, Vec<(u64, String)>)> {
    let (mut live, mut problems) = (0u64, Vec::new());
    let (mut from, mut previous, mut run_start) = (0u64, 0u64, 0u64);
    while from < table.slots() {
        for (i, slot) in table.read(path, from, CHUNK)?.into_iter().enumerate() {
            let at = from + i as u64;
            if slot == 0 {
                previous = 0;
                run_start = at + 1;
                continue;
            }
            let entry = Entry(slot);
            let home = entry.home(table.head.bits);
            let problem = if entry.learner().is_none() {
                Some("an entry with no learner")
            } else if home > at {
                Some("an entry before its home slot")
            } else if home < run_start {
                Some("an empty slot between an entry and its home")
            } else if slot < previous {
                Some("entries out of order")
            } else {
                None
            };
            if let Some(what) = problem {
                problems.push((at, what.to_string()));
            }
            previous = slot;
            live += 1;
            visit(entry);
        }
        from += CHUNK as u64;
    }
    Ok((live, problems))
}

/// Writes a new table holding `entries` (sorted here) at `path`, sized at
/// most 5/8 full (midway to the 3/4 that doubles it), or larger if a run
/// would overflow the tail.
fn lay_out(path: &Path, entries: &mut [Entry], generation: u64, key: Key) -> Result<Table> {
    entries.sort_unstable();
    let mut bits = MIN_BITS;
    while (entries.len() as u64) * 8 > 5 * (1u64 << bits) && bits < 32 {
        bits += 1;
    }
    let slots: Vec<u64> = entries.iter().map(|e| e.0).collect();
    loop {
        let source = std::iter::once(Ok(slots.clone()));
        if let Some(table) = write_table(path, bits, generation, key, source)? {
            return Ok(table);
        }
        if bits == 32 {
            return Err(full(path));
        }
        bits += 1;
    }
}

/// Writes a table of 2^`bits` home slots from the slots of `source`
/// (ascending, empty slots skipped) into a temporary file, syncs it and
/// renames it over `path`; `None` (and no file) when a run would pass the
/// tail. Each entry goes to its home or just after the entry before it,
/// which keeps every run sorted. The file's space is allocated first, so
/// that a full disk fails here rather than halfway through a later
/// insert.
fn write_table(
    path: &Path,
    bits: u32,
    generation: u64,
    key: Key,
    source: impl Iterator<Item = Result<Vec<u64>>>,
) -> Result<Option<Table>> {
    let tmp = temporary(path);
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io(&tmp, e))?
    };
    let mut table = Table {
        file,
        head: Header {
            bits,
            live: 0,
            generation,
            clean: true,
            boot: 0,
            key,
        },
        writes: 0,
    };
    let slots = table.slots();
    let len = HEADER + slots * 8;
    table.file.set_len(len).map_err(|e| io(&tmp, e))?;
    allocate(&table.file, len).map_err(|e| io(&tmp, e))?;
    // Slots laid out and not yet written, from `start`.
    let mut start = 0u64;
    let mut out: Vec<u64> = Vec::with_capacity(CHUNK);
    let mut next = 0u64;
    for chunk in source {
        for slot in chunk? {
            if slot == 0 {
                continue;
            }
            let at = Entry(slot).home(bits).max(next);
            if at >= slots {
                drop(table);
                let _ = std::fs::remove_file(&tmp);
                return Ok(None);
            }
            if at - start >= CHUNK as u64 {
                table.write(&tmp, start, &out)?;
                out.clear();
                start = at;
            }
            out.resize((at - start) as usize, 0);
            out.push(slot);
            next = at + 1;
            table.head.live += 1;
        }
    }
    table.write(&tmp, start, &out)?;
    table.write_header(&tmp)?;
    table.file.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    super::backup::sync_parent(path).map_err(|e| io(path, e))?;
    Ok(Some(table))
}

/// Allocates the disk blocks of the first `len` bytes of `file` (where
/// the file system can; elsewhere the writes allocate them).
fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(len) else {
        return Ok(());
    };
    // SAFETY: `fallocate` on an open descriptor we own, no pointers.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS) => Ok(()),
        _ => Err(err),
    }
}

/// Where a table is written before it replaces the index.
fn temporary(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{FILE}.tmp"))
}

/// A table that cannot double any more.
fn full(path: &Path) -> Error {
    Error::Storage(format!(
        "{}: the attempt index is full (2^32 slots)",
        path.display()
    ))
}

fn io(path: &Path, err: std::io::Error) -> Error {
    Error::Storage(format!("{}: {err}", path.display()))
}

/// What `spoc verify` reads of an index file: its entries, and what is
/// wrong with its structure.
#[derive(Debug)]
pub struct Checked {
    /// Every entry held, sorted.
    pub entries: Vec<Entry>,
    /// Damage found: (slot, what).
    pub problems: Vec<(u64, String)>,
    /// Why the next start rebuilds the file rather than use it, as
    /// [`AttemptIndex::open`] decides (its entries then say nothing).
    pub stale: Option<String>,
    /// The hash key its entries were made with.
    pub key: Key,
}

/// Reads and checks the index file of the data folder `dir`, whose sled
/// store is at checkpoint `generation`, without opening the store: `Err`
/// when there is no readable table at all.
pub fn check(dir: &Path, generation: u64) -> std::result::Result<Checked, String> {
    let path = dir.join(FILE);
    let file = File::open(&path).map_err(|e| format!("cannot open: {e}"))?;
    let h = read_header(&file)?;
    let table = Table {
        file,
        head: h,
        writes: 0,
    };
    let mut entries = Vec::new();
    let (live, mut problems) =
        scan(&table, &path, |e| entries.push(e)).map_err(|e| e.to_string())?;
    if h.clean && h.live != live {
        problems.push((
            0,
            format!(
                "the header counts {} entries, the slots hold {live}",
                h.live
            ),
        ));
    }
    entries.sort_unstable();
    Ok(Checked {
        entries,
        problems,
        stale: h.stale(generation),
        key: h.key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> AttemptIndex {
        AttemptIndex::open(dir, 0, |_| Ok(Vec::new())).unwrap()
    }

    fn entries(index: &AttemptIndex, n: u32, learner: impl Fn(u32) -> u32) -> Vec<Entry> {
        let key = index.key();
        (0..n)
            .map(|i| key.entry(&format!("a{i}"), learner(i)))
            .collect()
    }

    #[test]
    fn added_entries_are_found_and_removed_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let all = entries(&index, 300_000, |n| n % 977);
        for chunk in all.chunks(500) {
            index.add(chunk).unwrap();
        }
        assert_eq!(index.len(), 300_000);
        for n in (0..300_000u32).step_by(7) {
            assert!(
                index
                    .candidates(&format!("a{n}"))
                    .unwrap()
                    .contains(&(n % 977)),
                "a{n}"
            );
        }
        let gone: Vec<Entry> = all.iter().step_by(3).copied().collect();
        index.remove(&gone).unwrap();
        for n in 0..3_000u32 {
            let found = index.candidates(&format!("a{n}")).unwrap();
            assert_eq!(found.contains(&(n % 977)), n % 3 != 0, "a{n}: {found:?}");
        }
        let checked = check(dir.path(), 0).unwrap();
        assert!(checked.problems.is_empty(), "{:?}", &checked.problems[..3]);
        assert_eq!(checked.entries.len() as u64, index.len());
    }

    #[test]
    fn two_attempts_sharing_an_entry_hold_a_copy_each() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let e = index.key().entry("x", 4);
        index.add(&[e, e]).unwrap();
        index.remove(&[e]).unwrap();
        assert_eq!(index.candidates("x").unwrap(), vec![4]);
        index.remove(&[e]).unwrap();
        assert!(index.candidates("x").unwrap().is_empty());
    }

    #[test]
    fn a_crowded_run_at_the_end_spills_into_the_tail_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let key = index.key();
        // Ids whose home is the last home slot at 16 bits.
        let last: Vec<String> = (0..8_000_000)
            .map(|n| format!("t{n}"))
            .filter(|id| key.tag(id) >> 16 == 0xffff)
            .take(40)
            .collect();
        let entries: Vec<Entry> = last.iter().map(|id| key.entry(id, 1)).collect();
        index.add(&entries).unwrap();
        for id in &last {
            assert_eq!(index.candidates(id).unwrap(), vec![1], "{id}");
        }
        index.remove(&entries[..20]).unwrap();
        for id in &last[20..] {
            assert_eq!(index.candidates(id).unwrap(), vec![1], "{id}");
        }
        assert!(check(dir.path(), 0).unwrap().problems.is_empty());
    }

    /// More entries near the end than the tail holds (what ids crafted
    /// against a known hash would do): the table grows instead of
    /// failing, whether they come one by one or all at once.
    #[test]
    fn a_run_past_the_tail_grows_the_table() {
        let crowded: Vec<Entry> = (0..9_000u64)
            .map(|i| Entry(((0xf000_0000 + i * 0x7400) << 32) | 1))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        index.add(&crowded).unwrap();
        assert!(index.table.read().head.bits > MIN_BITS);
        for e in &crowded {
            assert_eq!(index.copies(*e).unwrap(), 1);
        }
        drop(index);
        let other = tempfile::tempdir().unwrap();
        let index = AttemptIndex::open(other.path(), 0, |_| Ok(crowded.clone())).unwrap();
        assert!(index.table.read().head.bits > MIN_BITS);
        assert_eq!(index.len(), 9_000);
        assert!(check(other.path(), 0).unwrap().problems.is_empty());
    }

    /// An insert's shift is written from its last page to its first; the
    /// result is the same as one write.
    #[test]
    fn a_shift_across_pages_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let table = index.table.read();
        let slots: Vec<u64> = (1..=1_500u64).collect();
        table.write_backward(&index.path, 300, &slots).unwrap();
        assert_eq!(table.read(&index.path, 300, 1_500).unwrap(), slots);
        assert_eq!(table.read(&index.path, 299, 1).unwrap(), vec![0]);
        assert_eq!(table.read(&index.path, 1_800, 1).unwrap(), vec![0]);
    }

    #[test]
    fn a_missing_damaged_or_stale_file_is_rebuilt_and_a_clean_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = |key: Key| Ok(vec![key.entry("from-blocks", 2)]);
        let not_rebuilt = |_: Key| -> Result<Vec<Entry>> { panic!("not rebuilt") };
        let index = AttemptIndex::open(dir.path(), 3, blocks).unwrap();
        assert_eq!(index.candidates("from-blocks").unwrap(), vec![2]);
        index.add(&[index.key().entry("since", 5)]).unwrap();
        index.sync(4).unwrap();
        drop(index);
        // At or past the store's generation: kept as it is.
        let index = AttemptIndex::open(dir.path(), 4, not_rebuilt).unwrap();
        assert_eq!(index.candidates("since").unwrap(), vec![5]);
        // A write after the sync, then a crash: the count is redone.
        index.add(&[index.key().entry("unsynced", 6)]).unwrap();
        drop(index);
        let index = AttemptIndex::open(dir.path(), 4, not_rebuilt).unwrap();
        assert_eq!(index.len(), 3);
        // Unsynced writes of another boot of the machine: rebuilt.
        index.add(&[index.key().entry("lost?", 7)]).unwrap();
        {
            let mut table = index.table.write();
            table.head.boot ^= 1;
            table.write_header(&index.path).unwrap();
        }
        drop(index);
        let stale = check(dir.path(), 4).unwrap().stale.unwrap();
        assert!(stale.contains("boot"), "{stale}");
        let index = AttemptIndex::open(dir.path(), 4, blocks).unwrap();
        assert!(index.candidates("lost?").unwrap().is_empty());
        assert_eq!(index.candidates("from-blocks").unwrap(), vec![2]);
        index.sync(4).unwrap();
        drop(index);
        // Older than the store: rebuilt from the blocks.
        assert!(check(dir.path(), 5).unwrap().stale.is_some());
        let index = AttemptIndex::open(dir.path(), 5, blocks).unwrap();
        assert!(index.candidates("since").unwrap().is_empty());
        assert_eq!(index.len(), 1);
        drop(index);
        // A damaged header: rebuilt.
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(FILE))
            .unwrap();
        file.write_all_at(&[0xff; 4], 12).unwrap();
        assert!(check(dir.path(), 5).unwrap_err().contains("checksum"));
        let index = AttemptIndex::open(dir.path(), 5, blocks).unwrap();
        assert_eq!(index.candidates("from-blocks").unwrap(), vec![2]);
    }

    /// A file rebuilt gets a new hash key: the tags of a crafted id set
    /// do not carry over.
    #[test]
    fn every_built_file_has_its_own_key() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (x, y) = (open(a.path()), open(b.path()));
        assert_ne!(x.key(), y.key());
        assert_ne!(x.key().tag("same id"), y.key().tag("same id"));
    }

    /// Slots of random bytes under a valid header (damage the header's
    /// checksum cannot see): nothing panics, `check` names it, and the
    /// index still takes and finds entries (candidates are confirmed in
    /// the blocks, so wrong ones cost a read, not a wrong answer).
    #[test]
    fn random_slots_are_reported_and_survived() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        index.sync(1).unwrap();
        let mut state = 7u64;
        // One slot in eight random.
        let noise: Vec<u8> = (0..1u64 << MIN_BITS)
            .flat_map(|_| {
                state = splitmix(state);
                let slot = if state % 8 == 0 { splitmix(state) } else { 0 };
                slot.to_le_bytes()
            })
            .collect();
        index
            .table
            .read()
            .file
            .write_all_at(&noise, HEADER)
            .unwrap();
        assert!(!check(dir.path(), 1).unwrap().problems.is_empty());
        drop(index);
        let index = AttemptIndex::open(dir.path(), 1, |_| -> Result<Vec<Entry>> { panic!("kept") })
            .unwrap();
        let all = entries(&index, 5_000, |n| n);
        index.add(&all).unwrap();
        for n in 0..5_000u32 {
            let _ = index.candidates(&format!("z{n}")).unwrap();
            assert!(index.candidates(&format!("a{n}")).unwrap().contains(&n));
        }
        index.remove(&all).unwrap();
        // The same damage met after a crash (unsynced writes): found by
        // the recount, and the index rebuilt from the blocks.
        drop(index);
        let index =
            AttemptIndex::open(dir.path(), 1, |key| Ok(vec![key.entry("kept", 3)])).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index.candidates("kept").unwrap(), vec![3]);
    }

    #[test]
    fn check_names_flipped_slots() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let all = entries(&index, 20_000, |n| n);
        index.add(&all).unwrap();
        index.sync(1).unwrap();
        let checked = check(dir.path(), 1).unwrap();
        assert!(checked.problems.is_empty());
        assert!(checked.stale.is_none());
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(checked.entries, sorted);
        // Flip the top bit of the tag of an occupied slot in the middle:
        // its home moves half the table away.
        let table = index.table.read();
        let slots = table.read(&index.path, 0, table.slots() as usize).unwrap();
        let at = slots.len() / 2
            + slots[slots.len() / 2..]
                .iter()
                .position(|&s| s != 0)
                .unwrap();
        let mut top = [0u8];
        table
            .file
            .read_exact_at(&mut top, HEADER + at as u64 * 8 + 7)
            .unwrap();
        table
            .file
            .write_all_at(&[top[0] ^ 0x80], HEADER + at as u64 * 8 + 7)
            .unwrap();
        drop(table);
        let checked = check(dir.path(), 1).unwrap();
        assert!(!checked.problems.is_empty());
        assert_eq!(checked.problems[0].0, at as u64);
    }
}
