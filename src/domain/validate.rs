//! Field checks every edge applies (gRPC in `api/validate.rs`, xAPI in
//! `domain/xapi`, CSV files in the CLI), kept free of protobuf so that any
//! of them can call them.
//!
//! Each function takes the field's path in the input (for the error) and
//! its raw value, and returns the checked value or an
//! [`Error::InvalidArgument`] naming the field. Paths are passed
//! unformatted (`format_args!`): a valid input, the common case, never
//! writes one out.

use std::fmt::{self, Display};

use super::learner::{Learner, Micros};
use super::limits::{
    BEFORE_2000, MAX_EXTERNAL_IDS, MAX_FUTURE_MICROS, MAX_ID_BYTES, MAX_IDS_PER_LIST,
    MAX_IRI_BYTES, MAX_LANGUAGE_BYTES, MAX_TEXT_BYTES, MIN_EVENT_MICROS,
};
use crate::error::{Error, Result};

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
    at_most_bytes(&field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(invalid(&field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// `value` of at most `max` bytes.
fn at_most_bytes(field: impl Display, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(invalid(
            &field,
            format!("must be at most {max} bytes, got {}", value.len()),
        ));
    }
    Ok(())
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

/// External ids (activity IRIs, registrations): each an item or module id
/// ([`iri_id`]), at most [`MAX_EXTERNAL_IDS`], none twice; request order.
pub fn external_ids(field: impl Display, values: &[String]) -> Result<Vec<String>> {
    if values.len() > MAX_EXTERNAL_IDS {
        return Err(invalid(
            &field,
            format!("holds {} ids; at most {MAX_EXTERNAL_IDS} fit", values.len()),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    values
        .iter()
        .enumerate()
        .map(|(j, value)| {
            let id = iri_id(format_args!("{field}[{j}]"), value)?;
            if !seen.insert(value.as_str()) {
                return Err(invalid(
                    format_args!("{field}[{j}]"),
                    format!("'{value}' is given twice"),
                ));
            }
            Ok(id)
        })
        .collect()
}

/// [`id_set`] kept in request order with its repeats, for a list whose
/// entries the engine names by their position in the request.
pub fn id_list(field: impl Display, values: &[String]) -> Result<Vec<String>> {
    checked_list(field, values, |f, v| id(f, v))
}

fn checked_set(
    field: impl Display,
    values: &[String],
    check: fn(&dyn Display, &str) -> Result<String>,
) -> Result<Vec<String>> {
    let mut out = checked_list(field, values, check)?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn checked_list(
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
    values
        .iter()
        .enumerate()
        .map(|(i, v)| check(&Indexed(&field, i), v))
        .collect()
}

/// Free text of at most [`MAX_TEXT_BYTES`] bytes.
pub fn text(field: impl Display, value: &str) -> Result<String> {
    at_most_bytes(field, value, MAX_TEXT_BYTES)?;
    Ok(value.to_string())
}

/// A well-formed BCP 47 language tag (RFC 5646: `fr`, `en-GB`,
/// `zh-Hant-TW`, private use `x-...`), in its canonical case (`EN-gb` is
/// stored as `en-GB`), or empty when `required` is false. Well-formed, not
/// registered: the IANA registry changes, and a tag it lacks still says
/// which modules suit a learner.
pub fn language(field: impl Display, value: &str, required: bool) -> Result<String> {
    if value.is_empty() {
        return if required {
            Err(invalid(&field, "must not be empty"))
        } else {
            Ok(String::new())
        };
    }
    at_most_bytes(&field, value, MAX_LANGUAGE_BYTES)?;
    oxilangtag::LanguageTag::parse_and_normalize(value)
        .map(|tag| tag.into_inner())
        .map_err(|e| {
            invalid(
                &field,
                format!("'{value}' is not a BCP 47 language tag such as 'fr' or 'en-GB': {e}"),
            )
        })
}

/// An IANA time zone name known to the tz database, in its canonical
/// spelling (`europe/paris` is stored as `Europe/Paris`, and a legacy link
/// as its zone, `US/Eastern` as `America/New_York`, so that learners of one
/// zone group together), or empty. Names the database holds that are not
/// zones a person lives in are refused: `localtime` (the server's own
/// zone), `Factory`, and the `posix/` and `right/` copies.
pub fn time_zone(field: impl Display, value: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    let refuse = || {
        invalid(
            &field,
            format!("'{value}' is not an IANA time zone name such as 'Europe/Paris'"),
        )
    };
    let zone = jiff::tz::TimeZone::get(value).map_err(|_| refuse())?;
    let name = zone.iana_name().unwrap_or(value);
    let lower = name.to_ascii_lowercase();
    if ["localtime", "factory", "posixrules"].contains(&lower.as_str())
        || lower.starts_with("posix/")
        || lower.starts_with("right/")
    {
        return Err(refuse());
    }
    Ok(super::zones::link_target(name).unwrap_or(name).to_string())
}

/// A probability in `[0, 1]`, finite.
pub fn probability(field: impl Display, value: f64) -> Result<f64> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(&field, format!("must be in [0, 1], got {value}")))
    }
}

/// An event time: not before [`MIN_EVENT_MICROS`] (2000-01-01), at most
/// [`MAX_FUTURE_MICROS`] ahead of `now`.
pub fn event_micros(field: impl Display, micros: Micros, now: Micros) -> Result<Micros> {
    if micros < MIN_EVENT_MICROS {
        return Err(invalid(&field, BEFORE_2000));
    }
    if micros > now.saturating_add(MAX_FUTURE_MICROS) {
        return Err(invalid(&field, "is more than one hour in the future"));
    }
    Ok(micros)
}

/// A time spent of at most `max_ms` milliseconds (the caps are in
/// [`super::limits`]): longer is refused, not shortened, at every edge.
pub fn time_spent(field: impl Display, ms: u64, max_ms: u64) -> Result<u64> {
    if ms > max_ms {
        return Err(invalid(&field, format!("must be at most {max_ms} ms")));
    }
    Ok(ms)
}

/// A learner as every edge checks it: ids, a required language and time
/// zone (modules are picked in the language, cohorts bound the spread of
/// zones; neither has a safe default), canonical spellings. `name` gives
/// each field's path in the input (`row.time_zone` for gRPC, `timezone`
/// for a CSV column), from the learner's own field names.
pub fn learner(value: Learner, name: impl Fn(&str) -> String) -> Result<Learner> {
    let Learner {
        id,
        company_id,
        language: lang,
        time_zone: zone,
        display_name,
    } = value;
    let at = |field: &'static str| Named(&name, field);
    Ok(Learner {
        id: self::id(at("id"), &id)?,
        company_id: self::id(at("company_id"), &company_id)?,
        language: language(at("language"), &lang, true)?,
        time_zone: match zone.as_str() {
            "" => return Err(invalid(at("time_zone"), "must not be empty")),
            zone => time_zone(at("time_zone"), zone)?,
        },
        display_name: text(at("display_name"), &display_name)?,
    })
}

/// A field's path, written out by its naming function only when an error
/// names it.
struct Named<'a, F>(&'a F, &'static str);

impl<F: Fn(&str) -> String> Display for Named<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)(self.1))
    }
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
    fn languages_and_time_zones() {
        assert!(language("l", "fr", true).is_ok());
        assert!(language("l", "en-GB", true).is_ok());
        assert_eq!(language("l", "EN-gb", true).unwrap(), "en-GB");
        assert_eq!(language("l", "zh-hant-tw", true).unwrap(), "zh-Hant-TW");
        assert_eq!(language("l", "x-klingon", true).unwrap(), "x-klingon");
        assert!(language("l", "qq-ZZ-ZZ-ZZ", true).is_err(), "two regions");
        assert!(language("l", "en--GB", true).is_err());
        assert!(language("l", &format!("x{}", "-abcdefgh".repeat(8)), true).is_err());
        assert!(language("l", "français", true).is_err());
        assert!(language("l", "", true).is_err());
        assert!(time_zone("z", "Europe/Paris").is_ok());
        assert!(time_zone("z", "Mars/Olympus").is_err());
        assert_eq!(time_zone("z", "europe/paris").unwrap(), "Europe/Paris");
        assert_eq!(time_zone("z", "EUROPE/PARIS").unwrap(), "Europe/Paris");
        for odd in ["localtime", "Factory", "posix/Europe/Paris", "right/UTC"] {
            assert!(time_zone("z", odd).is_err(), "{odd}");
        }
        assert_eq!(time_zone("z", "UTC").unwrap(), "UTC");
        assert_eq!(time_zone("z", "US/Eastern").unwrap(), "America/New_York");
        assert_eq!(time_zone("z", "us/eastern").unwrap(), "America/New_York");
        assert_eq!(time_zone("z", "Etc/UTC").unwrap(), "UTC");
    }

    #[test]
    fn event_times_and_time_spent() {
        let now = 1_700_000_000_000_000;
        // Anything before 2000 is refused (an unset time reads as 1970).
        assert!(event_micros("t", 0, now).is_err());
        assert!(event_micros("t", MIN_EVENT_MICROS - 1, now).is_err());
        assert!(event_micros("t", MIN_EVENT_MICROS, now).is_ok());
        assert!(event_micros("t", now + MAX_FUTURE_MICROS, now).is_ok());
        let err = event_micros("t", now + MAX_FUTURE_MICROS + 1, now).unwrap_err();
        assert!(
            err.to_string().contains("invalid t: is more than one hour"),
            "{err}"
        );
        assert_eq!(time_spent("d", 5, 5).unwrap(), 5);
        let err = time_spent(format_args!("a[{}].d", 1), 6, 5).unwrap_err();
        assert_eq!(err.to_string(), "invalid a[1].d: must be at most 5 ms");
    }

    #[test]
    fn learners_are_checked_under_the_callers_names() {
        let raw = |zone: &str| Learner {
            id: "a".into(),
            company_id: "acme".into(),
            language: "EN-gb".into(),
            time_zone: zone.into(),
            display_name: String::new(),
        };
        let checked = learner(raw("europe/paris"), |f| format!("row.{f}")).unwrap();
        assert_eq!(
            (checked.language.as_str(), checked.time_zone.as_str()),
            ("en-GB", "Europe/Paris")
        );
        let csv = |f: &str| {
            if f == "time_zone" {
                "timezone".into()
            } else {
                f.to_string()
            }
        };
        let err = learner(raw(""), csv).unwrap_err();
        assert_eq!(err.to_string(), "invalid timezone: must not be empty");
        let err = learner(raw("Mars/Olympus"), |f| format!("row.{f}")).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid row.time_zone:"),
            "{err}"
        );
    }
}
