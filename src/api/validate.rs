//! Field checks shared by every request conversion.
//!
//! Each function takes the field's path in the request (for the error) and
//! its raw value, and returns the checked domain value or an
//! [`Error::InvalidArgument`] naming the field.

use std::fmt::{self, Display};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::domain::learner::Micros;
use crate::error::{Error, Result};

pub use crate::domain::limits::{
    BEFORE_2000, MAX_FUTURE_MICROS, MAX_ID_BYTES, MAX_IRI_BYTES, MIN_EVENT_MICROS,
};

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

/// Most external ids one program, module or item carries.
pub const MAX_EXTERNAL_IDS: usize = 100;

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

/// Longest language tag accepted: RFC 5646 asks for at least 35
/// characters; private-use subtags may otherwise chain without end.
pub const MAX_LANGUAGE_BYTES: usize = 64;

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
    Ok(crate::domain::zones::link_target(name)
        .unwrap_or(name)
        .to_string())
}

/// A required event time: valid, not before [`MIN_EVENT_MICROS`]
/// (2000-01-01), at most [`MAX_FUTURE_MICROS`] ahead of `now`.
pub fn event_time(
    field: impl Display,
    value: Option<&prost_types::Timestamp>,
    now: Micros,
) -> Result<Micros> {
    let ts = value.ok_or_else(|| invalid(&field, "is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid(&field, "nanos must be in [0, 1e9)"));
    }
    let micros = ts
        .seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(ts.nanos / 1000)))
        .ok_or_else(|| invalid(&field, "is out of range"))?;
    if micros < MIN_EVENT_MICROS {
        return Err(invalid(&field, BEFORE_2000));
    }
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

/// Format version of the page tokens this server issues (their first byte).
const PAGE_TOKEN_VERSION: u8 = 1;
/// Bytes of a page token that bind it to its list and filter.
const PAGE_SCOPE_BYTES: usize = 8;
/// Longest last key a page token may carry. The longest key a list pages
/// over is a cohort's (program id, NUL, cohort id: under 600 bytes); this
/// bound leaves ample room for longer keys without letting a caller make
/// the server decode an arbitrarily long string.
pub const MAX_PAGE_KEY_BYTES: usize = 8 * 1024;
/// Longest page token accepted: the encoding of the longest key.
const MAX_PAGE_TOKEN_CHARS: usize =
    (4 * (1 + PAGE_SCOPE_BYTES + MAX_PAGE_KEY_BYTES + 4)).div_ceil(3);

/// The binding of a page token to `scope`: the first bytes of its SHA-256.
fn page_scope(scope: &str) -> [u8; PAGE_SCOPE_BYTES] {
    let mut binding = [0; PAGE_SCOPE_BYTES];
    binding.copy_from_slice(&Sha256::digest(scope.as_bytes())[..PAGE_SCOPE_BYTES]);
    binding
}

/// Decodes a page token made by [`next_page_token`] for the same `scope`.
///
/// Page tokens are opaque and bound to the request that issued them
/// (AIP-158: a token sent with other parameters than the call that returned
/// it, `page_size` aside, is INVALID_ARGUMENT). A token is the URL-safe
/// base64, without padding, of
///
/// ```text
/// version (1 byte, 1) | binding (8 bytes) | last key (0 to MAX_PAGE_KEY_BYTES) | CRC32 (4 bytes, big-endian)
/// ```
///
/// where the binding is the first 8 bytes of the SHA-256 of `scope`, a
/// string naming the list and its filter, built by each list handler from
/// its RPC name and filter fields joined by NUL (ids never hold one), e.g.
/// `"ListEnrolments\0program\0excel"`; the CRC32 covers everything before
/// it, so a string the server did not make is refused. The last key is
/// where the next page starts after; a forged one only moves the start
/// within the same list, since the store pages within the list's prefix.
/// An empty `value` is the first page (`None`).
pub fn page_token(field: impl Display, value: &str, scope: &str) -> Result<Option<Vec<u8>>> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || invalid(&field, "is not a token returned by a previous call");
    if value.len() > MAX_PAGE_TOKEN_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| bad())?;
    let Some((body, check)) = bytes.split_last_chunk::<4>() else {
        return Err(bad());
    };
    if crc32fast::hash(body).to_be_bytes() != *check {
        return Err(bad());
    }
    let Some((&version, rest)) = body.split_first() else {
        return Err(bad());
    };
    if version != PAGE_TOKEN_VERSION {
        return Err(invalid(
            &field,
            format!(
                "is a version {version} token, which this server does not read: list again from the first page"
            ),
        ));
    }
    let Some((binding, key)) = rest.split_first_chunk::<PAGE_SCOPE_BYTES>() else {
        return Err(bad());
    };
    if *binding != page_scope(scope) {
        return Err(invalid(
            &field,
            "was issued for another list or filter: send the same filters as the call that returned it",
        ));
    }
    if key.len() > MAX_PAGE_KEY_BYTES {
        return Err(bad());
    }
    Ok(Some(key.to_vec()))
}

/// Encodes the key to continue after as an opaque token bound to `scope`
/// (format in [`page_token`]); `None`, the last page, is the empty token.
pub fn next_page_token(next: Option<Vec<u8>>, scope: &str) -> String {
    let Some(key) = next else {
        return String::new();
    };
    debug_assert!(
        key.len() <= MAX_PAGE_KEY_BYTES,
        "page key of {} bytes",
        key.len()
    );
    let mut bytes = Vec::with_capacity(1 + PAGE_SCOPE_BYTES + key.len() + 4);
    bytes.push(PAGE_TOKEN_VERSION);
    bytes.extend_from_slice(&page_scope(scope));
    bytes.extend_from_slice(&key);
    let check = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&check.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
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
        let token = next_page_token(Some("x".repeat(MAX_IRI_BYTES).into_bytes()), "s");
        assert!(page_token("t", &token, "s").is_ok());
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

    /// The message of a refused page token, checking it names the field.
    fn token_error(value: &str, scope: &str) -> String {
        let err = page_token("page_token", value, scope)
            .expect_err(value)
            .to_string();
        assert!(err.contains("invalid page_token"), "{err}");
        err
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let scope = "ListEnrolments\0program\0excel";
        let token = next_page_token(Some(b"abc\0d".to_vec()), scope);
        assert_eq!(page_token("t", &token, scope).unwrap().unwrap(), b"abc\0d");
        assert_eq!(page_token("t", "", scope).unwrap(), None);
        assert_eq!(next_page_token(None, scope), "");
        // Keys longer than the old 512-byte cap come back, up to the bound.
        for len in [0, 1, 513, 600, 4096, MAX_PAGE_KEY_BYTES] {
            let key: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let token = next_page_token(Some(key.clone()), scope);
            assert_eq!(page_token("t", &token, scope).unwrap(), Some(key), "{len}");
        }
        // Tokens of the old format (hex of the key) and random strings.
        for garbage in [
            "zz",
            "abc",
            "00",
            "ffff",
            "00ff",
            "not-a-token",
            "====",
            "a b",
        ] {
            let err = token_error(garbage, scope);
            assert!(
                err.contains("is not a token returned by a previous call"),
                "{err}"
            );
        }
        // Longer than any token the server makes.
        token_error(&"A".repeat(MAX_PAGE_TOKEN_CHARS + 1), scope);
        // Every truncation, and every single-bit change, is refused.
        for cut in 1..token.len() {
            token_error(&token[..cut], scope);
        }
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut tampered = bytes.clone();
                tampered[i] ^= 1 << bit;
                token_error(&URL_SAFE_NO_PAD.encode(&tampered), scope);
            }
        }
        // A well-formed token of another version is refused as such.
        let mut other = bytes[..bytes.len() - 4].to_vec();
        other[0] = 2;
        let check = crc32fast::hash(&other).to_be_bytes();
        other.extend_from_slice(&check);
        let err = token_error(&URL_SAFE_NO_PAD.encode(&other), scope);
        assert!(err.contains("version 2"), "{err}");
        assert_eq!(page_size("p", 5000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size("p", -1).is_err());
    }

    #[test]
    fn page_tokens_are_refused_in_another_list_or_filter() {
        let key = Some(b"acme\0alice".to_vec());
        let scopes = [
            "ListSkills",
            "ListModules",
            "ListLearners\0company\0",
            "ListLearners\0company\0acme",
            "ListLearners\0company\0co",
            "ListEnrolments\0program\0alice",
            "ListEnrolments\0learner\0alice",
        ];
        for issued in scopes {
            let token = next_page_token(key.clone(), issued);
            for used in scopes {
                let got = page_token("page_token", &token, used);
                if used == issued {
                    assert_eq!(got.unwrap(), key);
                } else {
                    let err = token_error(&token, used);
                    assert!(
                        err.contains("was issued for another list or filter"),
                        "{err}"
                    );
                }
            }
        }
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
    fn event_times() {
        let now = 1_700_000_000_000_000;
        let ts = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert!(event_time("t", None, now).is_err());
        assert!(event_time("t", Some(&ts(-1)), now).is_err());
        // Unset (zero) and anything before 2000 are refused; 2000 is not.
        assert!(event_time("t", Some(&ts(0)), now).is_err());
        assert!(event_time("t", Some(&ts(946_684_799)), now).is_err());
        assert!(event_time("t", Some(&ts(946_684_800)), now).is_ok());
        assert!(event_time("t", Some(&ts(1_700_000_000 + 7200)), now).is_err());
        assert_eq!(
            event_time("t", Some(&ts(1_600_000_000)), now).unwrap(),
            1_600_000_000_000_000
        );
    }
}
