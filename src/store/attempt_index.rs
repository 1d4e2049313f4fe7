//! The `attempt_index` tree: which learner holds an attempt id, for the
//! lookups by id alone (a resend's duplicate check, a retraction).
//!
//! Why not one key per attempt id: sled costs about 140 bytes on disk per
//! small key, the whole budget of an attempt. So ids are hashed (FNV-1a,
//! then SplitMix64: stable across releases) into 2^20 buckets, and a
//! bucket is a run of pages (`bucket` `u32` BE, `page` `u32` BE), each
//! holding up to [`PAGE_ENTRIES`] entries of (16-bit fingerprint of the id,
//! learner number, see `interner.rs`), appended to the first page with
//! room. Many
//! small buckets rather than few large ones: an append rewrites its page,
//! so the page's size is the garbage sled's log keeps per attempt, and a
//! lookup reads the bucket's pages (one page, about ten entries, at 10M
//! attempts). A lookup
//! reads its bucket's pages and gives the learners whose fingerprint
//! matches: candidates only, which the caller confirms in their attempt
//! blocks. An entry whose attempt is not in the blocks (a crash between the
//! two writes) or one present twice is harmless for that reason.
//!
//! Why 16 bits of fingerprint (store format 4; format 3 wrote 32, page
//! version 1): every append rewrites its page whole, and sled's log keeps
//! the old copy until it cleans the segment, so each byte of a page costs
//! many on disk. With the bucket's 20 bits, 36 bits of the hash tell ids
//! apart: at 10M attempts (about ten entries a bucket) one lookup in 6,500
//! finds a false candidate, which costs a read of that learner's blocks.
//! The entry shrinks from 7 to 5 bytes (learners below 2M), and sled's
//! folder by about 5% under the scale bench's load (measured on sled
//! alone, 3M attempts: 204 to 193 bytes per attempt). A version-1 page is
//! read as it is, its fingerprints cut to their top 16 bits (the new
//! fingerprint is those bits of the same hash), and written in version 2
//! the next time an append or a removal rewrites it.
use std::collections::BTreeMap;

use super::compact::{COMPACT_VERSION, Reader, put_varint};
use crate::domain::hashing::{fnv1a, splitmix};
use crate::error::{Error, Result};

/// A page's entries: (fingerprint, learner number).
pub type Entries = Vec<(u16, u32)>;

/// Version byte of a page as written now: 16-bit fingerprints. Version 1
/// ([`COMPACT_VERSION`], store format 3 and before) held 32 bits.
pub const PAGE_VERSION: u8 = 2;

/// Rows to write: (key, new value, or `None` to remove the key).
pub type Rewrites = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Entries per page: a bucket outgrowing it (past about 60M attempts)
/// gets a second page rather than an ever larger value to rewrite.
pub const PAGE_ENTRIES: usize = 64;

/// Where an attempt id goes: its bucket and fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// The bucket (the hash's top 20 bits).
    pub bucket: u32,
    /// The next 16 bits of the hash.
    pub fingerprint: u16,
}

/// The slot of an attempt id.
pub fn slot(attempt_id: &str) -> Slot {
    let h = splitmix(fnv1a(attempt_id));
    Slot {
        bucket: (h >> 44) as u32,
        fingerprint: (h >> 28) as u16,
    }
}

/// Key of page `page` of `bucket`.
pub fn page_key(bucket: u32, page: u32) -> [u8; 8] {
    let mut key = [0; 8];
    key[..4].copy_from_slice(&bucket.to_be_bytes());
    key[4..].copy_from_slice(&page.to_be_bytes());
    key
}

/// Printable form of a page key for error messages: `bucket/page`.
pub fn display(key: &[u8]) -> String {
    match <[u8; 8]>::try_from(key) {
        Ok(k) => format!(
            "{}/{}",
            u32::from_be_bytes([k[0], k[1], k[2], k[3]]),
            u32::from_be_bytes([k[4], k[5], k[6], k[7]])
        ),
        Err(_) => super::keys::display(key),
    }
}

/// Encodes a page ([`PAGE_VERSION`]).
pub fn encode(entries: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * 5);
    out.push(PAGE_VERSION);
    for (fingerprint, learner) in entries {
        out.extend_from_slice(&fingerprint.to_be_bytes());
        put_varint(&mut out, u64::from(*learner));
    }
    out
}

/// Decodes a page of either version: (fingerprint, learner number)
/// entries.
pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Entries> {
    let read = || {
        let mut r = Reader::new(bytes);
        let wide = match r.byte()? {
            COMPACT_VERSION => true,
            PAGE_VERSION => false,
            _ => return None,
        };
        let mut out = Vec::new();
        while !r.done() {
            let fp = if wide {
                (u32::from_be_bytes(r.take(4)?.try_into().ok()?) >> 16) as u16
            } else {
                u16::from_be_bytes(r.take(2)?.try_into().ok()?)
            };
            out.push((fp, r.u32()?));
        }
        Some(out)
    };
    read().ok_or_else(|| Error::Corrupt {
        tree: "attempt_index",
        key: display(key),
        reason: "undecodable page".into(),
    })
}

/// The pages of a bucket, in order, decoded.
pub fn pages(tree: &sled::Tree, bucket: u32) -> Result<Vec<(Vec<u8>, Entries)>> {
    tree.scan_prefix(bucket.to_be_bytes())
        .map(|entry| {
            let (key, value) = entry?;
            Ok((key.to_vec(), decode(&key, &value)?))
        })
        .collect()
}

/// The learner numbers that may hold `attempt_id` (to be confirmed).
pub fn candidates(tree: &sled::Tree, attempt_id: &str) -> Result<Vec<u32>> {
    let slot = slot(attempt_id);
    let mut out = Vec::new();
    for entry in tree.scan_prefix(slot.bucket.to_be_bytes()) {
        let (key, value) = entry?;
        for (fp, learner) in decode(&key, &value)? {
            if fp == slot.fingerprint && !out.contains(&learner) {
                out.push(learner);
            }
        }
    }
    Ok(out)
}

/// `entries` as (fingerprint, learner) pairs grouped by bucket.
fn by_bucket(entries: &[(Slot, u32)]) -> BTreeMap<u32, Vec<(u16, u32)>> {
    let mut out: BTreeMap<u32, Vec<(u16, u32)>> = BTreeMap::new();
    for (slot, learner) in entries {
        out.entry(slot.bucket)
            .or_default()
            .push((slot.fingerprint, *learner));
    }
    out
}

/// Appends entries to their buckets' first pages with room (plain
/// inserts, one per page touched).
pub fn add(tree: &sled::Tree, entries: &[(Slot, u32)]) -> Result<()> {
    for (bucket, new) in by_bucket(entries) {
        let (mut page, mut held) = open_page(tree, bucket, 0)?;
        for entry in new {
            if held.len() >= PAGE_ENTRIES {
                tree.insert(page_key(bucket, page), encode(&held))?;
                (page, held) = open_page(tree, bucket, next_page(bucket, page)?)?;
            }
            held.push(entry);
        }
        tree.insert(page_key(bucket, page), encode(&held))?;
    }
    Ok(())
}

/// The first page of `bucket` from `page` on that has room: its number
/// and entries (none for a page not written yet). Point reads, one per
/// full page (a bucket has one page below about 60M attempts): sled's
/// reverse scan to find the last page cost three quarters of applying
/// ingested rows. A page emptied by a removal leaves a gap that later
/// entries fill; lookups read every page of the bucket either way.
fn open_page(tree: &sled::Tree, bucket: u32, mut page: u32) -> Result<(u32, Entries)> {
    loop {
        let key = page_key(bucket, page);
        let held = match tree.get(key)? {
            Some(value) => decode(&key, &value)?,
            None => Vec::new(),
        };
        if held.len() < PAGE_ENTRIES {
            return Ok((page, held));
        }
        page = next_page(bucket, page)?;
    }
}

/// The page after `page`; an overflow is damage (no bucket holds 2^32
/// full pages).
fn next_page(bucket: u32, page: u32) -> Result<u32> {
    page.checked_add(1).ok_or_else(|| Error::Corrupt {
        tree: "attempt_index",
        key: display(&page_key(bucket, page)),
        reason: "page number overflow".into(),
    })
}

/// The pages to rewrite so that `entries` are gone: (key, new value, or
/// `None` to remove an emptied page). Read outside a transaction, written
/// inside one; the caller keeps other writers of the index away meanwhile
/// (`WriteBehind::exclusive`).
pub fn without(tree: &sled::Tree, entries: &[(Slot, u32)]) -> Result<Rewrites> {
    let mut out = Vec::new();
    for (bucket, mut gone) in by_bucket(entries) {
        for (key, held) in pages(tree, bucket)? {
            // One entry per attempt removed: two attempts of a learner may
            // share a bucket and a 16-bit fingerprint (about once per
            // 130,000 learners of 1,000 attempts), and the other keeps its
            // entry.
            let kept: Vec<(u16, u32)> = held
                .iter()
                .copied()
                .filter(|e| match gone.iter().position(|g| g == e) {
                    Some(i) => {
                        gone.swap_remove(i);
                        false
                    }
                    None => true,
                })
                .collect();
            if kept.len() != held.len() {
                out.push((key, (!kept.is_empty()).then(|| encode(&kept))));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket rolls over to new pages, and a page emptied by a removal
    /// is filled again without overwriting the pages after it.
    #[test]
    fn full_pages_roll_over_and_gaps_refill_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("attempt_index").unwrap();
        let entry = |n: u16| {
            (
                Slot {
                    bucket: 5,
                    fingerprint: n,
                },
                u32::from(n % 3),
            )
        };
        let first: Vec<(Slot, u32)> = (0..150).map(entry).collect();
        add(&tree, &first).unwrap();
        assert_eq!(pages(&tree, 5).unwrap().len(), 3);
        for (key, value) in without(&tree, &first[..PAGE_ENTRIES]).unwrap() {
            assert!(value.is_none(), "page 0 emptied");
            tree.remove(key).unwrap();
        }
        let second: Vec<(Slot, u32)> = (1_000..1_070).map(entry).collect();
        add(&tree, &second).unwrap();
        let held: std::collections::BTreeSet<(u16, u32)> = pages(&tree, 5)
            .unwrap()
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect();
        let expected: std::collections::BTreeSet<(u16, u32)> = first[PAGE_ENTRIES..]
            .iter()
            .chain(&second)
            .map(|(slot, learner)| (slot.fingerprint, *learner))
            .collect();
        assert_eq!(held, expected);
        assert!(
            pages(&tree, 5)
                .unwrap()
                .iter()
                .all(|(_, entries)| entries.len() <= PAGE_ENTRIES)
        );
    }

    #[test]
    fn lookups_find_every_added_id_and_removals_take_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("attempt_index").unwrap();
        let entries: Vec<(Slot, u32)> = (0..5_000u32)
            .map(|n| (slot(&format!("a{n}")), n % 7))
            .collect();
        add(&tree, &entries[..2_500]).unwrap();
        add(&tree, &entries[2_500..]).unwrap();
        for n in (0..5_000u32).step_by(97) {
            assert!(
                candidates(&tree, &format!("a{n}"))
                    .unwrap()
                    .contains(&(n % 7))
            );
        }
        let gone = &entries[..10];
        for (key, value) in without(&tree, gone).unwrap() {
            match value {
                Some(v) => tree.insert(key, v).unwrap(),
                None => tree.remove(key).unwrap(),
            };
        }
        for n in 0..10u32 {
            assert!(
                !candidates(&tree, &format!("a{n}"))
                    .unwrap()
                    .contains(&(n % 7))
            );
        }
        assert!(candidates(&tree, "a11").unwrap().contains(&(11 % 7)));
        // Two attempts of one learner on one slot: removing one keeps the
        // other's entry.
        let twin = (
            Slot {
                bucket: 9,
                fingerprint: 4,
            },
            3,
        );
        add(&tree, &[twin, twin]).unwrap();
        for (key, value) in without(&tree, &[twin]).unwrap() {
            tree.insert(key, value.unwrap()).unwrap();
        }
        assert_eq!(pages(&tree, 9).unwrap()[0].1, vec![(4, 3)]);
        assert!(decode(b"k", &[COMPACT_VERSION, 1, 2]).is_err());
        assert!(decode(b"k", &[PAGE_VERSION, 1]).is_err());
        assert!(decode(b"k", &[3]).is_err());
    }

    /// A page as store format 3 wrote it (version 1, 32-bit fingerprints,
    /// `(h >> 12) as u32`): its ids are found, an append rewrites it in
    /// version 2 keeping them, a removal takes one out.
    #[test]
    fn version_1_pages_are_read_and_rewritten_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("attempt_index").unwrap();
        let old: Vec<(String, u32)> = (0..3_000u32)
            .map(|n| (format!("old-{n}"), n % 11))
            .collect();
        let mut pages_v1: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for (id, learner) in &old {
            let h = splitmix(fnv1a(id));
            let page = pages_v1
                .entry((h >> 44) as u32)
                .or_insert_with(|| vec![COMPACT_VERSION]);
            page.extend_from_slice(&((h >> 12) as u32).to_be_bytes());
            put_varint(page, u64::from(*learner));
        }
        for (bucket, page) in &pages_v1 {
            tree.insert(page_key(*bucket, 0), page.as_slice()).unwrap();
        }
        for (id, learner) in &old {
            assert!(candidates(&tree, id).unwrap().contains(learner), "{id}");
        }
        let new: Vec<(Slot, u32)> = (0..3_000u32)
            .map(|n| (slot(&format!("new-{n}")), 99))
            .collect();
        add(&tree, &new).unwrap();
        for (id, learner) in &old {
            assert!(candidates(&tree, id).unwrap().contains(learner), "{id}");
        }
        assert!(candidates(&tree, "new-7").unwrap().contains(&99));
        let versions: std::collections::BTreeSet<u8> =
            tree.iter().map(|entry| entry.unwrap().1[0]).collect();
        assert!(versions.contains(&PAGE_VERSION));
        let (id, learner) = &old[5];
        for (key, value) in without(&tree, &[(slot(id), *learner)]).unwrap() {
            match value {
                Some(v) => tree.insert(key, v).unwrap(),
                None => tree.remove(key).unwrap(),
            };
        }
        assert!(!candidates(&tree, id).unwrap().contains(learner));
        assert!(candidates(&tree, &old[6].0).unwrap().contains(&old[6].1));
    }
}
