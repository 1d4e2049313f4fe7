//! Field checks of the gRPC edge: the protobuf-typed ones (timestamps,
//! durations) here, every other one from the domain ([`validate`],
//! [`paging`]), re-exported so that a handler finds all its checks under
//! one name.
//!
//! [`validate`]: crate::domain::validate
//! [`paging`]: crate::domain::paging

use std::fmt::Display;

use crate::domain::learner::Micros;
use crate::error::{Error, Result};

pub use crate::domain::paging::{next_page_token, page_size, page_token};
pub use crate::domain::validate::*;

/// One page of the list `scope` (its RPC name, then its filters joined by
/// NUL: see [`page_token`]): checks `size` and `token` (fields
/// `page_size`, `page_token`), asks `fetch` for at most `size` entries after
/// the token's key, and returns them converted, with the token of the next
/// page.
pub fn page_of<T, P: From<T>>(
    scope: &str,
    size: i32,
    token: &str,
    fetch: impl FnOnce(Option<&[u8]>, usize) -> Result<(Vec<T>, Option<Vec<u8>>)>,
) -> Result<(Vec<P>, String)> {
    let limit = page_size("page_size", size)?;
    let after = page_token("page_token", token, scope)?;
    let (entries, next) = fetch(after.as_deref(), limit)?;
    Ok((
        entries.into_iter().map(P::from).collect(),
        next_page_token(next, scope),
    ))
}

/// A required event time: a valid timestamp, then
/// [`event_micros`](crate::domain::validate::event_micros).
pub fn event_time(
    field: impl Display,
    value: Option<&prost_types::Timestamp>,
    now: Micros,
) -> Result<Micros> {
    let invalid = |reason: &str| Error::invalid(field.to_string(), reason);
    let ts = value.ok_or_else(|| invalid("is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid("nanos must be in [0, 1e9)"));
    }
    let micros = ts
        .seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(ts.nanos / 1000)))
        .ok_or_else(|| invalid("is out of range"))?;
    event_micros(field, micros, now)
}

/// An optional duration of at most `max_ms`, in milliseconds
/// ([`time_spent`](crate::domain::validate::time_spent)).
pub fn duration_ms(
    field: impl Display,
    value: Option<&prost_types::Duration>,
    max_ms: u64,
) -> Result<u64> {
    let Some(d) = value else { return Ok(0) };
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(Error::invalid(
            field.to_string(),
            "must be a non-negative duration",
        ));
    }
    let ms = (d.seconds as u64)
        .saturating_mul(1000)
        .saturating_add(d.nanos as u64 / 1_000_000);
    time_spent(field, ms, max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn durations() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(duration_ms("d", None, 10).unwrap(), 0);
        assert_eq!(
            duration_ms("d", Some(&d(1, 500_000_000)), 1500).unwrap(),
            1500
        );
        assert!(duration_ms("d", Some(&d(1, 500_000_000)), 1499).is_err());
        assert!(duration_ms("d", Some(&d(-1, 0)), 10).is_err());
    }
}
