//! The ingestion trees of store format 2: attempts packed in per-learner
//! blocks (`attempt_blocks`) and one mastery record per learner
//! (`learner_mastery`), ids interned (`ids`), and beside them the attempt
//! id index (a file of its own since format 5). Encodings in `compact.rs`,
//! the index in `attempt_index.rs`.
//!
//! A learner's blocks are keyed `learner 00 n` (`u32` big-endian); new
//! attempts are appended to the last block until it reaches
//! [`BLOCK_BYTES`](super::compact::BLOCK_BYTES), then a new block starts.
//! Reads by (learner, skill) decode the learner's blocks and keep that
//! skill's attempts: the blocks are the observation index.
//!
//! Writes are plain inserts in this order: index entries, then blocks, then
//! mastery. A crash between them leaves index entries without their attempt
//! (harmless: an index hit is confirmed in the blocks) or attempts without
//! their mastery (the write-ahead log replay rebuilds it, and skips the
//! attempts the blocks hold, see `Store::commit_attempts`).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::attempt_index::{AttemptIndex, Entry, Key};
use super::compact::{self, BLOCK_BYTES, Packed, PackedState};
use super::interner::{Interner, Kind};
use super::keys::SEP;
use crate::domain::bkt::Observation;
use crate::domain::mastery::{Attempt, MasteryState, Position};
use crate::error::{Error, Result};

/// Rows to write: (key, new value, or `None` to remove the key).
pub type Rewrites = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Tree of attempt blocks.
pub const BLOCKS: &str = "attempt_blocks";
/// Tree of the attempt id index up to store format 4 (a file since).
pub const INDEX: &str = "attempt_index";
/// Tree of per-learner mastery records.
pub const MASTERY: &str = "learner_mastery";
/// Tree of interned ids.
pub const IDS: &str = "ids";

/// The compact ingestion trees and the interned ids they use.
pub struct AttemptTrees {
    /// `attempt_blocks`.
    pub blocks: sled::Tree,
    /// The attempt id index (`attempt-index`).
    pub index: AttemptIndex,
    /// `learner_mastery`.
    pub mastery: sled::Tree,
    /// Interned ids (`ids`).
    pub ids: Arc<Interner>,
    /// Where each learner's last block was when last appended to
    /// ([`LastBlockHints`]).
    hints: LastBlockHints,
}

/// Slots of [`LastBlockHints`] (8 bytes each: 512 KiB).
const HINT_SLOTS: usize = 1 << 16;

/// Remembered last block numbers, so that an append seeks a learner's
/// last block from there rather than scanning every block of the learner
/// (a scan that grows with the learner's history: 20 blocks, about 17 KiB
/// copied, for 1,000 attempts). One slot per learner number modulo
/// [`HINT_SLOTS`], holding (learner number, block number): a fixed 512
/// KiB, outside the budget's shares. A hint is never trusted: the last
/// block is the highest key at or past it, and when none is there (the
/// block was removed by a retraction or an erasure, or the slot holds
/// another learner) the whole prefix is scanned as before.
struct LastBlockHints(Box<[std::sync::atomic::AtomicU64]>);

impl LastBlockHints {
    fn new() -> Self {
        Self((0..HINT_SLOTS).map(|_| Default::default()).collect())
    }

    fn slot(&self, learner: u32) -> &std::sync::atomic::AtomicU64 {
        &self.0[learner as usize % HINT_SLOTS]
    }

    /// The block number to seek from for `learner` (0: the whole prefix).
    fn get(&self, learner: u32) -> u32 {
        let packed = self
            .slot(learner)
            .load(std::sync::atomic::Ordering::Relaxed);
        if (packed >> 32) as u32 == learner {
            packed as u32
        } else {
            0
        }
    }

    fn set(&self, learner: u32, block: u32) {
        self.slot(learner).store(
            (u64::from(learner) << 32) | u64::from(block),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The prefix of a learner's block keys.
pub fn block_prefix(learner: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(learner.len() + 5);
    key.extend_from_slice(learner.as_bytes());
    key.push(SEP);
    key
}

/// Key of block `n` of a learner.
pub fn block_key(learner: &str, n: u32) -> Vec<u8> {
    let mut key = block_prefix(learner);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// (learner, block number) of a block key.
pub fn parse_block_key(key: &[u8]) -> Option<(&str, u32)> {
    let split = key.len().checked_sub(5)?;
    if key[split] != SEP {
        return None;
    }
    let learner = std::str::from_utf8(&key[..split]).ok()?;
    let n = u32::from_be_bytes(key[split + 1..].try_into().ok()?);
    Some((learner, n))
}

/// Printable form of a block key: `learner#n`.
pub fn display_block(key: &[u8]) -> String {
    match parse_block_key(key) {
        Some((learner, n)) => format!("{learner}#{n}"),
        None => super::keys::display(key),
    }
}

/// The index entry under `key` of every attempt in `blocks` (a block of
/// a learner with no number, damage `spoc verify` reports, gives none).
fn index_of_blocks(blocks: &sled::Tree, ids: &Interner, hash: Key) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in blocks.iter() {
        let (key, value) = entry?;
        let Some(learner) = parse_block_key(&key).and_then(|(l, _)| ids.get(Kind::Learner, l))
        else {
            continue;
        };
        for p in compact::decode_block(BLOCKS, &display_block(&key), &value)? {
            out.push(hash.entry(&p.attempt_id, learner));
        }
    }
    Ok(out)
}

impl AttemptTrees {
    /// Opens (or creates) the trees of `db` and loads the interned ids;
    /// opens the attempt index of the data folder `dir`, rebuilt from the
    /// blocks when it is missing, damaged or older than the store's
    /// checkpoint `generation`.
    pub fn open(db: &sled::Db, dir: &std::path::Path, generation: u64) -> Result<Self> {
        let blocks = db.open_tree(BLOCKS)?;
        let ids = Arc::new(Interner::open(db.open_tree(IDS)?)?);
        let index = AttemptIndex::open(dir, generation, |key| index_of_blocks(&blocks, &ids, key))?;
        Ok(Self {
            blocks,
            index,
            mastery: db.open_tree(MASTERY)?,
            ids,
            hints: LastBlockHints::new(),
        })
    }

    /// Interns the learners, items and skills of `attempts` (before their
    /// rows can reach sled).
    pub fn intern(&self, attempts: &[Attempt]) -> Result<()> {
        for a in attempts {
            self.ids.intern(Kind::Learner, &a.learner_id)?;
            self.ids.intern(Kind::Item, &a.item_id)?;
            for skill in &a.skill_ids {
                self.ids.intern(Kind::Skill, skill)?;
            }
        }
        Ok(())
    }

    fn number(&self, kind: Kind, id: &str) -> Result<u32> {
        self.ids
            .get(kind, id)
            .ok_or_else(|| Error::Storage(format!("{kind:?} {id} was not interned")))
    }

    /// An attempt as a block holds it.
    pub fn pack(&self, a: &Attempt) -> Result<Packed> {
        Ok(Packed {
            attempt_id: a.attempt_id.clone(),
            item: self.number(Kind::Item, &a.item_id)?,
            skills: a
                .skill_ids
                .iter()
                .map(|s| self.number(Kind::Skill, s))
                .collect::<Result<_>>()?,
            correct: a.correct,
            score: a.score,
            occurred_at: a.occurred_at,
            time_spent_ms: a.time_spent_ms,
        })
    }

    /// The attempt a block entry of `learner` stands for; `key` names the
    /// block if a number is unknown.
    pub fn unpack(&self, learner: &str, p: Packed, key: &[u8]) -> Result<Attempt> {
        let name = |kind, n| {
            self.ids.name(kind, n).ok_or_else(|| Error::Corrupt {
                tree: BLOCKS,
                key: display_block(key),
                reason: format!("attempt {} names unknown {kind:?} number {n}", p.attempt_id),
            })
        };
        let item_id = name(Kind::Item, p.item)?.to_string();
        let skill_ids = p
            .skills
            .iter()
            .map(|s| name(Kind::Skill, *s).map(|n| n.to_string()))
            .collect::<Result<_>>()?;
        Ok(Attempt {
            attempt_id: p.attempt_id,
            learner_id: learner.to_string(),
            item_id,
            skill_ids,
            correct: p.correct,
            score: p.score,
            occurred_at: p.occurred_at,
            time_spent_ms: p.time_spent_ms,
        })
    }

    /// A learner's blocks, decoded, in block order.
    pub fn learner_blocks(&self, learner: &str) -> Result<Vec<(Vec<u8>, Vec<Packed>)>> {
        self.blocks
            .scan_prefix(block_prefix(learner))
            .map(|entry| {
                let (key, value) = entry?;
                let packed = compact::decode_block(BLOCKS, &display_block(&key), &value)?;
                Ok((key.to_vec(), packed))
            })
            .collect()
    }

    /// Every stored attempt of a learner as the blocks hold it (ids
    /// interned), in the order stored: for readers that need no names but
    /// the skills', without an allocation per id per attempt.
    pub fn learner_packed(&self, learner: &str) -> Result<Vec<Packed>> {
        Ok(self
            .learner_blocks(learner)?
            .into_iter()
            .flat_map(|(_, packed)| packed)
            .collect())
    }

    /// The name of interned number `n` of `kind`, met in a block of
    /// `learner`.
    pub fn name_in(&self, learner: &str, kind: Kind, n: u32) -> Result<Arc<str>> {
        self.ids.name(kind, n).ok_or_else(|| Error::Corrupt {
            tree: BLOCKS,
            key: learner.to_string(),
            reason: format!("an attempt names unknown {kind:?} number {n}"),
        })
    }

    /// Every stored attempt of a learner, in the order stored.
    pub fn learner_attempts(&self, learner: &str) -> Result<Vec<Attempt>> {
        let mut out = Vec::new();
        for (key, packed) in self.learner_blocks(learner)? {
            for p in packed {
                out.push(self.unpack(learner, p, &key)?);
            }
        }
        Ok(out)
    }

    /// The stored observations of a learner on each of `skills` (one list
    /// per skill, in the order given, each unsorted): one read of the
    /// learner's blocks for all of them, where a read per skill decodes
    /// every block again.
    pub fn observations_of_skills(
        &self,
        learner: &str,
        skills: &[&str],
    ) -> Result<Vec<Vec<(Position, Observation)>>> {
        let numbers: Vec<Option<u32>> = skills
            .iter()
            .map(|s| self.ids.get(Kind::Skill, s))
            .collect();
        let mut out = vec![Vec::new(); skills.len()];
        if numbers.iter().all(Option::is_none) {
            return Ok(out);
        }
        for (_, packed) in self.learner_blocks(learner)? {
            for mut p in packed {
                let skills = std::mem::take(&mut p.skills);
                let mut wanted = numbers
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.is_some_and(|n| skills.contains(&n)))
                    .map(|(i, _)| i);
                let Some(mut at) = wanted.next() else {
                    continue;
                };
                // A copy for every list but the last, which takes the row.
                let row = observation(p);
                for next in wanted {
                    out[at].push(row.clone());
                    at = next;
                }
                out[at].push(row);
            }
        }
        Ok(out)
    }

    /// The stored attempt under `id`, found through the index.
    pub fn find(&self, id: &str) -> Result<Option<Attempt>> {
        for n in self.index.candidates(id)? {
            let Some(learner) = self.ids.name(Kind::Learner, n) else {
                continue; // an erased learner's leftover
            };
            for (key, packed) in self.learner_blocks(&learner)? {
                if let Some(p) = packed.into_iter().find(|p| p.attempt_id == id) {
                    return self.unpack(&learner, p, &key).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Index entries of attempts (for adding or removing).
    pub fn index_entries<'a>(
        &self,
        attempts: impl IntoIterator<Item = &'a Attempt>,
    ) -> Result<Vec<Entry>> {
        let key = self.index.key();
        attempts
            .into_iter()
            .map(|a| Ok(key.entry(&a.attempt_id, self.number(Kind::Learner, &a.learner_id)?)))
            .collect()
    }

    /// Appends new attempts: index entries first, then each learner's last
    /// block (and new ones past [`BLOCK_BYTES`]). Attempts of one learner
    /// go in position order. An attempt the learner's last block already
    /// holds is skipped, and with `retry` (the rows of a failed apply,
    /// which may have written some blocks) one any block holds: appending
    /// is then idempotent, as the inserts of format 1 were.
    pub fn append(&self, attempts: &[&Attempt], retry: bool) -> Result<()> {
        self.index
            .add(&self.index_entries(attempts.iter().copied())?)?;
        let mut by_learner: BTreeMap<&str, Vec<&Attempt>> = BTreeMap::new();
        for a in attempts {
            by_learner.entry(&a.learner_id).or_default().push(a);
        }
        for (learner, mut new) in by_learner {
            if retry {
                let held: std::collections::HashSet<String> = self
                    .learner_blocks(learner)?
                    .into_iter()
                    .flat_map(|(_, packed)| packed.into_iter().map(|p| p.attempt_id))
                    .collect();
                new.retain(|a| !held.contains(&a.attempt_id));
            }
            new.sort_by(|a, b| (a.occurred_at, &a.attempt_id).cmp(&(b.occurred_at, &b.attempt_id)));
            let (mut n, mut block) = match self.last_block(learner)? {
                Some((key, value)) => {
                    let shown = display_block(&key);
                    let n =
                        parse_block_key(&key)
                            .map(|(_, n)| n)
                            .ok_or_else(|| Error::Corrupt {
                                tree: BLOCKS,
                                key: shown.clone(),
                                reason: "malformed key".into(),
                            })?;
                    (n, compact::decode_block(BLOCKS, &shown, &value)?)
                }
                None => (0, Vec::new()),
            };
            new.retain(|a| !block.iter().any(|p| p.attempt_id == a.attempt_id));
            let mut size = compact::encode_block(&block).len();
            let mut dirty = false;
            for a in new {
                if size >= BLOCK_BYTES {
                    if dirty {
                        self.blocks
                            .insert(block_key(learner, n), compact::encode_block(&block))?;
                    }
                    n = n.checked_add(1).ok_or_else(|| Error::Corrupt {
                        tree: BLOCKS,
                        key: super::keys::display(&block_key(learner, n)),
                        reason: "block number overflow".into(),
                    })?;
                    block.clear();
                }
                block.push(self.pack(a)?);
                dirty = true;
                size = compact::encode_block(&block).len();
            }
            if dirty {
                self.blocks
                    .insert(block_key(learner, n), compact::encode_block(&block))?;
            }
            if let Some(number) = self.ids.get(Kind::Learner, learner) {
                self.hints.set(number, n);
            }
        }
        Ok(())
    }

    /// A learner's last block (highest number), raw. A forward scan of
    /// the learner's few keys: sled 0.34's reverse scan (`next_back`, also
    /// behind `get_lt`) seeks its end from the root, then again for the
    /// predecessor, copying a leaf each time (it cost three quarters of an
    /// apply in the attempt index, see `attempt_index.rs`); point reads by
    /// number would stop at a gap a retraction left (an emptied block is
    /// removed). The scan starts at the block the last append left
    /// ([`LastBlockHints`]), and covers the whole prefix when nothing is
    /// there.
    fn last_block(&self, learner: &str) -> Result<Option<(sled::IVec, sled::IVec)>> {
        let hint = self
            .ids
            .get(Kind::Learner, learner)
            .map_or(0, |number| self.hints.get(number));
        match self.last_block_from(learner, hint)? {
            None if hint > 0 => self.last_block_from(learner, 0),
            found => Ok(found),
        }
    }

    /// The learner's highest block numbered `from` or more.
    fn last_block_from(
        &self,
        learner: &str,
        from: u32,
    ) -> Result<Option<(sled::IVec, sled::IVec)>> {
        let prefix = block_prefix(learner);
        let mut last = None;
        for entry in self.blocks.range(block_key(learner, from)..) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            last = Some((key, value));
        }
        Ok(last)
    }

    /// A learner's mastery record, decoded (empty if none).
    pub fn learner_record(&self, learner: &str) -> Result<Vec<PackedState>> {
        match self.mastery.get(learner.as_bytes())? {
            Some(bytes) => compact::decode_states(MASTERY, learner, &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// A learner's stored mastery states by skill id.
    pub fn learner_states(&self, learner: &str) -> Result<BTreeMap<String, MasteryState>> {
        self.learner_record(learner)?
            .into_iter()
            .map(|p| Ok((self.skill_name(learner, p.skill)?, p.state)))
            .collect()
    }

    fn skill_name(&self, learner: &str, n: u32) -> Result<String> {
        self.ids
            .name(Kind::Skill, n)
            .map(|s| s.to_string())
            .ok_or_else(|| Error::Corrupt {
                tree: MASTERY,
                key: learner.to_string(),
                reason: format!("names unknown skill number {n}"),
            })
    }

    /// The stored mastery of one (learner, skill).
    pub fn state(&self, learner: &str, skill: &str) -> Result<Option<MasteryState>> {
        let Some(n) = self.ids.get(Kind::Skill, skill) else {
            return Ok(None);
        };
        Ok(self
            .learner_record(learner)?
            .into_iter()
            .find(|p| p.skill == n)
            .map(|p| p.state))
    }

    /// A learner's record with `changes` made (a state, or `None` to drop
    /// it): the new value, or `None` when no state is left.
    pub fn changed_record(
        &self,
        learner: &str,
        changes: &[(&str, Option<&MasteryState>)],
    ) -> Result<Option<Vec<u8>>> {
        let mut record: BTreeMap<u32, MasteryState> = self
            .learner_record(learner)?
            .into_iter()
            .map(|p| (p.skill, p.state))
            .collect();
        for (skill, state) in changes {
            let n = self.ids.intern(Kind::Skill, skill)?;
            match state {
                Some(state) => record.insert(n, (*state).clone()),
                None => record.remove(&n),
            };
        }
        if record.is_empty() {
            return Ok(None);
        }
        let packed: Vec<PackedState> = record
            .into_iter()
            .map(|(skill, state)| PackedState { skill, state })
            .collect();
        Ok(Some(compact::encode_states(&packed)))
    }

    /// Writes mastery states, one record rewrite per learner (plain
    /// inserts; the caller keeps other writers of these learners' records
    /// away).
    pub fn put_states<'a>(
        &self,
        rows: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a MasteryState>)>,
    ) -> Result<()> {
        let mut by_learner: BTreeMap<&str, Vec<(&str, Option<&MasteryState>)>> = BTreeMap::new();
        for (learner, skill, state) in rows {
            by_learner.entry(learner).or_default().push((skill, state));
        }
        for (learner, changes) in by_learner {
            match self.changed_record(learner, &changes)? {
                Some(value) => self.mastery.insert(learner.as_bytes(), value)?,
                None => self.mastery.remove(learner.as_bytes())?,
            };
        }
        Ok(())
    }

    /// Visits every learner's stored attempts, in learner id order, one
    /// learner in memory at a time.
    pub fn for_each_learner(
        &self,
        mut visit: impl FnMut(&str, Vec<Attempt>) -> Result<()>,
    ) -> Result<()> {
        self.for_each_learner_packed(|learner, packed| {
            let attempts = packed
                .into_iter()
                .map(|p| self.unpack(learner, p, learner.as_bytes()))
                .collect::<Result<_>>()?;
            visit(learner, attempts)
        })
    }

    /// Visits every learner's stored attempts as the blocks hold them (ids
    /// interned), in learner id order. A second thread scans and decodes
    /// the blocks up to [`READ_AHEAD`] attempts ahead of `visit` (at least
    /// one learner, however many attempts it has): the fit's training set
    /// is one scan of every block, and decoding (an attempt id allocated
    /// per attempt) was half of reading it.
    pub fn for_each_learner_packed(
        &self,
        mut visit: impl FnMut(&str, Vec<Packed>) -> Result<()>,
    ) -> Result<()> {
        let (send, receive) = std::sync::mpsc::channel();
        let ahead = Ahead::default();
        std::thread::scope(|scope| {
            let blocks = &self.blocks;
            let ahead = &ahead;
            std::thread::Builder::new()
                .name("spoc-block-scan".into())
                .spawn_scoped(scope, move || {
                    // A send fails once the visitor stopped: nothing to do.
                    let _ = scan_learners(blocks, |learner, packed| {
                        ahead.reserve(packed.len())?;
                        send.send(Ok((learner, packed)))
                            .map_err(|_| Error::Storage("scan abandoned".into()))
                    })
                    .map_err(|err| send.send(Err(err)));
                })
                .map_err(|err| Error::Storage(format!("cannot start the block scan: {err}")))?;
            // The scan stops waiting once the visitor stops, whatever the
            // reason (an error, a panic).
            let _stop = StopOnDrop(ahead);
            for next in receive {
                let (learner, packed) = next?;
                ahead.release(packed.len());
                visit(&learner, packed)?;
            }
            Ok(())
        })
    }
}

/// Decoded attempts that may wait for the visitor of
/// [`AttemptTrees::for_each_learner_packed`]: about 130 bytes each decoded
/// (the struct, its id and skill list), so about 0.5 MiB; bounded by
/// attempts rather than learners, as one learner may hold thousands.
const READ_AHEAD: usize = 4096;

/// The attempts decoded and not yet visited, and whether the visitor
/// stopped.
#[derive(Default)]
struct Ahead {
    held: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Ahead {
    /// Waits until `n` more attempts fit in [`READ_AHEAD`] (or none wait);
    /// an error once the visitor stopped.
    fn reserve(&self, n: usize) -> Result<()> {
        let mut held = self.held.lock();
        while held.0 > 0 && held.0 + n > READ_AHEAD && !held.1 {
            self.changed.wait(&mut held);
        }
        if held.1 {
            return Err(Error::Storage("scan abandoned".into()));
        }
        held.0 += n;
        Ok(())
    }

    /// `n` attempts left the queue.
    fn release(&self, n: usize) {
        self.held.lock().0 -= n;
        self.changed.notify_all();
    }
}

/// Marks the visitor stopped when dropped.
struct StopOnDrop<'a>(&'a Ahead);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.held.lock().1 = true;
        self.0.changed.notify_all();
    }
}

/// Every learner's decoded blocks, in key order, one learner at a time.
fn scan_learners(
    blocks: &sled::Tree,
    mut visit: impl FnMut(String, Vec<Packed>) -> Result<()>,
) -> Result<()> {
    let mut current: Option<(String, Vec<Packed>)> = None;
    for entry in blocks.iter() {
        let (key, value) = entry?;
        let shown = || display_block(&key);
        let (learner, _) = parse_block_key(&key).ok_or_else(|| Error::Corrupt {
            tree: BLOCKS,
            key: shown(),
            reason: "malformed key".into(),
        })?;
        if current.as_ref().is_none_or(|(l, _)| l != learner) {
            if let Some((l, attempts)) = current.take() {
                visit(l, attempts)?;
            }
            current = Some((learner.to_string(), Vec::new()));
        }
        let (_, attempts) = current.as_mut().expect("set above");
        attempts.extend(compact::decode_block(BLOCKS, &shown(), &value)?);
    }
    if let Some((l, attempts)) = current {
        visit(l, attempts)?;
    }
    Ok(())
}

/// The observation a block entry carries, at its position.
pub fn observation(p: Packed) -> (Position, Observation) {
    (
        Position {
            occurred_at: p.occurred_at,
            attempt_id: p.attempt_id,
        },
        Observation {
            correct: p.correct,
            score: p.score,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: &str, learner: &str, at: i64, skill: &str) -> Attempt {
        Attempt {
            learner_id: learner.into(),
            skill_ids: vec![skill.into()],
            ..crate::domain::mastery::test_attempt(id, at, at % 3 == 0)
        }
    }

    /// Attempt trees over a new sled in a temporary folder (kept alive by
    /// the returned guard).
    fn open_trees() -> (tempfile::TempDir, AttemptTrees) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let trees = AttemptTrees::open(&db, dir.path(), 0).unwrap();
        (dir, trees)
    }

    /// Appends `attempts` (interned already) `batch` at a time, as
    /// ingestion does.
    fn append_in_batches(trees: &AttemptTrees, attempts: &[Attempt], batch: usize) {
        for chunk in attempts.chunks(batch) {
            trees
                .append(&chunk.iter().collect::<Vec<_>>(), false)
                .unwrap();
        }
    }

    /// Blocks roll over past their size, every attempt is found by id and
    /// by (learner, skill), and appending again adds nothing.
    #[test]
    fn appends_roll_over_stay_findable_and_are_idempotent() {
        let (_dir, trees) = open_trees();
        let all: Vec<Attempt> = (0..300)
            .map(|i| {
                attempt(
                    &format!("att-{i:05}"),
                    ["l1", "l2"][i % 2],
                    i as i64 * 7,
                    ["a", "b"][i % 3 % 2],
                )
            })
            .collect();
        trees.intern(&all).unwrap();
        append_in_batches(&trees, &all, 40);
        assert!(trees.learner_blocks("l1").unwrap().len() > 1, "rolled over");
        for a in all.iter().step_by(13) {
            assert_eq!(trees.find(&a.attempt_id).unwrap().as_ref(), Some(a));
        }
        assert!(trees.find("att-99999").unwrap().is_none());
        let l1_a = all
            .iter()
            .filter(|a| a.learner_id == "l1" && a.skill_ids[0] == "a")
            .count();
        let l1 = trees.observations_of_skills("l1", &["a"]).unwrap();
        assert_eq!(l1[0].len(), l1_a);
        // A failed apply's rows applied again: nothing doubles.
        trees.append(&all.iter().collect::<Vec<_>>(), true).unwrap();
        let last = all.last().unwrap();
        trees.append(&[last], false).unwrap();
        assert_eq!(
            trees.learner_attempts("l1").unwrap().len()
                + trees.learner_attempts("l2").unwrap().len(),
            all.len()
        );
    }

    /// One read for several skills gives, per skill in the order asked,
    /// what a read of that skill alone gives: an attempt testing two of
    /// them is in both lists, a skill never seen has none.
    #[test]
    fn observations_of_several_skills_match_one_read_per_skill() {
        let (_dir, trees) = open_trees();
        let all: Vec<Attempt> = (0..120)
            .map(|i| {
                let mut a = attempt(&format!("att-{i:05}"), ["l1", "l2"][i % 2], i as i64, "a");
                a.skill_ids = match i % 3 {
                    0 => vec!["a".into()],
                    1 => vec!["a".into(), "b".into()],
                    _ => vec!["b".into(), "c".into()],
                };
                a
            })
            .collect();
        trees.intern(&all).unwrap();
        append_in_batches(&trees, &all, 25);
        let asked = ["b", "never", "a", "c"];
        let together = trees.observations_of_skills("l1", &asked).unwrap();
        assert_eq!(together.len(), asked.len());
        for (skill, rows) in asked.iter().zip(&together) {
            let expected = all
                .iter()
                .filter(|a| a.learner_id == "l1" && a.skill_ids.iter().any(|s| s == skill))
                .count();
            assert_eq!(rows.len(), expected, "skill {skill}");
            let alone = trees.observations_of_skills("l1", &[skill]).unwrap();
            assert_eq!(rows, &alone[0]);
        }
        assert!(together[1].is_empty());
        assert!(together[0].len() > 20 && together[2].len() > 20);
    }

    /// The last block is found from the remembered hint, and a stale hint
    /// (its block removed, or the slot taken by another learner) falls
    /// back to the whole prefix: appends keep going to the real last block.
    #[test]
    fn a_stale_last_block_hint_never_misplaces_an_append() {
        let (_dir, trees) = open_trees();
        let all: Vec<Attempt> = (0..400)
            .map(|i| attempt(&format!("att-{i:05}"), "l1", i as i64 * 7, "a"))
            .collect();
        trees.intern(&all).unwrap();
        append_in_batches(&trees, &all[..300], 30);
        let numbers = |t: &AttemptTrees| -> Vec<u32> {
            t.blocks
                .scan_prefix(block_prefix("l1"))
                .map(|e| parse_block_key(&e.unwrap().0).unwrap().1)
                .collect()
        };
        let blocks = numbers(&trees);
        let last = *blocks.last().unwrap();
        assert!(last >= 2, "rolled over: {blocks:?}");
        let l1 = trees.ids.get(Kind::Learner, "l1").unwrap();
        assert_eq!(trees.hints.get(l1), last, "the append left its hint");
        let found = trees.last_block("l1").unwrap().unwrap();
        assert_eq!(parse_block_key(&found.0).unwrap().1, last);

        // The last block removed (as a retraction that empties it does):
        // the hint points past every key; the one before is found.
        let removed = trees.blocks.remove(block_key("l1", last)).unwrap().unwrap();
        let found = trees.last_block("l1").unwrap().unwrap();
        assert_eq!(parse_block_key(&found.0).unwrap().1, last - 1);
        trees.blocks.insert(block_key("l1", last), removed).unwrap();

        // The slot taken by another learner: the whole prefix is scanned.
        trees.hints.set(l1 + HINT_SLOTS as u32, 1);
        assert_eq!(trees.hints.get(l1), 0);
        let found = trees.last_block("l1").unwrap().unwrap();
        assert_eq!(parse_block_key(&found.0).unwrap().1, last);

        // A hint below the last block (an older one): still the last.
        trees.hints.set(l1, 1);
        trees
            .append(&all[300..].iter().collect::<Vec<_>>(), false)
            .unwrap();
        let after = numbers(&trees);
        assert_eq!(
            &after[..blocks.len()],
            &blocks[..],
            "no block rewritten out of place"
        );
        assert_eq!(trees.learner_attempts("l1").unwrap().len(), all.len());
        let mut ids: Vec<String> = trees
            .learner_blocks("l1")
            .unwrap()
            .into_iter()
            .flat_map(|(_, packed)| packed.into_iter().map(|p| p.attempt_id))
            .collect();
        let stored = ids.clone();
        ids.sort();
        assert_eq!(stored, ids, "attempts in order across blocks");
    }

    /// The read-ahead holds back the scan past [`READ_AHEAD`] attempts and
    /// lets it go when the visitor stops early: every attempt is visited
    /// once, and a visitor's error ends the scan (no hang).
    #[test]
    fn the_read_ahead_scan_visits_all_and_stops_with_the_visitor() {
        let (_dir, trees) = open_trees();
        let learners = 12;
        let all: Vec<Attempt> = (0..READ_AHEAD + 900)
            .map(|i| {
                attempt(
                    &format!("att-{i:05}"),
                    &format!("l{}", i % learners),
                    i as i64,
                    "a",
                )
            })
            .collect();
        trees.intern(&all).unwrap();
        trees
            .append(&all.iter().collect::<Vec<_>>(), false)
            .unwrap();
        let mut seen = 0;
        trees
            .for_each_learner_packed(|_, packed| {
                seen += packed.len();
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, all.len());
        let mut visits = 0;
        let err = trees
            .for_each_learner_packed(|_, _| {
                visits += 1;
                if visits == 2 {
                    return Err(Error::Storage("stop".into()));
                }
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "storage failure: stop");
        assert_eq!(visits, 2);
    }
}
