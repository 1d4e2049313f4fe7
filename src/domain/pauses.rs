//! Declared pauses and withdrawals: what a learner's LMS or trainer tells
//! the engine so that an absence is not read as a learner drifting away.
//!
//! A pause is a planned break with an end (holidays, a project peak, sick
//! leave): while it lasts, inactivity and stopping alerts are silenced, and
//! its days are taken out of every gap and trend the engagement signals
//! compute. A withdrawal says the learner left the program for good: every
//! alert of theirs in it resolves, and none is raised again.

use serde::{Deserialize, Serialize};

use super::learner::Micros;
use super::limits::MIN_EVENT_MICROS;
use crate::error::{Error, Result};

/// Longest pause accepted, in days: longer is a withdrawal, or a mistake.
pub const MAX_PAUSE_DAYS: i64 = 183;

/// Microseconds per day.
const DAY: Micros = 86_400_000_000;

/// One declared pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Server-chosen id, unique per learner: `pause-` then the declaration
    /// time in microseconds.
    pub id: String,
    /// The learner.
    pub learner_id: String,
    /// The program paused; empty for every program of the learner.
    pub program_id: String,
    /// First paused instant.
    pub starts_at: Micros,
    /// First instant back (moved to the present when ended early).
    pub ends_at: Micros,
    /// Free text from whoever declared it.
    pub note: String,
    /// Who declared it (an LMS or trainer id).
    pub declared_by: String,
    /// When it was declared (server time).
    pub declared_at: Micros,
}

impl Pause {
    /// Whether the pause covers `program` (a pause of every program covers
    /// all).
    pub fn covers(&self, program: &str) -> bool {
        self.program_id.is_empty() || self.program_id == program
    }

    /// Whether `at` falls inside the pause.
    pub fn contains(&self, at: Micros) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// The id of a pause declared at `declared_at`.
pub fn pause_id(declared_at: Micros) -> String {
    format!("pause-{declared_at:016}")
}

/// Checks a pause's dates: an end after its start, at most
/// [`MAX_PAUSE_DAYS`] long, not before 2000. A pause may lie in the past (a
/// history being loaded) or the future (a planned break).
pub fn check_pause_dates(starts_at: Micros, ends_at: Micros) -> Result<()> {
    if starts_at < MIN_EVENT_MICROS {
        return Err(Error::invalid("starts_at", "must not be before 2000-01-01"));
    }
    if ends_at <= starts_at {
        return Err(Error::invalid("ends_at", "must be after starts_at"));
    }
    if ends_at - starts_at > MAX_PAUSE_DAYS * DAY {
        return Err(Error::invalid(
            "ends_at",
            format!(
                "a pause lasts at most {MAX_PAUSE_DAYS} days (a learner who leaves is withdrawn)"
            ),
        ));
    }
    Ok(())
}

/// A learner's withdrawal from a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The learner.
    pub learner_id: String,
    /// The program left.
    pub program_id: String,
    /// When the learner left.
    pub withdrawn_at: Micros,
    /// Free text from whoever declared it.
    pub note: String,
    /// Who declared it.
    pub declared_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Micros = 1_760_000_000_000_000;

    #[test]
    fn dates_are_checked_naming_the_field() {
        assert!(check_pause_dates(T, T + 7 * DAY).is_ok());
        let err = check_pause_dates(T, T).unwrap_err().to_string();
        assert!(err.contains("ends_at"), "{err}");
        let err = check_pause_dates(T, T + 200 * DAY).unwrap_err().to_string();
        assert!(err.contains("ends_at") && err.contains("183"), "{err}");
        let err = check_pause_dates(0, DAY).unwrap_err().to_string();
        assert!(err.contains("starts_at"), "{err}");
    }

    #[test]
    fn a_pause_covers_its_program_or_every_program() {
        let mut p = Pause {
            id: pause_id(T),
            learner_id: "l".into(),
            program_id: String::new(),
            starts_at: T,
            ends_at: T + DAY,
            note: String::new(),
            declared_by: "lms".into(),
            declared_at: T,
        };
        assert!(p.covers("a") && p.covers("b"));
        p.program_id = "a".into();
        assert!(p.covers("a") && !p.covers("b"));
        assert!(p.contains(T) && !p.contains(T + DAY));
        assert_eq!(p.id, "pause-1760000000000000");
    }
}
