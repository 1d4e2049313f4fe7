//! The compact encodings of the ingestion trees (store format 2): attempt
//! blocks and per-learner mastery records (and, in formats 2 to 4, the
//! attempt index pages).
//!
//! Why not the codec's postcard of the domain types: sled's cost is per
//! key, not per byte (about 140 bytes on disk per small key here), and an
//! attempt stored as three keys with its ids spelt out cost 658 bytes.
//! These values pack many attempts (or states) under one key, with ids
//! interned ([`super::interner`]), times as varint deltas and attempt ids
//! front-coded against the previous one. Every value starts with a version
//! byte, as the codec's do; undecodable bytes are [`Error::Corrupt`] naming
//! the tree and key.

use crate::domain::bkt::Belief;
use crate::domain::mastery::{MasteryState, Position};
use crate::error::{Error, Result};

/// Version byte in front of every compact value (blocks;
/// mastery records have their own, [`STATES_VERSION`]).
pub const COMPACT_VERSION: u8 = 1;

/// Version byte of a mastery record as written now (store format 3):
/// times and attempt ids relative to the previous state's, a record of 30
/// skills about 40% smaller than version 1 (every field whole), which is
/// still read. A record is rewritten whole on every change, so its size
/// is also the garbage sled's log keeps per change.
pub const STATES_VERSION: u8 = 2;

/// A block is closed (the next attempt starts a new one) once its encoding
/// reaches this size: appending rewrites the block, so small blocks keep
/// the write cost of an attempt low, large ones the per-key cost.
pub const BLOCK_BYTES: usize = 1024;

/// One attempt as a block holds it: ids interned (the learner is the
/// block's key).
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// The attempt id, verbatim.
    pub attempt_id: String,
    /// Interned item id.
    pub item: u32,
    /// Interned skill ids, in the attempt's (sorted) skill order.
    pub skills: Vec<u32>,
    /// Whether the answer was right.
    pub correct: bool,
    /// Optional partial credit, bit for bit.
    pub score: Option<f64>,
    /// When the learner answered (µs).
    pub occurred_at: i64,
    /// Time spent, in milliseconds.
    pub time_spent_ms: u64,
}

/// One mastery state as a learner's record holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedState {
    /// Interned skill id.
    pub skill: u32,
    /// The state.
    pub state: MasteryState,
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint (small magnitudes, either sign,
/// take few bytes).
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Reads compact values; every method answers `None` past the end or on a
/// malformed varint.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// One byte.
    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// A LEB128 varint of at most 10 bytes. The 10th byte carries the
    /// 64th bit only: any other bit there would be dropped, so such a
    /// value is refused as malformed rather than read as another number.
    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A varint that must fit a `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.varint().and_then(|v| u32::try_from(v).ok())
    }

    /// A zigzag varint.
    pub fn signed(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// An `f64`, little-endian.
    pub fn f64(&mut self) -> Option<f64> {
        let b = self.take(8)?;
        Some(f64::from_le_bytes(b.try_into().ok()?))
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The length of the common prefix of `a` and `b`, on a char boundary of
/// both.
fn shared_prefix(a: &str, b: &str) -> usize {
    let mut n = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            return i;
        }
        n = i + ca.len_utf8();
    }
    n
}

/// Encodes a block of attempts. Each entry: attempt id front-coded against
/// the previous one (shared prefix length, then the rest), item, skills,
/// a flags byte (correct, has score), the score, the time as a delta from
/// the previous entry's, the time spent.
pub fn encode_block(attempts: &[Packed]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + attempts.len() * 24);
    out.push(COMPACT_VERSION);
    put_varint(&mut out, attempts.len() as u64);
    let (mut previous_id, mut previous_at) = ("", 0i64);
    for a in attempts {
        let shared = shared_prefix(previous_id, &a.attempt_id);
        put_varint(&mut out, shared as u64);
        put_string(&mut out, &a.attempt_id[shared..]);
        put_varint(&mut out, u64::from(a.item));
        put_varint(&mut out, a.skills.len() as u64);
        for s in &a.skills {
            put_varint(&mut out, u64::from(*s));
        }
        out.push(u8::from(a.correct) | (u8::from(a.score.is_some()) << 1));
        if let Some(score) = a.score {
            out.extend_from_slice(&score.to_le_bytes());
        }
        put_signed(&mut out, a.occurred_at.wrapping_sub(previous_at));
        put_varint(&mut out, a.time_spent_ms);
        previous_id = &a.attempt_id;
        previous_at = a.occurred_at;
    }
    out
}

/// Decodes a block; `tree` and `key` name it in the error.
pub fn decode_block(tree: &'static str, key: &str, bytes: &[u8]) -> Result<Vec<Packed>> {
    read_block(bytes).ok_or_else(|| corrupt(tree, key, bytes))
}

fn read_block(bytes: &[u8]) -> Option<Vec<Packed>> {
    let mut r = Reader::new(bytes);
    if r.byte()? != COMPACT_VERSION {
        return None;
    }
    let n = usize::try_from(r.varint()?).ok()?;
    let mut out: Vec<Packed> = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let (previous_id, previous_at) = out
            .last()
            .map_or(("", 0), |p| (p.attempt_id.as_str(), p.occurred_at));
        let shared = usize::try_from(r.varint()?).ok()?;
        let rest = r.string()?;
        let mut attempt_id = previous_id.get(..shared)?.to_string();
        attempt_id.push_str(&rest);
        let item = r.u32()?;
        let n_skills = usize::try_from(r.varint()?).ok()?;
        let mut skills = Vec::with_capacity(n_skills.min(64));
        for _ in 0..n_skills {
            skills.push(r.u32()?);
        }
        let flags = r.byte()?;
        if flags > 3 {
            return None;
        }
        let score = if flags & 2 != 0 { Some(r.f64()?) } else { None };
        let occurred_at = previous_at.wrapping_add(r.signed()?);
        out.push(Packed {
            attempt_id,
            item,
            skills,
            correct: flags & 1 != 0,
            score,
            occurred_at,
            time_spent_ms: r.varint()?,
        });
    }
    r.done().then_some(out)
}

/// Encodes a learner's mastery record ([`STATES_VERSION`]): per state,
/// skill, belief (log-odds, bit for bit), count, last attempt (time as a
/// delta from the previous state's, id front-coded against the previous
/// state's), update time (delta from the previous state's: the states
/// one write changed share it).
pub fn encode_states(states: &[PackedState]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + states.len() * 24);
    out.push(STATES_VERSION);
    put_varint(&mut out, states.len() as u64);
    let (mut previous_id, mut previous_at, mut previous_update) = ("", 0i64, 0i64);
    for p in states {
        put_varint(&mut out, u64::from(p.skill));
        out.extend_from_slice(&p.state.belief.log_odds().to_le_bytes());
        put_varint(&mut out, u64::from(p.state.attempt_count));
        put_signed(&mut out, p.state.last.occurred_at.wrapping_sub(previous_at));
        let shared = shared_prefix(previous_id, &p.state.last.attempt_id);
        put_varint(&mut out, shared as u64);
        put_string(&mut out, &p.state.last.attempt_id[shared..]);
        put_signed(&mut out, p.state.updated_at.wrapping_sub(previous_update));
        previous_id = &p.state.last.attempt_id;
        previous_at = p.state.last.occurred_at;
        previous_update = p.state.updated_at;
    }
    out
}

/// Decodes a learner's mastery record (either version).
pub fn decode_states(tree: &'static str, key: &str, bytes: &[u8]) -> Result<Vec<PackedState>> {
    read_states(bytes).ok_or_else(|| corrupt(tree, key, bytes))
}

fn read_states(bytes: &[u8]) -> Option<Vec<PackedState>> {
    let mut r = Reader::new(bytes);
    let relative = match r.byte()? {
        COMPACT_VERSION => false,
        STATES_VERSION => true,
        _ => return None,
    };
    let n = usize::try_from(r.varint()?).ok()?;
    let mut out: Vec<PackedState> = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let skill = r.u32()?;
        let belief = Belief::from_log_odds(r.f64()?);
        let attempt_count = r.u32()?;
        let (occurred_at, attempt_id, updated_at) = if relative {
            let (previous_id, previous_at, previous_update) = out.last().map_or(("", 0, 0), |p| {
                (
                    p.state.last.attempt_id.as_str(),
                    p.state.last.occurred_at,
                    p.state.updated_at,
                )
            });
            let occurred_at = previous_at.wrapping_add(r.signed()?);
            let shared = usize::try_from(r.varint()?).ok()?;
            let mut attempt_id = previous_id.get(..shared)?.to_string();
            attempt_id.push_str(&r.string()?);
            (
                occurred_at,
                attempt_id,
                previous_update.wrapping_add(r.signed()?),
            )
        } else {
            (r.signed()?, r.string()?, r.signed()?)
        };
        out.push(PackedState {
            skill,
            state: MasteryState {
                belief,
                attempt_count,
                last: Position {
                    occurred_at,
                    attempt_id,
                },
                updated_at,
            },
        });
    }
    r.done().then_some(out)
}

fn corrupt(tree: &'static str, key: &str, bytes: &[u8]) -> Error {
    let reason = match bytes.first() {
        None => "empty value".to_string(),
        Some(&COMPACT_VERSION) => "undecodable value".to_string(),
        Some(&STATES_VERSION) if tree == super::attempt_trees::MASTERY => {
            "undecodable value".to_string()
        }
        Some(v) => format!("unknown value version {v}"),
    };
    Error::Corrupt {
        tree,
        key: key.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(id: &str, at: i64, score: Option<f64>) -> Packed {
        Packed {
            attempt_id: id.into(),
            item: 3,
            skills: vec![1, 700],
            correct: score.is_none(),
            score,
            occurred_at: at,
            time_spent_ms: 12_345,
        }
    }

    #[test]
    fn blocks_round_trip_and_stay_small() {
        let block = vec![
            packed("a000000123", 1_750_000_000_000_000, None),
            packed("a000000124", 1_750_000_003_600_000, Some(0.75)),
            packed("é-x", -5, None),
            packed("é-y", i64::MAX, Some(f64::NAN.copysign(-1.0))),
            packed("", i64::MIN, None),
        ];
        let bytes = encode_block(&block);
        let back = decode_block("attempt_blocks", "k", &bytes).unwrap();
        assert_eq!(back.len(), block.len());
        for (a, b) in back.iter().zip(&block) {
            assert_eq!(a.attempt_id, b.attempt_id);
            assert_eq!(a.occurred_at, b.occurred_at);
            assert_eq!(a.score.map(f64::to_bits), b.score.map(f64::to_bits));
            assert_eq!(
                (a.item, &a.skills, a.correct),
                (b.item, &b.skills, b.correct)
            );
        }
        // A typical attempt: 2 bytes of id, item, skill, flags, 3 of time, 2 spent.
        let two = encode_block(&block[..2]);
        let one = encode_block(&block[..1]);
        assert!(two.len() - one.len() < 25, "{}", two.len() - one.len());
    }

    #[test]
    fn damaged_blocks_and_states_are_reported() {
        let bytes = encode_block(&[packed("a", 1, None)]);
        for cut in 0..bytes.len() {
            let err = decode_block("attempt_blocks", "alice#0", &bytes[..cut]).unwrap_err();
            assert!(err.to_string().contains("alice#0"), "{err}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_block("attempt_blocks", "k", &extra).is_err());
        let mut version = bytes;
        version[0] = 9;
        let err = decode_block("attempt_blocks", "k", &version).unwrap_err();
        assert!(err.to_string().contains("unknown value version 9"), "{err}");
        let states = encode_states(&[PackedState {
            skill: 2,
            state: MasteryState {
                belief: Belief::from_log_odds(f64::INFINITY),
                attempt_count: 3,
                last: Position {
                    occurred_at: -7,
                    attempt_id: "x".into(),
                },
                updated_at: 99,
            },
        }]);
        let back = decode_states("learner_mastery", "k", &states).unwrap();
        assert_eq!(back[0].state.belief.log_odds(), f64::INFINITY);
        assert_eq!(back[0].state.last.occurred_at, -7);
        assert!(decode_states("learner_mastery", "k", &states[..states.len() - 1]).is_err());
    }

    /// Records of version 1 (format 2) still read; version 2 round-trips
    /// extreme times and is smaller.
    #[test]
    fn mastery_records_of_both_versions_read() {
        let state = |skill: u32, at: i64, id: &str, updated: i64| PackedState {
            skill,
            state: MasteryState {
                belief: Belief::from_log_odds(-1.25 * f64::from(skill)),
                attempt_count: skill * 3,
                last: Position {
                    occurred_at: at,
                    attempt_id: id.into(),
                },
                updated_at: updated,
            },
        };
        let states = vec![
            state(
                0,
                1_750_000_000_000_000,
                "a000001234",
                1_790_000_000_000_000,
            ),
            state(
                1,
                1_750_000_003_600_000,
                "a000001240",
                1_790_000_000_000_000,
            ),
            state(2, i64::MIN, "é", i64::MAX),
            state(3, i64::MAX, "", i64::MIN),
            state(700, -3, "éa", 0),
        ];
        let v2 = encode_states(&states);
        assert_eq!(v2[0], STATES_VERSION);
        assert_eq!(decode_states("learner_mastery", "k", &v2).unwrap(), states);
        // Version 1, as format 2 wrote it: every field whole.
        let v1 = |states: &[PackedState]| {
            let mut out = vec![COMPACT_VERSION];
            put_varint(&mut out, states.len() as u64);
            for p in states {
                put_varint(&mut out, u64::from(p.skill));
                out.extend_from_slice(&p.state.belief.log_odds().to_le_bytes());
                put_varint(&mut out, u64::from(p.state.attempt_count));
                put_signed(&mut out, p.state.last.occurred_at);
                put_string(&mut out, &p.state.last.attempt_id);
                put_signed(&mut out, p.state.updated_at);
            }
            out
        };
        assert_eq!(
            decode_states("learner_mastery", "k", &v1(&states)).unwrap(),
            states
        );
        // Two states of one write, a few hours apart: 20 bytes less.
        let (new, old) = (encode_states(&states[..2]).len(), v1(&states[..2]).len());
        assert!(new + 15 <= old, "{new} vs {old}");
        let err = decode_states("learner_mastery", "k", &[3, 0]).unwrap_err();
        assert!(err.to_string().contains("unknown value version 3"), "{err}");
    }

    /// The longest varint (`u64::MAX`, ten bytes) reads back; a tenth byte
    /// with bits past the 64th, or an eleventh byte, is refused.
    #[test]
    fn a_varint_past_64_bits_is_refused() {
        let mut max = Vec::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(*max.last().unwrap(), 1);
        assert_eq!(Reader::new(&max).varint(), Some(u64::MAX));
        let mut high = max.clone();
        *high.last_mut().unwrap() = 0x02;
        assert_eq!(Reader::new(&high).varint(), None);
        let mut longer = max.clone();
        *longer.last_mut().unwrap() = 0x81;
        longer.push(0);
        assert_eq!(Reader::new(&longer).varint(), None);
        // In a block, such a time spent makes the block Corrupt.
        let mut bytes = encode_block(&[packed("a", 1, None)]);
        let spent = bytes.len() - 2; // 12,345 ms: two bytes
        bytes.truncate(spent);
        bytes.extend_from_slice(&[0xff; 9]);
        bytes.push(0x7f);
        let err = decode_block("attempt_blocks", "alice#0", &bytes).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoders.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_block("t", "k", &bytes);
            let _ = decode_states("t", "k", &bytes);
        }
    }
}
