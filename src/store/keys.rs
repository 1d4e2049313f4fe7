//! The key layout of the sled store: every tree, its key encoding and its
//! value type, in one place.
//!
//! Values are encoded by [`super::codec`]: one format-version byte followed by
//! the postcard encoding of the domain type; the three ingestion trees
//! (`ids`, `attempt_blocks`, `learner_mastery`) use the
//! compact encodings of [`super::compact`] instead, many attempts or
//! states to a key (store format 2 to 5; format 1, one `attempts`,
//! `observations` and `mastery` row each, is migrated at open by
//! [`super::migrate`]). Ids never contain a NUL byte
//! (validated at the edge), so `0x00` separates the parts of composite keys
//! and prefix scans over `id 0x00` are exact.
//!
//! | tree            | key                                                     | value                  |
//! |-----------------|---------------------------------------------------------|------------------------|
//! | `meta`          | `b"format_version"`                                     | `u32` big-endian       |
//! | `skills`        | skill id                                                | `Skill`                |
//! | `modules`       | module id                                               | `Module`               |
//! | `learners`      | learner id                                              | `Learner`              |
//! | `programs`      | program id                                              | `Program`              |
//! | `enrolments`    | learner id `00` program id                              | `Enrolment`            |
//! | `program_members` | program id `00` learner id                            | `Enrolment` (index)    |
//! | `ids`           | kind (`l`, `i`, `s`) `01` number (`u32` BE) / kind `02` | the id / the next number to assign: interned learner, item and skill ids (`interner.rs`) |
//! | `attempt_blocks` | learner id `00` block number (`u32` BE)                | compact block of the learner's attempts, up to ~1 KiB (`compact.rs`): the observation index too |
//! | `learner_mastery` | learner id                                            | compact record of the learner's `MasteryState`s by skill number (belief as log-odds) |
//! | `migration_skipped` | old tree name `00` old key                           | the format-1 row verbatim that the migration could not decode (`migrate.rs`; damage for `spoc verify`) |
//! | `meta`          | `b"mastery_basis"`                                      | `MasteryBasis` (filter and parameters the `learner_mastery` states were computed with) |
//! | `activities`    | event id                                                | `StoredActivity`       |
//! | `learner_activity` | learner id `00` occurred_at (8 bytes, order-preserving) event id | `StoredActivity` (index) |
//! | `recommended`   | learner id `00` module id                               | `Micros` first recommended (best effort) |
//! | `module_effects` | module id `00` skill id                                | `ModuleEffect` (population evidence, best effort) |
//! | `cohorts`       | program id `00` cohort id                               | `StoredCohort`         |
//! | `cohort_index`  | cohort id                                               | program id (`String`)  |
//! | `cohort_formations` | program id                                          | `FormationRecord`      |
//! | `alerts`        | alert id                                                | `Alert`                |
//! | `alert_active`  | learner id `00` program id `00` alert kind name         | alert id (`String`, dedup index) |
//! | `alert_log`     | sequence number (`u64` big-endian)                      | `Alert` after that change (append-only) |
//! | `pauses`        | learner id `00` pause id                                | `Pause` (declared break; silences inactivity and stopping alerts) |
//! | `withdrawals`   | learner id `00` program id                              | `Withdrawal`           |
//! | `alert_episodes` | learner id `00` program id `00` alert kind name        | `ClosedEpisode` (kind, skill, start): a trainer resolved its alert while the condition held |
//! | `api_keys`      | key id                                                  | `ApiKey` (role, scope, SHA-256 of the secret, never the secret) |
//! | `meta`          | `b"admin_key_bootstrapped"`                             | `Micros` when the first admin key was written |
//! | `items`         | item id (an xAPI activity IRI fits: up to 512 bytes)    | `Item` (Q-matrix row)  |
//! | `xapi_statements` | statement id (lowercase UUID)                         | `StatementRecord` (hash, fate, voided) |
//! | `xapi_unresolved` | statement id                                          | `Unresolved` (statement JSON verbatim, reason) |
//! | `xapi_voids`    | voided statement id                                     | voiding statement id (`String`) |
//! | `xapi_mapping`  | `p`, `m` or `i` `00` program, module or item id          | `ObjectMapping` (external ids, an item's pass mark) |
//! | `xapi_activities` | activity IRI                                           | `SeenActivity` (unmapped or ignored activity) |
//! | `retracted`     | `attempt` or `activity` `00` id                         | `Micros` retracted at (tombstone) |
//! | `webhook_subscriptions` | subscription id (`sub_` + 16 hex digits)        | `Subscription` (filters, target, format, creating key and scope, signing secret) |
//! | `webhook_outbox` | due time (µs, `u64` big-endian) subscription id `00` message id | `Message` (rendered body, attempts, last error) |
//! | `webhook_dead`  | subscription id `00` message id                         | `DeadLetter` (the message, its URL, when given up) |
//! | `webhook_digest` | subscription id `00` alert id                          | `Alert` (latest state since the last digest) |
//! | `webhook_digest_sent` | subscription id                                   | `Micros` of the last digest slot closed |
//! | `webhook_cursor` | `b"cursor"`                                            | `u64` last alert sequence fanned out to subscriptions |
//!
//! Outside sled, `wal/wal-<seq>.log` holds the write-ahead log of ingested
//! batches (format in `wal.rs`); it is replayed at start and trimmed after
//! every background checkpoint. `attempt-index` is the attempt id index
//! (store format 5; a tree, `attempt_index`, in formats 2 to 4): a hash
//! table of 8-byte slots (32-bit tag of the attempt id, learner number
//! plus one) after a 4 KiB header, synced at a stop, its header naming
//! the machine's boot while unsynced, rebuilt
//! from `attempt_blocks` when missing, damaged or older than sled
//! (`attempt_index.rs`). `checkpoint` holds the last checkpoint's
//! generation (`damage.rs`).
//!
//! A learner's `attempt_blocks` are what an out-of-order attempt replays
//! (read whole, filtered by skill); `attempt-index` finds the learner of
//! an attempt id (candidates, confirmed in the blocks). Ingestion writes
//! the index, the blocks and `learner_mastery`, in that order, through the
//! write-behind rows (`write_behind.rs`): logged first, then applied by
//! plain inserts, so after a crash they may disagree for batches still in
//! the write-ahead log, whose replay appends the attempts the blocks lack
//! and rebuilds their mastery (`attempt_trees.rs`).
//! An alert change writes `alerts`, `alert_active` and `alert_log` in one
//! transaction (see `alerts.rs`). The first admin key and the
//! `admin_key_bootstrapped` marker are written in one transaction, so that
//! `spoc serve` hands out a first key exactly once (see `api_keys.rs`). Likewise a formation replaces a program's `cohorts`, their `cohort_index`
//! entries and its `cohort_formations` record in one transaction.
//! Items are written with skills, modules and the `xapi_mapping` rows of
//! modules and items in one transaction (`items.rs`); a program with its
//! `xapi_mapping` row likewise (`mapping.rs` says why those rows live
//! apart). An xAPI batch writes its `xapi_statements`,
//! `xapi_unresolved` and `xapi_voids` rows in one transaction, after the
//! attempts and events it produced (`xapi.rs`). A retraction removes an
//! attempt from its block and updates
//! `learner_mastery` together with its `retracted` tombstone (events: `activities`, `learner_activity`),
//! then its `attempt-index` entry (an erasure likewise removes the
//! learner's entries after its transaction); ingestion and the
//! write-ahead log replay skip tombstoned ids.
//! The webhook follower writes a batch of alert changes' `webhook_outbox`
//! messages, `webhook_digest` rows and the `webhook_cursor` position after
//! them in one transaction (`outbox.rs`), so a crash loses all three
//! together and the changes are fanned out again from `alert_log`; a
//! delivered message is removed, a failed one moved to its next due time
//! (one transaction on `webhook_outbox`) or to `webhook_dead`; a digest
//! moves its rows into one message and records its slot in
//! `webhook_digest_sent` in one transaction; deleting a subscription
//! removes its rows of every webhook tree in one transaction.

use crate::domain::learner::Micros;

/// Version of this layout, stored in `meta`; a store written by a newer
/// layout is refused at open rather than misread, one of format 1 or 2 is
/// migrated (`migrate.rs`). Format 3 writes mastery records of
/// [`super::compact::STATES_VERSION`] 2, which a format-2 release cannot
/// read; it reads format 2's records as they are. Format 4 wrote attempt
/// index pages with 16-bit fingerprints, which a format-3 release cannot
/// read. Format 5 keeps the attempt index in a file of
/// its own (`attempt_index.rs`), built from the blocks when a format 2 to
/// 4 store is opened; a format-4 release refuses it.
pub const FORMAT_VERSION: u32 = 5;

/// The oldest format a snapshot or a data folder may have: older ones
/// are migrated at open.
pub const OLDEST_FORMAT: u32 = 1;

/// Key of the format version in the `meta` tree.
pub const FORMAT_VERSION_KEY: &[u8] = b"format_version";

/// Key in `meta` of what the mastery states were computed with; a store
/// without it (written before filter 2, whose states held P(mastered)
/// where they now hold log-odds) has every state recomputed at start.
pub const MASTERY_BASIS: &[u8] = b"mastery_basis";

/// Tree of API keys by key id.
pub const API_KEYS: &str = "api_keys";

/// Key in `meta` of the marker that the first admin key was handed out.
pub const ADMIN_KEY_BOOTSTRAPPED: &[u8] = b"admin_key_bootstrapped";

/// Separator between the parts of a composite key.
pub const SEP: u8 = 0;

/// Joins id parts with [`SEP`].
pub fn compose(parts: &[&str]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len() + 1).sum();
    let mut key = Vec::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// The prefix that selects every composite key starting with `parts`.
pub fn prefix(parts: &[&str]) -> Vec<u8> {
    let mut key = compose(parts);
    key.push(SEP);
    key
}

/// Key of a learner's module event in time order.
pub fn learner_activity(learner: &str, occurred_at: Micros, event_id: &str) -> Vec<u8> {
    timed(&prefix(&[learner]), occurred_at, event_id)
}

/// `prefix`, then the time in order-preserving bytes (big-endian with the
/// sign bit flipped, so that byte order is time order, negative times
/// included), then the id.
fn timed(prefix: &[u8], at: Micros, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8 + id.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// Key of an alert log entry: big-endian, so byte order is sequence order.
pub fn sequence(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// The sequence number of an alert log key; `None` if not 8 bytes.
pub fn sequence_from(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// The last part of a composite key (after the final separator).
pub fn last_part(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|b| *b == SEP) {
        Some(i) => &key[i + 1..],
        None => key,
    }
}

/// Printable form of a key for error messages.
pub fn display(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\0', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_keys_sort_by_time_including_negative() {
        let a = learner_activity("l", -5, "z");
        let b = learner_activity("l", 3, "a");
        let c = learner_activity("l", 3, "b");
        assert!(a < b && b < c);
        assert!(a.starts_with(&prefix(&["l"])));
    }

    #[test]
    fn prefix_does_not_match_longer_ids() {
        let key = compose(&["learner10", "p"]);
        assert!(!key.starts_with(&prefix(&["learner1"])));
        assert_eq!(last_part(&key), b"p");
    }
}
