//! Time-zone offsets over a program's dates.
//!
//! A cohort must stay within the program's time-zone spread for as long as
//! it meets, and offsets move with daylight saving time: London is 3 h from
//! Sao Paulo in December and 4 h in July. So each learner's time zone is
//! turned into its UTC offsets at every instant of the program's window
//! where some zone of the population changes offset (the window's start and
//! each transition inside it). Offsets are constant between those instants,
//! so a cohort's spread over the whole window is the largest spread at one
//! of them. Every learner's offsets are given at the same instants, in the
//! same order; instants whose offsets repeat those of an earlier instant are
//! dropped, since they cannot change any spread.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Longest stretch of a window whose transitions are looked at: zones
/// repeat their rules every year, so two years see every combination of
/// offsets, and a window up to year 9999 costs no more than a short one.
const HORIZON: SignedDuration = SignedDuration::from_hours(2 * 366 * 24);

/// The dates whose offsets count, `from` to `until` inclusive; a single
/// instant when they are equal (programs without dates: now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant.
    pub from: Timestamp,
    /// Last instant, never before `from`.
    pub until: Timestamp,
}

impl Window {
    /// The single instant `at`.
    pub fn at(at: Timestamp) -> Window {
        Window {
            from: at,
            until: at,
        }
    }

    /// From `from` to `until`; an `until` before `from` is read as `from`.
    pub fn new(from: Timestamp, until: Timestamp) -> Window {
        Window {
            from,
            until: until.max(from),
        }
    }
}

/// The offsets of a set of time zones at the instants of a window where
/// any of them changes: what cohort rules compare.
#[derive(Debug, Clone, Default)]
pub struct ZoneOffsets {
    /// One instant per distinct combination of offsets, the window's start
    /// first.
    pub instants: Vec<Timestamp>,
    by_zone: BTreeMap<String, Vec<i32>>,
}

impl ZoneOffsets {
    /// Looks up `zones` (IANA names; empty names are skipped) in the
    /// bundled tz database and gathers their offsets over `window`.
    /// Fails naming the first unknown zone.
    pub fn over<'a>(
        zones: impl IntoIterator<Item = &'a str>,
        window: Window,
    ) -> Result<ZoneOffsets, UnknownZone> {
        let names: BTreeSet<&str> = zones.into_iter().filter(|z| !z.is_empty()).collect();
        let until = window
            .until
            .min(window.from.saturating_add(HORIZON).unwrap_or(window.until));
        // Per zone, its offset from the window's start and at each change.
        let mut changes: Vec<(&str, Vec<(Timestamp, i32)>)> = Vec::with_capacity(names.len());
        let mut instants = BTreeSet::from([window.from]);
        for name in names {
            let tz = TimeZone::get(name).map_err(|e| UnknownZone {
                zone: name.to_string(),
                reason: e.to_string(),
            })?;
            let mut steps = vec![(window.from, minutes(&tz, window.from))];
            for t in tz.following(window.from) {
                if t.timestamp() > until {
                    break;
                }
                instants.insert(t.timestamp());
                steps.push((t.timestamp(), t.offset().seconds() / 60));
            }
            changes.push((name, steps));
        }
        let instants: Vec<Timestamp> = instants.into_iter().collect();
        // Offsets of every zone at every instant, one column per instant.
        let mut table: Vec<Vec<i32>> = Vec::with_capacity(changes.len());
        for (_, steps) in &changes {
            let mut row = Vec::with_capacity(instants.len());
            let mut k = 0;
            for &t in &instants {
                while k + 1 < steps.len() && steps[k + 1].0 <= t {
                    k += 1;
                }
                row.push(steps[k].1);
            }
            table.push(row);
        }
        // Keep the first instant of each distinct column.
        let mut seen = BTreeSet::new();
        let keep: Vec<usize> = (0..instants.len())
            .filter(|&j| seen.insert(table.iter().map(|row| row[j]).collect::<Vec<i32>>()))
            .collect();
        Ok(ZoneOffsets {
            instants: keep.iter().map(|&j| instants[j]).collect(),
            by_zone: changes
                .iter()
                .zip(table)
                .map(|((name, _), row)| (name.to_string(), keep.iter().map(|&j| row[j]).collect()))
                .collect(),
        })
    }

    /// Offsets of `zone` at [`instants`](Self::instants); `None` for an
    /// empty name or a zone not passed to [`over`](Self::over).
    pub fn of(&self, zone: &str) -> Option<&[i32]> {
        self.by_zone.get(zone).map(Vec::as_slice)
    }
}

/// A time-zone name the tz database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {zone:?}: {reason}")]
pub struct UnknownZone {
    /// The name.
    pub zone: String,
    /// What the database said.
    pub reason: String,
}

/// Offset of `tz` at `at`, in minutes.
fn minutes(tz: &TimeZone, at: Timestamp) -> i32 {
    tz.to_offset(at).seconds() / 60
}

/// Converts an IANA time-zone name to its UTC offset in minutes at `at`.
///
/// Uses jiff's bundled tz database, so results do not depend on the host.
pub fn utc_offset_minutes(name: &str, at: Timestamp) -> Result<i32, String> {
    let tz = TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?;
    Ok(minutes(&tz, at))
}

/// Largest spread of offsets at one instant, in minutes, over learners'
/// offset lists (each of the same length; empty lists, unknown zones, are
/// skipped), with the index of an instant where it is reached and the
/// lowest and highest offsets there; `None` when no offset is known.
pub fn widest<'a>(offsets: impl Iterator<Item = &'a [i32]>) -> Option<Spread> {
    let mut lo: Vec<i32> = Vec::new();
    let mut hi: Vec<i32> = Vec::new();
    for o in offsets.filter(|o| !o.is_empty()) {
        if lo.is_empty() {
            lo = o.to_vec();
            hi = o.to_vec();
            continue;
        }
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(o) {
            *l = (*l).min(v);
            *h = (*h).max(v);
        }
    }
    (0..lo.len())
        .map(|t| Spread {
            minutes: i64::from(hi[t]) - i64::from(lo[t]),
            instant: t,
            low: lo[t],
            high: hi[t],
        })
        .max_by_key(|s| (s.minutes, std::cmp::Reverse(s.instant)))
}

/// Where a set of offsets is widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Highest minus lowest offset at that instant, in minutes.
    pub minutes: i64,
    /// Index of the instant.
    pub instant: usize,
    /// Lowest offset there.
    pub low: i32,
    /// Highest offset there.
    pub high: i32,
}
