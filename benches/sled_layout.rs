//! What sled itself makes of the scale bench's writes: bytes on disk per
//! attempt and resident memory, without the server around it, so that a
//! layout or a sled setting can be tried in a minute rather than a
//! ten-minute `cargo bench --bench scale`.
//!
//! The writes are those of `benches/scale.rs` applied by the write-behind:
//! per batch of 500 attempts (10 learners of 50), a learner record each,
//! the 500 attempt index entries (the real index file beside sled,
//! `store/attempt_index.rs`, counted in the bytes on disk), then each
//! learner's block and mastery record (values of their measured sizes,
//! 850 and 610 bytes), a flush every 100 batches (and a sync of the
//! index).
//!
//! ```text
//! cargo bench --bench sled_layout                                  # 3M attempts, this release's settings
//! cargo bench --bench sled_layout -- --segment-kib 512 --index 0   # sled's default segments, no index
//! cargo bench --bench sled_layout -- --attempts 10000000 --cache-mb 50
//! ```

// Benches unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use spoc_engine::store::attempt_index::{self, AttemptIndex};

mod common;
use common::arg;

/// Resident memory of this process in MiB.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .unwrap()
        / 1024
}

fn main() {
    // The allocator as the server sets it (freed memory returned after
    // 10 ms), so that RSS compares with the server's.
    spoc_engine::store::budget::purge_freed_memory_soon();
    let total = arg("--attempts", 3_000_000);
    let segment = arg("--segment-kib", 16 * 1024) as usize * 1024;
    let cache = arg("--cache-mb", 60) * 1024 * 1024;
    let with_index = arg("--index", 1) == 1;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .segment_size(segment)
        .cache_capacity(cache)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let learners = db.open_tree("learners").unwrap();
    let index = AttemptIndex::open(dir.path(), 0, |_| Ok(Vec::new())).unwrap();
    let key = index.key();
    let blocks = db.open_tree("attempt_blocks").unwrap();
    let mastery = db.open_tree("learner_mastery").unwrap();
    println!(
        "sled_layout: {total} attempts, segments of {} KiB, cache {} MiB, index {}",
        segment / 1024,
        cache / (1024 * 1024),
        if with_index { "on" } else { "off" }
    );
    let started = Instant::now();
    let mut done = 0u64;
    while done < total {
        let first_learner = done / 50;
        for l in first_learner..first_learner + 10 {
            learners
                .insert(format!("learner-{l:07}"), vec![1u8; 90])
                .unwrap();
        }
        if with_index {
            let entries: Vec<_> = (done..done + 500)
                .map(|n| key.entry(&format!("a{n:09}"), (n / 50) as u32))
                .collect();
            index.add(&entries).unwrap();
        }
        for l in first_learner..first_learner + 10 {
            let mut key = format!("learner-{l:07}").into_bytes();
            key.push(0);
            key.extend_from_slice(&0u32.to_be_bytes());
            blocks.insert(key, vec![(l % 251) as u8; 850]).unwrap();
            mastery
                .insert(format!("learner-{l:07}"), vec![(l % 13) as u8; 610])
                .unwrap();
        }
        done += 500;
        if done % 50_000 == 0 {
            index.sync(done).unwrap();
            db.flush().unwrap();
        }
        if done % 1_000_000 == 0 {
            let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
            let bytes = size("db") + size(attempt_index::FILE);
            println!(
                "{done:>11} attempts: {:>6.1} bytes/attempt on disk, RSS {:>4} MiB, {:>7.0} attempts/s",
                bytes as f64 / done as f64,
                rss_mib(),
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}
