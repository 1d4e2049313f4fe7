//! When a failed delivery is tried again, and when it is given up.
//!
//! Exponential backoff: the delay doubles after each failure, from
//! `first_delay` up to `max_delay`, with ±20 % jitter so that the messages
//! of one outage do not all come back at the same instant. A message is
//! tried for `window` after it entered the outbox (24 hours by default):
//! the last attempt falls at the window's end, and a failure then makes it
//! a dead letter. A receiver that answers 429 or 503 with `Retry-After`
//! is not tried before the time it asked for (at most `max_delay` ahead:
//! a receiver cannot push its messages past the schedule's longest wait).

use std::time::Duration;

use super::super::learner::Micros;

/// The retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// How long a message is retried, from when it entered the outbox.
    pub window: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, doubling up to 1 h, for 24 h: a receiver back after an outage
    /// hears again within the hour (and then gets its backlog at once).
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do with a message whose attempt just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(Micros),
    /// The window is over: keep it as a dead letter.
    GiveUp,
}

impl RetryPolicy {
    /// The delay after the `failures`-th failure (1 for the first), before
    /// jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(40);
        self.first_delay
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_delay)
    }

    /// The decision after the `failures`-th failed attempt, at `now`, of a
    /// message created at `created_at`; `jitter` is a draw in [0, 1);
    /// `asked` is the wait the receiver asked for (`Retry-After`), if any.
    pub fn after_failure(
        &self,
        created_at: Micros,
        failures: u32,
        now: Micros,
        jitter: f64,
        asked: Option<Duration>,
    ) -> AfterFailure {
        let end = created_at.saturating_add(micros(self.window));
        if now >= end {
            return AfterFailure::GiveUp;
        }
        let delay = micros(self.delay(failures)) as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        let mut due = now.saturating_add(delay as Micros);
        if let Some(asked) = asked {
            due = due.max(now.saturating_add(micros(asked.min(self.max_delay))));
        }
        AfterFailure::RetryAt(due.min(end))
    }
}

/// The wait a `Retry-After` value asks for at `now`: delay-seconds, or an
/// HTTP date (RFC 9110 section 10.2.3); `None` when it is neither (the
/// schedule alone decides then). A date in the past asks for no wait.
pub fn retry_after(value: &str, now: Micros) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    let now = Duration::from_micros(u64::try_from(now).unwrap_or(0));
    Some(at.saturating_sub(now))
}

fn micros(d: Duration) -> Micros {
    d.as_micros().min(i64::MAX as u128) as Micros
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=12).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(
            secs,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(p.delay(1000).as_secs(), 3600, "no overflow");
    }

    #[test]
    fn the_last_attempt_falls_at_the_window_end_then_it_is_given_up() {
        let p = RetryPolicy::default();
        let day = 24 * 3600 * S;
        assert_eq!(
            p.after_failure(0, 1, 0, 0.5, None),
            AfterFailure::RetryAt(5 * S)
        );
        assert_eq!(
            p.after_failure(0, 1, 0, 0.0, None),
            AfterFailure::RetryAt(4 * S)
        );
        assert_eq!(
            p.after_failure(0, 30, day - 10 * S, 0.5, None),
            AfterFailure::RetryAt(day)
        );
        assert_eq!(p.after_failure(0, 31, day, 0.5, None), AfterFailure::GiveUp);
        // Attempts over a day: a few dozen, not thousands.
        let (mut now, mut n) = (0, 0);
        while let AfterFailure::RetryAt(next) = p.after_failure(0, n + 1, now, 0.5, None) {
            now = next;
            n += 1;
        }
        assert!((25..40).contains(&n), "{n} retries");
    }

    #[test]
    fn a_receivers_retry_after_is_honoured_within_the_schedule() {
        let p = RetryPolicy::default();
        let asked = |secs| Some(Duration::from_secs(secs));
        // Longer than the backoff: waited for.
        assert_eq!(
            p.after_failure(0, 1, 0, 0.5, asked(120)),
            AfterFailure::RetryAt(120 * S)
        );
        // Shorter: the backoff stands.
        assert_eq!(
            p.after_failure(0, 1, 0, 0.5, asked(1)),
            AfterFailure::RetryAt(5 * S)
        );
        // At most the longest delay, and never past the window.
        assert_eq!(
            p.after_failure(0, 1, 0, 0.5, asked(86_400 * 7)),
            AfterFailure::RetryAt(3600 * S)
        );
        let day = 86_400 * S;
        assert_eq!(
            p.after_failure(0, 1, day - 10 * S, 0.5, asked(3000)),
            AfterFailure::RetryAt(day)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // 1994-11-06T08:49:37Z.
        let now = 784_111_777 * S;
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after(" Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:48:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }
}
