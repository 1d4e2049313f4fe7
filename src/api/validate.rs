//! Field checks shared by every request conversion.
//!
//! Each function takes the field's path in the request (for the error) and
//! its raw value, and returns the checked domain value or an
//! [`Error::InvalidArgument`] naming the field.

use std::fmt::{self, Display};

use crate::domain::learner::Micros;
use crate::error::{Error, Result};

pub use crate::domain::limits::{MAX_FUTURE_MICROS, MAX_ID_BYTES, MAX_IRI_BYTES};

/// Longest name or title accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 512;
/// Page size used when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page returned; larger requests are coerced (AIP-158).
pub const MAX_PAGE_SIZE: usize = 1000;
/// Most ids one list field may hold (skills of a program, filters...):
/// each becomes a store lookup, so the list is bounded, not just the message.
pub const MAX_IDS_PER_LIST: usize = 10_000;

/// An [`Error::InvalidArgument`] for `field`, whose path is only written
/// out here: callers pass it unformatted (`format_args!`), since a valid
/// request, the common case, never needs it.
fn invalid(field: impl Display, reason: impl Into<String>) -> Error {
    Error::invalid(field.to_string(), reason)
}

/// `field[index]`, formatted only when an error names it.
struct Indexed<F>(F, usize);

impl<F: Display> Display for Indexed<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// A required id: 1 to [`MAX_ID_BYTES`] bytes, no control characters (NUL
/// separates key parts in the store).
pub fn id(field: impl Display, value: &str) -> Result<String> {
    long_id(field, value, MAX_ID_BYTES)
}

/// A required id of at most `max` bytes (server-made ids such as cohort ids
/// embed a caller's id and need more room).
pub fn long_id(field: impl Display, value: &str, max: usize) -> Result<String> {
    if value.is_empty() {
        return Err(invalid(&field, "must not be empty"));
    }
    bounded_id(field, value, max)
}

/// A required item or module id, which may be an xAPI activity IRI: 1 to
/// [`MAX_IRI_BYTES`] bytes, no control characters.
pub fn iri_id(field: impl Display, value: &str) -> Result<String> {
    long_id(field, value, MAX_IRI_BYTES)
}

/// An id that may be empty (an unset filter).
pub fn optional_id(field: impl Display, value: &str) -> Result<String> {
    bounded_id(field, value, MAX_ID_BYTES)
}

fn bounded_id(field: impl Display, value: &str, max: usize) -> Result<String> {
    if value.len() > max {
        return Err(invalid(
            &field,
            format!("must be at most {max} bytes, got {}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(&field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// A list of at most [`MAX_IDS_PER_LIST`] ids: each checked, duplicates
/// removed, sorted.
pub fn id_set(field: impl Display, values: &[String]) -> Result<Vec<String>> {
    checked_set(field, values, |f, v| id(f, v))
}

/// [`id_set`] for ids that may be IRIs (module and item ids).
pub fn iri_id_set(field: impl Display, values: &[String]) -> Result<Vec<String>> {
    checked_set(field, values, |f, v| iri_id(f, v))
}

fn checked_set(
    field: impl Display,
    values: &[String],
    check: fn(&dyn Display, &str) -> Result<String>,
) -> Result<Vec<String>> {
    if values.len() > MAX_IDS_PER_LIST {
        return Err(invalid(
            &field,
            format!(
                "must hold at most {MAX_IDS_PER_LIST} ids, got {}",
                values.len()
            ),
        ));
    }
    let mut out = values
        .iter()
        .enumerate()
        .map(|(i, v)| check(&Indexed(&field, i), v))
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Free text of at most [`MAX_TEXT_BYTES`] bytes.
pub fn text(field: impl Display, value: &str) -> Result<String> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(invalid(
            &field,
            format!(
                "must be at most {MAX_TEXT_BYTES} bytes, got {}",
                value.len()
            ),
        ));
    }
    Ok(value.to_string())
}

/// A BCP 47 language tag (shape only: `xx`, `xx-YY`, `zh-Hant-TW`...), or
/// empty when `required` is false.
pub fn language(field: impl Display, value: &str, required: bool) -> Result<String> {
    if value.is_empty() {
        return if required {
            Err(invalid(&field, "must not be empty"))
        } else {
            Ok(String::new())
        };
    }
    let mut parts = value.split('-');
    let primary = parts.next().unwrap_or("");
    let primary_ok =
        (2..=8).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if primary_ok && rest_ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            &field,
            format!("'{value}' is not a BCP 47 language tag such as 'fr' or 'en-GB'"),
        ))
    }
}

/// An IANA time zone name known to the bundled tz database, or empty.
pub fn time_zone(field: impl Display, value: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    jiff::tz::TimeZone::get(value)
        .map(|_| value.to_string())
        .map_err(|_| {
            invalid(
                &field,
                format!("'{value}' is not an IANA time zone name such as 'Europe/Paris'"),
            )
        })
}

/// A required event time: valid, not before 1970, at most
/// [`MAX_FUTURE_MICROS`] ahead of `now`.
pub fn event_time(
    field: impl Display,
    value: Option<&prost_types::Timestamp>,
    now: Micros,
) -> Result<Micros> {
    let ts = value.ok_or_else(|| invalid(&field, "is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid(&field, "nanos must be in [0, 1e9)"));
    }
    if ts.seconds < 0 {
        return Err(invalid(&field, "must not be before 1970-01-01"));
    }
    let micros = ts
        .seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(ts.nanos / 1000)))
        .ok_or_else(|| invalid(&field, "is out of range"))?;
    if micros > now + MAX_FUTURE_MICROS {
        return Err(invalid(&field, "is more than one hour in the future"));
    }
    Ok(micros)
}

/// An optional duration of at most `max_ms`, in milliseconds.
pub fn duration_ms(
    field: impl Display,
    value: Option<&prost_types::Duration>,
    max_ms: u64,
) -> Result<u64> {
    let Some(d) = value else { return Ok(0) };
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(invalid(&field, "must be a non-negative duration"));
    }
    let ms = (d.seconds as u64)
        .saturating_mul(1000)
        .saturating_add(d.nanos as u64 / 1_000_000);
    if ms > max_ms {
        return Err(invalid(&field, format!("must be at most {max_ms} ms")));
    }
    Ok(ms)
}

/// A probability in `[0, 1]`, finite.
pub fn probability(field: impl Display, value: f64) -> Result<f64> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(&field, format!("must be in [0, 1], got {value}")))
    }
}

/// AIP-158 page size: negative is an error, 0 the default, large coerced.
pub fn page_size(field: impl Display, value: i32) -> Result<usize> {
    match value {
        v if v < 0 => Err(invalid(&field, "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        v => Ok((v as usize).min(MAX_PAGE_SIZE)),
    }
}

/// Decodes an opaque page token (hex of the last key returned).
pub fn page_token(field: impl Display, value: &str) -> Result<Option<Vec<u8>>> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || invalid(&field, "is not a token returned by a previous call");
    if value.len() % 2 != 0 || value.len() > 4 * MAX_ID_BYTES {
        return Err(bad());
    }
    (0..value.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(value.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()
        .map(Some)
}

/// Encodes the key to continue after as an opaque token.
pub fn next_page_token(next: Option<Vec<u8>>) -> String {
    next.map(|key| key.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(id("f", "").unwrap_err().to_string().contains("invalid f"));
        assert!(id("f", &"x".repeat(257)).is_err());
        assert!(id("f", "a\0b").is_err());
        assert_eq!(id("f", "learner-1").unwrap(), "learner-1");
        let iri = format!("https://lms.example.com/mod/quiz/{}", "q".repeat(300));
        assert!(id("f", &iri).is_err());
        assert_eq!(iri_id("f", &iri).unwrap(), iri);
        assert!(iri_id("f", &"x".repeat(513)).is_err());
        let token = next_page_token(Some("x".repeat(MAX_IRI_BYTES).into_bytes()));
        assert!(page_token("t", &token).is_ok());
        let many = vec!["x".to_string(); MAX_IDS_PER_LIST + 1];
        let err = id_set("skill_ids", &many).unwrap_err();
        assert!(err.to_string().contains("invalid skill_ids"), "{err}");
        let bad = id_set("skill_ids", &["a".into(), String::new()]).unwrap_err();
        assert!(bad.to_string().contains("invalid skill_ids[1]"), "{bad}");
        // A path passed unformatted is written out in the error.
        let lazy = id_set(format_args!("attempts[{}].skill_ids", 2), &[String::new()]);
        let lazy = lazy.unwrap_err().to_string();
        assert!(lazy.contains("invalid attempts[2].skill_ids[0]"), "{lazy}");
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let token = next_page_token(Some(b"abc\0d".to_vec()));
        assert_eq!(page_token("t", &token).unwrap().unwrap(), b"abc\0d");
        assert!(page_token("t", "zz").is_err());
        assert!(page_token("t", "abc").is_err());
        assert_eq!(page_size("p", 5000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size("p", -1).is_err());
    }

    #[test]
    fn languages_and_time_zones() {
        assert!(language("l", "fr", true).is_ok());
        assert!(language("l", "en-GB", true).is_ok());
        assert!(language("l", "français", true).is_err());
        assert!(language("l", "", true).is_err());
        assert!(time_zone("z", "Europe/Paris").is_ok());
        assert!(time_zone("z", "Mars/Olympus").is_err());
    }

    #[test]
    fn event_times() {
        let now = 1_700_000_000_000_000;
        let ts = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert!(event_time("t", None, now).is_err());
        assert!(event_time("t", Some(&ts(-1)), now).is_err());
        assert!(event_time("t", Some(&ts(1_700_000_000 + 7200)), now).is_err());
        assert_eq!(
            event_time("t", Some(&ts(1_600_000_000)), now).unwrap(),
            1_600_000_000_000_000
        );
    }
}
