//! `spoc verify`: the full check of a stopped server's data folder.
//!
//! Reads every log segment and every sled tree, decodes every value with
//! its type (the codec reports corrupt values), and checks what the trees
//! must agree on: every attempt of `attempt_blocks` found by the
//! `attempt_index`, every number interned in `ids`, attempt ids unique,
//! mastery equal to the fold of the stored attempts, attempts of existing
//! learners, `enrolments` and
//! `program_members` mirroring each other, cohort members enrolled in the
//! cohort's program. Findings name the file or the tree and key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::attempt_index::{self, Entry, Key};
use super::attempt_trees::{self, display_block, parse_block_key};
use super::codec;
use super::compact::{self, Packed, PackedState};
use super::keys;
use super::outbox;
use crate::domain::bkt::Observation;
use crate::domain::mastery::{MasteryState, Position};
use crate::error::{Error, Result};

/// One piece of damage: where, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The file, or `tree/key`.
    pub place: String,
    /// What is wrong there.
    pub what: String,
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Damage found; empty when the folder is clean.
    pub findings: Vec<Finding>,
    /// Values decoded, per tree.
    pub trees: BTreeMap<String, usize>,
    /// Records found in the write-ahead log (replayed at the next start).
    pub logged: usize,
    /// Remarks that are not damage (checks skipped, and why).
    pub notes: Vec<String>,
    /// What the stored mastery states were computed with, if recorded.
    pub basis: Option<super::models::MasteryBasis>,
    /// Every mastery state whose count and last attempt match its index,
    /// with the indexed observations in order: the engine compares the
    /// value with the fold (`engine/verify.rs`), the store knows no BKT.
    pub folds: Vec<Fold>,
}

/// A stored mastery state and the observations it must be the fold of.
#[derive(Debug)]
pub struct Fold {
    /// The learner.
    pub learner: String,
    /// The skill.
    pub skill: String,
    /// The stored state.
    pub state: MasteryState,
    /// The indexed observations, in time order.
    pub history: Vec<Observation>,
}

/// Why a verification could not run at all (exit code 2): the folder is
/// missing, or sled is held by a running server, or cannot be read.
#[derive(Debug)]
pub struct Unreadable(pub String);

/// Verifies the data folder `dir` (the mastery values are compared with
/// the fold by the caller, see [`Report::folds`]).
pub fn verify(dir: &Path) -> std::result::Result<Report, Unreadable> {
    if !dir.join("sled").is_dir() {
        return Err(Unreadable(format!(
            "{} holds no store (no sled folder)",
            dir.display()
        )));
    }
    let mut report = Report::default();
    check_log(dir, &mut report).map_err(|e| Unreadable(e.to_string()))?;
    let opened = super::sled_config(dir, &super::budget::MemoryBudget::default())
        .and_then(|config| super::damage::open_sled(dir, config));
    let db = match opened {
        Ok(db) => db,
        Err(err @ Error::Corrupt { .. }) => {
            report.findings.push(Finding {
                place: dir.join("sled").display().to_string(),
                what: err.to_string(),
            });
            return Ok(report);
        }
        Err(err @ Error::Storage(_)) => {
            return Err(Unreadable(format!(
                "{err} (is a server running on this folder? stop it first)"
            )));
        }
        Err(err) => return Err(Unreadable(err.to_string())),
    };
    let generation = match super::damage::check_generation(dir, &db) {
        Ok(generation) => Some(generation),
        Err(err) => {
            report.findings.push(Finding {
                place: dir.join("sled").display().to_string(),
                what: err.to_string(),
            });
            None
        }
    };
    let mut trees = Trees::default();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        if name == "__sled__default" {
            continue;
        }
        let tree = db.open_tree(&name).map_err(|e| Unreadable(e.to_string()))?;
        read_tree(&name, &tree, &mut trees, &mut report);
    }
    let format = db
        .open_tree("meta")
        .ok()
        .and_then(|meta| meta.get(keys::FORMAT_VERSION_KEY).ok().flatten())
        .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
        .map(u32::from_be_bytes);
    if format == Some(1) {
        report.notes.push(
            "store format 1 (before compact attempts): the next start migrates it; attempts, \
             index and mastery are checked after that (start and stop the server, then verify \
             again)"
                .into(),
        );
    } else if report.logged > 0 {
        report.notes.push(format!(
            "the write-ahead log holds {} records not yet in sled: attempts, index and \
             mastery are checked against each other after the next start replays them \
             (start and stop the server, then verify again)",
            report.logged
        ));
    } else {
        check_index(dir, format, generation, &mut trees, &mut report);
        check_ingestion(&trees, &mut report);
    }
    check_enrolments(&trees, &mut report);
    Ok(report)
}

/// The values the cross-tree checks need, decoded once.
#[derive(Default)]
struct Trees {
    learners: BTreeSet<String>,
    /// Block entries: (learner, block key shown, entry).
    blocks: Vec<(String, String, Packed)>,
    /// Mastery records: (learner, packed states).
    records: Vec<(String, Vec<PackedState>)>,
    /// The attempt index's hash key and entries, sorted (`None`: not
    /// checked).
    index: Option<(Key, Vec<Entry>)>,
    /// Interned ids: (kind tag, number) to id.
    ids: BTreeMap<(u8, u32), String>,
    enrolments: BTreeSet<(String, String)>,
    members: BTreeSet<(String, String)>,
    cohorts: Vec<crate::domain::cohorts::records::StoredCohort>,
}

/// Reads every segment of the log; damage is a finding.
fn check_log(dir: &Path, report: &mut Report) -> Result<()> {
    let wal = dir.join("wal");
    if !wal.is_dir() {
        return Ok(());
    }
    let segments = super::wal::list_segments(&wal)?;
    match super::wal::read_segments(&segments) {
        Ok(records) => report.logged = records.len(),
        Err(err) => report.findings.push(Finding {
            place: wal.display().to_string(),
            what: err.to_string(),
        }),
    }
    Ok(())
}

/// Decodes every value of `tree` with its type, keeping what the later
/// checks need.
fn read_tree(name: &str, tree: &sled::Tree, trees: &mut Trees, report: &mut Report) {
    let mut count = 0;
    for entry in tree.iter() {
        let (key, value) = match entry {
            Ok(kv) => kv,
            Err(err) => {
                report.findings.push(Finding {
                    place: format!("tree {name}"),
                    what: format!("sled cannot read past this point: {err}"),
                });
                break;
            }
        };
        count += 1;
        let outcome = decode_entry(name, &key, &value, count, trees, report);
        if let Err(err) = outcome {
            report.findings.push(Finding {
                place: format!("tree {name}, key {}", keys::display(&key)),
                what: err.to_string(),
            });
        }
    }
    report.trees.insert(name.to_string(), count);
}

/// One entry of the attempt trees (blocks, mastery records, index, ids),
/// decoded and kept for the cross-checks; `None` for another tree.
fn decode_attempt_entry(
    name: &str,
    key: &[u8],
    value: &[u8],
    trees: &mut Trees,
) -> Option<Result<()>> {
    let result = match name {
        attempt_trees::BLOCKS => {
            let shown = display_block(key);
            parse_block_key(key)
                .ok_or_else(|| Error::Corrupt {
                    tree: attempt_trees::BLOCKS,
                    key: shown.clone(),
                    reason: "malformed key".into(),
                })
                .and_then(|(learner, _)| {
                    let packed = compact::decode_block(attempt_trees::BLOCKS, &shown, value)?;
                    for p in packed {
                        trees.blocks.push((learner.to_string(), shown.clone(), p));
                    }
                    Ok(())
                })
        }
        attempt_trees::MASTERY => {
            let learner = String::from_utf8_lossy(key).into_owned();
            compact::decode_states(attempt_trees::MASTERY, &learner, value)
                .map(|states| trees.records.push((learner, states)))
        }
        // The index tree of formats 2 to 4, dropped by the next start
        // once it has built the index file from the blocks.
        attempt_trees::INDEX => Ok(()),
        attempt_trees::IDS => read_id(key, value).map(|entry| {
            if let Some((tag, n, id)) = entry {
                trees.ids.insert((tag, n), id);
            }
        }),
        _ => return None,
    };
    Some(result)
}

/// Decodes one entry of tree `name` (the `count`-th) with its type, and
/// keeps what the cross-tree checks need.
fn decode_entry(
    name: &str,
    key: &[u8],
    value: &[u8],
    count: usize,
    trees: &mut Trees,
    report: &mut Report,
) -> Result<()> {
    use crate::domain as d;
    if let Some(result) = decode_attempt_entry(name, key, value, trees) {
        return result;
    }
    let tree_name: &'static str = static_name(name);
    macro_rules! decode {
        ($t:ty) => {
            codec::decode::<$t>(tree_name, key, value)
        };
    }
    match name {
        "skills" => decode!(d::catalog::Skill).map(drop),
        "modules" => decode!(d::catalog::Module).map(drop),
        "items" => decode!(d::catalog::Item).map(drop),
        "learners" => decode!(d::learner::Learner).map(|l| {
            trees.learners.insert(l.id);
        }),
        "programs" => decode!(d::learner::Program).map(drop),
        "enrolments" => decode!(d::learner::Enrolment).map(|e| {
            trees.enrolments.insert((e.learner_id, e.program_id));
        }),
        "program_members" => decode!(d::learner::Enrolment).map(|e| {
            trees.members.insert((e.learner_id, e.program_id));
        }),
        "activities" | "learner_activity" => decode!(d::activity::StoredActivity).map(drop),
        "recommended" | "retracted" => decode!(d::learner::Micros).map(drop),
        "cohorts" => decode!(d::cohorts::records::StoredCohort).map(|c| trees.cohorts.push(c)),
        "cohort_formations" => decode!(d::cohorts::records::FormationRecord).map(drop),
        "cohort_index" | "alert_active" | "xapi_voids" => decode!(String).map(drop),
        "alerts" | "alert_log" => decode!(d::alerts::Alert).map(drop),
        "api_keys" => decode!(d::access::ApiKey).map(drop),
        "xapi_statements" => decode!(d::xapi::record::StatementRecord).map(drop),
        "xapi_unresolved" => decode!(d::xapi::record::Unresolved).map(drop),
        "xapi_mapping" => decode!(d::xapi::record::ObjectMapping).map(drop),
        "xapi_activities" => decode!(d::xapi::record::SeenActivity).map(drop),
        super::effects::TREE => super::effects::decode_effect(key, value).map(drop),
        "pauses" => decode!(d::pauses::Pause).map(drop),
        "withdrawals" => decode!(d::pauses::Withdrawal).map(drop),
        "alert_episodes" => decode!(d::alerts::ClosedEpisode).map(drop),
        outbox::SUBSCRIPTIONS => decode!(d::webhooks::Subscription).map(drop),
        outbox::OUTBOX => decode!(d::webhooks::Message).map(drop),
        outbox::DEAD => decode!(d::webhooks::DeadLetter).map(drop),
        outbox::DIGEST => decode!(d::alerts::Alert).map(drop),
        outbox::DIGEST_SENT => decode!(d::learner::Micros).map(drop),
        outbox::CURSOR => decode!(u64).map(drop),
        super::migrate::SKIPPED => Err(Error::Corrupt {
            tree: super::migrate::SKIPPED,
            key: keys::display(key),
            reason: "a format-1 row the migration from format 1 could not decode: skipped, \
                     kept here verbatim (restore it from a backup, then remove this entry)"
                .into(),
        }),
        "meta" => check_meta(key, value).map(|()| {
            if key == keys::MASTERY_BASIS {
                report.basis = codec::decode("meta", key, value).ok();
            }
        }),
        _ => {
            // A tree this version does not know (a newer layout is
            // refused at open, so this is not ours): say so, once.
            if count == 1 {
                report.notes.push(format!(
                    "tree {name} is not part of the layout: not checked"
                ));
            }
            Ok(())
        }
    }
}

/// The `meta` entries, each in its own encoding.
fn check_meta(key: &[u8], value: &[u8]) -> Result<()> {
    let bad = |reason: &str| Error::Corrupt {
        tree: "meta",
        key: keys::display(key),
        reason: reason.into(),
    };
    match key {
        keys::FORMAT_VERSION_KEY
            if !(keys::OLDEST_FORMAT..=keys::FORMAT_VERSION).any(|v| value == v.to_be_bytes()) =>
        {
            Err(bad("not the supported store format"))
        }
        super::damage::CHECKPOINT_KEY if value.len() != 8 => Err(bad("not 8 bytes")),
        keys::MASTERY_BASIS => {
            codec::decode::<super::models::MasteryBasis>("meta", key, value).map(drop)
        }
        keys::ADMIN_KEY_BOOTSTRAPPED => {
            codec::decode::<crate::domain::learner::Micros>("meta", key, value).map(drop)
        }
        _ => Ok(()),
    }
}

/// A reverse entry of `ids`: (kind tag, number, id); `None` for the other
/// entries.
fn read_id(key: &[u8], value: &[u8]) -> Result<Option<(u8, u32, String)>> {
    let bad = |reason: &str| Error::Corrupt {
        tree: attempt_trees::IDS,
        key: keys::display(key),
        reason: reason.into(),
    };
    match key {
        [tag, 1, n @ ..] => {
            let n = <[u8; 4]>::try_from(n)
                .map(u32::from_be_bytes)
                .map_err(|_| bad("not a number"))?;
            let id = std::str::from_utf8(value).map_err(|_| bad("id is not UTF-8"))?;
            Ok(Some((*tag, n, id.to_string())))
        }
        [_, 2] => Ok(None),
        _ => Err(bad("unknown entry")),
    }
}

/// The attempt index file's structure; its entries are kept for
/// [`check_blocks`] unless the next start would rebuild the file rather
/// than use it (`attempt_index::Checked::stale`).
fn check_index(
    dir: &Path,
    format: Option<u32>,
    generation: Option<u64>,
    trees: &mut Trees,
    report: &mut Report,
) {
    if let Some(old) = format.filter(|f| *f < 5) {
        report.notes.push(format!(
            "store format {old}: the next start builds the attempt index file from the attempt \
             blocks; it is checked after that"
        ));
        return;
    }
    let place = dir.join(attempt_index::FILE).display().to_string();
    let rebuilt = "remove the file: the next start rebuilds it from the attempt blocks";
    if !dir.join(attempt_index::FILE).exists() {
        // A restored folder, or one whose index was removed: not damage.
        report.notes.push(format!(
            "{place} does not exist: the next start builds it from the attempt blocks"
        ));
        return;
    }
    match attempt_index::check(dir, generation.unwrap_or(0)) {
        Err(reason) => report.findings.push(Finding {
            place,
            what: format!("{reason} (the next start rebuilds it from the attempt blocks)"),
        }),
        Ok(checked) => match checked.stale {
            // As a start decides: such a file is not used.
            Some(why) => report.notes.push(format!(
                "{place}: {why}: the next start rebuilds it from the attempt blocks"
            )),
            None => {
                for (slot, what) in checked.problems.iter().take(20) {
                    report.findings.push(Finding {
                        place: format!("{place}, slot {slot}"),
                        what: format!("{what} ({rebuilt})"),
                    });
                }
                trees.index = Some((checked.key, checked.entries));
            }
        },
    }
}

/// Attempt blocks, their index, the interned ids and mastery agree;
/// attempts name existing learners.
fn check_ingestion(t: &Trees, report: &mut Report) {
    let observations = check_blocks(t, report);
    check_mastery(t, &observations, report);
}

/// Each (learner, skill)'s stored answers, with their positions.
type Observations = BTreeMap<(String, String), Vec<(Position, Observation)>>;

/// Every stored attempt is stored once, names an existing learner, item
/// and skills, and is in the index; returns the answers by learner and
/// skill.
fn check_blocks(t: &Trees, report: &mut Report) -> Observations {
    let number_of: BTreeMap<(u8, &str), u32> = t
        .ids
        .iter()
        .map(|((tag, n), id)| ((*tag, id.as_str()), *n))
        .collect();
    let name = |tag: u8, n: u32| t.ids.get(&(tag, n));
    let mut observations = Observations::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (learner, shown, p) in &t.blocks {
        let place = format!("tree attempt_blocks, key {shown}");
        if let Some(first) = seen.insert(&p.attempt_id, shown) {
            report.findings.push(Finding {
                place: place.clone(),
                what: format!("attempt {} is also stored in block {first}", p.attempt_id),
            });
        }
        if !t.learners.contains(learner) {
            report.findings.push(Finding {
                place: place.clone(),
                what: format!("learner {learner} does not exist"),
            });
        }
        let number = number_of.get(&(b'l', learner.as_str()));
        if let Some((key, index)) = &t.index {
            match number {
                Some(n) if index.binary_search(&key.entry(&p.attempt_id, *n)).is_ok() => {}
                _ => report.findings.push(Finding {
                    place: place.clone(),
                    what: format!(
                        "attempt {} is not in the attempt index (the next start rebuilds it \
                         if the file is removed)",
                        p.attempt_id
                    ),
                }),
            }
        }
        if name(b'i', p.item).is_none() {
            report.findings.push(Finding {
                place: place.clone(),
                what: format!(
                    "attempt {} names unknown item number {}",
                    p.attempt_id, p.item
                ),
            });
        }
        for skill in &p.skills {
            let Some(skill) = name(b's', *skill) else {
                report.findings.push(Finding {
                    place: place.clone(),
                    what: format!(
                        "attempt {} names unknown skill number {skill}",
                        p.attempt_id
                    ),
                });
                continue;
            };
            observations
                .entry((learner.clone(), skill.clone()))
                .or_default()
                .push((
                    Position {
                        occurred_at: p.occurred_at,
                        attempt_id: p.attempt_id.clone(),
                    },
                    Observation {
                        correct: p.correct,
                        score: p.score,
                    },
                ));
        }
    }
    observations
}

/// Each stored mastery folds exactly the stored answers, and every
/// (learner, skill) with answers has one.
fn check_mastery(t: &Trees, observations: &Observations, report: &mut Report) {
    let name = |tag: u8, n: u32| t.ids.get(&(tag, n));
    let mut mastery: BTreeMap<(String, String), &MasteryState> = BTreeMap::new();
    for (learner, states) in &t.records {
        for p in states {
            match name(b's', p.skill) {
                Some(skill) => {
                    mastery.insert((learner.clone(), skill.clone()), &p.state);
                }
                None => report.findings.push(Finding {
                    place: format!("tree learner_mastery, key {learner}"),
                    what: format!("names unknown skill number {}", p.skill),
                }),
            }
        }
    }
    for ((learner, skill), state) in &mastery {
        let mut history = observations
            .get(&(learner.clone(), skill.clone()))
            .cloned()
            .unwrap_or_default();
        history.sort_by(|a, b| a.0.cmp(&b.0));
        let place = format!("tree learner_mastery, key {learner} (skill {skill})");
        let last = history.last().map(|(p, _)| p);
        if state.attempt_count as usize != history.len() || Some(&state.last) != last {
            report.findings.push(Finding {
                place,
                what: format!(
                    "folds {} attempts up to {:?}, but {} are stored (last {:?})",
                    state.attempt_count,
                    state.last,
                    history.len(),
                    last
                ),
            });
            continue;
        }
        report.folds.push(Fold {
            learner: learner.clone(),
            skill: skill.clone(),
            state: (*state).clone(),
            history: history.into_iter().map(|(_, o)| o).collect(),
        });
    }
    for (learner, skill) in observations.keys() {
        if !mastery.contains_key(&(learner.clone(), skill.clone())) {
            report.findings.push(Finding {
                place: format!("tree learner_mastery, key {learner} (skill {skill})"),
                what: "missing, though attempts are stored".into(),
            });
        }
    }
}

/// `enrolments` and `program_members` mirror each other; cohort members are
/// enrolled in the cohort's program.
fn check_enrolments(t: &Trees, report: &mut Report) {
    for (learner, program) in t.enrolments.difference(&t.members) {
        report.findings.push(Finding {
            place: format!("tree program_members, key {program}/{learner}"),
            what: "missing for a stored enrolment".into(),
        });
    }
    for (learner, program) in t.members.difference(&t.enrolments) {
        report.findings.push(Finding {
            place: format!("tree enrolments, key {learner}/{program}"),
            what: "missing for a program_members entry".into(),
        });
    }
    for cohort in &t.cohorts {
        for member in &cohort.members {
            if !t
                .enrolments
                .contains(&(member.clone(), cohort.program_id.clone()))
            {
                report.findings.push(Finding {
                    place: format!("tree cohorts, key {}/{}", cohort.program_id, cohort.id),
                    what: format!("member {member} is not enrolled in the program"),
                });
            }
        }
    }
}

/// The trees of learner pauses, population evidence and webhook delivery
/// (listed apart: the last trees the check learnt to decode).
const STATE_TREES: [&str; 10] = [
    "module_effects",
    "pauses",
    "withdrawals",
    "alert_episodes",
    outbox::SUBSCRIPTIONS,
    outbox::OUTBOX,
    outbox::DEAD,
    outbox::DIGEST,
    outbox::DIGEST_SENT,
    outbox::CURSOR,
];

/// The tree name as the codec's `&'static str` (known trees; others are
/// not decoded).
fn static_name(name: &str) -> &'static str {
    const KNOWN: [&str; 29] = [
        "skills",
        "modules",
        "items",
        "learners",
        "programs",
        "enrolments",
        "program_members",
        attempt_trees::BLOCKS,
        attempt_trees::INDEX,
        attempt_trees::MASTERY,
        attempt_trees::IDS,
        "activities",
        "learner_activity",
        "recommended",
        "retracted",
        "cohorts",
        "cohort_formations",
        "cohort_index",
        "alert_active",
        "xapi_voids",
        "alerts",
        "alert_log",
        keys::API_KEYS,
        "xapi_statements",
        "xapi_unresolved",
        "xapi_mapping",
        "xapi_activities",
        "meta",
        "wal",
    ];
    KNOWN
        .iter()
        .chain(STATE_TREES.iter())
        .find(|k| **k == name)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tree of the layout written down in `keys.rs`.
    fn layout_trees() -> BTreeSet<String> {
        include_str!("keys.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .filter_map(|rest| rest.split('`').next())
            .map(str::to_string)
            .collect()
    }

    /// A damaged value in any tree of the layout is a finding naming the
    /// tree: a tree the check does not decode would let damage pass
    /// silently (as `module_effects`, `pauses` and the webhook trees did).
    #[test]
    fn damage_in_every_tree_of_the_layout_is_found() {
        let trees = layout_trees();
        assert!(trees.len() >= 35, "{trees:?}");
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        {
            let db = super::super::damage::open_sled(
                dir,
                super::super::sled_config(dir, &super::super::budget::MemoryBudget::default())
                    .unwrap(),
            )
            .unwrap();
            for name in &trees {
                let key: Vec<u8> = match name.as_str() {
                    "meta" => keys::MASTERY_BASIS.to_vec(),
                    "attempt_blocks" => b"alice\x00\x00\x00\x00\x00".to_vec(),
                    "attempt_index" => vec![0, 0, 0, 1, 0, 0, 0, 0],
                    "ids" => b"l\x01\x00\x00\x00\x00".to_vec(),
                    _ => b"k".to_vec(),
                };
                // An unknown value version: no decoder can take it.
                db.open_tree(name)
                    .unwrap()
                    .insert(key, &[0xee, 1, 2, 3][..])
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let report = verify(dir).unwrap();
        for name in &trees {
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| f.place.starts_with(&format!("tree {name},"))),
                "damage in {name} not found: {:?}",
                report.findings
            );
        }
    }

    /// Values the store itself wrote in each of those trees decode as the
    /// types the check expects: no false finding on a healthy folder.
    #[test]
    fn values_the_store_writes_verify_clean() {
        use crate::domain::alerts::ClosedEpisode;
        use crate::domain::pauses::{Pause, Withdrawal};
        use crate::domain::remediation::effects::ModuleEffect;
        use crate::domain::risk::AlertKind;
        use crate::domain::webhooks::tests_support::{alert, subscription};
        use crate::domain::webhooks::{DeadLetter, Message, payload::Rendered};

        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        {
            let store = super::super::Store::open(dir).unwrap();
            store
                .put_pause(&Pause {
                    id: "pause-1".into(),
                    learner_id: "ann".into(),
                    program_id: String::new(),
                    starts_at: 1,
                    ends_at: 2,
                    note: "n".into(),
                    declared_by: "lms".into(),
                    declared_at: 1,
                })
                .unwrap();
            store
                .put_withdrawal(&Withdrawal {
                    learner_id: "ann".into(),
                    program_id: "p".into(),
                    withdrawn_at: 3,
                    note: String::new(),
                    declared_by: "lms".into(),
                })
                .unwrap();
            let episode = ClosedEpisode {
                kind: AlertKind::BlockingPoint,
                skill_id: Some("s".into()),
                since: 1,
                alert_id: "alert-1".into(),
            };
            store.close_episode("ann", "p", &episode).unwrap();
            store
                .put_effect("m", "s", &ModuleEffect::default())
                .unwrap();
            let sub = subscription();
            store.create_subscription(&sub, Some(5)).unwrap();
            let message = |id: &str| {
                Message::due_now(
                    id.into(),
                    &sub.id,
                    "spoc.alert.raised",
                    "alert-1",
                    vec!["ann".into()],
                    Rendered {
                        content_type: "application/json",
                        body: b"{}".to_vec(),
                    },
                    10,
                )
            };
            store
                .fan_out(&super::super::outbox::FanOut {
                    messages: vec![message("msg_a"), message("msg_b")],
                    digest_rows: vec![(sub.id.clone(), alert(1))],
                    cursor: 1,
                })
                .unwrap();
            let dead = DeadLetter {
                message: message("msg_b"),
                url: sub.spec.url.clone(),
                dead_at: 20,
            };
            assert!(
                store
                    .bury_message(&super::super::outbox::outbox_key(&dead.message), &dead)
                    .unwrap()
            );
            store.flush().unwrap();
        }
        // sled releases its folder lock from a background thread.
        let report = (0..250)
            .find_map(|_| {
                verify(dir).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("the folder can be checked");
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        for tree in STATE_TREES {
            assert!(
                report.trees.get(tree).is_some_and(|n| *n > 0),
                "nothing read in {tree}: {:?}",
                report.trees
            );
        }
    }
}
